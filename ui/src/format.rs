//! Pure formatting of times, durations and countdowns.
//!
//! The view and the tick logic share these so "did the displayed second
//! change?" is answered with exactly the text the user sees.

/// Whole seconds left until `deadline_ms`, rounded up so "0:00" means done.
pub fn remaining_secs(deadline_ms: i64, now_ms: i64) -> i64 {
    let left = deadline_ms.saturating_sub(now_ms);
    if left <= 0 {
        0
    } else {
        left / 1000 + i64::from(left % 1000 != 0)
    }
}

/// Countdown as `mm:ss`, or `h:mm:ss` once it is an hour or longer.
pub fn countdown(secs: i64) -> String {
    let secs = secs.max(0);
    let (h, m, s) = (secs / 3600, (secs % 3600) / 60, secs % 60);
    if h > 0 {
        format!("{h}:{m:02}:{s:02}")
    } else {
        format!("{m:02}:{s:02}")
    }
}

/// Coarse duration such as `23h12m`, `2d03h`, `12m` or `45s`.
pub fn coarse_duration(secs: i64) -> String {
    let secs = secs.max(0);
    let (d, h, m) = (secs / 86_400, (secs % 86_400) / 3600, (secs % 3600) / 60);
    if d > 0 {
        format!("{d}d{h:02}h")
    } else if h > 0 {
        format!("{h}h{m:02}m")
    } else if m > 0 {
        format!("{m}m")
    } else {
        format!("{secs}s")
    }
}

/// Human duration for pause lengths: `15 min`, `1 h`, `1 h 30 min`.
pub fn minutes_label(minutes: u64) -> String {
    let (h, m) = (minutes / 60, minutes % 60);
    match (h, m) {
        (0, m) => format!("{m} min"),
        (h, 0) => format!("{h} h"),
        (h, m) => format!("{h} h {m} min"),
    }
}

fn seconds_of_day(ms: i64, utc_offset_min: i32) -> i64 {
    let secs = ms.div_euclid(1000) + i64::from(utc_offset_min) * 60;
    secs.rem_euclid(86_400)
}

/// Wall-clock `HH:MM` of a unix-ms timestamp shifted by `utc_offset_min`.
pub fn clock_hm(ms: i64, utc_offset_min: i32) -> String {
    let s = seconds_of_day(ms, utc_offset_min);
    format!("{:02}:{:02}", s / 3600, (s % 3600) / 60)
}

/// Wall-clock `HH:MM:SS` of a unix-ms timestamp shifted by `utc_offset_min`.
pub fn clock_hms(ms: i64, utc_offset_min: i32) -> String {
    let s = seconds_of_day(ms, utc_offset_min);
    format!("{:02}:{:02}:{:02}", s / 3600, (s % 3600) / 60, s % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn countdown_formats() {
        assert_eq!(countdown(0), "00:00");
        assert_eq!(countdown(59), "00:59");
        assert_eq!(countdown(15 * 60), "15:00");
        assert_eq!(countdown(3599), "59:59");
        assert_eq!(countdown(3600), "1:00:00");
        assert_eq!(countdown(8 * 3600 - 1), "7:59:59");
        assert_eq!(countdown(-5), "00:00");
    }

    #[test]
    fn remaining_rounds_up() {
        assert_eq!(remaining_secs(10_000, 0), 10);
        assert_eq!(remaining_secs(10_000, 1), 10);
        assert_eq!(remaining_secs(10_000, 999), 10);
        assert_eq!(remaining_secs(10_000, 1000), 9);
        assert_eq!(remaining_secs(10_000, 10_000), 0);
        assert_eq!(remaining_secs(0, 10_000), 0);
        assert_eq!(remaining_secs(i64::MAX, i64::MIN), i64::MAX / 1000 + 1);
    }

    #[test]
    fn coarse_formats() {
        assert_eq!(coarse_duration(45), "45s");
        assert_eq!(coarse_duration(12 * 60 + 5), "12m");
        assert_eq!(coarse_duration(23 * 3600 + 12 * 60), "23h12m");
        assert_eq!(coarse_duration(2 * 86_400 + 3 * 3600), "2d03h");
    }

    #[test]
    fn minutes_labels() {
        assert_eq!(minutes_label(15), "15 min");
        assert_eq!(minutes_label(60), "1 h");
        assert_eq!(minutes_label(90), "1 h 30 min");
    }

    #[test]
    fn clocks() {
        let ms = (9 * 3600 + 5 * 60 + 7) * 1000;
        assert_eq!(clock_hm(ms, 0), "09:05");
        assert_eq!(clock_hms(ms, 0), "09:05:07");
        assert_eq!(clock_hm(ms, 120), "11:05");
        assert_eq!(clock_hm(0, -60), "23:00");
        assert_eq!(clock_hm(-1, 0), "23:59");
    }
}
