//! The language model's figures in Redis: `SECONDME:llm` (counters per model,
//! the breaker), `SECONDME:llm:tokens:{date}` (the day's tokens over every
//! worker, which the daily budget is held to), and for the control room the
//! latest latencies per model (`SECONDME:llm:latency:{model}`) and per-minute
//! counts (`SECONDME:llm:minute:{minute}`). Written by a task beside the
//! worker from the engine's meter, so the engine itself never touches Redis.

use std::time::Duration;

use anyhow::{Context, Result};
use redis::aio::ConnectionManager;
use tokio::sync::watch;

use crate::reply::llm::LlmShared;
use crate::reply::llm::usage::{Pending, date};
use crate::schema;

/// How often the figures are written.
const FLUSH_EVERY: Duration = Duration::from_secs(2);

/// Writes the counts since the last flush and the breaker's state; returns the
/// day's total tokens over every worker.
pub async fn flush(con: &mut ConnectionManager, llm: &LlmShared) -> Result<u64> {
    let pending = llm.meter.take_pending();
    let result = write(con, llm, &pending).await;
    match result {
        Ok(total) => {
            llm.meter.set_spent(pending.day, total);
            Ok(total)
        }
        Err(e) => {
            llm.meter.restore(pending);
            Err(e)
        }
    }
}

async fn write(con: &mut ConnectionManager, llm: &LlmShared, pending: &Pending) -> Result<u64> {
    let tokens_key = schema::llm_tokens_key(&date(pending.day));
    let mut pipe = redis::pipe();
    // One transaction. The control room's keys (latencies, minutes) are
    // `ignore`d, so with `ignore_errors` a foreign key there is skipped; every
    // other reply is checked below, so `SECONDME:llm` and the day's tokens
    // stay all-or-retried as before.
    pipe.atomic().ignore_errors();
    let mut tokens = 0;
    for (model, u) in &pending.models {
        let f = |name: &str| format!("{model}:{name}");
        pipe.hincr(schema::LLM_STATS, f("calls"), u.calls);
        pipe.hincr(schema::LLM_STATS, f("errors"), u.errors);
        pipe.hincr(schema::LLM_STATS, f("prompt_tokens"), u.prompt_tokens);
        pipe.hincr(
            schema::LLM_STATS,
            f("completion_tokens"),
            u.completion_tokens,
        );
        pipe.hincr(schema::LLM_STATS, f("latency_ms"), u.latency_ms);
        if let Some([input, output]) = llm.prices.get(model) {
            // Micro-dollars: USD per million tokens times tokens.
            let micros = input * u.prompt_tokens as f64 + output * u.completion_tokens as f64;
            pipe.hincr(
                schema::LLM_STATS,
                f("cost_micro_usd"),
                micros.round() as i64,
            );
        }
        tokens += u.prompt_tokens + u.completion_tokens;
        latencies(&mut pipe, model, &u.latencies);
    }
    for (minute, m) in &pending.minutes {
        let key = schema::llm_minute_key(*minute);
        pipe.hincr(&key, "replies", m.replies).ignore();
        pipe.hincr(&key, "tokens", m.tokens).ignore();
        pipe.hincr(&key, "errors", m.errors).ignore();
        pipe.expire(&key, schema::LLM_MINUTE_TTL_S).ignore();
    }
    let breaker = llm.breaker.state();
    let state = if breaker.reason.is_some() {
        "open"
    } else {
        "closed"
    };
    pipe.hset(schema::LLM_STATS, "breaker", state);
    pipe.hset(
        schema::LLM_STATS,
        "breaker_reason",
        breaker.reason.unwrap_or_default(),
    );
    let until = breaker
        .retry_in
        .map_or(0, |d| crate::store::now_ms() + d.as_millis() as i64);
    pipe.hset(schema::LLM_STATS, "breaker_until", until);
    pipe.expire(&tokens_key, schema::LLM_TOKENS_TTL_S);
    pipe.incr(&tokens_key, tokens);
    let replies: Vec<redis::RedisResult<redis::Value>> = pipe
        .query_async(con)
        .await
        .context("cannot write the language model's figures")?;
    let mut replies = replies.into_iter();
    let total = replies.next_back().context("no reply to INCRBY")?;
    for reply in replies {
        reply.context("cannot write the language model's figures")?;
    }
    let total = total.context("cannot count the day's tokens")?;
    redis::from_redis_value(total).context("the day's token count is not a number")
}

/// Pushes a model's latest latencies (oldest first, so the newest ends up at
/// the head) and trims the list to its bound.
fn latencies(pipe: &mut redis::Pipeline, model: &str, samples: &[u64]) {
    if samples.is_empty() {
        return;
    }
    let key = schema::llm_latency_key(model);
    pipe.lpush(&key, samples).ignore();
    pipe.ltrim(&key, 0, schema::LLM_LATENCY_SAMPLES as isize - 1)
        .ignore();
    pipe.expire(&key, schema::LLM_LATENCY_TTL_S).ignore();
}

/// Flushes every two seconds until `stop`, then once more.
pub async fn keep_accounts(
    mut con: ConnectionManager,
    llm: LlmShared,
    mut stop: watch::Receiver<bool>,
) {
    let mut failing = false;
    loop {
        let stopping = tokio::select! {
            _ = tokio::time::sleep(FLUSH_EVERY) => false,
            _ = stop.wait_for(|s| *s) => true,
        };
        match flush(&mut con, &llm).await {
            Ok(_) => failing = false,
            Err(e) if !failing => {
                tracing::warn!("{e:#} (kept for the next try)");
                failing = true;
            }
            Err(_) => {}
        }
        if stopping {
            return;
        }
    }
}
