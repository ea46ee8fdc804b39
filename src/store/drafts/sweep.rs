//! The workers' side of the drafts: expiring those not decided in time (to
//! `QUEUE:deadletter`, reason `expired`, never sent), and the operator's requests
//! to write one again (taken once, then replaced under the commit step's checks).

use crate::connection::Con;
use anyhow::{Context, Result, bail};
use redis::AsyncCommands;

use super::{Op, index_error, step};
use crate::schema::{self, drafts as keys};

/// A request to write a draft again, as taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Regeneration {
    /// The contact.
    pub contact_id: String,
    /// The draft to replace.
    pub draft_id: String,
    /// Stream id of the entry the draft answers.
    pub stream_id: String,
    /// The message the draft answers.
    pub in_reply_to: String,
}

/// Takes up to `limit` requests to write a draft again: each is taken by one
/// worker only, and only while its draft still waits. The requests are read
/// first, then taken in one step with their contacts' keys, which takes only
/// those still there.
pub async fn take_regenerations(con: &mut Con, limit: usize) -> Result<Vec<Regeneration>> {
    let asked: Vec<(String, String)> = con
        .hgetall(keys::regenerate_key())
        .await
        .context("cannot read the requests to write drafts again")?;
    if asked.is_empty() {
        return Ok(Vec::new());
    }
    let mut call = step(Op::Take);
    for (contact, draft_id) in asked.iter().take(limit.max(1)) {
        let at = call.contact_keys(contact);
        call.arg(contact).arg(draft_id).arg(at);
    }
    let flat: Vec<String> = call
        .invoke(con)
        .await
        .context("cannot take the requests to write drafts again")?;
    Ok(flat
        .chunks_exact(4)
        .map(|c| Regeneration {
            contact_id: c[0].clone(),
            draft_id: c[1].clone(),
            stream_id: c[2].clone(),
            in_reply_to: c[3].clone(),
        })
        .collect())
}

/// A draft written again.
#[derive(Debug, Clone, Copy)]
pub struct NewDraft<'a> {
    /// Stream id of the entry it answers.
    pub stream_id: &'a str,
    /// The message it answers.
    pub message_id: &'a str,
    /// The reply id it is sent under once approved.
    pub reply_id: &'a str,
    /// The reply.
    pub content: &'a str,
    /// The persona that wrote it.
    pub persona: &'a str,
}

/// What writing a draft again did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rewritten {
    /// The new draft took the old one's place (`replaced`).
    Drafted,
    /// The old one was decided, replaced or expired meanwhile: nothing written.
    Gone,
    /// A pause, the kill switch, a disable or the sleep hours stop drafting.
    Withheld,
}

/// Puts `new` in the place of draft `expected` of `r`'s contact, for `ttl_ms`.
pub async fn rewrite(
    con: &mut Con,
    r: &Regeneration,
    new: &NewDraft<'_>,
    ttl_ms: i64,
    asleep: bool,
) -> Result<Rewritten> {
    let mut call = step(Op::Rewrite);
    let at = call.contact_keys(&r.contact_id);
    call.arg(&r.draft_id)
        .arg(&r.contact_id)
        .arg(at)
        .arg(new.stream_id)
        .arg(new.message_id)
        .arg(new.reply_id)
        .arg(new.content)
        .arg(new.persona)
        .arg(ttl_ms)
        .arg(if asleep { "1" } else { "0" });
    let answer: String = call
        .invoke(con)
        .await
        .with_context(|| format!("cannot write draft {} again", r.draft_id))?;
    match answer.as_str() {
        "drafted" => Ok(Rewritten::Drafted),
        "gone" => Ok(Rewritten::Gone),
        "withheld" => Ok(Rewritten::Withheld),
        other => bail!("cannot write draft {} again: {other}", r.draft_id),
    }
}

/// Moves up to `limit` drafts past their expiry to `QUEUE:deadletter` (reason
/// `expired`); returns how many. The drafts past their expiry by the server's
/// clock are read first, then moved in one step with their keys, which moves
/// only those still past their expiry.
pub async fn expire(con: &mut Con, limit: usize) -> Result<usize> {
    let now = server_now_ms(con).await?;
    let read = con
        .zrangebyscore_limit(keys::drafts_key(), "-inf", now, 0, limit.max(1).try_into()?)
        .await;
    let what = "cannot read the drafts past their expiry";
    let due: Vec<String> = match read {
        Ok(due) => due,
        Err(e) => return Err(index_error(con, e, what).await),
    };
    if due.is_empty() {
        return Ok(0);
    }
    let mut call = step(Op::Expire);
    call.arg(schema::QUEUE_DEADLETTER_CAP)
        .arg(schema::deadletter_fields::SOURCE_ID)
        .arg(schema::deadletter_fields::REASON)
        .arg(schema::deadletter_fields::AT);
    for contact in &due {
        let at = call.contact_keys(contact);
        call.arg(contact).arg(at);
    }
    let n: usize = call.invoke(con).await.context("cannot expire the drafts")?;
    Ok(n)
}

/// The server's clock, ms: drafts expire by it, as the steps write them.
async fn server_now_ms(con: &mut Con) -> Result<i64> {
    let (secs, micros): (i64, i64) = redis::cmd("TIME")
        .query_async(con)
        .await
        .context("cannot read the server's time")?;
    Ok(secs * 1000 + micros / 1000)
}
