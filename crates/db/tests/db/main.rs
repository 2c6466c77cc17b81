//! Data-layer tests; every case runs on SQLite and on PostgreSQL.

// Test helpers are plain async fns (not `#[test]`), which clippy's
// allow-unwrap-in-tests does not cover; a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

use chrono::{DateTime, Duration, TimeZone, Utc};
use trellis_db::projects::{self, NewProject, ProjectChanges};
use trellis_db::runs::{self, NewRun, RunChanges, StatusChange};
use trellis_db::testing::TestDb;
use trellis_db::{Db, DbError, test_on_both_databases};
use trellis_domain::lifecycle::{RunStatus, Timing};
use trellis_domain::listing::RunSort;
use trellis_domain::run::RunKind;
use uuid::Uuid;

fn t(seconds: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_750_000_000, 0).unwrap() + Duration::seconds(seconds)
}

async fn project(db: &Db, name: &str) -> projects::ProjectRow {
    projects::insert(
        db,
        &NewProject {
            uuid: Uuid::new_v4(),
            owner: "default",
            name,
            description: "",
            tags: &[],
            experiment_name: None,
            now: t(0),
        },
    )
    .await
    .unwrap()
}

async fn run(db: &Db, project_id: i64, name: &str, at: i64) -> runs::RunRow {
    let project = projects::find_by_id(db, project_id).await.unwrap().unwrap();
    runs::insert(
        db,
        &NewRun {
            pipeline: None,
            uuid: Uuid::new_v4(),
            project_id,
            owner: &project.owner,
            project: &project.name,
            name: Some(name),
            description: "",
            tags: &[],
            kind: Some(RunKind::Job),
            content: "run:\n  kind: job\n",
            queue: None,
            inputs: &serde_json::Map::new(),
            compiled: None,
            original: None,
            status: RunStatus::Created,
            now: t(at),
        },
    )
    .await
    .unwrap()
}

test_on_both_databases!(
    projects_round_trip,
    duplicate_project_names_conflict_per_owner,
    project_changes_apply_only_given_fields,
    deleting_a_project_deletes_its_runs,
    a_new_run_is_created_with_its_first_condition,
    runs_sort_with_missing_values_last_and_page_without_overlap,
    a_guarded_status_change_applies_only_from_the_expected_status,
    concurrent_changes_from_one_status_let_exactly_one_win,
    run_changes_keep_the_status,
    runs_sort_by_a_metric_with_runs_without_it_last,
    logs_are_read_back_in_order_from_any_cursor,
    a_status_change_writes_its_outbox_message_in_the_same_transaction,
    queues_upsert_list_and_delete,
    heartbeats_touch_only_active_runs,
    status_changes_apply_together_and_record_claims,
    deferred_changes_commit_and_every_connection_waits_for_the_disk_again,
    metric_summaries_merge_across_batches,
    a_param_conflict_writes_nothing_of_its_batch,
    metric_buckets_match_their_points_across_batches,
);

fn point(key: &str, step: i64, timestamp: i64, value: f64) -> trellis_db::tracking::NewPoint {
    trellis_db::tracking::NewPoint {
        key: key.into(),
        step,
        timestamp,
        value,
    }
}

/// Buckets written batch by batch equal buckets computed from all the
/// points at once: counts (NaN included), and min and max with their step
/// (NaN ignored, ties to the earliest step), at every level.
async fn metric_buckets_match_their_points_across_batches(db: Db) {
    use trellis_db::series;
    use trellis_db::tracking::{self, Batch};
    let p = project(&db, "p").await;
    let r = run(&db, p.id, "r", 0).await;
    // A deterministic, bumpy series over negative and positive steps,
    // logged in shuffled batches; a NaN and a repeated extreme.
    let mut points: Vec<_> = (-300_i64..5000)
        .map(|step| {
            let value = match step {
                17 => f64::NAN,
                4000 | 4001 => 99.0,
                _ => ((step * 7919) % 1000) as f64 / 10.0,
            };
            point("loss", step, 1_000 + step, value)
        })
        .collect();
    points.reverse();
    let (a, rest) = points.split_at(1700);
    let mut shuffled: Vec<_> = rest.iter().step_by(2).cloned().collect();
    shuffled.extend(rest.iter().skip(1).step_by(2).cloned());
    for chunk in [a.to_vec(), shuffled].concat().chunks(1000) {
        let batch = Batch {
            metrics: chunk.to_vec(),
            ..Batch::default()
        };
        tracking::log_batch(&db, r.id, &batch, t(1))
            .await
            .unwrap()
            .unwrap();
    }
    for level in 1..=4_u8 {
        let stored = series::buckets(&db, r.id, "loss", level, i64::MIN, i64::MAX)
            .await
            .unwrap();
        let mut expected = std::collections::BTreeMap::<i64, Vec<&tracking::NewPoint>>::new();
        for p in &points {
            expected
                .entry(trellis_domain::series::bucket_of(p.step, level))
                .or_default()
                .push(p);
        }
        assert_eq!(stored.len(), expected.len(), "level {level}");
        for (bucket, (number, members)) in stored.iter().zip(&expected) {
            assert_eq!(bucket.bucket, *number);
            assert_eq!(bucket.count, members.len() as i64);
            let finite: Vec<_> = members.iter().filter(|p| !p.value.is_nan()).collect();
            let lo = finite
                .iter()
                .min_by(|x, y| x.value.total_cmp(&y.value).then(x.step.cmp(&y.step)))
                .unwrap();
            let hi = finite
                .iter()
                .max_by(|x, y| x.value.total_cmp(&y.value).then(y.step.cmp(&x.step)))
                .unwrap();
            let min = bucket.min.unwrap();
            let max = bucket.max.unwrap();
            assert_eq!(
                (min.value, min.step, min.timestamp),
                (lo.value, lo.step, lo.timestamp)
            );
            assert_eq!(
                (max.value, max.step),
                (hi.value, hi.step),
                "level {level} bucket {number}"
            );
        }
    }
    assert_eq!(
        series::step_range(&db, r.id, "loss").await.unwrap(),
        Some((-300, 4999))
    );
    assert_eq!(series::step_range(&db, r.id, "none").await.unwrap(), None);
}

async fn metric_summaries_merge_across_batches(db: Db) {
    use trellis_db::tracking::{self, Batch};
    let p = project(&db, "p").await;
    let r = run(&db, p.id, "r", 0).await;
    let log = |metrics| {
        let db = db.clone();
        async move {
            let batch = Batch {
                metrics,
                ..Batch::default()
            };
            tracking::log_batch(&db, r.id, &batch, t(1))
                .await
                .unwrap()
                .unwrap();
        }
    };
    log(vec![
        point("loss", 5, 50, 0.5),
        point("loss", 2, 20, 9.0),
        point("acc", 0, 0, f64::NAN),
    ])
    .await;
    // An older step does not replace the latest; a lower value moves min.
    log(vec![point("loss", 3, 99, -1.0), point("acc", 1, 1, 0.25)]).await;
    // The same step, later timestamp: it is the latest.
    log(vec![
        point("loss", 5, 60, 0.4),
        point("acc", 2, 2, f64::INFINITY),
    ])
    .await;
    let summaries = tracking::summaries(&db, &[r.id], None).await.unwrap();
    let loss = summaries.iter().find(|s| s.key == "loss").unwrap();
    assert_eq!(
        (loss.last.value, loss.last_step, loss.last_timestamp),
        (0.4, 5, 60)
    );
    assert_eq!((loss.min, loss.max, loss.count), (Some(-1.0), Some(9.0), 4));
    let acc = summaries.iter().find(|s| s.key == "acc").unwrap();
    // NaN never becomes a min or max; infinity is clipped to f64::MAX.
    assert_eq!((acc.min, acc.max), (Some(0.25), Some(f64::MAX)));
    assert_eq!(acc.last.value, f64::MAX);
    let series = tracking::series(&db, r.id, "acc", None).await.unwrap();
    assert!(series[0].is_nan && series[0].point.value.is_nan());
    assert_eq!(series.len(), 3);
    // The aggregated read gives the same latest points, exactly.
    log(vec![point("third", 0, 0, 1.0 / 3.0)]).await;
    let latest = tracking::latest(&db, &[r.id]).await.unwrap();
    assert_eq!(latest.len(), 1);
    let by_key = |key: &str| latest[0].1.iter().find(|l| l.key == key).unwrap().clone();
    assert_eq!(by_key("third").value.value, 1.0 / 3.0, "precision lost");
    assert_eq!(by_key("acc").value.value, f64::MAX);
    assert_eq!(
        (
            by_key("loss").value.value,
            by_key("loss").step,
            by_key("loss").timestamp
        ),
        (0.4, 5, 60)
    );
    log(vec![point("nan_last", 0, 0, f64::NAN)]).await;
    let latest = tracking::latest(&db, &[r.id]).await.unwrap();
    assert!(
        latest[0]
            .1
            .iter()
            .find(|l| l.key == "nan_last")
            .unwrap()
            .value
            .is_nan
    );
    assert!(
        !latest[0]
            .1
            .iter()
            .find(|l| l.key == "third")
            .unwrap()
            .value
            .is_nan
    );
    let window = tracking::series(&db, r.id, "loss", Some((3, 5)))
        .await
        .unwrap();
    let steps: Vec<i64> = window.iter().map(|p| p.point.step).collect();
    assert_eq!(steps, [3, 5, 5]);
}

async fn a_param_conflict_writes_nothing_of_its_batch(db: Db) {
    use trellis_db::tracking::{self, Batch};
    let p = project(&db, "p").await;
    let r = run(&db, p.id, "r", 0).await;
    let first = Batch {
        params: vec![("lr".into(), serde_json::json!("0.1"))],
        ..Batch::default()
    };
    tracking::log_batch(&db, r.id, &first, t(1))
        .await
        .unwrap()
        .unwrap();
    let conflicting = Batch {
        metrics: vec![point("loss", 0, 0, 1.0)],
        params: vec![
            ("opt".into(), serde_json::json!("adam")),
            ("lr".into(), serde_json::json!("0.2")),
        ],
        tags: vec![("team".into(), "x".into())],
        name: Some("renamed".into()),
    };
    let conflict = tracking::log_batch(&db, r.id, &conflicting, t(2))
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(
        (
            conflict.key.as_str(),
            conflict.old.as_str(),
            conflict.new.as_str()
        ),
        ("lr", "0.1", "0.2")
    );
    assert!(
        tracking::summaries(&db, &[r.id], None)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(tracking::tags(&db, &[r.id]).await.unwrap().is_empty());
    let stored = runs::find(&db, p.id, r.uuid).await.unwrap().unwrap();
    assert_eq!(
        stored.inputs,
        serde_json::json!({ "lr": "0.1" })
            .as_object()
            .unwrap()
            .clone()
    );
    assert_eq!(stored.name.as_deref(), Some("r"));
}

async fn a_status_change_writes_its_outbox_message_in_the_same_transaction(db: Db) {
    use trellis_db::outbox;
    let p = project(&db, "p").await;
    let r = run(&db, p.id, "r", 0).await;
    let change = |expected, next, payload| StatusChange {
        run_id: r.id,
        expected,
        next,
        timing: r.timing,
        reason: None,
        message: None,
        now: t(1),
        outbox: Some(runs::OutboxMessage {
            topic: "run.start",
            payload,
        }),
        passing: &[],
        claim: None,
    };
    // A change that loses its guard writes no message either.
    assert!(
        !runs::set_status(
            &db,
            &change(RunStatus::Queued, RunStatus::Scheduled, "lost")
        )
        .await
        .unwrap()
    );
    assert!(
        runs::set_status(
            &db,
            &change(RunStatus::Created, RunStatus::Compiled, "kept")
        )
        .await
        .unwrap()
    );
    let pending = outbox::pending(&db, 10).await.unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(
        (pending[0].topic.as_str(), pending[0].payload.as_str()),
        ("run.start", "kept")
    );
    outbox::delete(&db, pending[0].id).await.unwrap();
    assert!(outbox::pending(&db, 10).await.unwrap().is_empty());
}

async fn queues_upsert_list_and_delete(db: Db) {
    use trellis_db::queues::{self, QueueRow};
    use trellis_domain::scheduling::ExecutorName;
    let gpu = |concurrency, priority, executor| QueueRow {
        name: "gpu".into(),
        concurrency,
        priority,
        executor,
    };
    queues::upsert(&db, &gpu(2, 5, None), t(1)).await.unwrap();
    assert_eq!(queues::list(&db).await.unwrap(), [gpu(2, 5, None)]);
    queues::upsert(&db, &gpu(3, -1, Some(ExecutorName::Workers)), t(2))
        .await
        .unwrap();
    assert_eq!(
        queues::list(&db).await.unwrap(),
        [gpu(3, -1, Some(ExecutorName::Workers))]
    );
    let p = project(&db, "p").await;
    run(&db, p.id, "a", 0).await;
    run(&db, p.id, "b", 1).await;
    assert_eq!(
        queues::counts(&db, &[RunStatus::Created, RunStatus::Queued])
            .await
            .unwrap(),
        [(None, RunStatus::Created, 2)]
    );
    assert!(queues::delete(&db, "gpu").await.unwrap());
    assert!(!queues::delete(&db, "gpu").await.unwrap());
    assert!(queues::list(&db).await.unwrap().is_empty());
}

/// `row` from `expected` through `compiled` to `queued`, at t(9), with
/// `claim`: the scheduler's change, as stored.
fn to_queued<'a>(
    row: &runs::RunRow,
    expected: RunStatus,
    claim: Option<runs::Claim<'a>>,
) -> StatusChange<'a> {
    StatusChange {
        run_id: row.id,
        expected,
        next: RunStatus::Queued,
        timing: row.timing,
        reason: Some("Queued"),
        message: None,
        now: t(9),
        outbox: None,
        passing: &[(RunStatus::Compiled, "Compiled")],
        claim,
    }
}

/// Several runs' changes in one transaction: each guarded on its own (a
/// lost race skips that run only), a claim records the executor, its pid
/// and a heartbeat in the same update, and the scheduler's lean reads see
/// the result.
async fn status_changes_apply_together_and_record_claims(db: Db) {
    let p = project(&db, "p").await;
    let a = run(&db, p.id, "a", 0).await;
    let b = run(&db, p.id, "b", 1).await;
    let change = to_queued;
    let claim = runs::Claim {
        executor: "local:h",
        pid: Some(7),
    };
    // `b` is not `running`: its change loses, `a`'s applies.
    let applied = runs::set_statuses(
        &db,
        &[
            change(&a, RunStatus::Created, Some(claim)),
            change(&b, RunStatus::Running, None),
        ],
    )
    .await
    .unwrap();
    assert_eq!(applied, [true, false]);
    let found = runs::find_any(&db, a.uuid).await.unwrap().unwrap();
    assert_eq!(found.status, RunStatus::Queued);
    assert_eq!(found.executor.as_deref(), Some("local:h"));
    assert_eq!(found.pid, Some(7));
    assert_eq!(found.heartbeat_at, Some(t(9)));
    let history: Vec<RunStatus> = runs::conditions(&db, a.id)
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.status)
        .collect();
    assert_eq!(
        history,
        [RunStatus::Created, RunStatus::Compiled, RunStatus::Queued]
    );
    assert_eq!(
        runs::find_any(&db, b.uuid).await.unwrap().unwrap().status,
        RunStatus::Created
    );
    // The scheduler's lean reads.
    let queued = runs::scheduling(&db, &[RunStatus::Queued], 10)
        .await
        .unwrap();
    assert_eq!(queued.len(), 1);
    assert_eq!((queued[0].uuid, queued[0].has_spec), (a.uuid, true));
    assert_eq!(queued[0].timing, found.timing);
    assert_eq!(
        runs::executing_by_queue(&db, &[RunStatus::Created, RunStatus::Queued])
            .await
            .unwrap(),
        [(None, 2)]
    );
    // Nothing applies: nothing is committed, and nothing fails.
    assert_eq!(
        runs::set_statuses(&db, &[change(&b, RunStatus::Running, None)])
            .await
            .unwrap(),
        [false]
    );
}

/// A deferred change is committed like any other (guarded, all or
/// nothing), and no pooled connection is left committing without waiting
/// for the disk afterwards: SQLite's are back to `synchronous = FULL` (2),
/// PostgreSQL's `synchronous_commit` is `on` outside the transaction.
async fn deferred_changes_commit_and_every_connection_waits_for_the_disk_again(db: Db) {
    use trellis_domain::lifecycle::Durability;
    let p = project(&db, "p").await;
    let rows = [
        run(&db, p.id, "a", 0).await,
        run(&db, p.id, "b", 1).await,
        run(&db, p.id, "c", 2).await,
    ];
    let change = |row, expected| to_queued(row, expected, None);
    // Concurrent deferred changes, each on a connection of its own, and
    // one that applies nowhere (rolled back).
    let changes = [
        [change(&rows[0], RunStatus::Created)],
        [change(&rows[1], RunStatus::Created)],
        [change(&rows[2], RunStatus::Running)],
    ];
    let (a, b, none) = tokio::join!(
        runs::set_statuses_with(&db, &changes[0], Durability::Deferred),
        runs::set_statuses_with(&db, &changes[1], Durability::Deferred),
        runs::set_statuses_with(&db, &changes[2], Durability::Deferred),
    );
    assert_eq!(
        (a.unwrap(), b.unwrap(), none.unwrap()),
        (vec![true], vec![true], vec![false])
    );
    for (row, status) in rows
        .iter()
        .zip([RunStatus::Queued, RunStatus::Queued, RunStatus::Created])
    {
        assert_eq!(
            runs::find_any(&db, row.uuid).await.unwrap().unwrap().status,
            status
        );
    }
    assert_eq!(runs::conditions(&db, rows[0].id).await.unwrap().len(), 3);
    // Every open connection at once, so none is missed.
    match &db {
        Db::Sqlite(pool) => {
            let mut held = Vec::new();
            for _ in 0..pool.size() {
                let mut conn = pool.acquire().await.unwrap();
                let level: i64 = sqlx::query_scalar("PRAGMA synchronous")
                    .fetch_one(&mut *conn)
                    .await
                    .unwrap();
                assert_eq!(level, 2, "a connection was left without FULL");
                held.push(conn);
            }
            assert!(held.len() >= 2, "the changes ran on one connection only");
        }
        Db::Postgres(pool) => {
            let mut held = Vec::new();
            for _ in 0..pool.size() {
                let mut conn = pool.acquire().await.unwrap();
                let setting: String = sqlx::query_scalar("SHOW synchronous_commit")
                    .fetch_one(&mut *conn)
                    .await
                    .unwrap();
                assert_eq!(
                    setting, "on",
                    "a connection was left committing asynchronously"
                );
                held.push(conn);
            }
        }
    }
}

async fn heartbeats_touch_only_active_runs(db: Db) {
    let p = project(&db, "p").await;
    let r = run(&db, p.id, "r", 0).await;
    assert!(
        runs::heartbeat(&db, r.id, "worker:a", Some(42), t(5))
            .await
            .unwrap()
    );
    let found = runs::find_any(&db, r.uuid).await.unwrap().unwrap();
    assert_eq!(found.executor.as_deref(), Some("worker:a"));
    assert_eq!(found.pid, Some(42));
    assert_eq!(found.heartbeat_at, Some(t(5)));
    // Silent since before t(6); not since before t(5).
    let silent = runs::silent_since(&db, &[RunStatus::Created], t(6), 10)
        .await
        .unwrap();
    assert_eq!(silent.len(), 1);
    assert!(
        runs::silent_since(&db, &[RunStatus::Created], t(5), 10)
            .await
            .unwrap()
            .is_empty()
    );
    let done = StatusChange {
        run_id: r.id,
        expected: RunStatus::Created,
        next: RunStatus::Failed,
        timing: r.timing,
        reason: None,
        message: None,
        now: t(7),
        outbox: None,
        passing: &[],
        claim: None,
    };
    assert!(runs::set_status(&db, &done).await.unwrap());
    assert!(
        !runs::heartbeat(&db, r.id, "worker:a", None, t(8))
            .await
            .unwrap()
    );
}

async fn logs_are_read_back_in_order_from_any_cursor(db: Db) {
    use trellis_db::logs;
    use trellis_domain::logs::{LogLine, Stream};
    let p = project(&db, "p").await;
    let r = run(&db, p.id, "r", 0).await;
    let other = run(&db, p.id, "other", 1).await;
    let line = |i: i64, stream| LogLine {
        at: t(i),
        stream,
        text: format!("line {i}"),
    };
    let first: Vec<LogLine> = (0..5).map(|i| line(i, Stream::Stdout)).collect();
    let second: Vec<LogLine> = (5..8).map(|i| line(i, Stream::Stderr)).collect();
    logs::append(&db, r.id, &first).await.unwrap();
    logs::append(&db, other.id, &[line(99, Stream::Stdout)])
        .await
        .unwrap();
    logs::append(&db, r.id, &second).await.unwrap();

    let all = logs::after(&db, r.id, 0, 100).await.unwrap();
    let texts: Vec<&str> = all.iter().map(|l| l.line.text.as_str()).collect();
    assert_eq!(
        texts,
        (0..8).map(|i| format!("line {i}")).collect::<Vec<_>>()
    );
    assert_eq!(all[6].line.stream, Stream::Stderr);
    assert_eq!(all[3].line.at, t(3));

    // Reading in pages of 3 from the cursors returned repeats and misses nothing.
    let mut cursor = 0;
    let mut paged = Vec::new();
    loop {
        let page = logs::after(&db, r.id, cursor, 3).await.unwrap();
        let Some(last) = page.last() else { break };
        cursor = last.cursor;
        paged.extend(page.into_iter().map(|l| l.line.text));
    }
    assert_eq!(paged, texts);
    assert!(runs::delete(&db, r.id).await.unwrap());
    assert!(logs::after(&db, r.id, 0, 100).await.unwrap().is_empty());
}

async fn runs_sort_by_a_metric_with_runs_without_it_last(db: Db) {
    let p = project(&db, "p").await;
    // A NaN latest value sorts as missing, like no value at all.
    for (i, loss) in [Some(0.5), None, Some(0.1), Some(f64::NAN)]
        .into_iter()
        .enumerate()
    {
        let r = run(&db, p.id, &format!("run-{i}"), i as i64).await;
        if let Some(loss) = loss {
            let batch = trellis_db::tracking::Batch {
                metrics: vec![trellis_db::tracking::NewPoint {
                    key: "loss".into(),
                    step: 0,
                    timestamp: 0,
                    value: loss,
                }],
                ..Default::default()
            };
            trellis_db::tracking::log_batch(&db, r.id, &batch, t(9))
                .await
                .unwrap()
                .unwrap();
        }
    }
    let names = |rows: &[runs::RunRow]| {
        rows.iter()
            .map(|r| r.name.clone().unwrap())
            .collect::<Vec<_>>()
    };
    let ascending = RunSort::parse(Some("metrics.loss")).unwrap();
    let (rows, _) = runs::list(&db, p.id, None, &ascending, 10, 0)
        .await
        .unwrap();
    assert_eq!(names(&rows)[..2], ["run-2", "run-0"]);
    let descending = RunSort::parse(Some("-metrics.loss, name")).unwrap();
    let (rows, _) = runs::list(&db, p.id, None, &descending, 10, 0)
        .await
        .unwrap();
    assert_eq!(names(&rows), ["run-0", "run-2", "run-1", "run-3"]);
}

async fn projects_round_trip(db: Db) {
    let created = projects::insert(
        &db,
        &NewProject {
            uuid: Uuid::new_v4(),
            owner: "default",
            name: "mnist",
            description: "digits",
            tags: &["cv".to_owned(), "baseline".to_owned()],
            experiment_name: None,
            now: t(0),
        },
    )
    .await
    .unwrap();
    let found = projects::find(&db, "default", "mnist")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found, created);
    assert_eq!(found.tags.0, vec!["cv", "baseline"]);
    assert_eq!(found.created_at, t(0));
    assert!(
        projects::find(&db, "other", "mnist")
            .await
            .unwrap()
            .is_none()
    );
}

async fn duplicate_project_names_conflict_per_owner(db: Db) {
    project(&db, "same").await;
    let again = projects::insert(
        &db,
        &NewProject {
            uuid: Uuid::new_v4(),
            owner: "default",
            name: "same",
            description: "",
            tags: &[],
            experiment_name: None,
            now: t(1),
        },
    )
    .await;
    assert!(matches!(again, Err(DbError::Conflict)), "{again:?}");
    let other_owner = projects::insert(
        &db,
        &NewProject {
            uuid: Uuid::new_v4(),
            owner: "alice",
            name: "same",
            description: "",
            tags: &[],
            experiment_name: None,
            now: t(1),
        },
    )
    .await;
    assert!(other_owner.is_ok());
    let (page, count) = projects::list(&db, "default", 10, 0).await.unwrap();
    assert_eq!((page.len(), count), (1, 1));
}

async fn project_changes_apply_only_given_fields(db: Db) {
    let p = project(&db, "p").await;
    let changed = projects::update(
        &db,
        p.id,
        &ProjectChanges {
            description: Some("new words"),
            ..Default::default()
        },
        t(5),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(changed.name, "p");
    assert_eq!(changed.description, "new words");
    assert_eq!(changed.updated_at, t(5));
    assert_eq!(changed.created_at, t(0));
    assert!(
        projects::update(&db, p.id + 1000, &ProjectChanges::default(), t(6))
            .await
            .unwrap()
            .is_none()
    );
}

async fn deleting_a_project_deletes_its_runs(db: Db) {
    let p = project(&db, "p").await;
    let r = run(&db, p.id, "r", 1).await;
    assert!(projects::delete(&db, p.id).await.unwrap());
    assert!(runs::find(&db, p.id, r.uuid).await.unwrap().is_none());
    assert!(runs::conditions(&db, r.id).await.unwrap().is_empty());
    assert!(!projects::delete(&db, p.id).await.unwrap());
}

async fn a_new_run_is_created_with_its_first_condition(db: Db) {
    let p = project(&db, "p").await;
    let r = run(&db, p.id, "train", 3).await;
    assert_eq!(r.status, RunStatus::Created);
    assert_eq!((r.owner.as_str(), r.project.as_str()), ("default", "p"));
    assert_eq!(r.kind, Some(RunKind::Job));
    assert_eq!(r.timing, Timing::new(t(3)));
    let conditions = runs::conditions(&db, r.id).await.unwrap();
    assert_eq!(conditions.len(), 1);
    assert_eq!(conditions[0].status, RunStatus::Created);
    assert_eq!(conditions[0].created_at, t(3));
    // What the insert returns without reading is what a read returns.
    assert_eq!(Some(r.clone()), runs::find_any(&db, r.uuid).await.unwrap());
}

async fn runs_sort_with_missing_values_last_and_page_without_overlap(db: Db) {
    let p = project(&db, "p").await;
    let mut uuids = Vec::new();
    for i in 0..5 {
        uuids.push(run(&db, p.id, &format!("run-{i}"), i).await);
    }
    // Only run-1 and run-3 have started; run-3 started later.
    for (r, start) in [(&uuids[1], 10), (&uuids[3], 20)] {
        let timing = r.timing.apply(RunStatus::Running, t(start));
        let changed = runs::set_status(
            &db,
            &StatusChange {
                run_id: r.id,
                expected: RunStatus::Created,
                next: RunStatus::Running,
                timing,
                reason: None,
                message: None,
                now: t(start),
                outbox: None,
                passing: &[],
                claim: None,
            },
        )
        .await
        .unwrap();
        // Created -> Running is not a legal lifecycle move, but the data layer
        // stores what the caller decided; legality is the domain's job.
        assert!(changed);
    }
    let names = |rows: &[runs::RunRow]| {
        rows.iter()
            .map(|r| r.name.clone().unwrap())
            .collect::<Vec<_>>()
    };

    let sort = RunSort::parse(Some("-started_at")).unwrap();
    let (rows, count) = runs::list(&db, p.id, None, &sort, 10, 0).await.unwrap();
    assert_eq!(count, 5);
    assert_eq!(names(&rows), ["run-3", "run-1", "run-4", "run-2", "run-0"]);

    let sort = RunSort::parse(Some("started_at")).unwrap();
    let (rows, _) = runs::list(&db, p.id, None, &sort, 10, 0).await.unwrap();
    assert_eq!(names(&rows), ["run-1", "run-3", "run-0", "run-2", "run-4"]);

    let sort = RunSort::default();
    let (first, _) = runs::list(&db, p.id, None, &sort, 2, 0).await.unwrap();
    let (second, _) = runs::list(&db, p.id, None, &sort, 2, 2).await.unwrap();
    let (third, _) = runs::list(&db, p.id, None, &sort, 2, 4).await.unwrap();
    assert_eq!(names(&first), ["run-4", "run-3"]);
    assert_eq!(names(&second), ["run-2", "run-1"]);
    assert_eq!(names(&third), ["run-0"]);
}

async fn a_guarded_status_change_applies_only_from_the_expected_status(db: Db) {
    let p = project(&db, "p").await;
    let r = run(&db, p.id, "r", 0).await;
    let change = |expected, next| StatusChange {
        run_id: r.id,
        expected,
        next,
        timing: r.timing,
        reason: Some("Test"),
        message: Some("why"),
        now: t(1),
        outbox: None,
        passing: &[],
        claim: None,
    };
    assert!(
        !runs::set_status(&db, &change(RunStatus::Queued, RunStatus::Scheduled))
            .await
            .unwrap()
    );
    assert!(
        runs::set_status(&db, &change(RunStatus::Created, RunStatus::Compiled))
            .await
            .unwrap()
    );
    let stored = runs::find(&db, p.id, r.uuid).await.unwrap().unwrap();
    assert_eq!(stored.status, RunStatus::Compiled);
    let conditions = runs::conditions(&db, r.id).await.unwrap();
    assert_eq!(conditions.len(), 2);
    assert_eq!(conditions[1].status, RunStatus::Compiled);
    assert_eq!(conditions[1].reason.as_deref(), Some("Test"));
    assert_eq!(conditions[1].message.as_deref(), Some("why"));
}

async fn concurrent_changes_from_one_status_let_exactly_one_win(db: Db) {
    let p = project(&db, "p").await;
    let r = run(&db, p.id, "r", 0).await;
    let targets = [
        RunStatus::Compiled,
        RunStatus::Stopped,
        RunStatus::Failed,
        RunStatus::Skipped,
        RunStatus::OnSchedule,
        RunStatus::UpstreamFailed,
        RunStatus::Compiled,
        RunStatus::Stopped,
    ];
    let mut tasks = Vec::new();
    for next in targets {
        let db = db.clone();
        let timing = r.timing;
        let run_id = r.id;
        tasks.push(tokio::spawn(async move {
            runs::set_status(
                &db,
                &StatusChange {
                    run_id,
                    expected: RunStatus::Created,
                    next,
                    timing,
                    reason: None,
                    message: None,
                    now: t(1),
                    outbox: None,
                    passing: &[],
                    claim: None,
                },
            )
            .await
            .map(|applied| (applied, next))
        }));
    }
    let mut winners = Vec::new();
    for task in tasks {
        let (applied, next) = task.await.unwrap().unwrap();
        if applied {
            winners.push(next);
        }
    }
    assert_eq!(winners.len(), 1, "{winners:?}");
    let stored = runs::find(&db, p.id, r.uuid).await.unwrap().unwrap();
    assert_eq!(stored.status, winners[0]);
    let conditions = runs::conditions(&db, r.id).await.unwrap();
    assert_eq!(
        conditions.iter().map(|c| c.status).collect::<Vec<_>>(),
        [RunStatus::Created, winners[0]]
    );
}

async fn run_changes_keep_the_status(db: Db) {
    let p = project(&db, "p").await;
    let r = run(&db, p.id, "r", 0).await;
    let tags = vec!["a".to_owned()];
    let changed = runs::update(
        &db,
        r.id,
        &RunChanges {
            name: Some("renamed"),
            tags: Some(&tags),
            ..Default::default()
        },
        t(9),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(changed.name.as_deref(), Some("renamed"));
    assert_eq!(changed.tags, tags);
    assert_eq!(changed.status, RunStatus::Created);
    assert_eq!(changed.content, r.content);
    assert_eq!(changed.updated_at, t(9));
    assert!(runs::delete(&db, r.id).await.unwrap());
    assert!(
        runs::update(&db, r.id, &RunChanges::default(), t(10))
            .await
            .unwrap()
            .is_none()
    );
}

mod pql;

/// Both migration trees build the same database: the same tables with the
/// same columns, and the same indexes over the same columns. A migration
/// added to one tree and forgotten in the other fails here.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sqlite_and_postgres_migrations_build_the_same_schema() {
    let (sqlite, postgres) = (TestDb::sqlite().await, TestDb::postgres().await);
    let sqlite_schema = trellis_db::testing::schema(&sqlite.db).await.unwrap();
    let postgres_schema = trellis_db::testing::schema(&postgres.db).await.unwrap();
    assert!(
        sqlite_schema.tables.contains_key("runs"),
        "{sqlite_schema:?}"
    );
    assert!(
        sqlite_schema.indexes.contains_key("run_fields_num_idx"),
        "{sqlite_schema:?}"
    );
    for (table, columns) in &sqlite_schema.tables {
        assert_eq!(
            Some(columns),
            postgres_schema.tables.get(table),
            "table `{table}`"
        );
    }
    assert_eq!(
        sqlite_schema.tables.keys().collect::<Vec<_>>(),
        postgres_schema.tables.keys().collect::<Vec<_>>()
    );
    for (index, shape) in &sqlite_schema.indexes {
        assert_eq!(
            Some(shape),
            postgres_schema.indexes.get(index),
            "index `{index}`"
        );
    }
    assert_eq!(
        sqlite_schema.indexes.keys().collect::<Vec<_>>(),
        postgres_schema.indexes.keys().collect::<Vec<_>>()
    );
}
