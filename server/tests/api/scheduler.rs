//! `Scheduler::tick`, one step at a time, against a real database with an
//! injected clock (in the style of meilisearch's index scheduler tests):
//! capacity, queue priorities, stop, lost heartbeats, unknown queues, and
//! which executor each queue's runs go to. Runs are dispatched to the work
//! queue (the outbox) or to a recording executor, so no process is spawned
//! and each tick's effect is exactly what it returns and stores.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::StatusCode;
use chrono::DateTime;
use serde_json::json;
use tokio_util::sync::CancellationToken;
use trellis_db::{Db, test_on_both_databases};
use trellis_domain::lifecycle::RunStatus;
use trellis_domain::scheduling::{ExecutorName, QueueLimits};
use trellis_services::execution::workers::WorkQueueExecutor;
use trellis_services::execution::{Assignment, Executor, Executors};
use trellis_services::scheduler::{Scheduler, SchedulerConfig};
use trellis_services::{ServiceResult, Services};
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
    let run = services.runs().handle(uuid).await.unwrap().unwrap();
    run.status()
}

/// What a worker reports for a run that succeeds.
const TO_SUCCESS: [RunStatus; 3] = [
    RunStatus::Starting,
    RunStatus::Running,
    RunStatus::Succeeded,
];

/// What a worker reports as it runs `uuid`.
async fn report(services: &Services, uuid: Uuid, statuses: &[RunStatus]) {
    let mut run = services.runs().handle(uuid).await.unwrap().unwrap();
    for next in statuses {
        assert!(
            run.advance(*next, "Test", None).await.unwrap(),
            "{uuid} -> {next}"
        );
    }
}

/// An executor that records what it is asked to start, and starts it by
/// moving it to `scheduled` (as every executor does first).
struct Recording {
    name: ExecutorName,
    services: Services,
    started: Mutex<Vec<Uuid>>,
}

#[async_trait::async_trait]
impl Executor for Recording {
    fn name(&self) -> ExecutorName {
        self.name
    }

    async fn start(&self, runs: &[Uuid]) -> ServiceResult<Vec<Uuid>> {
        let mut started = Vec::new();
        for run in runs {
            let mut handle = self.services.runs().handle(*run).await?.unwrap();
            if handle
                .advance(RunStatus::Scheduled, "Scheduled", None)
                .await?
            {
                started.push(*run);
            }
            self.started.lock().unwrap().push(*run);
        }
        Ok(started)
    }

    async fn recover(&self, left: Vec<Assignment>) -> ServiceResult<usize> {
        Ok(left.len())
    }

    async fn drain(&self) {}
}

async fn the_scheduler_ticks_step_by_step(db: Db) {
    let (services, clock) = services_with_clock(db);
    let app = App::with_services(services.clone());
    app.project("sched").await;
    let config = SchedulerConfig {
        concurrency: 2,
        queues: BTreeMap::from([(
            "gpu".to_owned(),
            QueueLimits {
                concurrency: 1,
                priority: 10,
                executor: None,
            },
        )]),
        lost_after: Duration::from_secs(30),
        ..SchedulerConfig::default()
    };
    let executors = Executors::new(Arc::new(WorkQueueExecutor::new(
        services.clone(),
        Arc::new(tokio::sync::Notify::new()),
    )));
    let scheduler = Scheduler::new(
        services.clone(),
        config,
        executors,
        CancellationToken::new(),
    );

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
    assert_eq!(outcome.started, [(a, workers()), (b, workers())]);
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
    report(&services, a, &TO_SUCCESS).await;
    let outcome = scheduler.tick().await.unwrap();
    assert_eq!(outcome.queued, [g]);
    assert_eq!(outcome.started, [(g, workers())]);
    assert_eq!(status(&services, c).await, RunStatus::Queued);

    // A stopped run never starts; a running run whose worker went silent
    // for longer than `lost_after` is queued again, and takes the free slot.
    let stopped = app
        .post(&format!("/api/v1/default/sched/runs/{c}/stop"), json!({}))
        .await;
    assert_eq!(stopped.status, StatusCode::OK, "{}", stopped.text);
    report(&services, b, &[RunStatus::Starting, RunStatus::Running]).await;
    let run = services.runs().handle(b).await.unwrap().unwrap();
    assert!(run.heartbeat("worker:w1", None).await.unwrap());
    clock.advance(29);
    let outcome = scheduler.tick().await.unwrap();
    assert!(outcome.requeued.is_empty(), "29 s of silence is not lost");
    clock.advance(2);
    let outcome = scheduler.tick().await.unwrap();
    assert_eq!(outcome.requeued, [b]);
    assert_eq!(outcome.started, [(b, workers())]);
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
    // A hand-back is not the run's failure: it spends none of its retries.
    let handle = services.runs().handle(b).await.unwrap().unwrap();
    assert_eq!(handle.retries().await.unwrap(), 0);

    // A queue this server does not define: unschedulable, not started.
    let t = submit(&app, "t", Some("tpu")).await;
    clock.advance(1);
    let outcome = scheduler.tick().await.unwrap();
    assert_eq!(outcome.queued, [t]);
    assert!(outcome.started.is_empty());
    assert_eq!(status(&services, t).await, RunStatus::Unschedulable);
}

test_on_both_databases!(the_scheduler_ticks_step_by_step);

fn workers() -> ExecutorName {
    ExecutorName::Workers
}

/// Queues bound to executors: each run goes to its queue's executor; a
/// queue bound to an executor this scheduler does not host stays queued
/// for the process that hosts it, and takes none of this scheduler's slots;
/// a queue defined through the API can be bound too.
async fn queues_send_their_runs_to_their_executor(db: Db) {
    let (services, clock) = services_with_clock(db);
    let app = App::with_services(services.clone());
    app.project("sched").await;
    let recording = |name| {
        Arc::new(Recording {
            name,
            services: services.clone(),
            started: Mutex::new(Vec::new()),
        })
    };
    let local = recording(ExecutorName::Local);
    let remote = recording(ExecutorName::Workers);
    let limits = |executor| QueueLimits {
        concurrency: 5,
        priority: 0,
        executor,
    };
    let config = SchedulerConfig {
        concurrency: 2,
        queues: BTreeMap::from([
            ("remote".to_owned(), limits(Some(ExecutorName::Workers))),
            ("cluster".to_owned(), limits(Some(ExecutorName::Kubernetes))),
        ]),
        ..SchedulerConfig::default()
    };
    let executors = Executors::new(local.clone()).with(remote.clone());
    let scheduler = Scheduler::new(
        services.clone(),
        config,
        executors,
        CancellationToken::new(),
    );

    let k = submit(&app, "k", Some("cluster")).await;
    clock.advance(1);
    let r = submit(&app, "r", Some("remote")).await;
    clock.advance(1);
    let d = submit(&app, "d", None).await;
    clock.advance(1);
    let outcome = scheduler.tick().await.unwrap();
    assert_eq!(outcome.queued, [k, r, d]);
    assert_eq!(
        outcome.started,
        [(r, ExecutorName::Workers), (d, ExecutorName::Local)]
    );
    assert_eq!(*remote.started.lock().unwrap(), [r]);
    assert_eq!(*local.started.lock().unwrap(), [d]);
    assert_eq!(status(&services, k).await, RunStatus::Queued);

    // Rebinding `cluster` to the workers through the API hands `k` to
    // them, once a slot is free: `r` and `d` hold the global limit of two.
    let put = app
        .call(
            axum::http::Method::PUT,
            "/api/v1/queues/cluster",
            Some(json!({ "concurrency": 1, "executor": "workers" })),
        )
        .await;
    assert_eq!(put.status, StatusCode::OK, "{}", put.text);
    assert_eq!(put.body["executor"], "workers");
    let outcome = scheduler.tick().await.unwrap();
    assert!(outcome.started.is_empty(), "{outcome:?}");
    report(&services, d, &TO_SUCCESS).await;
    let outcome = scheduler.tick().await.unwrap();
    assert_eq!(outcome.started, [(k, ExecutorName::Workers)]);
    assert_eq!(*remote.started.lock().unwrap(), [r, k]);

    // An unknown executor name is refused, naming the choices.
    let bad = app
        .call(
            axum::http::Method::PUT,
            "/api/v1/queues/cluster",
            Some(json!({ "concurrency": 1, "executor": "cloud" })),
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST, "{}", bad.text);
    assert!(bad.text.contains("cloud"), "{}", bad.text);

    // At start-up each executor is handed the active runs bound to it.
    assert_eq!(scheduler.recover().await.unwrap(), 2);
}

test_on_both_databases!(queues_send_their_runs_to_their_executor);

/// A database migrated from an earlier Trellis holds runs with a spec but
/// no stored compiled spec: at start-up they get one, compiled as
/// submission would have, and a spec that no longer compiles is left
/// without one (its run fails saying so if it is ever executed).
async fn runs_from_before_stored_specs_get_theirs(db: Db) {
    let (services, _clock) = services_with_clock(db.clone());
    let app = App::with_services(services.clone());
    let project = app.project("old").await;
    let project_id = trellis_db::projects::find(&db, "default", "old")
        .await
        .unwrap()
        .unwrap()
        .id;
    assert_eq!(project["name"], "old");
    let insert = |name: &'static str, content: &'static str| {
        let db = db.clone();
        async move {
            let inputs = serde_json::from_value(json!({ "lr": 0.5 })).unwrap();
            trellis_db::runs::insert(
                &db,
                &trellis_db::runs::NewRun {
                    uuid: Uuid::new_v4(),
                    project_id,
                    owner: "default",
                    project: "old",
                    name: Some(name),
                    description: "",
                    tags: &[],
                    kind: Some(trellis_domain::run::RunKind::Job),
                    content,
                    queue: None,
                    inputs: &inputs,
                    compiled: None,
                    original: None,
                    status: RunStatus::Created,
                    now: chrono::Utc::now(),
                    pipeline: None,
                },
            )
            .await
            .unwrap()
            .uuid
        }
    };
    let good = insert(
        "good",
        "version: 1.1\nkind: component\ninputs: [{name: lr, type: float}]\nrun:\n  kind: job\n  container: {image: busybox, command: [echo, '{{ lr }}', '{{ globals.run_outputs_path }}']}\n",
    )
    .await;
    let broken = insert(
        "broken",
        "version: 1.1\nkind: component\nrun: {kind: nope}\n",
    )
    .await;
    assert_eq!(services.runs().store_missing_specs().await.unwrap(), 1);
    let stored = services
        .runs()
        .handle(good)
        .await
        .unwrap()
        .unwrap()
        .spec()
        .await
        .unwrap();
    let container = stored.run.container.unwrap();
    assert_eq!(
        container.command,
        ["echo", "0.5", "{{ globals.run_outputs_path }}"],
        "inputs rendered at submission, paths left for execution"
    );
    let missing = services
        .runs()
        .handle(broken)
        .await
        .unwrap()
        .unwrap()
        .spec()
        .await;
    assert!(
        missing
            .unwrap_err()
            .to_string()
            .contains("no compiled spec"),
        "a run whose spec no longer compiles has none"
    );
    // Once stored, nothing is left to do.
    assert_eq!(services.runs().store_missing_specs().await.unwrap(), 0);
}

test_on_both_databases!(runs_from_before_stored_specs_get_theirs);
