//! `secondme forget CONTACT`: every key and stream entry holding that contact's
//! text, removed; ids-only keys and the other contacts left as they are.

use crate::connection::Con;
use anyhow::{Context, Result};
use redis::streams::{StreamId, StreamInfoGroupsReply, StreamRangeReply};

use crate::schema::{self, drafts, learned as keys};
use crate::store::unanswered;

/// Stream entries read per `XRANGE` page.
const PAGE: usize = 1_000;

/// What [`forget`] removed: counts only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Forgotten {
    /// Messages of the learned chat.
    pub learned_messages: u64,
    /// Keys deleted: learned chat, style counts and eval, the conversation
    /// histories, the waiting draft, the marks of the contact's replies, the
    /// bytes of its messages' media.
    pub keys: u64,
    /// `QUEUE:messages` entries.
    pub queued: u64,
    /// `QUEUE:responses` entries.
    pub replies: u64,
    /// `QUEUE:deadletter` entries.
    pub dead_letters: u64,
}

/// Removes every trace of `contact_id`'s text from Redis: its entries in the
/// three streams first (acknowledged first in every group, so no reader finds
/// a pending entry gone; and gone before the keys, so no entry still queued can
/// bring the contact's history back after them), then its learned chat, style
/// counts and eval (and it from the learned set; the overall counts are merged
/// again without it), `HISTORY:` and `SECONDME:history:` whatever their type,
/// its waiting draft (`DRAFT:`, its `DRAFTS` member and `DRAFTS:regenerate`
/// field), its counts of unanswered messages and of voice notes and photos not
/// understood (its `SECONDME:unanswered` and `SECONDME:unheard` fields: nothing
/// is left for the operator to look at), a night's message kept for
/// the morning (its `SECONDME:deferred` field), the send marks of its
/// replies (`SENTREPLY:`, `SENDFAIL:`) and the bytes of the voice notes and
/// photos its purged entries named (`MEDIA:`). Keys holding only ids, counts or
/// times (`PAUSE:`, `PAUSEMETA:`, `COUNTER:`, `HANDLED:`, `SENT:`,
/// `OPTIN:contacts`, `CONTACTS:activity`) and the contact's display
/// name in `CONTACTS:names` stay. A stream another program holds with another
/// type is not searched, and said so after the keys are gone. A reply being
/// written while this runs lands after it: disable the contact first.
pub async fn forget(con: &mut Con, contact_id: &str) -> Result<Forgotten> {
    crate::store::ensure_contact_id(contact_id)?;
    let mut gone = Forgotten {
        learned_messages: learned_count(con, contact_id).await?,
        ..Forgotten::default()
    };
    let mut ids = EntryIds::default();
    let purged = purge_streams(con, contact_id, &mut gone, &mut ids).await;
    gone.keys += delete_contact_keys(con, contact_id).await?;
    super::refresh_overall(con).await?;
    gone.keys += delete_reply_marks(con, &ids.replies).await?;
    gone.keys += delete_media(con, &ids.messages).await?;
    purged?;
    Ok(gone)
}

/// The ids the purged entries named, whose own keys go too.
#[derive(Default)]
struct EntryIds {
    /// `replyId`s: their `SENTREPLY:` and `SENDFAIL:` marks.
    replies: Vec<String>,
    /// `messageId`s: the bytes of their voice notes and photos (`MEDIA:`).
    messages: Vec<String>,
}

/// Purges the contact's entries from the three streams, counting them in
/// `gone` and collecting the ids they name; one that fails does not keep the
/// others from being purged (the first error is returned).
async fn purge_streams(
    con: &mut Con,
    contact_id: &str,
    gone: &mut Forgotten,
    ids: &mut EntryIds,
) -> Result<()> {
    let streams = [
        (schema::queue_messages(), &mut gone.queued),
        (schema::queue_responses(), &mut gone.replies),
        (schema::queue_deadletter(), &mut gone.dead_letters),
    ];
    let mut first_error = None;
    for (stream, count) in streams {
        match purge_stream(con, stream, contact_id, ids).await {
            Ok(n) => *count = n,
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    first_error.map_or(Ok(()), Err)
}

/// Members of the learned chat (0 when it is absent or another program's).
async fn learned_count(con: &mut Con, contact_id: &str) -> Result<u64> {
    let key = keys::chat_key(contact_id);
    let kind: String = redis::cmd("TYPE")
        .arg(&key)
        .query_async(con)
        .await
        .with_context(|| format!("cannot read the type of {key}"))?;
    if kind != "zset" {
        return Ok(0);
    }
    redis::cmd("ZCARD")
        .arg(&key)
        .query_async(con)
        .await
        .with_context(|| format!("cannot count {key}"))
}

/// Deletes the contact's own keys (its draft among them) and takes it out of
/// the learned set, the draft index, the regeneration requests and the
/// operator's counts, in one step; returns how many keys existed.
async fn delete_contact_keys(con: &mut Con, contact_id: &str) -> Result<u64> {
    let own = [
        keys::chat_key(contact_id),
        keys::style_key(contact_id),
        keys::eval_key(contact_id),
        schema::history_key(contact_id),
        schema::own_history_key(contact_id),
        drafts::draft_key(contact_id),
    ];
    let mut counted = Vec::new();
    for key in unanswered::keys() {
        if counts_held(con, key).await? {
            counted.push(key);
        }
    }
    let deferred = holds_hash(con, schema::deferred()).await?;
    let mut pipe = redis::pipe();
    pipe.atomic()
        .del(&own)
        .srem(keys::contacts_key(), contact_id)
        .ignore()
        .zrem(drafts::drafts_key(), contact_id)
        .ignore()
        .hdel(drafts::regenerate_key(), contact_id)
        .ignore();
    for key in counted {
        pipe.hdel(key, contact_id).ignore();
    }
    if deferred {
        pipe.hdel(schema::deferred(), contact_id).ignore();
    }
    let (deleted,): (u64,) = pipe
        .query_async(con)
        .await
        .context("cannot delete the contact's learned data, history and draft")?;
    Ok(deleted)
}

/// Whether `key` is a hash (false when absent); a key of another type is
/// another program's, said once and left out of the step, where it would fail it.
async fn holds_hash(con: &mut Con, key: &str) -> Result<bool> {
    let kind: String = redis::cmd("TYPE")
        .arg(key)
        .query_async(con)
        .await
        .with_context(|| format!("cannot read the type of {key}"))?;
    match kind.as_str() {
        "hash" => Ok(true),
        "none" => Ok(false),
        other => {
            tracing::warn!("{key} holds a {other}, not a hash: left as it is");
            Ok(false)
        }
    }
}

/// Whether `key` (`SECONDME:unanswered` or `SECONDME:unheard`) holds counts
/// to take the contact out of. A key of another type is another program's (it
/// holds no text of ours): it stays, and stays out of the step, where it would
/// fail the step's result.
async fn counts_held(con: &mut Con, key: &str) -> Result<bool> {
    match unanswered::holds_counts(con, key).await {
        Ok(counted) => Ok(counted),
        Err(e @ unanswered::Error::Foreign { .. }) => {
            tracing::warn!("{e}");
            Ok(false)
        }
        Err(e) => Err(e).context("cannot forget the contact's counts for the operator"),
    }
}

/// Deletes the entries of `stream` for the contact, a page at a time; adds the
/// `replyId` of each to `reply_ids`. Returns how many were deleted.
async fn purge_stream(
    con: &mut Con,
    stream: &str,
    contact_id: &str,
    entry_ids: &mut EntryIds,
) -> Result<u64> {
    let kind: String = redis::cmd("TYPE")
        .arg(stream)
        .query_async(con)
        .await
        .with_context(|| format!("cannot read the type of {stream}"))?;
    match kind.as_str() {
        "stream" => {}
        "none" => return Ok(0),
        other => anyhow::bail!(
            "{stream} holds a {other}, not a stream: its entries for contact {contact_id} \
             were not looked for (the learned data, history and the other streams' entries are gone)"
        ),
    }
    let groups = group_names(con, stream).await?;
    let mut start = "-".to_owned();
    let mut deleted = 0;
    loop {
        let page: StreamRangeReply = redis::cmd("XRANGE")
            .arg(stream)
            .arg(&start)
            .arg("+")
            .arg("COUNT")
            .arg(PAGE)
            .query_async(con)
            .await
            .with_context(|| format!("cannot read {stream}"))?;
        let Some(last) = page.ids.last() else {
            return Ok(deleted);
        };
        start = format!("({}", last.id);
        let ours: Vec<&StreamId> = page
            .ids
            .iter()
            .filter(|e| is_contacts(e, contact_id))
            .collect();
        entry_ids.replies.extend(
            ours.iter()
                .filter_map(|e| text_field(e, schema::response_fields::REPLY_ID)),
        );
        entry_ids.messages.extend(
            ours.iter()
                .filter_map(|e| text_field(e, schema::MESSAGE_ID_FIELD)),
        );
        let ids: Vec<&str> = ours.iter().map(|e| e.id.as_str()).collect();
        deleted += delete_entries(con, stream, &groups, &ids).await?;
        if page.ids.len() < PAGE {
            return Ok(deleted);
        }
    }
}

/// The consumer groups of `stream`.
async fn group_names(con: &mut Con, stream: &str) -> Result<Vec<String>> {
    let info: StreamInfoGroupsReply = redis::cmd("XINFO")
        .arg("GROUPS")
        .arg(stream)
        .query_async(con)
        .await
        .with_context(|| format!("cannot list the groups of {stream}"))?;
    Ok(info.groups.into_iter().map(|g| g.name).collect())
}

/// Acknowledges `ids` in every group, then deletes them, in one step: a reader
/// never meets a pending entry whose fields are gone.
async fn delete_entries(
    con: &mut Con,
    stream: &str,
    groups: &[String],
    ids: &[&str],
) -> Result<u64> {
    if ids.is_empty() {
        return Ok(0);
    }
    let mut pipe = redis::pipe();
    pipe.atomic();
    for g in groups {
        pipe.cmd("XACK").arg(stream).arg(g).arg(ids).ignore();
    }
    let (deleted,): (u64,) = pipe
        .cmd("XDEL")
        .arg(stream)
        .arg(ids)
        .query_async(con)
        .await
        .with_context(|| format!("cannot delete entries of {stream}"))?;
    Ok(deleted)
}

/// An entry of the contact: its `contactId` field, or the original gateway's
/// `payload` JSON naming it.
fn is_contacts(entry: &StreamId, contact_id: &str) -> bool {
    if let Some(c) = text_field(entry, schema::response_fields::CONTACT_ID) {
        return c == contact_id;
    }
    text_field(entry, schema::dialect::PAYLOAD_FIELD)
        .and_then(|p| serde_json::from_str::<serde_json::Value>(&p).ok())
        .is_some_and(|v| v.get("contactId").and_then(|c| c.as_str()) == Some(contact_id))
}

/// A field of an entry as text.
fn text_field(entry: &StreamId, field: &str) -> Option<String> {
    entry
        .map
        .get(field)
        .and_then(|v| redis::from_redis_value_ref::<String>(v).ok())
}

/// Deletes the media bytes of the purged messages; returns how many existed.
async fn delete_media(con: &mut Con, message_ids: &[String]) -> Result<u64> {
    let mut deleted = 0;
    for batch in message_ids.chunks(PAGE) {
        let keys: Vec<String> = batch.iter().map(|m| schema::media_key(m)).collect();
        let n: u64 = redis::cmd("UNLINK")
            .arg(&keys)
            .query_async(con)
            .await
            .context("cannot delete the media of the contact's messages")?;
        deleted += n;
    }
    Ok(deleted)
}

/// Deletes `SENTREPLY:` and `SENDFAIL:` of each reply; returns how many existed.
async fn delete_reply_marks(con: &mut Con, reply_ids: &[String]) -> Result<u64> {
    let mut deleted = 0;
    for batch in reply_ids.chunks(PAGE) {
        let marks: Vec<String> = batch
            .iter()
            .flat_map(|r| [schema::sent_reply_key(r), schema::send_fail_key(r)])
            .collect();
        let n: u64 = redis::cmd("DEL")
            .arg(&marks)
            .query_async(con)
            .await
            .context("cannot delete the marks of the contact's replies")?;
        deleted += n;
    }
    Ok(deleted)
}
