//! WhatsApp "Export chat" files as phones write them: the `.txt`, or the `.zip`
//! exported with media (its `_chat.txt`). Every header format of Android and
//! iOS in any locale ([`header`]), the date order decided once per file
//! ([`dates`]), placeholders and events in the phone's language ([`kinds`]).

mod dates;
mod header;
mod kinds;
mod marks;
mod parse;
mod zip;

pub use dates::civil_from_days;
pub use parse::MAX_MESSAGE_BYTES;

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::path::Path;

use super::{ChatLine, LineKind};

/// One authored message of an export.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportMessage {
    /// When, ms since the epoch (the phone's local time read as UTC).
    pub ts: i64,
    /// The author as the export names them.
    pub author: String,
    /// Text, media placeholder or deleted message.
    pub kind: LineKind,
    /// The text, continuation lines joined with `\n`, the "edited" marker
    /// stripped (empty for media and deleted messages; a media caption is
    /// kept), cut to [`MAX_MESSAGE_BYTES`] (the lines past the cut are
    /// counted in `skipped` as "cut: too long").
    pub text: String,
}

/// A whole export, read.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ParsedExport {
    /// The header format's name: `{android|ios}-{12h|24h}-{slashed|dotted|dashed}`
    /// (`ios` for the bracketed headers), then `-seconds` / `-no-seconds` when
    /// unusual for the platform, `-worded` (`klo`), `-colon` / `-spaced` (what
    /// precedes the author) and `-year-first`. Empty when no line is a header.
    pub format: String,
    /// The order of the dates: true day first, false month first, `None` when
    /// the file has no date that decides it (or uses year first).
    pub day_first: Option<bool>,
    /// Every authored message in the file's order.
    pub messages: Vec<ExportMessage>,
    /// Lines without an author (encryption notice, missed calls, group
    /// events...), and the events iOS writes under a name (marked U+200E).
    pub system: usize,
    /// Lines that could not be read, by reason.
    pub skipped: BTreeMap<String, usize>,
    /// Lines in the text: every one is a message's header, a continuation of
    /// a message, a system line, or skipped.
    pub lines: usize,
    /// Lines that continued a message (joined to its text with `\n`).
    pub continuations: usize,
}

impl ParsedExport {
    /// The messages as learned lines, `owner`'s marked as theirs.
    pub fn into_chat_lines(self, owner: &str) -> Vec<ChatLine> {
        self.messages
            .into_iter()
            .map(|m| ChatLine {
                ts: m.ts,
                me: m.author == owner,
                kind: m.kind,
                text: m.text,
            })
            .collect()
    }

    /// The authors with their message counts, most messages first (then by name).
    pub fn authors(&self) -> Vec<(String, usize)> {
        let mut counts: HashMap<&str, usize> = HashMap::new();
        for m in &self.messages {
            *counts.entry(m.author.as_str()).or_default() += 1;
        }
        let mut authors: Vec<(String, usize)> =
            counts.into_iter().map(|(a, n)| (a.to_owned(), n)).collect();
        authors.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        authors
    }

    /// How many messages are of `kind`.
    pub fn count(&self, kind: LineKind) -> usize {
        self.messages.iter().filter(|m| m.kind == kind).count()
    }

    /// Lines skipped, all reasons together.
    pub fn skipped_lines(&self) -> usize {
        self.skipped.values().sum()
    }
}

/// Why an export cannot be read at all.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The file cannot be read.
    #[error("cannot read {path}: {why}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        why: std::io::Error,
    },
    /// Not an export: no line looks like a WhatsApp message.
    #[error("{0}: no line looks like a WhatsApp chat export")]
    NotAnExport(String),
    /// A zip without a chat in it, or a broken zip.
    #[error("{path}: {why}")]
    Zip {
        /// The file.
        path: String,
        /// Why.
        why: String,
    },
    /// A text file over the largest chat read.
    #[error("{path}: too large: a chat export is at most {max} bytes")]
    TooLarge {
        /// The file.
        path: String,
        /// The limit, bytes.
        max: u64,
    },
}

/// Reads an export: a `.zip` (by its name or its first bytes) holding the
/// chat (only the chat is read from it), else the file as text (invalid UTF-8
/// replaced, not refused). A chat over [`zip::MAX_CHAT_BYTES`] (256 MiB) is
/// refused.
pub fn read_file(path: &Path) -> Result<ParsedExport, ExportError> {
    let name = path.display().to_string();
    let io = |why| ExportError::Io {
        path: name.clone(),
        why,
    };
    let mut file = std::fs::File::open(path).map_err(io)?;
    let mut magic = Vec::with_capacity(4);
    (&mut file).take(4).read_to_end(&mut magic).map_err(io)?;
    let named_zip = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("zip"));
    let text = if named_zip || zip::is_zip(&magic) {
        zip::chat_bytes(&mut file).map_err(|why| ExportError::Zip {
            path: name.clone(),
            why,
        })?
    } else {
        let mut text = magic;
        file.take(zip::MAX_CHAT_BYTES + 1)
            .read_to_end(&mut text)
            .map_err(io)?;
        if text.len() as u64 > zip::MAX_CHAT_BYTES {
            return Err(ExportError::TooLarge {
                path: name,
                max: zip::MAX_CHAT_BYTES,
            });
        }
        text
    };
    let parsed = parse_text(&String::from_utf8_lossy(&text));
    if parsed.format.is_empty() {
        return Err(ExportError::NotAnExport(name));
    }
    Ok(parsed)
}

/// Parses the text of an export. Never fails: a text without any header
/// gives an empty `format` and every line skipped.
pub fn parse_text(text: &str) -> ParsedExport {
    parse::parse(text)
}

#[cfg(test)]
mod tests;
