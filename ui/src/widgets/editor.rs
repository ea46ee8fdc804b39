//! The inline editor drawn: its text wrapped by display width (a wide
//! character takes two columns and never splits across rows), and the cursor
//! as a reversed cell, scrolled so that it stays in view.

use ratatui::buffer::Buffer;
use ratatui::layout::{Position, Rect};
use ratatui::text::Line;
use unicode_segmentation::UnicodeSegmentation;

use super::put_line;
use crate::model::{Editor, Model};
use crate::text;

/// An editor's text cut into screen rows, and the cursor's place among them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EditorLayout {
    /// The rows, each at most `cols` columns wide.
    pub rows: Vec<String>,
    /// The cursor's row.
    pub cursor_row: usize,
    /// The cursor's column (display columns from the row's start; `cols` at
    /// most, right after a full row).
    pub cursor_col: usize,
}

/// Lays out `text` in rows of at most `cols` columns (at least 1), breaking at
/// each `\n` and wherever the next character would not fit; `cursor` is a
/// byte offset at a character boundary.
pub fn layout(text: &str, cursor: usize, cols: usize) -> EditorLayout {
    let cols = cols.max(1);
    let mut rows = vec![String::new()];
    let mut used = 0;
    let mut at = None;
    for (i, g) in text.grapheme_indices(true) {
        if g == "\n" {
            if i == cursor {
                at = Some((rows.len() - 1, used));
            }
            rows.push(String::new());
            used = 0;
            continue;
        }
        let w = text::width(g);
        if used + w > cols && used > 0 {
            rows.push(String::new());
            used = 0;
        }
        if i == cursor {
            at = Some((rows.len() - 1, used));
        }
        if let Some(row) = rows.last_mut() {
            row.push_str(g);
        }
        used += w;
    }
    let (cursor_row, cursor_col) = at.unwrap_or((rows.len() - 1, used));
    EditorLayout {
        rows,
        cursor_row,
        cursor_col,
    }
}

/// Rows the editor's text takes in an area `width` columns wide.
pub fn rows_needed(editor: &Editor, width: u16) -> usize {
    layout(editor.text(), editor.cursor(), text_cols(width))
        .rows
        .len()
}

/// Columns for text: one is kept for the cursor after a full row.
fn text_cols(width: u16) -> usize {
    usize::from(width.saturating_sub(1)).max(1)
}

/// Draws `editor` into `area`, the cursor's row always shown.
pub fn render(model: &Model, editor: &Editor, area: Rect, buf: &mut Buffer) {
    if area.width == 0 || area.height == 0 {
        return;
    }
    let l = layout(editor.text(), editor.cursor(), text_cols(area.width));
    let height = usize::from(area.height);
    let top = (l.cursor_row + 1).saturating_sub(height);
    for (row, text) in l.rows.iter().skip(top).take(height).enumerate() {
        put_line(buf, area, row as u16, &Line::raw(text.as_str()));
    }
    let x = area.x + l.cursor_col.min(usize::from(area.width) - 1) as u16;
    let y = area.y + (l.cursor_row - top) as u16;
    if let Some(cell) = buf.cell_mut(Position::new(x, y)) {
        cell.set_style(model.theme.selected);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str, cursor: usize, cols: usize) -> (usize, usize) {
        let l = layout(text, cursor, cols);
        (l.cursor_row, l.cursor_col)
    }

    #[test]
    fn wide_characters_count_two_columns() {
        let t = "日本語";
        assert_eq!(at(t, 0, 10), (0, 0));
        assert_eq!(at(t, 3, 10), (0, 2));
        assert_eq!(at(t, 6, 10), (0, 4));
        assert_eq!(at(t, 9, 10), (0, 6));
        // Five columns: "日本" fills four, "語" does not fit in the fifth.
        let l = layout(t, 6, 5);
        assert_eq!(l.rows, vec!["日本", "語"]);
        assert_eq!((l.cursor_row, l.cursor_col), (1, 0));
    }

    #[test]
    fn an_emoji_and_its_modifier_are_one_cell_pair() {
        let t = "a👍🏽b";
        let after_emoji = "a👍🏽".len();
        assert_eq!(at(t, after_emoji, 10), (0, 3));
        assert_eq!(layout(t, 0, 3).rows, vec!["a👍🏽", "b"]);
    }

    #[test]
    fn newlines_start_rows_and_the_cursor_follows() {
        let t = "ab\n\ncd";
        let l = layout(t, t.len(), 10);
        assert_eq!(l.rows, vec!["ab", "", "cd"]);
        assert_eq!((l.cursor_row, l.cursor_col), (2, 2));
        assert_eq!(at(t, 2, 10), (0, 2), "before the first newline");
        assert_eq!(at(t, 3, 10), (1, 0), "on the empty line");
    }

    #[test]
    fn the_cursor_after_a_full_row_stays_on_it() {
        let l = layout("abcd", 4, 4);
        assert_eq!(l.rows, vec!["abcd"]);
        assert_eq!((l.cursor_row, l.cursor_col), (0, 4));
        assert_eq!(layout("", 0, 4).rows, vec![""]);
    }
}
