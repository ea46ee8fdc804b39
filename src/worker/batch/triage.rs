//! Sorting entries before the step: parsed ones go on to be decided, the others
//! become dead letters with their reason (unreadable, delivered too often,
//! expired, or stopped a step on their own).

use std::collections::HashMap;

use redis::streams::StreamId;

use crate::entry;
use crate::schema::{self, Direction, QueueMessage, media};
use crate::store::deadletter::DeadLetter;
use crate::worker::parsed_entry::ParsedEntry;

/// Entries read from the queue, split into parsed ones and ones to dead-letter.
#[derive(Default)]
pub(in crate::worker) struct Triaged {
    pub(super) good: Vec<ParsedEntry>,
    pub(super) bad: Vec<DeadLetter>,
}

impl Triaged {
    /// How many entries.
    pub(in crate::worker) fn len(&self) -> usize {
        self.good.len() + self.bad.len()
    }

    /// Splits into batches of at most `size` parsed entries; the dead letters go
    /// with the first.
    pub(in crate::worker) fn into_chunks(self, size: usize) -> Vec<Triaged> {
        let size = size.max(1);
        let mut chunks = Vec::with_capacity(self.good.len() / size + 1);
        let mut bad = self.bad;
        let mut good = self.good.into_iter().peekable();
        while good.peek().is_some() || !bad.is_empty() {
            chunks.push(Triaged {
                good: good.by_ref().take(size).collect(),
                bad: std::mem::take(&mut bad),
            });
        }
        chunks
    }

    /// Keeps only the entries whose stream id `keep` accepts.
    pub(in crate::worker) fn retain(&mut self, keep: impl Fn(&str) -> bool) {
        self.good.retain(|g| keep(g.stream_id()));
        self.bad.retain(|d| keep(&d.stream_id));
    }

    /// Stream ids of every entry.
    pub(in crate::worker) fn stream_ids(&self) -> impl Iterator<Item = &str> {
        let good = self.good.iter().map(ParsedEntry::stream_id);
        good.chain(self.bad.iter().map(|d| d.stream_id.as_str()))
    }

    /// Every entry as a dead letter: the parsed ones with `reason`, the others
    /// with their own.
    #[cfg(test)]
    pub(in crate::worker) fn as_dead_letters(&self, reason: &str) -> Vec<DeadLetter> {
        let mut letters = self.bad.clone();
        letters.extend(self.good.iter().map(|g| DeadLetter {
            stream_id: g.stream_id().to_owned(),
            reason: format!("entry {}: {reason}", g.stream_id()),
            fields: entry_fields(g),
        }));
        letters
    }

    /// Parsed entries to decide (again).
    pub(in crate::worker) fn from_good(good: Vec<ParsedEntry>) -> Self {
        Self {
            good,
            bad: Vec::new(),
        }
    }

    /// Moves `other`'s entries after these.
    pub(in crate::worker) fn append(&mut self, mut other: Triaged) {
        self.good.append(&mut other.good);
        self.bad.append(&mut other.bad);
    }

    /// Approximate memory held, in bytes, for the read-ahead budget.
    pub(in crate::worker) fn size_bytes(&self) -> usize {
        let good: usize = self.good.iter().map(ParsedEntry::size_bytes).sum();
        let bad: usize = self
            .bad
            .iter()
            .map(|d| {
                std::mem::size_of::<DeadLetter>()
                    + d.stream_id.len()
                    + d.reason.len()
                    + d.fields
                        .iter()
                        .map(|(k, v)| 48 + k.len() + v.len())
                        .sum::<usize>()
            })
            .sum();
        good + bad
    }

    /// Stream ids and fields of every entry, for the review file.
    pub(in crate::worker) fn review_lines(
        &self,
    ) -> impl Iterator<Item = (&str, Vec<(String, String)>)> {
        let good = self.good.iter().map(|g| (g.stream_id(), entry_fields(g)));
        let bad = self
            .bad
            .iter()
            .map(|d| (d.stream_id.as_str(), d.fields.clone()));
        good.chain(bad)
    }
}

/// Splits entries into parsed ones and dead letters; `too_many` holds entries
/// delivered more often than allowed. Age is checked later, when the entry is
/// decided, because entries read ahead wait before that.
pub(in crate::worker) fn triage(entries: &[StreamId], too_many: &HashMap<String, u64>) -> Triaged {
    let mut out = Triaged {
        good: Vec::with_capacity(entries.len()),
        bad: Vec::new(),
    };
    for e in entries {
        let dead = |reason: String| DeadLetter {
            stream_id: e.id.clone(),
            reason,
            fields: entry::raw_fields(&e.map),
        };
        if let Some(n) = too_many.get(&e.id) {
            out.bad.push(dead(format!(
                "entry {}: delivered {n} times without being handled",
                e.id
            )));
            continue;
        }
        match entry::check_map(&e.id, &e.map) {
            Ok(checked) => out.good.push(ParsedEntry::new(&e.id, &checked)),
            Err(err) => out.bad.push(dead(err.to_string())),
        }
    }
    out
}

/// An entry of a reply walked in place: its id and its fields as bytes (none for
/// an entry deleted while pending).
pub(in crate::worker) struct RawEntry<'a> {
    /// Stream id.
    pub id: &'a str,
    /// Field names and values, in the entry's order.
    pub fields: Vec<(&'a [u8], &'a [u8])>,
}

/// [`triage`] for entries of a reply walked in place (new entries: none has been
/// delivered before).
pub(in crate::worker) fn triage_raw(entries: &[RawEntry<'_>]) -> Triaged {
    let mut out = Triaged {
        good: Vec::with_capacity(entries.len()),
        bad: Vec::new(),
    };
    for e in entries {
        match entry::check_pairs(e.id, &e.fields) {
            Ok(checked) => out.good.push(ParsedEntry::new(e.id, &checked)),
            Err(err) => out.bad.push(DeadLetter {
                stream_id: e.id.to_owned(),
                reason: err.to_string(),
                fields: entry::raw_pair_fields(&e.fields),
            }),
        }
    }
    out
}

/// A parsed message's fields as text, for the dead-letter stream and the review file.
fn message_fields(m: &QueueMessage) -> Vec<(String, String)> {
    m.fields()
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
}

/// A parsed entry's fields as the gateway wrote them, its media fields too: a
/// dead letter or review line replayed keeps its voice note, and the letter's
/// `mediaType` tells the dead-letter step to delete the bytes.
fn entry_fields(g: &ParsedEntry) -> Vec<(String, String)> {
    let mut fields = message_fields(&g.message());
    if let Some(m) = g.media() {
        fields.push((media::MEDIA_TYPE_FIELD.to_owned(), m.mime.clone()));
        if let Some(s) = m.seconds {
            fields.push((media::MEDIA_SECONDS_FIELD.to_owned(), s.to_string()));
        }
    }
    fields
}

/// Moves incoming messages older than the seed's limit from `batch.good` to its
/// dead letters.
pub(super) fn set_aside_expired(batch: &mut Triaged, now: i64) {
    let (fresh, expired): (Vec<ParsedEntry>, Vec<ParsedEntry>) =
        std::mem::take(&mut batch.good).into_iter().partition(|g| {
            let age = now - g.timestamp();
            g.direction() != Direction::Incoming || age <= schema::QUEUE_ENTRY_MAX_AGE_MS
        });
    batch.good = fresh;
    batch.bad.extend(expired.into_iter().map(|g| DeadLetter {
        reason: format!(
            "entry {}: expired, {} s old (limit {} s), not answered",
            g.stream_id(),
            (now - g.timestamp()) / 1000,
            schema::QUEUE_ENTRY_MAX_AGE_MS / 1000
        ),
        fields: entry_fields(&g),
        stream_id: g.stream_id().to_owned(),
    }));
}

/// The reason a dead letter gives for an entry whose own keys stopped a step.
fn failed_reason(stream_id: &str, why: &str) -> String {
    format!("entry {stream_id}: {why}; not answered")
}

/// A parsed entry as a dead letter, with why its step failed.
pub(in crate::worker) fn dead_letter_of(g: &ParsedEntry, why: &str) -> DeadLetter {
    DeadLetter {
        stream_id: g.stream_id().to_owned(),
        reason: failed_reason(g.stream_id(), why),
        fields: entry_fields(g),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use redis::Value;

    fn entry(id: &str, fields: &[(&str, &str)]) -> StreamId {
        StreamId {
            id: id.to_owned(),
            map: fields
                .iter()
                .map(|(k, v)| ((*k).to_owned(), Value::BulkString(v.as_bytes().to_vec())))
                .collect(),
            ..StreamId::default()
        }
    }

    fn good(id: &str) -> StreamId {
        entry(
            id,
            &[
                ("messageId", id),
                ("contactId", "c"),
                ("content", "hi"),
                ("timestamp", "1"),
                ("direction", "incoming"),
                ("fromMe", "false"),
            ],
        )
    }

    fn ids(t: &Triaged) -> Vec<&str> {
        t.good.iter().map(ParsedEntry::stream_id).collect()
    }

    #[test]
    fn chunks_keep_the_order_and_carry_the_dead_letters_once() {
        let entries = [good("1-0"), entry("2-0", &[]), good("3-0"), good("4-0")];
        let chunks = triage(&entries, &HashMap::new()).into_chunks(2);
        assert_eq!(chunks.len(), 2);
        assert_eq!(ids(&chunks[0]), ["1-0", "3-0"]);
        assert_eq!(ids(&chunks[1]), ["4-0"]);
        assert_eq!(chunks[0].bad.len(), 1, "{:?}", chunks[0].bad);
        assert!(chunks[1].bad.is_empty());
    }

    #[test]
    fn a_batch_of_only_dead_letters_is_one_chunk() {
        let chunks = triage(&[entry("1-0", &[])], &HashMap::new()).into_chunks(8);
        assert_eq!(chunks.len(), 1);
        assert_eq!(chunks[0].len(), 1);
    }

    #[test]
    fn appended_batches_and_review_lines_keep_every_entry() {
        let mut a = triage(&[good("1-0")], &HashMap::new());
        a.append(triage(
            &[good("2-0"), entry("3-0", &[("x", "y")])],
            &HashMap::new(),
        ));
        let lines: Vec<_> = a.review_lines().collect();
        let streams: Vec<&str> = lines.iter().map(|(id, _)| *id).collect();
        assert_eq!(streams, ["1-0", "2-0", "3-0"]);
        assert!(
            lines[0]
                .1
                .contains(&("messageId".to_owned(), "1-0".to_owned()))
        );
        assert!(a.size_bytes() >= 2 * std::mem::size_of::<ParsedEntry>());
    }
}
