//! Metric buckets (`run_metric_buckets`): each series folded at ingest into
//! buckets of 16 to 65,536 steps, so charts of long series read a few
//! thousand rows. What to read is decided by `trellis_domain::series::plan`.

use std::collections::BTreeMap;

use trellis_domain::series::{BUCKET_WIDTHS, bucket_of};
use trellis_domain::tracking::{Point, StoredValue};

use crate::tracking::{NewPoint, StoredPoint};
use crate::{Db, DbResult, with_pool};

/// A point of a bucket: its value, step and time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Extreme {
    pub value: f64,
    pub step: i64,
    pub timestamp: i64,
}

/// What one bucket of a series holds.
#[derive(Debug, Clone, PartialEq)]
pub struct Bucket {
    pub bucket: i64,
    /// Every point of the bucket, NaN included.
    pub count: i64,
    /// Smallest and largest value; `None` when the bucket holds only NaN.
    pub min: Option<Extreme>,
    pub max: Option<Extreme>,
}

impl Bucket {
    /// Its min and max as chart points, in step order (one when they are
    /// the same point).
    pub fn points(&self) -> Vec<Point> {
        let as_point = |e: Extreme| Point {
            step: e.step,
            timestamp: e.timestamp,
            value: e.value,
        };
        match (self.min, self.max) {
            (Some(lo), Some(hi)) if (lo.step, lo.timestamp) == (hi.step, hi.timestamp) => {
                vec![as_point(lo)]
            }
            (Some(lo), Some(hi)) if (lo.step, lo.timestamp) <= (hi.step, hi.timestamp) => {
                vec![as_point(lo), as_point(hi)]
            }
            (Some(lo), Some(hi)) => vec![as_point(hi), as_point(lo)],
            _ => Vec::new(),
        }
    }

    fn add(&mut self, p: &NewPoint) {
        self.count += 1;
        let stored = StoredValue::of(p.value);
        if stored.is_nan {
            return;
        }
        let here = Extreme {
            value: stored.value,
            step: p.step,
            timestamp: p.timestamp,
        };
        // Ties keep the earliest step, as the migration's backfill does.
        if self
            .min
            .is_none_or(|m| (here.value, here.step) < (m.value, m.step))
        {
            self.min = Some(here);
        }
        if self
            .max
            .is_none_or(|m| here.value > m.value || (here.value == m.value && here.step < m.step))
        {
            self.max = Some(here);
        }
    }
}

/// The buckets a batch's points alone fill, per (key, level, bucket).
pub(crate) fn batch_buckets(points: &[NewPoint]) -> Vec<(&str, u8, Bucket)> {
    let mut out: BTreeMap<(&str, u8, i64), Bucket> = BTreeMap::new();
    for p in points {
        for level in 1..=BUCKET_WIDTHS.len() as u8 {
            let bucket = bucket_of(p.step, level);
            out.entry((p.key.as_str(), level, bucket))
                .or_insert(Bucket {
                    bucket,
                    count: 0,
                    min: None,
                    max: None,
                })
                .add(p);
        }
    }
    out.into_iter()
        .map(|((key, level, _), bucket)| (key, level, bucket))
        .collect()
}

/// The INSERT a batch's buckets are written with, before its VALUES list.
pub(crate) const UPSERT_INTO: &str =
    "INSERT INTO run_metric_buckets (run_id, key, level, bucket, count, min_value, min_step,
         min_timestamp, max_value, max_step, max_timestamp) ";

/// What follows the VALUES list: merges a batch's buckets into the stored
/// ones. In SET, `run_metric_buckets.*` are the stored values on both
/// databases and `excluded` the batch's.
pub(crate) fn upsert_conflict() -> String {
    // Ties go to the earlier step, whatever order the batches came in.
    let lower = "(excluded.min_value IS NOT NULL AND (run_metric_buckets.min_value IS NULL
        OR excluded.min_value < run_metric_buckets.min_value
        OR (excluded.min_value = run_metric_buckets.min_value
            AND excluded.min_step < run_metric_buckets.min_step)))";
    let higher = "(excluded.max_value IS NOT NULL AND (run_metric_buckets.max_value IS NULL
        OR excluded.max_value > run_metric_buckets.max_value
        OR (excluded.max_value = run_metric_buckets.max_value
            AND excluded.max_step < run_metric_buckets.max_step)))";
    let pick = |cond: &str, column: &str| {
        format!(
            "{column} = CASE WHEN {cond} THEN excluded.{column} ELSE run_metric_buckets.{column} END"
        )
    };
    format!(
        " ON CONFLICT (run_id, key, level, bucket) DO UPDATE SET
           count = run_metric_buckets.count + excluded.count,
           {}, {}, {}, {}, {}, {}",
        pick(lower, "min_value"),
        pick(lower, "min_step"),
        pick(lower, "min_timestamp"),
        pick(higher, "max_value"),
        pick(higher, "max_step"),
        pick(higher, "max_timestamp"),
    )
}

/// The first and last step of metric `key` of run `run_id`, if it has a
/// point. (Two single-aggregate subqueries: SQLite answers each from the
/// index end, but scans for a MIN and a MAX in one SELECT.)
pub async fn step_range(db: &Db, run_id: i64, key: &str) -> DbResult<Option<(i64, i64)>> {
    let row: (Option<i64>, Option<i64>) = with_pool!(db, |pool| {
        sqlx::query_as(
            "SELECT (SELECT MIN(step) FROM run_metrics WHERE run_id = $1 AND key = $2),
                    (SELECT MAX(step) FROM run_metrics WHERE run_id = $1 AND key = $2)",
        )
        .bind(run_id)
        .bind(key)
        .fetch_one(pool)
        .await?
    });
    Ok(row.0.zip(row.1))
}

type BucketTuple = (
    i64,
    i64,
    Option<f64>,
    Option<i64>,
    Option<i64>,
    Option<f64>,
    Option<i64>,
    Option<i64>,
);

/// Buckets `from..=to` of `level` of metric `key` of run `run_id`, in order.
pub async fn buckets(
    db: &Db,
    run_id: i64,
    key: &str,
    level: u8,
    from: i64,
    to: i64,
) -> DbResult<Vec<Bucket>> {
    let rows: Vec<BucketTuple> = with_pool!(db, |pool| {
        sqlx::query_as(
            "SELECT bucket, count, min_value, min_step, min_timestamp, max_value, max_step,
                    max_timestamp
             FROM run_metric_buckets
             WHERE run_id = $1 AND key = $2 AND level = $3 AND bucket >= $4 AND bucket <= $5
             ORDER BY bucket",
        )
        .bind(run_id)
        .bind(key)
        .bind(i16::from(level))
        .bind(from)
        .bind(to)
        .fetch_all(pool)
        .await?
    });
    let extreme = |value: Option<f64>, step: Option<i64>, timestamp: Option<i64>| {
        Some(Extreme {
            value: value?,
            step: step?,
            timestamp: timestamp?,
        })
    };
    Ok(rows
        .into_iter()
        .map(
            |(bucket, count, lo, lo_step, lo_ts, hi, hi_step, hi_ts)| Bucket {
                bucket,
                count,
                min: extreme(lo, lo_step, lo_ts),
                max: extreme(hi, hi_step, hi_ts),
            },
        )
        .collect())
}

/// Raw points of metric `key` of run `run_id` with steps in `from..=to`.
pub async fn raw(
    db: &Db,
    run_id: i64,
    key: &str,
    from: i64,
    to: i64,
) -> DbResult<Vec<StoredPoint>> {
    crate::tracking::series(db, run_id, key, Some((from, to))).await
}
