//! Whole-screen layout: status bar, contacts | conversation (and the learned
//! panel when shown, and the selected contact's draft or the editor under it),
//! event log, key hints, then whichever overlay the mode or login state calls for.

use ratatui::Frame;
use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::Widget;

use crate::keymap::KeyAction;
use crate::model::{Mode, Model};
use crate::widgets::{
    self, contacts, conversation, draft, event_log, gateway_login, help, learned, preview, prompt,
    qr, status_bar,
};

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
    // The language model's breaker banner sits under the status bar, its panel
    // beside the event log or under the conversation (`llm::panel::place`).
    let banner_h = crate::llm::panel::banner_height(model);
    let status_h = status_bar::height(model);
    let [status, mut left, mut right, mut events, footer] = panes(area, status_h + banner_h);
    status_bar::render(
        model,
        Rect {
            height: status_h,
            ..status
        },
        buf,
    );
    let banner = Rect {
        y: status.y + status_h,
        height: banner_h,
        ..status
    };
    crate::llm::panel::render_banner(model, banner, buf);
    let llm = crate::llm::panel::place(model, &mut left, &mut right, &mut events);
    // The draft or the editor goes first: the operator must see what they decide.
    let draft_panel = draft::place(model, &mut right);
    // What the twin learned, when shown, under the conversation or in its place.
    let learned_panel = learned::place(model, &mut right);
    contacts::render(model, left, buf);
    if right.height > 0 {
        conversation::render(model, right, buf);
    }
    event_log::render(model, events, buf);
    if let Some(panel) = llm {
        crate::llm::panel::render(model, panel, buf);
    }
    if let Some(panel) = learned_panel {
        learned::render(model, panel, buf);
    }
    if let Some(panel) = draft_panel {
        draft::render(model, panel, buf);
    }
    hints(model, footer, buf);
    overlays(model, area, buf);
}

/// The status bar, contacts, conversation, event log and key hints of a screen
/// of at least the minimum size, the status bar `status_h` rows high.
fn panes(area: Rect, status_h: u16) -> [Rect; 5] {
    let events_h = (area.height / 4).clamp(5, 14);
    let contacts_w = (area.width * 3 / 8).clamp(28, 48);
    // At the minimum size every fixed part still fits, so the split is exact. The
    // solver's result is cached (ratatui's `layout-cache` feature), so a frame of
    // a terminal whose size did not change does not solve the layout again.
    let [status, main, events, footer] = Layout::vertical([
        Constraint::Length(status_h),
        Constraint::Fill(1),
        Constraint::Length(events_h),
        Constraint::Length(1),
    ])
    .areas(area);
    let [left, right] =
        Layout::horizontal([Constraint::Length(contacts_w), Constraint::Fill(1)]).areas(main);
    [status, left, right, events, footer]
}

fn overlays(model: &Model, area: Rect, buf: &mut Buffer) {
    // The gateway's own word (a pair code, codes ran out) replaces a QR code,
    // which is stale by then.
    if let Some(g) = gateway_login::shown(model) {
        gateway_login::render(model, g, area, buf);
    } else if let Some(code) = model.qr.as_ref().filter(|_| model.qr_visible()) {
        qr::render(model, code, area, buf);
    }
    match &model.mode {
        Mode::Normal | Mode::Filter | Mode::Editor { .. } => {}
        Mode::Preview { contact_id, state } => preview::render(model, contact_id, state, area, buf),
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
            let waiting = model
                .selected_contact()
                .is_some_and(|c| model.drafts.for_contact(&c.id).is_some());
            if waiting {
                let draft = [
                    (KeyAction::Approve, "send"),
                    (KeyAction::EditDraft, "edit"),
                    (KeyAction::Discard, "discard"),
                ];
                pairs.extend(draft.iter().map(|(a, w)| (key(model, *a), w.to_string())));
            }
            let unanswered = model
                .selected_contact()
                .is_some_and(|c| model.unanswered.for_contact(&c.id) > 0);
            if unanswered {
                pairs.push((key(model, KeyAction::DismissUnanswered), "seen".to_string()));
            }
            let rest = [
                (KeyAction::NextPane, "pane"),
                (KeyAction::Pause, "pause"),
                (KeyAction::Resume, "resume"),
                (KeyAction::ToggleEnabled, "on/off"),
                (KeyAction::KillSwitch, "kill"),
                (KeyAction::Filter, "filter"),
                (KeyAction::Learned, "learned"),
                (KeyAction::ToggleMode, "mode"),
                (KeyAction::Compose, "write"),
                (KeyAction::Preview, "preview"),
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
        Mode::Editor { .. } => fixed(&[
            ("enter", "send"),
            ("alt-enter", "new line"),
            ("ctrl-u", "clear"),
            ("esc", "cancel"),
        ]),
        Mode::Preview { .. } => fixed(&[("esc", "close")]),
        Mode::Quitting { .. } => fixed(&[("ctrl-c", "force quit")]),
    }
}

fn hints(model: &Model, area: Rect, buf: &mut Buffer) {
    let t = &model.theme;
    let mut pairs = hint_pairs(model);
    // Drop the least needed hints first; help and quit always stay visible.
    for drop in [
        "preview", "write", "mode", "learned", "pane", "move", "filter", "on/off", "resume",
    ] {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The split the screen had before it used `Layout`, row and column exact.
    fn by_hand(area: Rect, status_h: u16) -> [Rect; 5] {
        let events_h = (area.height / 4).clamp(5, 14);
        let contacts_w = (area.width * 3 / 8).clamp(28, 48);
        let rows = |area: Rect, rows: u16| {
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
        };
        let (status, rest) = rows(area, status_h);
        let (main, rest) = rows(rest, rest.height.saturating_sub(events_h + 1));
        let (events, footer) = rows(rest, events_h);
        let left = Rect {
            width: contacts_w,
            ..main
        };
        let right = Rect {
            x: main.x + contacts_w,
            width: main.width - contacts_w,
            ..main
        };
        [status, left, right, events, footer]
    }

    #[test]
    fn the_layout_splits_every_size_as_the_arithmetic_did() {
        for status_h in 2..=4 {
            for height in MIN_HEIGHT..=90 {
                for width in (MIN_WIDTH..=300).step_by(7) {
                    let area = Rect::new(3, 1, width, height);
                    assert_eq!(
                        panes(area, status_h),
                        by_hand(area, status_h),
                        "{width}x{height}, status {status_h}"
                    );
                }
            }
        }
    }
}
