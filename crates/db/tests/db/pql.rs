//! The SQL compiled from a query selects exactly the runs the in-memory
//! predicate accepts, on SQLite and on PostgreSQL, for generated runs and
//! generated queries.

use chrono::{DateTime, Duration, TimeZone, Utc};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{Value, json};
use trellis_db::Db;
use trellis_db::projects::{self, NewProject};
use trellis_db::runs::{self, JsonObject, NewRun, StatusChange};
use trellis_db::testing::TestDb;
use trellis_domain::lifecycle::{RunStatus, Timing};
use trellis_domain::listing::RunSort;
use trellis_domain::pql::{Query, RunFacts, numeric_value};
use trellis_domain::run::RunKind;
use uuid::Uuid;

fn base() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 3, 10, 0, 0, 0).unwrap()
}

/// A generated run: what gets stored, and what the predicate sees.
#[derive(Debug, Clone)]
struct GenRun {
    name: Option<String>,
    description: String,
    tags: Vec<String>,
    kind: Option<RunKind>,
    status: RunStatus,
    created_minutes: i64,
    started_after: Option<i64>,
    inputs: JsonObject,
    outputs: JsonObject,
}

fn json_value() -> impl Strategy<Value = Option<Value>> {
    prop_oneof![
        Just(None),
        Just(Some(json!(0.25))),
        Just(Some(json!(0.5))),
        Just(Some(json!(1))),
        Just(Some(json!(2.5))),
        Just(Some(json!(-3))),
        Just(Some(json!("adam"))),
        Just(Some(json!("sgd"))),
        Just(Some(json!("Adam_2"))),
        Just(Some(json!(true))),
        Just(Some(json!(false))),
        Just(Some(Value::Null)),
        Just(Some(json!([1, 2]))),
        // Params as MLflow logs them: strings, some of which spell numbers
        // (and some that only look close: neither database nor the domain
        // may read them as numbers).
        Just(Some(json!("1"))),
        Just(Some(json!("0.5"))),
        Just(Some(json!("10"))),
        Just(Some(json!("-3"))),
        Just(Some(json!("2.50"))),
        Just(Some(json!("1e-05"))),
        Just(Some(json!("-.5"))),
        Just(Some(json!("01"))),
        Just(Some(json!("1e400"))),
        Just(Some(json!("0x10"))),
        Just(Some(json!(" 1"))),
    ]
}

fn object(keys: &'static [&'static str]) -> impl Strategy<Value = JsonObject> {
    proptest::collection::vec(json_value(), keys.len()).prop_map(move |values| {
        keys.iter()
            .zip(values)
            .filter_map(|(k, v)| v.map(|v| ((*k).to_owned(), v)))
            .collect()
    })
}

fn gen_run() -> impl Strategy<Value = GenRun> {
    (
        prop_oneof![
            Just(None),
            Just(Some("alpha")),
            Just(Some("Alpha-2")),
            Just(Some("beta_sweep")),
            Just(Some("100%_done"))
        ],
        prop_oneof![Just(""), Just("first try"), Just("a SWEEP over lr")],
        proptest::sample::subsequence(vec!["a", "b", "c_d"], 0..=3),
        prop_oneof![
            Just(None),
            Just(Some(RunKind::Job)),
            Just(Some(RunKind::Service))
        ],
        prop_oneof![
            Just(RunStatus::Created),
            Just(RunStatus::Running),
            Just(RunStatus::Succeeded),
            Just(RunStatus::Failed)
        ],
        0i64..(3 * 24 * 60),
        prop_oneof![
            Just(None),
            Just(Some(0i64)),
            Just(Some(30)),
            Just(Some(600))
        ],
        object(&["lr", "opt", "flag"]),
        object(&["loss", "acc"]),
    )
        .prop_map(
            |(name, description, tags, kind, status, created, started, inputs, outputs)| GenRun {
                name: name.map(str::to_owned),
                description: description.to_owned(),
                tags: tags.into_iter().map(str::to_owned).collect(),
                kind,
                status,
                created_minutes: created,
                started_after: started,
                inputs,
                outputs,
            },
        )
}

const STATUS: &[&str] = &["running", "succeeded|failed", "created", "nil"];
const KIND: &[&str] = &["job", "service", "job|service", "nil"];
const TEXT: &[&str] = &[
    "alpha",
    "Alpha-2",
    "%alpha%",
    "beta%",
    "%SWEEP%",
    "%_%",
    "%done",
    "first try",
    "nil",
];
const TAGS: &[&str] = &["a", "b|c_d", "c_d", "nil"];
const TIME: &[&str] = &[
    "2024-03-10",
    "2024-03-11 .. 2024-03-12",
    "<2024-03-11",
    "<=2024-03-11",
    ">2024-03-11",
    ">=2024-03-11 06:00",
    "2024-03-10 00:00",
    "nil",
];
const NUMBER: &[&str] = &["<600", "1 .. 600", "600", ">=600", "0.5|600", "nil"];
const DYNAMIC: &[&str] = &[
    "<0.5",
    "<=0.5",
    ">1",
    ">=-3",
    "0.25 .. 1",
    "1",
    "0.5|2.5",
    "10",
    ">2",
    "<10",
    "adam",
    "adam|sgd",
    "%adam%",
    "%_%",
    "true",
    "false",
    "nil",
];
const FIELDS: &[(&str, &[&str])] = &[
    ("status", STATUS),
    ("kind", KIND),
    ("name", TEXT),
    ("description", TEXT),
    ("tags", TAGS),
    ("created_at", TIME),
    ("started_at", TIME),
    ("finished_at", TIME),
    ("duration", NUMBER),
    ("wait_time", NUMBER),
    ("params.lr", DYNAMIC),
    ("inputs.opt", DYNAMIC),
    ("in.flag", DYNAMIC),
    ("metrics.loss", NUMBER),
    ("metrics.acc", NUMBER),
    ("outputs.loss", DYNAMIC),
    ("outputs.acc", DYNAMIC),
    ("params.missing", DYNAMIC),
];

fn term() -> impl Strategy<Value = String> {
    (
        proptest::sample::select(FIELDS),
        any::<bool>(),
        any::<proptest::sample::Index>(),
    )
        .prop_map(|((field, values), negated, index)| {
            format!(
                "{field}:{}{}",
                if negated { "~" } else { "" },
                index.get(values)
            )
        })
}

fn query_text() -> impl Strategy<Value = String> {
    let leaf = term();
    leaf.prop_recursive(3, 12, 3, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 1..4).prop_map(|parts| parts.join(", ")),
            proptest::collection::vec(inner, 2..4)
                .prop_map(|parts| format!("({})", parts.join(" OR "))),
        ]
    })
}

async fn insert(db: &Db, project_id: i64, run: &GenRun) -> RunFacts {
    let created = base() + Duration::minutes(run.created_minutes);
    let uuid = Uuid::new_v4();
    let project = projects::find_by_id(db, project_id).await.unwrap().unwrap();
    let mut row = runs::insert(
        db,
        &NewRun {
            pipeline: None,
            uuid,
            project_id,
            owner: &project.owner,
            project: &project.name,
            name: run.name.as_deref(),
            description: &run.description,
            tags: &run.tags,
            kind: run.kind,
            content: "",
            queue: None,
            inputs: &run.inputs,
            compiled: None,
            original: None,
            status: RunStatus::Created,
            now: created,
        },
    )
    .await
    .unwrap();
    let mut timing = Timing::new(created);
    if let Some(after) = run.started_after {
        timing = timing.apply(RunStatus::Running, created + Duration::seconds(after));
    }
    if run.status.is_done() {
        timing = timing.apply(
            run.status,
            created + Duration::seconds(run.started_after.unwrap_or(0) + 600),
        );
    }
    if run.status != RunStatus::Created || timing != row.timing {
        // The data layer stores what it is told; legality is the domain's job,
        // and these runs only need their facts in place.
        let change = StatusChange {
            run_id: row.id,
            expected: RunStatus::Created,
            next: run.status,
            timing,
            reason: None,
            message: None,
            now: created,
            outbox: None,
            passing: &[],
            claim: None,
        };
        assert!(runs::set_status(db, &change).await.unwrap());
    }
    runs::merge_outputs(db, row.id, &run.outputs, created)
        .await
        .unwrap();
    // Numeric outputs are also tracked as metrics (two points each, the
    // latest last), so `metrics.*` terms meet real summaries.
    let mut metrics = std::collections::BTreeMap::new();
    let mut batch = trellis_db::tracking::Batch::default();
    for (key, value) in &run.outputs {
        if let Some(value) = value.as_f64() {
            for (step, v) in [(0, value - 1.0), (1, value)] {
                batch.metrics.push(trellis_db::tracking::NewPoint {
                    key: key.clone(),
                    step,
                    timestamp: step,
                    value: v,
                });
            }
            metrics.insert(key.clone(), value);
        }
    }
    trellis_db::tracking::log_batch(db, row.id, &batch, created)
        .await
        .unwrap()
        .unwrap();
    row = runs::find(db, project_id, uuid).await.unwrap().unwrap();
    RunFacts {
        uuid: row.uuid,
        status: row.status,
        kind: row.kind,
        name: row.name,
        description: row.description,
        tags: row.tags,
        created_at: row.timing.created_at,
        updated_at: row.updated_at,
        started_at: row.timing.started_at,
        finished_at: row.timing.finished_at,
        duration: row.timing.duration,
        wait_time: row.timing.wait_time,
        inputs: row.inputs,
        outputs: row.outputs,
        metrics,
    }
}

/// The runs `query` matches, in the order of `value` (runs without one
/// last in both directions), ties by id in the direction of the sort, as
/// the SQL orders them. Insertion order is id order.
fn expected_order(
    facts: &[RunFacts],
    query: &Query,
    descending: bool,
    value: impl Fn(&RunFacts) -> Option<f64>,
) -> Vec<Uuid> {
    let mut ordered: Vec<(usize, Option<f64>)> = facts
        .iter()
        .enumerate()
        .filter(|(_, f)| query.matches(f))
        .map(|(i, f)| (i, value(f)))
        .collect();
    ordered.sort_by(|(i, a), (j, b)| {
        let by_value = match (a, b) {
            (Some(a), Some(b)) => a.total_cmp(b),
            (Some(_), None) => return std::cmp::Ordering::Less,
            (None, Some(_)) => return std::cmp::Ordering::Greater,
            (None, None) => std::cmp::Ordering::Equal,
        };
        let order = by_value.then(i.cmp(j));
        if descending { order.reverse() } else { order }
    });
    ordered.iter().map(|(i, _)| facts[*i].uuid).collect()
}

fn sql_and_memory_agree(
    make_db: fn() -> std::pin::Pin<Box<dyn std::future::Future<Output = TestDb>>>,
) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let test_db = runtime.block_on(make_db());
    let db = test_db.db.clone();
    let mut runner = TestRunner::new(Config {
        cases: 400,
        failure_persistence: None,
        ..Config::default()
    });
    let runs: Vec<GenRun> = proptest::collection::vec(gen_run(), 60)
        .new_tree(&mut runner)
        .unwrap()
        .current();
    let facts: Vec<RunFacts> = runtime.block_on(async {
        let project = projects::insert(
            &db,
            &NewProject {
                uuid: Uuid::new_v4(),
                owner: "default",
                name: "pql",
                description: "",
                tags: &[],
                experiment_name: None,
                now: base(),
            },
        )
        .await
        .unwrap();
        let mut facts = Vec::new();
        for run in &runs {
            facts.push(insert(&db, project.id, run).await);
        }
        facts
    });
    let project_id = runtime
        .block_on(projects::find(&db, "default", "pql"))
        .unwrap()
        .unwrap()
        .id;
    let matched_some = std::cell::Cell::new(0);
    runner
        .run(&query_text(), |text| {
            let query =
                Query::parse(&text).map_err(|e| TestCaseError::fail(format!("{text}: {e}")))?;
            let query = query.expect("generated queries are not blank");
            let mut expected: Vec<Uuid> = facts
                .iter()
                .filter(|f| query.matches(f))
                .map(|f| f.uuid)
                .collect();
            let (rows, count) = runtime
                .block_on(runs::list(
                    &db,
                    project_id,
                    Some(&query),
                    &RunSort::default(),
                    1000,
                    0,
                ))
                .map_err(|e| TestCaseError::fail(format!("{text}: {e}")))?;
            let mut actual: Vec<Uuid> = rows.iter().map(|r| r.uuid).collect();
            expected.sort();
            actual.sort();
            prop_assert_eq!(&actual, &expected, "query `{}`", text);
            prop_assert_eq!(count as usize, expected.len());
            // Sorted by a metric, page by page (the index walk, then the
            // runs without the metric): the same runs, in the order of
            // the value, ties and missing values by id.
            let (key, descending) = match text.len() % 4 {
                0 => ("acc", true),
                1 => ("acc", false),
                2 => ("loss", true),
                _ => ("loss", false),
            };
            let sign = if descending { "-" } else { "" };
            let sort = RunSort::parse(Some(&format!("{sign}metrics.{key}"))).unwrap();
            let expected =
                expected_order(&facts, &query, descending, |f| f.metrics.get(key).copied());
            let mut paged = Vec::new();
            for offset in (0..expected.len() + 7).step_by(7) {
                let (rows, count) = runtime
                    .block_on(runs::list(
                        &db,
                        project_id,
                        Some(&query),
                        &sort,
                        7,
                        offset as u64,
                    ))
                    .map_err(|e| TestCaseError::fail(format!("{text}: {e}")))?;
                prop_assert_eq!(count as usize, expected.len());
                paged.extend(rows.iter().map(|r| r.uuid));
            }
            prop_assert_eq!(
                &paged,
                &expected,
                "query `{}` sorted by {}metrics.{}",
                text,
                sign,
                key
            );
            // Sorted by a param: numbers and strings that spell numbers
            // in numeric order ("10" after "9"), the others last.
            let descending = text.len() % 2 == 0;
            let sign = if descending { "-" } else { "" };
            let sort = RunSort::parse(Some(&format!("{sign}params.lr"))).unwrap();
            let expected_sorted = expected_order(&facts, &query, descending, |f| {
                f.inputs.get("lr").and_then(numeric_value)
            });
            let (rows, _) = runtime
                .block_on(runs::list(&db, project_id, Some(&query), &sort, 1000, 0))
                .map_err(|e| TestCaseError::fail(format!("{text}: {e}")))?;
            let actual: Vec<Uuid> = rows.iter().map(|r| r.uuid).collect();
            prop_assert_eq!(
                &actual,
                &expected_sorted,
                "query `{}` sorted by {}params.lr",
                text,
                sign
            );
            if !expected.is_empty() && expected.len() < facts.len() {
                matched_some.set(matched_some.get() + 1);
            }
            Ok(())
        })
        .unwrap();
    // The generated queries must actually discriminate, or agreement is trivial.
    let matched_some = matched_some.get();
    assert!(
        matched_some > 100,
        "only {matched_some} queries selected a proper subset"
    );
    runtime.block_on(db.close());
}

#[test]
fn sql_and_the_in_memory_predicate_agree_on_sqlite() {
    sql_and_memory_agree(|| Box::pin(TestDb::sqlite()));
}

#[test]
fn sql_and_the_in_memory_predicate_agree_on_postgres() {
    sql_and_memory_agree(|| Box::pin(TestDb::postgres()));
}

/// Params logged after a run was created (an MLflow `log-param`) and
/// outputs merged later are found by `params.*` / `outputs.*` terms: the
/// indexed `run_fields` rows follow every write of `inputs` and `outputs`.
async fn fields_follow_later_writes(test_db: TestDb) {
    let db = test_db.db.clone();
    let project = projects::insert(
        &db,
        &NewProject {
            uuid: Uuid::new_v4(),
            owner: "default",
            name: "later",
            description: "",
            tags: &[],
            experiment_name: None,
            now: base(),
        },
    )
    .await
    .unwrap();
    let inputs: JsonObject = [("lr".to_owned(), json!(0.1))].into_iter().collect();
    let row = runs::insert(
        &db,
        &NewRun {
            pipeline: None,
            uuid: Uuid::new_v4(),
            project_id: project.id,
            owner: &project.owner,
            project: &project.name,
            name: None,
            description: "",
            tags: &[],
            kind: None,
            content: "",
            queue: None,
            inputs: &inputs,
            compiled: None,
            original: None,
            status: RunStatus::Created,
            now: base(),
        },
    )
    .await
    .unwrap();
    let find = |text: &'static str| {
        let db = db.clone();
        async move {
            let query = Query::parse(text).unwrap().unwrap();
            runs::list(&db, project.id, Some(&query), &RunSort::default(), 10, 0)
                .await
                .unwrap()
                .1
        }
    };
    assert_eq!(find("params.lr:0.1").await, 1);
    assert_eq!(find("params.optimizer:adam").await, 0);
    let batch = trellis_db::tracking::Batch {
        params: vec![("optimizer".to_owned(), json!("adam"))],
        ..Default::default()
    };
    trellis_db::tracking::log_batch(&db, row.id, &batch, base())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(find("params.optimizer:adam").await, 1);
    assert_eq!(find("params.optimizer:~adam, params.lr:<1").await, 0);
    let outputs: JsonObject = [("acc".to_owned(), json!(0.93))].into_iter().collect();
    runs::merge_outputs(&db, row.id, &outputs, base())
        .await
        .unwrap();
    assert_eq!(find("outputs.acc:>0.9").await, 1);
    let outputs: JsonObject = [("acc".to_owned(), json!("n/a"))].into_iter().collect();
    runs::merge_outputs(&db, row.id, &outputs, base())
        .await
        .unwrap();
    assert_eq!(find("outputs.acc:>0.9").await, 0);
    assert_eq!(find("outputs.acc:n/a").await, 1);
    db.close().await;
}

#[tokio::test]
async fn fields_follow_later_writes_on_sqlite() {
    fields_follow_later_writes(TestDb::sqlite().await).await;
}

#[tokio::test]
async fn fields_follow_later_writes_on_postgres() {
    fields_follow_later_writes(TestDb::postgres().await).await;
}
