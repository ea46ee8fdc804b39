//! Tokens, calls, errors and latency per model, kept until the worker's side
//! writes them to Redis (`SECONDME:llm`), and the day's tokens for the budget.

use std::collections::HashMap;
use std::sync::Mutex;

/// Counts of one model since the last flush.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ModelUsage {
    /// Calls answered.
    pub calls: u64,
    /// Calls failed.
    pub errors: u64,
    /// Prompt tokens.
    pub prompt_tokens: u64,
    /// Completion tokens.
    pub completion_tokens: u64,
    /// Sum of the answered calls' latencies, ms.
    pub latency_ms: u64,
}

impl ModelUsage {
    fn add(&mut self, other: &ModelUsage) {
        self.calls += other.calls;
        self.errors += other.errors;
        self.prompt_tokens += other.prompt_tokens;
        self.completion_tokens += other.completion_tokens;
        self.latency_ms += other.latency_ms;
    }
}

#[derive(Debug, Default)]
struct Inner {
    pending: HashMap<String, ModelUsage>,
    /// UTC day (days since 1970) the tokens below belong to.
    day: i64,
    /// Tokens spent that day: the last total read from Redis plus what was
    /// counted here since.
    spent: u64,
}

/// The meter of one engine, shared with the task that writes it to Redis.
#[derive(Debug, Default)]
pub struct Meter {
    inner: Mutex<Inner>,
}

impl Meter {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Counts an answered call.
    pub fn record_call(&self, model: &str, prompt: u64, completion: u64, latency_ms: u64) {
        let mut inner = self.lock();
        inner.roll(today());
        inner.spent += prompt + completion;
        let u = inner.pending.entry(model.to_owned()).or_default();
        u.calls += 1;
        u.prompt_tokens += prompt;
        u.completion_tokens += completion;
        u.latency_ms += latency_ms;
    }

    /// Counts a failed call.
    pub fn record_error(&self, model: &str) {
        self.lock()
            .pending
            .entry(model.to_owned())
            .or_default()
            .errors += 1;
    }

    /// Tokens spent today (UTC), as far as this process knows.
    pub fn spent_today(&self) -> u64 {
        let mut inner = self.lock();
        inner.roll(today());
        inner.spent
    }

    /// Takes the counts since the last call, for writing; with the day they
    /// belong to.
    pub fn take_pending(&self) -> (i64, Vec<(String, ModelUsage)>) {
        let mut inner = self.lock();
        let day = inner.day.max(today());
        (
            day,
            std::mem::take(&mut inner.pending).into_iter().collect(),
        )
    }

    /// Puts back counts that could not be written.
    pub fn restore(&self, pending: Vec<(String, ModelUsage)>) {
        let mut inner = self.lock();
        for (model, u) in pending {
            inner.pending.entry(model).or_default().add(&u);
        }
    }

    /// The day's total over every worker, as Redis counts it.
    pub fn set_spent(&self, day: i64, total: u64) {
        let mut inner = self.lock();
        inner.roll(day);
        if inner.day == day {
            inner.spent = total;
        }
    }
}

impl Inner {
    fn roll(&mut self, day: i64) {
        if day > self.day {
            self.day = day;
            self.spent = 0;
        }
    }
}

/// Today, UTC, in days since 1970-01-01.
pub fn today() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| (d.as_secs() / 86_400) as i64)
}

/// `YYYY-MM-DD` of a day since 1970-01-01 (Howard Hinnant's algorithm).
pub fn date(day: i64) -> String {
    let z = day + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(date(0), "1970-01-01");
        assert_eq!(date(19_782), "2024-02-29");
        assert_eq!(date(20_454), "2026-01-01");
    }

    #[test]
    fn counts_are_taken_once_and_restored_on_failure() {
        let m = Meter::default();
        m.record_call("fast", 10, 2, 300);
        m.record_call("fast", 5, 1, 100);
        m.record_error("strong");
        assert_eq!(m.spent_today(), 18);
        let (day, mut pending) = m.take_pending();
        assert_eq!(day, today());
        pending.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(pending[0].1.calls, 2);
        assert_eq!(pending[0].1.latency_ms, 400);
        assert_eq!(pending[1].1.errors, 1);
        assert!(m.take_pending().1.is_empty());
        m.restore(pending);
        assert_eq!(m.take_pending().1.len(), 2);
        m.set_spent(today(), 1000);
        assert_eq!(m.spent_today(), 1000);
    }
}
