//! Reads the language model's figures for the control room: the counters of
//! `SECONDME:llm`, the workers' breakers (`SECONDME:llm:breakers`, and the
//! fields older workers write in `SECONDME:llm`), each model's latest latencies
//! (`SECONDME:llm:latency:{model}`, for p50/p95) and the last hour's
//! per-minute counts (`SECONDME:llm:minute:{minute}`). Other programs share
//! the Redis: a key of another type or a value that is no number is reported
//! or read as zero, never an error of the whole read.

use std::collections::BTreeMap;

use crate::connection::Con;
use anyhow::{Context, Result};

use crate::llm_usage::MinuteUsage;
use crate::schema;

/// Minutes of the per-minute series: the last hour, the current minute last.
pub const SERIES_MINUTES: usize = 60;
/// Most models read (the busiest): a Redis shared by many configurations
/// must not make the read, or the screen, grow without bound.
pub const MAX_MODELS: usize = 8;
/// An open breaker whose retry time passed this long ago is stale: its worker
/// would have written `closed` at its next flush, so it has gone away.
const STALE_BREAKER_MS: i64 = 10_000;

/// One model's figures.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ModelFigures {
    /// The model's name as the engine calls it.
    pub name: String,
    /// Calls answered.
    pub calls: u64,
    /// Calls failed.
    pub errors: u64,
    /// Prompt tokens.
    pub prompt_tokens: u64,
    /// Completion tokens.
    pub completion_tokens: u64,
    /// Cost in millionths of a dollar, when prices are configured.
    pub cost_micro_usd: Option<u64>,
    /// Median latency of the latest calls, ms.
    pub p50_ms: Option<u64>,
    /// 95th percentile latency of the latest calls, ms.
    pub p95_ms: Option<u64>,
}

/// The breaker while it is open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BreakerOpen {
    /// The permanent error that opened it.
    pub reason: String,
    /// When calls are tried again, ms; `None` when the writer did not say.
    pub until_ms: Option<i64>,
}

/// Everything the control room shows of the language model.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Figures {
    /// Server time of the read, ms.
    pub now_ms: i64,
    /// Models, most calls first.
    pub models: Vec<ModelFigures>,
    /// The breaker, when open.
    pub breaker: Option<BreakerOpen>,
    /// The last [`SERIES_MINUTES`] minutes, oldest first.
    pub minutes: Vec<MinuteUsage>,
}

/// Reads the figures: `None` when `SECONDME:llm` does not exist (no worker ran
/// a language model) or cannot be read; with the keys that could not be read.
pub async fn read(con: &mut Con) -> Result<(Option<Figures>, Vec<String>)> {
    let mut odd = Vec::new();
    let replies: Vec<redis::RedisResult<redis::Value>> = redis::pipe()
        .ignore_errors()
        .cmd("TIME")
        .hgetall(schema::llm_stats())
        .hgetall(schema::llm_breakers())
        .query_async(con)
        .await
        .context("cannot read the language model's figures")?;
    let mut replies = replies.into_iter();
    let time: (i64, i64) = convert(replies.next()).context("cannot read the server's time")?;
    let now_ms = time.0 * 1000 + time.1 / 1000;
    let mut hash_or_odd = |key: &str| {
        convert::<BTreeMap<String, String>>(replies.next()).unwrap_or_else(|e| {
            odd.push(format!("{key}: {e}"));
            BTreeMap::new()
        })
    };
    let hash = hash_or_odd(schema::llm_stats());
    let breakers = hash_or_odd(schema::llm_breakers());
    let (mut models, legacy) = parse_stats(&hash, now_ms);
    let breaker = live_breaker(&breakers, now_ms).or(legacy);
    if hash.is_empty() && breaker.is_none() {
        return Ok((None, odd));
    }
    let now_minute = now_ms.div_euclid(60_000);
    let first_minute = now_minute - SERIES_MINUTES as i64 + 1;
    let mut pipe = redis::pipe();
    pipe.ignore_errors();
    for m in &models {
        pipe.lrange(
            schema::llm_latency_key(&m.name),
            0,
            schema::LLM_LATENCY_SAMPLES as isize - 1,
        );
    }
    for minute in first_minute..=now_minute {
        pipe.hmget(
            schema::llm_minute_key(minute),
            &["replies", "tokens", "errors"],
        );
    }
    let replies: Vec<redis::RedisResult<redis::Value>> = pipe
        .query_async(con)
        .await
        .context("cannot read the language model's latencies and minutes")?;
    let mut replies = replies.into_iter();
    for m in &mut models {
        let key = schema::llm_latency_key(&m.name);
        let raw: Vec<String> = convert(replies.next()).unwrap_or_else(|e| {
            odd.push(format!("{key}: {e}"));
            Vec::new()
        });
        let mut samples: Vec<u64> = raw.iter().filter_map(|v| v.parse().ok()).collect();
        samples.sort_unstable();
        m.p50_ms = percentile(&samples, 50);
        m.p95_ms = percentile(&samples, 95);
    }
    let minutes = (first_minute..=now_minute)
        .map(|minute| {
            let key = schema::llm_minute_key(minute);
            let raw: Vec<Option<String>> = convert(replies.next()).unwrap_or_else(|e| {
                odd.push(format!("{key}: {e}"));
                Vec::new()
            });
            minute_usage(&raw)
        })
        .collect();
    Ok((
        Some(Figures {
            now_ms,
            models,
            breaker,
            minutes,
        }),
        odd,
    ))
}

/// A pipeline reply converted, or why not.
fn convert<T: redis::FromRedisValue>(
    reply: Option<redis::RedisResult<redis::Value>>,
) -> redis::RedisResult<T> {
    let value = reply.ok_or_else(|| {
        redis::RedisError::from((redis::ErrorKind::Client, "no reply in the pipeline"))
    })??;
    redis::from_redis_value(value).map_err(redis::RedisError::from)
}

/// A minute's `replies`, `tokens`, `errors`; a field that is no count is 0.
fn minute_usage(raw: &[Option<String>]) -> MinuteUsage {
    let field = |i: usize| {
        raw.get(i)
            .and_then(Option::as_deref)
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    MinuteUsage {
        replies: field(0),
        tokens: field(1),
        errors: field(2),
    }
}

/// The models and the breaker from `SECONDME:llm`'s fields. A model name may
/// hold `:`, so a field splits at its last one; fields of other names and
/// values that are no count are left out.
pub fn parse_stats(
    hash: &BTreeMap<String, String>,
    now_ms: i64,
) -> (Vec<ModelFigures>, Option<BreakerOpen>) {
    let mut models: BTreeMap<&str, ModelFigures> = BTreeMap::new();
    for (field, value) in hash {
        let Some((model, name)) = field.rsplit_once(':') else {
            continue;
        };
        let Ok(n) = value.trim().parse::<i64>() else {
            continue;
        };
        let n = n.max(0) as u64;
        let m = models.entry(model).or_insert_with(|| ModelFigures {
            name: model.to_owned(),
            ..ModelFigures::default()
        });
        match name {
            "calls" => m.calls = n,
            "errors" => m.errors = n,
            "prompt_tokens" => m.prompt_tokens = n,
            "completion_tokens" => m.completion_tokens = n,
            "cost_micro_usd" => m.cost_micro_usd = Some(n),
            _ => {}
        }
    }
    let mut models: Vec<ModelFigures> = models
        .into_values()
        .filter(|m| m.calls + m.errors > 0 || m.cost_micro_usd.is_some())
        .collect();
    models.sort_by(|a, b| {
        (b.calls + b.errors)
            .cmp(&(a.calls + a.errors))
            .then_with(|| a.name.cmp(&b.name))
    });
    models.truncate(MAX_MODELS);
    (models, breaker(hash, now_ms))
}

/// The open breaker of the live workers' entries in `SECONDME:llm:breakers`
/// (`{seenMs} {untilMs} {reason}`, written lately): the one retrying last, so
/// the banner stays while any worker's breaker is open.
pub fn live_breaker(entries: &BTreeMap<String, String>, now_ms: i64) -> Option<BreakerOpen> {
    entries
        .values()
        .filter_map(|v| {
            let mut parts = v.splitn(3, ' ');
            let seen = parts.next()?.parse::<i64>().ok()?;
            let until = parts.next()?.parse::<i64>().ok()?;
            let reason = parts.next().unwrap_or_default();
            (seen >= now_ms - schema::LLM_BREAKER_STALE_MS).then(|| BreakerOpen {
                reason: reason.to_owned(),
                until_ms: (until > 0).then_some(until),
            })
        })
        .max_by_key(|b| b.until_ms.unwrap_or(i64::MAX))
}

/// The breaker older workers write in `SECONDME:llm`, when `breaker` is
/// `open` and its retry time is not long past.
fn breaker(hash: &BTreeMap<String, String>, now_ms: i64) -> Option<BreakerOpen> {
    if hash.get("breaker").map(|s| s.trim()) != Some("open") {
        return None;
    }
    let until_ms = hash
        .get("breaker_until")
        .and_then(|v| v.trim().parse::<i64>().ok())
        .filter(|&t| t > 0);
    if until_ms.is_some_and(|t| t < now_ms - STALE_BREAKER_MS) {
        return None;
    }
    Some(BreakerOpen {
        reason: hash.get("breaker_reason").cloned().unwrap_or_default(),
        until_ms,
    })
}

/// The `p`th percentile (nearest rank) of `sorted`, ascending; `None` when empty.
pub fn percentile(sorted: &[u64], p: u32) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (u64::from(p.clamp(1, 100)) * sorted.len() as u64).div_ceil(100);
    sorted.get(rank.saturating_sub(1) as usize).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_take_the_nearest_rank() {
        assert_eq!(percentile(&[], 50), None);
        assert_eq!(percentile(&[7], 50), Some(7));
        assert_eq!(percentile(&[7], 95), Some(7));
        let hundred: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&hundred, 50), Some(50));
        assert_eq!(percentile(&hundred, 95), Some(95));
        assert_eq!(percentile(&[10, 20, 30, 40], 50), Some(20));
        assert_eq!(percentile(&[10, 20, 30, 40], 95), Some(40));
        let five_hundred: Vec<u64> = (1..=500).collect();
        assert_eq!(percentile(&five_hundred, 95), Some(475));
    }

    fn hash(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn stats_split_models_at_the_last_colon_and_skip_garbage() {
        let h = hash(&[
            ("ollama/llama3.2:3b:calls", "4"),
            ("ollama/llama3.2:3b:prompt_tokens", "400"),
            ("ollama/llama3.2:3b:completion_tokens", "80"),
            ("gpt-4o:calls", "9"),
            ("gpt-4o:errors", "2"),
            ("gpt-4o:cost_micro_usd", "1500"),
            ("gpt-4o:latency_ms", "not a number"),
            ("weird:calls", "many"),
            ("breaker", "closed"),
            ("breaker_reason", ""),
            ("breaker_until", "0"),
        ]);
        let (models, breaker) = parse_stats(&h, 1_000);
        assert_eq!(breaker, None);
        let names: Vec<&str> = models.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["gpt-4o", "ollama/llama3.2:3b"]);
        assert_eq!(models[0].errors, 2);
        assert_eq!(models[0].cost_micro_usd, Some(1500));
        assert_eq!(models[1].prompt_tokens, 400);
        assert_eq!(models[1].cost_micro_usd, None);
    }

    #[test]
    fn an_open_breaker_is_shown_until_its_retry_time_is_long_past() {
        let open = hash(&[
            ("breaker", "open"),
            ("breaker_reason", "401 invalid key"),
            ("breaker_until", "100000"),
        ]);
        let b = parse_stats(&open, 50_000).1;
        assert_eq!(
            b,
            Some(BreakerOpen {
                reason: "401 invalid key".into(),
                until_ms: Some(100_000)
            })
        );
        assert!(parse_stats(&open, 105_000).1.is_some());
        assert_eq!(parse_stats(&open, 200_000).1, None);
        let no_time = hash(&[("breaker", "open"), ("breaker_until", "soon")]);
        assert_eq!(parse_stats(&no_time, 5).1.and_then(|b| b.until_ms), None);
    }

    #[test]
    fn a_live_open_breaker_shows_and_a_stale_one_does_not() {
        let entries = hash(&[
            ("1-a", "95000 400000 401 invalid key"),
            ("2-b", "99000 300000 403 no quota"),
            ("3-c", "10000 900000 gone away"),
            ("4-d", "garbage"),
        ]);
        assert_eq!(
            live_breaker(&entries, 100_000),
            Some(BreakerOpen {
                reason: "401 invalid key".into(),
                until_ms: Some(400_000)
            })
        );
        assert_eq!(live_breaker(&entries, 200_000), None);
        let untimed = hash(&[("1-a", "95000 0 404 model")]);
        let b = live_breaker(&untimed, 100_000).expect("open");
        assert_eq!((b.reason.as_str(), b.until_ms), ("404 model", None));
    }

    #[test]
    fn models_are_bounded_busiest_first() {
        let fields: Vec<(String, String)> = (0..20)
            .map(|i| (format!("m{i:02}:calls"), format!("{i}")))
            .collect();
        let h: BTreeMap<String, String> = fields.into_iter().collect();
        let models = parse_stats(&h, 0).0;
        assert_eq!(models.len(), MAX_MODELS);
        assert_eq!(models[0].name, "m19");
    }

    #[test]
    fn a_minute_reads_its_counts_and_zero_for_garbage() {
        let raw = vec![Some("3".to_owned()), Some("x".to_owned()), None];
        assert_eq!(
            minute_usage(&raw),
            MinuteUsage {
                replies: 3,
                tokens: 0,
                errors: 0
            }
        );
        assert_eq!(minute_usage(&[]), MinuteUsage::default());
    }
}
