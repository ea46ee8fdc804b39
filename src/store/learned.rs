//! What the twin learned from the person's chats, in Redis: each contact's chat
//! (`LEARN:chat:{contactId}`), its style counts, the overall counts, the learned
//! contacts and the last eval. See `schema::learned` and `docs/redis-schema.md`.
//!
//! Importing is several steps: the members (`ZADD NX` in chunks), the cap
//! (`ZREMRANGEBYRANK`), then the contact's style counts and the learned set
//! (one `MULTI`), then the overall counts. A step that fails leaves the ones
//! before it done: some members without their counts, or counts without the
//! overall. Every import recomputes the counts from the whole stored chat, also
//! when it added nothing, so running the same import again repairs it. A live
//! message is cheaper ([`add_live`], in `live`): it only ever grows a chat
//! already learned, and updates the counts by what it changed.

mod forget;
mod live;
mod member;

use std::sync::atomic::{AtomicBool, Ordering};

use aes_gcm::aead::OsRng;
use aes_gcm::aead::rand_core::RngCore;

use crate::connection::Con;
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::learn::ChatLine;
use crate::learn::style::{StyleProfile, Tally};
use crate::schema::learned as keys;

pub use forget::{Forgotten, forget};
pub use live::add_live;

/// Members written per `ZADD`: a few hundred kB a command, so a large import
/// streams instead of building one huge command.
const CHUNK: usize = 5_000;
/// Members read per `ZRANGE` page.
const PAGE: isize = 10_000;
/// Style keys read per `MGET` when the overall counts are merged.
const MGET_BATCH: usize = 256;

/// What adding lines to a contact's chat did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Added {
    /// Lines that were new.
    pub added: usize,
    /// Lines the chat holds now (after the cap).
    pub total: usize,
}

/// Why learned data cannot be written or read.
#[derive(Debug, thiserror::Error)]
pub enum LearnedError {
    /// A key of the learned data that another program holds with another type.
    #[error(
        "{key} holds a {found}, not a {expected}: another program's key, so nothing \
         was learned for contact {contact} (rename or delete that key, then run it again)"
    )]
    ForeignType {
        /// The key.
        key: String,
        /// The contact being learned.
        contact: String,
        /// Its type in Redis.
        found: String,
        /// The type SecondMe keeps there.
        expected: &'static str,
    },
    /// A string key of the learned data holding something SecondMe did not write.
    #[error(
        "{key} holds text that is not SecondMe's style counts: contact {contact}'s \
         profile cannot be read or updated (delete that key, then import again)"
    )]
    ForeignValue {
        /// The key.
        key: String,
        /// The contact it belongs to, or `overall`.
        contact: String,
    },
}

/// A style key's value: the counts, a version that moves with each change,
/// and the key's epoch, drawn at random when the key is created (a chat
/// forgotten then learned again counts its versions from 1 again, in another
/// epoch).
#[derive(Debug, Serialize, Deserialize)]
struct Stored {
    version: u64,
    #[serde(default)]
    epoch: u64,
    tally: Tally,
}

/// Which state of a contact's learned chat a cache was built from: it never
/// comes back once the chat changed, even after `forget` and a new import.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Version {
    /// Drawn at random when the chat's counts were first stored.
    pub epoch: u64,
    /// Grows by one with each change within the epoch.
    pub n: u64,
}

/// Adds `lines` (a chat in order, as an export holds it) to `contact_id`'s
/// learned chat, keeping at most `cap` messages, and recomputes its style counts
/// and the overall counts. A line already there is not added twice, so
/// importing the same export again changes nothing.
///
/// The lines are an export's: a line equal in side, kind and text to a message
/// the worker learned live ([`add_live`]) within ±14 h is that message and is
/// skipped (see `member::LIVE_WINDOW_MS`).
pub async fn add_lines(
    con: &mut Con,
    contact_id: &str,
    lines: &[ChatLine],
    cap: usize,
) -> Result<Added> {
    add_lines_with_progress(con, contact_id, lines, cap, &mut |_, _| {}).await
}

/// [`add_lines`], calling `progress(done, total)` after each chunk written.
pub async fn add_lines_with_progress(
    con: &mut Con,
    contact_id: &str,
    lines: &[ChatLine],
    cap: usize,
    progress: &mut (dyn FnMut(usize, usize) + Send),
) -> Result<Added> {
    super::ensure_contact_id(contact_id)?;
    check_types(con, contact_id).await?;
    let key = keys::chat_key(contact_id);
    let positions = member::positions(lines);
    let floor = floor(con, &key, contact_id, &positions, cap).await?;
    let live = live_near(con, &key, contact_id, lines).await?;
    let seen = member::seen_live(lines, &live);
    drop(live);
    let mut added = 0;
    let mut batch = redis::cmd("ZADD");
    let mut in_batch = 0;
    for (i, (line, (score, n))) in lines.iter().zip(&positions).enumerate() {
        if seen[i] || floor.is_some_and(|f| *score < f) {
            continue;
        }
        if in_batch == 0 {
            batch = redis::cmd("ZADD");
            batch.arg(&key).arg("NX");
        }
        batch.arg(*score).arg(member::encode(line, *n, false));
        in_batch += 1;
        if in_batch == CHUNK {
            added += zadd(con, &batch, &key, contact_id).await?;
            in_batch = 0;
            progress(i + 1, lines.len());
        }
    }
    if in_batch > 0 {
        added += zadd(con, &batch, &key, contact_id).await?;
    }
    progress(lines.len(), lines.len());
    let dropped = trim(con, &key, cap).await?;
    let total = refresh(con, contact_id, added + dropped > 0).await?;
    Ok(Added { added, total })
}

/// The contact's learned chat, oldest first (empty when nothing is learned).
pub async fn lines(con: &mut Con, contact_id: &str) -> Result<Vec<ChatLine>> {
    let key = keys::chat_key(contact_id);
    let mut out = Vec::new();
    let mut start: isize = 0;
    loop {
        let page: Vec<String> = redis::cmd("ZRANGE")
            .arg(&key)
            .arg(start)
            .arg(start + PAGE - 1)
            .query_async(con)
            .await
            .map_err(|e| redis_error(e, &key, contact_id, "sorted set"))?;
        let len = page.len();
        out.extend(
            page.iter()
                .filter_map(|m| member::decode(m))
                .map(|(l, _)| l),
        );
        if len < PAGE as usize {
            return Ok(out);
        }
        start += PAGE;
    }
}

/// The version of the contact's learned chat (for caches); `None` when
/// nothing is learned for the contact.
pub async fn version(con: &mut Con, contact_id: &str) -> Result<Option<Version>> {
    let key = keys::style_key(contact_id);
    Ok(read_value(con, &key, contact_id).await?.map(|v| Version {
        epoch: v.get("epoch").and_then(Value::as_u64).unwrap_or(0),
        n: v.get("version").and_then(Value::as_u64).unwrap_or(0),
    }))
}

/// The contact's style counts, or the overall ones for `None`.
pub async fn tally(con: &mut Con, contact_id: Option<&str>) -> Result<Option<Tally>> {
    let (key, who) = match contact_id {
        Some(c) => (keys::style_key(c), c),
        None => (keys::overall_key().to_owned(), "overall"),
    };
    let Some(value) = read_value(con, &key, who).await? else {
        return Ok(None);
    };
    let stored: Stored = serde_json::from_value(value).map_err(|_| LearnedError::ForeignValue {
        key: key.clone(),
        contact: who.to_owned(),
    })?;
    Ok(Some(stored.tally))
}

/// The contact's style profile, or the overall one for `None`.
pub async fn profile(con: &mut Con, contact_id: Option<&str>) -> Result<Option<StyleProfile>> {
    Ok(tally(con, contact_id).await?.map(|t| t.profile()))
}

/// The contacts with learned data, sorted; a member that is no contact id
/// (another program's) is left out, with a warning the first time.
pub async fn contacts(con: &mut Con) -> Result<Vec<String>> {
    static WARNED: AtomicBool = AtomicBool::new(false);
    let key = keys::contacts_key();
    // As bytes: a member that is not even UTF-8 is left out like any other.
    let members: Vec<Vec<u8>> = redis::cmd("SMEMBERS")
        .arg(key)
        .query_async(con)
        .await
        .with_context(|| format!("cannot read {key}"))?;
    let total = members.len();
    let mut ids: Vec<String> = members
        .into_iter()
        .filter_map(|m| String::from_utf8(m).ok())
        .filter(|c| crate::schema::check_contact_id(c).is_ok())
        .collect();
    if ids.len() < total && !WARNED.swap(true, Ordering::Relaxed) {
        tracing::warn!(
            "{key} holds {} members that are no contact id (another program's): left out",
            total - ids.len()
        );
    }
    ids.sort();
    Ok(ids)
}

/// Writes `value` to `key` unless another program holds it with another type.
const SET_STRING: &str = r"
local kind = redis.call('TYPE', KEYS[1]).ok
if kind ~= 'string' and kind ~= 'none' then return kind end
redis.call('SET', KEYS[1], ARGV[1])
return ''
";

/// Stores the contact's last eval (the JSON `secondme eval --json` prints);
/// a key of another type under its name is refused, not overwritten.
pub async fn save_eval(con: &mut Con, contact_id: &str, eval: &serde_json::Value) -> Result<()> {
    super::ensure_contact_id(contact_id)?;
    let key = keys::eval_key(contact_id);
    let found: String = redis::Script::new(SET_STRING)
        .key(&key)
        .arg(eval.to_string())
        .invoke_async(con)
        .await
        .with_context(|| format!("cannot write {key}"))?;
    if !found.is_empty() {
        return Err(LearnedError::ForeignType {
            key,
            contact: contact_id.to_owned(),
            found,
            expected: "string",
        }
        .into());
    }
    Ok(())
}

/// The contact's last eval, if any.
pub async fn last_eval(con: &mut Con, contact_id: &str) -> Result<Option<serde_json::Value>> {
    let key = keys::eval_key(contact_id);
    let raw: Option<String> = redis::cmd("GET")
        .arg(&key)
        .query_async(con)
        .await
        .map_err(|e| redis_error(e, &key, contact_id, "string"))?;
    raw.map(|r| serde_json::from_str(&r).with_context(|| format!("{key} is not JSON")))
        .transpose()
}

/// Refuses, before any write, keys of the contact's learned data another
/// program holds with another type (the overall counts are not the contact's:
/// a foreign one is only left alone, see [`refresh_overall`]).
async fn check_types(con: &mut Con, contact_id: &str) -> Result<()> {
    let wanted: [(String, &str, &'static str); 3] = [
        (keys::chat_key(contact_id), "zset", "sorted set"),
        (keys::style_key(contact_id), "string", "string"),
        (keys::contacts_key().to_owned(), "set", "set"),
    ];
    let mut pipe = redis::pipe();
    for (key, _, _) in &wanted {
        pipe.cmd("TYPE").arg(key);
    }
    let found: Vec<String> = pipe
        .query_async(con)
        .await
        .context("cannot read the types of the learned keys")?;
    for ((key, want, expected), found) in wanted.into_iter().zip(found) {
        if found != want && found != "none" {
            return Err(LearnedError::ForeignType {
                key,
                contact: contact_id.to_owned(),
                found,
                expected,
            }
            .into());
        }
    }
    Ok(())
}

/// The score below which an import's line could not stay under the cap: the
/// `cap`-th newest of the import, or of the stored chat when that is newer.
async fn floor(
    con: &mut Con,
    key: &str,
    contact_id: &str,
    positions: &[(f64, u32)],
    cap: usize,
) -> Result<Option<f64>> {
    let import = member::newest_floor(positions.iter().map(|(s, _)| *s), cap);
    let nth = -isize::try_from(cap).unwrap_or(isize::MAX);
    let stored: Vec<(String, f64)> = redis::cmd("ZRANGE")
        .arg(key)
        .arg(nth)
        .arg(nth)
        .arg("WITHSCORES")
        .query_async(con)
        .await
        .map_err(|e| redis_error(e, key, contact_id, "sorted set"))?;
    let stored = stored.first().map(|(_, s)| *s);
    Ok(match (import, stored) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    })
}

/// The live lines stored within the window around the import's times.
async fn live_near(
    con: &mut Con,
    key: &str,
    contact_id: &str,
    lines: &[ChatLine],
) -> Result<Vec<ChatLine>> {
    let (Some(min), Some(max)) = (
        lines.iter().map(|l| l.ts).min(),
        lines.iter().map(|l| l.ts).max(),
    ) else {
        return Ok(Vec::new());
    };
    let (low, high) = (
        min - member::LIVE_WINDOW_MS,
        max + member::LIVE_WINDOW_MS + 1,
    );
    let mut live = Vec::new();
    let mut offset: isize = 0;
    loop {
        let page: Vec<String> = redis::cmd("ZRANGE")
            .arg(key)
            .arg(low)
            .arg(high)
            .arg("BYSCORE")
            .arg("LIMIT")
            .arg(offset)
            .arg(PAGE)
            .query_async(con)
            .await
            .map_err(|e| redis_error(e, key, contact_id, "sorted set"))?;
        let len = page.len();
        live.extend(
            page.iter()
                .filter(|m| member::looks_live(m))
                .filter_map(|m| member::decode(m))
                .filter(|(_, live)| *live)
                .map(|(l, _)| l),
        );
        if len < PAGE as usize {
            return Ok(live);
        }
        offset += PAGE;
    }
}

/// Runs one `ZADD`; returns how many members were new.
async fn zadd(con: &mut Con, cmd: &redis::Cmd, key: &str, contact_id: &str) -> Result<usize> {
    cmd.query_async(con)
        .await
        .map_err(|e| redis_error(e, key, contact_id, "sorted set"))
}

/// Drops the oldest members beyond `cap`; returns how many.
async fn trim(con: &mut Con, key: &str, cap: usize) -> Result<usize> {
    let last = -isize::try_from(cap).unwrap_or(isize::MAX) - 1;
    redis::cmd("ZREMRANGEBYRANK")
        .arg(key)
        .arg(0)
        .arg(last)
        .query_async(con)
        .await
        .with_context(|| format!("cannot cap {key}"))
}

/// Recomputes the contact's counts from its whole stored chat, the learned set
/// and the overall counts; returns the chat's length. The version moves when
/// the counts changed or `chat_changed` (new exchanges may count the same).
async fn refresh(con: &mut Con, contact_id: &str, chat_changed: bool) -> Result<usize> {
    let chat = lines(con, contact_id).await?;
    let style_key = keys::style_key(contact_id);
    if chat.is_empty() {
        let () = redis::pipe()
            .atomic()
            .del(&style_key)
            .ignore()
            .srem(keys::contacts_key(), contact_id)
            .ignore()
            .query_async(con)
            .await
            .with_context(|| format!("cannot clear {style_key}"))?;
    } else {
        let mut tally = Tally::default();
        tally.add_chat(&chat);
        let next = next_value(con, &style_key, contact_id, &tally, chat_changed).await?;
        let mut pipe = redis::pipe();
        pipe.atomic();
        if let Some(next) = next {
            pipe.set(&style_key, next).ignore();
        }
        let () = pipe
            .sadd(keys::contacts_key(), contact_id)
            .ignore()
            .query_async(con)
            .await
            .with_context(|| format!("cannot write {style_key}"))?;
    }
    refresh_overall(con).await?;
    Ok(chat.len())
}

/// The overall counts: every learned contact's merged. An overall key another
/// program holds (another type, or a value that is not SecondMe's) is left
/// alone, with a warning the first time: no contact's learning depends on it.
pub(crate) async fn refresh_overall(con: &mut Con) -> Result<()> {
    let key = keys::overall_key();
    let written: redis::RedisResult<String> = match merged_tallies(con).await? {
        Some(tally) => match next_value(con, key, "overall", &tally, false).await {
            Ok(Some(next)) => {
                let script = redis::Script::new(SET_STRING);
                script.key(key).arg(next).invoke_async(con).await
            }
            Ok(None) => return Ok(()),
            Err(e) if e.is::<LearnedError>() => {
                foreign_overall();
                return Ok(());
            }
            Err(e) => return Err(e),
        },
        None => {
            redis::Script::new(DEL_STRING)
                .key(key)
                .invoke_async(con)
                .await
        }
    };
    if !written
        .with_context(|| format!("cannot write {key}"))?
        .is_empty()
    {
        foreign_overall();
    }
    Ok(())
}

/// Deletes a string key; leaves a key of another type, and says its type.
const DEL_STRING: &str = r"
local kind = redis.call('TYPE', KEYS[1]).ok
if kind ~= 'string' and kind ~= 'none' then return kind end
redis.call('DEL', KEYS[1])
return ''
";

/// Every learned contact's counts merged; `None` when none is learned.
async fn merged_tallies(con: &mut Con) -> Result<Option<Tally>> {
    let ids = contacts(con).await?;
    let mut merged: Option<Tally> = None;
    for batch in ids.chunks(MGET_BATCH) {
        let style_keys: Vec<String> = batch.iter().map(|c| keys::style_key(c)).collect();
        // MGET reads a key of another type as nil: such a contact is left out.
        let values: Vec<Option<String>> = redis::cmd("MGET")
            .arg(&style_keys)
            .query_async(con)
            .await
            .context("cannot read the learned style counts")?;
        for stored in values.iter().flatten() {
            match serde_json::from_str::<Stored>(stored) {
                Ok(s) => merged.get_or_insert_with(Tally::default).merge(&s.tally),
                Err(_) => tracing::warn!("a learned contact's style counts are unreadable"),
            }
        }
    }
    Ok(merged)
}

/// Warns, once a process, that the overall counts' key is another program's.
fn foreign_overall() {
    static WARNED: AtomicBool = AtomicBool::new(false);
    if !WARNED.swap(true, Ordering::Relaxed) {
        tracing::warn!(
            "{} is another program's: the overall profile is not kept (each contact's is)",
            keys::overall_key()
        );
    }
}

/// The value to store for `tally` under `key`, its version one past the stored
/// one in the same epoch (a new epoch for a new key); `None` when the stored
/// counts are these already and nothing else `changed`.
async fn next_value(
    con: &mut Con,
    key: &str,
    who: &str,
    tally: &Tally,
    changed: bool,
) -> Result<Option<String>> {
    let new = serde_json::to_value(tally).context("cannot encode the style counts")?;
    let old = read_value(con, key, who).await?;
    let (version, epoch) = match &old {
        None => (0, new_epoch()),
        Some(old) if !changed && old.get("tally") == Some(&new) => return Ok(None),
        Some(old) => (
            old.get("version").and_then(Value::as_u64).unwrap_or(0),
            old.get("epoch").and_then(Value::as_u64).unwrap_or(0),
        ),
    };
    Ok(Some(encode_value(version.saturating_add(1), epoch, &new)))
}

/// A style key's value as stored.
fn encode_value(version: u64, epoch: u64, tally: &Value) -> String {
    serde_json::json!({"version": version, "epoch": epoch, "tally": tally}).to_string()
}

/// A new key's epoch: random, so no two keys ever share one.
fn new_epoch() -> u64 {
    OsRng.next_u64()
}

/// A style key's JSON object; an error naming the key when it holds anything
/// else.
async fn read_value(con: &mut Con, key: &str, who: &str) -> Result<Option<Value>> {
    let raw: Option<String> = redis::cmd("GET")
        .arg(key)
        .query_async(con)
        .await
        .map_err(|e| redis_error(e, key, who, "string"))?;
    let Some(raw) = raw else {
        return Ok(None);
    };
    match serde_json::from_str::<Value>(&raw) {
        Ok(v) if v.get("version").is_some_and(Value::is_u64) => Ok(Some(v)),
        _ => Err(LearnedError::ForeignValue {
            key: key.to_owned(),
            contact: who.to_owned(),
        }
        .into()),
    }
}

/// A Redis error on `key`: a foreign type named as such, anything else with
/// the key for context.
fn redis_error(
    e: redis::RedisError,
    key: &str,
    contact: &str,
    expected: &'static str,
) -> anyhow::Error {
    if e.code() == Some("WRONGTYPE") {
        return LearnedError::ForeignType {
            key: key.to_owned(),
            contact: contact.to_owned(),
            found: "value of another type".into(),
            expected,
        }
        .into();
    }
    anyhow::Error::new(e).context(format!("Redis refused an operation on {key}"))
}
