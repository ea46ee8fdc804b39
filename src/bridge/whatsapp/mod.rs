//! The real WhatsApp gateway, in-process, through `whatsapp-rust`.
//!
//! - `contact`: keyed contact ids (phone and `@lid` forms of a person, one id);
//! - `mapping`: a WhatsApp message to a queue entry, or why it is skipped (pure);
//! - `link`: the narrow trait the gateway talks to, with plain data only;
//! - `media`: voice notes, audio and photos fetched for enabled contacts, to `MEDIA:{messageId}`;
//! - `inbox`: the durable commit of incoming messages (and sent replies' echoes)
//!   to `QUEUE:messages`;
//! - `gateway`: connections over any link, their events, login codes, session and state;
//! - `sender`: the reply sender reading `QUEUE:responses`, each reply sent once;
//! - `pacing`: the send budget, "typing..." delays, retry waits, reconnect backoff;
//! - `lease`: `GATEWAYLOCK:{userId}`, so one gateway per account connects and
//!   sends replies (the others stand by);
//! - `status`: the state other programs read (`GATEWAY:{userId}`, `events:gateway`);
//! - `client`: the only code that drives the library (feature `whatsapp`);
//! - `setup`: the gateway built from the configuration (commands, control room).

#[cfg(feature = "whatsapp")]
pub mod client;
pub mod contact;
pub mod gateway;
pub mod inbox;
pub mod lease;
pub mod link;
#[cfg(feature = "whatsapp")]
pub mod mapping;
pub mod media;
pub mod pacing;
pub mod sender;
#[cfg(feature = "whatsapp")]
pub mod setup;
pub mod status;

/// Longest WhatsApp id a message id carries as it is: with a contact id (`wa_`
/// and 24 hex digits) and the dot it stays within [`crate::schema::MAX_ID_BYTES`].
pub const KEPT_WA_ID_BYTES: usize = 64;

/// What a hashed WhatsApp id starts with in a message id: the dot is never in a
/// kept id, so a hashed id cannot equal a kept one.
pub const HASHED_WA_ID_PREFIX: &str = "h.";

/// The queue's message id for WhatsApp message `wa_id` in the chat with `contact_id`.
/// WhatsApp's ids are unique per chat only, so the contact is part of it. An id
/// of letters, digits, `-` and `_` up to [`KEPT_WA_ID_BYTES`] is kept as it is
/// (what WhatsApp sends in practice); any other becomes [`HASHED_WA_ID_PREFIX`]
/// and a hash of the whole id, so every id gets a valid, stable and distinct one.
pub fn message_id(contact_id: &str, wa_id: &str) -> String {
    let kept = !wa_id.is_empty()
        && wa_id.len() <= KEPT_WA_ID_BYTES
        && wa_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'));
    if kept {
        return format!("{contact_id}.{wa_id}");
    }
    use sha2::Digest as _;
    let digest = sha2::Sha256::digest(wa_id.as_bytes());
    let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!("{contact_id}.{HASHED_WA_ID_PREFIX}{hex}")
}

#[cfg(test)]
mod tests {
    #[test]
    fn message_ids_are_per_contact_and_valid() {
        let a = super::message_id("wa_1", "3EB0ABC");
        assert_eq!(a, "wa_1.3EB0ABC", "a usual id is kept as it is");
        assert_ne!(a, super::message_id("wa_2", "3EB0ABC"));
        let odd = super::message_id("wa_1", "3EB0 \u{202e}x\n");
        assert!(crate::schema::check_id(&odd).is_ok(), "{odd}");
        assert!(crate::schema::check_id(&a).is_ok());
    }
}
