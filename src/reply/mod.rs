//! Reply engines behind one trait: the embedded persona engine (the free offline
//! default) and a language model (`llm`), chosen by [`engine::Engine`].

pub mod engine;
pub mod input;
pub mod llm;
pub mod persona_engine;

use std::future::Future;

use input::{ContactContext, HistoryTurn, PersonaCache, QueueMessage};

/// What an engine gets to write one reply.
#[derive(Debug, Clone)]
pub struct ReplyRequest<'a> {
    /// The message to answer.
    pub message: &'a QueueMessage,
    /// Persona id.
    pub persona_id: &'a str,
    /// The persona's style.
    pub persona: &'a PersonaCache,
    /// What the graph knows about the contact, when it knows anything.
    pub context: Option<&'a ContactContext>,
    /// The conversation so far, oldest first (at most [`ReplyEngine::history_len`]
    /// messages; may include `message` itself).
    pub history: &'a [HistoryTurn],
}

/// A written reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// Text to send.
    pub content: String,
    /// How long the gateway shows "typing..." before sending, ms.
    pub delay_ms: u64,
}

/// Writes replies in the person's style.
pub trait ReplyEngine: Send + Sync + 'static {
    /// Writes the reply to one message.
    fn reply(
        &self,
        request: &ReplyRequest<'_>,
    ) -> impl Future<Output = anyhow::Result<Reply>> + Send;

    /// True when replies are computed locally at no cost (no network, no fee), so
    /// the worker may write them before deciding and send them in the same atomic step.
    fn instant(&self) -> bool {
        false
    }

    /// How many of the contact's latest messages (`HISTORY:{contactId}`) the engine
    /// wants in [`ReplyRequest::history`]; 0 spares the worker reading them.
    fn history_len(&self) -> usize {
        0
    }
}

/// Human pace for sending (upstream design): 300 ms a word plus a 2-5 s pause.
///
/// `jitter` in `0..=1` picks the pause, so the engine stays deterministic.
pub fn human_delay_ms(reply: &str, jitter: f64) -> u64 {
    let words = reply.split_whitespace().count() as u64;
    let pause = 2000.0 + 3000.0 * jitter.clamp(0.0, 1.0);
    words * 300 + pause as u64
}
