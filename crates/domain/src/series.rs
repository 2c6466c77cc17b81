//! Reading a long metric series at chart resolution without scanning it.
//!
//! Every point is also folded, at ingest, into buckets of four widths
//! (16, 256, 4096 and 65,536 consecutive steps): each bucket keeps its point
//! count and its smallest and largest value with their step and time. A
//! chart of `target` points over a step range is then read as a few
//! segments ([`plan`]): whole buckets of the coarsest level that still gives
//! about `target` points or more in the middle, finer buckets towards the
//! edges, and raw points at the very ends. The segments tile the range
//! exactly, so the extremes of the range are the extremes of what is read:
//! a spike anywhere in the range survives, and a million-point series costs
//! a few thousand rows.

/// Steps per bucket at levels 1 to 4 (level 0 is the raw points).
pub const BUCKET_WIDTHS: [i64; 4] = [16, 256, 4096, 65_536];

/// Rows a read may cost per point asked for, before a coarser level is
/// used. Buckets give two points each, so 4 keeps about twice the target
/// resolution for the final min/max reduction.
const ROWS_PER_POINT: i64 = 4;

/// Steps per bucket at `level` (1 to 4); level 0 is a single step.
pub fn width(level: u8) -> i64 {
    match level {
        0 => 1,
        l => BUCKET_WIDTHS[usize::from(l.min(4)) - 1],
    }
}

/// The bucket of `step` at `level` (floor division, so negative steps work).
pub fn bucket_of(step: i64, level: u8) -> i64 {
    step.div_euclid(width(level))
}

/// The steps bucket `bucket` of `level` covers, inclusive.
pub fn bucket_steps(bucket: i64, level: u8) -> (i64, i64) {
    let w = width(level);
    let start = bucket.saturating_mul(w);
    (start, start.saturating_add(w - 1))
}

/// One part of a planned read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Segment {
    /// Raw points with steps in `from..=to`.
    Raw { from: i64, to: i64 },
    /// Buckets `from..=to` of `level` (1 to 4).
    Buckets { level: u8, from: i64, to: i64 },
}

impl Segment {
    /// The steps the segment covers, inclusive.
    pub fn steps(self) -> (i64, i64) {
        match self {
            Segment::Raw { from, to } => (from, to),
            Segment::Buckets { level, from, to } => {
                (bucket_steps(from, level).0, bucket_steps(to, level).1)
            }
        }
    }
}

/// The level a chart of `target` points over steps `low..=high` reads its
/// middle from: the finest whose bucket count stays within the row budget.
pub fn level_for(low: i64, high: i64, target: usize) -> u8 {
    let span = i128::from(high) - i128::from(low) + 1;
    let budget = i128::from(ROWS_PER_POINT) * target.max(1) as i128;
    (0..=4)
        .find(|&level| span / i128::from(width(level)) <= budget)
        .unwrap_or(4)
}

/// The segments that tile steps `low..=high` (in step order) for a chart of
/// about `target` points. An empty plan when `low > high`.
pub fn plan(low: i64, high: i64, target: usize) -> Vec<Segment> {
    let mut out = Vec::new();
    if low <= high {
        cover(low, high, level_for(low, high, target), &mut out);
    }
    out
}

/// Tiles `low..=high` with whole buckets of `level` where they fit and
/// finer levels at the edges.
fn cover(low: i64, high: i64, level: u8, out: &mut Vec<Segment>) {
    if low > high {
        return;
    }
    if level == 0 {
        out.push(Segment::Raw {
            from: low,
            to: high,
        });
        return;
    }
    let w = width(level);
    // First bucket starting at or after `low`, last ending at or before `high`.
    let first = low.div_euclid(w) + i64::from(low.rem_euclid(w) != 0);
    let last = high.div_euclid(w) - i64::from(high.rem_euclid(w) != w - 1);
    if first > last {
        cover(low, high, level - 1, out);
        return;
    }
    let (start, _) = bucket_steps(first, level);
    let (_, end) = bucket_steps(last, level);
    if low < start {
        cover(low, start - 1, level - 1, out);
    }
    out.push(Segment::Buckets {
        level,
        from: first,
        to: last,
    });
    if end < high {
        cover(end + 1, high, level - 1, out);
    }
}

/// Exponential moving average of `values` with smoothing `weight` in
/// `0..1` (0 leaves values as they are), debiased as TensorBoard does so
/// the start is not pulled to zero. NaN points stay NaN and do not move the
/// average.
pub fn smooth(values: &[f64], weight: f64) -> Vec<f64> {
    let weight = weight.clamp(0.0, 0.999);
    let mut last = 0.0;
    let mut seen = 0_i32;
    values
        .iter()
        .map(|&v| {
            if v.is_nan() || weight == 0.0 {
                return v;
            }
            last = last * weight + (1.0 - weight) * v;
            seen = seen.saturating_add(1);
            last / (1.0 - weight.powi(seen))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn buckets_use_floor_division() {
        assert_eq!(bucket_of(0, 1), 0);
        assert_eq!(bucket_of(15, 1), 0);
        assert_eq!(bucket_of(16, 1), 1);
        assert_eq!(bucket_of(-1, 1), -1);
        assert_eq!(bucket_steps(-1, 1), (-16, -1));
        assert_eq!(bucket_of(70_000, 4), 1);
    }

    #[test]
    fn a_million_steps_read_in_a_few_thousand_rows() {
        let segments = plan(0, 999_999, 1000);
        let rows: i64 = segments
            .iter()
            .map(|s| match *s {
                Segment::Raw { from, to } => to - from + 1,
                Segment::Buckets { from, to, .. } => to - from + 1,
            })
            .sum();
        assert!(rows < 4200, "{rows} rows: {segments:?}");
        assert!(matches!(segments[0], Segment::Buckets { level: 2, .. }));
    }

    #[test]
    fn short_ranges_read_raw_points() {
        assert_eq!(plan(5, 900, 1000), vec![Segment::Raw { from: 5, to: 900 }]);
        assert_eq!(plan(3, 2, 1000), vec![]);
    }

    #[test]
    fn edges_are_finer_than_the_middle() {
        let segments = plan(10, 100_000, 100);
        assert_eq!(segments.first(), Some(&Segment::Raw { from: 10, to: 15 }));
        assert!(segments.contains(&Segment::Buckets {
            level: 2,
            from: 1,
            to: 389
        }));
        assert_eq!(
            segments.last(),
            Some(&Segment::Raw {
                from: 100_000,
                to: 100_000
            })
        );
    }

    #[test]
    fn smoothing_is_debiased_and_skips_nan() {
        let out = smooth(&[1.0, f64::NAN, 1.0, 1.0], 0.9);
        assert!((out[0] - 1.0).abs() < 1e-12);
        assert!(out[1].is_nan());
        assert!((out[3] - 1.0).abs() < 1e-12);
        assert_eq!(smooth(&[1.0, 5.0], 0.0), vec![1.0, 5.0]);
    }

    proptest! {
        /// The plan tiles the range exactly, in order, and stays within
        /// the row budget (plus the finer edges).
        #[test]
        fn plans_tile_the_range(low in -200_000_i64..2_000_000, len in 0_i64..3_000_000, target in 1_usize..3000) {
            let high = low + len;
            let segments = plan(low, high, target);
            let mut next = low;
            let mut rows = 0_i64;
            for s in &segments {
                let (from, to) = s.steps();
                prop_assert_eq!(from, next);
                prop_assert!(to >= from);
                next = to + 1;
                rows += match *s {
                    Segment::Raw { from, to } => to - from + 1,
                    Segment::Buckets { from, to, .. } => to - from + 1,
                };
            }
            prop_assert_eq!(next, high + 1);
            let budget = ROWS_PER_POINT * target as i64;
            // The middle stays within the budget (unless even the coarsest
            // level exceeds it); each finer level adds at most 15 rows per
            // edge.
            let middle = budget.max(len / 65_536 + 1);
            prop_assert!(rows <= middle + 2 * 15 * 4, "{} rows for {:?}", rows, segments);
        }
    }
}
