//! Modal dialogs: pause duration, kill-switch confirmation, quitting.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};

use super::{centered, overlay_frame, put_line};
use crate::model::{Model, PAUSE_CHOICES, PAUSE_CUSTOM_INDEX};
use crate::text;

/// Draws the pause-duration prompt for `contact_id`.
pub fn render_pause(
    model: &Model,
    contact_id: &str,
    selected: usize,
    custom: &str,
    area: Rect,
    buf: &mut Buffer,
) {
    let t = &model.theme;
    let name = model
        .contact(contact_id)
        .map_or(contact_id, |c| c.display_name());
    let mut lines = vec![Line::styled(
        format!("Pause {} for how long?", text::truncate(name, 30)),
        t.title,
    )];
    lines.push(Line::raw(""));
    let custom_text = if custom.is_empty() {
        "custom: type minutes".to_string()
    } else {
        format!("custom: {custom} min")
    };
    let labels = PAUSE_CHOICES
        .iter()
        .map(|(l, _)| l.to_string())
        .chain(std::iter::once(custom_text));
    for (i, label) in labels.enumerate() {
        let is_sel = i == selected;
        let marker = if is_sel { "> " } else { "  " };
        let cursor = if is_sel && i == PAUSE_CUSTOM_INDEX {
            "▏"
        } else {
            ""
        };
        let style = if is_sel { t.selected } else { t.text };
        lines.push(Line::from(vec![
            Span::raw(marker),
            Span::styled(format!("{label}{cursor}"), style),
        ]));
    }
    lines.push(Line::raw(""));
    lines.push(Line::styled("enter confirm · esc cancel", t.dim));
    draw_dialog(model, "Pause", &lines, area, buf);
}

/// Draws the kill-switch question; `on` is the state `y` would set.
pub fn render_confirm_kill(model: &Model, on: bool, area: Rect, buf: &mut Buffer) {
    let t = &model.theme;
    let (question, effect) = if on {
        (
            "Turn kill switch ON? y/n",
            "The twin stops replying to everyone.",
        )
    } else {
        (
            "Turn kill switch OFF? y/n",
            "The twin resumes replying to enabled contacts.",
        )
    };
    let lines = vec![
        Line::styled(question, t.kill_banner),
        Line::raw(""),
        Line::styled(effect, t.text),
    ];
    draw_dialog(model, "Kill switch", &lines, area, buf);
}

/// Draws the shutdown progress box.
pub fn render_quitting(model: &Model, progress: &str, area: Rect, buf: &mut Buffer) {
    let t = &model.theme;
    let lines = vec![
        Line::styled("Quitting…", t.title),
        Line::styled(progress.to_string(), t.text),
        Line::raw(""),
        Line::styled("ctrl-c again forces quit", t.dim),
    ];
    draw_dialog(model, "Shutting down", &lines, area, buf);
}

fn draw_dialog(model: &Model, title: &str, lines: &[Line<'_>], area: Rect, buf: &mut Buffer) {
    let content = lines.iter().map(Line::width).max().unwrap_or(0);
    let width = (content.max(text::width(title) + 4) + 4) as u16;
    let rect = centered(area, width, lines.len() as u16 + 2);
    let inner = overlay_frame(rect, title, &model.theme, buf);
    let padded = Rect {
        x: inner.x + 1,
        width: inner.width.saturating_sub(2),
        ..inner
    };
    for (row, line) in lines.iter().enumerate() {
        put_line(buf, padded, row as u16, line);
    }
}
