//! Dashboard analytics benchmark: what the browser waits for on a big
//! project, measured at the server, on the embedded default (SQLite) and on
//! PostgreSQL.
//!
//! Run with `cargo bench -p trellis --bench analytics` (release build; it
//! needs PostgreSQL on its loopback port). For each database it seeds a
//! project of `TRELLIS_BENCH_RUNS` (default 100,000) finished runs with
//! params and metric summaries, one run with a `loss` series of
//! `TRELLIS_BENCH_POINTS` (default 1,000,000) points logged through the
//! normal ingest path (1000 batches of 1000), and 100 runs of 10,000 points
//! each; then starts `trellis server` on it and times, over HTTP:
//!
//! - the project page (server-rendered HTML, first page of 50 runs) with a
//!   PQL filter and a sort on a metric, and without either;
//! - the 1M-point chart (`metrics/series`, 800 points, as the Metrics tab
//!   asks) and a zoom into 10,000 steps of it;
//! - a compare of 100 runs × 10,000 points (`metrics/compare`, 800 points
//!   each).
//!
//! `TRELLIS_BENCH_DATABASES=sqlite` (or `postgres`) runs one database only;
//! `TRELLIS_BENCH_KEEP_DB=1` keeps the PostgreSQL database afterwards and
//! prints its URL, to read query plans; `TRELLIS_BENCH_SAMPLES=1` prints
//! every sample in the order taken, to tell a one-off stall from a slow
//! query.
//! Results print as a Markdown table; record them in docs/benchmarks.md.
//! The goals (issue 6): runs page p99 < 100 ms, 1M-point chart p99 <
//! 150 ms, compare < 1 s.

#![allow(clippy::unwrap_used, reason = "a benchmark fails loudly")]

mod support;

use std::time::Instant;

use chrono::Utc;
use support::{Api, Proc, env_number, free_port, machine, quantile, runtime, spawn};
use trellis_db::testing::TestDb;
use trellis_db::tracking::{Batch, NewPoint};
use trellis_db::{Db, projects, runs, seed};
use trellis_domain::lifecycle::RunStatus;
use uuid::Uuid;

const SAMPLES: usize = 200;
const COMPARE_RUNS: usize = 100;
const COMPARE_POINTS: usize = 10_000;

struct Seeded {
    long_run: Uuid,
    compared: Vec<Uuid>,
}

async fn new_run(db: &Db, project_id: i64, name: &str) -> (i64, Uuid) {
    let inputs = serde_json::Map::new();
    let row = runs::insert(
        db,
        &runs::NewRun {
            pipeline: None,
            uuid: Uuid::new_v4(),
            project_id,
            owner: "bench",
            project: "big",
            name: Some(name),
            description: "",
            tags: &[],
            kind: None,
            content: "",
            queue: None,
            inputs: &inputs,
            compiled: None,
            original: None,
            status: RunStatus::Running,
            now: Utc::now(),
        },
    )
    .await
    .unwrap();
    (row.id, row.uuid)
}

/// Logs `points` points of `loss` to run `id` through the ingest path.
async fn log_series(db: &Db, id: i64, points: usize, salt: u64) {
    let t0 = Utc::now().timestamp_millis() - points as i64;
    for start in (0..points).step_by(1000) {
        let metrics = (start..(start + 1000).min(points))
            .map(|step| NewPoint {
                key: "loss".into(),
                step: step as i64,
                timestamp: t0 + step as i64,
                // A decaying curve with noise and rare spikes.
                value: 2.0 / (1.0 + step as f64 / 5e4)
                    + 0.05 * seed::fraction(step as u64, salt)
                    + if step % 99_991 == 7 { 3.0 } else { 0.0 },
            })
            .collect();
        let batch = Batch {
            metrics,
            ..Batch::default()
        };
        trellis_db::tracking::log_batch(db, id, &batch, Utc::now())
            .await
            .unwrap()
            .unwrap();
    }
}

async fn seed_project(db: &Db, runs_count: usize, points: usize) -> Seeded {
    let started = Instant::now();
    let project = projects::insert(
        db,
        &projects::NewProject {
            uuid: Uuid::new_v4(),
            owner: "bench",
            name: "big",
            description: "",
            tags: &[],
            experiment_name: None,
            now: Utc::now(),
        },
    )
    .await
    .unwrap();
    seed::runs(db, project.id, runs_count, Utc::now())
        .await
        .unwrap();
    eprintln!("  {runs_count} runs seeded in {:.1?}", started.elapsed());
    let started = Instant::now();
    let (id, long_run) = new_run(db, project.id, "long").await;
    log_series(db, id, points, 1).await;
    eprintln!("  {points} points logged in {:.1?}", started.elapsed());
    let started = Instant::now();
    let mut compared = Vec::with_capacity(COMPARE_RUNS);
    for i in 0..COMPARE_RUNS {
        let (id, uuid) = new_run(db, project.id, &format!("cmp-{i}")).await;
        log_series(db, id, COMPARE_POINTS, i as u64 + 2).await;
        compared.push(uuid);
    }
    eprintln!(
        "  {COMPARE_RUNS} × {COMPARE_POINTS} points logged in {:.1?}",
        started.elapsed()
    );
    Seeded { long_run, compared }
}

/// Milliseconds of `SAMPLES` sequential GETs of `path` (after two warm-up
/// requests), in the order taken; each response must be a success.
async fn time_get(api: &Api, path: &str, samples: usize) -> Vec<f64> {
    let url = format!("{}{path}", api.base);
    for _ in 0..2 {
        api.http
            .get(&url)
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
    }
    let mut out = Vec::with_capacity(samples);
    for _ in 0..samples {
        let started = Instant::now();
        let response = api.http.get(&url).send().await.unwrap();
        assert!(
            response.status().is_success(),
            "{path}: {}",
            response.status()
        );
        let body = response.bytes().await.unwrap();
        out.push(started.elapsed().as_secs_f64() * 1000.0);
        assert!(!body.is_empty());
    }
    out
}

struct Row {
    database: &'static str,
    case: &'static str,
    times: Vec<f64>,
}

async fn bench(database: &'static str, postgres: bool, rows: &mut Vec<Row>) {
    let runs_count = env_number("TRELLIS_BENCH_RUNS", 100_000);
    let points = env_number("TRELLIS_BENCH_POINTS", 1_000_000);
    eprintln!("{database}:");
    let data = tempfile::tempdir().unwrap();
    let (pg, mut env) = if postgres {
        let db = TestDb::postgres().await;
        let url = db.url.clone();
        (Some(db), vec![("DATABASE_URL", url)])
    } else {
        (None, Vec::new())
    };
    let seeded = match &pg {
        Some(test_db) => {
            let seeded = seed_project(&test_db.db, runs_count, points).await;
            // What autovacuum would do within a minute of the load.
            seed::analyze(&test_db.db).await.unwrap();
            seeded
        }
        None => {
            let db = Db::connect_sqlite(&data.path().join("trellis.db"))
                .await
                .unwrap();
            db.migrate().await.unwrap();
            let seeded = seed_project(&db, runs_count, points).await;
            db.close().await;
            seeded
        }
    };
    env.push(("RUST_LOG", "error".to_owned()));
    let port = free_port().to_string();
    let _server: Proc = spawn(
        &[
            "server",
            "--port",
            &port,
            "--executor",
            "none",
            "--system-metrics-secs",
            "0",
            "--data-dir",
            data.path().to_str().unwrap(),
        ],
        &env,
    );
    let api = Api::wait_healthy(format!("http://127.0.0.1:{port}")).await;
    let filtered = "/bench/big?query=metrics.loss%3A%3C0.5%2C%20params.model%3Acnn&sort=-metrics.acc&columns=params.lr%2Cmetrics.loss%2Cmetrics.acc";
    let cases: Vec<(&'static str, String, usize)> = vec![
        (
            "runs page, PQL filter + metric sort",
            filtered.to_owned(),
            SAMPLES,
        ),
        ("runs page, newest first", "/bench/big".to_owned(), SAMPLES),
        (
            "1M-point chart (800 points)",
            format!(
                "/api/v1/bench/big/runs/{}/metrics/series?key=loss&points=800",
                seeded.long_run
            ),
            SAMPLES,
        ),
        (
            "zoom: 10k steps of it (full resolution)",
            format!(
                "/api/v1/bench/big/runs/{}/metrics/series?key=loss&points=10000&min_step=500000&max_step=509999",
                seeded.long_run
            ),
            SAMPLES,
        ),
        (
            "compare 100 runs × 10k points",
            format!(
                "/api/v1/bench/big/metrics/compare?key=loss&points=800&runs={}",
                seeded
                    .compared
                    .iter()
                    .map(|u| u.simple().to_string())
                    .collect::<Vec<_>>()
                    .join(",")
            ),
            10,
        ),
    ];
    for (case, path, samples) in cases {
        let mut times = time_get(&api, &path, samples).await;
        if std::env::var_os("TRELLIS_BENCH_SAMPLES").is_some() {
            eprintln!("  {case}: every sample in order (ms): {times:.1?}");
        }
        times.sort_by(f64::total_cmp);
        eprintln!(
            "  {case}: p50 {:.1} ms, p99 {:.1} ms",
            quantile(&times, 0.5),
            quantile(&times, 0.99)
        );
        rows.push(Row {
            database,
            case,
            times,
        });
    }
    match pg {
        // To read plans afterwards (`EXPLAIN ANALYZE` in psql).
        Some(db) if std::env::var_os("TRELLIS_BENCH_KEEP_DB").is_some() => {
            eprintln!("  kept database: {}", db.url);
            std::mem::forget(db);
        }
        other => drop(other),
    }
}

fn main() {
    runtime().block_on(async {
        let mut rows = Vec::new();
        let only = std::env::var("TRELLIS_BENCH_DATABASES").unwrap_or_default();
        if only.is_empty() || only.contains("sqlite") {
            bench("SQLite", false, &mut rows).await;
        }
        if only.is_empty() || only.contains("postgres") {
            bench("PostgreSQL", true, &mut rows).await;
        }
        println!(
            "\nAnalytics benchmark, {} runs, {} points, on {}\n",
            env_number("TRELLIS_BENCH_RUNS", 100_000),
            env_number("TRELLIS_BENCH_POINTS", 1_000_000),
            machine()
        );
        println!("| database | request | p50 ms | p99 ms | max ms |");
        println!("|---|---|---|---|---|");
        for row in rows {
            println!(
                "| {} | {} | {:.1} | {:.1} | {:.1} |",
                row.database,
                row.case,
                quantile(&row.times, 0.5),
                quantile(&row.times, 0.99),
                row.times.last().copied().unwrap_or(f64::NAN)
            );
        }
    });
}
