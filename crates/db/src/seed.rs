//! Bulk fixtures for benchmarks and browser tests: many runs written in a
//! few statements, as the API would leave them (a finished run with params
//! and the metric summaries its points would have produced), without
//! paying one transaction per run.

use chrono::{DateTime, Duration, Utc};
use sqlx::types::Json;
use uuid::Uuid;

use crate::{Db, DbResult, with_pool};

/// Rows per INSERT statement (the widest row binds 12 values).
const CHUNK: usize = 1000;

/// A deterministic pseudo-random fraction in `[0, 1)` for `(i, salt)`.
pub fn fraction(i: u64, salt: u64) -> f64 {
    let mut x = i
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add(salt.wrapping_mul(0xBF58_476D_1CE4_E5B9));
    x ^= x >> 31;
    x = x.wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^= x >> 29;
    (x >> 11) as f64 / (1u64 << 53) as f64
}

/// Inserts `count` succeeded runs into project `project_id`, created a
/// second apart before `now`, with params `lr` (number), `batch` (integer)
/// and `model` (text), and summaries of metrics `loss` and `acc` (10
/// points each). One transaction.
pub async fn runs(db: &Db, project_id: i64, count: usize, now: DateTime<Utc>) -> DbResult<()> {
    let models = ["cnn", "rnn", "mlp", "vit"];
    with_pool!(db, |pool| {
        let mut tx = pool.begin().await?;
        for start in (0..count).step_by(CHUNK) {
            let end = (start + CHUNK).min(count);
            let mut insert = sqlx::QueryBuilder::new(
                "INSERT INTO runs (uuid, project_id, name, description, tags, status, content,
                     inputs, outputs, created_at, updated_at, started_at, finished_at, duration) ",
            );
            insert.push_values(start..end, |mut row, i| {
                let n = i as u64;
                let created = now - Duration::seconds((count - i) as i64);
                let inputs = serde_json::json!({
                    "lr": (fraction(n, 1) * 1000.0).round() / 10_000.0,
                    "batch": 16 << (n % 4),
                    "model": models[i % models.len()],
                });
                row.push_bind(Uuid::new_v4())
                    .push_bind(project_id)
                    .push_bind(format!("run-{i}"))
                    .push_bind("")
                    .push_bind(Json(Vec::<String>::new()))
                    .push_bind("succeeded")
                    .push_bind("")
                    .push_bind(Json(inputs))
                    .push_bind(Json(serde_json::Map::new()))
                    .push_bind(created)
                    .push_bind(created)
                    .push_bind(created)
                    .push_bind(created + Duration::seconds(60))
                    .push_bind(60.0_f64);
            });
            insert.push(" RETURNING id");
            let ids: Vec<i64> = insert.build_query_scalar().fetch_all(&mut *tx).await?;
            let mut summaries = sqlx::QueryBuilder::new(
                "INSERT INTO run_metric_summaries (run_id, project_id, key, last_value, last_is_nan,
                     last_step, last_timestamp, min_value, max_value, count) ",
            );
            let rows: Vec<(i64, &str, f64)> = ids
                .iter()
                .enumerate()
                .flat_map(|(j, &id)| {
                    let n = (start + j) as u64;
                    [
                        (id, "loss", fraction(n, 2)),
                        (id, "acc", 0.5 + fraction(n, 3) / 2.0),
                    ]
                })
                .collect();
            summaries.push_values(rows, |mut row, (id, key, value)| {
                row.push_bind(id)
                    .push_bind(project_id)
                    .push_bind(key)
                    .push_bind(value)
                    .push_bind(false)
                    .push_bind(9_i64)
                    .push_bind(now.timestamp_millis())
                    .push_bind(value.min(0.99) * 0.9)
                    .push_bind(value.max(0.01) * 1.1)
                    .push_bind(10_i64);
            });
            summaries.build().execute(&mut *tx).await?;
        }
        tx.commit().await?;
    });
    Ok(())
}

/// Brings the database to the state autovacuum leaves it in a little
/// after a bulk load: planner statistics refreshed and, on PostgreSQL, the
/// new rows vacuumed (an insert-only table is vacuumed once its inserts
/// pass a threshold; that sets the visibility map, which index-only scans
/// need). Without it, a benchmark times autovacuum working in the
/// background as much as its own queries.
pub async fn analyze(db: &Db) -> DbResult<()> {
    let statement = match db.backend() {
        crate::Backend::Postgres => "VACUUM (ANALYZE)",
        crate::Backend::Sqlite => "ANALYZE",
    };
    with_pool!(db, |pool| {
        sqlx::query(statement).execute(pool).await?;
    });
    Ok(())
}
