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

#[cfg(test)]
mod tests {
    use super::*;

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
