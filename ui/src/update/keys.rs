//! Key presses and pastes: the operator's side of the control room.

use super::{Action, MAX_CUSTOM_DIGITS, MAX_FILTER, PAGE, UpdateResult};
use crate::keymap::{KeyAction, KeyCode, KeyInput};
use crate::model::{Contact, Mode, Model, PAUSE_CHOICES, PAUSE_CUSTOM_INDEX, Pane, WorkerState};
use crate::sanitize;

pub(super) fn on_key(model: &mut Model, key: KeyInput) -> UpdateResult {
    // Ctrl-C always quits, whatever the keymap or mode, so nobody gets stuck.
    if key == KeyInput::ctrl('c') {
        return quit(model);
    }
    match model.mode.clone() {
        Mode::Normal => normal_key(model, key),
        Mode::Filter => filter_key(model, key),
        Mode::Help => help_key(model, key),
        Mode::PauseDurationPrompt {
            contact_id,
            selected,
            custom,
        } => pause_prompt_key(model, key, contact_id, selected, custom),
        Mode::ConfirmKill { on } => confirm_kill_key(model, key, on),
        Mode::Editor { target, editor } => super::drafts::editor_key(model, key, target, editor),
        Mode::Preview { .. } => super::drafts::preview_key(model, key),
        Mode::Quitting { .. } => UpdateResult::clean(),
    }
}

fn quit(model: &mut Model) -> UpdateResult {
    if !matches!(model.mode, Mode::Quitting { .. }) {
        model.mode = Mode::Quitting {
            progress: quitting_text(model.stats.worker),
        };
    }
    UpdateResult::action(Action::Quit)
}

pub(super) fn quitting_text(worker: WorkerState) -> String {
    match worker {
        WorkerState::Draining { left } => format!("draining the worker: {left} job(s) left"),
        WorkerState::Stopped | WorkerState::Off => "worker stopped, closing".to_string(),
        WorkerState::Running | WorkerState::Asleep { .. } => "stopping the worker".to_string(),
    }
}

fn normal_key(model: &mut Model, key: KeyInput) -> UpdateResult {
    if key == KeyInput::plain(KeyCode::Esc) {
        return clear_filter(model);
    }
    let Some(action) = model.keymap.action_for(&key) else {
        return UpdateResult::clean();
    };
    match action {
        KeyAction::Up => move_by(model, -1),
        KeyAction::Down => move_by(model, 1),
        KeyAction::PageUp => move_by(model, -(PAGE as i64)),
        KeyAction::PageDown => move_by(model, PAGE as i64),
        KeyAction::Top => move_by(model, i64::MIN / 2),
        KeyAction::Bottom => move_by(model, i64::MAX / 2),
        KeyAction::NextPane => set_focus(model, model.focus.next()),
        KeyAction::PrevPane => set_focus(model, model.focus.prev()),
        KeyAction::Pause => open_pause_prompt(model),
        KeyAction::Resume => with_selected(model, |c| Action::Resume {
            contact_id: c.id.clone(),
        }),
        KeyAction::ToggleEnabled => with_selected(model, |c| Action::SetEnabled {
            contact_id: c.id.clone(),
            enabled: !c.enabled,
        }),
        KeyAction::KillSwitch => {
            model.mode = Mode::ConfirmKill {
                on: model.kill_switch.is_none(),
            };
            UpdateResult::dirty()
        }
        KeyAction::Filter => {
            model.mode = Mode::Filter;
            UpdateResult::dirty()
        }
        KeyAction::Help => {
            model.mode = Mode::Help;
            UpdateResult::dirty()
        }
        KeyAction::NewCodes => super::gateway::on_new_codes_key(model),
        KeyAction::Learned => super::learned::toggle(model),
        KeyAction::Approve
        | KeyAction::EditDraft
        | KeyAction::Discard
        | KeyAction::Regenerate
        | KeyAction::ToggleMode
        | KeyAction::Compose
        | KeyAction::Preview => super::drafts::on_key_action(model, action),
        KeyAction::DismissUnanswered => super::unanswered::dismiss(model),
        KeyAction::Quit => quit(model),
    }
}

fn clear_filter(model: &mut Model) -> UpdateResult {
    if model.filter.is_empty() {
        return UpdateResult::clean();
    }
    model.filter.clear();
    model.refilter();
    UpdateResult::dirty()
}

fn with_selected(model: &Model, make: impl Fn(&Contact) -> Action) -> UpdateResult {
    model
        .selected_contact()
        .map_or_else(UpdateResult::clean, |c| UpdateResult::action(make(c)))
}

fn set_focus(model: &mut Model, pane: Pane) -> UpdateResult {
    model.focus = pane;
    UpdateResult::dirty()
}

/// Moves within the focused pane; `delta` < 0 is up (older / earlier rows).
fn move_by(model: &mut Model, delta: i64) -> UpdateResult {
    match model.focus {
        Pane::Contacts => move_selection(model, delta),
        Pane::Conversation => {
            let len = selected_conversation_len(model);
            scroll(&mut model.conversation_scroll, len, delta)
        }
        Pane::Events => {
            let len = model.events.len();
            scroll(&mut model.events_scroll, len, delta)
        }
    }
}

fn selected_conversation_len(model: &Model) -> usize {
    model
        .selected_contact()
        .and_then(|c| model.conversations.get(&c.id))
        .map_or(0, |conv| conv.messages.len())
}

/// Scroll offsets count hidden newest items, so "up" increases them.
fn scroll(offset: &mut usize, len: usize, delta: i64) -> UpdateResult {
    let max = len.saturating_sub(1) as i64;
    let next = (*offset as i64).saturating_sub(delta).clamp(0, max) as usize;
    let changed = next != *offset;
    *offset = next;
    UpdateResult {
        actions: Vec::new(),
        dirty: changed,
    }
}

fn move_selection(model: &mut Model, delta: i64) -> UpdateResult {
    let Some(current) = model.selected_index() else {
        return UpdateResult::clean();
    };
    let last = model.visible_len().saturating_sub(1) as i64;
    let next = (current as i64).saturating_add(delta).clamp(0, last) as usize;
    let id = model.visible_window(next, 1).first().map(|c| c.id.clone());
    let changed = id != model.selected;
    if changed {
        model.selected = id;
        model.conversation_scroll = 0;
    }
    UpdateResult {
        actions: Vec::new(),
        dirty: changed,
    }
}

fn open_pause_prompt(model: &mut Model) -> UpdateResult {
    let Some(contact) = model.selected_contact() else {
        return UpdateResult::clean();
    };
    model.mode = Mode::PauseDurationPrompt {
        contact_id: contact.id.clone(),
        selected: 0,
        custom: String::new(),
    };
    UpdateResult::dirty()
}

fn filter_key(model: &mut Model, key: KeyInput) -> UpdateResult {
    if key.ctrl || key.alt {
        return UpdateResult::clean();
    }
    match key.code {
        KeyCode::Enter => model.mode = Mode::Normal,
        KeyCode::Esc => {
            model.filter.clear();
            model.mode = Mode::Normal;
        }
        KeyCode::Backspace => {
            model.filter.pop();
        }
        KeyCode::Up => return move_selection(model, -1),
        KeyCode::Down => return move_selection(model, 1),
        KeyCode::Char(c) if !c.is_control() && model.filter.chars().count() < MAX_FILTER => {
            model.filter.push(c);
        }
        _ => return UpdateResult::clean(),
    }
    model.refilter();
    UpdateResult::dirty()
}

fn help_key(model: &mut Model, key: KeyInput) -> UpdateResult {
    let closes = matches!(key.code, KeyCode::Esc | KeyCode::Enter | KeyCode::Char('q'))
        || model.keymap.action_for(&key) == Some(KeyAction::Help);
    if closes {
        model.mode = Mode::Normal;
        return UpdateResult::dirty();
    }
    UpdateResult::clean()
}

fn pause_prompt_key(
    model: &mut Model,
    key: KeyInput,
    contact_id: String,
    mut selected: usize,
    mut custom: String,
) -> UpdateResult {
    match key.code {
        KeyCode::Esc => {
            model.mode = Mode::Normal;
            return UpdateResult::dirty();
        }
        KeyCode::Enter => return confirm_pause(model, contact_id, selected, &custom),
        KeyCode::Up | KeyCode::Char('k') => selected = selected.saturating_sub(1),
        KeyCode::Down | KeyCode::Char('j') | KeyCode::Tab => {
            selected = (selected + 1).min(PAUSE_CUSTOM_INDEX)
        }
        KeyCode::Char(c) if c.is_ascii_digit() => {
            // Typing digits implies the custom row.
            selected = PAUSE_CUSTOM_INDEX;
            if custom.len() < MAX_CUSTOM_DIGITS {
                custom.push(c);
            }
        }
        KeyCode::Backspace => {
            custom.pop();
        }
        _ => return UpdateResult::clean(),
    }
    model.mode = Mode::PauseDurationPrompt {
        contact_id,
        selected,
        custom,
    };
    UpdateResult::dirty()
}

fn confirm_pause(
    model: &mut Model,
    contact_id: String,
    selected: usize,
    custom: &str,
) -> UpdateResult {
    let minutes = match PAUSE_CHOICES.get(selected) {
        Some((_, m)) => *m,
        None => custom.parse::<u64>().unwrap_or(0),
    };
    if minutes == 0 {
        // Nothing sensible to do yet; keep the prompt open for more digits.
        return UpdateResult::clean();
    }
    model.mode = Mode::Normal;
    let duration_ms = i64::try_from(minutes.saturating_mul(60_000)).unwrap_or(i64::MAX);
    UpdateResult::action(Action::Pause {
        contact_id,
        duration_ms,
    })
}

fn confirm_kill_key(model: &mut Model, key: KeyInput, on: bool) -> UpdateResult {
    match key.code {
        KeyCode::Char('y' | 'Y') => {
            model.mode = Mode::Normal;
            UpdateResult::action(Action::KillSwitch { on })
        }
        KeyCode::Char('n' | 'N') | KeyCode::Esc => {
            model.mode = Mode::Normal;
            UpdateResult::dirty()
        }
        _ => UpdateResult::clean(),
    }
}

pub(super) fn on_paste(model: &mut Model, text: &str) -> UpdateResult {
    if matches!(model.mode, Mode::Editor { .. }) {
        return super::drafts::editor_paste(model, text);
    }
    let clean = sanitize::clean(text, MAX_FILTER);
    match &mut model.mode {
        Mode::Filter => {
            let room = MAX_FILTER.saturating_sub(model.filter.chars().count());
            model.filter.extend(clean.chars().take(room));
            model.refilter();
        }
        Mode::PauseDurationPrompt {
            selected, custom, ..
        } => {
            let room = MAX_CUSTOM_DIGITS.saturating_sub(custom.len());
            custom.extend(clean.chars().filter(char::is_ascii_digit).take(room));
            *selected = PAUSE_CUSTOM_INDEX;
        }
        _ => return UpdateResult::clean(),
    }
    UpdateResult::dirty()
}
