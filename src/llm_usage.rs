//! The language model's usage figures as plain data, shared by the engine that
//! counts them and the store that writes them to `SECONDME:llm…`: what was
//! counted since the last flush (per model and per minute), the breaker's
//! state, and [`Accounts`], through which the store takes them without seeing
//! the engine.

use std::time::Duration;

use crate::schema::LLM_LATENCY_SAMPLES;

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
    /// Each answered call's latency, ms, oldest first; at most
    /// [`LLM_LATENCY_SAMPLES`], as in Redis: enough for a p95 over the recent
    /// calls, bounded whatever the call rate.
    pub latencies: Vec<u64>,
}

impl ModelUsage {
    /// Adds `newer`'s counts; its latencies go after these ones.
    pub(crate) fn add(&mut self, newer: &ModelUsage) {
        self.calls = self.calls.saturating_add(newer.calls);
        self.errors = self.errors.saturating_add(newer.errors);
        self.prompt_tokens = self.prompt_tokens.saturating_add(newer.prompt_tokens);
        self.completion_tokens = self
            .completion_tokens
            .saturating_add(newer.completion_tokens);
        self.latency_ms = self.latency_ms.saturating_add(newer.latency_ms);
        self.latencies.extend_from_slice(&newer.latencies);
        keep_last(&mut self.latencies, LLM_LATENCY_SAMPLES);
    }
}

/// Replies, tokens and errors of one minute, over every model.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MinuteUsage {
    /// Calls answered.
    pub replies: u64,
    /// Tokens (prompt + completion) of those calls.
    pub tokens: u64,
    /// Calls failed.
    pub errors: u64,
}

impl MinuteUsage {
    /// Adds `other`'s counts.
    pub(crate) fn add(&mut self, other: MinuteUsage) {
        self.replies = self.replies.saturating_add(other.replies);
        self.tokens = self.tokens.saturating_add(other.tokens);
        self.errors = self.errors.saturating_add(other.errors);
    }
}

/// What was counted since the last flush.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pending {
    /// The UTC day (days since 1970) the tokens belong to.
    pub day: i64,
    /// Counts per model.
    pub models: Vec<(String, ModelUsage)>,
    /// Counts per minute (Unix minute), oldest first.
    pub minutes: Vec<(i64, MinuteUsage)>,
}

/// A circuit breaker's state: what the control room shows and the store
/// writes as the worker's entry in `SECONDME:llm:breakers`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BreakerState {
    /// Why it is open; `None` when closed.
    pub reason: Option<String>,
    /// Time left before it closes again.
    pub retry_in: Option<Duration>,
}

/// One worker's figures as the store takes them for writing: the engine's
/// shared state implements it, so the store never depends on the engine.
pub trait Accounts {
    /// Takes the counts since the last call, for writing.
    fn take_pending(&self) -> Pending;
    /// Puts back counts that could not be written.
    fn restore(&self, pending: Pending);
    /// The day's tokens over every worker, as Redis counts them.
    fn set_spent(&self, day: i64, total: u64);
    /// Whose breaker it is: the worker's field in `SECONDME:llm:breakers`.
    fn breaker_id(&self) -> &str;
    /// The breaker now.
    fn breaker_state(&self) -> BreakerState;
    /// A model's price per million tokens (input, output), when configured.
    fn price(&self, model: &str) -> Option<[f64; 2]>;
}

/// Drops the oldest items so that at most `max` remain.
fn keep_last(items: &mut Vec<u64>, max: usize) {
    if items.len() > max {
        items.drain(..items.len() - max);
    }
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
}
