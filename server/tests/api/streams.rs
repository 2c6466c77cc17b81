//! The WebSocket streams: logs resumable from a cursor, project statuses.

use std::time::Duration;

use futures_util::StreamExt as _;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use super::execution::{job, wait_for_status};
use super::process::Server;

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn open(server: &Server, path: &str) -> Socket {
    let url = format!("{}{path}", server.base.replace("http://", "ws://"));
    tokio_tungstenite::connect_async(url).await.unwrap().0
}

/// The next JSON message, or `None` once the server closed the socket.
async fn next_json(socket: &mut Socket) -> Option<Value> {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(20), socket.next())
            .await
            .expect("the stream went silent")?;
        match message.unwrap() {
            Message::Text(text) => return Some(serde_json::from_str(&text).unwrap()),
            Message::Close(_) => return None,
            _ => {}
        }
    }
}

async fn create_project(server: &Server, name: &str) {
    let reply = server
        .request(
            "POST",
            "/api/v1/default/projects/create",
            Some(json!({"name": name})),
        )
        .await
        .unwrap();
    assert_eq!(reply.0, 201, "{}", reply.1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_stream_resumed_from_its_cursor_misses_and_repeats_no_line() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(dir.path(), None, &[]).await;
    create_project(&server, "exec").await;
    let spec = std::fs::read_to_string(job(
        dir.path(),
        "count",
        "for i in $(seq 1 400); do echo line $i; sleep 0.003; done",
    ))
    .unwrap();
    let run = server
        .request(
            "POST",
            "/api/v1/default/exec/runs",
            Some(json!({"content": spec})),
        )
        .await
        .unwrap()
        .1;
    let uuid = run["uuid"].as_str().unwrap().to_owned();
    let path = format!("/streams/v1/default/exec/runs/{uuid}/logs");

    // Read part of the log live, then drop the connection mid-run.
    let mut seen: Vec<String> = Vec::new();
    let mut cursor = 0_i64;
    let mut socket = open(&server, &path).await;
    while seen.len() < 50 {
        let message = next_json(&mut socket).await.unwrap();
        assert_eq!(message["done"], false, "the run ended before 50 lines");
        for line in message["logs"].as_array().unwrap() {
            seen.push(line["text"].as_str().unwrap().to_owned());
        }
        cursor = message["next_cursor"].as_i64().unwrap();
    }
    drop(socket);
    let status = server
        .request("GET", &format!("/api/v1/default/exec/runs/{uuid}"), None)
        .await
        .unwrap()
        .1;
    assert_eq!(status["status"], "running", "the drop happened mid-run");

    // Resume from the cursor: the rest, once, then `done` and a close.
    let mut socket = open(&server, &format!("{path}?cursor={cursor}")).await;
    let mut done = false;
    while let Some(message) = next_json(&mut socket).await {
        assert!(!done, "a message followed `done`");
        for line in message["logs"].as_array().unwrap() {
            seen.push(line["text"].as_str().unwrap().to_owned());
        }
        done = message["done"] == true;
    }
    assert!(done, "the stream closed without `done`");
    let expected: Vec<String> = (1..=400).map(|i| format!("line {i}")).collect();
    assert_eq!(seen, expected);
    wait_for_status(&server, &uuid, "succeeded").await;

    // A finished run streams its whole log at once, then closes.
    let mut socket = open(&server, &path).await;
    let mut count = 0;
    while let Some(message) = next_json(&mut socket).await {
        count += message["logs"].as_array().unwrap().len();
    }
    assert_eq!(count, 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_refuse_unknown_runs_and_bad_cursors_before_upgrading() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), None).await;
    create_project(&server, "exec").await;
    let unknown = "/streams/v1/default/exec/runs/0f8e7c3a1b2d4e5f8a9b0c1d2e3f4a5b/logs";
    let reply = server.request("GET", unknown, None).await.unwrap();
    assert_eq!(reply.0, 404, "{}", reply.1);
    assert_eq!(reply.1["error"]["code"], "not_found");
    let run = server
        .request("POST", "/api/v1/default/exec/runs", Some(json!({})))
        .await
        .unwrap()
        .1;
    let uuid = run["uuid"].as_str().unwrap();
    let bad = format!("/streams/v1/default/exec/runs/{uuid}/logs?cursor=-4");
    let reply = server.request("GET", &bad, None).await.unwrap();
    assert_eq!(reply.0, 400, "{}", reply.1);
    assert!(
        reply.1["error"]["message"]
            .as_str()
            .unwrap()
            .contains("cursor"),
        "{}",
        reply.1
    );
    let reply = server
        .request("GET", "/streams/v1/default/nope/runs/statuses", None)
        .await
        .unwrap();
    assert_eq!(reply.0, 404, "{}", reply.1);
    // A known stream asked for without an upgrade says what it is.
    let reply = server
        .request("GET", "/streams/v1/default/exec/runs/statuses", None)
        .await
        .unwrap();
    assert_eq!(reply.0, 426, "{}", reply.1);
    assert_eq!(reply.1["error"]["code"], "upgrade_required");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_stream_reports_changes_to_the_projects_runs_only() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), None).await;
    create_project(&server, "watched").await;
    create_project(&server, "other").await;
    let mut socket = open(&server, "/streams/v1/default/watched/runs/statuses").await;
    let status = |uuid: &str, project: &str, status: &str| {
        (
            format!("/api/v1/default/{project}/runs/{uuid}/statuses"),
            json!({"condition": {"type": status, "reason": "Test"}}),
        )
    };
    let other = server
        .request("POST", "/api/v1/default/other/runs", Some(json!({})))
        .await
        .unwrap()
        .1;
    let (path, body) = status(other["uuid"].as_str().unwrap(), "other", "compiled");
    assert_eq!(
        server.request("POST", &path, Some(body)).await.unwrap().0,
        200
    );
    let watched = server
        .request("POST", "/api/v1/default/watched/runs", Some(json!({})))
        .await
        .unwrap()
        .1;
    let uuid = watched["uuid"].as_str().unwrap();
    for next in ["compiled", "failed"] {
        let (path, body) = status(uuid, "watched", next);
        assert_eq!(
            server.request("POST", &path, Some(body)).await.unwrap().0,
            200
        );
    }
    let hex = uuid.replace('-', "");
    // Creation is a change too: a new run appears in a live table.
    for wanted in ["created", "compiled", "failed"] {
        let message = next_json(&mut socket).await.unwrap();
        assert_eq!(message["type"], "status");
        assert_eq!(
            message["uuid"].as_str().unwrap().replace('-', ""),
            hex,
            "a change to another project's run leaked into this stream"
        );
        assert_eq!(message["status"], wanted);
    }
    socket.close(None).await.unwrap();
}
