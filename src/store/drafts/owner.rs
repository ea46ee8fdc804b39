//! The operator's own words: sent as the person through `QUEUE:responses`
//! (`fromOwner`), kept as typed by the person, with the takeover pause.

use std::time::Duration;

use crate::connection::Con;
use aes_gcm::aead::OsRng;
use aes_gcm::aead::rand_core::RngCore;
use anyhow::{Context, Result, bail};

use super::{Op, check_text, step};
use crate::schema::{self, drafts as keys};

/// Sends `text` to `contact_id` as the person (enabled or not), and pauses the
/// twin for that contact as when the person types on the phone (the takeover
/// pause, 60 min); returns the reply id. [`send_as_owner_for`] takes the
/// configured `takeover`.
pub async fn send_as_owner(con: &mut Con, contact_id: &str, text: &str) -> Result<String> {
    let takeover = Duration::from_millis(schema::DEFAULT_PAUSE_MS.unsigned_abs());
    send_as_owner_for(con, contact_id, text, takeover).await
}

/// [`send_as_owner`] with a takeover pause of `takeover` (the `takeover` setting).
pub async fn send_as_owner_for(
    con: &mut Con,
    contact_id: &str,
    text: &str,
    takeover: Duration,
) -> Result<String> {
    super::super::ensure_contact_id(contact_id)?;
    check_text(text)?;
    let takeover_ms = i64::try_from(takeover.as_millis()).unwrap_or(i64::MAX);
    if takeover_ms <= 0 {
        bail!("the takeover pause must last more than 0 ms");
    }
    let reply_id = own_reply_id(super::super::now_ms());
    let mut call = step(Op::Own);
    let at = call.contact_keys(contact_id);
    call.arg(contact_id)
        .arg(at)
        .arg(text)
        .arg(&reply_id)
        .arg(takeover_ms)
        .arg(schema::channel_pause());
    let answer: String = call
        .invoke(con)
        .await
        .with_context(|| format!("cannot send your message to {contact_id}"))?;
    if answer != "sent" {
        bail!("cannot send your message to {contact_id}: {answer}");
    }
    Ok(reply_id)
}

/// `own_{ms}_{16 hex}`: unique without coordination between control rooms.
fn own_reply_id(now_ms: i64) -> String {
    format!(
        "{}{now_ms}_{:016x}",
        keys::OWN_REPLY_PREFIX,
        OsRng.next_u64()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_reply_ids_carry_the_time_and_differ() {
        let a = own_reply_id(1_700_000_000_000);
        let b = own_reply_id(1_700_000_000_000);
        assert!(a.starts_with("own_1700000000000_"), "{a}");
        assert_eq!(a.len(), "own_1700000000000_".len() + 16);
        assert_ne!(a, b);
    }
}
