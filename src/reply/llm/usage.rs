//! Tokens, calls, errors and latency per model, kept until the worker's side
//! writes them to Redis (`SECONDME:llm`), and the day's tokens for the budget.
//! Also the recent calls' latencies (for percentiles) and per-minute counts
//! (for the control room's sparklines), which sums cannot give.
//! The figures themselves are plain data in [`crate::llm_usage`].

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use crate::llm_usage::{MinuteUsage, ModelUsage, Pending};

/// Most minutes kept between two flushes: a Redis outage longer than this
/// drops the oldest minutes' counts (the sums in `ModelUsage` stay whole).
const MAX_PENDING_MINUTES: usize = 120;

#[derive(Debug, Default)]
struct Inner {
    pending: HashMap<String, ModelUsage>,
    /// Unix minute to its counts.
    minutes: BTreeMap<i64, MinuteUsage>,
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
        self.record_call_at(model, prompt, completion, latency_ms, now_minute());
    }

    /// Counts an answered call in Unix minute `minute`. Token counts come from
    /// the server, so every sum saturates.
    pub fn record_call_at(
        &self,
        model: &str,
        prompt: u64,
        completion: u64,
        latency_ms: u64,
        minute: i64,
    ) {
        let tokens = prompt.saturating_add(completion);
        let mut inner = self.lock();
        inner.roll(today());
        inner.spent = inner.spent.saturating_add(tokens);
        let u = inner.pending.entry(model.to_owned()).or_default();
        u.add(&ModelUsage {
            calls: 1,
            errors: 0,
            prompt_tokens: prompt,
            completion_tokens: completion,
            latency_ms,
            latencies: vec![latency_ms],
        });
        inner.count_minute(
            minute,
            MinuteUsage {
                replies: 1,
                tokens,
                errors: 0,
            },
        );
    }

    /// Counts a failed call.
    pub fn record_error(&self, model: &str) {
        self.record_error_at(model, now_minute());
    }

    /// Counts a failed call in Unix minute `minute`.
    pub fn record_error_at(&self, model: &str, minute: i64) {
        let mut inner = self.lock();
        let u = inner.pending.entry(model.to_owned()).or_default();
        u.errors = u.errors.saturating_add(1);
        inner.count_minute(
            minute,
            MinuteUsage {
                errors: 1,
                ..MinuteUsage::default()
            },
        );
    }

    /// Tokens spent today (UTC), as far as this process knows.
    pub fn spent_today(&self) -> u64 {
        let mut inner = self.lock();
        inner.roll(today());
        inner.spent
    }

    /// Takes the counts since the last call, for writing; with the day they
    /// belong to.
    pub fn take_pending(&self) -> Pending {
        let mut inner = self.lock();
        Pending {
            day: inner.day.max(today()),
            models: std::mem::take(&mut inner.pending).into_iter().collect(),
            minutes: std::mem::take(&mut inner.minutes).into_iter().collect(),
        }
    }

    /// Puts back counts that could not be written (they are older than any
    /// counted since they were taken).
    pub fn restore(&self, pending: Pending) {
        let mut inner = self.lock();
        for (model, older) in pending.models {
            let slot = inner.pending.entry(model).or_default();
            let newer = std::mem::replace(slot, older);
            slot.add(&newer);
        }
        for (minute, u) in pending.minutes {
            inner.count_minute(minute, u);
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

    /// Adds to a minute's counts, forgetting the oldest minutes past the bound.
    fn count_minute(&mut self, minute: i64, u: MinuteUsage) {
        self.minutes.entry(minute).or_default().add(u);
        while self.minutes.len() > MAX_PENDING_MINUTES {
            self.minutes.pop_first();
        }
    }
}

/// A token count as a server wrote it: a number that is not a whole
/// non-negative `u64` (negative, fractional, past `u64::MAX`, a string, null) is
/// an unknown count, 0, rather than a reply lost for its accounting.
pub fn token_count<'de, D>(d: D) -> Result<u64, D::Error>
where
    D: serde::Deserializer<'de>,
{
    let value = <serde_json::Value as serde::Deserialize>::deserialize(d)?;
    Ok(value.as_u64().unwrap_or(0))
}

/// The current Unix minute.
pub fn now_minute() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| (d.as_secs() / 60) as i64)
}

/// Today, UTC, in days since 1970-01-01.
pub fn today() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| (d.as_secs() / 86_400) as i64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::LLM_LATENCY_SAMPLES;

    #[test]
    fn counts_are_taken_once_and_restored_on_failure() {
        let m = Meter::default();
        m.record_call("fast", 10, 2, 300);
        m.record_call("fast", 5, 1, 100);
        m.record_error("strong");
        assert_eq!(m.spent_today(), 18);
        let mut pending = m.take_pending();
        assert_eq!(pending.day, today());
        pending.models.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(pending.models[0].1.calls, 2);
        assert_eq!(pending.models[0].1.latency_ms, 400);
        assert_eq!(pending.models[0].1.latencies, vec![300, 100]);
        assert_eq!(pending.models[1].1.errors, 1);
        assert!(m.take_pending().models.is_empty());
        m.restore(pending);
        assert_eq!(m.take_pending().models.len(), 2);
        m.set_spent(today(), 1000);
        assert_eq!(m.spent_today(), 1000);
    }

    #[test]
    fn token_counts_from_a_server_saturate() {
        let m = Meter::default();
        m.record_call_at("fast", u64::MAX, u64::MAX, 1, 7);
        m.record_call_at("fast", u64::MAX, 1, 1, 7);
        assert_eq!(m.spent_today(), u64::MAX);
        let pending = m.take_pending();
        m.record_call_at("fast", u64::MAX, 0, 1, 7);
        m.restore(pending);
        let again = m.take_pending();
        assert_eq!(again.models[0].1.prompt_tokens, u64::MAX);
        assert_eq!(again.minutes[0].1.tokens, u64::MAX);
        assert_eq!(again.models[0].1.calls, 3);
    }

    #[test]
    fn latencies_keep_the_newest_samples_across_a_restore() {
        let m = Meter::default();
        for ms in 0..(LLM_LATENCY_SAMPLES as u64 + 20) {
            m.record_call_at("fast", 1, 1, ms, 7);
        }
        let pending = m.take_pending();
        let lat = &pending.models[0].1.latencies;
        assert_eq!(lat.len(), LLM_LATENCY_SAMPLES);
        assert_eq!(lat.first(), Some(&20));
        m.record_call_at("fast", 1, 1, 9999, 8);
        m.restore(pending);
        let again = m.take_pending();
        let lat = &again.models[0].1.latencies;
        assert_eq!(lat.len(), LLM_LATENCY_SAMPLES);
        // Restored samples are older: the one counted meanwhile stays newest.
        assert_eq!(lat.last(), Some(&9999));
        assert_eq!(again.models[0].1.calls, LLM_LATENCY_SAMPLES as u64 + 21);
    }

    #[test]
    fn minutes_count_replies_tokens_and_errors_and_stay_bounded() {
        let m = Meter::default();
        m.record_call_at("fast", 10, 2, 300, 100);
        m.record_call_at("strong", 20, 8, 900, 100);
        m.record_error_at("strong", 101);
        let pending = m.take_pending();
        assert_eq!(
            pending.minutes,
            vec![
                (
                    100,
                    MinuteUsage {
                        replies: 2,
                        tokens: 40,
                        errors: 0
                    }
                ),
                (
                    101,
                    MinuteUsage {
                        replies: 0,
                        tokens: 0,
                        errors: 1
                    }
                ),
            ]
        );
        m.restore(pending);
        m.record_error_at("fast", 101);
        assert_eq!(m.take_pending().minutes[1].1.errors, 2);
        for minute in 0..(MAX_PENDING_MINUTES as i64 + 30) {
            m.record_error_at("fast", minute);
        }
        let minutes = m.take_pending().minutes;
        assert_eq!(minutes.len(), MAX_PENDING_MINUTES);
        assert_eq!(minutes[0].0, 30);
    }
}
