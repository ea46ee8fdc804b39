//! A parsed queue entry in one allocation. During a burst, entries read ahead wait
//! in memory by the tens of thousands, and one string per entry instead of four
//! holds about twice as many in the same budget.

use crate::entry::CheckedEntry;
use crate::schema::{Direction, QueueMessage};

/// A parsed entry waiting for its verdict.
#[derive(Clone)]
pub(super) struct ParsedEntry {
    /// Stream id, message id, contact id and content, one after the other.
    text: Box<str>,
    /// Where the stream id, the message id and the contact id end in `text`.
    ends: [u32; 3],
    timestamp: i64,
    direction: Direction,
    from_me: bool,
}

impl ParsedEntry {
    /// Packs entry `stream_id` holding `m`.
    pub(super) fn new(stream_id: &str, m: &CheckedEntry<'_>) -> Self {
        let mut text = String::with_capacity(
            stream_id.len() + m.message_id.len() + m.contact_id.len() + m.content.len(),
        );
        let mut ends = [0; 3];
        for (end, part) in ends
            .iter_mut()
            .zip([stream_id, &*m.message_id, &*m.contact_id])
        {
            text.push_str(part);
            // Ids are short: parsing caps message and contact ids at 256 bytes, and
            // Redis writes stream ids.
            debug_assert!(text.len() <= u32::MAX as usize);
            *end = u32::try_from(text.len()).unwrap_or(u32::MAX);
        }
        text.push_str(&m.content);
        Self {
            text: text.into_boxed_str(),
            ends,
            timestamp: m.timestamp,
            direction: m.direction,
            from_me: m.from_me,
        }
    }

    fn part(&self, i: usize) -> &str {
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        let end = self.ends.get(i).map_or(self.text.len(), |&e| e as usize);
        self.text.get(start..end).unwrap_or("")
    }

    /// The stream entry's id.
    pub(super) fn stream_id(&self) -> &str {
        self.part(0)
    }

    /// The gateway's message id.
    pub(super) fn message_id(&self) -> &str {
        self.part(1)
    }

    /// The contact.
    pub(super) fn contact_id(&self) -> &str {
        self.part(2)
    }

    /// Unix time in ms.
    pub(super) fn timestamp(&self) -> i64 {
        self.timestamp
    }

    /// Incoming or outgoing.
    pub(super) fn direction(&self) -> Direction {
        self.direction
    }

    /// Sent from the person's account (`fromMe`).
    pub(super) fn is_from_me(&self) -> bool {
        self.from_me
    }

    /// The message, unpacked.
    pub(super) fn message(&self) -> QueueMessage {
        QueueMessage {
            message_id: self.message_id().to_owned(),
            contact_id: self.contact_id().to_owned(),
            content: self.part(3).to_owned(),
            timestamp: self.timestamp,
            direction: self.direction,
            from_me: self.from_me,
        }
    }

    /// Memory held, in bytes, allocator overhead aside.
    pub(super) fn size_bytes(&self) -> usize {
        std::mem::size_of::<Self>() + self.text.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unpacks_what_was_packed() {
        let checked = CheckedEntry {
            message_id: "msg_1".into(),
            contact_id: "c1".into(),
            content: "héllo \u{1b}[2J".into(),
            timestamp: 1_704_931_200_000,
            direction: Direction::Outgoing,
            from_me: true,
        };
        let p = ParsedEntry::new("1-0", &checked);
        let m = QueueMessage::from(checked);
        assert_eq!(p.stream_id(), "1-0");
        assert_eq!(p.message_id(), "msg_1");
        assert_eq!(p.contact_id(), "c1");
        assert_eq!(p.message(), m);
        assert!(p.size_bytes() < 64, "{}", p.size_bytes());
    }
}
