//! `SECONDME:deferred` (added, issue 21): per contact, the newest message it wrote
//! in the sleep hours under `sleep_mode = "defer"`, answered when the window ends;
//! and `SECONDME:deferred:claim:{contactId}`, the worker writing that answer.

use serde::{Deserialize, Serialize};

use super::{MessageEvent, names};

/// `SECONDME:deferred:claim:{contactId}` (added): string, the consumer writing
/// the answer to the contact's night, set `NX` for a minute so the workers
/// waking together write each night once.
pub fn claim_key(contact_id: &str) -> String {
    format!("{}{contact_id}", claim_prefix())
}

/// Prefix of `SECONDME:deferred:claim:{contactId}`.
pub fn claim_prefix() -> &'static str {
    &names().deferred_claim_prefix
}

/// One contact's value in `SECONDME:deferred`: `{"streamId", "message"}`, the
/// entry that brought the message and its `events:messages` payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Deferral {
    /// The `QUEUE:messages` entry the message came in (acknowledged already).
    pub stream_id: String,
    /// The message, as `events:messages` carries it.
    pub message: MessageEvent,
}
