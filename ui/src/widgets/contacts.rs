//! Contacts pane: two rows per contact (name, an envelope with the count of
//! messages the twin left unanswered, a pen when a draft waits, and rate;
//! then state and reply mode).

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::Widget;

use super::{pane_block, put_line};
use crate::format;
use crate::model::{Contact, Mode, Model, Pane, RATE_LIMIT, ReplyMode};
use crate::text;
use crate::theme::Theme;

const ROWS_PER_CONTACT: u16 = 2;

/// Draws the contacts pane into `area`.
pub fn render(model: &Model, area: Rect, buf: &mut Buffer) {
    let shown = model.visible_len();
    let block = pane_block(
        title(model, shown),
        model.focus == Pane::Contacts,
        &model.theme,
    );
    let inner = block.inner(area);
    block.render(area, buf);
    if shown == 0 {
        put_line(
            buf,
            inner,
            0,
            &Line::styled(empty_text(model), model.theme.dim),
        );
        return;
    }
    let selected = model.selected_index().unwrap_or(0);
    let capacity = usize::from((inner.height / ROWS_PER_CONTACT).max(1));
    // Scroll just enough to keep the selection on screen.
    let offset = (selected + 1).saturating_sub(capacity);
    // Only the rows on screen are looked at, however many contacts there are.
    let window = model.visible_window(offset, capacity);
    for (slot, contact) in window.into_iter().enumerate() {
        let row = slot as u16 * ROWS_PER_CONTACT;
        draw_contact(model, contact, offset + slot == selected, inner, row, buf);
    }
}

fn title(model: &Model, shown: usize) -> String {
    let total = model.contacts.len();
    let editing = model.mode == Mode::Filter;
    if model.filter.is_empty() && !editing {
        return format!("Contacts {total}");
    }
    let cursor = if editing { "▏" } else { "" };
    format!("Contacts {shown}/{total} /{}{cursor}", model.filter)
}

fn empty_text(model: &Model) -> String {
    if model.filter.is_empty() {
        "no contacts yet".to_string()
    } else {
        format!("no contact matches \"{}\"", model.filter)
    }
}

fn draw_contact(
    model: &Model,
    c: &Contact,
    selected: bool,
    inner: Rect,
    row: u16,
    buf: &mut Buffer,
) {
    let t = &model.theme;
    let width = usize::from(inner.width);
    let rate = format!("{}/{RATE_LIMIT}", c.rate_count);
    let marker = if c.enabled { "● " } else { "○ " };
    let pen = if model.drafts.for_contact(&c.id).is_some() {
        "✎ "
    } else {
        ""
    };
    let unanswered = envelope(model.unanswered.for_contact(&c.id));
    let name_cols =
        width.saturating_sub(text::width(&rate) + text::width(&unanswered) + text::width(pen) + 3);
    let name = text::fit(c.display_name(), name_cols);
    let first = Line::from(vec![
        Span::styled(marker, if c.enabled { t.ok } else { t.dim }),
        Span::styled(name, t.title),
        Span::raw(" "),
        Span::styled(unanswered, t.warn),
        Span::styled(pen, t.warn),
        Span::styled(rate, rate_style(c.rate_count, t)),
    ]);
    let mut second = vec![Span::raw("  ")];
    second.extend(state_spans(model, c));
    if selected {
        let rows = Rect {
            y: inner.y + row,
            height: ROWS_PER_CONTACT.min(inner.height - row),
            ..inner
        };
        buf.set_style(rows, t.selected);
    }
    put_line(buf, inner, row, &patch(first, selected, t));
    put_line(buf, inner, row + 1, &patch(Line::from(second), selected, t));
}

/// `✉3 ` for 3 messages the twin left unanswered (`✉99+ ` past 99); empty for none.
fn envelope(count: u64) -> String {
    match count {
        0 => String::new(),
        1..=99 => format!("✉{count} "),
        _ => "✉99+ ".to_string(),
    }
}

/// Re-applies the selection style so span styles do not cancel it out.
fn patch(line: Line<'static>, selected: bool, t: &Theme) -> Line<'static> {
    if selected {
        line.patch_style(t.selected)
    } else {
        line
    }
}

fn rate_style(count: u32, t: &Theme) -> Style {
    if count >= RATE_LIMIT {
        t.critical
    } else if count * 10 >= RATE_LIMIT * 8 {
        t.warn
    } else {
        t.dim
    }
}

/// State words: `kill switch`, `paused 14:59 manual`, `disabled`, then
/// `draft waiting` or `draft mode`; `active` when none applies.
pub fn state_spans(model: &Model, c: &Contact) -> Vec<Span<'static>> {
    let t = &model.theme;
    let mut spans = Vec::new();
    if model.kill_switch.is_some() {
        spans.push(Span::styled("kill switch", t.critical));
    }
    if let Some(p) = c.active_pause(model.now_ms) {
        let when = p.expires_at_ms.map_or_else(
            || "until resumed".to_string(),
            |at| format::countdown(format::remaining_secs(at, model.now_ms)),
        );
        push_sep(&mut spans, t);
        spans.push(Span::styled(
            format!("paused {when} {}", p.reason.label()),
            t.paused,
        ));
    }
    if !c.enabled {
        push_sep(&mut spans, t);
        spans.push(Span::styled("disabled", t.dim));
    }
    if model.drafts.for_contact(&c.id).is_some() {
        push_sep(&mut spans, t);
        spans.push(Span::styled("draft waiting", t.warn));
    } else if model.drafts.mode_of(&c.id) == ReplyMode::Draft {
        push_sep(&mut spans, t);
        spans.push(Span::styled("draft mode", t.text));
    }
    if spans.is_empty() {
        spans.push(Span::styled("active", t.ok));
    }
    spans
}

fn push_sep(spans: &mut Vec<Span<'static>>, t: &Theme) {
    if !spans.is_empty() {
        spans.push(Span::styled(" · ", t.dim));
    }
}
