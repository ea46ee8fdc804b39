//! `SECONDME:deferred` (added, issue 21): per contact, the newest message it wrote
//! in the sleep hours under `sleep_mode = "defer"`, answered when the window ends.

use serde::{Deserialize, Serialize};

use super::MessageEvent;

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
