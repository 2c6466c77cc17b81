//! What runs track: metric points, their summaries and buckets (`run_metrics`,
//! `run_metric_summaries`, `run_metric_buckets`), params (the run's `inputs`), key-value tags
//! (`run_tags`), outputs, and soft deletion.
//!
//! A batch is one transaction: its points, the summaries they move, its
//! params and tags are all written or none is (a param logged again with
//! another value refuses the whole batch, as MLflow does).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use sqlx::types::Json;
use trellis_domain::lifecycle::RunStatus;
use trellis_domain::tracking::{Point, StoredValue};

use crate::runs::JsonObject;
use crate::{Db, DbResult, with_pool};

/// One metric point to store.
#[derive(Debug, Clone, PartialEq)]
pub struct NewPoint {
    pub key: String,
    pub step: i64,
    /// Milliseconds since the epoch.
    pub timestamp: i64,
    /// Any double; NaN and infinities are stored as [`StoredValue`] says.
    pub value: f64,
}

/// What one batch logs to a run.
#[derive(Debug, Clone, Default)]
pub struct Batch {
    pub metrics: Vec<NewPoint>,
    /// Param values as MLflow sends them: text.
    pub params: Vec<(String, serde_json::Value)>,
    pub tags: Vec<(String, String)>,
    /// The run's name, when a tag (`mlflow.runName`) sets it.
    pub name: Option<String>,
}

/// A param already logged with another value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamConflict {
    pub key: String,
    pub old: String,
    pub new: String,
}

/// The latest, min and max of one metric of one run.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    pub run_id: i64,
    pub key: String,
    pub last: StoredValue,
    pub last_step: i64,
    pub last_timestamp: i64,
    /// `None` while only NaNs were logged.
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub count: i64,
}

/// Rows per INSERT: 6 binds each stays far below SQLite's 32,766 limit.
const ROWS_PER_INSERT: usize = 1000;

/// Buckets per upsert: 11 binds each. Multi-row statements are built with
/// `QueryBuilder`, whose SQLite placeholders are `?`: SQLite looks each
/// named `$N` up in a list at prepare and bind time, quadratic in the
/// number of parameters (0.6 s for 7,700 of them, measured), where `?`
/// costs nothing.
const BUCKETS_PER_UPSERT: usize = 1000;

/// A param value as text, the way MLflow compares and shows it.
pub fn param_text(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// What a batch's points of one key alone summarise to.
struct KeySummary {
    last: StoredValue,
    step: i64,
    timestamp: i64,
    min: Option<f64>,
    max: Option<f64>,
    count: i64,
}

/// Per key of a batch: the summary its points alone would have.
fn batch_summaries(points: &[NewPoint]) -> BTreeMap<&str, KeySummary> {
    let mut out: BTreeMap<&str, KeySummary> = BTreeMap::new();
    for p in points {
        let stored = StoredValue::of(p.value);
        let finite = (!stored.is_nan).then_some(stored.value);
        let entry = out.entry(p.key.as_str()).or_insert(KeySummary {
            last: stored,
            step: p.step,
            timestamp: p.timestamp,
            min: finite,
            max: finite,
            count: 0,
        });
        // The latest is the largest (step, timestamp); ties go to the later one.
        if (p.step, p.timestamp) >= (entry.step, entry.timestamp) {
            entry.last = stored;
            entry.step = p.step;
            entry.timestamp = p.timestamp;
        }
        if let Some(v) = finite {
            entry.min = Some(entry.min.map_or(v, |m| m.min(v)));
            entry.max = Some(entry.max.map_or(v, |m| m.max(v)));
        }
        entry.count += 1;
    }
    out
}

/// SQLite has one writer at a time. Concurrent batches that each wait
/// for the write lock in SQLite's busy handler sleep 1, 2, 5 … 100 ms
/// between tries, so eight clients logging at once spent most of their
/// time asleep once a batch also wrote its buckets (measured: 8.6k
/// points/s). Batches queue here instead, in arrival order, and take the
/// lock uncontended. PostgreSQL locks rows and needs no queue.
static SQLITE_BATCHES: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Logs `batch` to run `run_id` in one transaction. `Ok(Err(conflict))`
/// writes nothing: a param was logged before with another value.
pub async fn log_batch(
    db: &Db,
    run_id: i64,
    batch: &Batch,
    now: DateTime<Utc>,
) -> DbResult<Result<(), ParamConflict>> {
    let _turn = match db.backend() {
        crate::Backend::Sqlite => Some(SQLITE_BATCHES.lock().await),
        crate::Backend::Postgres => None,
    };
    with_pool!(db, |pool| {
        let mut tx = pool.begin().await?;
        // Writing first takes the run's row lock (PostgreSQL) or the write
        // lock (SQLite), so the params read below cannot change under us.
        // The project goes onto the metric summaries (their sort index).
        let project_id: i64 = sqlx::query_scalar(
            "UPDATE runs SET updated_at = $2 WHERE id = $1 RETURNING project_id",
        )
        .bind(run_id)
        .bind(now)
        .fetch_one(&mut *tx)
        .await?;
        if !batch.params.is_empty() {
            let inputs: Json<JsonObject> =
                sqlx::query_scalar("SELECT inputs FROM runs WHERE id = $1")
                    .bind(run_id)
                    .fetch_one(&mut *tx)
                    .await?;
            let mut inputs = inputs.0;
            let mut changed = false;
            for (key, value) in &batch.params {
                match inputs.get(key) {
                    Some(old) if param_text(old) != param_text(value) => {
                        return Ok(Err(ParamConflict {
                            key: key.clone(),
                            old: param_text(old),
                            new: param_text(value),
                        }));
                    }
                    Some(_) => {}
                    None => {
                        inputs.insert(key.clone(), value.clone());
                        changed = true;
                    }
                }
            }
            if changed {
                sqlx::query("UPDATE runs SET inputs = $2 WHERE id = $1")
                    .bind(run_id)
                    .bind(Json(&inputs))
                    .execute(&mut *tx)
                    .await?;
            }
        }
        for chunk in batch.metrics.chunks(ROWS_PER_INSERT) {
            let mut insert = sqlx::QueryBuilder::new(
                "INSERT INTO run_metrics (run_id, key, step, timestamp, value, is_nan) ",
            );
            insert.push_values(chunk, |mut row, p| {
                let stored = StoredValue::of(p.value);
                row.push_bind(run_id)
                    .push_bind(&p.key)
                    .push_bind(p.step)
                    .push_bind(p.timestamp)
                    .push_bind(stored.value)
                    .push_bind(stored.is_nan);
            });
            insert.build().execute(&mut *tx).await?;
        }
        let summaries = batch_summaries(&batch.metrics);
        let summaries: Vec<_> = summaries.into_iter().collect();
        for chunk in summaries.chunks(ROWS_PER_INSERT) {
            let newer = "(excluded.last_step > run_metric_summaries.last_step
                  OR (excluded.last_step = run_metric_summaries.last_step
                      AND excluded.last_timestamp >= run_metric_summaries.last_timestamp))";
            // In SET, `run_metric_summaries.*` are the stored (old) values on
            // both databases; `excluded` is this batch's summary.
            let sql = format!(
                " ON CONFLICT (run_id, key) DO UPDATE SET
                  last_value = CASE WHEN {newer} THEN excluded.last_value ELSE run_metric_summaries.last_value END,
                  last_is_nan = CASE WHEN {newer} THEN excluded.last_is_nan ELSE run_metric_summaries.last_is_nan END,
                  last_timestamp = CASE WHEN {newer} THEN excluded.last_timestamp ELSE run_metric_summaries.last_timestamp END,
                  last_step = CASE WHEN {newer} THEN excluded.last_step ELSE run_metric_summaries.last_step END,
                  min_value = CASE WHEN excluded.min_value IS NOT NULL
                       AND (run_metric_summaries.min_value IS NULL OR excluded.min_value < run_metric_summaries.min_value)
                       THEN excluded.min_value ELSE run_metric_summaries.min_value END,
                  max_value = CASE WHEN excluded.max_value IS NOT NULL
                       AND (run_metric_summaries.max_value IS NULL OR excluded.max_value > run_metric_summaries.max_value)
                       THEN excluded.max_value ELSE run_metric_summaries.max_value END,
                  count = run_metric_summaries.count + excluded.count"
            );
            let mut upsert = sqlx::QueryBuilder::new(
                "INSERT INTO run_metric_summaries (run_id, project_id, key, last_value, last_is_nan,
                     last_step, last_timestamp, min_value, max_value, count) ",
            );
            upsert.push_values(chunk, |mut row, (key, s)| {
                row.push_bind(run_id)
                    .push_bind(project_id)
                    .push_bind(*key)
                    .push_bind(s.last.value)
                    .push_bind(s.last.is_nan)
                    .push_bind(s.step)
                    .push_bind(s.timestamp)
                    .push_bind(s.min)
                    .push_bind(s.max)
                    .push_bind(s.count);
            });
            upsert.push(sql);
            upsert.build().execute(&mut *tx).await?;
        }
        let buckets = crate::series::batch_buckets(&batch.metrics);
        let conflict = crate::series::upsert_conflict();
        for chunk in buckets.chunks(BUCKETS_PER_UPSERT) {
            let mut upsert = sqlx::QueryBuilder::new(crate::series::UPSERT_INTO);
            upsert.push_values(chunk, |mut row, (key, level, b)| {
                row.push_bind(run_id)
                    .push_bind(*key)
                    .push_bind(i16::from(*level))
                    .push_bind(b.bucket)
                    .push_bind(b.count)
                    .push_bind(b.min.map(|e| e.value))
                    .push_bind(b.min.map(|e| e.step))
                    .push_bind(b.min.map(|e| e.timestamp))
                    .push_bind(b.max.map(|e| e.value))
                    .push_bind(b.max.map(|e| e.step))
                    .push_bind(b.max.map(|e| e.timestamp));
            });
            upsert.push(&conflict);
            upsert.build().execute(&mut *tx).await?;
        }
        if let Some(name) = &batch.name {
            sqlx::query("UPDATE runs SET name = $2 WHERE id = $1")
                .bind(run_id)
                .bind(name)
                .execute(&mut *tx)
                .await?;
        }
        for (key, value) in &batch.tags {
            sqlx::query(
                "INSERT INTO run_tags (run_id, key, value) VALUES ($1, $2, $3)
                 ON CONFLICT (run_id, key) DO UPDATE SET value = excluded.value",
            )
            .bind(run_id)
            .bind(key)
            .bind(value)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
    });
    Ok(Ok(()))
}

/// Removes key-value tag `key` of run `run_id`; `false` if it had none.
pub async fn delete_tag(db: &Db, run_id: i64, key: &str) -> DbResult<bool> {
    let affected = with_pool!(db, |pool| {
        sqlx::query("DELETE FROM run_tags WHERE run_id = $1 AND key = $2")
            .bind(run_id)
            .bind(key)
            .execute(pool)
            .await?
            .rows_affected()
    });
    Ok(affected > 0)
}

/// The key-value tags of runs `run_ids`: (run id, key, value), by run and key.
pub async fn tags(db: &Db, run_ids: &[i64]) -> DbResult<Vec<(i64, String, String)>> {
    if run_ids.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!(
        "SELECT run_id, key, value FROM run_tags WHERE run_id IN ({}) ORDER BY run_id, key",
        crate::runs::bind_list(run_ids.len(), 1)
    );
    let rows = with_pool!(db, |pool| {
        let mut query = sqlx::query_as(sqlx::AssertSqlSafe(sql.clone()));
        for id in run_ids {
            query = query.bind(*id);
        }
        query.fetch_all(pool).await?
    });
    Ok(rows)
}

/// The metric summaries of runs `run_ids` (every key, or only `key`), by
/// run and key.
pub async fn summaries(db: &Db, run_ids: &[i64], key: Option<&str>) -> DbResult<Vec<Summary>> {
    if run_ids.is_empty() {
        return Ok(Vec::new());
    }
    let key_at = run_ids.len() + 1;
    let sql = format!(
        "SELECT run_id, key, last_value, last_is_nan, last_step, last_timestamp, min_value,
                max_value, count
         FROM run_metric_summaries WHERE run_id IN ({}){} ORDER BY run_id, key",
        crate::runs::bind_list(run_ids.len(), 1),
        if key.is_some() {
            format!(" AND key = ${key_at}")
        } else {
            String::new()
        }
    );
    type SummaryTuple = (
        i64,
        String,
        f64,
        bool,
        i64,
        i64,
        Option<f64>,
        Option<f64>,
        i64,
    );
    let rows: Vec<SummaryTuple> = with_pool!(db, |pool| {
        let mut query = sqlx::query_as(sqlx::AssertSqlSafe(sql.clone()));
        for id in run_ids {
            query = query.bind(*id);
        }
        if let Some(key) = key {
            query = query.bind(key);
        }
        query.fetch_all(pool).await?
    });
    Ok(rows
        .into_iter()
        .map(
            |(run_id, key, value, is_nan, last_step, last_timestamp, min, max, count)| Summary {
                run_id,
                key,
                last: StoredValue { value, is_nan },
                last_step,
                last_timestamp,
                min,
                max,
                count,
            },
        )
        .collect())
}

/// The latest point of one metric of a run.
#[derive(Debug, Clone, PartialEq)]
pub struct Latest {
    pub key: String,
    pub value: StoredValue,
    pub step: i64,
    pub timestamp: i64,
}

/// The latest point of every metric of runs `run_ids`, per run (runs
/// without metrics are absent). One row per run: the database aggregates
/// each run's metrics into a JSON array, which costs far less than one
/// decoded row per metric when a page holds hundreds of runs.
pub async fn latest(db: &Db, run_ids: &[i64]) -> DbResult<Vec<(i64, Vec<Latest>)>> {
    if run_ids.is_empty() {
        return Ok(Vec::new());
    }
    let aggregate = match db.backend() {
        crate::Backend::Sqlite => {
            // 17 significant digits round-trip every double; SQLite's JSON
            // would print 15 (and overflow at the clipped ±f64::MAX).
            "json_group_array(json_array(key, printf('%!.17g', last_value), last_is_nan, last_step, last_timestamp))"
        }
        crate::Backend::Postgres => {
            // float8 as text is the shortest exact form (PostgreSQL 12+).
            "json_agg(json_build_array(key, last_value::text, last_is_nan, last_step, last_timestamp) ORDER BY key)::text"
        }
    };
    let sql = format!(
        "SELECT run_id, {aggregate} FROM run_metric_summaries WHERE run_id IN ({}) GROUP BY run_id",
        crate::runs::bind_list(run_ids.len(), 1)
    );
    let rows: Vec<(i64, String)> = with_pool!(db, |pool| {
        let mut query = sqlx::query_as(sqlx::AssertSqlSafe(sql.clone()));
        for id in run_ids {
            query = query.bind(*id);
        }
        query.fetch_all(pool).await?
    });
    rows.into_iter()
        .map(|(run_id, json)| {
            // [key, value, is_nan (0/1 on SQLite, a boolean on PostgreSQL), step, timestamp]
            let corrupt = |message: String| crate::DbError::Corrupt {
                column: "run_metric_summaries",
                message,
            };
            let items: Vec<(String, String, serde_json::Value, i64, i64)> =
                serde_json::from_str(&json).map_err(|e| corrupt(e.to_string()))?;
            let mut latest = Vec::with_capacity(items.len());
            for (key, value, is_nan, step, timestamp) in items {
                let value: f64 = value
                    .parse()
                    .map_err(|_| corrupt(format!("`{value}` is not a number")))?;
                latest.push(Latest {
                    key,
                    value: StoredValue {
                        value,
                        is_nan: is_nan.as_bool().unwrap_or(is_nan.as_i64() == Some(1)),
                    },
                    step,
                    timestamp,
                });
            }
            latest.sort_by(|a, b| a.key.cmp(&b.key));
            Ok((run_id, latest))
        })
        .collect()
}

/// A stored point and its id (the cursor of paged reads).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StoredPoint {
    pub id: i64,
    pub point: Point,
    pub is_nan: bool,
}

/// Points of metric `key` of run `run_id`, by step then time, with steps
/// in `steps` (inclusive) when given.
pub async fn series(
    db: &Db,
    run_id: i64,
    key: &str,
    steps: Option<(i64, i64)>,
) -> DbResult<Vec<StoredPoint>> {
    let (low, high) = steps.unwrap_or((i64::MIN, i64::MAX));
    let rows: Vec<(i64, i64, i64, f64, bool)> = with_pool!(db, |pool| {
        sqlx::query_as(
            "SELECT id, step, timestamp, value, is_nan FROM run_metrics
             WHERE run_id = $1 AND key = $2 AND step >= $3 AND step <= $4
             ORDER BY step, timestamp, id",
        )
        .bind(run_id)
        .bind(key)
        .bind(low)
        .bind(high)
        .fetch_all(pool)
        .await?
    });
    Ok(rows.into_iter().map(stored_point).collect())
}

fn stored_point((id, step, timestamp, value, is_nan): (i64, i64, i64, f64, bool)) -> StoredPoint {
    StoredPoint {
        id,
        point: Point {
            step,
            timestamp,
            value: if is_nan { f64::NAN } else { value },
        },
        is_nan,
    }
}

/// Up to `limit` points of metric `key` of run `run_id` after point id
/// `after`, in the order they were logged (MLflow's paged history).
pub async fn history_page(
    db: &Db,
    run_id: i64,
    key: &str,
    after: i64,
    limit: u32,
) -> DbResult<Vec<StoredPoint>> {
    let rows: Vec<(i64, i64, i64, f64, bool)> = with_pool!(db, |pool| {
        sqlx::query_as(
            "SELECT id, step, timestamp, value, is_nan FROM run_metrics
             WHERE run_id = $1 AND key = $2 AND id > $3 ORDER BY id LIMIT $4",
        )
        .bind(run_id)
        .bind(key)
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(pool)
        .await?
    });
    Ok(rows.into_iter().map(stored_point).collect())
}

/// Marks run `run_id` deleted (`Some(now)`) or restores it (`None`).
pub async fn set_run_deleted(db: &Db, run_id: i64, at: Option<DateTime<Utc>>) -> DbResult<bool> {
    let affected = with_pool!(db, |pool| {
        sqlx::query("UPDATE runs SET deleted_at = $2 WHERE id = $1")
            .bind(run_id)
            .bind(at)
            .execute(pool)
            .await?
            .rows_affected()
    });
    Ok(affected > 0)
}

/// Sets when finished run `run_id` ended, with its duration, as a client
/// reports it after the fact (MLflow's `runs/update` with an `end_time`).
/// Only a run in `status` (its current, finished status) is changed.
pub async fn set_finished_at(
    db: &Db,
    run_id: i64,
    status: RunStatus,
    finished_at: DateTime<Utc>,
    duration: Option<f64>,
) -> DbResult<bool> {
    let affected = with_pool!(db, |pool| {
        sqlx::query("UPDATE runs SET finished_at = $2, duration = $3 WHERE id = $1 AND status = $4")
            .bind(run_id)
            .bind(finished_at)
            .bind(duration)
            .bind(status.as_str())
            .execute(pool)
            .await?
            .rows_affected()
    });
    Ok(affected > 0)
}
