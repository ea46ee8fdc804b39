//! Sleep hours: a daily window, in the local time of the machine running the
//! worker (`TZ`, else `/etc/localtime`, as cron does), in which the twin sends no
//! automated replies.

use std::fmt;
use std::str::FromStr;

use thiserror::Error;

const MINUTES_PER_DAY: u16 = 24 * 60;

/// A daily window `start..end` in minutes after local midnight; it may cross
/// midnight (23:00-07:00).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SleepHours {
    start: u16,
    end: u16,
}

/// Why a sleep-hours setting was rejected.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum SleepHoursError {
    /// Not `HH:MM-HH:MM`.
    #[error("{0:?} is not a window like 23:00-07:00")]
    Format(String),
    /// A time that is not on a 24-hour clock.
    #[error("{0:?} is not a time of day (00:00 to 23:59)")]
    Time(String),
    /// Start and end are the same minute.
    #[error("sleep hours {0} start and end at the same time")]
    Empty(String),
}

impl SleepHours {
    /// The window between two `HH:MM` times, as the graph's `User` stores them.
    pub fn between(start: &str, end: &str) -> Result<Self, SleepHoursError> {
        let (start, end) = (minute_of_day(start)?, minute_of_day(end)?);
        if start == end {
            return Err(SleepHoursError::Empty(format_minute(start)));
        }
        Ok(Self { start, end })
    }

    /// True when `minute` (after local midnight) falls in the window.
    pub fn contains(&self, minute: u16) -> bool {
        if self.start < self.end {
            (self.start..self.end).contains(&minute)
        } else {
            minute >= self.start || minute < self.end
        }
    }

    /// The end of the window as `HH:MM`.
    pub fn end_text(&self) -> String {
        format_minute(self.end)
    }

    /// The end of the window in minutes after local midnight.
    pub fn end_minute(&self) -> u16 {
        self.end
    }

    /// True when the local time at `unix_ms` falls in the window.
    pub fn asleep_at(&self, unix_ms: i64) -> bool {
        local_minute_of_day(unix_ms).is_some_and(|m| self.contains(m))
    }
}

impl FromStr for SleepHours {
    type Err = SleepHoursError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (start, end) = s
            .split_once('-')
            .ok_or_else(|| SleepHoursError::Format(s.to_owned()))?;
        Self::between(start, end)
    }
}

impl fmt::Display for SleepHours {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}-{}",
            format_minute(self.start),
            format_minute(self.end)
        )
    }
}

/// The sleep hours as a worker knows them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KnownHours {
    /// These hours (`None`: there are none).
    Known(Option<SleepHours>),
    /// Not known yet: where they come from (the graph) could not be read since
    /// the worker started.
    Unknown,
}

impl KnownHours {
    /// Where the local time at `unix_ms` stands against these hours.
    pub fn at(self, unix_ms: i64) -> SleepNow {
        match self {
            Self::Known(Some(w)) if w.asleep_at(unix_ms) => SleepNow::Asleep(w),
            Self::Known(_) => SleepNow::Awake,
            Self::Unknown => SleepNow::Unknown,
        }
    }
}

/// Where now stands against the sleep hours.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SleepNow {
    /// In these sleep hours.
    Asleep(SleepHours),
    /// Outside the sleep hours, or there are none.
    Awake,
    /// The sleep hours are not known yet: replies to messages kept for the end
    /// of the night wait (it may still be night).
    Unknown,
}

impl SleepNow {
    /// The sleep hours now is in, if it is known to be in them.
    pub fn asleep(self) -> Option<SleepHours> {
        match self {
            Self::Asleep(w) => Some(w),
            Self::Awake | Self::Unknown => None,
        }
    }
}

fn minute_of_day(text: &str) -> Result<u16, SleepHoursError> {
    let bad = || SleepHoursError::Time(text.trim().to_owned());
    let (h, m) = text.trim().split_once(':').ok_or_else(bad)?;
    let all_digits =
        |s: &str| !s.is_empty() && s.len() <= 2 && s.bytes().all(|b| b.is_ascii_digit());
    if !all_digits(h) || m.len() != 2 || !all_digits(m) {
        return Err(bad());
    }
    let (h, m): (u16, u16) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    if h >= 24 || m >= 60 {
        return Err(bad());
    }
    Ok(h * 60 + m)
}

fn format_minute(minute: u16) -> String {
    format!("{:02}:{:02}", minute / 60, minute % 60)
}

/// Minutes after local midnight at `unix_ms`, from the C library's time zone
/// rules (`TZ`, else `/etc/localtime`), so daylight saving time is followed.
pub fn local_minute_of_day(unix_ms: i64) -> Option<u16> {
    // `time_t` is 64-bit here but 32-bit on some targets, where the conversion can fail.
    #[allow(clippy::useless_conversion)]
    let t: libc::time_t = unix_ms.div_euclid(1000).try_into().ok()?;
    // SAFETY: `localtime_r` only reads `t` and writes into the `tm` we own; it is
    // the thread-safe variant and keeps no pointer to either after returning.
    let tm = unsafe {
        let mut tm: libc::tm = std::mem::zeroed();
        if libc::localtime_r(&t, &mut tm).is_null() {
            return None;
        }
        tm
    };
    let minute = u16::try_from(tm.tm_hour * 60 + tm.tm_min).ok()?;
    (minute < MINUTES_PER_DAY).then_some(minute)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_parse_and_print() {
        let w: SleepHours = "23:00-07:00".parse().expect("window");
        assert_eq!(w.to_string(), "23:00-07:00");
        assert_eq!(w.end_text(), "07:00");
        assert_eq!(
            SleepHours::between("9:30", "17:05")
                .expect("window")
                .to_string(),
            "09:30-17:05"
        );
        for bad in [
            "",
            "23:00",
            "24:00-07:00",
            "23:60-07:00",
            "ab:cd-07:00",
            "7-8",
            "23:0-07:00",
        ] {
            assert!(bad.parse::<SleepHours>().is_err(), "{bad}");
        }
        assert!(matches!(
            "07:00-07:00".parse::<SleepHours>(),
            Err(SleepHoursError::Empty(_))
        ));
    }

    #[test]
    fn a_window_may_cross_midnight() {
        let night: SleepHours = "23:00-07:00".parse().expect("window");
        for (minute, asleep) in [
            (23 * 60, true),
            (0, true),
            (6 * 60 + 59, true),
            (7 * 60, false),
            (12 * 60, false),
            (22 * 60 + 59, false),
        ] {
            assert_eq!(night.contains(minute), asleep, "{minute}");
        }
        let nap: SleepHours = "13:00-14:00".parse().expect("window");
        assert!(nap.contains(13 * 60 + 30));
        assert!(!nap.contains(14 * 60));
        assert!(!nap.contains(12 * 60 + 59));
    }

    #[test]
    fn unknown_hours_are_neither_asleep_nor_awake() {
        // 2025-11-25 19:46:40 UTC; the window is the whole day but the minute before it.
        let t = 1_764_100_000_000;
        let minute = local_minute_of_day(t).expect("local time");
        let start = format_minute((minute + 1) % MINUTES_PER_DAY);
        let end = format_minute(minute);
        let around = SleepHours::between(&start, &end).expect("window");
        let now = format_minute(minute);
        let next = format_minute((minute + 1) % MINUTES_PER_DAY);
        let this_minute = SleepHours::between(&now, &next).expect("window");
        assert_eq!(KnownHours::Known(None).at(t), SleepNow::Awake);
        assert_eq!(KnownHours::Known(Some(around)).at(t), SleepNow::Awake);
        assert_eq!(
            KnownHours::Known(Some(this_minute)).at(t),
            SleepNow::Asleep(this_minute)
        );
        assert_eq!(KnownHours::Unknown.at(t), SleepNow::Unknown);
        assert_eq!(KnownHours::Unknown.at(t).asleep(), None);
        assert_eq!(SleepNow::Asleep(this_minute).asleep(), Some(this_minute));
    }

    #[test]
    fn local_time_follows_the_clock() {
        // 2025-11-25 19:46:40 UTC: no daylight-saving change within the hour anywhere.
        let t = 1_764_100_000_000;
        let minute = local_minute_of_day(t).expect("local time");
        let later = local_minute_of_day(t + 61 * 60_000).expect("local time");
        assert!(minute < MINUTES_PER_DAY);
        assert_eq!((minute + 61) % MINUTES_PER_DAY, later);
    }
}

/// What the sleep hours do to a message that arrives in them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SleepMode {
    /// Never answered (the seed's behaviour).
    #[default]
    Skip,
    /// Kept, and answered in one reply per contact when the window ends.
    Defer,
}

impl SleepMode {
    /// The mode as the setting spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Skip => "skip",
            Self::Defer => "defer",
        }
    }
}

/// A sleep mode that is neither `skip` nor `defer`.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{0:?} is not a sleep mode (skip or defer)")]
pub struct UnknownSleepMode(pub String);

impl FromStr for SleepMode {
    type Err = UnknownSleepMode;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "skip" => Ok(Self::Skip),
            "defer" => Ok(Self::Defer),
            other => Err(UnknownSleepMode(other.to_owned())),
        }
    }
}
