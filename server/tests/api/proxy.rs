//! The workspace proxy over a real socket, in front of a test service that
//! reports what it received: headers, prefixes, rewritten answers, streamed
//! bodies both ways, server-sent events, WebSockets, and every refusal.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::extract::ws::{CloseFrame, Message as AxumMessage, WebSocket, WebSocketUpgrade};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use futures_util::{SinkExt as _, StreamExt as _};
use leptos::config::LeptosOptions;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use trellis_db::{Db, test_on_both_databases};
use trellis_services::Services;

test_on_both_databases!(
    requests_reach_the_declared_port_with_the_prefix_and_forwarding_headers,
    the_rewriting_route_strips_the_prefix,
    bodies_stream_both_ways_and_events_arrive_as_sent,
    websockets_are_relayed_frame_for_frame,
    bad_addresses_and_runs_not_serving_get_clear_answers,
    a_client_leaving_mid_upload_harms_nothing,
);

/// An HTTP client (rustls needs its crypto provider chosen once).
pub(crate) fn client_builder() -> reqwest::ClientBuilder {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
}

pub(crate) fn client() -> reqwest::Client {
    client_builder().build().unwrap()
}

/// Sends `request` and reads its answer as JSON.
pub(crate) async fn json_of(request: reqwest::RequestBuilder) -> Value {
    request.send().await.unwrap().json().await.unwrap()
}

/// `GET url`, read as JSON.
pub(crate) async fn get_json(url: &str) -> Value {
    json_of(client().get(url)).await
}

/// A WebSocket hand-shake request to `url` with `headers` (`Origin`,
/// `Cookie`, `Sec-WebSocket-Protocol`).
pub(crate) fn ws_request(
    url: &str,
    headers: &[(&'static str, &str)],
) -> tokio_tungstenite::tungstenite::handshake::client::Request {
    let mut request = url.into_client_request().unwrap();
    for (name, value) in headers {
        request.headers_mut().insert(*name, value.parse().unwrap());
    }
    request
}

/// Trellis's router served on a free port, as `trellis server` serves it.
async fn serve_trellis(services: Services) -> String {
    let options = LeptosOptions::builder().output_name("trellis").build();
    let app = trellis_server::startup::router(services, options);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .unwrap();
    });
    format!("127.0.0.1:{}", address.port())
}

/// What the test service received, as JSON.
async fn echo(request: Request) -> axum::Json<Value> {
    let headers: BTreeMap<String, String> = request
        .headers()
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("?").to_owned()))
        .collect();
    axum::Json(json!({
        "method": request.method().as_str(),
        "path": request.uri().path(),
        "query": request.uri().query(),
        "headers": headers,
    }))
}

/// The service a run serves: under `prefix` (the app knows its base URL)
/// and, for the rewriting route, at its root.
fn test_service(prefix: &str) -> Router {
    let mut router = Router::new();
    for base in [prefix, ""] {
        router = router
            .route(&format!("{base}/ws"), get(ws_echo))
            .route(&format!("{base}/sse"), get(sse))
            .route(&format!("{base}/download"), get(download))
            .route(&format!("{base}/upload"), post(upload))
            .route(&format!("{base}/dies"), get(dies))
            .route(&format!("{base}/dies-early"), get(dies_early))
            .route(
                &format!("{base}/redirect"),
                get(|headers: HeaderMap| async move {
                    // As apps build absolute URLs: from the Host they saw.
                    let host = headers[header::HOST].to_str().unwrap().to_owned();
                    Response::builder()
                        .status(StatusCode::FOUND)
                        .header(header::LOCATION, format!("http://{host}/somewhere/else"))
                        .header(
                            header::SET_COOKIE,
                            "sid=1; Path=/; Domain=127.0.0.1; HttpOnly",
                        )
                        .header(header::SET_COOKIE, "theme=dark")
                        .body(Body::empty())
                        .unwrap()
                }),
            )
            .route(
                &format!("{base}/relative-redirect"),
                get(|| async {
                    Response::builder()
                        .status(StatusCode::FOUND)
                        .header(header::LOCATION, "/login?next=%2F")
                        .body(Body::empty())
                        .unwrap()
                }),
            );
    }
    router.fallback(any(echo))
}

async fn ws_echo(upgrade: WebSocketUpgrade) -> Response {
    upgrade
        .protocols(["streamlit"])
        .on_upgrade(|mut socket: WebSocket| async move {
            while let Some(Ok(message)) = socket.recv().await {
                let reply = match message {
                    // The app dies: its connection drops without a close frame.
                    AxumMessage::Text(text) if text.as_str() == "die" => return,
                    AxumMessage::Text(text) if text.as_str() == "close-me" => {
                        let _ = socket
                            .send(AxumMessage::Close(Some(CloseFrame {
                                code: 4001,
                                reason: "asked to".into(),
                            })))
                            .await;
                        return;
                    }
                    AxumMessage::Close(_) => return,
                    // axum answers pings itself.
                    AxumMessage::Ping(_) | AxumMessage::Pong(_) => continue,
                    other => other,
                };
                if socket.send(reply).await.is_err() {
                    return;
                }
            }
        })
}

/// One event, then silence: a proxy that buffers never delivers it.
async fn sse() -> Response {
    let first = futures_util::stream::once(async {
        Ok::<_, std::io::Error>(axum::body::Bytes::from_static(b"data: first\n\n"))
    });
    let stream = first.chain(futures_util::stream::pending());
    Response::builder()
        .header(header::CONTENT_TYPE, "text/event-stream")
        .body(Body::from_stream(stream))
        .unwrap()
}

const MIB: usize = 1024 * 1024;

/// `mb` MiB of a repeating pattern, streamed in 64 KiB chunks.
async fn download(
    axum::extract::Query(q): axum::extract::Query<BTreeMap<String, usize>>,
) -> Response {
    let chunks = q.get("mb").copied().unwrap_or(1) * 16;
    let stream = futures_util::stream::iter((0..chunks).map(|i| {
        Ok::<_, std::io::Error>(axum::body::Bytes::from(vec![(i % 251) as u8; 64 * 1024]))
    }));
    Body::from_stream(stream).into_response()
}

/// Counts and sums what was uploaded, streaming.
async fn upload(body: Body) -> axum::Json<Value> {
    let mut stream = body.into_data_stream();
    let (mut bytes, mut sum) = (0_u64, 0_u64);
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.unwrap();
        bytes += chunk.len() as u64;
        sum = chunk.iter().fold(sum, |s, b| s.wrapping_add(u64::from(*b)));
    }
    axum::Json(json!({ "bytes": bytes, "sum": sum }))
}

/// Starts an answer and dies in the middle of it.
async fn dies() -> Response {
    let partial =
        futures_util::stream::once(async { Ok(axum::body::Bytes::from_static(b"partial")) });
    let crash = futures_util::stream::once(async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        Err(std::io::Error::other("the app crashed"))
    });
    Body::from_stream(partial.chain(crash)).into_response()
}

/// Dies before its answer's head is out.
async fn dies_early() -> Response {
    let crash = futures_util::stream::once(async {
        Err::<axum::body::Bytes, _>(std::io::Error::other("the app crashed"))
    });
    Body::from_stream(crash).into_response()
}

async fn serve_upstream(router: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    address
}

struct Workspace {
    trellis: String,
    uuid: String,
    prefix: String,
    services: Services,
    upstream: SocketAddr,
}

impl Workspace {
    fn url(&self, rest: &str) -> String {
        format!("http://{}{}{rest}", self.trellis, self.prefix)
    }
}

/// A service run declaring port 8888, running, served by the test service
/// at a port of its own.
async fn running_workspace(db: Db, project: &str, spec_extra: &str) -> Workspace {
    let services = Services::new(db);
    let trellis = serve_trellis(services.clone()).await;
    let client = client();
    let base = format!("http://{trellis}/api/v1/default");
    let created = client
        .post(format!("{base}/projects/create"))
        .json(&json!({ "name": project }))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let spec = format!(
        "version: 1.1\nkind: component\nrun:\n  kind: service\n  ports: [8888]\n{spec_extra}  container:\n    image: app\n    command: [serve]\n"
    );
    let run = json_of(
        client
            .post(format!("{base}/{project}/runs"))
            .json(&json!({ "content": spec })),
    )
    .await;
    let uuid = run["uuid"].as_str().unwrap().replace('-', "");
    let prefix = format!("/services/v1/default/{project}/runs/{uuid}/8888");
    let upstream = serve_upstream(test_service(&prefix)).await;
    let mut handle = services
        .runs()
        .handle(uuid.parse().unwrap())
        .await
        .unwrap()
        .unwrap();
    // As an executor would take it: through the lifecycle to `running`.
    for status in ["compiled", "queued", "scheduled", "starting", "running"] {
        handle
            .advance(status.parse().unwrap(), "Test", None)
            .await
            .unwrap();
    }
    assert_eq!(
        handle.current_status().await.unwrap().map(|s| s.as_str()),
        Some("running")
    );
    handle
        .record_endpoints(&BTreeMap::from([(8888, upstream.to_string())]))
        .await
        .unwrap();
    Workspace {
        trellis,
        uuid,
        prefix,
        services,
        upstream,
    }
}

fn no_redirects() -> reqwest::Client {
    client_builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

async fn requests_reach_the_declared_port_with_the_prefix_and_forwarding_headers(db: Db) {
    let ws = running_workspace(db, "proxied", "").await;
    let client = no_redirects();
    let reply = json_of(
        client
            .get(ws.url("/api/status?a=1&b=%2F"))
            .header("Connection", "keep-alive, X-Secret")
            .header("X-Secret", "hop-by-hop: not for the app")
            .header("X-Custom", "kept")
            .header("Origin", format!("http://{}", ws.trellis))
            .header("Referer", format!("http://{}{}/lab", ws.trellis, ws.prefix)),
    )
    .await;
    let headers = &reply["headers"];
    assert_eq!(reply["path"], format!("{}/api/status", ws.prefix));
    assert_eq!(reply["query"], "a=1&b=%2F");
    assert_eq!(headers["host"], ws.trellis, "{reply}");
    assert_eq!(headers["x-forwarded-host"], ws.trellis, "{reply}");
    assert_eq!(headers["x-forwarded-proto"], "http");
    assert_eq!(headers["x-forwarded-prefix"], ws.prefix);
    assert_eq!(headers["x-forwarded-for"], "127.0.0.1");
    assert_eq!(headers["x-custom"], "kept");
    assert!(headers.get("x-secret").is_none(), "{reply}");
    // Host and Origin agree as the browser sent them; the app checks them.
    assert_eq!(headers["origin"], format!("http://{}", ws.trellis));
    assert_eq!(
        headers["referer"],
        format!("http://{}{}/lab", ws.trellis, ws.prefix)
    );
    // A foreign origin is passed on as is, for the app to refuse.
    let foreign = json_of(
        client
            .post(ws.url("/api/kernels"))
            .header("Origin", "http://evil.example"),
    )
    .await;
    assert_eq!(foreign["method"], "POST");
    assert_eq!(foreign["headers"]["origin"], "http://evil.example");

    // Answers that name the app's own address are rewritten under the prefix.
    let redirect = client.get(ws.url("/redirect")).send().await.unwrap();
    assert_eq!(redirect.status(), 302);
    assert_eq!(
        redirect.headers()[header::LOCATION],
        "/somewhere/else",
        "an absolute URL on the app's host becomes a path"
    );
    let cookies: Vec<&str> = redirect
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert_eq!(
        cookies,
        [
            format!("sid=1; Path={}/; HttpOnly", ws.prefix),
            format!("theme=dark; Path={}/", ws.prefix)
        ]
    );
}

async fn the_rewriting_route_strips_the_prefix(db: Db) {
    let ws = running_workspace(db, "rewritten", "  rewritePath: true\n").await;
    let client = no_redirects();
    let stripped = ws.prefix.replace("/services/", "/rewrite-services/");
    let reply =
        json_of(client.get(format!("http://{}{stripped}/static/app.js?v=2", ws.trellis))).await;
    assert_eq!(reply["path"], "/static/app.js");
    assert_eq!(reply["query"], "v=2");
    let root = json_of(client.get(format!("http://{}{stripped}", ws.trellis))).await;
    assert_eq!(root["path"], "/");
    let redirect = client
        .get(format!("http://{}{stripped}/relative-redirect", ws.trellis))
        .send()
        .await
        .unwrap();
    assert_eq!(
        redirect.headers()[header::LOCATION],
        format!("{stripped}/login?next=%2F")
    );
    // The listing says where to open it.
    let listed = json_of(client.get(format!(
        "http://{}/api/v1/default/rewritten/workspaces",
        ws.trellis
    )))
    .await;
    assert_eq!(listed[0]["url"], format!("{stripped}/"), "{listed}");
    assert_eq!(listed[0]["ports"], json!([8888]));
    assert!(listed[0]["idle_secs"].as_u64().unwrap() < 60, "{listed}");
}

async fn bodies_stream_both_ways_and_events_arrive_as_sent(db: Db) {
    let ws = running_workspace(db, "streamed", "").await;
    let client = client();
    // 32 MiB down, checked byte for byte, read as it comes.
    let mut download = client.get(ws.url("/download?mb=32")).send().await.unwrap();
    let (mut received, mut chunk_index, mut offset) = (0_usize, 0_usize, 0_usize);
    while let Some(chunk) = download.chunk().await.unwrap() {
        for byte in chunk.iter() {
            assert_eq!(*byte, (chunk_index % 251) as u8, "byte {received}");
            offset += 1;
            received += 1;
            if offset == 64 * 1024 {
                offset = 0;
                chunk_index += 1;
            }
        }
    }
    assert_eq!(received, 32 * MIB);
    // 24 MiB up.
    let payload: Vec<u8> = (0..24 * MIB).map(|i| (i % 253) as u8).collect();
    let expected: u64 = payload.iter().map(|b| u64::from(*b)).sum();
    let uploaded = json_of(client.post(ws.url("/upload")).body(payload)).await;
    assert_eq!(uploaded, json!({ "bytes": 24 * MIB, "sum": expected }));
    // An event arrives while the stream stays open.
    let mut events = client.get(ws.url("/sse")).send().await.unwrap();
    assert_eq!(events.headers()[header::CONTENT_TYPE], "text/event-stream");
    let first = tokio::time::timeout(Duration::from_secs(10), events.chunk())
        .await
        .expect("the proxy held back a server-sent event")
        .unwrap()
        .unwrap();
    assert_eq!(&first[..], b"data: first\n\n");
    // An app that dies mid-answer cuts that answer short, and nothing else.
    let dying = client.get(ws.url("/dies")).send().await.unwrap();
    assert_eq!(dying.status(), 200);
    assert!(
        dying.bytes().await.is_err(),
        "a truncated body reads as an error"
    );
    // One that dies before answering is a 502 that says so.
    let early = client.get(ws.url("/dies-early")).send().await.unwrap();
    assert_eq!(early.status(), 502);
    let message: Value = early.json().await.unwrap();
    assert!(
        message["error"]["message"]
            .as_str()
            .unwrap()
            .contains("did not answer on its port 8888"),
        "{message}"
    );
    let after = json_of(client.get(ws.url("/still"))).await;
    assert_eq!(after["path"], format!("{}/still", ws.prefix));
}

async fn websockets_are_relayed_frame_for_frame(db: Db) {
    let ws = running_workspace(db, "sockets", "").await;
    let request = ws_request(
        &format!("ws://{}{}/ws", ws.trellis, ws.prefix),
        &[
            ("Sec-WebSocket-Protocol", "streamlit"),
            ("Origin", &format!("http://{}", ws.trellis)),
        ],
    );
    let (mut socket, response) = tokio_tungstenite::connect_async(request).await.unwrap();
    assert_eq!(response.headers()["sec-websocket-protocol"], "streamlit");
    let board = ws.services.activity();
    let uuid = ws.uuid.parse().unwrap();
    assert_eq!(board.open_sockets(uuid), 1, "an open socket is counted");
    socket.send(Message::Text("hello".into())).await.unwrap();
    assert_eq!(next(&mut socket).await, Message::Text("hello".into()));
    socket
        .send(Message::Binary(vec![0, 1, 2, 255].into()))
        .await
        .unwrap();
    assert_eq!(
        next(&mut socket).await,
        Message::Binary(vec![0, 1, 2, 255].into())
    );
    socket.send(Message::Ping(vec![7].into())).await.unwrap();
    assert_eq!(next(&mut socket).await, Message::Pong(vec![7].into()));
    let big = "x".repeat(3 * MIB);
    socket
        .send(Message::Text(big.clone().into()))
        .await
        .unwrap();
    assert_eq!(next(&mut socket).await, Message::Text(big.into()));
    socket.send(Message::Text("close-me".into())).await.unwrap();
    match next(&mut socket).await {
        Message::Close(Some(frame)) => {
            assert_eq!(u16::from(frame.code), 4001);
            assert_eq!(frame.reason.as_str(), "asked to");
        }
        other => panic!("expected the app's close frame, got {other:?}"),
    }
    drop(socket);
    // An app that dies mid-conversation ends the browser's socket too.
    let request = ws_request(
        &format!("ws://{}{}/ws", ws.trellis, ws.prefix),
        &[("Sec-WebSocket-Protocol", "streamlit")],
    );
    let (mut dying, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    dying.send(Message::Text("die".into())).await.unwrap();
    let ended = tokio::time::timeout(Duration::from_secs(10), dying.next())
        .await
        .expect("the proxy kept a dead app's socket open");
    assert!(
        !matches!(ended, Some(Ok(Message::Text(_) | Message::Binary(_)))),
        "{ended:?}"
    );
    drop(dying);
    // Everything else still answers.
    let after = get_json(&ws.url("/after-socket")).await;
    assert_eq!(after["path"], format!("{}/after-socket", ws.prefix));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while board.open_sockets(uuid) != 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the closed socket is still counted"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn next(
    socket: &mut tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
) -> Message {
    tokio::time::timeout(Duration::from_secs(10), socket.next())
        .await
        .expect("the proxied socket went silent")
        .unwrap()
        .unwrap()
}

async fn bad_addresses_and_runs_not_serving_get_clear_answers(db: Db) {
    let ws = running_workspace(db, "refusals", "").await;
    let client = no_redirects();
    let get = |url: String| {
        let client = client.clone();
        async move {
            let reply = client.get(url).send().await.unwrap();
            let status = reply.status().as_u16();
            let body: Value = reply.json().await.unwrap_or(Value::Null);
            (status, body)
        }
    };
    let base = format!("http://{}", ws.trellis);
    // A port the run does not declare: no way to reach another service.
    let other_port = ws
        .prefix
        .replace("/8888", &format!("/{}", ws.upstream.port()));
    let (status, body) = get(format!("{base}{other_port}/")).await;
    assert_eq!(status, 404, "{body}");
    assert!(
        body["error"]["message"].as_str().unwrap().contains("port"),
        "{body}"
    );
    // The run under another project.
    let (status, _) = get(format!(
        "{base}{}/",
        ws.prefix.replace("/refusals/", "/other/")
    ))
    .await;
    assert_eq!(status, 404);
    // An unknown run; a malformed uuid or port.
    let (status, _) = get(format!(
        "{base}/services/v1/default/refusals/runs/{}/8888/",
        uuid::Uuid::new_v4().simple()
    ))
    .await;
    assert_eq!(status, 404);
    let (status, body) = get(format!(
        "{base}/services/v1/default/refusals/runs/nope/8888/"
    ))
    .await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = get(format!("{base}{}", ws.prefix.replace("/8888", "/99999"))).await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]["message"].as_str().unwrap().contains("99999"),
        "{body}"
    );
    // Dot segments, plain and encoded, never reach the app.
    // (Sent verbatim: an HTTP client library would resolve them first.)
    for rest in [
        "/%2e%2e/%2e%2e/etc/passwd",
        "/a/%2E%2E/b",
        "/x%2f..%2fy",
        "/%252e%252e/",
        "/../x",
    ] {
        let (status, body) =
            super::process::request_to(&base, "GET", &format!("{}{rest}", ws.prefix), None)
                .await
                .unwrap();
        assert_eq!(status, 400, "{rest}: {body}");
        assert!(
            body["error"]["message"].as_str().unwrap().contains("`..`"),
            "{body}"
        );
    }
    // A huge header is refused before the app sees it.
    let huge = client
        .get(ws.url("/"))
        .header("X-Huge", "h".repeat(1024 * 1024))
        .send()
        .await;
    match huge {
        Ok(reply) => assert_eq!(reply.status(), 431),
        Err(error) => assert!(error.is_request() || error.is_connect(), "{error}"),
    }

    // The service ends: a page for browsers, JSON for clients, both 503.
    let stopped = client
        .post(format!(
            "{base}/api/v1/default/refusals/runs/{}/statuses",
            ws.uuid
        ))
        .json(&json!({ "condition": { "type": "stopped", "reason": "Test" } }))
        .send()
        .await
        .unwrap();
    assert_eq!(stopped.status(), 200);
    let (status, body) = get(ws.url("/lab")).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "not_serving");
    assert_eq!(body["error"]["details"]["status"], "stopped");
    let page = client
        .get(ws.url("/lab"))
        .header(header::ACCEPT, "text/html,application/xhtml+xml")
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 503);
    let html = page.text().await.unwrap();
    assert!(html.contains("is stopped"), "{html}");
    assert!(
        html.contains(&format!("href=\"/default/refusals/runs/{}\"", ws.uuid)),
        "{html}"
    );
    // The other routes still serve.
    let (status, _) = get(format!("{base}/api/v1/default/projects/list")).await;
    assert_eq!(status, 200);
}

async fn a_client_leaving_mid_upload_harms_nothing(db: Db) {
    use tokio::io::AsyncWriteExt as _;
    let ws = running_workspace(db, "leaving", "").await;
    let mut stream = tokio::net::TcpStream::connect(&ws.trellis).await.unwrap();
    let head = format!(
        "POST {}/upload HTTP/1.1\r\nHost: {}\r\nContent-Length: 104857600\r\n\r\n",
        ws.prefix, ws.trellis
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(&vec![1_u8; MIB]).await.unwrap();
    drop(stream);
    let reply = get_json(&ws.url("/after")).await;
    assert_eq!(reply["path"], format!("{}/after", ws.prefix));
}
