//! The workspace proxy against the proxies people put in front of
//! notebooks: the same service reached directly, through `trellis server`,
//! through configurable-http-proxy (JupyterHub's) and through nginx, side
//! by side in one run on one machine.
//!
//! Run with `scripts/dev bench-proxy` (installs nginx from Debian and
//! configurable-http-proxy from npm, then runs `cargo bench -p trellis
//! --bench proxy`). Measures: small-request latency p50/p99 for one
//! client (what the proxy adds when nothing queues), for 32 concurrent
//! keep-alive clients at a steady pace (what users of a shared proxy
//! meet) and for 32 clients as fast as they can go (which measures
//! saturation: requests per second), 1 GiB streamed down and up three
//! times each (the median MB/s, and the proxy's peak RSS above its idle
//! RSS meanwhile), and WebSocket echo round trips p50/p99.
//! `TRELLIS_BENCH_PROXY_MIB` changes the streamed size (default 1024),
//! `TRELLIS_BENCH_PROXY_REQUESTS` the requests per client (default 1500),
//! `TRELLIS_BENCH_PROXY_PACE` the paced phase's total requests per second
//! (default 2000).

#![allow(clippy::unwrap_used, reason = "a benchmark fails loudly")]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::ws::{Message as AxumMessage, WebSocketUpgrade};
use axum::response::Response;
use axum::routing::{get, post};
use futures_util::{SinkExt as _, StreamExt as _};
use http_body_util::{BodyExt as _, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

mod support;

use support::{Api, Proc, env_number, free_port, machine, quantile, runtime, spawn};

const CLIENTS: usize = 32;
/// Transfers per direction; the median is reported (one 1 GiB transfer on
/// a shared VM varies by ±30% from run to run).
const TRANSFERS: usize = 3;
const CHUNK: usize = 256 * 1024;

/// The service behind every proxy: a small answer, a large download, an
/// upload sink and a WebSocket echo, under the workspace's prefix.
fn upstream(prefix: &str, mib: usize) -> Router {
    Router::new()
        .route(&format!("{prefix}/small"), get(|| async { "ok" }))
        .route(
            &format!("{prefix}/download"),
            get(move || async move {
                let chunk = Bytes::from(vec![7_u8; CHUNK]);
                let count = mib * 1024 * 1024 / CHUNK;
                let stream = futures_util::stream::iter(
                    (0..count).map(move |_| Ok::<_, std::io::Error>(chunk.clone())),
                );
                Body::from_stream(stream)
            }),
        )
        .route(
            &format!("{prefix}/upload"),
            post(|body: Body| async move {
                let mut stream = body.into_data_stream();
                let mut bytes = 0_u64;
                while let Some(chunk) = stream.next().await {
                    bytes += chunk.unwrap().len() as u64;
                }
                bytes.to_string()
            }),
        )
        .route(
            &format!("{prefix}/ws"),
            get(|upgrade: WebSocketUpgrade| async move {
                upgrade.on_upgrade(|mut socket| async move {
                    while let Some(Ok(message)) = socket.recv().await {
                        if let AxumMessage::Text(_) | AxumMessage::Binary(_) = message
                            && socket.send(message).await.is_err()
                        {
                            return;
                        }
                    }
                })
            }),
        )
}

/// The upstream on a runtime of its own, so the load generator does not
/// share its threads.
fn start_upstream(prefix: String, mib: usize) -> SocketAddr {
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            sender.send(listener.local_addr().unwrap()).unwrap();
            axum::serve(listener, upstream(&prefix, mib)).await.unwrap();
        });
    });
    receiver.recv().unwrap()
}

/// One proxy (or none) in front of the upstream.
struct Peer {
    name: &'static str,
    base: String,
    /// Processes whose RSS counts as the proxy's memory.
    pid: Option<u32>,
    _process: Option<Proc>,
}

#[derive(Default)]
struct Row {
    /// One client, one request at a time: what the proxy adds to a
    /// request when nothing queues.
    one_p50_ms: f64,
    one_p99_ms: f64,
    /// 32 clients sending at a steady total rate, timed from when each
    /// request was due (so a stalled proxy is not hidden by clients that
    /// wait for it).
    paced_p50_ms: f64,
    paced_p99_ms: f64,
    /// 32 clients as fast as they can: a saturated machine, where latency
    /// is queueing and requests per second is the measure.
    p50_ms: f64,
    p99_ms: f64,
    rps: f64,
    down_mbs: f64,
    up_mbs: f64,
    peak_mib: Option<f64>,
    ws_p50_ms: f64,
    ws_p99_ms: f64,
}

fn main() {
    let runtime = runtime();
    runtime.block_on(bench());
}

async fn bench() {
    let mib = env_number("TRELLIS_BENCH_PROXY_MIB", 1024);
    let per_client = env_number("TRELLIS_BENCH_PROXY_REQUESTS", 1500);
    let pace = env_number("TRELLIS_BENCH_PROXY_PACE", 2000);
    let dir = tempfile::tempdir().unwrap();

    // Trellis, tracking only; the bench registers the workspace.
    let port = free_port();
    let data = dir.path().join("trellis");
    let trellis = spawn(
        &[
            "server",
            "--executor",
            "none",
            "--port",
            &port.to_string(),
            "--data-dir",
            data.to_str().unwrap(),
        ],
        &[],
    );
    let api = Api::wait_healthy(format!("http://127.0.0.1:{port}")).await;
    api.post(
        "/api/v1/default/projects/create",
        json!({ "name": "bench" }),
    )
    .await;
    let spec = "version: 1.1\nkind: component\nrun:\n  kind: service\n  ports: [8888]\n  container:\n    image: app\n    command: [serve]\n";
    let run = api
        .post("/api/v1/default/bench/runs", json!({ "content": spec }))
        .await;
    let uuid = run["uuid"].as_str().unwrap().replace('-', "");
    let prefix = format!("/services/v1/default/bench/runs/{uuid}/8888");
    let upstream = start_upstream(prefix.clone(), mib);
    register(&data.join("trellis.db"), &uuid, upstream).await;

    let mut peers = vec![
        Peer {
            name: "direct",
            base: format!("http://{upstream}"),
            pid: None,
            _process: None,
        },
        Peer {
            name: "trellis",
            base: api.base.clone(),
            pid: Some(trellis.0.id()),
            _process: None,
        },
    ];
    match start_chp(upstream) {
        Some(peer) => peers.push(peer),
        None => {
            eprintln!("configurable-http-proxy not found: `scripts/dev bench-proxy` installs it")
        }
    }
    match start_nginx(dir.path(), upstream) {
        Some(peer) => peers.push(peer),
        None => eprintln!("nginx not found: `scripts/dev bench-proxy` installs it"),
    }
    for peer in &peers {
        wait_ready(&format!("{}{prefix}/small", peer.base)).await;
    }

    let mut rows: BTreeMap<&'static str, Row> = BTreeMap::new();
    for peer in &peers {
        let mut row = Row::default();
        (row.one_p50_ms, row.one_p99_ms) =
            one_client(&format!("{}{prefix}/small", peer.base)).await;
        (row.paced_p50_ms, row.paced_p99_ms) = paced_requests(
            &format!("{}{prefix}/small", peer.base),
            pace,
            per_client / 3,
        )
        .await;
        let (p50, p99, rps) =
            small_requests(&format!("{}{prefix}/small", peer.base), per_client).await;
        (row.p50_ms, row.p99_ms, row.rps) = (p50, p99, rps);
        let (mut downs, mut ups, mut peak) = (Vec::new(), Vec::new(), None::<f64>);
        for _ in 0..TRANSFERS {
            let (down, peak_down) = measured(
                peer.pid,
                download(&format!("{}{prefix}/download", peer.base), mib),
            )
            .await;
            let (up, peak_up) = measured(
                peer.pid,
                upload(&format!("{}{prefix}/upload", peer.base), mib),
            )
            .await;
            downs.push(down);
            ups.push(up);
            for p in [peak_down, peak_up].into_iter().flatten() {
                peak = Some(peak.map_or(p, |q| q.max(p)));
            }
        }
        downs.sort_by(f64::total_cmp);
        ups.sort_by(f64::total_cmp);
        (row.down_mbs, row.up_mbs) = (quantile(&downs, 0.5), quantile(&ups, 0.5));
        row.peak_mib = peak;
        (row.ws_p50_ms, row.ws_p99_ms) = websocket(&format!(
            "{}{prefix}/ws",
            peer.base.replace("http://", "ws://")
        ))
        .await;
        eprintln!("{}: done", peer.name);
        rows.insert(peer.name, row);
    }

    println!(
        "\nWorkspace proxy, {} ({mib} MiB streamed {TRANSFERS}× each way, median; {CLIENTS} clients paced at {pace} req/s in all, then {CLIENTS} clients × {per_client} requests unpaced)\n",
        machine()
    );
    println!(
        "| path | 1 client p50 ms | 1 client p99 ms | 32 paced p50 ms | 32 paced p99 ms | 32 unpaced p50 ms | 32 unpaced p99 ms | req/s | down MB/s | up MB/s | peak RSS above idle, MiB | WS echo p50 ms | WS echo p99 ms |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for peer in &peers {
        let r = &rows[peer.name];
        println!(
            "| {} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} | {:.0} | {:.0} | {:.0} | {} | {:.3} | {:.3} |",
            peer.name,
            r.one_p50_ms,
            r.one_p99_ms,
            r.paced_p50_ms,
            r.paced_p99_ms,
            r.p50_ms,
            r.p99_ms,
            r.rps,
            r.down_mbs,
            r.up_mbs,
            r.peak_mib.map_or("–".to_owned(), |m| format!("{m:.1}")),
            r.ws_p50_ms,
            r.ws_p99_ms
        );
    }
    let direct = &rows["direct"];
    let t = &rows["trellis"];
    println!(
        "\nTrellis adds {:.3} ms at p99 over direct with 32 paced clients (goal ≤ 1 ms), {:.3} ms with one client, {:.3} ms with 32 unpaced (saturated) clients.",
        t.paced_p99_ms - direct.paced_p99_ms,
        t.one_p99_ms - direct.one_p99_ms,
        t.p99_ms - direct.p99_ms
    );
    for other in ["chp", "nginx"] {
        if let Some(o) = rows.get(other) {
            println!(
                "Trellis / {other}: download {:.2}×, upload {:.2}×, p99 {:.2}×, WebSocket p99 {:.2}×",
                t.down_mbs / o.down_mbs,
                t.up_mbs / o.up_mbs,
                t.p99_ms / o.p99_ms,
                t.ws_p99_ms / o.ws_p99_ms
            );
        }
    }
}

/// Takes the run to `running` and records where it listens, as an
/// executor would.
async fn register(db_path: &Path, uuid: &str, upstream: SocketAddr) {
    let db = trellis_db::Db::connect_sqlite(db_path).await.unwrap();
    let services = trellis_services::Services::new(db);
    let mut handle = services
        .runs()
        .handle(uuid.parse().unwrap())
        .await
        .unwrap()
        .unwrap();
    for status in ["compiled", "queued", "scheduled", "starting", "running"] {
        handle
            .advance(status.parse().unwrap(), "Bench", None)
            .await
            .unwrap();
    }
    handle
        .record_endpoints(&BTreeMap::from([(8888, upstream.to_string())]))
        .await
        .unwrap();
}

fn start_chp(upstream: SocketAddr) -> Option<Peer> {
    let home = std::env::var("HOME").ok()?;
    let chp = std::env::var("TRELLIS_CHP")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(home).join(".cache/trellis/chp/node_modules/.bin/configurable-http-proxy")
        });
    if !chp.exists() {
        return None;
    }
    let port = free_port();
    let child = Command::new(chp)
        .args([
            "--ip",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "--api-ip",
            "127.0.0.1",
            "--api-port",
            &free_port().to_string(),
            "--default-target",
            &format!("http://{upstream}"),
            "--log-level",
            "error",
        ])
        .env("CONFIGPROXY_AUTH_TOKEN", "bench")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .ok()?;
    Some(Peer {
        name: "chp",
        base: format!("http://127.0.0.1:{port}"),
        pid: Some(child.id()),
        _process: Some(Proc(child)),
    })
}

/// nginx as a reverse proxy configured like Trellis: keep-alive upstream,
/// WebSocket upgrades, no buffering of requests or responses.
fn start_nginx(dir: &Path, upstream: SocketAddr) -> Option<Peer> {
    let nginx = ["/usr/sbin/nginx", "/usr/bin/nginx"]
        .into_iter()
        .find(|p| Path::new(p).exists())?;
    let port = free_port();
    let root = dir.join("nginx");
    std::fs::create_dir_all(&root).unwrap();
    let conf = format!(
        "daemon off;\nworker_processes 2;\npid {root}/nginx.pid;\nerror_log stderr error;\nuser root;\n\
         events {{ worker_connections 1024; }}\n\
         http {{\n  access_log off;\n  client_body_temp_path {root}/body; proxy_temp_path {root}/proxy;\n\
           fastcgi_temp_path {root}/fcgi; uwsgi_temp_path {root}/uwsgi; scgi_temp_path {root}/scgi;\n\
           client_max_body_size 0;\n\
           map $http_upgrade $connection_upgrade {{ default upgrade; '' ''; }}\n\
           upstream app {{ server {upstream}; keepalive 64; }}\n\
           server {{\n    listen 127.0.0.1:{port};\n    location / {{\n      proxy_pass http://app;\n\
               proxy_http_version 1.1;\n      proxy_set_header Upgrade $http_upgrade;\n\
               proxy_set_header Connection $connection_upgrade;\n      proxy_set_header Host $host;\n\
               proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;\n\
               proxy_buffering off;\n      proxy_request_buffering off;\n      proxy_read_timeout 1h;\n    }}\n  }}\n}}\n",
        root = root.display()
    );
    let path = root.join("nginx.conf");
    std::fs::write(&path, conf).unwrap();
    let child = Command::new(nginx)
        .args(["-c", path.to_str().unwrap(), "-p", root.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .ok()?;
    Some(Peer {
        name: "nginx",
        base: format!("http://127.0.0.1:{port}"),
        pid: Some(child.id()),
        _process: Some(Proc(child)),
    })
}

async fn wait_ready(url: &str) {
    let client = http_client();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(response) = client.get(url.parse().unwrap()).await
            && response.status().is_success()
        {
            return;
        }
        assert!(Instant::now() < deadline, "{url} never answered");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn http_client() -> Client<HttpConnector, Empty<Bytes>> {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(CLIENTS * 2)
        .build(connector)
}

/// `CLIENTS` keep-alive clients, `per_client` requests each, after a
/// warm-up: latency quantiles (ms) and requests per second.
async fn small_requests(url: &str, per_client: usize) -> (f64, f64, f64) {
    let (all, seconds) = clients(url, per_client, None).await;
    (
        quantile(&all, 0.5),
        quantile(&all, 0.99),
        all.len() as f64 / seconds,
    )
}

/// `CLIENTS` keep-alive clients sending `per_client` requests each at a
/// steady total of `rate` requests per second: p50 and p99 in ms.
async fn paced_requests(url: &str, rate: usize, per_client: usize) -> (f64, f64) {
    let every = Duration::from_secs_f64(CLIENTS as f64 / rate.max(1) as f64);
    let (all, _) = clients(url, per_client, Some(every)).await;
    (quantile(&all, 0.5), quantile(&all, 0.99))
}

/// `CLIENTS` keep-alive clients, `per_client` small requests each, after a
/// warm-up: every latency in ms (sorted) and the seconds they took.
///
/// Unpaced, each client sends its next request as soon as the last is
/// answered. Paced, each sends one every `pace`, on its own schedule
/// (offset from the others); a request held back by a slow answer is timed
/// from when it was due, not from when it was sent, so a proxy that stalls
/// shows it even though its client waited (no coordinated omission), while
/// one the timer woke late for (tokio's timer has a 1 ms grain) is timed
/// from when it was sent, so the timer's slack is not counted.
async fn clients(url: &str, per_client: usize, pace: Option<Duration>) -> (Vec<f64>, f64) {
    let client = http_client();
    let uri: hyper::Uri = url.parse().unwrap();
    for _ in 0..200 {
        let response = client.get(uri.clone()).await.unwrap();
        response.into_body().collect().await.unwrap();
    }
    let begun = tokio::time::Instant::now();
    let tasks: Vec<_> = (0..CLIENTS)
        .map(|i| {
            let (client, uri) = (client.clone(), uri.clone());
            tokio::spawn(async move {
                let mut latencies = Vec::with_capacity(per_client);
                for n in 0..per_client {
                    let start = match pace {
                        None => tokio::time::Instant::now(),
                        Some(every) => {
                            let due =
                                begun + every.mul_f64(i as f64 / CLIENTS as f64) + every * n as u32;
                            if tokio::time::Instant::now() < due {
                                tokio::time::sleep_until(due).await;
                                tokio::time::Instant::now()
                            } else {
                                due
                            }
                        }
                    };
                    let response = client.get(uri.clone()).await.unwrap();
                    assert!(response.status().is_success());
                    response.into_body().collect().await.unwrap();
                    latencies.push(start.elapsed().as_secs_f64() * 1000.0);
                }
                latencies
            })
        })
        .collect();
    let mut all = Vec::with_capacity(CLIENTS * per_client);
    for task in tasks {
        all.extend(task.await.unwrap());
    }
    let seconds = begun.elapsed().as_secs_f64();
    all.sort_by(f64::total_cmp);
    (all, seconds)
}

/// 5000 sequential requests by one keep-alive client after 200 warm-up;
/// p50 and p99 in ms.
async fn one_client(url: &str) -> (f64, f64) {
    let client = http_client();
    let uri: hyper::Uri = url.parse().unwrap();
    let mut latencies = Vec::with_capacity(5000);
    for i in 0..5200 {
        let start = Instant::now();
        let response = client.get(uri.clone()).await.unwrap();
        response.into_body().collect().await.unwrap();
        if i >= 200 {
            latencies.push(start.elapsed().as_secs_f64() * 1000.0);
        }
    }
    latencies.sort_by(f64::total_cmp);
    (quantile(&latencies, 0.5), quantile(&latencies, 0.99))
}

/// Streams `mib` MiB down; MB/s.
async fn download(url: &str, mib: usize) -> f64 {
    let client = http_client();
    let begun = Instant::now();
    let response = client.get(url.parse().unwrap()).await.unwrap();
    let mut body = response.into_body();
    let mut bytes = 0_usize;
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame.unwrap().into_data() {
            bytes += data.len();
        }
    }
    assert_eq!(bytes, mib * 1024 * 1024, "the download was cut short");
    bytes as f64 / 1e6 / begun.elapsed().as_secs_f64()
}

/// Streams `mib` MiB up; MB/s.
async fn upload(url: &str, mib: usize) -> f64 {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let client: Client<HttpConnector, Body> =
        Client::builder(TokioExecutor::new()).build(connector);
    let chunk = Bytes::from(vec![9_u8; CHUNK]);
    let count = mib * 1024 * 1024 / CHUNK;
    let stream =
        futures_util::stream::iter((0..count).map(move |_| Ok::<_, std::io::Error>(chunk.clone())));
    let request = hyper::Request::post(url)
        .body(Body::from_stream(stream))
        .unwrap();
    let begun = Instant::now();
    let response: Response<hyper::body::Incoming> = client.request(request).await.unwrap();
    let text = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(
        String::from_utf8_lossy(&text),
        (mib * 1024 * 1024).to_string(),
        "the upload was cut short"
    );
    (mib * 1024 * 1024) as f64 / 1e6 / begun.elapsed().as_secs_f64()
}

/// Runs `work` while sampling the RSS of `pid` and its children every
/// 20 ms; the result and the peak above the RSS before it began (MiB).
async fn measured<T>(
    pid: Option<u32>,
    work: impl std::future::Future<Output = T>,
) -> (T, Option<f64>) {
    let Some(pid) = pid else {
        return (work.await, None);
    };
    let idle = tree_rss_kib(pid);
    let peak = Arc::new(AtomicU64::new(idle));
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (peak, done) = (peak.clone(), done.clone());
        tokio::spawn(async move {
            while !done.load(Ordering::Relaxed) {
                peak.fetch_max(tree_rss_kib(pid), Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    let result = work.await;
    done.store(true, Ordering::Relaxed);
    sampler.await.unwrap();
    let above = peak.load(Ordering::Relaxed).saturating_sub(idle);
    (result, Some(above as f64 / 1024.0))
}

/// RSS of `pid` and its direct children (nginx's workers), in KiB.
fn tree_rss_kib(pid: u32) -> u64 {
    let rss = |pid: u32| {
        std::fs::read_to_string(format!("/proc/{pid}/status"))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("VmRSS:"))
                    .and_then(|l| l.split_whitespace().nth(1))
                    .and_then(|v| v.parse::<u64>().ok())
            })
            .unwrap_or(0)
    };
    let children: u64 = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|c| c.parse().ok())
        .map(rss)
        .sum();
    rss(pid) + children
}

/// 3000 echo round trips of a 64-byte text frame; p50 and p99 in ms.
async fn websocket(url: &str) -> (f64, f64) {
    let (mut socket, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    let text = "x".repeat(64);
    let mut latencies = Vec::with_capacity(3000);
    for i in 0..3200 {
        let start = Instant::now();
        socket
            .send(Message::Text(text.clone().into()))
            .await
            .unwrap();
        loop {
            match socket.next().await.unwrap().unwrap() {
                Message::Text(_) => break,
                _ => continue,
            }
        }
        if i >= 200 {
            latencies.push(start.elapsed().as_secs_f64() * 1000.0);
        }
    }
    latencies.sort_by(f64::total_cmp);
    (quantile(&latencies, 0.5), quantile(&latencies, 0.99))
}
