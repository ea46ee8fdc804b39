//! The preview popup: what the twin would answer the contact now, said to be
//! nothing sent.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::text::Line;

use super::{centered, overlay_frame, put_line};
use crate::model::{Model, PreviewState};
use crate::text;

/// Widest the popup gets, in columns.
const MAX_WIDTH: u16 = 72;

/// Draws the popup for `contact_id` in the middle of `area`.
pub fn render(model: &Model, contact_id: &str, state: &PreviewState, area: Rect, buf: &mut Buffer) {
    let t = &model.theme;
    let name = model
        .contact(contact_id)
        .map_or(contact_id, |c| c.display_name());
    let title = format!("The twin would say to {}", text::truncate(name, 24));
    let width = area.width.saturating_sub(4).min(MAX_WIDTH);
    let cols = usize::from(width.saturating_sub(4)).max(1);
    let mut lines: Vec<Line<'static>> = match state {
        PreviewState::Waiting => vec![Line::styled("the twin is writing…", t.dim)],
        PreviewState::Ready(reply) => text::wrap(reply, cols)
            .into_iter()
            .map(|l| Line::styled(l, t.author_twin))
            .collect(),
        PreviewState::Failed(why) => text::wrap(why, cols)
            .into_iter()
            .map(|l| Line::styled(l, t.warn))
            .collect(),
    };
    lines.push(Line::raw(""));
    lines.push(Line::styled("nothing was sent · esc closes", t.dim));
    let max_lines = usize::from(area.height.saturating_sub(4)).max(1);
    if lines.len() > max_lines {
        let tail = lines.split_off(lines.len() - 2);
        lines.truncate(max_lines.saturating_sub(2).max(1));
        lines.extend(tail);
    }
    let rect = centered(area, width, lines.len() as u16 + 2);
    let inner = overlay_frame(rect, &title, t, buf);
    let padded = Rect {
        x: inner.x + 1,
        width: inner.width.saturating_sub(2),
        ..inner
    };
    for (row, line) in lines.iter().enumerate() {
        put_line(buf, padded, row as u16, line);
    }
}
