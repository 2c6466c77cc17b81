//! `Scheduler::tick`, one step at a time, against a real database with an
//! injected clock (in the style of meilisearch's index scheduler tests):
//! capacity, queue priorities, stop, lost heartbeats and unknown queues.
//! Runs are dispatched to the work queue (the outbox), so no process is
//! spawned and each tick's effect is exactly what it returns and stores.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use axum::http::StatusCode;
use chrono::DateTime;
use serde_json::json;
use tokio_util::sync::CancellationToken;
use trellis_db::{Db, test_on_both_databases};
use trellis_domain::lifecycle::RunStatus;
use trellis_domain::scheduling::QueueLimits;
use trellis_services::Services;
use trellis_services::scheduler::{Scheduler, SchedulerConfig};
use uuid::Uuid;

use super::App;

/// A clock the test moves by hand, in microseconds since the epoch.
struct TestClock(Arc<AtomicI64>);

impl TestClock {
    fn advance(&self, seconds: i64) {
        self.0.fetch_add(seconds * 1_000_000, Ordering::SeqCst);
    }
}

fn services_with_clock(db: Db) -> (Services, TestClock) {
    let micros = Arc::new(AtomicI64::new(1_700_000_000_000_000));
    let read = micros.clone();
    let services = Services::with_clock(
        db,
        Arc::new(move || {
            DateTime::from_timestamp_micros(read.load(Ordering::SeqCst)).expect("a valid time")
        }),
    );
    (services, TestClock(micros))
}

async fn submit(app: &App, name: &str, queue: Option<&str>) -> Uuid {
    let queue = queue.map(|q| format!("queue: {q}\n")).unwrap_or_default();
    let content = format!(
        "version: 1.1\nkind: component\n{queue}run:\n  kind: job\n  container:\n    image: busybox\n    command: [sh, -c, 'exit 0']\n"
    );
    let run = app
        .run("sched", json!({ "name": name, "content": content }))
        .await;
    run["uuid"].as_str().unwrap().parse().unwrap()
}

async fn status(services: &Services, uuid: Uuid) -> RunStatus {
    services.runs().status_of(uuid).await.unwrap().unwrap()
}

/// What a worker reports as it runs `uuid`.
async fn report(services: &Services, uuid: Uuid, statuses: &[RunStatus]) {
    for next in statuses {
        assert!(
            services
                .runs()
                .advance(uuid, *next, "Test", None)
                .await
                .unwrap()
                .is_some(),
            "{uuid} -> {next}"
        );
    }
}

async fn the_scheduler_ticks_step_by_step(db: Db) {
    let (services, clock) = services_with_clock(db);
    let app = App::with_services(services.clone());
    app.project("sched").await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = SchedulerConfig::new(
        dir.path().to_path_buf(),
        "http://127.0.0.1:9".to_owned(),
        "test:scheduler".to_owned(),
    );
    config.concurrency = 2;
    config.queues = BTreeMap::from([(
        "gpu".to_owned(),
        QueueLimits {
            concurrency: 1,
            priority: 10,
        },
    )]);
    config.lost_after = Duration::from_secs(30);
    let scheduler =
        Scheduler::new(services.clone(), config, CancellationToken::new()).dispatching_to_workers();

    // Three jobs: all queued in one tick, two started (the global limit),
    // first in first out.
    let a = submit(&app, "a", None).await;
    clock.advance(1);
    let b = submit(&app, "b", None).await;
    clock.advance(1);
    let c = submit(&app, "c", None).await;
    clock.advance(1);
    let outcome = scheduler.tick().await.unwrap();
    assert_eq!(outcome.queued, [a, b, c]);
    assert_eq!(outcome.started, [a, b]);
    assert!(outcome.requeued.is_empty());
    assert_eq!(status(&services, a).await, RunStatus::Scheduled);
    assert_eq!(status(&services, c).await, RunStatus::Queued);

    // Nothing freed: nothing starts.
    clock.advance(1);
    let outcome = scheduler.tick().await.unwrap();
    assert!(outcome.queued.is_empty() && outcome.started.is_empty());

    // A run of a higher-priority queue, submitted last, takes the slot
    // that `a` frees, ahead of `c`.
    let g = submit(&app, "g", Some("gpu")).await;
    clock.advance(1);
    report(
        &services,
        a,
        &[
            RunStatus::Starting,
            RunStatus::Running,
            RunStatus::Succeeded,
        ],
    )
    .await;
    let outcome = scheduler.tick().await.unwrap();
    assert_eq!(outcome.queued, [g]);
    assert_eq!(outcome.started, [g]);
    assert_eq!(status(&services, c).await, RunStatus::Queued);

    // A stopped run never starts; a running run whose worker went silent
    // for longer than `lost_after` is queued again, and takes the free slot.
    let stopped = app
        .post(&format!("/api/v1/default/sched/runs/{c}/stop"), json!({}))
        .await;
    assert_eq!(stopped.status, StatusCode::OK, "{}", stopped.text);
    report(&services, b, &[RunStatus::Starting, RunStatus::Running]).await;
    let row = services.runs().row_of(b).await.unwrap().unwrap();
    assert!(
        services
            .runs()
            .heartbeat(&row, "worker:w1", None)
            .await
            .unwrap()
    );
    clock.advance(29);
    let outcome = scheduler.tick().await.unwrap();
    assert!(outcome.requeued.is_empty(), "29 s of silence is not lost");
    clock.advance(2);
    let outcome = scheduler.tick().await.unwrap();
    assert_eq!(outcome.requeued, [b]);
    assert_eq!(outcome.started, [b]);
    assert_eq!(status(&services, c).await, RunStatus::Stopped);
    let history = app
        .get(&format!("/api/v1/default/sched/runs/{b}/statuses"))
        .await
        .body;
    let reasons: Vec<&str> = history["status_conditions"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["reason"].as_str())
        .collect();
    assert!(reasons.contains(&"ExecutorLost"), "{reasons:?}");

    // A queue this server does not define: unschedulable, not started.
    let t = submit(&app, "t", Some("tpu")).await;
    clock.advance(1);
    let outcome = scheduler.tick().await.unwrap();
    assert_eq!(outcome.queued, [t]);
    assert!(outcome.started.is_empty());
    assert_eq!(status(&services, t).await, RunStatus::Unschedulable);
}

test_on_both_databases!(the_scheduler_ticks_step_by_step);
