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

#[cfg(test)]
mod tests {
    /// Engines get their inputs handed in: nothing under `src/reply` may reach
    /// Redis or the graph, so an engine can be tested and swapped on plain data.
    #[test]
    fn no_engine_imports_a_module_that_talks_to_redis_or_the_graph() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/reply");
        let mut files = vec![dir.clone()];
        let mut checked = 0;
        while let Some(path) = files.pop() {
            if path.is_dir() {
                for entry in std::fs::read_dir(&path).expect("read src/reply") {
                    files.push(entry.expect("entry").path());
                }
                continue;
            }
            let text = std::fs::read_to_string(&path).expect("read a source file");
            // Spelled in pieces, so this file does not match itself.
            let modules = ["graph", "store", "connection"].map(|m| format!("crate::{m}"));
            let banned = modules
                .iter()
                .map(String::as_str)
                .chain([concat!("redis", "::")]);
            for b in banned {
                assert!(!text.contains(b), "{} uses {b}", path.display());
            }
            checked += 1;
        }
        assert!(checked >= 3, "only {checked} files under src/reply");
    }
}
