//! The language model's figures in Redis: `SECONDME:llm` (counters per
//! model), `SECONDME:llm:tokens:{date}` (the day's tokens over every worker,
//! which the daily budget is held to), each worker's open breaker
//! (`SECONDME:llm:breakers`), and for the control room the latest latencies
//! per model (`SECONDME:llm:latency:{model}`) and per-minute counts
//! (`SECONDME:llm:minute:{minute}`). Written by a task beside the worker from
//! what the engine counted, taken through [`Accounts`]: the engine never
//! touches Redis, and this module never sees the engine.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use crate::connection::Con;
use anyhow::{Context, Result};
use tokio::sync::watch;

use crate::llm_usage::{Accounts, ModelUsage, Pending, date};
use crate::schema;

/// How often the figures are written.
const FLUSH_EVERY: Duration = Duration::from_secs(2);

/// What a flush wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Flushed {
    /// The day's tokens over every worker; `None` when the day's key could
    /// not be counted (another program's type, or refused).
    pub total: Option<u64>,
    /// What was not written: keys of another type (left alone, TTL included)
    /// and commands Redis refused inside the transaction. Those counts are
    /// dropped, never retried: the rest of the transaction was applied, and
    /// retrying would count it twice.
    pub problems: Vec<String>,
}

/// Writes the counts since the last flush and this worker's breaker. The
/// counts are put back for the next flush only when nothing was sent; once
/// the transaction is sent they are never counted again, even when its reply
/// is lost (Redis may have applied it): a lost reply loses one flush's
/// figures at worst, which figures can afford and the daily budget cannot
/// afford the other way round.
pub async fn flush(con: &mut Con, llm: &impl Accounts) -> Result<Flushed> {
    let pending = llm.take_pending();
    let survey = match survey(con, &pending).await {
        Ok(survey) => survey,
        Err(e) => {
            llm.restore(pending);
            return Err(e.context("kept for the next try"));
        }
    };
    let flushed = match write(con, llm, &pending, &survey).await {
        Ok(flushed) => flushed,
        Err(Unwritten::NotApplied(e)) => {
            llm.restore(pending);
            return Err(anyhow::Error::new(e)
                .context("Redis refused the language model's figures; kept for the next try"));
        }
        Err(Unwritten::MaybeApplied(e)) => {
            return Err(anyhow::Error::new(e).context(
                "no reply to the language model's figures' transaction; its counts are \
                 dropped (they may have been written)",
            ));
        }
    };
    if let Some(total) = flushed.total {
        llm.set_spent(pending.day, total);
    }
    Ok(flushed)
}

/// Why the transaction left no figures behind, and whether it may still have.
enum Unwritten {
    /// Redis discarded the whole transaction: the counts can be tried again.
    NotApplied(redis::RedisError),
    /// The reply was lost: Redis may have applied it.
    MaybeApplied(redis::RedisError),
}

/// What the flush reads before writing: the server's time (the breakers'
/// clock), the keys holding another program's type, and the breaker entries
/// of workers gone away.
struct Survey {
    now_ms: i64,
    foreign: Vec<String>,
    stale_breakers: Vec<String>,
}

impl Survey {
    fn usable(&self, key: &str) -> bool {
        !self.foreign.iter().any(|k| k == key)
    }
}

/// Every key the flush would write with the type it must have.
fn keys(pending: &Pending) -> Vec<(String, &'static str)> {
    let mut keys = vec![
        (schema::llm_stats().to_owned(), "hash"),
        (schema::llm_tokens_key(&date(pending.day)), "string"),
        (schema::llm_breakers().to_owned(), "hash"),
    ];
    for (model, u) in &pending.models {
        if !u.latencies.is_empty() {
            keys.push((schema::llm_latency_key(model), "list"));
        }
    }
    for (minute, _) in &pending.minutes {
        keys.push((schema::llm_minute_key(*minute), "hash"));
    }
    let mut seen = HashSet::new();
    keys.retain(|(k, _)| seen.insert(k.clone()));
    keys
}

/// Reads only: a failure here means nothing was written.
async fn survey(con: &mut Con, pending: &Pending) -> Result<Survey> {
    let keys = keys(pending);
    let mut pipe = redis::pipe();
    pipe.ignore_errors().cmd("TIME");
    for (key, _) in &keys {
        pipe.cmd("TYPE").arg(key);
    }
    pipe.hgetall(schema::llm_breakers());
    let replies: Vec<redis::RedisResult<redis::Value>> = pipe
        .query_async(con)
        .await
        .context("cannot read the language model's figures' keys")?;
    let mut replies = replies.into_iter();
    let time: (i64, i64) = value(replies.next()).context("cannot read the server's time")?;
    let now_ms = time.0 * 1000 + time.1 / 1000;
    let mut foreign = Vec::new();
    for (key, wanted) in keys {
        let found: String = value(replies.next()).context("cannot read a key's type")?;
        if found != "none" && found != wanted {
            foreign.push(key);
        }
    }
    // Another program's type is already in `foreign`: no entries then.
    let entries: BTreeMap<String, String> = value(replies.next()).unwrap_or_default();
    let stale_breakers = entries
        .into_iter()
        .filter(|(_, v)| !breaker_entry_is_live(v, now_ms))
        .map(|(writer, _)| writer)
        .collect();
    Ok(Survey {
        now_ms,
        foreign,
        stale_breakers,
    })
}

/// A pipeline reply converted.
fn value<T: redis::FromRedisValue>(reply: Option<redis::RedisResult<redis::Value>>) -> Result<T> {
    let reply = reply.context("no reply in the pipeline")??;
    Ok(redis::from_redis_value(reply)?)
}

/// Whether a `SECONDME:llm:breakers` value was written lately.
fn breaker_entry_is_live(v: &str, now_ms: i64) -> bool {
    v.split(' ')
        .next()
        .and_then(|seen| seen.parse::<i64>().ok())
        .is_some_and(|seen| seen >= now_ms - schema::LLM_BREAKER_STALE_MS)
}

/// One transaction and what each of its commands is, for the report.
#[derive(Default)]
struct Tx {
    pipe: redis::Pipeline,
    what: Vec<String>,
}

impl Tx {
    fn add(&mut self, what: impl Into<String>, cmd: redis::Cmd) {
        self.pipe.add_command(cmd);
        self.what.push(what.into());
    }
}

async fn write(
    con: &mut Con,
    llm: &impl Accounts,
    pending: &Pending,
    survey: &Survey,
) -> Result<Flushed, Unwritten> {
    let mut tx = Tx::default();
    // A command Redis refuses at run time does not undo the others, so every
    // reply is looked at, and none of the counts is ever retried.
    tx.pipe.atomic().ignore_errors();
    let mut tokens = 0;
    for (model, u) in &pending.models {
        tokens += u.prompt_tokens + u.completion_tokens;
        if survey.usable(schema::llm_stats()) {
            counters(&mut tx, llm, model, u);
        }
        let key = schema::llm_latency_key(model);
        if survey.usable(&key) {
            latencies(&mut tx, &key, &u.latencies);
        }
    }
    for (minute, m) in &pending.minutes {
        let key = schema::llm_minute_key(*minute);
        if !survey.usable(&key) {
            continue;
        }
        tx.add(&key, redis::Cmd::hincr(&key, "replies", m.replies));
        tx.add(&key, redis::Cmd::hincr(&key, "tokens", m.tokens));
        tx.add(&key, redis::Cmd::hincr(&key, "errors", m.errors));
        tx.add(&key, redis::Cmd::expire(&key, schema::LLM_MINUTE_TTL_S));
    }
    if survey.usable(schema::llm_breakers()) {
        breaker(&mut tx, llm, survey);
    }
    let tokens_key = schema::llm_tokens_key(&date(pending.day));
    let incr_at = survey.usable(&tokens_key).then(|| {
        // INCRBY first: it creates the day's key, which EXPIRE then finds.
        tx.add(&tokens_key, redis::Cmd::incr(&tokens_key, tokens));
        tx.add(
            &tokens_key,
            redis::Cmd::expire(&tokens_key, schema::LLM_TOKENS_TTL_S),
        );
        tx.what.len() - 2
    });
    let mut problems: Vec<String> = survey
        .foreign
        .iter()
        .map(|k| format!("{k} holds another program's type: left alone"))
        .collect();
    if tx.what.is_empty() {
        return Ok(Flushed {
            total: None,
            problems,
        });
    }
    let replies: Vec<redis::RedisResult<redis::Value>> =
        tx.pipe.query_async(con).await.map_err(|e| {
            // EXECABORT: a command was refused while queueing (OOM, ACL), so
            // Redis applied none of the transaction.
            if e.code() == Some("EXECABORT") {
                Unwritten::NotApplied(e)
            } else {
                Unwritten::MaybeApplied(e)
            }
        })?;
    let mut total = None;
    for (i, (reply, what)) in replies.into_iter().zip(&tx.what).enumerate() {
        match reply {
            Ok(v) if Some(i) == incr_at => match redis::from_redis_value::<u64>(v) {
                Ok(n) => total = Some(n),
                Err(e) => problems.push(format!("{what}: {e}")),
            },
            Ok(_) => {}
            Err(e) => problems.push(format!("{what}: {e}")),
        }
    }
    problems.dedup();
    Ok(Flushed { total, problems })
}

/// A model's sums in `SECONDME:llm`.
fn counters(tx: &mut Tx, llm: &impl Accounts, model: &str, u: &ModelUsage) {
    let mut add = |name: &str, n: i64| {
        let field = format!("{model}:{name}");
        let what = format!("{} {field}", schema::llm_stats());
        tx.add(what, redis::Cmd::hincr(schema::llm_stats(), field, n));
    };
    let n = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    add("calls", n(u.calls));
    add("errors", n(u.errors));
    add("prompt_tokens", n(u.prompt_tokens));
    add("completion_tokens", n(u.completion_tokens));
    add("latency_ms", n(u.latency_ms));
    if let Some([input, output]) = llm.price(model) {
        // Micro-dollars: USD per million tokens times tokens.
        let micros = input * u.prompt_tokens as f64 + output * u.completion_tokens as f64;
        add("cost_micro_usd", micros.round() as i64);
    }
}

/// This worker's entry in `SECONDME:llm:breakers`: written while open (with
/// the key's TTL renewed), removed when closed; entries of workers gone away
/// are pruned.
fn breaker(tx: &mut Tx, llm: &impl Accounts, survey: &Survey) {
    let key = schema::llm_breakers();
    let id = llm.breaker_id();
    let state = llm.breaker_state();
    let mut gone: Vec<&str> = survey
        .stale_breakers
        .iter()
        .map(String::as_str)
        .filter(|w| *w != id)
        .collect();
    match state.reason {
        Some(reason) => {
            let until = state
                .retry_in
                .map_or(0, |d| survey.now_ms + d.as_millis() as i64);
            let entry = format!("{} {until} {reason}", survey.now_ms);
            tx.add(key, redis::Cmd::hset(key, id, entry));
            tx.add(key, redis::Cmd::expire(key, schema::LLM_BREAKERS_TTL_S));
        }
        None => gone.push(id),
    }
    // HDEL needs a field: without one the whole transaction is refused.
    if !gone.is_empty() {
        tx.add(key, redis::Cmd::hdel(key, gone));
    }
}

/// Pushes a model's latest latencies (oldest first, so the newest ends up at
/// the head) and trims the list to its bound.
fn latencies(tx: &mut Tx, key: &str, samples: &[u64]) {
    if samples.is_empty() {
        return;
    }
    tx.add(key, redis::Cmd::lpush(key, samples));
    let last = schema::LLM_LATENCY_SAMPLES as isize - 1;
    tx.add(key, redis::Cmd::ltrim(key, 0, last));
    tx.add(key, redis::Cmd::expire(key, schema::LLM_LATENCY_TTL_S));
}

/// Flushes every two seconds until `stop`, then once more.
pub async fn keep_accounts(mut con: Con, llm: impl Accounts, mut stop: watch::Receiver<bool>) {
    // A problem is logged when it changes, not every two seconds.
    let mut last: Option<String> = None;
    loop {
        let stopping = tokio::select! {
            _ = tokio::time::sleep(FLUSH_EVERY) => false,
            _ = stop.wait_for(|s| *s) => true,
        };
        let report = match flush(&mut con, &llm).await {
            Ok(f) if f.problems.is_empty() => None,
            Ok(f) => Some(format!(
                "language model figures partly not written (those counts dropped): {}",
                f.problems.join("; ")
            )),
            Err(e) => Some(format!("language model figures not written: {e:#}")),
        };
        if report != last {
            if let Some(r) = &report {
                tracing::warn!("{r}");
            }
            last = report;
        }
        if stopping {
            return;
        }
    }
}
