//! Draft mode (issue 21): each contact's reply mode, the waiting drafts, and
//! the operator's decisions on them (approve, discard, regenerate), plus the
//! operator's own words sent as themselves (`owner`) and the workers' side of
//! the drafts (`sweep`: expiry and drafts written again). See `schema::drafts`.
//!
//! Every decision reads which contact's draft has the id (a draft id names the
//! message it answers, not its contact), then is one step of the functions
//! library (`assets/lua/operator.lua`) given that contact's keys, which acts
//! only while the contact's draft is still the one with that id and waits, so a
//! draft is sent at most once however many control rooms decide on it.

mod owner;
pub mod sweep;

use std::collections::HashMap;

use crate::connection::Con;
use anyhow::{Context, Result, bail};
use redis::AsyncCommands;

use super::functions::{Call, Step};
use crate::schema::drafts as keys;
use crate::schema::{self, drafts::fields};

pub use crate::schema::drafts::{Draft, ReplyMode, UnknownMode, mode_for};
pub use owner::{send_as_owner, send_as_owner_for};

/// `DRAFTS` holds another type than a sorted set: another program wrote it, and
/// no draft can be found or decided until it is renamed or deleted. Said as the
/// steps say a shared key of a foreign type (`SHARED_KEY`); nothing is written.
#[derive(Debug, thiserror::Error)]
#[error(
    "SHARED_KEY {key} holds a {found}, not a zset: another program wrote it; \
     rename or delete it to let the twin go on"
)]
pub struct ForeignIndex {
    /// The key (`DRAFTS`).
    pub key: String,
    /// The type it holds.
    pub found: String,
}

/// The error for a command Redis refused on `DRAFTS` while `what`: a foreign
/// type is a [`ForeignIndex`], anything else the error with `what` for context.
async fn index_error(con: &mut Con, e: redis::RedisError, what: &'static str) -> anyhow::Error {
    if e.code() != Some("WRONGTYPE") {
        return anyhow::Error::new(e).context(what);
    }
    let key = keys::drafts_key();
    let found: String = redis::cmd("TYPE")
        .arg(key)
        .query_async(con)
        .await
        .unwrap_or_else(|_| "value of another type".to_owned());
    ForeignIndex {
        key: key.to_owned(),
        found,
    }
    .into()
}

/// The contacts with a waiting draft, by expiry.
async fn waiting(con: &mut Con) -> Result<Vec<String>> {
    match con.zrange(keys::drafts_key(), 0, -1).await {
        Ok(contacts) => Ok(contacts),
        Err(e) => Err(index_error(con, e, "cannot list the drafts").await),
    }
}

/// What a decision on a draft found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Decided as asked.
    Done,
    /// No such draft any more (decided elsewhere, expired or replaced).
    Gone,
}

/// Sets the reply mode of each of `contacts`.
pub async fn set_mode(con: &mut Con, contacts: &[String], mode: ReplyMode) -> Result<()> {
    if contacts.is_empty() {
        return Ok(());
    }
    let mut pairs = Vec::with_capacity(contacts.len());
    for c in contacts {
        super::ensure_contact_id(c)?;
        if c == keys::DEFAULT_MODE_FIELD {
            bail!("{c:?} is the default's field: set the default with --all");
        }
        pairs.push((c.as_str(), mode.as_str()));
    }
    con.hset_multiple::<_, _, _, ()>(keys::modes_key(), &pairs)
        .await
        .with_context(|| format!("cannot set the reply mode of {} contacts", contacts.len()))
}

/// Sets the default reply mode (`*`), over the `reply_mode` setting.
pub async fn set_default_mode(con: &mut Con, mode: ReplyMode) -> Result<()> {
    con.hset::<_, _, _, ()>(keys::modes_key(), keys::DEFAULT_MODE_FIELD, mode.as_str())
        .await
        .context("cannot set the default reply mode")
}

/// Every stored mode, `*` (the default) included. A value another program wrote
/// that is neither `auto` nor `draft` reads as `draft`, as the worker takes it.
pub async fn modes(con: &mut Con) -> Result<HashMap<String, ReplyMode>> {
    let raw: HashMap<String, String> = con
        .hgetall(keys::modes_key())
        .await
        .context("cannot read the reply modes")?;
    Ok(raw
        .into_iter()
        .map(|(contact, mode)| (contact, mode.parse().unwrap_or(ReplyMode::Draft)))
        .collect())
}

/// Every waiting draft, oldest first. A member of `DRAFTS` whose hash is gone
/// or incomplete (decided between the two reads) is left out.
pub async fn list(con: &mut Con) -> Result<Vec<Draft>> {
    let contacts = waiting(con).await?;
    if contacts.is_empty() {
        return Ok(Vec::new());
    }
    let mut pipe = redis::pipe();
    for c in &contacts {
        pipe.hgetall(keys::draft_key(c));
    }
    let hashes: Vec<HashMap<String, String>> = pipe
        .query_async(con)
        .await
        .context("cannot read the drafts")?;
    let mut drafts: Vec<Draft> = hashes.iter().filter_map(draft_of).collect();
    drafts.sort_by(|a, b| (a.created_at, &a.draft_id).cmp(&(b.created_at, &b.draft_id)));
    Ok(drafts)
}

/// A draft from its hash; `None` when a field is missing or not a number.
fn draft_of(h: &HashMap<String, String>) -> Option<Draft> {
    let text = |name: &str| h.get(name).cloned();
    let ms = |name: &str| h.get(name)?.parse::<i64>().ok();
    Some(Draft {
        draft_id: text(fields::DRAFT_ID)?,
        contact_id: text(fields::CONTACT_ID)?,
        content: text(fields::CONTENT)?,
        in_reply_to: text(fields::IN_REPLY_TO)?,
        created_at: ms(fields::CREATED_AT)?,
        expires_at: ms(fields::EXPIRES_AT)?,
    })
}

/// Sends the draft (`text` instead of its content when given), exactly once,
/// even while its contact is paused: the operator decided. `Gone` when it is
/// no longer waiting (decided elsewhere, replaced or expired).
pub async fn approve(con: &mut Con, draft_id: &str, text: Option<&str>) -> Result<Decision> {
    if let Some(t) = text {
        check_text(t)?;
    }
    let Some(mut call) = on_draft(con, Op::Approve, draft_id).await? else {
        return Ok(Decision::Gone);
    };
    call.arg(if text.is_some() { "1" } else { "0" })
        .arg(text.unwrap_or(""))
        .arg(keys::APPROVED_DELAY_MS);
    decide(con, &call, "approve", draft_id).await
}

/// Drops the draft unsent.
pub async fn discard(con: &mut Con, draft_id: &str) -> Result<Decision> {
    let Some(call) = on_draft(con, Op::Discard, draft_id).await? else {
        return Ok(Decision::Gone);
    };
    decide(con, &call, "discard", draft_id).await
}

/// Asks the workers for a new draft for that contact's latest message; the
/// draft waits as it is until one is written (`replaced` on `events:drafts`).
pub async fn regenerate(con: &mut Con, draft_id: &str) -> Result<Decision> {
    let Some(call) = on_draft(con, Op::Regenerate, draft_id).await? else {
        return Ok(Decision::Gone);
    };
    decide(con, &call, "regenerate", draft_id).await
}

/// A call of `op` on the draft `draft_id` with its contact's keys; `None` when
/// no contact's draft has that id (decided, replaced or expired).
async fn on_draft(con: &mut Con, op: Op, draft_id: &str) -> Result<Option<Call>> {
    let Some(contact) = owner(con, draft_id).await? else {
        return Ok(None);
    };
    let mut call = step(op);
    let at = call.contact_keys(&contact);
    call.arg(draft_id).arg(&contact).arg(at);
    Ok(Some(call))
}

/// The contact whose waiting draft has id `draft_id`, or `None`. A contact has at
/// most one draft, and drafts wait only for the operator: a read of them all
/// costs less than an index to keep in step with them. The step acting on the
/// draft checks the id again, atomically with the decision.
async fn owner(con: &mut Con, draft_id: &str) -> Result<Option<String>> {
    let contacts = waiting(con).await?;
    if contacts.is_empty() {
        return Ok(None);
    }
    let mut pipe = redis::pipe();
    // A draft key another program gave another type holds no draft of ours.
    pipe.ignore_errors();
    for c in &contacts {
        pipe.hget(keys::draft_key(c), fields::DRAFT_ID);
    }
    let ids: Vec<redis::RedisResult<Option<String>>> = pipe
        .query_async(con)
        .await
        .context("cannot read the drafts")?;
    Ok(contacts
        .into_iter()
        .zip(ids)
        .find(|(_, id)| matches!(id, Ok(Some(id)) if id == draft_id))
        .map(|(contact, _)| contact))
}

/// Refuses text that cannot be sent: empty, or over a message's size limit.
fn check_text(text: &str) -> Result<()> {
    if text.trim().is_empty() {
        bail!("nothing to send: the text is empty");
    }
    let max = crate::entry::MAX_CONTENT_BYTES;
    if text.len() > max {
        bail!(
            "the text is {} bytes, over the {max} byte limit",
            text.len()
        );
    }
    Ok(())
}

async fn decide(con: &mut Con, call: &Call, what: &str, draft_id: &str) -> Result<Decision> {
    let answer: String = call
        .invoke(con)
        .await
        .with_context(|| format!("cannot {what} draft {draft_id}"))?;
    match answer.as_str() {
        "done" => Ok(Decision::Done),
        "gone" => Ok(Decision::Gone),
        other => bail!("cannot {what} draft {draft_id}: {other}"),
    }
}

/// The operations of the draft step.
#[derive(Debug, Clone, Copy)]
enum Op {
    Approve,
    Discard,
    Regenerate,
    Take,
    Rewrite,
    Expire,
    Own,
}

impl Op {
    fn as_str(self) -> &'static str {
        match self {
            Self::Approve => "approve",
            Self::Discard => "discard",
            Self::Regenerate => "regenerate",
            Self::Take => "take",
            Self::Rewrite => "rewrite",
            Self::Expire => "expire",
            Self::Own => "own",
        }
    }
}

/// A call of the draft step for `op`: its keys and the arguments every op shares,
/// in the order `assets/lua/operator.lua` reads them. Each op adds its contacts'
/// keys ([`Call::contact_keys`]) and says where they are in its own arguments.
fn step(op: Op) -> Call {
    let mut call = Call::new(Step::Draft);
    call.key(keys::drafts_key())
        .key(keys::regenerate_key())
        .key(schema::queue_responses())
        .key(schema::optin_contacts())
        .key(schema::stats())
        .key(schema::contacts_activity())
        .key(schema::queue_deadletter())
        .key(schema::pause_all())
        .key(schema::unanswered())
        .key(schema::deferred())
        .key(schema::unheard())
        .arg(op.as_str())
        .arg(keys::channel_drafts())
        .arg(schema::channel_messages())
        .arg(schema::HISTORY_LEN)
        .arg(schema::HISTORY_TTL_ENABLED_MS)
        .arg(schema::HISTORY_TTL_OTHER_MS)
        .arg(schema::QUEUE_RESPONSES_CAP);
    call
}
