//! Named queues defined through the API, and the runs waiting or active in
//! each queue.

use chrono::{DateTime, Utc};
use trellis_domain::lifecycle::RunStatus;
use trellis_domain::scheduling::ExecutorName;

use sqlx::AssertSqlSafe;

use crate::runs::bind_list;
use crate::{Db, DbError, DbResult, with_pool};

/// A stored queue definition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueRow {
    pub name: String,
    pub concurrency: u32,
    pub priority: i32,
    /// The executor its runs go to; `None`: the scheduler's default.
    pub executor: Option<ExecutorName>,
}

/// Every stored queue, by name.
pub async fn list(db: &Db) -> DbResult<Vec<QueueRow>> {
    let rows: Vec<(String, i64, i64, Option<String>)> = with_pool!(db, |pool| {
        sqlx::query_as("SELECT name, concurrency, priority, executor FROM queues ORDER BY name")
            .fetch_all(pool)
            .await?
    });
    rows.into_iter()
        .map(|(name, concurrency, priority, executor)| {
            let executor = executor
                .map(|text| ExecutorName::parse(&text))
                .transpose()
                .map_err(|message| DbError::Corrupt {
                    column: "queues.executor",
                    message,
                })?;
            Ok(QueueRow {
                name,
                concurrency: u32::try_from(concurrency).unwrap_or(u32::MAX),
                priority: i32::try_from(priority).unwrap_or_default(),
                executor,
            })
        })
        .collect()
}

/// Creates or replaces queue `queue.name`.
pub async fn upsert(db: &Db, queue: &QueueRow, now: DateTime<Utc>) -> DbResult<()> {
    with_pool!(db, |pool| {
        sqlx::query(
            "INSERT INTO queues (name, concurrency, priority, executor, updated_at)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (name) DO UPDATE
             SET concurrency = EXCLUDED.concurrency, priority = EXCLUDED.priority,
                 executor = EXCLUDED.executor, updated_at = EXCLUDED.updated_at",
        )
        .bind(&queue.name)
        .bind(i64::from(queue.concurrency))
        .bind(i64::from(queue.priority))
        .bind(queue.executor.map(ExecutorName::as_str))
        .bind(now)
        .execute(pool)
        .await?;
    });
    Ok(())
}

/// Deletes queue `name`; whether it existed.
pub async fn delete(db: &Db, name: &str) -> DbResult<bool> {
    let affected = with_pool!(db, |pool| {
        sqlx::query("DELETE FROM queues WHERE name = $1")
            .bind(name)
            .execute(pool)
            .await?
            .rows_affected()
    });
    Ok(affected == 1)
}

/// How many runs are in each of `statuses`, by queue (`None`: the default
/// queue), in one query.
pub async fn counts(
    db: &Db,
    statuses: &[RunStatus],
) -> DbResult<Vec<(Option<String>, RunStatus, i64)>> {
    let sql = format!(
        "SELECT queue, status, COUNT(*) FROM runs WHERE status IN ({}) GROUP BY queue, status",
        bind_list(statuses.len(), 1)
    );
    let rows: Vec<(Option<String>, String, i64)> = with_pool!(db, |pool| {
        let mut query = sqlx::query_as(AssertSqlSafe(sql.clone()));
        for status in statuses {
            query = query.bind(status.as_str());
        }
        query.fetch_all(pool).await?
    });
    rows.into_iter()
        .map(|(queue, status, count)| {
            let status =
                status
                    .parse()
                    .map_err(
                        |e: trellis_domain::lifecycle::UnknownStatus| DbError::Corrupt {
                            column: "runs.status",
                            message: e.to_string(),
                        },
                    )?;
            Ok((queue, status, count))
        })
        .collect()
}
