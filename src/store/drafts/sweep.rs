//! The workers' side of the drafts: expiring those not decided in time (to
//! `QUEUE:deadletter`, reason `expired`, never sent), and the operator's requests
//! to write one again (taken once, then replaced under the commit step's checks).

use crate::connection::Con;
use anyhow::{Context, Result, bail};

use super::{Op, step};
use crate::schema;

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
/// worker only, and only while its draft still waits.
pub async fn take_regenerations(con: &mut Con, limit: usize) -> Result<Vec<Regeneration>> {
    let mut call = step(Op::Take);
    call.arg(limit.max(1));
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
    call.arg(&r.draft_id)
        .arg(&r.contact_id)
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
/// `expired`); returns how many.
pub async fn expire(con: &mut Con, limit: usize) -> Result<usize> {
    let mut call = step(Op::Expire);
    call.arg(schema::QUEUE_DEADLETTER_CAP)
        .arg(schema::deadletter_fields::SOURCE_ID)
        .arg(schema::deadletter_fields::REASON)
        .arg(schema::deadletter_fields::AT)
        .arg(limit.max(1));
    let n: usize = call.invoke(con).await.context("cannot expire the drafts")?;
    Ok(n)
}
