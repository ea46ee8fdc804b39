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
    use std::path::PathBuf;

    /// Every file under `src/{dir}` with its text.
    fn sources(dir: &str) -> Vec<(PathBuf, String)> {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut files = vec![root.join(dir)];
        let mut found = Vec::new();
        while let Some(path) = files.pop() {
            if path.is_dir() {
                for entry in std::fs::read_dir(&path).expect("read a source folder") {
                    files.push(entry.expect("entry").path());
                }
                continue;
            }
            let text = std::fs::read_to_string(&path).expect("read a source file");
            found.push((path, text));
        }
        found
    }

    /// The modules of this crate that `text` names: the first segment of each
    /// path from the crate's root, and each item of a group there, so that
    /// `{schema, reply}` after the root names `reply` as a path to it would.
    fn crate_modules(text: &str) -> Vec<&str> {
        // Spelled in pieces, so this file does not match itself.
        let root = concat!("crate", "::");
        let mut names = Vec::new();
        for (at, _) in text.match_indices(root) {
            let rest = &text[at + root.len()..];
            let Some(group) = rest.strip_prefix('{') else {
                names.push(first_segment(rest));
                continue;
            };
            let (mut depth, mut start) = (0, 0);
            for (i, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth > 0 => depth -= 1,
                    ',' | '}' if depth == 0 => {
                        names.push(first_segment(&group[start..i]));
                        if c == '}' {
                            break;
                        }
                        start = i + 1;
                    }
                    _ => {}
                }
            }
        }
        names.retain(|n| !n.is_empty());
        names
    }

    /// The leading identifier of a path.
    fn first_segment(path: &str) -> &str {
        let path = path.trim_start();
        let end = path
            .find(|c: char| !(c.is_alphanumeric() || c == '_'))
            .unwrap_or(path.len());
        &path[..end]
    }

    #[test]
    fn crate_paths_and_groups_name_their_modules() {
        let text = concat!(
            "use crate",
            "::alpha::x;\nuse crate",
            "::{\n    beta::{y, z},\n    gamma,\n};\nlet v = crate",
            "::delta(1);"
        );
        assert_eq!(crate_modules(text), ["alpha", "beta", "gamma", "delta"]);
    }

    /// Engines get their inputs handed in: nothing under `src/reply` may reach
    /// Redis or the graph, so an engine can be tested and swapped on plain data.
    #[test]
    fn no_engine_imports_a_module_that_talks_to_redis_or_the_graph() {
        let files = sources("reply");
        for (path, text) in &files {
            for m in crate_modules(text) {
                let banned = ["graph", "store", "connection"].contains(&m);
                assert!(!banned, "{} uses the crate's {m}", path.display());
            }
            // Spelled in pieces, so this file does not match itself.
            let redis = concat!("redis", "::");
            assert!(!text.contains(redis), "{} uses {redis}", path.display());
        }
        let n = files.len();
        assert!(n >= 3, "only {n} files under src/reply");
    }

    /// The store writes plain data of the lower layer (the usage figures, the
    /// conversation's turns): nothing under `src/store` may import an engine,
    /// which sits beside it, not below.
    #[test]
    fn the_store_imports_no_engine() {
        let files = sources("store");
        for (path, text) in &files {
            let engines = crate_modules(text).contains(&"reply");
            assert!(!engines, "{} uses the crate's reply", path.display());
        }
        let n = files.len();
        assert!(n >= 3, "only {n} files under src/store");
    }
}
