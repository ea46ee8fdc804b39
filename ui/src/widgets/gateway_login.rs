//! The login panel for what the WhatsApp gateway asks of the operator, in the
//! QR overlay's place: the pair code to type on the phone, or the news that the
//! login codes ran out and which key asks for new ones.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::text::Line;
use ratatui::widgets::Widget;

use super::{centered, overlay_frame};
use crate::format;
use crate::keymap::KeyAction;
use crate::model::{GatewayPhase, GatewayState, Model};

/// Widest the panel gets, in columns.
const MAX_WIDTH: u16 = 60;

/// The gateway state that calls for this panel, if any.
pub fn shown(model: &Model) -> Option<&GatewayState> {
    model.gateway.as_ref().filter(|g| {
        matches!(
            g.phase,
            GatewayPhase::PairCode | GatewayPhase::CodesExhausted
        )
    })
}

/// Seconds left on the pair code the panel shows (what its countdown reads).
pub fn pair_code_left(model: &Model) -> Option<i64> {
    let g = shown(model).filter(|g| g.phase == GatewayPhase::PairCode)?;
    Some(format::remaining_secs(g.until_ms?, model.now_ms))
}

/// Draws the panel for `g` centred in `area`.
pub fn render(model: &Model, g: &GatewayState, area: Rect, buf: &mut Buffer) {
    let t = &model.theme;
    let rows: Vec<(String, Style)> = match g.phase {
        GatewayPhase::PairCode => pair_code_rows(model, g),
        _ => {
            let key = model
                .keymap
                .keys_for(KeyAction::NewCodes)
                .first()
                .map_or_else(|| "(unbound: new_codes)".to_string(), |k| k.display());
            // The gateway's detail names the Redis command; the key is the way here.
            vec![
                (
                    "The login codes ran out: none was scanned in time.".to_string(),
                    t.warn,
                ),
                (String::new(), t.text),
                (format!("Press {key} to ask for new ones."), t.key),
            ]
        }
    };
    let title = match g.phase {
        GatewayPhase::PairCode => "Link WhatsApp with a phone number",
        _ => "Log in to WhatsApp",
    };
    draw(model, title, &rows, area, buf);
}

fn pair_code_rows(model: &Model, g: &GatewayState) -> Vec<(String, Style)> {
    let t = &model.theme;
    // Spaced out, so each character reads on its own across a room or a phone.
    let spaced: String = g
        .code_grouped()
        .chars()
        .map(|c| c.to_string())
        .collect::<Vec<_>>()
        .join(" ");
    let expiry = match g.until_ms {
        Some(until) => match format::remaining_secs(until, model.now_ms) {
            0 => ("expired - waiting for a new code".to_string(), t.warn),
            left => (format!("expires in {}", format::countdown(left)), t.warn),
        },
        None => (String::new(), t.text),
    };
    let mut rows = vec![
        (spaced, t.title),
        (String::new(), t.text),
        // The path stays on one row (it fits the narrowest panel) so it reads as one.
        ("On the phone, open".to_string(), t.text),
        (
            "WhatsApp > Linked devices > Link with phone number".to_string(),
            t.key,
        ),
        ("and type this code.".to_string(), t.text),
        (String::new(), t.text),
        expiry,
    ];
    rows.extend(detail_row(model, g));
    rows
}

fn detail_row(model: &Model, g: &GatewayState) -> Option<(String, Style)> {
    g.detail.clone().map(|d| (d, model.theme.dim))
}

fn draw(model: &Model, title: &str, rows: &[(String, Style)], area: Rect, buf: &mut Buffer) {
    let width = area.width.saturating_sub(4).min(MAX_WIDTH);
    let cols = usize::from(width.saturating_sub(4));
    let wrapped: Vec<(String, Style)> = rows
        .iter()
        .flat_map(|(text, style)| {
            crate::text::wrap(text, cols)
                .into_iter()
                .map(move |l| (l, *style))
        })
        .collect();
    let height = wrapped.len() as u16 + 4;
    let rect = centered(area, width, height);
    let inner = overlay_frame(rect, title, &model.theme, buf);
    for (row, (text, style)) in wrapped.into_iter().enumerate() {
        let y = inner.y + 1 + row as u16;
        if y < inner.bottom() {
            Line::styled(text, style).centered().render(
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
