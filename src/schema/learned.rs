//! The keys of what the twin learned from the person's chats (issue 20; not in
//! the seed): the most private data the project holds, bounded per contact,
//! without expiry, removed by `secondme forget`. See `docs/redis-schema.md`.

use super::names;

/// `LEARN:chat:{contactId}`: sorted set of the chat's messages (both sides), score
/// the time in ms, member the message as JSON; capped at `[learn] max_messages`.
pub fn chat_key(contact_id: &str) -> String {
    format!("{}{contact_id}", names().learn_chat_prefix)
}

/// `LEARN:style:{contactId}`: string, the contact's style counts as JSON.
pub fn style_key(contact_id: &str) -> String {
    format!("{}{contact_id}", names().learn_style_prefix)
}

/// `LEARN:eval:{contactId}`: string, the contact's last eval as JSON.
pub fn eval_key(contact_id: &str) -> String {
    format!("{}{contact_id}", names().learn_eval_prefix)
}

/// `LEARN:overall`: string, the style counts of every chat merged, as JSON.
pub fn overall_key() -> &'static str {
    &names().learn_overall
}

/// `LEARN:contacts`: set of the contacts with learned data.
pub fn contacts_key() -> &'static str {
    &names().learn_contacts
}
