//! Conversations: the recent messages with each contact.

use std::collections::VecDeque;

/// Most messages kept per conversation.
pub const MAX_MESSAGES: usize = 200;

/// Who wrote a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Author {
    /// The contact.
    Contact,
    /// The AI twin.
    Twin,
    /// The person themselves (takeover).
    Person,
}

/// One message in a conversation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChatMessage {
    /// Message id, used to drop duplicates.
    pub id: String,
    /// When it was sent.
    pub timestamp_ms: i64,
    /// Who wrote it.
    pub author: Author,
    /// Sanitized text; may contain `\n`.
    pub text: String,
}

/// Recent messages with one contact, oldest first.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Conversation {
    /// Messages, capped at [`MAX_MESSAGES`].
    pub messages: VecDeque<ChatMessage>,
}

impl Conversation {
    /// Adds a message unless its id is already present; drops the oldest over the cap.
    pub fn push(&mut self, msg: ChatMessage) -> bool {
        if !msg.id.is_empty() && self.messages.iter().rev().any(|m| m.id == msg.id) {
            return false;
        }
        // Keep time order even when events arrive slightly out of order.
        let pos = self
            .messages
            .iter()
            .rposition(|m| m.timestamp_ms <= msg.timestamp_ms);
        let at = pos.map_or(0, |p| p + 1);
        self.messages.insert(at, msg);
        while self.messages.len() > MAX_MESSAGES {
            self.messages.pop_front();
        }
        true
    }
}
