//! Event log pane: one line per entry, newest at the bottom.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::Widget;

use super::{pane_block, put_line};
use crate::format;
use crate::model::{LogKind, Model, Pane};
use crate::theme::Theme;

/// Width of the kind column (longest label is `TAKEOVER`).
const KIND_COLS: usize = 8;

/// Draws the event log into `area`.
pub fn render(model: &Model, area: Rect, buf: &mut Buffer) {
    let t = &model.theme;
    let len = model.events.len();
    let end = len.saturating_sub(model.events_scroll);
    let mut block = pane_block(format!("Events {len}"), model.focus == Pane::Events, t);
    if end < len {
        block = block.title_bottom(Line::styled(format!(" ↓ {} newer ", len - end), t.warn));
    }
    let inner = block.inner(area);
    block.render(area, buf);
    if len == 0 {
        put_line(buf, inner, 0, &Line::styled("no events yet", t.dim));
        return;
    }
    let rows = usize::from(inner.height);
    let start = end.saturating_sub(rows);
    for (row, entry) in model.events.range(start..end).enumerate() {
        let line = Line::from(vec![
            Span::styled(
                format!("{} ", format::clock_hms(entry.at_ms, model.utc_offset_min)),
                t.dim,
            ),
            Span::styled(
                format!("{:<KIND_COLS$}", entry.kind.label()),
                kind_style(entry.kind, t),
            ),
            Span::raw(" "),
            Span::styled(entry.text.clone(), t.text),
        ]);
        put_line(buf, inner, row as u16, &line);
    }
}

/// Style of a kind label; serious kinds stand out even without colour.
pub fn kind_style(kind: LogKind, t: &Theme) -> Style {
    match kind {
        LogKind::KillSwitch | LogKind::DeadLetter | LogKind::Malformed => t.critical,
        LogKind::Connection | LogKind::Draft => t.warn,
        LogKind::Pause | LogKind::Takeover | LogKind::RateLimit => t.paused,
        LogKind::Resume => t.ok,
        LogKind::Info => t.dim,
    }
}
