//! The messages kept for the end of the sleep hours (`SECONDME:deferred`): read
//! by the workers when the window ends; a value nobody can read is dropped and
//! counted for the operator instead of being retried for ever.

use anyhow::{Context, Result};

use crate::connection::Con;
use crate::schema::{self, deferred::Deferral};

/// At most this many contacts are read in one look.
const LOOK: usize = 64;

/// One contact's deferral as read: the message, or why its value is unreadable.
pub type Kept = (String, Result<Deferral, String>);

/// Up to [`LOOK`] contacts with a deferred message, each with it (or the reason
/// its value cannot be read).
pub async fn read(con: &mut Con) -> Result<Vec<Kept>> {
    let (_, flat): (u64, Vec<(String, String)>) = redis::cmd("HSCAN")
        .arg(schema::deferred())
        .arg(0)
        .arg("COUNT")
        .arg(LOOK)
        .query_async(con)
        .await
        .with_context(|| format!("cannot read {}", schema::deferred()))?;
    Ok(flat
        .into_iter()
        .take(LOOK)
        .map(|(contact, value)| {
            let kept = serde_json::from_str::<Deferral>(&value)
                .map_err(|e| format!("not a deferral ({})", e.classify_name()))
                .and_then(|d| {
                    if d.message.contact_id == contact {
                        Ok(d)
                    } else {
                        Err("its message belongs to another contact".to_owned())
                    }
                });
            (contact, kept)
        })
        .collect())
}

/// Whether `contact`'s deferral still holds `message_id`: a reply to it written
/// meanwhile (a newer message answered) has ended it.
pub async fn holds(con: &mut Con, contact: &str, message_id: &str) -> Result<bool> {
    let held: Option<String> = redis::cmd("HGET")
        .arg(schema::deferred())
        .arg(contact)
        .query_async(con)
        .await
        .with_context(|| format!("cannot read the deferral of {contact}"))?;
    Ok(held
        .and_then(|v| serde_json::from_str::<Deferral>(&v).ok())
        .is_some_and(|d| d.message.message_id == message_id))
}

/// Claims the answer to `contact`'s night for `consumer` during `ms`; false
/// when another worker (or this one, lately) holds it.
pub async fn claim(con: &mut Con, contact: &str, consumer: &str, ms: u64) -> Result<bool> {
    let set: Option<String> = redis::cmd("SET")
        .arg(schema::deferred::claim_key(contact))
        .arg(consumer)
        .arg("NX")
        .arg("PX")
        .arg(ms)
        .query_async(con)
        .await
        .with_context(|| format!("cannot claim the night of {contact}"))?;
    Ok(set.is_some())
}

/// Drops `contact`'s unreadable deferral and counts it as not answered, in one step.
pub async fn drop_unreadable(con: &mut Con, contact: &str) -> Result<()> {
    redis::pipe()
        .atomic()
        .hdel(schema::deferred(), contact)
        .ignore()
        .hincr(schema::unanswered(), contact, 1)
        .ignore()
        .query_async::<()>(con)
        .await
        .with_context(|| format!("cannot drop the deferral of {contact}"))
}

/// Names the kind of a JSON error without quoting the value (it holds chat text).
trait Classify {
    fn classify_name(&self) -> &'static str;
}

impl Classify for serde_json::Error {
    fn classify_name(&self) -> &'static str {
        match self.classify() {
            serde_json::error::Category::Io => "unreadable",
            serde_json::error::Category::Syntax => "bad JSON",
            serde_json::error::Category::Data => "missing or wrong fields",
            serde_json::error::Category::Eof => "cut short",
        }
    }
}
