//! The invisible marks phones write into exports (bidi controls, zero-width
//! characters, a byte-order mark), removed from a line before it is parsed.

use std::borrow::Cow;

/// Where marks were removed from a line: offsets in the cleaned line (the
/// first few, enough to tell whether a message's text began with one even
/// after a name wrapped in marks, as iOS writes phone numbers).
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Removed {
    at: [usize; 8],
    n: usize,
}

impl Removed {
    /// A mark was removed just before `offset` of the cleaned line.
    pub(super) fn at(&self, offset: usize) -> bool {
        self.at[..self.n].contains(&offset)
    }

    fn push(&mut self, offset: usize) {
        if self.n < self.at.len() && !self.at(offset) {
            self.at[self.n] = offset;
            self.n += 1;
        }
    }
}

/// What a three-byte UTF-8 sequence at the start of `b` is.
#[derive(Debug, PartialEq, Eq)]
enum Mark {
    /// Always removed: LRM/RLM, embeddings and isolates, zero-width space, BOM.
    Always,
    /// A zero-width joiner or non-joiner: part of emoji and of some scripts,
    /// so kept after a non-ASCII character and removed elsewhere.
    Joiner,
}

fn mark(b: &[u8]) -> Option<Mark> {
    match *b {
        // U+200B, U+200E, U+200F
        [0xE2, 0x80, 0x8B | 0x8E | 0x8F, ..] => Some(Mark::Always),
        // U+200C, U+200D
        [0xE2, 0x80, 0x8C | 0x8D, ..] => Some(Mark::Joiner),
        // U+202A..=U+202E
        [0xE2, 0x80, 0xAA..=0xAE, ..] => Some(Mark::Always),
        // U+2066..=U+2069
        [0xE2, 0x81, 0xA6..=0xA9, ..] => Some(Mark::Always),
        // U+FEFF
        [0xEF, 0xBB, 0xBF, ..] => Some(Mark::Always),
        _ => None,
    }
}

/// The line without its marks (borrowed when it has none), and where they were.
pub(super) fn strip(line: &str) -> (Cow<'_, str>, Removed) {
    let b = line.as_bytes();
    let mut removed = Removed::default();
    let mut out: Option<String> = None;
    let mut start = 0;
    let mut i = 0;
    while i < b.len() {
        if !matches!(b[i], 0xE2 | 0xEF) {
            i += 1;
            continue;
        }
        let Some(kind) = mark(&b[i..]) else {
            i += 1;
            continue;
        };
        let previous = if i > start {
            Some(b[i - 1])
        } else {
            out.as_ref().and_then(|o| o.as_bytes().last().copied())
        };
        if kind == Mark::Joiner && previous.is_some_and(|p| !p.is_ascii()) {
            i += 3;
            continue;
        }
        let o = out.get_or_insert_with(|| String::with_capacity(line.len()));
        o.push_str(&line[start..i]);
        removed.push(o.len());
        i += 3;
        start = i;
    }
    match out {
        None => (Cow::Borrowed(line), removed),
        Some(mut o) => {
            o.push_str(&line[start..]);
            (Cow::Owned(o), removed)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_without_marks_is_borrowed() {
        let (clean, removed) = strip("06.08.2016, 13:23 - Ana: olá – até já");
        assert!(matches!(clean, Cow::Borrowed(_)));
        assert!(!removed.at(0));
    }

    #[test]
    fn bidi_and_zero_width_marks_are_removed_with_their_places() {
        let line = "\u{FEFF}\u{200E}[15/01/2020, 02:22:56] Ana: \u{200E}<attached: a.jpg>\u{202A}\u{202E}\u{2066}\u{2069}\u{200B}\u{200F}";
        let (clean, removed) = strip(line);
        assert_eq!(clean, "[15/01/2020, 02:22:56] Ana: <attached: a.jpg>");
        assert!(removed.at(0));
        assert!(removed.at("[15/01/2020, 02:22:56] Ana: ".len()));
        assert!(!removed.at(1));
    }

    #[test]
    fn joiners_stay_inside_emoji_and_go_elsewhere() {
        let family = "\u{1F468}\u{200D}\u{1F469}\u{200D}\u{1F467}";
        let line = format!("\u{200D}3/6/18, 1:55 PM - Bo:\u{200C} {family}");
        let (clean, _) = strip(&line);
        assert_eq!(clean, format!("3/6/18, 1:55 PM - Bo: {family}"));
    }

    #[test]
    fn the_narrow_no_break_space_is_not_a_mark() {
        let (clean, _) = strip("3/6/18, 1:55\u{202F}PM - Bo: hi");
        assert_eq!(clean, "3/6/18, 1:55\u{202F}PM - Bo: hi");
    }
}
