//! The dead-letter step on the contract's keys: an entry that will not be
//! handled goes to `QUEUE:deadletter` with the reason and is acknowledged in one
//! step of the functions library. The worker (`QUEUE:messages`) and the WhatsApp
//! gateway (`QUEUE:responses`) both call it, so a letter has one format.

use crate::connection::Con;
use anyhow::{Context, Result};

use super::functions::{Call, Step};
use crate::schema;

/// An entry that will not be handled, with the reason and its raw fields.
#[derive(Debug, Clone)]
pub struct DeadLetter {
    /// Stream id of the entry.
    pub stream_id: String,
    /// Why.
    pub reason: String,
    /// The entry's fields as text.
    pub fields: Vec<(String, String)>,
}

/// Moves entries to `QUEUE:deadletter` and acknowledges them, in one step of the
/// functions library: an entry is acknowledged only with its dead letter written,
/// and a foreign `QUEUE:deadletter` fails the step (nothing acknowledged).
pub async fn from_queue(con: &mut Con, group: &str, letters: &[DeadLetter]) -> Result<()> {
    write(con, schema::queue_messages(), group, letters).await?;
    forget_their_media(con, letters).await;
    Ok(())
}

/// Deletes the media bytes of dead-lettered entries that named media: they will
/// not be answered, so the bytes are not needed (the expiry covers a failure).
async fn forget_their_media(con: &mut Con, letters: &[DeadLetter]) {
    let field = |l: &'_ DeadLetter, name: &str| -> Option<String> {
        l.fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let ids: Vec<String> = letters
        .iter()
        .filter(|l| field(l, schema::media::MEDIA_TYPE_FIELD).is_some())
        .filter_map(|l| field(l, schema::MESSAGE_ID_FIELD))
        .collect();
    if ids.is_empty() {
        return;
    }
    if let Err(e) = super::media::forget(con, ids.iter().map(String::as_str)).await {
        tracing::warn!("cannot delete the media of dead letters (it expires within the hour): {e}");
    }
}

/// [`from_queue`] for entries of `source` read in `group` (the WhatsApp gateway's
/// replies from `QUEUE:responses`): the same step, the same dead-letter format.
pub async fn write(con: &mut Con, source: &str, group: &str, letters: &[DeadLetter]) -> Result<()> {
    if letters.is_empty() {
        return Ok(());
    }
    let mut call = Call::new(Step::DeadLetter);
    call.key(schema::queue_deadletter())
        .key(source)
        .key(schema::stats())
        .arg(group)
        .arg(schema::QUEUE_DEADLETTER_CAP)
        .arg(super::now_ms())
        .arg(schema::deadletter_fields::SOURCE_ID)
        .arg(schema::deadletter_fields::REASON)
        .arg(schema::deadletter_fields::AT);
    for l in letters {
        call.arg(&l.stream_id).arg(&l.reason).arg(l.fields.len());
        for (k, v) in &l.fields {
            call.arg(k).arg(v);
        }
    }
    let warnings: Vec<String> = call
        .invoke(con)
        .await
        .context("cannot write to QUEUE:deadletter")?;
    for l in letters {
        tracing::warn!("dead-lettered: {}", l.reason);
    }
    for w in warnings {
        tracing::warn!("a best-effort write failed (the twin goes on): {w}");
    }
    Ok(())
}
