//! Draft mode: what the binary reads (drafts, modes, `events:drafts`, a
//! preview), the keys on the selected contact's draft, and the inline editor.

use std::collections::HashMap;

use super::{Action, MAX_SHORT, MAX_TEXT, UpdateResult, log};
use crate::keymap::{KeyAction, KeyCode, KeyInput};
use crate::model::{
    Contact, Draft, DraftChange, DraftsRead, EditTarget, Editor, LogKind, Mode, Model, PreviewState,
};
use crate::sanitize;

/// A new reading of the drafts and modes; redraws only when it changed them.
/// The binary re-reads every few seconds: the same reading again costs a
/// comparison, and a draft that did not change is not cleaned again.
pub(super) fn on_read(model: &mut Model, read: DraftsRead) -> UpdateResult {
    let last = model.drafts.last_read();
    if last == Some(&read) {
        return UpdateResult::clean();
    }
    let before: HashMap<&str, &Draft> = last
        .map(|r| {
            r.drafts
                .iter()
                .map(|d| (d.contact_id.as_str(), d))
                .collect()
        })
        .unwrap_or_default();
    let drafts = read
        .drafts
        .iter()
        .map(|d| match before.get(d.contact_id.as_str()) {
            Some(old) if *old == d => model
                .drafts
                .for_contact(&sanitize::clean(&d.contact_id, MAX_SHORT))
                .cloned()
                .unwrap_or_else(|| clean_draft(d)),
            _ => clean_draft(d),
        })
        .collect();
    let clean = DraftsRead {
        drafts,
        modes: read
            .modes
            .iter()
            .map(|(id, mode)| (sanitize::clean(id, MAX_SHORT), *mode))
            .collect(),
        default_mode: read.default_mode,
    };
    model.drafts.replace(read, clean);
    UpdateResult::dirty()
}

fn clean_draft(d: &Draft) -> Draft {
    Draft {
        draft_id: sanitize::clean(&d.draft_id, MAX_SHORT),
        contact_id: sanitize::clean(&d.contact_id, MAX_SHORT),
        content: sanitize::clean_multiline(&d.content, MAX_TEXT),
        in_reply_to: sanitize::clean(&d.in_reply_to, MAX_SHORT),
        created_at_ms: d.created_at_ms,
        expires_at_ms: d.expires_at_ms,
    }
}

/// A draft changed: logged; a decided or expired one leaves the screen at
/// once; a new one rings the bell when asked to.
pub(super) fn on_event(
    model: &mut Model,
    change: DraftChange,
    draft_id: &str,
    contact_id: &str,
) -> UpdateResult {
    let contact_id = sanitize::clean(contact_id, MAX_SHORT);
    let draft_id = sanitize::clean(draft_id, MAX_SHORT);
    if change.ends_draft() {
        model.drafts.remove(&contact_id, &draft_id);
    }
    let text = format!("{}: {}", name_of(model, &contact_id), change.words());
    log(model, LogKind::Draft, &text);
    let mut result = UpdateResult::dirty();
    if change == DraftChange::Created && model.bell {
        result.actions.push(Action::Bell);
    }
    result
}

/// The preview asked for, shown if its popup still waits for it.
pub(super) fn on_preview(
    model: &mut Model,
    contact_id: &str,
    reply: Result<String, String>,
) -> UpdateResult {
    let Mode::Preview {
        contact_id: shown,
        state,
    } = &mut model.mode
    else {
        return UpdateResult::clean();
    };
    if shown != contact_id {
        return UpdateResult::clean();
    }
    *state = match reply {
        Ok(text) => PreviewState::Ready(sanitize::clean_multiline(&text, MAX_TEXT)),
        Err(why) => PreviewState::Failed(sanitize::clean(&why, MAX_TEXT)),
    };
    UpdateResult::dirty()
}

fn name_of(model: &Model, contact_id: &str) -> String {
    model
        .contact(contact_id)
        .map_or(contact_id, Contact::display_name)
        .to_owned()
}

/// A draft key on the selected contact (none selected: nothing happens).
pub(super) fn on_key_action(model: &mut Model, action: KeyAction) -> UpdateResult {
    let Some(contact) = model.selected_contact() else {
        return UpdateResult::clean();
    };
    let contact_id = contact.id.clone();
    match action {
        KeyAction::ToggleMode => toggle_mode(model, contact_id),
        KeyAction::Compose => {
            open_editor(model, EditTarget::Compose { contact_id }, Editor::default())
        }
        KeyAction::Preview => {
            model.mode = Mode::Preview {
                contact_id: contact_id.clone(),
                state: PreviewState::Waiting,
            };
            UpdateResult::action(Action::Preview { contact_id })
        }
        _ => on_draft(model, action, &contact_id),
    }
}

/// Approve, edit, discard or regenerate the contact's waiting draft.
fn on_draft(model: &mut Model, action: KeyAction, contact_id: &str) -> UpdateResult {
    let Some(draft) = model.drafts.for_contact(contact_id).cloned() else {
        let text = format!("{}: no draft waiting", name_of(model, contact_id));
        log(model, LogKind::Draft, &text);
        return UpdateResult::dirty();
    };
    let contact_id = draft.contact_id;
    let draft_id = draft.draft_id;
    match action {
        KeyAction::Approve => UpdateResult::action(Action::Approve {
            contact_id,
            draft_id,
            text: None,
        }),
        KeyAction::Discard => UpdateResult::action(Action::Discard {
            contact_id,
            draft_id,
        }),
        KeyAction::Regenerate => UpdateResult::action(Action::Regenerate {
            contact_id,
            draft_id,
        }),
        _ => {
            let editor = Editor::with_text(&draft.content);
            let target = EditTarget::Draft {
                contact_id,
                draft_id,
                original: editor.text().to_owned(),
            };
            open_editor(model, target, editor)
        }
    }
}

fn toggle_mode(model: &mut Model, contact_id: String) -> UpdateResult {
    let mode = model.drafts.mode_of(&contact_id).toggled();
    // Shown at once; the binary's next reading confirms it.
    model.drafts.set_mode(&contact_id, mode);
    UpdateResult::action(Action::SetMode { contact_id, mode })
}

fn open_editor(model: &mut Model, target: EditTarget, editor: Editor) -> UpdateResult {
    model.mode = Mode::Editor { target, editor };
    UpdateResult::dirty()
}

/// A key in the editor: Enter sends, Alt-Enter (or Ctrl-J) breaks the line,
/// Esc leaves everything as it was, the rest edits.
pub(super) fn editor_key(
    model: &mut Model,
    key: KeyInput,
    target: EditTarget,
    mut editor: Editor,
) -> UpdateResult {
    let changed = match (key.code, key.ctrl, key.alt) {
        (KeyCode::Esc, ..) => {
            model.mode = Mode::Normal;
            return UpdateResult::dirty();
        }
        (KeyCode::Enter, false, false) => return submit(model, target, editor),
        (KeyCode::Enter, _, true) | (KeyCode::Char('j'), true, false) => editor.insert_char('\n'),
        (KeyCode::Char('u'), true, false) => editor.clear(),
        (KeyCode::Char('a'), true, false) | (KeyCode::Home, ..) => editor.home(),
        (KeyCode::Char('e'), true, false) | (KeyCode::End, ..) => editor.end(),
        (KeyCode::Left, ..) => editor.left(),
        (KeyCode::Right, ..) => editor.right(),
        (KeyCode::Up, ..) => editor.up(),
        (KeyCode::Down, ..) => editor.down(),
        (KeyCode::Backspace, ..) => editor.backspace(),
        (KeyCode::Delete, ..) => editor.delete(),
        (KeyCode::Char(c), false, false) => editor.insert_char(c),
        _ => false,
    };
    model.mode = Mode::Editor { target, editor };
    UpdateResult {
        actions: Vec::new(),
        dirty: changed,
    }
}

/// Pasted text goes in at the cursor, its lines kept.
pub(super) fn editor_paste(model: &mut Model, text: &str) -> UpdateResult {
    let Mode::Editor { editor, .. } = &mut model.mode else {
        return UpdateResult::clean();
    };
    UpdateResult {
        actions: Vec::new(),
        dirty: editor.insert_str(text),
    }
}

/// Enter: the text goes out; an empty one sends nothing and keeps the editor.
fn submit(model: &mut Model, target: EditTarget, editor: Editor) -> UpdateResult {
    if editor.is_blank() {
        model.mode = Mode::Editor { target, editor };
        return UpdateResult::clean();
    }
    model.mode = Mode::Normal;
    let text = editor.text().to_owned();
    UpdateResult::action(match target {
        EditTarget::Draft {
            contact_id,
            draft_id,
            original,
        } => Action::Approve {
            contact_id,
            draft_id,
            text: (text != original).then_some(text),
        },
        EditTarget::Compose { contact_id } => Action::SendAsOwner { contact_id, text },
    })
}

/// The preview popup closes with Esc, Enter, `q` or its own key.
pub(super) fn preview_key(model: &mut Model, key: KeyInput) -> UpdateResult {
    let closes = matches!(key.code, KeyCode::Esc | KeyCode::Enter | KeyCode::Char('q'))
        || model.keymap.action_for(&key) == Some(KeyAction::Preview);
    if !closes {
        return UpdateResult::clean();
    }
    model.mode = Mode::Normal;
    UpdateResult::dirty()
}
