//! A read of the whole observable state, for `secondme status` and the TUI.

use std::collections::HashMap;

use crate::connection::Con;
use anyhow::{Context, Result};
use serde::Serialize;

use super::dialects::{self, GatewaySession};
use super::session::SessionInfo;
use crate::schema::{self, MessageEvent, PauseReason};

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
    pub reason: PauseReason,
    /// No expiry: another program's pause (the original gateway's JSON
    /// `{pausedAt, reason}` without TTL) holds until resumed.
    pub until_resumed: bool,
    /// When it was paused, ms, when the value says (the JSON form).
    pub paused_at: Option<i64>,
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
    /// Why the kill switch is on: `manual` (the operator), `state_lost` (Redis lost
    /// SecondMe's state), another program's reason, or `unknown`.
    pub kill_reason: Option<PauseReason>,
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
    /// The original gateway's session (`SESSION:whatsapp:info`), if it wrote one.
    pub gateway_session: Option<GatewaySession>,
    /// Keys of a type or value SecondMe cannot read (another program's), each with
    /// the error: read as absent, reported instead of failing the whole read.
    pub odd_keys: Vec<String>,
}

/// Most contacts listed in a snapshot (the busiest first).
const MAX_CONTACTS: isize = 10_000;

/// Why the kill switch is on, from `PAUSEMETA:ALL`, written with the switch by
/// the control step (`manual`) and the decide step (`state_lost`); without it another
/// program set the switch.
fn kill_reason(at: Option<&str>, meta: Option<String>) -> Option<PauseReason> {
    at?;
    Some(reason(meta))
}

/// A `PAUSEMETA` value parsed; none beside a pause means another program set it.
fn reason(meta: Option<String>) -> PauseReason {
    meta.map_or(PauseReason::Unknown, |m| PauseReason::parse(&m))
}

/// Reads a snapshot: one pipeline for the fixed keys, then the pauses and rate
/// counters of the contacts it lists (opted in, most active) and of `also`
/// (contacts seen live). Its cost follows the contacts, not the keys in Redis.
pub async fn read(con: &mut Con, user_id: &str) -> Result<Snapshot> {
    read_with(con, user_id, &[]).await
}

/// [`read`], also looking at the pauses and counters of `also`.
pub async fn read_with(con: &mut Con, user_id: &str, also: &[String]) -> Result<Snapshot> {
    // One round trip, each reply on its own: a key another program gave a type of
    // its own (OPTIN:contacts, SECONDME:stats, SESSION:{userId}, ...) is reported
    // and read as absent, and never turns the whole read into an error.
    let session_key = schema::session_key(user_id);
    let mut pipe = redis::pipe();
    pipe.ignore_errors()
        .cmd("TIME")
        .get(schema::pause_all())
        .get(schema::pause_meta_key(schema::PAUSE_ALL_CONTACT))
        .xlen(schema::queue_messages())
        .xlen(schema::queue_deadletter())
        .xlen(schema::queue_responses())
        .smembers(schema::optin_contacts())
        .zrevrange_withscores(schema::contacts_activity(), 0, MAX_CONTACTS - 1)
        .hgetall(schema::stats())
        .cmd("PUBSUB")
        .arg("NUMSUB")
        .arg(&schema::channels()[..])
        .hmget(&session_key, &["connectedAt", "expiresAt"])
        .get(schema::dialect::session_info());
    let replies: Vec<redis::RedisResult<redis::Value>> = pipe
        .query_async(con)
        .await
        .context("cannot read the state keys")?;
    let mut replies = replies.into_iter();
    let time: (i64, i64) = replies
        .next()
        .context("no reply to TIME")?
        .and_then(|v| redis::from_redis_value(v).map_err(redis::RedisError::from))
        .context("cannot read the server's time")?;
    let mut odd_keys = Vec::new();
    let mut next = |key: &str| Reply(replies.next(), key.to_owned());
    let kill: Option<String> = next(schema::pause_all()).read(&mut odd_keys);
    let kill_meta: Option<String> =
        next(&schema::pause_meta_key(schema::PAUSE_ALL_CONTACT)).read(&mut odd_keys);
    let queue_len: u64 = next(schema::queue_messages()).read(&mut odd_keys);
    let dead: u64 = next(schema::queue_deadletter()).read(&mut odd_keys);
    let responses: u64 = next(schema::queue_responses()).read(&mut odd_keys);
    let mut enabled: Vec<String> = next(schema::optin_contacts()).read(&mut odd_keys);
    let contacts: Vec<(String, i64)> = next(schema::contacts_activity()).read(&mut odd_keys);
    let stats: HashMap<String, i64> = next(schema::stats()).read(&mut odd_keys);
    let subs: Vec<(String, i64)> = next("PUBSUB NUMSUB").read(&mut odd_keys);
    let session_times: (Option<i64>, Option<i64>) = next(&session_key).read(&mut odd_keys);
    let session_info: Option<String> = next(schema::dialect::session_info()).read(&mut odd_keys);
    let gateway_session = session_info.and_then(|text| {
        dialects::parse_session_info(&text)
            .map_err(|e| odd_keys.push(format!("{}: {e}", schema::dialect::session_info())))
            .ok()
    });
    enabled.sort();
    let now = time.0 * 1000 + time.1 / 1000;
    let mut known: Vec<&str> = enabled
        .iter()
        .chain(contacts.iter().map(|(id, _)| id))
        .chain(also)
        .map(String::as_str)
        .filter(|id| *id != schema::PAUSE_ALL_CONTACT)
        .collect();
    known.sort_unstable();
    known.dedup();
    let (paused, counters) = pauses_and_counters(con, &known, now).await?;
    let pending = pending(con).await.unwrap_or_else(|e| {
        odd_keys.push(format!("{}: {e:#}", schema::queue_messages()));
        0
    });
    let session = match session_times {
        (Some(connected_at), Some(expires_at)) => Some(SessionInfo {
            connected_at,
            expires_at,
        }),
        _ => None,
    };
    Ok(Snapshot {
        now,
        session,
        // The switch is on whatever its value; a value that is no time (another
        // program's) shows as 0 rather than hiding the switch.
        kill_switch: kill.as_deref().map(|v| v.parse().unwrap_or(0)),
        kill_reason: kill_reason(kill.as_deref(), kill_meta),
        paused,
        counters,
        enabled,
        contacts,
        queue_len,
        pending,
        dead_letters: dead,
        responses,
        subscribers: subs,
        stats,
        gateway_session,
        odd_keys,
    })
}

/// One reply of the snapshot's pipeline and the key it read.
struct Reply(Option<redis::RedisResult<redis::Value>>, String);

impl Reply {
    /// The value, or the type's default with the key and error noted in `odd`.
    fn read<T: redis::FromRedisValue + Default>(self, odd: &mut Vec<String>) -> T {
        let Reply(reply, key) = self;
        let parsed = reply
            .map(|r| r.and_then(|v| redis::from_redis_value(v).map_err(redis::RedisError::from)));
        match parsed {
            Some(Ok(v)) => v,
            Some(Err(e)) => {
                odd.push(format!("{key}: {e}"));
                T::default()
            }
            None => {
                odd.push(format!("{key}: no reply"));
                T::default()
            }
        }
    }
}

/// The pauses and rate counters of `contacts`: one `MGET` per key family, then the
/// time left of the keys that exist, in one more round trip.
async fn pauses_and_counters(
    con: &mut Con,
    contacts: &[&str],
    now: i64,
) -> Result<(Vec<PausedContact>, Vec<RateCounter>)> {
    if contacts.is_empty() {
        return Ok((Vec::new(), Vec::new()));
    }
    let pause_keys: Vec<String> = contacts.iter().map(|c| schema::pause_key(c)).collect();
    let meta_keys: Vec<String> = contacts.iter().map(|c| schema::pause_meta_key(c)).collect();
    let counter_keys: Vec<String> = contacts.iter().map(|c| schema::counter_key(c)).collect();
    // MGET always answers with a list, even for one key.
    let mut pipe = redis::pipe();
    pipe.cmd("MGET")
        .arg(&pause_keys)
        .cmd("MGET")
        .arg(&meta_keys)
        .cmd("MGET")
        .arg(&counter_keys);
    type Values = Vec<Option<String>>;
    let (pauses, metas, counts): (Values, Values, Values) = pipe
        .query_async(con)
        .await
        .context("cannot read pauses and rate counters")?;
    let paused_at: Vec<usize> = (0..contacts.len())
        .filter(|&i| pauses.get(i).is_some_and(Option::is_some))
        .collect();
    let counted_at: Vec<usize> = (0..contacts.len())
        .filter(|&i| counts.get(i).is_some_and(Option::is_some))
        .collect();
    if paused_at.is_empty() && counted_at.is_empty() {
        return Ok((Vec::new(), Vec::new()));
    }
    let mut pipe = redis::pipe();
    for &i in &paused_at {
        pipe.pttl(&pause_keys[i]);
    }
    for &i in &counted_at {
        pipe.pttl(&counter_keys[i]);
    }
    let ttls: Vec<i64> = pipe
        .query_async(con)
        .await
        .context("cannot read the time left of pauses and rate counters")?;
    let (pause_ttls, counter_ttls) = ttls.split_at(paused_at.len().min(ttls.len()));
    let mut paused: Vec<PausedContact> = paused_at
        .iter()
        .zip(pause_ttls)
        .filter_map(|(&i, &pttl)| {
            let value = pauses.get(i)?.as_deref()?;
            let expires_at = value.parse::<i64>().ok();
            let remaining_ms = match (pttl, expires_at) {
                (ms, _) if ms >= 0 => ms,
                (_, Some(exp)) => (exp - now).max(0),
                _ => 0,
            };
            // Not a time and no TTL: another program's pause that holds until
            // resumed (the worker treats it as paused too); the original gateway
            // writes `{pausedAt, reason}`.
            let json = dialects::parse_json_pause(value);
            let until_resumed = expires_at.is_none() && pttl == -1;
            let meta = metas.get(i).cloned().flatten();
            let reason = match (&meta, json.as_ref().and_then(|j| j.reason.clone())) {
                (None, Some(theirs)) => theirs,
                _ => reason(meta),
            };
            Some(PausedContact {
                contact_id: contacts[i].to_owned(),
                expires_at,
                remaining_ms,
                reason,
                until_resumed,
                paused_at: json.and_then(|j| j.paused_at),
            })
        })
        .collect();
    paused.sort_by_key(|p| p.remaining_ms);
    let mut counters: Vec<RateCounter> = counted_at
        .iter()
        .zip(counter_ttls)
        .filter_map(|(&i, &pttl)| {
            // A counter holding text (another program's) is not a count: left out.
            let count = counts.get(i)?.as_deref()?.parse::<i64>().ok()?;
            Some(RateCounter {
                contact_id: contacts[i].to_owned(),
                count,
                remaining_ms: pttl,
            })
        })
        .collect();
    counters.sort_by(|a, b| b.count.cmp(&a.count).then(a.contact_id.cmp(&b.contact_id)));
    Ok((paused, counters))
}

/// Pending entries of the worker group (0 when the group does not exist yet).
async fn pending(con: &mut Con) -> Result<u64> {
    let reply: redis::RedisResult<redis::Value> = redis::cmd("XPENDING")
        .arg(schema::queue_messages())
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
pub async fn history(con: &mut Con, contact_id: &str, limit: usize) -> Result<Vec<MessageEvent>> {
    let mut all = histories(con, &[contact_id.to_owned()], limit).await?;
    Ok(all.pop().map(|(_, h)| h).unwrap_or_default())
}

/// The histories of several contacts in one round trip, in the order given.
pub async fn histories(
    con: &mut Con,
    contact_ids: &[String],
    limit: usize,
) -> Result<Vec<(String, Vec<MessageEvent>)>> {
    if contact_ids.is_empty() {
        return Ok(Vec::new());
    }
    // Each contact's `HISTORY:` list and SecondMe's own, kept when another program
    // owns `HISTORY:` with another type (a sorted set): that read fails alone.
    let mut pipe = redis::pipe();
    pipe.ignore_errors();
    for id in contact_ids {
        pipe.lrange(schema::history_key(id), 0, limit as isize - 1)
            .lrange(schema::own_history_key(id), 0, limit as isize - 1);
    }
    let raw: Vec<redis::RedisResult<Vec<String>>> = pipe
        .query_async(con)
        .await
        .context("cannot read conversation histories")?;
    let mut raw = raw.into_iter();
    Ok(contact_ids
        .iter()
        .map(|id| {
            let theirs = raw.next().and_then(Result::ok).unwrap_or_default();
            let ours = raw.next().and_then(Result::ok).unwrap_or_default();
            let entries = if theirs.is_empty() { ours } else { theirs };
            (id.clone(), parse_history(id, &entries))
        })
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
