//! A message the worker saw live, added to a chat already learned. The
//! message is written only while the contact is in the learned set, checked in
//! the same step (a script), so a contact `forget` removed is never learned
//! again by a message in flight, and never put back in the set. The counts
//! follow by what the message changed: the lines before it and the lines the
//! cap drops (`Tally::appended`, `Tally::dropped`), not by counting the whole
//! chat again; the style and overall keys are then swapped only if nobody
//! wrote them meanwhile, else counted again from the chat. The contact's
//! message appended at the end (nothing dropped) changes neither the counts
//! nor the exchanges: the version stays, and so do the caches built on it.

use crate::connection::Con;
use anyhow::{Context, Result};
use redis::Value as RedisValue;

use super::{
    Added, LearnedError, Stored, encode_value, keys, lines, member, next_value, redis_error,
    refresh_overall,
};
use crate::learn::ChatLine;
use crate::learn::style::Tally;

/// Lines the cap may drop in one add for the counts to follow them one by
/// one; more (the cap was lowered) and the chat is counted again.
const MAX_DROPPED: usize = 16;

/// KEYS: chat, learned set, style, overall. ARGV: contact, score, member, cap,
/// most lines dropped one by one. Returns `{0}` when the contact is not
/// learned, `{-1, type}` for a chat key of another type, `{1, total}` when the
/// member was there, else `{2, total, last, many, before, dropped, after,
/// style type, style, overall type, overall}`: whether the member is the
/// newest, whether more than the most were dropped, the two members before it,
/// those dropped and the two after them, and the counts' keys as they are.
const ADD: &str = r"
if redis.call('SISMEMBER', KEYS[2], ARGV[1]) == 0 then return {0} end
local kind = redis.call('TYPE', KEYS[1]).ok
if kind ~= 'zset' and kind ~= 'none' then return {-1, kind} end
if redis.call('ZADD', KEYS[1], 'NX', ARGV[2], ARGV[3]) == 0 then
  return {1, redis.call('ZCARD', KEYS[1])}
end
local n = redis.call('ZCARD', KEYS[1])
local rank = redis.call('ZRANK', KEYS[1], ARGV[3])
local last, before = 0, {}
if rank == n - 1 then
  last = 1
  if rank > 0 then before = redis.call('ZRANGE', KEYS[1], math.max(0, rank - 2), rank - 1) end
end
local cap, most = tonumber(ARGV[4]), tonumber(ARGV[5])
local many, dropped, after = 0, {}, {}
if n > cap then
  local k = n - cap
  if k <= most and rank >= k then
    dropped = redis.call('ZRANGE', KEYS[1], 0, k - 1)
    after = redis.call('ZRANGE', KEYS[1], k, k + 1)
  else
    many = 1
  end
  redis.call('ZREMRANGEBYRANK', KEYS[1], 0, k - 1)
  n = cap
end
local function read(key)
  local t = redis.call('TYPE', key).ok
  if t == 'string' then return {t, redis.call('GET', key)} end
  return {t, ''}
end
local style, overall = read(KEYS[3]), read(KEYS[4])
return {2, n, last, many, before, dropped, after, style[1], style[2], overall[1], overall[2]}
";

/// KEYS: learned set, style, overall. ARGV: contact, style as read, new style,
/// overall as read, new overall (empty: left alone). 0: the contact is not
/// learned any more; -1: the style changed meanwhile; 2: the overall did; 1: done.
const SWAP: &str = r"
if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 0 then return 0 end
if redis.call('TYPE', KEYS[2]).ok ~= 'string' or redis.call('GET', KEYS[2]) ~= ARGV[2] then
  return -1
end
redis.call('SET', KEYS[2], ARGV[3])
if ARGV[5] == '' then return 1 end
if redis.call('TYPE', KEYS[3]).ok == 'string' and redis.call('GET', KEYS[3]) == ARGV[4] then
  redis.call('SET', KEYS[3], ARGV[5])
  return 1
end
return 2
";

/// KEYS: learned set, style. ARGV: contact, value. Writes while learned.
const SET_IF_LEARNED: &str = r"
if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('SET', KEYS[2], ARGV[2])
return 1
";

/// What the add script found, for a new member.
struct Grown {
    total: usize,
    last: bool,
    many: bool,
    before: Vec<ChatLine>,
    dropped: Vec<ChatLine>,
    after: Vec<ChatLine>,
    style: Option<String>,
    overall: Option<String>,
}

/// Adds one message the worker saw live (the owner typing on the phone, or the
/// contact's message) to the contact's learned chat, keeping at most `cap`
/// messages, marked so a later export of it is not added again. Only a chat
/// already learned grows: `None` when the contact is not in `LEARN:contacts`.
pub async fn add_live(
    con: &mut Con,
    contact_id: &str,
    line: &ChatLine,
    cap: usize,
) -> Result<Option<Added>> {
    crate::store::ensure_contact_id(contact_id)?;
    let chat = keys::chat_key(contact_id);
    let reply: Vec<RedisValue> = redis::Script::new(ADD)
        .key(&chat)
        .key(keys::contacts_key())
        .key(keys::style_key(contact_id))
        .key(keys::overall_key())
        .arg(contact_id)
        .arg(line.ts)
        .arg(member::encode(line, 0, true))
        .arg(cap)
        .arg(MAX_DROPPED)
        .invoke_async(con)
        .await
        .map_err(|e| redis_error(e, keys::contacts_key(), contact_id, "set"))?;
    let mut reply = reply.into_iter();
    let code: i64 = field(&mut reply)?;
    match code {
        0 => return Ok(None),
        -1 => {
            return Err(LearnedError::ForeignType {
                key: chat,
                contact: contact_id.to_owned(),
                found: field(&mut reply)?,
                expected: "sorted set",
            }
            .into());
        }
        1 => {
            let total = field(&mut reply)?;
            return Ok(Some(Added { added: 0, total }));
        }
        _ => {}
    }
    let grown = Grown::read(&mut reply)?;
    let added = Added {
        added: 1,
        total: grown.total,
    };
    let learned = follow(con, contact_id, line, grown).await?;
    Ok(learned.then_some(added))
}

impl Grown {
    /// The fields after the code.
    fn read(reply: &mut std::vec::IntoIter<RedisValue>) -> Result<Grown> {
        let total = field(reply)?;
        let last: i64 = field(reply)?;
        let many: i64 = field(reply)?;
        let mut lines = || -> Result<Vec<ChatLine>> {
            let members: Vec<String> = field(reply)?;
            Ok(members
                .iter()
                .filter_map(|m| member::decode(m))
                .map(|(l, _)| l)
                .collect())
        };
        let (before, dropped, after) = (lines()?, lines()?, lines()?);
        let mut string = || -> Result<Option<String>> {
            let kind: String = field(reply)?;
            let value: String = field(reply)?;
            Ok((kind == "string").then_some(value))
        };
        let (style, overall) = (string()?, string()?);
        Ok(Grown {
            total,
            last: last == 1,
            many: many == 1,
            before,
            dropped,
            after,
            style,
            overall,
        })
    }
}

/// The next field of the script's reply.
fn field<T: redis::FromRedisValue>(reply: &mut std::vec::IntoIter<RedisValue>) -> Result<T> {
    let value = reply
        .next()
        .context("the live-learning script answered too little")?;
    redis::from_redis_value(value).context("the live-learning script answered something else")
}

/// Brings the counts up to the chat the add left; false when the contact was
/// forgotten meanwhile.
async fn follow(con: &mut Con, contact_id: &str, line: &ChatLine, grown: Grown) -> Result<bool> {
    if grown.last && !line.me && grown.dropped.is_empty() && !grown.many {
        // The contact's newest message answers nothing yet: no exchange and no
        // count moves, so the version stays and caches stay good.
        return Ok(true);
    }
    let stored = grown
        .style
        .as_deref()
        .and_then(|raw| Some((raw, serde_json::from_str::<Stored>(raw).ok()?)));
    let Some((old_raw, old)) = stored.filter(|_| grown.last && !grown.many) else {
        return recount(con, contact_id).await;
    };
    let plus = Tally::appended(&grown.before, line);
    let minus = Tally::dropped(&grown.dropped, &grown.after);
    let counts_moved = plus != Tally::default() || minus != Tally::default();
    let new_style = moved(&old, &plus, &minus)?;
    let overall = grown
        .overall
        .as_deref()
        .and_then(|raw| Some((raw, serde_json::from_str::<Stored>(raw).ok()?)));
    let (old_overall, new_overall) = match &overall {
        Some((raw, o)) if counts_moved => (*raw, moved(o, &plus, &minus)?),
        _ => ("", String::new()),
    };
    let swapped: i64 = redis::Script::new(SWAP)
        .key(keys::contacts_key())
        .key(keys::style_key(contact_id))
        .key(keys::overall_key())
        .arg(contact_id)
        .arg(old_raw)
        .arg(&new_style)
        .arg(old_overall)
        .arg(&new_overall)
        .invoke_async(con)
        .await
        .with_context(|| format!("cannot write {}", keys::style_key(contact_id)))?;
    match swapped {
        0 => Ok(false),
        -1 => recount(con, contact_id).await,
        // The overall changed meanwhile, or is missing or another program's.
        _ if swapped == 2 || (counts_moved && overall.is_none()) => {
            refresh_overall(con).await?;
            Ok(true)
        }
        _ => Ok(true),
    }
}

/// `stored` with `plus` added and `minus` taken away, its version one further.
fn moved(stored: &Stored, plus: &Tally, minus: &Tally) -> Result<String> {
    let mut tally = stored.tally.clone();
    tally.merge(plus);
    tally.subtract(minus);
    let tally = serde_json::to_value(&tally).context("cannot encode the style counts")?;
    Ok(encode_value(
        stored.version.saturating_add(1),
        stored.epoch,
        &tally,
    ))
}

/// Counts the contact's chat again from all its lines and writes them while
/// the contact is learned, then the overall; false when it is not learned.
async fn recount(con: &mut Con, contact_id: &str) -> Result<bool> {
    let chat = lines(con, contact_id).await?;
    let mut tally = Tally::default();
    tally.add_chat(&chat);
    let key = keys::style_key(contact_id);
    let Some(next) = next_value(con, &key, contact_id, &tally, true).await? else {
        return Ok(true);
    };
    let written: i64 = redis::Script::new(SET_IF_LEARNED)
        .key(keys::contacts_key())
        .key(&key)
        .arg(contact_id)
        .arg(next)
        .invoke_async(con)
        .await
        .with_context(|| format!("cannot write {key}"))?;
    if written == 0 {
        return Ok(false);
    }
    refresh_overall(con).await?;
    Ok(true)
}
