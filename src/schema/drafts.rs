//! The keys and channel of draft mode (issue 21; not in the seed): each
//! contact's reply mode, the one waiting draft per contact, the index of drafts
//! by expiry, the requests to write one again and the channel that announces
//! them; and the plain types read from them. See `docs/redis-schema.md`.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::names;

/// `SECONDME:modes`: hash, contact id (or `*`, the default) to `auto` | `draft`.
pub fn modes_key() -> &'static str {
    &names().modes
}

/// The field of `SECONDME:modes` that holds the default for every contact.
pub const DEFAULT_MODE_FIELD: &str = "*";

/// `DRAFT:{contactId}`: hash, the contact's waiting draft.
pub fn draft_key(contact_id: &str) -> String {
    format!("{}{contact_id}", draft_prefix())
}

/// Prefix of `DRAFT:{contactId}`.
pub fn draft_prefix() -> &'static str {
    &names().draft_prefix
}

/// `DRAFTS`: sorted set, member a contact id with a waiting draft, score its expiry in ms.
pub fn drafts_key() -> &'static str {
    &names().drafts
}

/// `DRAFTS:regenerate`: hash, contact id to the draft id the operator asked to
/// have written again; a worker takes each request once.
pub fn regenerate_key() -> &'static str {
    &names().drafts_regenerate
}

/// `events:drafts`: each draft created, replaced, approved, discarded, expired
/// or asked to be written again, as JSON.
pub fn channel_drafts() -> &'static str {
    &names().channel_drafts
}

/// The draft id of the draft answering `message_id`.
pub fn draft_id(message_id: &str) -> String {
    format!("{DRAFT_ID_PREFIX}{message_id}")
}

/// What every draft id starts with.
pub const DRAFT_ID_PREFIX: &str = "draft_";

/// What the reply id of the operator's own words starts with: `own_{ms}_{random}`.
pub const OWN_REPLY_PREFIX: &str = "own_";

/// The `delayMs` of an approved draft and of the operator's own words: the
/// operator decided, so the gateway sends at once, without "typing...".
pub const APPROVED_DELAY_MS: u64 = 0;

/// How the twin answers a contact: on its own, or as a draft the operator decides on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReplyMode {
    /// The reply goes out (today's behaviour).
    #[default]
    Auto,
    /// The reply waits as a draft.
    Draft,
}

impl ReplyMode {
    /// The mode as stored: `auto` or `draft`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::Draft => "draft",
        }
    }
}

impl fmt::Display for ReplyMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A reply mode that is neither `auto` nor `draft`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a reply mode (auto or draft)")]
pub struct UnknownMode(pub String);

impl FromStr for ReplyMode {
    type Err = UnknownMode;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "auto" => Ok(Self::Auto),
            "draft" => Ok(Self::Draft),
            other => Err(UnknownMode(other.to_owned())),
        }
    }
}

/// The mode a contact is answered in: its own in `modes`, else the `*` default
/// there, else `setting` (the `reply_mode` setting), as the worker's steps decide.
pub fn mode_for(
    modes: &HashMap<String, ReplyMode>,
    contact_id: &str,
    setting: ReplyMode,
) -> ReplyMode {
    modes
        .get(contact_id)
        .or_else(|| modes.get(DEFAULT_MODE_FIELD))
        .copied()
        .unwrap_or(setting)
}

/// A waiting draft, as listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Draft {
    /// `draft_` + the answered message id.
    pub draft_id: String,
    /// The contact it answers.
    pub contact_id: String,
    /// The reply as the twin wrote it.
    pub content: String,
    /// The message it answers.
    pub in_reply_to: String,
    /// When it was written, ms.
    pub created_at: i64,
    /// When it expires unsent, ms.
    pub expires_at: i64,
}

/// Field names of a `DRAFT:{contactId}` hash.
pub mod fields {
    /// The draft's id, `draft_` + the answered message id.
    pub const DRAFT_ID: &str = "draftId";
    /// The contact it answers.
    pub const CONTACT_ID: &str = "contactId";
    /// The reply as the twin wrote it.
    pub const CONTENT: &str = "content";
    /// The message id it answers (the burst's last).
    pub const IN_REPLY_TO: &str = "inReplyTo";
    /// When it was written, ms.
    pub const CREATED_AT: &str = "createdAt";
    /// When it expires unsent, ms.
    pub const EXPIRES_AT: &str = "expiresAt";
    /// The persona that wrote it.
    pub const PERSONA: &str = "persona";
    /// Stream id of the `QUEUE:messages` entry it answers.
    pub const STREAM_ID: &str = "streamId";
}

/// An `events:drafts` payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DraftEvent {
    /// What happened: one of [`events`].
    #[serde(rename = "type")]
    pub kind: String,
    /// The draft.
    pub draft_id: String,
    /// Its contact.
    pub contact_id: String,
    /// When, ms (the server's clock).
    pub at: i64,
}

/// The `type` of an `events:drafts` payload.
pub mod events {
    /// A draft was written for a contact without one.
    pub const CREATED: &str = "created";
    /// A newer draft took the place of the contact's waiting one.
    pub const REPLACED: &str = "replaced";
    /// The operator approved it: sent.
    pub const APPROVED: &str = "approved";
    /// The operator discarded it: never sent.
    pub const DISCARDED: &str = "discarded";
    /// Not decided within `draft_ttl`: never sent, dead-lettered.
    pub const EXPIRED: &str = "expired";
    /// The operator asked for it to be written again.
    pub const REGENERATE: &str = "regenerate";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_names_and_the_draft_id_are_the_documented_ones() {
        assert_eq!(modes_key(), "SECONDME:modes");
        assert_eq!(draft_key("c1"), "DRAFT:c1");
        assert_eq!(drafts_key(), "DRAFTS");
        assert_eq!(regenerate_key(), "DRAFTS:regenerate");
        assert_eq!(channel_drafts(), "events:drafts");
        assert_eq!(draft_id("m1"), "draft_m1");
    }

    #[test]
    fn a_mode_reads_and_prints_as_stored_and_nothing_else_parses() {
        for mode in [ReplyMode::Auto, ReplyMode::Draft] {
            assert_eq!(mode.to_string().parse::<ReplyMode>(), Ok(mode));
        }
        assert_eq!(ReplyMode::Draft.to_string(), "draft");
        assert!("Draft".parse::<ReplyMode>().is_err());
        assert_eq!(ReplyMode::default(), ReplyMode::Auto);
    }

    #[test]
    fn a_contacts_own_mode_beats_the_star_which_beats_the_setting() {
        let mut modes = HashMap::new();
        assert_eq!(mode_for(&modes, "a", ReplyMode::Draft), ReplyMode::Draft);
        modes.insert(DEFAULT_MODE_FIELD.to_owned(), ReplyMode::Auto);
        assert_eq!(mode_for(&modes, "a", ReplyMode::Draft), ReplyMode::Auto);
        modes.insert("a".to_owned(), ReplyMode::Draft);
        assert_eq!(mode_for(&modes, "a", ReplyMode::Auto), ReplyMode::Draft);
        assert_eq!(mode_for(&modes, "b", ReplyMode::Draft), ReplyMode::Auto);
    }

    #[test]
    fn a_draft_is_listed_in_the_documented_json() {
        let d = Draft {
            draft_id: "draft_m1".into(),
            contact_id: "c1".into(),
            content: "ok".into(),
            in_reply_to: "m1".into(),
            created_at: 1,
            expires_at: 2,
        };
        let v = serde_json::to_value(&d).expect("json");
        let keys: Vec<&str> = v
            .as_object()
            .expect("object")
            .keys()
            .map(String::as_str)
            .collect();
        let mut want = [
            "draftId",
            "contactId",
            "content",
            "inReplyTo",
            "createdAt",
            "expiresAt",
        ];
        want.sort_unstable();
        assert_eq!(keys, want);
    }
}
