//! The draft panel under the conversation: the selected contact's waiting
//! draft, marked as one (not sent, when it expires, the keys that decide it),
//! or the inline editor while the operator writes.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, BorderType, Widget};

use super::{editor, put_line};
use crate::format;
use crate::keymap::KeyAction;
use crate::model::{Draft, EditTarget, Editor, Mode, Model};
use crate::text;

/// Rows the conversation keeps above the panel when the screen is short.
const CONVERSATION_KEEPS: u16 = 5;
/// Rows of a draft's text shown at most (the editor shows all of its own).
const MAX_DRAFT_ROWS: u16 = 6;

/// What the panel shows.
enum Shown<'a> {
    Editing(&'a EditTarget, &'a Editor),
    Waiting(&'a Draft),
}

fn shown(model: &Model) -> Option<Shown<'_>> {
    if let Mode::Editor { target, editor } = &model.mode {
        return Some(Shown::Editing(target, editor));
    }
    let contact = model.selected_contact()?;
    model.drafts.for_contact(&contact.id).map(Shown::Waiting)
}

/// Where the panel goes, taken from the bottom of `right`, when there is
/// something to show: as high as its text, leaving the conversation a few rows.
pub fn place(model: &Model, right: &mut Rect) -> Option<Rect> {
    let shown = shown(model)?;
    let inner_width = right.width.saturating_sub(2);
    let text_rows = match shown {
        Shown::Editing(_, e) => editor::rows_needed(e, inner_width) as u16,
        Shown::Waiting(d) => (text::wrap(&d.content, usize::from(inner_width.max(1))).len() as u16)
            .min(MAX_DRAFT_ROWS),
    };
    let room = right.height.saturating_sub(CONVERSATION_KEEPS).max(3);
    let height = (text_rows.max(1) + 2).min(room).min(right.height);
    if height < 3 {
        return None;
    }
    right.height -= height;
    Some(Rect {
        y: right.y + right.height,
        height,
        ..*right
    })
}

/// Draws the panel into `area`.
pub fn render(model: &Model, area: Rect, buf: &mut Buffer) {
    match shown(model) {
        Some(Shown::Editing(target, e)) => render_editor(model, target, e, area, buf),
        Some(Shown::Waiting(d)) => render_draft(model, d, area, buf),
        None => {}
    }
}

fn name(model: &Model, contact_id: &str) -> String {
    let name = model
        .contact(contact_id)
        .map_or(contact_id, |c| c.display_name());
    text::truncate(name, 20)
}

fn render_editor(model: &Model, target: &EditTarget, e: &Editor, area: Rect, buf: &mut Buffer) {
    let t = &model.theme;
    let who = name(model, target.contact_id());
    let title = match target {
        EditTarget::Draft {
            contact_id,
            draft_id,
            ..
        } if !model.drafts.is_waiting(contact_id, draft_id) => {
            format!(" ✎ Draft for {who}: no longer waiting ")
        }
        EditTarget::Draft { .. } => format!(" ✎ Editing the draft for {who} "),
        EditTarget::Compose { .. } => format!(" Writing to {who} as yourself "),
    };
    let block = Block::bordered()
        .border_type(BorderType::Thick)
        .border_style(t.border_focus)
        .title(Line::styled(title, t.title));
    let inner = block.inner(area);
    block.render(area, buf);
    editor::render(model, e, inner, buf);
}

fn render_draft(model: &Model, d: &Draft, area: Rect, buf: &mut Buffer) {
    let t = &model.theme;
    let left = format::coarse_duration(format::remaining_secs(d.expires_at_ms, model.now_ms));
    let title = format!(" ✎ DRAFT · not sent · expires in {left} ");
    let keys = [
        (KeyAction::Approve, "send"),
        (KeyAction::EditDraft, "edit"),
        (KeyAction::Discard, "discard"),
        (KeyAction::Regenerate, "new"),
    ];
    let mut hint = vec![Span::raw(" ")];
    for (action, what) in keys {
        if let Some(key) = model.keymap.keys_for(action).first() {
            hint.push(Span::styled(key.display(), t.key));
            hint.push(Span::styled(format!(" {what} "), t.dim));
        }
    }
    let block = Block::bordered()
        .border_type(BorderType::Double)
        .border_style(t.warn)
        .title(Line::styled(title, t.warn))
        .title_bottom(Line::from(hint));
    let inner = block.inner(area);
    block.render(area, buf);
    let rows = text::wrap(&d.content, usize::from(inner.width.max(1)));
    let height = usize::from(inner.height);
    let cut = rows.len() > height;
    for (row, line) in rows.iter().take(height).enumerate() {
        let line = if cut && row + 1 == height {
            text::truncate(&format!("{line} …"), usize::from(inner.width))
        } else {
            line.clone()
        };
        put_line(buf, inner, row as u16, &Line::styled(line, t.author_twin));
    }
}
