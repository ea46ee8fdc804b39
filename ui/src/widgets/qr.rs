//! Login-code overlay.
//!
//! Each terminal cell shows two modules stacked (upper/lower half blocks),
//! so a cell is 1 module wide and 2 tall, which keeps modules square on
//! typical 1:2 cells. The code is drawn with a 4-module quiet zone.
//!
//! Colour themes set fg=Black and bg=White on every cell explicitly, so the
//! code is dark-on-light whatever the terminal's own colours are. Under
//! NO_COLOR no colour may be set, so the glyphs alone carry the code: a
//! dark module is ink (the block glyph), a light one is blank. That is
//! correct on light-background terminals; on dark ones the code shows
//! inverted, which most scanners (WhatsApp included) still read. Reverse
//! video is deliberately not used because it would flip the meaning on
//! exactly the terminals where the plain glyphs are right.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::{Color, Style};
use ratatui::text::Line;
use ratatui::widgets::{Block, BorderType, Clear, Widget};

use super::centered;
use crate::format;
use crate::model::{Model, QrCode};
use crate::view::{MIN_HEIGHT, MIN_WIDTH};

/// Light modules around the code, as the QR spec requires.
pub const QUIET_ZONE: usize = 4;

/// Error from encoding the payload (e.g. too long for any QR version).
pub type QrError = qrcode::types::QrError;

/// Square module matrix including the quiet zone; `true` = dark.
pub fn modules(payload: &str) -> Result<Vec<Vec<bool>>, QrError> {
    let code = qrcode::QrCode::new(payload.as_bytes())?;
    let w = code.width();
    let colors = code.to_colors();
    let n = w + 2 * QUIET_ZONE;
    let mut grid = vec![vec![false; n]; n];
    for (i, color) in colors.iter().enumerate() {
        let (x, y) = (i % w, i / w);
        grid[y + QUIET_ZONE][x + QUIET_ZONE] = *color == qrcode::Color::Dark;
    }
    Ok(grid)
}

/// The code as rows of half-block text, quiet zone included.
///
/// Row `r` covers module rows `2r` (upper half) and `2r+1` (lower half); a
/// missing last lower row counts as light. `█` both dark, `▀` upper dark,
/// `▄` lower dark, space both light.
pub fn render_lines(payload: &str) -> Result<Vec<String>, QrError> {
    let grid = modules(payload)?;
    let light_row = vec![false; grid.len()];
    Ok(grid
        .chunks(2)
        .map(|pair| {
            let top = &pair[0];
            let bottom = pair.get(1).unwrap_or(&light_row);
            top.iter()
                .zip(bottom)
                .map(|(&t, &b)| half_block(t, b))
                .collect()
        })
        .collect())
}

fn half_block(top_dark: bool, bottom_dark: bool) -> char {
    match (top_dark, bottom_dark) {
        (true, true) => '█',
        (true, false) => '▀',
        (false, true) => '▄',
        (false, false) => ' ',
    }
}

/// Draws the overlay for `qr` centred in `area`.
pub fn render(model: &Model, qr: &QrCode, area: Rect, buf: &mut Buffer) {
    let left = format::remaining_secs(qr.expires_at_ms(), model.now_ms);
    if left == 0 {
        message_box(
            model,
            area,
            buf,
            "Log in to WhatsApp",
            &["expired - waiting for a new code"],
        );
        return;
    }
    let lines = match render_lines(&qr.payload) {
        Ok(lines) => lines,
        Err(e) => {
            let msg = format!("the login code cannot be drawn: {e}");
            message_box(model, area, buf, "Log in to WhatsApp", &[msg.as_str()]);
            return;
        }
    };
    let cols = lines.first().map_or(0, |l| l.chars().count());
    let (box_w, box_h) = (cols + 2, lines.len() + 2);
    if box_w > usize::from(area.width) || box_h > usize::from(area.height) {
        let need_w = box_w.max(usize::from(MIN_WIDTH));
        let need_h = box_h.max(usize::from(MIN_HEIGHT));
        let msg =
            format!("Enlarge the terminal to at least {need_w}x{need_h} to scan the login code");
        let countdown = format!("expires in {left}s");
        message_box(
            model,
            area,
            buf,
            "Log in to WhatsApp",
            &[msg.as_str(), countdown.as_str()],
        );
        return;
    }
    draw_code(
        model,
        &lines,
        left,
        centered(area, box_w as u16, box_h as u16),
        buf,
    );
}

fn draw_code(model: &Model, lines: &[String], left: i64, rect: Rect, buf: &mut Buffer) {
    Clear.render(rect, buf);
    let block = Block::bordered()
        .border_type(BorderType::Double)
        .style(model.theme.overlay)
        .title(Line::styled(" Scan with WhatsApp ", model.theme.title).centered())
        .title_bottom(Line::styled(format!(" expires in {left}s "), model.theme.warn).centered());
    let inner = block.inner(rect);
    block.render(rect, buf);
    let style = if model.theme.colored {
        Style::new().fg(Color::Black).bg(Color::White)
    } else {
        Style::new()
    };
    for (row, line) in lines.iter().enumerate() {
        for (col, ch) in line.chars().enumerate() {
            let pos = (inner.x + col as u16, inner.y + row as u16);
            if let Some(cell) = buf.cell_mut(pos) {
                cell.set_char(ch).set_style(style);
            }
        }
    }
}

fn message_box(model: &Model, area: Rect, buf: &mut Buffer, title: &str, lines: &[&str]) {
    let width = area.width.saturating_sub(4).min(50);
    let wrapped: Vec<String> = lines
        .iter()
        .flat_map(|l| crate::text::wrap(l, usize::from(width.saturating_sub(4))))
        .collect();
    let height = wrapped.len() as u16 + 4;
    let rect = centered(area, width, height);
    let inner = super::overlay_frame(rect, title, &model.theme, buf);
    for (row, text) in wrapped.iter().enumerate() {
        let line = Line::styled(text.clone(), model.theme.warn).centered();
        let y = inner.y + 1 + row as u16;
        if y < inner.bottom() {
            line.render(
                Rect {
                    y,
                    height: 1,
                    ..inner
                },
                buf,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_row_has_the_same_width() {
        let lines = render_lines("hello").unwrap_or_default();
        let n = 21 + 2 * QUIET_ZONE;
        assert_eq!(lines.len(), n.div_ceil(2));
        assert!(lines.iter().all(|l| l.chars().count() == n));
    }
}
