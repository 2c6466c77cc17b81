//! Tracking benchmarks against a reference `mlflow server`, side by side on
//! this machine in one run: MLflow `log-batch` ingest from concurrent
//! clients, and `runs/search` over a seeded experiment.
//!
//! Run with `cargo bench -p trellis --bench tracking` (release build). It
//! needs PostgreSQL on its loopback port and the mlflow virtualenv that
//! `scripts/dev setup` installs (`TRELLIS_MLFLOW_VENV`, default
//! `~/.cache/trellis/mlflow-venv`). Both servers get the same requests from
//! the same client (reqwest, over the MLflow REST API), so the only
//! difference is the server. `TRELLIS_BENCH_BATCHES` (default 10) is the
//! number of 1000-point batches each of the 8 clients sends;
//! `TRELLIS_BENCH_SEARCH_RUNS` (default 2000) the size of the searched
//! experiment. Results are printed as Markdown tables; record them in
//! docs/benchmarks.md.

#![allow(clippy::unwrap_used, reason = "a benchmark fails loudly")]

mod support;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use support::{Api, Proc, env_number, free_port, machine, quantile, spawn};
use trellis_db::testing::TestDb;

const CLIENTS: usize = 8;
const POINTS_PER_BATCH: usize = 1000;
const METRICS_PER_RUN: usize = 20;
const SEARCHES: usize = 20;

fn venv() -> PathBuf {
    std::env::var_os("TRELLIS_MLFLOW_VENV").map_or_else(
        || {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
                .join(".cache/trellis/mlflow-venv")
        },
        PathBuf::from,
    )
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// A server under test and what keeps it alive.
struct Target {
    name: String,
    api: Api,
    _process: Proc,
    _data: tempfile::TempDir,
    _db: Option<TestDb>,
}

async fn trellis(name: &str, postgres: bool) -> Target {
    let data = tempfile::tempdir().unwrap();
    let port = free_port().to_string();
    let db = if postgres {
        Some(TestDb::postgres().await)
    } else {
        None
    };
    let mut env = Vec::new();
    if let Some(db) = &db {
        env.push(("DATABASE_URL", db.url.clone()));
    }
    let process = spawn(
        &[
            "server",
            "--port",
            &port,
            "--executor",
            "none",
            "--data-dir",
            data.path().to_str().unwrap(),
        ],
        &env,
    );
    let api = Api::wait_healthy(format!("http://127.0.0.1:{port}")).await;
    Target {
        name: name.to_owned(),
        api,
        _process: process,
        _data: data,
        _db: db,
    }
}

async fn mlflow(name: &str, postgres: bool) -> Target {
    let data = tempfile::tempdir().unwrap();
    let port = free_port().to_string();
    // MLflow needs an empty database (its `runs` table would meet
    // Trellis's), so it gets its own, made with psql.
    let store = if postgres {
        let admin = trellis_db::testing::postgres_admin_url();
        let name = format!("mlflow_bench_{}", std::process::id());
        for sql in [
            format!("DROP DATABASE IF EXISTS {name}"),
            format!("CREATE DATABASE {name}"),
        ] {
            let status = Command::new("psql")
                .args([admin.as_str(), "-q", "-c", &sql])
                .status()
                .unwrap();
            assert!(status.success(), "psql {sql}");
        }
        let base = admin
            .rsplit_once('/')
            .map_or(admin.as_str(), |(base, _)| base);
        format!(
            "{}/{name}",
            base.replacen("postgres://", "postgresql+psycopg2://", 1)
        )
    } else {
        format!("sqlite:///{}", data.path().join("mlflow.db").display())
    };
    let db = None;
    let artifacts = data.path().join("artifacts");
    let child = Command::new(venv().join("bin/mlflow"))
        .args([
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            &port,
            "--backend-store-uri",
            &store,
        ])
        .arg("--artifacts-destination")
        .arg(&artifacts)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start `mlflow server` from the mlflow virtualenv (run scripts/dev setup)");
    let process = Proc(child);
    let api = Api::wait_healthy_at(format!("http://127.0.0.1:{port}"), "/health").await;
    Target {
        name: name.to_owned(),
        api,
        _process: process,
        _data: data,
        _db: db,
    }
}

impl Api {
    async fn mlflow(&self, path: &str, body: Value) -> (f64, Value) {
        let started = Instant::now();
        let response = self
            .http
            .post(format!("{}/api/2.0/mlflow/{path}", self.base))
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        assert!(status.is_success(), "{path}: {status} {body}");
        (started.elapsed().as_secs_f64() * 1000.0, body)
    }

    async fn experiment(&self, name: &str) -> String {
        let (_, created) = self
            .mlflow("experiments/create", json!({ "name": name }))
            .await;
        created["experiment_id"].as_str().unwrap().to_owned()
    }

    async fn run(&self, experiment: &str) -> String {
        let (_, created) = self
            .mlflow(
                "runs/create",
                json!({ "experiment_id": experiment, "start_time": now_ms() }),
            )
            .await;
        created["run"]["info"]["run_id"]
            .as_str()
            .unwrap()
            .to_owned()
    }
}

struct Ingest {
    points_per_second: f64,
    p50_ms: f64,
    p99_ms: f64,
}

/// 8 clients, each logging `batches` batches of 1000 points to its own run.
async fn ingest(api: &Api, batches: usize) -> Ingest {
    let experiment = api.experiment("ingest").await;
    let mut runs = Vec::new();
    for _ in 0..CLIENTS {
        runs.push(api.run(&experiment).await);
    }
    let started = Instant::now();
    let mut clients = Vec::new();
    for run in runs {
        let api = Api {
            http: api.http.clone(),
            base: api.base.clone(),
        };
        clients.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(batches);
            for batch in 0..batches {
                let metrics: Vec<Value> = (0..POINTS_PER_BATCH)
                    .map(|i| {
                        let step = batch * POINTS_PER_BATCH + i;
                        json!({ "key": format!("m{}", i % 10), "value": (step as f64).sin(), "timestamp": now_ms(), "step": step })
                    })
                    .collect();
                let (ms, _) = api.mlflow("runs/log-batch", json!({ "run_id": run, "metrics": metrics })).await;
                latencies.push(ms);
            }
            latencies
        }));
    }
    let mut latencies = Vec::new();
    for client in clients {
        latencies.extend(client.await.unwrap());
    }
    let seconds = started.elapsed().as_secs_f64();
    latencies.sort_by(f64::total_cmp);
    Ingest {
        points_per_second: (CLIENTS * batches * POINTS_PER_BATCH) as f64 / seconds,
        p50_ms: quantile(&latencies, 0.5),
        p99_ms: quantile(&latencies, 0.99),
    }
}

struct Search {
    filtered_p50_ms: f64,
    filtered_p99_ms: f64,
    all_p50_ms: f64,
    all_p99_ms: f64,
    seed_seconds: f64,
}

/// Seeds `runs` runs with 20 metrics and 2 params each (8 clients), then
/// times two searches: a filter and an order returning the top 100, and
/// every run (pages of 1000).
async fn search(api: &Api, runs: usize) -> Search {
    let experiment = api.experiment("search").await;
    let started = Instant::now();
    let mut seeders = Vec::new();
    for client in 0..CLIENTS {
        let api = Api {
            http: api.http.clone(),
            base: api.base.clone(),
        };
        let experiment = experiment.clone();
        seeders.push(tokio::spawn(async move {
            for i in (client..runs).step_by(CLIENTS) {
                let run = api.run(&experiment).await;
                let metrics: Vec<Value> = (0..METRICS_PER_RUN)
                    .map(|m| json!({ "key": format!("m{m}"), "value": ((i * 31 + m * 7) % 1000) as f64 / 1000.0, "timestamp": now_ms(), "step": 0 }))
                    .collect();
                let params = json!([{ "key": "model", "value": if i % 2 == 0 { "cnn" } else { "mlp" } }, { "key": "seed", "value": i.to_string() }]);
                api.mlflow("runs/log-batch", json!({ "run_id": run, "metrics": metrics, "params": params })).await;
            }
        }));
    }
    for seeder in seeders {
        seeder.await.unwrap();
    }
    let seed_seconds = started.elapsed().as_secs_f64();
    let mut filtered = Vec::new();
    let mut all = Vec::new();
    for _ in 0..SEARCHES {
        let (ms, body) = api
            .mlflow(
                "runs/search",
                json!({ "experiment_ids": [experiment], "filter": "metrics.m3 > 0.5 and params.model = 'cnn'", "order_by": ["metrics.m7 DESC"], "max_results": 100 }),
            )
            .await;
        assert_eq!(
            body["runs"].as_array().map(Vec::len),
            Some(100),
            "the filtered search found too few runs"
        );
        filtered.push(ms);
        let mut token: Option<String> = None;
        let mut found = 0;
        let started = Instant::now();
        loop {
            let mut request = json!({ "experiment_ids": [experiment], "max_results": 1000 });
            if let Some(token) = &token {
                request["page_token"] = json!(token);
            }
            let (_, body) = api.mlflow("runs/search", request).await;
            found += body["runs"].as_array().map_or(0, Vec::len);
            token = body["next_page_token"]
                .as_str()
                .filter(|t| !t.is_empty())
                .map(str::to_owned);
            if token.is_none() {
                break;
            }
        }
        assert_eq!(found, runs, "listing every run found {found}");
        all.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    filtered.sort_by(f64::total_cmp);
    all.sort_by(f64::total_cmp);
    Search {
        filtered_p50_ms: quantile(&filtered, 0.5),
        filtered_p99_ms: quantile(&filtered, 0.99),
        all_p50_ms: quantile(&all, 0.5),
        all_p99_ms: quantile(&all, 0.99),
        seed_seconds,
    }
}

fn main() {
    let runtime = support::runtime();
    let batches = env_number("TRELLIS_BENCH_BATCHES", 10);
    let runs = env_number("TRELLIS_BENCH_SEARCH_RUNS", 2000);
    let mlflow_version = Command::new(venv().join("bin/python"))
        .args(["-c", "import mlflow; print(mlflow.__version__)"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    println!("machine: {}; mlflow {mlflow_version}", machine());
    runtime.block_on(async {
        let mut rows = Vec::new();
        for (backend, postgres) in [("SQLite", false), ("PostgreSQL", true)] {
            // One server at a time, so they never compete for the 2 cores.
            for server in ["Trellis", "MLflow"] {
                let name = format!("{server} ({backend})");
                let target = if server == "Trellis" {
                    trellis(&name, postgres).await
                } else {
                    mlflow(&name, postgres).await
                };
                let ingest = ingest(&target.api, batches).await;
                let search = search(&target.api, runs).await;
                eprintln!("{}: done", target.name);
                rows.push((backend, server, target.name.clone(), ingest, search));
            }
        }
        println!();
        println!("| server | log-batch points/s ({CLIENTS} clients × {batches} × {POINTS_PER_BATCH}) | batch p50 ms | batch p99 ms | search: filter + order, top 100 (p50 / p99 ms) | search: all {runs} runs (p50 / p99 ms) | seeding {runs} runs (s) |");
        println!("|---|---|---|---|---|---|---|");
        for (_, _, name, i, s) in &rows {
            println!(
                "| {name} | {:.0} | {:.1} | {:.1} | {:.1} / {:.1} | {:.1} / {:.1} | {:.1} |",
                i.points_per_second, i.p50_ms, i.p99_ms, s.filtered_p50_ms, s.filtered_p99_ms, s.all_p50_ms, s.all_p99_ms, s.seed_seconds
            );
        }
        println!();
        println!("| backend | ingest Trellis ÷ MLflow (points/s) | filtered search MLflow ÷ Trellis (p50) | full search MLflow ÷ Trellis (p50) |");
        println!("|---|---|---|---|");
        for backend in ["SQLite", "PostgreSQL"] {
            let find = |server: &str| rows.iter().find(|r| r.0 == backend && r.1 == server).unwrap();
            let (t, m) = (find("Trellis"), find("MLflow"));
            println!(
                "| {backend} | {:.1}× | {:.1}× | {:.1}× |",
                t.3.points_per_second / m.3.points_per_second,
                m.4.filtered_p50_ms / t.4.filtered_p50_ms,
                m.4.all_p50_ms / t.4.all_p50_ms
            );
        }
    });
}
