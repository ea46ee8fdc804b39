//! The real WhatsApp gateway, in-process, through `whatsapp-rust`.
//!
//! - `contact`: keyed contact ids (phone and `@lid` forms of a person, one id);
//! - `mapping`: a WhatsApp message to a queue entry, or why it is skipped (pure);
//! - `link`: the narrow trait the gateway talks to, with plain data only;
//! - `inbox`: the durable commit of incoming messages to `QUEUE:messages`;
//! - `gateway`: login codes, session, state, and the reply sender, over any link;
//! - `lease`: `GATEWAYLOCK:{userId}`, so one gateway per account sends replies;
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
#[cfg(feature = "whatsapp")]
pub mod setup;
pub mod status;

/// The queue's message id for WhatsApp message `wa_id` in the chat with `contact_id`.
/// WhatsApp's ids are unique per chat only, so the contact is part of it; characters
/// the queue refuses are dropped and the id is capped.
pub fn message_id(contact_id: &str, wa_id: &str) -> String {
    let clean: String = wa_id
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'))
        .take(128)
        .collect();
    format!("{contact_id}.{clean}")
}

#[cfg(test)]
mod tests {
    #[test]
    fn message_ids_are_per_contact_and_valid() {
        let a = super::message_id("wa_1", "3EB0ABC");
        assert_ne!(a, super::message_id("wa_2", "3EB0ABC"));
        let odd = super::message_id("wa_1", "3EB0 \u{202e}x\n");
        assert!(crate::schema::check_id(&odd).is_ok(), "{odd}");
        assert!(crate::schema::check_id(&a).is_ok());
    }
}
