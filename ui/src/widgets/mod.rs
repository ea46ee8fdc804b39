//! Drawing pieces; each takes the model (read-only), an area and a buffer.

pub mod contacts;
pub mod conversation;
pub mod draft;
pub mod editor;
pub mod event_log;
pub mod gateway_login;
pub mod gauge;
pub mod help;
pub mod learned;
pub mod preview;
pub mod prompt;
pub mod qr;
pub mod status_bar;

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::text::Line;
use ratatui::widgets::{Block, BorderType, Clear, Widget};

use crate::theme::Theme;

/// A `w`x`h` rectangle centred in `area`, shrunk to fit.
pub fn centered(area: Rect, w: u16, h: u16) -> Rect {
    let w = w.min(area.width);
    let h = h.min(area.height);
    Rect {
        x: area.x + (area.width - w) / 2,
        y: area.y + (area.height - h) / 2,
        width: w,
        height: h,
    }
}

/// Bordered pane; the focused one gets a thick border so focus shows without colour.
pub fn pane_block(title: String, focused: bool, theme: &Theme) -> Block<'static> {
    let (border_type, border_style) = if focused {
        (BorderType::Thick, theme.border_focus)
    } else {
        (BorderType::Plain, theme.border)
    };
    let marker = if focused { "▶ " } else { "" };
    Block::bordered()
        .border_type(border_type)
        .border_style(border_style)
        .title(Line::styled(format!(" {marker}{title} "), theme.title))
}

/// Clears `area` and draws an overlay frame around it; returns the inside.
pub fn overlay_frame(area: Rect, title: &str, theme: &Theme, buf: &mut Buffer) -> Rect {
    Clear.render(area, buf);
    let block = Block::bordered()
        .border_type(BorderType::Double)
        .style(theme.overlay)
        .title(Line::styled(format!(" {title} "), theme.title));
    let inner = block.inner(area);
    block.render(area, buf);
    inner
}

/// Writes `line` at the start of row `row` of `area`, clipped to its width.
pub fn put_line(buf: &mut Buffer, area: Rect, row: u16, line: &Line<'_>) {
    if row < area.height {
        buf.set_line(area.x, area.y + row, line, area.width);
    }
}
