//! Reading an export's text in two passes: the first finds the file's header
//! layout (the most common one) and the order of its dates from every line;
//! the second reads the messages, taking as a header only a line of that
//! layout, so a message's line that merely starts with digits stays in it.

use super::dates::{self, Decision};
use super::header::{self, RawHeader, Shape};
use super::kinds::{self, Kind};
use super::marks::{self, Removed};
use super::{ExportMessage, ParsedExport};

/// The most text a message keeps, in bytes (WhatsApp itself caps a message
/// at 65,536 characters): the rest is cut, so one hostile "message" cannot
/// fill the learned chat.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;

/// Why a line was not read, as `ParsedExport::skipped` names it.
#[derive(Debug, Clone, Copy)]
enum Skip {
    BeforeFirst,
    InvalidDate,
    AfterInvalid,
    AfterSystem,
    TooLong,
}

impl Skip {
    const ALL: [Skip; 5] = [
        Skip::BeforeFirst,
        Skip::InvalidDate,
        Skip::AfterInvalid,
        Skip::AfterSystem,
        Skip::TooLong,
    ];

    fn reason(self) -> &'static str {
        match self {
            Skip::BeforeFirst => "before the first message",
            Skip::InvalidDate => "invalid date",
            Skip::AfterInvalid => "continues a line with an invalid date",
            Skip::AfterSystem => "continues a system line",
            Skip::TooLong => "cut: too long",
        }
    }
}

/// A message whose continuation lines may still follow.
struct Pending {
    ts: i64,
    author: String,
    text: String,
    /// Its text began with a bidi mark (an iOS event or placeholder).
    marked: bool,
    continuations: usize,
}

/// The second pass's state.
struct Reader {
    decision: Decision,
    out: ParsedExport,
    pending: Option<Pending>,
    /// Why a line that continues no message is skipped.
    after: Skip,
    skipped: [usize; 5],
}

impl Reader {
    fn skip(&mut self, why: Skip) {
        self.skipped[why as usize] += 1;
    }

    fn header(&mut self, line: &str, h: &RawHeader, removed: Removed) {
        self.flush();
        let Some(ts) = dates::timestamp(self.decision.order, h) else {
            self.skip(Skip::InvalidDate);
            self.after = Skip::AfterInvalid;
            return;
        };
        let rest = &line[h.rest..];
        match split_author(rest) {
            Some((author, text_at)) if !kinds::author_is_system(author) => {
                self.pending = Some(Pending {
                    ts,
                    author: author.to_owned(),
                    text: capped(&rest[text_at..]).to_owned(),
                    marked: removed.at(h.rest + text_at),
                    continuations: 0,
                });
            }
            _ => {
                self.out.system += 1;
                self.after = Skip::AfterSystem;
            }
        }
    }

    /// A line continuing the pending message; past [`MAX_MESSAGE_BYTES`] of
    /// its text, skipped as cut (a line crossing the limit keeps its start).
    fn continuation(&mut self, line: &str) {
        match self.pending.as_mut() {
            Some(p) if p.text.len() >= MAX_MESSAGE_BYTES => self.skip(Skip::TooLong),
            Some(p) => {
                p.text.push('\n');
                p.text.push_str(line);
                let keep = p.text.len().min(MAX_MESSAGE_BYTES);
                p.text.truncate(p.text.floor_char_boundary(keep));
                p.continuations += 1;
            }
            None => self.skip(self.after),
        }
    }

    /// Ends the pending message: kept as a message, or counted as a system
    /// line when its text is an event (its continuation lines then skipped).
    fn flush(&mut self) {
        let Some(mut p) = self.pending.take() else {
            return;
        };
        match kinds::classify(&mut p.text, p.marked) {
            Kind::Message(kind) => {
                self.out.continuations += p.continuations;
                self.out.messages.push(ExportMessage {
                    ts: p.ts,
                    author: p.author,
                    kind,
                    text: p.text,
                });
            }
            Kind::System => {
                self.out.system += 1;
                self.skipped[Skip::AfterSystem as usize] += p.continuations;
            }
        }
    }

    fn finish(mut self) -> ParsedExport {
        self.flush();
        for why in Skip::ALL {
            let n = self.skipped[why as usize];
            if n > 0 {
                self.out.skipped.insert(why.reason().to_owned(), n);
            }
        }
        self.out
    }
}

/// The start of `text` that fits [`MAX_MESSAGE_BYTES`], whole characters.
fn capped(text: &str) -> &str {
    &text[..text.floor_char_boundary(MAX_MESSAGE_BYTES)]
}

/// The author and where the text starts in `rest`: the first `: ` ends the
/// author (or a final `:`, for an empty message); no author, a system line.
fn split_author(rest: &str) -> Option<(&str, usize)> {
    let b = rest.as_bytes();
    let mut from = 0;
    while let Some(i) = b[from..].iter().position(|&c| c == b':') {
        let at = from + i;
        match b.get(at + 1) {
            Some(b' ') | None => {
                let author = rest[..at].trim();
                return (!author.is_empty()).then_some((author, (at + 2).min(rest.len())));
            }
            _ => from = at + 1,
        }
    }
    None
}

/// The layout most of the file's headers share.
fn most_common(found: &[(usize, RawHeader)]) -> Option<Shape> {
    let mut counts: Vec<(Shape, usize)> = Vec::new();
    for (_, h) in found {
        match counts.iter_mut().find(|(s, _)| *s == h.shape) {
            Some((_, n)) => *n += 1,
            None => counts.push((h.shape, 1)),
        }
    }
    counts.into_iter().max_by_key(|&(_, n)| n).map(|(s, _)| s)
}

/// Parses the text of an export (see [`super::parse_text`]).
pub fn parse(text: &str) -> ParsedExport {
    let mut found: Vec<(usize, RawHeader)> = Vec::new();
    let mut lines = 0;
    for (i, line) in text.lines().enumerate() {
        let (clean, _) = marks::strip(line);
        if let Some(h) = header::parse(&clean) {
            found.push((i, h));
        }
        lines = i + 1;
    }
    let Some(shape) = most_common(&found) else {
        let mut out = ParsedExport {
            lines,
            ..ParsedExport::default()
        };
        if lines > 0 {
            out.skipped
                .insert(Skip::BeforeFirst.reason().to_owned(), lines);
        }
        return out;
    };
    found.retain(|(_, h)| h.shape == shape);
    let decision = dates::decide(
        found.iter().map(|(_, h)| (h.nums, h.digits)),
        shape.twelve_hour,
    );
    let mut reader = Reader {
        decision,
        out: ParsedExport {
            format: format_name(shape, decision),
            day_first: decision.day_first(),
            lines,
            messages: Vec::with_capacity(found.len()),
            ..ParsedExport::default()
        },
        pending: None,
        after: Skip::BeforeFirst,
        skipped: [0; 5],
    };
    let mut headers = found.iter().peekable();
    for (i, line) in text.lines().enumerate() {
        let (clean, removed) = marks::strip(line);
        match headers.next_if(|(at, _)| *at == i) {
            Some((_, h)) => reader.header(&clean, h, removed),
            None => reader.continuation(&clean),
        }
    }
    reader.finish()
}

/// The format's name: the layout's, and `-year-first` when the year leads.
fn format_name(shape: Shape, decision: Decision) -> String {
    if decision.order.year_first() {
        format!("{shape}-year-first")
    } else {
        shape.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_author_ends_at_the_first_colon_and_space() {
        assert_eq!(split_author("Ana: hola: qué"), Some(("Ana", 5)));
        assert_eq!(split_author("Dr.:Who: hi"), Some(("Dr.:Who", 9)));
        assert_eq!(split_author("Ana:"), Some(("Ana", 4)));
        assert_eq!(split_author("Ana added Bo"), None);
        assert_eq!(split_author(": text"), None);
        assert_eq!(split_author("see 10:30"), None);
    }
}
