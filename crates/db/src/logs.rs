//! The `run_logs` table: a run's output, line by line.
//!
//! A line's id is its cursor: readers ask for lines after the last id they
//! saw, so a reconnecting reader neither repeats nor misses a line. This
//! holds because each run has one writer (its executor) that appends in
//! order, one transaction per batch.

use chrono::{DateTime, Utc};
use trellis_domain::logs::{LogLine, Stream};

use crate::{Db, DbError, DbResult, with_pool};

/// A stored line and its cursor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredLine {
    pub cursor: i64,
    pub line: LogLine,
}

fn stream_name(stream: Stream) -> &'static str {
    match stream {
        Stream::Stdout => "stdout",
        Stream::Stderr => "stderr",
    }
}

/// Rows per INSERT: 4 binds each stays far below SQLite's 32,766 limit.
const ROWS_PER_INSERT: usize = 1000;

/// Appends `lines` to run `run_id`, in order, in one transaction, and
/// returns the cursor of the last one (`None` when `lines` is empty).
pub async fn append(db: &Db, run_id: i64, lines: &[LogLine]) -> DbResult<Option<i64>> {
    if lines.is_empty() {
        return Ok(None);
    }
    let mut last = 0_i64;
    with_pool!(db, |pool| {
        let mut tx = pool.begin().await?;
        for chunk in lines.chunks(ROWS_PER_INSERT) {
            let mut insert =
                sqlx::QueryBuilder::new("INSERT INTO run_logs (run_id, stream, text, at) ");
            insert.push_values(chunk, |mut row, line| {
                row.push_bind(run_id)
                    .push_bind(stream_name(line.stream))
                    .push_bind(&line.text)
                    .push_bind(line.at);
            });
            // Ids grow in insertion order within one statement on both
            // databases; the largest is the new end of the log.
            insert.push(" RETURNING id");
            let ids: Vec<i64> = insert.build_query_scalar().fetch_all(&mut *tx).await?;
            last = last.max(ids.into_iter().max().unwrap_or_default());
        }
        tx.commit().await?;
    });
    Ok(Some(last))
}

/// Up to `limit` lines of run `run_id` after cursor `after` (0: from the
/// start), oldest first.
pub async fn after(db: &Db, run_id: i64, after: i64, limit: u32) -> DbResult<Vec<StoredLine>> {
    let rows: Vec<(i64, String, String, DateTime<Utc>)> = with_pool!(db, |pool| {
        sqlx::query_as(
            "SELECT id, stream, text, at FROM run_logs
             WHERE run_id = $1 AND id > $2 ORDER BY id LIMIT $3",
        )
        .bind(run_id)
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(pool)
        .await?
    });
    rows.into_iter()
        .map(|(cursor, stream, text, at)| {
            let stream = match stream.as_str() {
                "stdout" => Stream::Stdout,
                "stderr" => Stream::Stderr,
                other => {
                    return Err(DbError::Corrupt {
                        column: "run_logs.stream",
                        message: format!("unknown stream `{other}`"),
                    });
                }
            };
            Ok(StoredLine {
                cursor,
                line: LogLine { at, stream, text },
            })
        })
        .collect()
}
