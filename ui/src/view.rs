//! Whole-screen layout: status bar, contacts | conversation, event log,
//! key hints, then whichever overlay the mode or login state calls for.

use ratatui::Frame;
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Widget;

use crate::keymap::KeyAction;
use crate::model::{Mode, Model};
use crate::widgets::{self, contacts, conversation, event_log, help, prompt, qr, status_bar};

/// Narrowest terminal the dashboard draws in.
pub const MIN_WIDTH: u16 = 60;
/// Shortest terminal the dashboard draws in.
pub const MIN_HEIGHT: u16 = 16;

/// Draws the model into the frame.
pub fn view(model: &Model, frame: &mut Frame<'_>) {
    let area = frame.area();
    render(model, area, frame.buffer_mut());
}

/// Draws the model into any buffer area (what `view` does, minus the frame).
pub fn render(model: &Model, area: Rect, buf: &mut Buffer) {
    if area.width < MIN_WIDTH || area.height < MIN_HEIGHT {
        too_small(model, area, buf);
        return;
    }
    let events_h = (area.height / 4).clamp(5, 14);
    let contacts_w = (area.width * 3 / 8).clamp(28, 48);
    // Plain arithmetic instead of `Layout`: at the minimum size every fixed part
    // still fits, so the split is exact, and ratatui's constraint solver (run
    // every frame, as its cache is not enabled here) was a visible share of a frame.
    let (status, rest) = split_rows(area, status_bar::height(model));
    let (main, rest) = split_rows(rest, rest.height.saturating_sub(events_h + 1));
    let (events, footer) = split_rows(rest, events_h);
    let left = Rect {
        width: contacts_w,
        ..main
    };
    let right = Rect {
        x: main.x + contacts_w,
        width: main.width - contacts_w,
        ..main
    };
    status_bar::render(model, status, buf);
    contacts::render(model, left, buf);
    conversation::render(model, right, buf);
    event_log::render(model, events, buf);
    hints(model, footer, buf);
    overlays(model, area, buf);
}

/// The top `rows` rows of `area`, and what is left below them.
fn split_rows(area: Rect, rows: u16) -> (Rect, Rect) {
    let rows = rows.min(area.height);
    let top = Rect {
        height: rows,
        ..area
    };
    let bottom = Rect {
        y: area.y + rows,
        height: area.height - rows,
        ..area
    };
    (top, bottom)
}

fn overlays(model: &Model, area: Rect, buf: &mut Buffer) {
    if let Some(code) = model.qr.as_ref().filter(|_| model.qr_visible()) {
        qr::render(model, code, area, buf);
    }
    match &model.mode {
        Mode::Normal | Mode::Filter => {}
        Mode::Help => help::render(model, area, buf),
        Mode::PauseDurationPrompt {
            contact_id,
            selected,
            custom,
        } => prompt::render_pause(model, contact_id, *selected, custom, area, buf),
        Mode::ConfirmKill { on } => prompt::render_confirm_kill(model, *on, area, buf),
        Mode::Quitting { progress } => prompt::render_quitting(model, progress, area, buf),
    }
}

fn too_small(model: &Model, area: Rect, buf: &mut Buffer) {
    let msg = format!(
        "terminal too small: need at least {MIN_WIDTH}x{MIN_HEIGHT} (now {}x{})",
        area.width, area.height
    );
    let lines = crate::text::wrap(&msg, usize::from(area.width.max(1)));
    let top = area.height.saturating_sub(lines.len() as u16) / 2;
    for (i, text) in lines.into_iter().enumerate() {
        let y = area.y + top + i as u16;
        if y < area.bottom() {
            Line::styled(text, model.theme.warn).centered().render(
                Rect {
                    y,
                    height: 1,
                    ..area
                },
                buf,
            );
        }
    }
}

/// Footer label for `action`: a plain character key if there is one, as it is shortest.
fn key(model: &Model, action: KeyAction) -> String {
    let keys = model.keymap.keys_for(action);
    let short = keys
        .iter()
        .find(|k| matches!(k.code, crate::keymap::KeyCode::Char(_)) && !k.ctrl);
    short
        .or(keys.first())
        .map_or_else(|| "-".to_string(), |k| k.display())
}

/// `(keys, what)` pairs for the footer in the current mode.
pub fn hint_pairs(model: &Model) -> Vec<(String, String)> {
    let fixed = |pairs: &[(&str, &str)]| {
        pairs
            .iter()
            .map(|(k, w)| (k.to_string(), w.to_string()))
            .collect()
    };
    match &model.mode {
        Mode::Normal => {
            let move_keys = format!(
                "{}/{}",
                key(model, KeyAction::Down),
                key(model, KeyAction::Up)
            );
            let mut pairs = vec![(move_keys, "move".to_string())];
            let rest = [
                (KeyAction::NextPane, "pane"),
                (KeyAction::Pause, "pause"),
                (KeyAction::Resume, "resume"),
                (KeyAction::ToggleEnabled, "on/off"),
                (KeyAction::KillSwitch, "kill"),
                (KeyAction::Filter, "filter"),
                (KeyAction::Help, "help"),
                (KeyAction::Quit, "quit"),
            ];
            pairs.extend(rest.iter().map(|(a, w)| (key(model, *a), w.to_string())));
            pairs
        }
        Mode::Filter => fixed(&[
            ("type", "filter"),
            ("up/down", "select"),
            ("enter", "keep"),
            ("esc", "clear"),
        ]),
        Mode::Help => fixed(&[("esc", "close")]),
        Mode::PauseDurationPrompt { .. } => fixed(&[
            ("up/down", "choose"),
            ("0-9", "minutes"),
            ("enter", "confirm"),
            ("esc", "cancel"),
        ]),
        Mode::ConfirmKill { .. } => fixed(&[("y", "confirm"), ("n/esc", "cancel")]),
        Mode::Quitting { .. } => fixed(&[("ctrl-c", "force quit")]),
    }
}

fn hints(model: &Model, area: Rect, buf: &mut Buffer) {
    let t = &model.theme;
    let mut pairs = hint_pairs(model);
    // Drop the least needed hints first; help and quit always stay visible.
    for drop in ["pane", "move", "filter", "on/off", "resume"] {
        if hints_width(&pairs) <= usize::from(area.width) {
            break;
        }
        pairs.retain(|(_, what)| what != drop);
    }
    let mut spans = Vec::new();
    for (keys, what) in pairs {
        spans.push(Span::styled(format!(" {keys}"), t.key));
        spans.push(Span::styled(format!(" {what} "), t.dim));
    }
    widgets::put_line(buf, area, 0, &Line::from(spans));
}

fn hints_width(pairs: &[(String, String)]) -> usize {
    pairs
        .iter()
        .map(|(k, w)| crate::text::width(k) + crate::text::width(w) + 3)
        .sum()
}
