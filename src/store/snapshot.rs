//! A read of the whole observable state, for `secondme status` and the TUI.

use std::collections::HashMap;

use anyhow::{Context, Result};
use redis::aio::ConnectionManager;
use serde::Serialize;

use super::session::{self, SessionInfo};
use crate::schema::{self, MessageEvent};

/// A paused contact with its time left.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PausedContact {
    /// The contact.
    pub contact_id: String,
    /// When the pause ends, ms (from the key's value).
    pub expires_at: Option<i64>,
    /// Time left from the key's TTL, ms.
    pub remaining_ms: i64,
    /// `manual`, `takeover`, `rate_limit`, or `unknown` when another program paused it.
    pub reason: String,
}

/// A contact's rate counter in the current window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RateCounter {
    /// The contact.
    pub contact_id: String,
    /// Messages in the window.
    pub count: i64,
    /// Time left in the window, ms.
    pub remaining_ms: i64,
}

/// Everything `status` reports.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Snapshot {
    /// Server time of the read, ms.
    pub now: i64,
    /// The WhatsApp session, if logged in.
    pub session: Option<SessionInfo>,
    /// Activation time of the kill switch, if on.
    pub kill_switch: Option<i64>,
    /// Paused contacts, soonest expiry first.
    pub paused: Vec<PausedContact>,
    /// Rate counters, highest first.
    pub counters: Vec<RateCounter>,
    /// Contacts the twin may answer.
    pub enabled: Vec<String>,
    /// Contacts by last activity (ms), most recent first.
    pub contacts: Vec<(String, i64)>,
    /// Length of `QUEUE:messages`.
    pub queue_len: u64,
    /// Entries delivered to a worker and not yet acknowledged.
    pub pending: u64,
    /// Entries in `QUEUE:deadletter`.
    pub dead_letters: u64,
    /// Length of `QUEUE:responses`.
    pub responses: u64,
    /// Subscribers per channel (`PUBSUB NUMSUB`).
    pub subscribers: Vec<(String, i64)>,
    /// Worker counters from `SECONDME:stats`.
    pub stats: HashMap<String, i64>,
}

/// Most contacts listed in a snapshot (the busiest first).
const MAX_CONTACTS: isize = 10_000;

/// Reads a snapshot: one pipeline for the fixed keys, then one scan per key family.
pub async fn read(con: &mut ConnectionManager, user_id: &str) -> Result<Snapshot> {
    let mut pipe = redis::pipe();
    pipe.cmd("TIME")
        .get(schema::PAUSE_ALL)
        .xlen(schema::QUEUE_MESSAGES)
        .xlen(schema::QUEUE_DEADLETTER)
        .xlen(schema::QUEUE_RESPONSES)
        .smembers(schema::OPTIN_CONTACTS)
        .zrevrange_withscores(schema::CONTACTS_ACTIVITY, 0, MAX_CONTACTS - 1)
        .hgetall(schema::STATS)
        .cmd("PUBSUB")
        .arg("NUMSUB")
        .arg(&schema::CHANNELS[..]);
    #[allow(clippy::type_complexity)]
    let (time, kill, queue_len, dead, responses, mut enabled, contacts, stats, subs): (
        (i64, i64),
        Option<i64>,
        u64,
        u64,
        u64,
        Vec<String>,
        Vec<(String, i64)>,
        HashMap<String, i64>,
        Vec<(String, i64)>,
    ) = pipe
        .query_async(con)
        .await
        .context("cannot read the state keys")?;
    enabled.sort();
    let now = time.0 * 1000 + time.1 / 1000;
    Ok(Snapshot {
        now,
        session: session::info(con, user_id).await?,
        kill_switch: kill,
        paused: paused(con, now).await?,
        counters: counters(con).await?,
        enabled,
        contacts,
        queue_len,
        pending: pending(con).await?,
        dead_letters: dead,
        responses,
        subscribers: subs,
        stats,
    })
}

async fn scan_keys(con: &mut ConnectionManager, pattern: &str) -> Result<Vec<String>> {
    let mut cursor: u64 = 0;
    let mut keys = Vec::new();
    loop {
        let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(pattern)
            .arg("COUNT")
            .arg(1000)
            .query_async(con)
            .await
            .with_context(|| format!("cannot scan {pattern}"))?;
        keys.extend(batch);
        if next == 0 {
            return Ok(keys);
        }
        cursor = next;
    }
}

async fn paused(con: &mut ConnectionManager, now: i64) -> Result<Vec<PausedContact>> {
    let keys: Vec<String> = scan_keys(con, "PAUSE:*")
        .await?
        .into_iter()
        .filter(|k| k != schema::PAUSE_ALL)
        .collect();
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let mut pipe = redis::pipe();
    for key in &keys {
        let contact = key.trim_start_matches("PAUSE:");
        pipe.get(key).pttl(key).get(schema::pause_meta_key(contact));
    }
    let values: Vec<(Option<String>, i64, Option<String>)> = pipe
        .query_async(con)
        .await
        .context("cannot read pause keys")?;
    let mut out: Vec<PausedContact> = keys
        .iter()
        .zip(values)
        .filter_map(|(key, (value, pttl, reason))| {
            let value = value?;
            let expires_at = value.parse::<i64>().ok();
            let remaining_ms = match (pttl, expires_at) {
                (ms, _) if ms >= 0 => ms,
                (_, Some(exp)) => (exp - now).max(0),
                _ => 0,
            };
            Some(PausedContact {
                contact_id: key.trim_start_matches("PAUSE:").to_owned(),
                expires_at,
                remaining_ms,
                reason: reason.unwrap_or_else(|| "unknown".into()),
            })
        })
        .collect();
    out.sort_by_key(|p| p.remaining_ms);
    Ok(out)
}

async fn counters(con: &mut ConnectionManager) -> Result<Vec<RateCounter>> {
    let keys = scan_keys(con, "COUNTER:*:msgs").await?;
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let mut pipe = redis::pipe();
    for key in &keys {
        pipe.get(key).pttl(key);
    }
    let values: Vec<(Option<i64>, i64)> = pipe
        .query_async(con)
        .await
        .context("cannot read rate counters")?;
    let mut out: Vec<RateCounter> = keys
        .iter()
        .zip(values)
        .filter_map(|(key, (count, pttl))| {
            let contact = key.strip_prefix("COUNTER:")?.strip_suffix(":msgs")?;
            Some(RateCounter {
                contact_id: contact.to_owned(),
                count: count?,
                remaining_ms: pttl,
            })
        })
        .collect();
    out.sort_by(|a, b| b.count.cmp(&a.count).then(a.contact_id.cmp(&b.contact_id)));
    Ok(out)
}

/// Pending entries of the worker group (0 when the group does not exist yet).
async fn pending(con: &mut ConnectionManager) -> Result<u64> {
    let reply: redis::RedisResult<redis::Value> = redis::cmd("XPENDING")
        .arg(schema::QUEUE_MESSAGES)
        .arg(schema::WORKER_GROUP)
        .query_async(con)
        .await;
    match reply {
        Ok(redis::Value::Array(items)) => Ok(items
            .first()
            .and_then(|v| redis::from_redis_value::<u64>(v.clone()).ok())
            .unwrap_or(0)),
        Ok(_) => Ok(0),
        Err(e) if e.code() == Some("NOGROUP") => Ok(0),
        Err(e) => Err(e).context("cannot read XPENDING"),
    }
}

/// The newest `limit` messages of a contact, oldest first (from `HISTORY:{contactId}`).
pub async fn history(
    con: &mut ConnectionManager,
    contact_id: &str,
    limit: usize,
) -> Result<Vec<MessageEvent>> {
    let mut all = histories(con, &[contact_id.to_owned()], limit).await?;
    Ok(all.pop().map(|(_, h)| h).unwrap_or_default())
}

/// The histories of several contacts in one round trip, in the order given.
pub async fn histories(
    con: &mut ConnectionManager,
    contact_ids: &[String],
    limit: usize,
) -> Result<Vec<(String, Vec<MessageEvent>)>> {
    if contact_ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut pipe = redis::pipe();
    for id in contact_ids {
        pipe.lrange(schema::history_key(id), 0, limit as isize - 1);
    }
    let raw: Vec<Vec<String>> = pipe
        .query_async(con)
        .await
        .context("cannot read conversation histories")?;
    Ok(contact_ids
        .iter()
        .zip(raw)
        .map(|(id, entries)| (id.clone(), parse_history(id, &entries)))
        .collect())
}

/// Newest-first JSON payloads to messages oldest first; unreadable ones are skipped.
fn parse_history(contact_id: &str, raw: &[String]) -> Vec<MessageEvent> {
    let mut out: Vec<MessageEvent> = raw
        .iter()
        .filter_map(|r| match serde_json::from_str(r) {
            Ok(m) => Some(m),
            Err(e) => {
                tracing::warn!("skipping an unreadable entry of HISTORY:{contact_id}: {e}");
                None
            }
        })
        .collect();
    out.reverse();
    out
}
