//! Help overlay listing every binding from the keymap, plus the fixed keys.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};

use super::{centered, overlay_frame, put_line};
use crate::keymap::{KeyAction, KeyInput};
use crate::model::Model;
use crate::text;

/// Keys that work regardless of the keymap.
/// Short enough for two columns in 80: the draft keys made the list too long
/// for one.
const FIXED: [(&str, &str); 6] = [
    ("ctrl-c", "quit (always works)"),
    ("esc", "close, cancel, clear filter"),
    ("enter", "confirm, send, keep filter"),
    ("alt-enter", "new line in the editor"),
    ("y / n", "answer kill-switch question"),
    ("0-9", "minutes in the pause prompt"),
];

/// `(keys, description)` rows shown by the help overlay, keymap first.
pub fn entries(model: &Model) -> Vec<(String, String)> {
    let mut rows: Vec<(String, String)> = model
        .keymap
        .bindings()
        .iter()
        .map(|(action, _)| {
            (
                model.keymap.keys_label(*action),
                action.description().to_string(),
            )
        })
        .collect();
    let ctrl_c_listed = model
        .keymap
        .keys_for(KeyAction::Quit)
        .contains(&KeyInput::ctrl('c'));
    let fixed = FIXED
        .iter()
        .filter(|(k, _)| !(ctrl_c_listed && *k == "ctrl-c"));
    rows.extend(fixed.map(|(k, d)| (k.to_string(), d.to_string())));
    rows
}

/// Draws the help overlay centred in `area`, in two columns if it is short.
pub fn render(model: &Model, area: Rect, buf: &mut Buffer) {
    let rows = entries(model);
    let key_cols = rows
        .iter()
        .map(|(k, _)| text::width(k))
        .max()
        .unwrap_or(0)
        .min(16);
    let desc_cols = rows.iter().map(|(_, d)| text::width(d)).max().unwrap_or(0);
    let item_cols = key_cols + 2 + desc_cols;
    let max_rows = usize::from(area.height.saturating_sub(2)).max(1);
    let columns = rows.len().div_ceil(max_rows).max(1);
    let per_column = rows.len().div_ceil(columns);
    let width = (item_cols * columns + 3 * (columns - 1) + 4).min(usize::from(area.width));
    let rect = centered(area, width as u16, per_column as u16 + 2);
    let inner = overlay_frame(rect, "Keys (esc closes)", &model.theme, buf);
    let col_width = (usize::from(inner.width).saturating_sub(2) / columns).max(1);
    for (i, (keys, desc)) in rows.iter().enumerate() {
        let (col, row) = (i / per_column, i % per_column);
        let x = inner.x + 1 + (col * col_width) as u16;
        let cell = Rect {
            x,
            width: col_width as u16,
            ..inner
        };
        let line = Line::from(vec![
            Span::styled(text::fit(keys, key_cols), model.theme.key),
            Span::raw("  "),
            Span::styled(desc.clone(), model.theme.text),
        ]);
        put_line(buf, cell, row as u16, &line);
    }
}
