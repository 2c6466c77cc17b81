//! Tracking rules: metric, param and tag keys and values, batch limits,
//! artifact paths, and the downsampling of metric series for charts.
//!
//! The limits are MLflow's (`mlflow/utils/validation.py`), so a client that
//! works against MLflow is neither refused nor allowed more here.

use std::fmt;

/// Longest metric, param or tag key, in characters.
pub const MAX_KEY_LEN: usize = 250;
/// Longest param value, in characters.
pub const MAX_PARAM_VALUE_LEN: usize = 6000;
/// Longest tag value, in characters.
pub const MAX_TAG_VALUE_LEN: usize = 8000;
/// Most metric points in one batch.
pub const MAX_METRICS_PER_BATCH: usize = 1000;
/// Most params plus tags in one batch.
pub const MAX_PARAMS_TAGS_PER_BATCH: usize = 100;
/// Most entities (metrics, params and tags together) in one batch.
pub const MAX_ENTITIES_PER_BATCH: usize = 1000;
/// Metrics the executor samples for a run (CPU, memory, GPU) start with
/// this; the native API refuses it for user metrics so the two never mix.
pub const SYSTEM_METRIC_PREFIX: &str = "system/";
/// Most points a downsampled series may ask for.
pub const MAX_SERIES_POINTS: usize = 10_000;

/// A refused key, value or batch.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TrackingError {
    #[error("{what} key must not be empty")]
    EmptyKey { what: &'static str },
    #[error("{what} key `{key}` is longer than {MAX_KEY_LEN} characters")]
    KeyTooLong { what: &'static str, key: String },
    #[error(
        "{what} key `{key}` may only contain letters, digits, `_`, `-`, `.`, ` `, `/` and `:`, and must not contain `..` or start with `/`"
    )]
    InvalidKey { what: &'static str, key: String },
    #[error("{what} `{key}` has a value longer than {max} characters")]
    ValueTooLong {
        what: &'static str,
        key: String,
        max: usize,
    },
    #[error("metric `{key}` has a non-finite value ({value}); only finite numbers are tracked")]
    NotFinite { key: String, value: String },
    #[error(
        "metric key `{key}` starts with `{SYSTEM_METRIC_PREFIX}`, which is kept for the metrics Trellis samples itself"
    )]
    ReservedKey { key: String },
    #[error("a batch holds at most {max} {what}, got {got}")]
    BatchTooLarge {
        what: &'static str,
        max: usize,
        got: usize,
    },
}

/// Checks a metric, param or tag key (`what` names which, for the message).
pub fn check_key(what: &'static str, key: &str) -> Result<(), TrackingError> {
    if key.is_empty() {
        return Err(TrackingError::EmptyKey { what });
    }
    if key.chars().count() > MAX_KEY_LEN {
        return Err(TrackingError::KeyTooLong {
            what,
            key: key.chars().take(40).collect::<String>() + "…",
        });
    }
    let allowed = key
        .chars()
        .all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '.' | ' ' | '/' | ':'));
    // Keys become file names in some clients and paths in artifact stores:
    // refuse what could walk out of a directory.
    let escapes = key.starts_with('/') || key.split('/').any(|part| part == "..");
    if !allowed || escapes {
        return Err(TrackingError::InvalidKey {
            what,
            key: key.to_owned(),
        });
    }
    Ok(())
}

/// Checks a param (`max` = [`MAX_PARAM_VALUE_LEN`]) or tag value.
pub fn check_value(
    what: &'static str,
    key: &str,
    value: &str,
    max: usize,
) -> Result<(), TrackingError> {
    if value.chars().count() > max {
        return Err(TrackingError::ValueTooLong {
            what,
            key: key.to_owned(),
            max,
        });
    }
    Ok(())
}

/// Checks that a batch stays within `max` items of `what`.
pub fn check_batch(what: &'static str, got: usize, max: usize) -> Result<(), TrackingError> {
    if got > max {
        return Err(TrackingError::BatchTooLarge { what, max, got });
    }
    Ok(())
}

/// One logged point of a metric series.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    pub step: i64,
    /// Milliseconds since the Unix epoch.
    pub timestamp: i64,
    pub value: f64,
}

/// A metric value as stored: databases keep NaN as a flag (SQLite cannot
/// hold it) and clip infinities to the largest finite double, as MLflow
/// does, so every stored value orders and aggregates.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StoredValue {
    pub value: f64,
    pub is_nan: bool,
}

impl StoredValue {
    /// How `value` is stored.
    pub fn of(value: f64) -> Self {
        if value.is_nan() {
            Self {
                value: 0.0,
                is_nan: true,
            }
        } else {
            Self {
                value: value.clamp(f64::MIN, f64::MAX),
                is_nan: false,
            }
        }
    }

    /// The value read back (NaN where stored as NaN).
    pub fn read(self) -> f64 {
        if self.is_nan { f64::NAN } else { self.value }
    }
}

/// Reduces `points` (ordered by step) to about `target` points for a chart,
/// keeping each bucket's minimum and maximum so that spikes and dips
/// survive, plus the first and last point. A series with at most `target`
/// points is returned as is. `target` below 4 counts as 4.
pub fn downsample(points: &[Point], target: usize) -> Vec<Point> {
    let target = target.max(4);
    if points.len() <= target {
        return points.to_vec();
    }
    let (first, last) = (points[0], points[points.len() - 1]);
    let inner = &points[1..points.len() - 1];
    // Two points (min and max) per bucket, and the two ends.
    let buckets = (target - 2) / 2;
    let mut out = Vec::with_capacity(buckets * 2 + 2);
    out.push(first);
    for b in 0..buckets {
        let start = b * inner.len() / buckets;
        let end = (b + 1) * inner.len() / buckets;
        let bucket = &inner[start..end];
        let Some((min_at, max_at)) = extremes(bucket) else {
            continue;
        };
        // In order of step, so the line is drawn left to right.
        let (a, b) = if min_at <= max_at {
            (min_at, max_at)
        } else {
            (max_at, min_at)
        };
        out.push(bucket[a]);
        if b != a {
            out.push(bucket[b]);
        }
    }
    out.push(last);
    out
}

/// Indexes of the smallest and largest value of `bucket` (NaN ignored,
/// unless the bucket holds nothing else).
fn extremes(bucket: &[Point]) -> Option<(usize, usize)> {
    let mut found: Option<(usize, usize)> = None;
    for (i, p) in bucket.iter().enumerate() {
        if p.value.is_nan() {
            continue;
        }
        found = Some(match found {
            None => (i, i),
            Some((lo, hi)) => (
                if p.value < bucket[lo].value { i } else { lo },
                if p.value > bucket[hi].value { i } else { hi },
            ),
        });
    }
    found.or_else(|| (!bucket.is_empty()).then_some((0, 0)))
}

/// A relative path inside a run's artifact store: no `..`, no absolute
/// path, no empty or `.` segment, no backslash or NUL. The store still
/// checks symlinks on disk; this is the part that needs no IO.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ArtifactPath(String);

/// Why an artifact path was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("artifact path `{path}` {reason}")]
pub struct ArtifactPathError {
    pub path: String,
    pub reason: &'static str,
}

/// Longest artifact path, in bytes.
pub const MAX_ARTIFACT_PATH_LEN: usize = 1024;

impl ArtifactPath {
    /// Validates `path`. An empty path (or `/`, `.`) is the root, which
    /// only listings accept: see [`ArtifactPath::parse_dir`].
    pub fn parse(path: &str) -> Result<Self, ArtifactPathError> {
        let refuse = |reason| ArtifactPathError {
            path: path.to_owned(),
            reason,
        };
        if path.len() > MAX_ARTIFACT_PATH_LEN {
            return Err(refuse("is longer than 1024 bytes"));
        }
        if path.starts_with('/') {
            return Err(refuse("is absolute; give a path relative to the run"));
        }
        if path.contains('\\') || path.contains('\0') {
            return Err(refuse("contains a backslash or a NUL byte"));
        }
        let trimmed = path.trim_end_matches('/');
        if trimmed.is_empty() {
            return Err(refuse("names no file"));
        }
        for segment in trimmed.split('/') {
            match segment {
                ".." => return Err(refuse("goes up with `..`, out of the run's artifacts")),
                "" | "." => return Err(refuse("has an empty or `.` segment")),
                _ => {}
            }
        }
        Ok(Self(trimmed.to_owned()))
    }

    /// Like [`ArtifactPath::parse`], but the root (`""`, `.`, `/`) is
    /// `None`, for listings.
    pub fn parse_dir(path: &str) -> Result<Option<Self>, ArtifactPathError> {
        if matches!(path.trim_matches('/'), "" | ".") && !path.contains("..") {
            return Ok(None);
        }
        Self::parse(path.trim_start_matches("./")).map(Some)
    }

    /// The path's `/`-separated segments.
    pub fn segments(&self) -> impl Iterator<Item = &str> {
        self.0.split('/')
    }

    /// The path as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ArtifactPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn keys_follow_mlflow_rules() {
        assert!(check_key("metric", "loss").is_ok());
        assert!(check_key("metric", "train/loss:epoch 1.5-x").is_ok());
        assert!(check_key("metric", "").is_err());
        assert!(check_key("metric", "/abs").is_err());
        assert!(check_key("metric", "a/../b").is_err());
        assert!(check_key("metric", "a;b").is_err());
        assert!(check_key("metric", &"k".repeat(251)).is_err());
        assert!(check_key("metric", &"k".repeat(250)).is_ok());
    }

    #[test]
    fn stored_values_keep_nan_as_a_flag_and_clip_infinities() {
        assert!(StoredValue::of(f64::NAN).is_nan);
        assert!(StoredValue::of(f64::NAN).read().is_nan());
        assert_eq!(StoredValue::of(f64::INFINITY).value, f64::MAX);
        assert_eq!(StoredValue::of(f64::NEG_INFINITY).value, f64::MIN);
        assert_eq!(StoredValue::of(1.5).read(), 1.5);
    }

    #[test]
    fn artifact_paths_refuse_escapes() {
        for bad in [
            "../x",
            "a/../../b",
            "/etc/passwd",
            "a//b",
            "./a",
            "a\\b",
            "..",
            "",
        ] {
            assert!(ArtifactPath::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(ArtifactPath::parse("a/b.txt").unwrap().as_str(), "a/b.txt");
        assert_eq!(ArtifactPath::parse("dir/").unwrap().as_str(), "dir");
        assert_eq!(ArtifactPath::parse_dir("").unwrap(), None);
        assert_eq!(ArtifactPath::parse_dir("/").unwrap(), None);
        assert!(ArtifactPath::parse_dir("../..").is_err());
        assert!(ArtifactPath::parse_dir("a/..").is_err());
    }

    fn series(values: &[f64]) -> Vec<Point> {
        values
            .iter()
            .enumerate()
            .map(|(i, &value)| Point {
                step: i as i64,
                timestamp: i as i64,
                value,
            })
            .collect()
    }

    #[test]
    fn short_series_are_returned_whole() {
        let points = series(&[1.0, 2.0, 3.0]);
        assert_eq!(downsample(&points, 100), points);
    }

    proptest! {
        #[test]
        fn downsampling_keeps_extremes_ends_and_order(
            values in proptest::collection::vec(-1e6f64..1e6, 1..3000),
            target in 4usize..500,
        ) {
            let points = series(&values);
            let out = downsample(&points, target);
            prop_assert!(out.len() <= target.max(4) + 1);
            prop_assert_eq!(out.first(), points.first());
            prop_assert_eq!(out.last(), points.last());
            prop_assert!(out.windows(2).all(|w| w[0].step < w[1].step));
            let max = values.iter().cloned().fold(f64::MIN, f64::max);
            let min = values.iter().cloned().fold(f64::MAX, f64::min);
            prop_assert!(out.iter().any(|p| p.value == max));
            prop_assert!(out.iter().any(|p| p.value == min));
        }
    }
}
