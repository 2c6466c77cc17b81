//! Times and durations as people read them. Deterministic (no "3 minutes
//! ago"), so the server-rendered text and the hydrated text agree.

use chrono::{DateTime, Utc};

/// `2026-11-26 21:40:05 UTC`.
pub fn format_time(time: DateTime<Utc>) -> String {
    time.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// `850ms`, `42s`, `3m 07s`, `2h 05m`, `3d 4h`.
pub fn format_duration(seconds: f64) -> String {
    if !seconds.is_finite() || seconds < 0.0 {
        return "–".to_owned();
    }
    if seconds < 1.0 {
        return format!("{}ms", (seconds * 1000.0).round() as u64);
    }
    let total = seconds.round() as u64;
    let (days, hours, minutes, secs) = (
        total / 86_400,
        total / 3600 % 24,
        total / 60 % 60,
        total % 60,
    );
    if days > 0 {
        format!("{days}d {hours}h")
    } else if hours > 0 {
        format!("{hours}h {minutes:02}m")
    } else if minutes > 0 {
        format!("{minutes}m {secs:02}s")
    } else {
        format!("{secs}s")
    }
}

/// Tick positions, in seconds from 0, for a time axis `span` seconds
/// long: multiples of the smallest round step (100 ms … 10 days) that
/// gives at most five intervals, so labels never crowd.
pub fn time_ticks(span: f64) -> Vec<f64> {
    const STEPS: [f64; 24] = [
        0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1800.0,
        3600.0, 7200.0, 10_800.0, 21_600.0, 43_200.0, 86_400.0, 172_800.0, 432_000.0, 864_000.0,
    ];
    if !span.is_finite() || span <= 0.0 {
        return vec![0.0];
    }
    let step = STEPS
        .iter()
        .copied()
        .find(|step| span / step <= 5.0)
        .unwrap_or_else(|| (span / 5.0).ceil());
    (0..)
        .map(|i| f64::from(i) * step)
        .take_while(|t| *t <= span + 1e-9)
        .collect()
}

/// A tick's label: `0s`, `500ms`, `30s`, `1m 00s`, ...
pub fn tick_label(seconds: f64) -> String {
    if seconds == 0.0 {
        "0s".to_owned()
    } else {
        format_duration(seconds)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_ticks_are_round_and_few() {
        assert_eq!(time_ticks(100.0), vec![0.0, 30.0, 60.0, 90.0]);
        assert_eq!(time_ticks(2.0), vec![0.0, 0.5, 1.0, 1.5, 2.0]);
        assert_eq!(time_ticks(0.0), vec![0.0]);
        assert_eq!(time_ticks(f64::NAN), vec![0.0]);
        let long = time_ticks(40.0 * 86_400.0);
        assert!(long.len() <= 6 && long[1] == 864_000.0, "{long:?}");
        for span in [0.3, 7.0, 59.0, 61.0, 3601.0, 90_000.0] {
            let ticks = time_ticks(span);
            assert!((2..=6).contains(&ticks.len()), "{span}: {ticks:?}");
            assert!(*ticks.last().unwrap() <= span + 1e-9);
        }
        assert_eq!(tick_label(0.0), "0s");
        assert_eq!(tick_label(60.0), "1m 00s");
    }

    #[test]
    fn durations_read_naturally() {
        assert_eq!(format_duration(0.25), "250ms");
        assert_eq!(format_duration(42.4), "42s");
        assert_eq!(format_duration(187.0), "3m 07s");
        assert_eq!(format_duration(7500.0), "2h 05m");
        assert_eq!(format_duration(3.0 * 86_400.0 + 4.0 * 3600.0), "3d 4h");
        assert_eq!(format_duration(f64::NAN), "–");
    }
}
