//! A parsed queue entry in one allocation. During a burst, entries read ahead wait
//! in memory by the tens of thousands, and one string per entry instead of four
//! holds about twice as many in the same budget.

use crate::entry::CheckedEntry;
use crate::schema::media::{MediaMark, MediaRef};
use crate::schema::{Direction, QueueMessage};

/// The media of an entry: what the entry named, and once the worker looked at
/// it, how it was understood (boxed: most entries have none).
#[derive(Clone, Debug)]
pub(super) struct EntryMedia {
    /// `mediaType` and `mediaSeconds`.
    pub(super) source: MediaRef,
    /// Set once understood, or once found unreadable (`unread`).
    pub(super) mark: Option<MediaMark>,
}

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
    media: Option<Box<EntryMedia>>,
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
            media: m
                .media
                .clone()
                .map(|source| Box::new(EntryMedia { source, mark: None })),
        }
    }

    /// This entry with its media understood: `content` (the transcript, or the
    /// caption) replaces its text and `mark` says how it was understood, or that
    /// it could not be (`unread`, the text left as it was).
    pub(super) fn understood(&self, content: Option<&str>, mark: MediaMark) -> Self {
        let head_len = self.ends[2] as usize;
        let head = self.text.get(..head_len).unwrap_or("");
        let content = content.unwrap_or(self.part(3));
        let mut text = String::with_capacity(head.len() + content.len());
        text.push_str(head);
        text.push_str(content);
        let source = self.media.as_ref().map_or_else(
            || MediaRef {
                mime: String::new(),
                seconds: mark.seconds,
            },
            |m| m.source.clone(),
        );
        Self {
            text: text.into_boxed_str(),
            media: Some(Box::new(EntryMedia {
                source,
                mark: Some(mark),
            })),
            ..self.clone()
        }
    }

    /// The media the entry named, if any.
    pub(super) fn media(&self) -> Option<&MediaRef> {
        self.media.as_ref().map(|m| &m.source)
    }

    /// How its media was understood, once the worker looked.
    pub(super) fn media_mark(&self) -> Option<&MediaMark> {
        self.media.as_ref().and_then(|m| m.mark.as_ref())
    }

    /// True when its media could not be understood: no automated reply.
    pub(super) fn is_unread(&self) -> bool {
        self.media_mark().is_some_and(|m| m.unread)
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
        let media = self.media.as_deref().map_or(0, |m| {
            let gist = m.mark.as_ref().and_then(|k| k.gist.as_ref());
            std::mem::size_of::<EntryMedia>() + m.source.mime.len() + gist.map_or(0, String::len)
        });
        std::mem::size_of::<Self>() + self.text.len() + media
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
            media: None,
        };
        let p = ParsedEntry::new("1-0", &checked);
        let m = QueueMessage::from(checked);
        assert_eq!(p.stream_id(), "1-0");
        assert_eq!(p.message_id(), "msg_1");
        assert_eq!(p.contact_id(), "c1");
        assert_eq!(p.message(), m);
        assert!(p.size_bytes() < 72, "{}", p.size_bytes());
    }

    #[test]
    fn the_memory_of_an_entry_counts_its_media() {
        let checked = CheckedEntry {
            message_id: "msg_1".into(),
            contact_id: "c1".into(),
            content: "".into(),
            timestamp: 1,
            direction: Direction::Incoming,
            from_me: false,
            media: None,
        };
        let text = ParsedEntry::new("1-0", &checked);
        let voice = ParsedEntry::new(
            "1-0",
            &CheckedEntry {
                media: Some(MediaRef {
                    mime: "audio/ogg; codecs=opus".into(),
                    seconds: Some(7),
                }),
                ..checked
            },
        );
        assert_eq!(
            voice.size_bytes() - text.size_bytes(),
            std::mem::size_of::<EntryMedia>() + "audio/ogg; codecs=opus".len()
        );
    }
}
