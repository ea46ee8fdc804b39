//! Learning the person from their own chats: reading WhatsApp exports
//! ([`export`]), measuring how the owner writes ([`style`]), pairing what a
//! contact wrote with what the owner answered ([`exchanges`]), finding the past
//! exchanges most like a message ([`retrieval`]) and scoring how close the twin
//! writes ([`fidelity`]). Pure functions of plain data: the storage half is
//! `store::learned`, the prompt takes [`Learned`].

pub mod context;
pub mod emoji;
pub mod eval;
pub mod exchanges;
pub mod export;
pub mod fidelity;
#[cfg(test)]
pub(crate) mod fixtures;
pub mod language;
pub mod placeholder;
pub mod retrieval;
pub mod style;
pub mod words;

use serde::{Deserialize, Serialize};

pub use exchanges::Exchange;
pub use style::StyleProfile;

/// What a learned message holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LineKind {
    /// Text the author typed.
    Text,
    /// A photo, voice note, file...: only its placeholder is known.
    Media,
    /// A message its author deleted.
    Deleted,
}

/// One message of a chat as learned, in the chat's order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatLine {
    /// When it was written, ms since the epoch (UTC: an export's local times
    /// are converted with the importing host's time zone).
    pub ts: i64,
    /// Written by the owner.
    pub me: bool,
    /// Text, media or deleted.
    pub kind: LineKind,
    /// The text (empty for media and deleted messages).
    pub text: String,
}

/// What the twin learned that bears on one reply: handed to the engines.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Learned {
    /// How the owner writes: to this contact, or overall when the contact has
    /// no history yet (then `from_contact` is false).
    pub profile: Option<StyleProfile>,
    /// The profile is this contact's own.
    pub from_contact: bool,
    /// The past exchanges of this chat most like the message, best first, each
    /// with its similarity in `0..=1`: the only ones a reply may be taken from.
    pub examples: Vec<(Exchange, f32)>,
    /// The owner's replies in other chats most like the message, best first,
    /// without what those contacts wrote (`them` empty): style examples for a
    /// prompt when the settings allow them, never a reply to send.
    pub other_chats: Vec<(Exchange, f32)>,
    /// The last reply handed out for this contact by this process, which may
    /// not have reached the history yet (a batch's replies are written
    /// together): a past reply is not sent again right after it.
    pub last_sent: Option<String>,
}

/// The `[learn]` settings, resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct LearnConfig {
    /// Messages kept per contact (both sides), the oldest dropped first.
    pub max_messages: usize,
    /// Past exchanges put in a prompt.
    pub examples: usize,
    /// The prompt's size limit, in tokens (about four characters each).
    pub prompt_budget_tokens: usize,
    /// The owner's replies to other contacts may serve as style examples (their
    /// replies only, never the other contact's messages).
    pub style_from_other_chats: bool,
    /// The offline engine answers with a past reply only above this similarity.
    pub similarity: f32,
}

impl Default for LearnConfig {
    fn default() -> Self {
        Self {
            max_messages: 50_000,
            examples: 4,
            prompt_budget_tokens: 2_000,
            style_from_other_chats: false,
            similarity: 0.5,
        }
    }
}

/// The config file's `[learn]` table, every key optional.
#[derive(Debug, Default, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LearnSettings {
    /// Messages kept per contact (100-1000000).
    pub max_messages: Option<usize>,
    /// Past exchanges put in a prompt (0-20).
    pub examples: Option<usize>,
    /// The prompt's size limit in tokens (300-100000).
    pub prompt_budget_tokens: Option<usize>,
    /// The owner's replies to other contacts may serve as style examples.
    pub style_from_other_chats: Option<bool>,
    /// The offline engine's similarity threshold (0-1).
    pub similarity: Option<f32>,
}

impl LearnSettings {
    /// This table where set, `lower`'s elsewhere.
    pub fn or(self, lower: LearnSettings) -> LearnSettings {
        LearnSettings {
            max_messages: self.max_messages.or(lower.max_messages),
            examples: self.examples.or(lower.examples),
            prompt_budget_tokens: self.prompt_budget_tokens.or(lower.prompt_budget_tokens),
            style_from_other_chats: self.style_from_other_chats.or(lower.style_from_other_chats),
            similarity: self.similarity.or(lower.similarity),
        }
    }

    /// The defaults filled in and every value checked.
    pub fn resolve(self) -> anyhow::Result<LearnConfig> {
        let d = LearnConfig::default();
        let max_messages = self.max_messages.unwrap_or(d.max_messages);
        if !(100..=1_000_000).contains(&max_messages) {
            anyhow::bail!(
                "[learn] max_messages must be between 100 and 1000000, not {max_messages}"
            );
        }
        let examples = self.examples.unwrap_or(d.examples);
        if examples > 20 {
            anyhow::bail!("[learn] examples must be between 0 and 20, not {examples}");
        }
        let prompt_budget_tokens = self.prompt_budget_tokens.unwrap_or(d.prompt_budget_tokens);
        if !(300..=100_000).contains(&prompt_budget_tokens) {
            anyhow::bail!(
                "[learn] prompt_budget_tokens must be between 300 and 100000, not {prompt_budget_tokens}"
            );
        }
        let similarity = self.similarity.unwrap_or(d.similarity);
        if !(0.0..=1.0).contains(&similarity) {
            anyhow::bail!("[learn] similarity must be between 0 and 1, not {similarity}");
        }
        Ok(LearnConfig {
            max_messages,
            examples,
            prompt_budget_tokens,
            style_from_other_chats: self.style_from_other_chats.unwrap_or(false),
            similarity,
        })
    }
}
