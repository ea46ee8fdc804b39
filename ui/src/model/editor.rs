//! The inline editor's state: a text and a cursor, edited by grapheme (what a
//! person sees as one character: `e` + an accent, an emoji with a skin tone),
//! never splitting one. Lines are the text's own (`\n`); wrapping to the
//! screen is the widget's (`widgets::editor`).

use unicode_segmentation::UnicodeSegmentation;

use crate::sanitize;

/// Most chars the editor holds (a chat message, not a document).
pub const MAX_EDITOR_CHARS: usize = 4000;

/// Text being written and where the cursor is in it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Editor {
    text: String,
    /// Byte offset into `text`, always at a grapheme boundary.
    cursor: usize,
}

impl Editor {
    /// An editor holding `text` (cleaned, capped), the cursor at its end.
    pub fn with_text(text: &str) -> Editor {
        let text = sanitize::clean_multiline(text, MAX_EDITOR_CHARS);
        Editor {
            cursor: text.len(),
            text,
        }
    }

    /// The text as written.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The cursor as a byte offset into [`Editor::text`].
    pub fn cursor(&self) -> usize {
        self.cursor
    }

    /// Whether nothing but spaces and newlines is written.
    pub fn is_blank(&self) -> bool {
        self.text.trim().is_empty()
    }

    /// Inserts one typed character at the cursor; control characters other
    /// than `\n` are refused. Returns whether the text changed.
    pub fn insert_char(&mut self, c: char) -> bool {
        if (c.is_control() && c != '\n') || self.chars() >= MAX_EDITOR_CHARS {
            return false;
        }
        self.text.insert(self.cursor, c);
        self.cursor += c.len_utf8();
        self.snap_cursor();
        true
    }

    /// Inserts pasted text at the cursor: line ends of any platform become
    /// `\n`, escape sequences and other controls go, the rest up to the cap
    /// stays. Returns whether the text changed.
    pub fn insert_str(&mut self, pasted: &str) -> bool {
        let unified = pasted.replace("\r\n", "\n").replace('\r', "\n");
        let room = MAX_EDITOR_CHARS.saturating_sub(self.chars());
        // One char over the room, so a cut shows as the ellipsis past it, which
        // is not something the person pasted and is left out with the rest.
        let clean: String = sanitize::clean_multiline(&unified, room + 1)
            .chars()
            .take(room)
            .collect();
        if clean.is_empty() {
            return false;
        }
        self.text.insert_str(self.cursor, &clean);
        self.cursor += clean.len();
        self.snap_cursor();
        true
    }

    /// Deletes the grapheme before the cursor.
    pub fn backspace(&mut self) -> bool {
        let Some(start) = self.prev_boundary() else {
            return false;
        };
        self.text.replace_range(start..self.cursor, "");
        self.cursor = start;
        true
    }

    /// Deletes the grapheme after the cursor.
    pub fn delete(&mut self) -> bool {
        let Some(end) = self.next_boundary() else {
            return false;
        };
        self.text.replace_range(self.cursor..end, "");
        true
    }

    /// Empties the editor.
    pub fn clear(&mut self) -> bool {
        let changed = !self.text.is_empty();
        self.text.clear();
        self.cursor = 0;
        changed
    }

    /// One grapheme left.
    pub fn left(&mut self) -> bool {
        self.move_to(self.prev_boundary())
    }

    /// One grapheme right.
    pub fn right(&mut self) -> bool {
        self.move_to(self.next_boundary())
    }

    /// To the start of the cursor's line.
    pub fn home(&mut self) -> bool {
        let start = self.line_start(self.cursor);
        self.move_to(Some(start))
    }

    /// To the end of the cursor's line.
    pub fn end(&mut self) -> bool {
        let end = self.line_end(self.cursor);
        self.move_to(Some(end))
    }

    /// To the line above, at the same display column or the line's end.
    pub fn up(&mut self) -> bool {
        let start = self.line_start(self.cursor);
        if start == 0 {
            return self.move_to(Some(0));
        }
        let column = self.column_of(self.cursor);
        let above = self.line_start(start - 1);
        self.move_to(Some(self.at_column(above, column)))
    }

    /// To the line below, at the same display column or the line's end.
    pub fn down(&mut self) -> bool {
        let end = self.line_end(self.cursor);
        if end == self.text.len() {
            return self.move_to(Some(end));
        }
        let column = self.column_of(self.cursor);
        self.move_to(Some(self.at_column(end + 1, column)))
    }

    fn chars(&self) -> usize {
        self.text.chars().count()
    }

    fn move_to(&mut self, to: Option<usize>) -> bool {
        match to {
            Some(at) if at != self.cursor => {
                self.cursor = at;
                true
            }
            _ => false,
        }
    }

    /// A combining mark typed after a letter joins its grapheme: the cursor
    /// goes after the whole grapheme, never inside it.
    fn snap_cursor(&mut self) {
        if !self.text.is_char_boundary(self.cursor) || !self.is_grapheme_boundary(self.cursor) {
            self.cursor = self.next_boundary().unwrap_or(self.text.len());
        }
    }

    fn is_grapheme_boundary(&self, at: usize) -> bool {
        at == self.text.len() || self.text.grapheme_indices(true).any(|(i, _)| i == at)
    }

    fn prev_boundary(&self) -> Option<usize> {
        self.text[..self.cursor]
            .grapheme_indices(true)
            .next_back()
            .map(|(i, _)| i)
    }

    fn next_boundary(&self) -> Option<usize> {
        self.text
            .grapheme_indices(true)
            .find(|(i, _)| *i >= self.cursor)
            .map(|(i, g)| if i == self.cursor { i + g.len() } else { i })
    }

    fn line_start(&self, at: usize) -> usize {
        self.text[..at].rfind('\n').map_or(0, |i| i + 1)
    }

    fn line_end(&self, at: usize) -> usize {
        self.text[at..]
            .find('\n')
            .map_or(self.text.len(), |i| at + i)
    }

    /// Display columns from the start of `at`'s line to `at`.
    fn column_of(&self, at: usize) -> usize {
        crate::text::width(&self.text[self.line_start(at)..at])
    }

    /// The boundary in the line starting at `start` nearest to `column`
    /// without passing it.
    fn at_column(&self, start: usize, column: usize) -> usize {
        let end = self.line_end(start);
        let mut used = 0;
        for (i, g) in self.text[start..end].grapheme_indices(true) {
            let w = crate::text::width(g);
            if used + w > column {
                return start + i;
            }
            used += w;
        }
        end
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn typed(text: &str) -> Editor {
        let mut e = Editor::default();
        for c in text.chars() {
            e.insert_char(c);
        }
        e
    }

    #[test]
    fn wide_characters_move_and_delete_whole() {
        let mut e = typed("日本語");
        assert_eq!(e.cursor(), 9);
        assert!(e.left());
        assert_eq!(e.cursor(), 6);
        assert!(e.backspace());
        assert_eq!(e.text(), "日語");
        assert_eq!(e.cursor(), 3);
        assert!(e.delete());
        assert_eq!(e.text(), "日");
        assert!(!e.delete(), "nothing after the cursor");
    }

    #[test]
    fn an_emoji_with_a_skin_tone_is_one_step() {
        let mut e = typed("ok 👍🏽!");
        e.left();
        e.left();
        assert_eq!(&e.text()[e.cursor()..], "👍🏽!");
        e.backspace();
        e.right();
        assert_eq!(&e.text()[..e.cursor()], "ok👍🏽");
        e.backspace();
        assert_eq!(e.text(), "ok!");
    }

    #[test]
    fn a_combining_accent_joins_its_letter() {
        let mut e = typed("e\u{301}");
        assert_eq!(e.cursor(), e.text().len());
        assert!(e.left());
        assert_eq!(e.cursor(), 0, "one step over the letter and its accent");
    }

    #[test]
    fn up_and_down_keep_the_display_column() {
        let mut e = Editor::with_text("日本語です\nabcdefgh\nxy");
        // From the end of "xy" (column 2) up: column 2 of "abcdefgh".
        assert!(e.up());
        assert_eq!(&e.text()[e.cursor()..e.cursor() + 1], "c");
        e.end();
        // From column 8 up: "日本語です" is 10 columns; column 8 is before "す".
        e.up();
        assert_eq!(&e.text()[..e.cursor()], "日本語で");
        e.up();
        assert_eq!(e.cursor(), 0, "up on the first line goes to its start");
        e.down();
        e.down();
        e.down();
        assert_eq!(
            e.cursor(),
            e.text().len(),
            "down on the last line goes to its end"
        );
    }

    #[test]
    fn home_and_end_stay_on_the_line() {
        let mut e = Editor::with_text("first\nsecond");
        e.home();
        assert_eq!(&e.text()[e.cursor()..], "second");
        e.up();
        e.end();
        assert_eq!(&e.text()[..e.cursor()], "first");
    }

    #[test]
    fn a_paste_keeps_its_lines_and_loses_its_escapes() {
        let mut e = typed("<>");
        e.left();
        assert!(e.insert_str("one\r\ntwo\rthree\u{1b}[2J\nfour"));
        assert_eq!(e.text(), "<one\ntwo\nthree\nfour>");
        assert_eq!(&e.text()[e.cursor()..], ">");
    }

    #[test]
    fn the_cap_holds_for_typing_and_pasting() {
        let mut e = Editor::with_text(&"x".repeat(MAX_EDITOR_CHARS - 2));
        assert!(e.insert_str("abcdef"));
        assert_eq!(e.text().chars().count(), MAX_EDITOR_CHARS);
        assert!(e.text().ends_with("ab"), "no ellipsis added by the cap");
        assert!(!e.insert_char('z'));
        assert!(!e.insert_str("more"));
    }

    #[test]
    fn clear_and_blank() {
        let mut e = Editor::with_text(" \n ");
        assert!(e.is_blank());
        assert!(e.clear());
        assert_eq!((e.text(), e.cursor()), ("", 0));
        assert!(!e.clear());
        assert!(!e.insert_char('\u{7}'), "a control character is not text");
    }
}
