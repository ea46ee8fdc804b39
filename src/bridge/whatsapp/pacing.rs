//! How fast the gateway goes: the send budget (replies a minute), how long
//! "typing..." shows before a reply, the wait before a failed send goes again,
//! and the reconnect backoff.

use std::time::Duration;

/// The send budget: a token bucket of `per_minute` tokens refilled continuously.
/// One per gateway run, shared by its connections' senders.
#[derive(Debug)]
pub struct Budget {
    per_minute: f64,
    tokens: f64,
    at: tokio::time::Instant,
}

impl Budget {
    /// A full bucket.
    pub fn new(per_minute: u32) -> Self {
        let per_minute = f64::from(per_minute.max(1));
        Self {
            per_minute,
            tokens: per_minute,
            at: tokio::time::Instant::now(),
        }
    }

    /// Takes a token when one is left, else says how long until one is and takes
    /// nothing: a sender stopped while it waits (its connection lost) leaves no debt.
    pub fn try_take(&mut self) -> Result<(), Duration> {
        self.try_take_at(tokio::time::Instant::now())
    }

    /// [`Self::try_take`] at time `now` (not before the last take).
    pub fn try_take_at(&mut self, now: tokio::time::Instant) -> Result<(), Duration> {
        let refill = now.duration_since(self.at).as_secs_f64() * self.per_minute / 60.0;
        self.tokens = (self.tokens + refill).min(self.per_minute);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            // At most a minute: fewer than one token is missing.
            Err(Duration::from_secs_f64(
                (1.0 - self.tokens) * 60.0 / self.per_minute,
            ))
        }
    }
}

/// The longest "typing..." shown before a reply. The serial sender holds every
/// later reply behind the one typing, so an entry with a huge `delayMs` (a bug
/// or hostile input) must not type for days; a minute is already far longer
/// than any human-looking delay the worker asks for.
pub const MAX_TYPING_DELAY: Duration = Duration::from_secs(60);

/// How long a reply shows "typing...": its `delayMs` (0 when not a number), at
/// most [`MAX_TYPING_DELAY`].
pub fn typing_delay(delay_ms: &str) -> Duration {
    Duration::from_millis(delay_ms.trim().parse().unwrap_or(0)).min(MAX_TYPING_DELAY)
}

/// The wait after a reply's `failures`-th failed send: `base`, doubled after each
/// further failure, at most 5 min.
pub fn retry_wait(base: Duration, failures: u32) -> Duration {
    let factor = 1u32 << failures.saturating_sub(1).min(16);
    base.saturating_mul(factor).min(Duration::from_secs(300))
}

/// Exponential backoff from 1 s to 5 min.
#[derive(Debug, Default)]
pub(super) struct Backoff {
    step: u32,
}

impl Backoff {
    /// The wait before the next try, twice the last one.
    pub(super) fn next(&mut self) -> Duration {
        let d = Duration::from_secs(1u64 << self.step.min(8)).min(Duration::from_secs(300));
        self.step += 1;
        d
    }

    /// Starts over from 1 s (a connection was made: the next loss is new trouble).
    pub(super) fn reset(&mut self) {
        self.step = 0;
    }
}

/// `d` in ms, as the times in Redis and the state are kept.
pub(super) fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_wait_longer_each_time_up_to_five_minutes() {
        let base = Duration::from_secs(5);
        let waits: Vec<u64> = (1..=5).map(|n| retry_wait(base, n).as_secs()).collect();
        assert_eq!(waits, [5, 10, 20, 40, 80]);
        assert_eq!(retry_wait(base, 40), Duration::from_secs(300));
        assert_eq!(retry_wait(base, 0), base);
    }

    #[test]
    fn the_send_budget_lets_a_minute_s_worth_go_then_spaces_the_rest() {
        let mut budget = Budget::new(2);
        let start = tokio::time::Instant::now();
        assert_eq!(budget.try_take_at(start), Ok(()));
        assert_eq!(budget.try_take_at(start), Ok(()));
        let wait = budget.try_take_at(start).expect_err("spent");
        assert_eq!(wait, Duration::from_secs(30));
        assert_eq!(
            budget.try_take_at(start),
            Err(wait),
            "a refused take costs nothing"
        );
        assert_eq!(budget.try_take_at(start + wait), Ok(()));
        assert!(budget.try_take_at(start + wait).is_err());
    }
}
