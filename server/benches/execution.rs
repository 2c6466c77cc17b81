//! Execution benchmarks: scheduling throughput (embedded and distributed)
//! and live-log latency over the WebSocket stream.
//!
//! Run with `cargo bench -p trellis --bench execution` (release build; needs
//! PostgreSQL, RabbitMQ and Redis on their loopback ports for the
//! distributed case). Results go to stdout as a Markdown table; record them
//! in docs/benchmarks.md. `TRELLIS_BENCH_RUNS` changes the number of jobs
//! (default 1000), `TRELLIS_BENCH_LOG_SECONDS` the length of the log test
//! (default 5).

#![allow(clippy::unwrap_used, reason = "a benchmark fails loudly")]

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::StreamExt as _;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use trellis_db::testing::TestDb;

mod support;

use support::{Api, Proc, env_number, free_port, machine, spawn};
const CONCURRENCY: u32 = 8;

fn job_spec(command: &[&str]) -> String {
    let command = serde_json::to_string(command).unwrap();
    format!(
        "version: 1.1\nkind: component\nrun:\n  kind: job\n  container:\n    image: busybox\n    command: {command}\n"
    )
}

/// What one throughput measurement found.
struct Throughput {
    runs: usize,
    seconds: f64,
    /// Mean slot time per run not spent in the run's process.
    overhead_ms: f64,
    failed: usize,
}

/// Submits `runs` trivial jobs (16 requests in flight) and waits for all
/// to finish.
async fn throughput(api: &Api, project: &str, runs: usize) -> Throughput {
    api.post(
        "/api/v1/default/projects/create",
        json!({ "name": project }),
    )
    .await;
    let spec = job_spec(&["true"]);
    let begun = Instant::now();
    let path = format!("/api/v1/default/{project}/runs");
    futures_util::stream::iter(0..runs)
        .for_each_concurrent(16, |_| {
            let (spec, path) = (spec.clone(), path.clone());
            async move {
                api.post(&path, json!({ "content": spec })).await;
            }
        })
        .await;
    let done_query = format!("{path}?limit=1&query=status:succeeded|failed|stopped");
    loop {
        let done = api.get(&done_query).await["count"].as_u64().unwrap_or(0);
        if done as usize >= runs {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let seconds = begun.elapsed().as_secs_f64();
    let mut running = 0.0;
    let mut failed = 0;
    for offset in (0..runs).step_by(1000) {
        let page = api.get(&format!("{path}?limit=1000&offset={offset}")).await;
        for run in page["results"].as_array().unwrap() {
            running += run["duration"].as_f64().unwrap_or(0.0);
            if run["status"] != "succeeded" {
                failed += 1;
            }
        }
    }
    let slot_seconds = seconds * f64::from(CONCURRENCY);
    Throughput {
        runs,
        seconds,
        overhead_ms: (slot_seconds - running).max(0.0) / runs as f64 * 1000.0,
        failed,
    }
}

async fn embedded_throughput(runs: usize) -> Throughput {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _server = spawn(
        &[
            "server",
            "--port",
            &port.to_string(),
            "--concurrency",
            &CONCURRENCY.to_string(),
            "--data-dir",
            &dir.path().to_string_lossy(),
        ],
        &[],
    );
    let api = Api::wait_healthy(format!("http://127.0.0.1:{port}")).await;
    throughput(&api, "bench", runs).await
}

async fn distributed_throughput(runs: usize) -> Throughput {
    let dir = tempfile::tempdir().unwrap();
    let db = TestDb::postgres().await;
    db.db.close().await;
    let namespace = format!("trellis-bench-{}", uuid::Uuid::new_v4().simple());
    let env = [
        ("DATABASE_URL", db.url.clone()),
        (
            "AMQP_URL",
            std::env::var("AMQP_URL")
                .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into()),
        ),
        (
            "REDIS_URL",
            std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into()),
        ),
        ("TRELLIS_NAMESPACE", namespace),
    ];
    let port = free_port();
    let data = dir.path().to_string_lossy().into_owned();
    let _server = spawn(
        &["server", "--port", &port.to_string(), "--data-dir", &data],
        &env,
    );
    let api = Api::wait_healthy(format!("http://127.0.0.1:{port}")).await;
    let _scheduler = spawn(
        &[
            "scheduler",
            "--concurrency",
            &CONCURRENCY.to_string(),
            "--data-dir",
            &data,
        ],
        &env,
    );
    let half = (CONCURRENCY / 2).to_string();
    let _workers: Vec<Proc> = ["w1", "w2"]
        .iter()
        .map(|name| {
            let dir = dir.path().join(name).to_string_lossy().into_owned();
            spawn(
                &[
                    "worker",
                    "--name",
                    name,
                    "--concurrency",
                    &half,
                    "--data-dir",
                    &dir,
                ],
                &env,
            )
        })
        .collect();
    throughput(&api, "bench", runs).await
}

/// What the log latency measurement found.
struct Latency {
    lines: usize,
    received: usize,
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
}

fn now_ns() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

/// A job prints 10,000 timestamped lines per second; each line's latency
/// is its arrival over the WebSocket minus the time the job wrote it.
async fn log_latency(seconds: usize) -> Latency {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _server = spawn(
        &[
            "server",
            "--port",
            &port.to_string(),
            "--data-dir",
            &dir.path().to_string_lossy(),
        ],
        &[],
    );
    let api = Api::wait_healthy(format!("http://127.0.0.1:{port}")).await;
    api.post("/api/v1/default/projects/create", json!({ "name": "logs" }))
        .await;
    let lines = seconds * 10_000;
    // Paced in 1 ms batches of 10 lines, each stamped as it is written.
    let script = format!(
        "import sys, time\n\
         n = {lines}\n\
         start = time.time()\n\
         for i in range(n):\n\
         \x20   due = start + i / 10000\n\
         \x20   delay = due - time.time()\n\
         \x20   if delay > 0.0005: time.sleep(delay)\n\
         \x20   sys.stdout.write('%d %d\\n' % (i, time.time_ns()))\n\
         \x20   if i % 10 == 9: sys.stdout.flush()\n\
         sys.stdout.flush()\n"
    );
    let run = api
        .post(
            "/api/v1/default/logs/runs",
            json!({ "content": job_spec(&["python3", "-u", "-c", &script]) }),
        )
        .await;
    let uuid = run["uuid"].as_str().unwrap();
    let url = format!("ws://127.0.0.1:{port}/streams/v1/default/logs/runs/{uuid}/logs");
    let (mut socket, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    let mut latencies = Vec::with_capacity(lines);
    let mut seen = vec![false; lines];
    let mut received = 0;
    while let Some(Ok(message)) = socket.next().await {
        let Message::Text(text) = message else {
            continue;
        };
        let arrived = now_ns();
        let page: Value = serde_json::from_str(&text).unwrap();
        for entry in page["logs"].as_array().unwrap() {
            let text = entry["text"].as_str().unwrap();
            let mut parts = text.split(' ');
            let (Some(index), Some(written)) = (parts.next(), parts.next()) else {
                continue;
            };
            let (Ok(index), Ok(written)) = (index.parse::<usize>(), written.parse::<u128>()) else {
                continue;
            };
            if index < lines && !seen[index] {
                seen[index] = true;
                received += 1;
            }
            latencies.push(arrived.saturating_sub(written) as f64 / 1e6);
        }
        if page["done"] == true {
            break;
        }
    }
    latencies.sort_by(f64::total_cmp);
    let at = |q: f64| {
        latencies
            .get(((latencies.len() as f64 * q) as usize).min(latencies.len().saturating_sub(1)))
            .copied()
            .unwrap_or(f64::NAN)
    };
    Latency {
        lines,
        received,
        p50_ms: at(0.50),
        p99_ms: at(0.99),
        max_ms: latencies.last().copied().unwrap_or(f64::NAN),
    }
}

fn main() {
    let runtime = support::runtime();
    let runs = env_number("TRELLIS_BENCH_RUNS", 1000);
    let log_seconds = env_number("TRELLIS_BENCH_LOG_SECONDS", 5);
    println!("machine: {}", machine());
    runtime.block_on(async {
        println!();
        println!("| scheduling ({runs} trivial jobs, concurrency {CONCURRENCY}) | runs/s | wall s | overhead per run (ms) | not succeeded |");
        println!("|---|---|---|---|---|");
        for (name, result) in [
            ("embedded (SQLite, local executor)", embedded_throughput(runs).await),
            ("distributed (PostgreSQL, RabbitMQ, Redis; 2 workers × 4)", distributed_throughput(runs).await),
        ] {
            println!(
                "| {name} | {:.1} | {:.1} | {:.1} | {} |",
                result.runs as f64 / result.seconds,
                result.seconds,
                result.overhead_ms,
                result.failed
            );
        }
        let latency = log_latency(log_seconds).await;
        println!();
        println!("| live logs (10,000 lines/s for {log_seconds} s) | lines | received | p50 ms | p99 ms | max ms |");
        println!("|---|---|---|---|---|---|");
        println!(
            "| written → received over the WebSocket | {} | {} | {:.1} | {:.1} | {:.1} |",
            latency.lines, latency.received, latency.p50_ms, latency.p99_ms, latency.max_ms
        );
    });
}
