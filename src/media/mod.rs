//! Understanding what a message's media says (issue 23): voice notes through an
//! OpenAI-compatible transcription endpoint ([`stt`]); photos through the
//! language model when it takes images (`reply::llm`). The worker's stage that
//! uses both is `worker::understand`.

pub mod config;
pub mod multipart;
pub mod stt;

use thiserror::Error;

/// Why media was not understood. A permanent failure (no endpoint, a refused
/// request, bytes gone or too large) leaves the message to the operator; a
/// transient one (a timeout, a 5xx, after the client's own retries) leaves the
/// entry pending, to be tried again like a reply the model could not write.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum UnderstandError {
    /// Trying again will not help.
    #[error("{0}")]
    Permanent(String),
    /// It may work later.
    #[error("{0}")]
    Transient(String),
}

impl UnderstandError {
    /// True when trying again will not help.
    pub fn is_permanent(&self) -> bool {
        matches!(self, Self::Permanent(_))
    }
}
