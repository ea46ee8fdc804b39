//! The language model's figures in Redis: `SECONDME:llm` (counters per model,
//! the breaker) and `SECONDME:llm:tokens:{date}` (the day's tokens over every
//! worker, which the daily budget is held to). Written by a task beside the
//! worker from the engine's meter, so the engine itself never touches Redis.

use std::time::Duration;

use anyhow::{Context, Result};
use redis::aio::ConnectionManager;
use tokio::sync::watch;

use crate::reply::llm::LlmShared;
use crate::reply::llm::usage::{ModelUsage, date};
use crate::schema;

/// How often the figures are written.
const FLUSH_EVERY: Duration = Duration::from_secs(2);

/// Writes the counts since the last flush and the breaker's state; returns the
/// day's total tokens over every worker.
pub async fn flush(con: &mut ConnectionManager, llm: &LlmShared) -> Result<u64> {
    let (day, pending) = llm.meter.take_pending();
    let result = write(con, llm, day, &pending).await;
    match result {
        Ok(total) => {
            llm.meter.set_spent(day, total);
            Ok(total)
        }
        Err(e) => {
            llm.meter.restore(pending);
            Err(e)
        }
    }
}

async fn write(
    con: &mut ConnectionManager,
    llm: &LlmShared,
    day: i64,
    pending: &[(String, ModelUsage)],
) -> Result<u64> {
    let tokens_key = schema::llm_tokens_key(&date(day));
    let mut pipe = redis::pipe();
    pipe.atomic();
    let mut tokens = 0;
    for (model, u) in pending {
        let f = |name: &str| format!("{model}:{name}");
        pipe.hincr(schema::LLM_STATS, f("calls"), u.calls).ignore();
        pipe.hincr(schema::LLM_STATS, f("errors"), u.errors)
            .ignore();
        pipe.hincr(schema::LLM_STATS, f("prompt_tokens"), u.prompt_tokens)
            .ignore();
        pipe.hincr(
            schema::LLM_STATS,
            f("completion_tokens"),
            u.completion_tokens,
        )
        .ignore();
        pipe.hincr(schema::LLM_STATS, f("latency_ms"), u.latency_ms)
            .ignore();
        if let Some([input, output]) = llm.prices.get(model) {
            // Micro-dollars: USD per million tokens times tokens.
            let micros = input * u.prompt_tokens as f64 + output * u.completion_tokens as f64;
            pipe.hincr(
                schema::LLM_STATS,
                f("cost_micro_usd"),
                micros.round() as i64,
            )
            .ignore();
        }
        tokens += u.prompt_tokens + u.completion_tokens;
    }
    let breaker = llm.breaker.state();
    let state = if breaker.reason.is_some() {
        "open"
    } else {
        "closed"
    };
    pipe.hset(schema::LLM_STATS, "breaker", state).ignore();
    pipe.hset(
        schema::LLM_STATS,
        "breaker_reason",
        breaker.reason.unwrap_or_default(),
    )
    .ignore();
    let until = breaker
        .retry_in
        .map_or(0, |d| crate::store::now_ms() + d.as_millis() as i64);
    pipe.hset(schema::LLM_STATS, "breaker_until", until)
        .ignore();
    pipe.incr(&tokens_key, tokens);
    pipe.expire(&tokens_key, schema::LLM_TOKENS_TTL_S).ignore();
    let (total,): (u64,) = pipe
        .query_async(con)
        .await
        .context("cannot write the language model's figures")?;
    Ok(total)
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
