//! The language model's figures as the control room shows them: calls,
//! errors, tokens, cost and latency per model, replies and tokens per minute
//! over the last hour, and the circuit breaker. The binary reads them from
//! Redis (`SECONDME:llm` and its companions) and hands them in plain.

pub mod panel;

use crate::model::{LogEntry, LogKind, Model};
use crate::sanitize;
use crate::update::UpdateResult;

/// Longest model name kept, in chars.
const MAX_NAME: usize = 60;
/// Longest breaker reason kept, in chars.
const MAX_REASON: usize = 200;

/// One model's figures; mirrors the engine's `store::llm_figures::ModelFigures`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ModelFigures {
    /// The model's name (untrusted text: cleaned on the way in).
    pub name: String,
    /// Calls answered.
    pub calls: u64,
    /// Calls failed.
    pub errors: u64,
    /// Prompt tokens.
    pub prompt_tokens: u64,
    /// Completion tokens.
    pub completion_tokens: u64,
    /// Cost in millionths of a dollar, when prices are known.
    pub cost_micro_usd: Option<u64>,
    /// Median latency of the latest calls, ms.
    pub p50_ms: Option<u64>,
    /// 95th percentile latency of the latest calls, ms.
    pub p95_ms: Option<u64>,
}

/// The circuit breaker while open: the model is not called. Mirrors the
/// engine's `store::llm_figures::BreakerOpen`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BreakerOpen {
    /// The permanent error that opened it (cleaned on the way in).
    pub reason: String,
    /// When calls are tried again, ms; `None`: not said.
    pub until_ms: Option<i64>,
}

/// Everything the control room shows of the language model; mirrors the
/// engine's `store::llm_figures::Figures`, its minutes split into two series.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LlmFigures {
    /// Models, busiest first.
    pub models: Vec<ModelFigures>,
    /// The breaker, when open.
    pub breaker: Option<BreakerOpen>,
    /// Replies per minute, oldest first, the current minute last.
    pub replies_per_min: Vec<u64>,
    /// Tokens per minute, aligned with `replies_per_min`.
    pub tokens_per_min: Vec<u64>,
}

/// New figures (`None`: no language model has written any). Names and the
/// reason are cleaned; the breaker opening and closing go to the event log.
pub fn on_figures(model: &mut Model, figures: Option<LlmFigures>) -> UpdateResult {
    let figures = figures.map(clean);
    if figures == model.llm {
        return UpdateResult::default();
    }
    let before = model.llm.as_ref().and_then(|f| f.breaker.as_ref());
    let after = figures.as_ref().and_then(|f| f.breaker.as_ref());
    let note = match (before, after) {
        (None, Some(b)) => Some((
            LogKind::Connection,
            format!("language model off: {}", b.reason),
        )),
        (Some(_), None) if figures.is_some() => Some((
            LogKind::Info,
            "language model on again: its breaker closed".to_string(),
        )),
        _ => None,
    };
    if let Some((kind, text)) = note {
        model.push_log(LogEntry {
            at_ms: model.now_ms,
            kind,
            text,
        });
    }
    model.llm = figures;
    UpdateResult {
        actions: Vec::new(),
        dirty: true,
    }
}

fn clean(mut f: LlmFigures) -> LlmFigures {
    for m in &mut f.models {
        m.name = sanitize::clean(&m.name, MAX_NAME);
    }
    if let Some(b) = &mut f.breaker {
        b.reason = sanitize::clean(&b.reason, MAX_REASON);
    }
    f
}

/// `series` (one value a minute, oldest first) in at most `cells` cells: each
/// cell the mean of as many consecutive minutes as needed, grouped from the
/// newest so the last cell always ends at the current minute. A mean above
/// zero never rounds down to zero, so a quiet minute with one reply still shows.
pub fn buckets(series: &[u64], cells: usize) -> Vec<u64> {
    if cells == 0 || series.is_empty() {
        return Vec::new();
    }
    let per = series.len().div_ceil(cells);
    let mut out: Vec<u64> = series
        .rchunks(per)
        .map(|c| total(c).div_ceil(c.len() as u64))
        .collect();
    out.reverse();
    out
}

/// The sum of `series`, saturating: values come from Redis, any size.
pub fn total(series: &[u64]) -> u64 {
    series.iter().fold(0, |sum, &v| sum.saturating_add(v))
}

/// A count in at most five characters: `950`, `12.3k`, `4.1M`.
pub fn compact(n: u64) -> String {
    match n {
        0..1_000 => n.to_string(),
        1_000..999_950 => format!("{:.1}k", n as f64 / 1e3),
        999_950..999_950_000 => format!("{:.1}M", n as f64 / 1e6),
        _ => format!("{:.1}G", n as f64 / 1e9),
    }
}

/// A latency: `850ms`, `1.2s`, `42s`; `-` when unknown.
pub fn latency(ms: Option<u64>) -> String {
    match ms {
        None => "-".to_string(),
        Some(ms @ 0..1_000) => format!("{ms}ms"),
        Some(ms @ 1_000..9_950) => format!("{:.1}s", ms as f64 / 1e3),
        // Saturating: the samples come from Redis, where anything may be written.
        Some(ms) => format!("{}s", ms.saturating_add(500) / 1000),
    }
}

/// A cost in dollars: `$0.0042`, `$1.23`, `$1234`.
pub fn dollars(micro_usd: u64) -> String {
    let usd = micro_usd as f64 / 1e6;
    if usd < 1.0 {
        format!("${usd:.4}")
    } else if usd < 1000.0 {
        format!("${usd:.2}")
    } else {
        format!("${usd:.0}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_group_from_the_newest_minute() {
        let series: Vec<u64> = (1..=60).collect();
        assert_eq!(buckets(&series, 60), series);
        assert_eq!(buckets(&series, 100), series);
        let thirty = buckets(&series, 30);
        assert_eq!(thirty.len(), 30);
        assert_eq!(thirty[29], 60); // (59 + 60) / 2 rounded up
        assert_eq!(thirty[0], 2); // (1 + 2) / 2 rounded up
        // 60 minutes in at most 25 cells: 3 minutes a cell, so 20 cells.
        assert_eq!(buckets(&series, 25).len(), 20);
        // A partial oldest cell: 7 minutes in cells of 3.
        assert_eq!(buckets(&[1, 0, 0, 0, 0, 0, 9], 3), vec![1, 0, 3]);
        assert!(buckets(&series, 0).is_empty());
        assert!(buckets(&[], 5).is_empty());
    }

    #[test]
    fn a_single_reply_in_a_bucket_is_not_lost() {
        let mut series = vec![0; 60];
        series[10] = 1;
        let cells = buckets(&series, 12);
        assert_eq!(cells.iter().filter(|&&v| v > 0).count(), 1);
    }

    #[test]
    fn huge_counts_saturate_instead_of_overflowing() {
        let huge = [u64::MAX - 1, u64::MAX, 7];
        assert_eq!(total(&huge), u64::MAX);
        assert_eq!(buckets(&huge, 1), vec![u64::MAX.div_ceil(3)]);
        assert_eq!(compact(total(&huge)), "18446744073.7G");
        assert_eq!(latency(Some(u64::MAX)), "18446744073709551s");
    }

    #[test]
    fn numbers_are_compact() {
        assert_eq!(compact(950), "950");
        assert_eq!(compact(12_345), "12.3k");
        assert_eq!(compact(999_999), "1.0M");
        assert_eq!(compact(4_100_000), "4.1M");
        assert_eq!(latency(Some(850)), "850ms");
        assert_eq!(latency(Some(1_234)), "1.2s");
        assert_eq!(latency(Some(42_400)), "42s");
        assert_eq!(latency(None), "-");
        assert_eq!(dollars(4_200), "$0.0042");
        assert_eq!(dollars(1_230_000), "$1.23");
    }
}
