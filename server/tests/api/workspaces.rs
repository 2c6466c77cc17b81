//! Built-in workspaces with the real tools (installed by `scripts/dev
//! setup` into a virtualenv outside the clone), started by `trellis
//! server` and reached only through its proxy: a JupyterLab kernel runs a
//! cell over the proxied WebSocket, survives culling while busy, is culled
//! when idle and resumes with its files; Streamlit's stream connects;
//! TensorBoard serves a scalar a job wrote.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use super::process::Server;
use super::proxy::{client, json_of, ws_request};

/// The virtualenv with JupyterLab, Streamlit and TensorBoard.
fn workspace_python() -> String {
    let venv = std::env::var_os("TRELLIS_WORKSPACES_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var("HOME").unwrap()).join(".cache/trellis/workspaces-venv")
        });
    let python = venv.join("bin/python");
    assert!(
        python.exists(),
        "{} is missing: `scripts/dev setup` installs the workspace tools",
        python.display()
    );
    python.to_string_lossy().into_owned()
}

async fn api(server: &Server, method: &str, path: &str, body: Option<Value>) -> Value {
    let (status, body) = server.request(method, path, body).await.unwrap();
    assert!(
        (200..300).contains(&status),
        "{method} {path}: {status} {body}"
    );
    body
}

async fn wait_for(
    server: &Server,
    project: &str,
    uuid: &str,
    wanted: &str,
    within: Duration,
) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let run = api(
            server,
            "GET",
            &format!("/api/v1/default/{project}/runs/{uuid}"),
            None,
        )
        .await;
        if run["status"] == wanted {
            return run;
        }
        if run["status"] == "failed" {
            let logs = api(
                server,
                "GET",
                &format!("/api/v1/default/{project}/runs/{uuid}/logs"),
                None,
            )
            .await;
            panic!("run {uuid} failed: {logs}");
        }
        assert!(
            Instant::now() < deadline,
            "run {uuid} never became {wanted}; it is {}",
            run["status"]
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// `trellis server` with `extra` arguments and project `project`.
async fn server_with_project(dir: &std::path::Path, project: &str, extra: &[&str]) -> Server {
    let server = Server::start_with(dir, None, extra).await;
    api(
        &server,
        "POST",
        "/api/v1/default/projects/create",
        Some(json!({ "name": project })),
    )
    .await;
    server
}

async fn start_hub(server: &Server, project: &str, operation: &str, params: Value) -> String {
    let run = api(
        server,
        "POST",
        &format!("/api/v1/default/{project}/runs"),
        Some(json!({ "content": operation, "params": params })),
    )
    .await;
    run["uuid"].as_str().unwrap().replace('-', "")
}

fn host(server: &Server) -> String {
    server.base.trim_start_matches("http://").to_owned()
}

/// The `_xsrf` cookie Jupyter set on the proxied page, with the path the
/// proxy keeps it under.
fn xsrf_cookie(response: &reqwest::Response) -> (String, String) {
    let cookie = response
        .headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|c| c.starts_with("_xsrf="))
        .expect("Jupyter sets an _xsrf cookie");
    let value = cookie["_xsrf=".len()..]
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    (value, cookie)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jupyterlab_runs_a_cell_through_the_proxy_is_culled_when_idle_and_resumes_with_its_files() {
    let python = workspace_python();
    let dir = tempfile::tempdir().unwrap();
    let server = server_with_project(dir.path(), "lab", &["--cull-every-secs", "1"]).await;
    let operation = "version: 1.1\nkind: operation\nhubRef: jupyterlab\ntermination:\n  culling:\n    timeout: 5\n";
    let uuid = start_hub(&server, "lab", operation, json!({ "python": python })).await;
    wait_for(&server, "lab", &uuid, "running", Duration::from_secs(90)).await;
    let prefix = format!("/services/v1/default/lab/runs/{uuid}/8888");
    let base = format!("{}{prefix}", server.base);
    let client = client();

    // The lab page, and the XSRF cookie kept under the prefix.
    let page = client.get(format!("{base}/lab")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let (xsrf, cookie) = xsrf_cookie(&page);
    assert!(cookie.contains(&format!("Path={prefix}/")), "{cookie}");
    assert!(page.text().await.unwrap().contains("JupyterLab"));
    let with_xsrf = |request: reqwest::RequestBuilder| {
        request
            .header("Cookie", format!("_xsrf={xsrf}"))
            .header("X-XSRFToken", &xsrf)
            .header("Origin", server.base.clone())
    };

    // A file in its working directory, to find again after the resume.
    let saved = with_xsrf(client.put(format!("{base}/api/contents/kept.txt")))
        .json(&json!({"type": "file", "format": "text", "content": "still here"}))
        .send()
        .await
        .unwrap();
    assert_eq!(saved.status(), 201, "{}", saved.text().await.unwrap());

    // A kernel; `6*7` over its channels WebSocket, through the proxy.
    let kernel = json_of(
        with_xsrf(client.post(format!("{base}/api/kernels"))).json(&json!({"name": "python3"})),
    )
    .await;
    let kernel_id = kernel["id"].as_str().expect("a kernel id").to_owned();
    let request = ws_request(
        &format!(
            "ws://{}{prefix}/api/kernels/{kernel_id}/channels",
            host(&server)
        ),
        &[
            ("Cookie", &format!("_xsrf={xsrf}")),
            ("Origin", &server.base),
        ],
    );
    let (mut socket, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    let execute = |id: &str, code: &str| {
        json!({
            "header": {"msg_id": id, "username": "test", "session": "s1", "msg_type": "execute_request", "version": "5.3", "date": ""},
            "parent_header": {}, "metadata": {}, "channel": "shell", "buffers": [],
            "content": {"code": code, "silent": false, "store_history": true, "user_expressions": {}, "allow_stdin": false, "stop_on_error": true}
        })
        .to_string()
    };
    socket
        .send(Message::Text(execute("m1", "6*7").into()))
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let result = loop {
        assert!(Instant::now() < deadline, "no execute_result for 6*7");
        let message = tokio::time::timeout(Duration::from_secs(60), socket.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        if let Message::Text(text) = message {
            let message: Value = serde_json::from_str(&text).unwrap();
            if message["msg_type"] == "execute_result" && message["parent_header"]["msg_id"] == "m1"
            {
                break message["content"]["data"]["text/plain"].clone();
            }
        }
    };
    assert_eq!(result, "42");

    // A long cell, then no browser: busy is not idle.
    socket
        .send(Message::Text(
            execute("m2", "import time; time.sleep(10)").into(),
        ))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    drop(socket);
    tokio::time::sleep(Duration::from_secs(8)).await;
    let run = api(
        &server,
        "GET",
        &format!("/api/v1/default/lab/runs/{uuid}"),
        None,
    )
    .await;
    assert_eq!(run["status"], "running", "a busy kernel was culled");

    // Once the cell is done and nothing comes through, it is culled.
    wait_for(&server, "lab", &uuid, "stopped", Duration::from_secs(30)).await;
    let history = api(
        &server,
        "GET",
        &format!("/api/v1/default/lab/runs/{uuid}/statuses"),
        None,
    )
    .await;
    let last = history["status_conditions"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(last["reason"], "Culled", "{history}");
    assert!(last["message"].as_str().unwrap().contains("idle"), "{last}");

    // The proxy says so, and links to the run.
    let gone = client
        .get(format!("{base}/lab"))
        .header("Accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(gone.status(), 503);
    assert!(gone.text().await.unwrap().contains("is stopped"));

    // Resumed: same run, same working directory, same files.
    api(
        &server,
        "POST",
        &format!("/api/v1/default/lab/runs/{uuid}/resume"),
        Some(json!({})),
    )
    .await;
    wait_for(&server, "lab", &uuid, "running", Duration::from_secs(90)).await;
    let file = json_of(client.get(format!("{base}/api/contents/kept.txt?content=1"))).await;
    assert_eq!(file["content"], "still here");
    api(
        &server,
        "POST",
        &format!("/api/v1/default/lab/runs/{uuid}/stop"),
        None,
    )
    .await;
    wait_for(&server, "lab", &uuid, "stopped", Duration::from_secs(30)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streamlit_connects_its_stream_and_tensorboard_serves_a_logged_scalar() {
    let python = workspace_python();
    let dir = tempfile::tempdir().unwrap();
    let server = server_with_project(dir.path(), "apps", &[]).await;

    // A job writes a TensorBoard event file into its outputs.
    let writer = format!(
        "version: 1.1\nkind: component\nrun:\n  kind: job\n  container:\n    image: python\n    command: [{python}, -c]\n    args:\n      - |\n        import os, time\n        from tensorboard.compat.proto.event_pb2 import Event\n        from tensorboard.compat.proto.summary_pb2 import Summary\n        from tensorboard.summary.writer.event_file_writer import EventFileWriter\n        w = EventFileWriter(os.environ['TRELLIS_RUN_OUTPUTS_PATH'])\n        for step, loss in [(1, 0.5), (2, 0.25)]:\n            w.add_event(Event(step=step, wall_time=time.time(), summary=Summary(value=[Summary.Value(tag='loss', simple_value=loss)])))\n        w.close()\n        import glob, urllib.request\n        base = '%s/api/v1/%s/%s/runs/%s/artifacts/files/tb/' % (os.environ['TRELLIS_HOST'], os.environ['TRELLIS_OWNER'], os.environ['TRELLIS_PROJECT'], os.environ['TRELLIS_RUN_UUID'])\n        for path in glob.glob(os.path.join(os.environ['TRELLIS_RUN_OUTPUTS_PATH'], '*')):\n            urllib.request.urlopen(urllib.request.Request(base + os.path.basename(path), data=open(path, 'rb').read(), method='PUT')).close()\n"
    );
    let job = api(
        &server,
        "POST",
        "/api/v1/default/apps/runs",
        Some(json!({"content": writer})),
    )
    .await;
    let job_uuid = job["uuid"].as_str().unwrap().replace('-', "");
    wait_for(
        &server,
        "apps",
        &job_uuid,
        "succeeded",
        Duration::from_secs(60),
    )
    .await;
    let outputs = dir.path().join("runs").join(&job_uuid).join("outputs");
    // TensorBoard over its outputs by path (`trial`), and over the files
    // it logged through the tracking API by the run's uuid (`fetched`:
    // the component fetches them into `runs/` through the API).
    let logdir = format!("trial:{},fetched:runs", outputs.display());
    let board = start_hub(
        &server,
        "apps",
        "version: 1.1\nkind: operation\nhubRef: tensorboard\n",
        json!({ "python": python, "logdir": logdir, "runs": job_uuid }),
    )
    .await;

    // A Streamlit app from the project's code: the hub component, with a
    // `runPatch` that clones the repository first (Polyaxon's way). It only
    // gets to `running` if the clone brought `dashboards/app.py`: Streamlit
    // exits at once without its script.
    let repo = dir.path().join("dashboards");
    std::fs::create_dir(&repo).unwrap();
    std::fs::write(
        repo.join("app.py"),
        "import streamlit as st\nst.title('Hello from Trellis')\n",
    )
    .unwrap();
    for args in [
        &["init", "-q"][..],
        &["add", "app.py"],
        &[
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@t",
            "commit",
            "-qm",
            "app",
        ],
    ] {
        let status = std::process::Command::new("git")
            .args(args)
            .current_dir(&repo)
            .status()
            .unwrap();
        assert!(status.success(), "git {args:?}");
    }
    let streamlit = start_hub(
        &server,
        "apps",
        &format!(
            "version: 1.1\nkind: operation\nhubRef: streamlit\nrunPatch:\n  init:\n    - git: {{url: \"{}\"}}\n",
            repo.display()
        ),
        json!({ "python": python, "app": "dashboards/app.py" }),
    )
    .await;
    wait_for(
        &server,
        "apps",
        &streamlit,
        "running",
        Duration::from_secs(90),
    )
    .await;
    let prefix = format!("/services/v1/default/apps/runs/{streamlit}/8501");
    let client = client();
    let page = client
        .get(format!("{}{prefix}/", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("<div id=\"root\">"));
    let health = client
        .get(format!("{}{prefix}/_stcore/health", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(health.text().await.unwrap(), "ok");
    let request = ws_request(
        &format!("ws://{}{prefix}/_stcore/stream", host(&server)),
        &[
            ("Sec-WebSocket-Protocol", "streamlit"),
            ("Origin", &server.base),
        ],
    );
    let (mut socket, response) = tokio_tungstenite::connect_async(request)
        .await
        .expect("Streamlit's stream connects through the proxy");
    assert_eq!(response.status(), 101);
    // Open, not refused: nothing closes it in the first second.
    let early = tokio::time::timeout(Duration::from_secs(1), socket.next()).await;
    assert!(
        !matches!(early, Ok(Some(Ok(Message::Close(_)))) | Ok(None)),
        "Streamlit closed the proxied stream: {early:?}"
    );

    // TensorBoard reads the job's scalar, by path and as fetched.
    wait_for(&server, "apps", &board, "running", Duration::from_secs(90)).await;
    let board_url = format!("{}/services/v1/default/apps/runs/{board}/6006", server.base);
    let deadline = Instant::now() + Duration::from_secs(60);
    for run in [
        "trial%2F.".to_owned(),
        format!("fetched%2Frun-{}%2Ftb", &job_uuid[..8]),
    ] {
        let scalars = format!("{board_url}/data/plugin/scalars/scalars?run={run}&tag=loss");
        let points = loop {
            let reply = client.get(&scalars).send().await.unwrap();
            if reply.status() == 200 {
                let points: Value = reply.json().await.unwrap();
                if points.as_array().is_some_and(|p| p.len() == 2) {
                    break points;
                }
            }
            if Instant::now() > deadline {
                let runs = client
                    .get(format!("{board_url}/data/runs"))
                    .send()
                    .await
                    .unwrap()
                    .text()
                    .await
                    .unwrap();
                let logs = api(
                    &server,
                    "GET",
                    &format!("/api/v1/default/apps/runs/{board}/logs"),
                    None,
                )
                .await;
                panic!(
                    "TensorBoard never served {run}'s scalar; its runs: {runs}; its log: {logs}"
                );
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        };
        assert_eq!(points[0][1], 1, "{run}");
        assert_eq!(points[1][2], 0.25, "{run}");
    }
    // Stopped before the server goes: the test's server is killed, not shut
    // down, and would leave the apps running.
    for uuid in [&board, &streamlit] {
        api(
            &server,
            "POST",
            &format!("/api/v1/default/apps/runs/{uuid}/stop"),
            None,
        )
        .await;
    }
    for uuid in [&board, &streamlit] {
        wait_for(&server, "apps", uuid, "stopped", Duration::from_secs(30)).await;
    }
}

/// code-server, installed by `scripts/install-code-server`.
fn code_server() -> String {
    let path = std::env::var_os("TRELLIS_CODE_SERVER")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var("HOME").unwrap())
                .join(".cache/trellis/code-server/node_modules/.bin/code-server")
        });
    assert!(
        path.exists(),
        "{} is missing: `scripts/dev setup` installs code-server",
        path.display()
    );
    path.to_string_lossy().into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vscode_loads_its_workbench_and_connects_through_the_rewriting_route() {
    let executable = code_server();
    let dir = tempfile::tempdir().unwrap();
    let server = server_with_project(dir.path(), "code", &[]).await;
    let uuid = start_hub(
        &server,
        "code",
        "version: 1.1\nkind: operation\nhubRef: vscode\n",
        json!({ "code_server": executable }),
    )
    .await;
    wait_for(&server, "code", &uuid, "running", Duration::from_secs(90)).await;
    let prefix = format!("/rewrite-services/v1/default/code/runs/{uuid}/8080");
    let client = super::proxy::client_builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    // Its root redirects to the folder, relatively: the prefix stays.
    let root = client
        .get(format!("{}{prefix}/", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(root.status(), 302);
    let location = root.headers()["location"].to_str().unwrap().to_owned();
    assert!(location.starts_with("./?folder="), "{location}");
    let page = client
        .get(format!("{}{prefix}/{}", server.base, &location[2..]))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    // The workbench's own assets load through the same prefix.
    let script = html
        .split('"')
        .find(|s| s.contains("/static/out/vs/code/browser/workbench/workbench.js"))
        .expect("the page names its workbench script")
        .trim_start_matches("./")
        .to_owned();
    let asset = client
        .get(format!("{}{prefix}/{script}", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(asset.status(), 200, "{script}");
    assert!(asset.bytes().await.unwrap().len() > 1_000_000);
    // Its WebSocket (the remote connection) opens with the browser's origin.
    let commit = script.split('/').next().unwrap().to_owned();
    let remote = |token: &str| {
        format!(
            "ws://{}{prefix}/{commit}?reconnectionToken={token}&reconnection=false&skipWebSocketFrames=false",
            host(&server)
        )
    };
    let request = ws_request(&remote("t1"), &[("Origin", &server.base)]);
    let (_socket, response) = tokio_tungstenite::connect_async(request)
        .await
        .expect("code-server's WebSocket opens through the proxy");
    assert_eq!(response.status(), 101);
    // A foreign page cannot open it.
    let foreign = ws_request(&remote("t2"), &[("Origin", "http://evil.example")]);
    assert!(tokio_tungstenite::connect_async(foreign).await.is_err());
    api(
        &server,
        "POST",
        &format!("/api/v1/default/code/runs/{uuid}/stop"),
        None,
    )
    .await;
    wait_for(&server, "code", &uuid, "stopped", Duration::from_secs(30)).await;
}
