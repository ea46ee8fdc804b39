//! Conversation pane: the selected contact's messages, newest at the bottom.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::Widget;

use super::{pane_block, put_line};
use crate::format;
use crate::model::{Author, ChatMessage, Contact, Model, Pane};
use crate::text;
use crate::theme::Theme;

/// Columns used by the `HH:MM ` prefix; continuation lines indent to it.
const TIME_COLS: usize = 6;
/// Longest author label shown.
const LABEL_COLS: usize = 16;

/// Draws the conversation pane into `area`.
pub fn render(model: &Model, area: Rect, buf: &mut Buffer) {
    let contact = model.selected_contact();
    let block = pane_block(
        title(contact),
        model.focus == Pane::Conversation,
        &model.theme,
    );
    let messages = contact
        .and_then(|c| model.conversations.get(&c.id))
        .map(|conv| &conv.messages);
    let len = messages.map_or(0, |m| m.len());
    let end = len.saturating_sub(model.conversation_scroll);
    let block = if end < len {
        let hidden = len - end;
        block.title_bottom(Line::styled(
            format!(" ↓ {hidden} newer "),
            model.theme.warn,
        ))
    } else {
        block
    };
    let inner = block.inner(area);
    block.render(area, buf);
    let Some(contact) = contact else {
        put_line(
            buf,
            inner,
            0,
            &Line::styled("select a contact", model.theme.dim),
        );
        return;
    };
    let Some(messages) = messages.filter(|m| !m.is_empty()) else {
        put_line(
            buf,
            inner,
            0,
            &Line::styled("no messages yet", model.theme.dim),
        );
        return;
    };
    // Lay out from the newest message back only until the pane is full: a
    // conversation holds up to 200 messages and most never reach the screen.
    let rows = usize::from(inner.height);
    let mut blocks = Vec::new();
    let mut count = 0;
    for msg in messages.range(..end).rev() {
        if count >= rows {
            break;
        }
        let lines = message_lines(model, contact, msg, usize::from(inner.width));
        count += lines.len();
        blocks.push(lines);
    }
    // Show the newest lines; if everything fits, it starts at the top.
    let skip = count.saturating_sub(rows);
    for (row, line) in blocks.iter().rev().flatten().skip(skip).enumerate() {
        put_line(buf, inner, row as u16, line);
    }
}

fn title(contact: Option<&Contact>) -> String {
    match contact {
        None => "Conversation".to_string(),
        Some(c) if c.display_name() == c.id => format!("Conversation · {}", c.id),
        Some(c) => format!("Conversation · {} · {}", c.display_name(), c.id),
    }
}

/// Label and style per author; labels differ so colour is never needed.
pub fn author_label(contact: &Contact, author: Author, t: &Theme) -> (String, Style) {
    match author {
        Author::Contact => (
            text::truncate(contact.display_name(), LABEL_COLS),
            t.author_contact,
        ),
        Author::Twin => ("twin".to_string(), t.author_twin),
        Author::Person => ("you".to_string(), t.author_person),
    }
}

/// `HH:MM label: text` wrapped, continuation lines indented under the text.
fn message_lines(
    model: &Model,
    contact: &Contact,
    msg: &ChatMessage,
    width: usize,
) -> Vec<Line<'static>> {
    let t = &model.theme;
    let (label, label_style) = author_label(contact, msg.author, t);
    let body_cols = width.saturating_sub(TIME_COLS).max(1);
    let head = format!("{label}: ");
    let wrapped = text::wrap(&format!("{head}{}", msg.text), body_cols);
    let time = format::clock_hm(msg.timestamp_ms, model.utc_offset_min);
    wrapped
        .into_iter()
        .enumerate()
        .map(|(i, chunk)| {
            if i == 0 {
                first_line(time.clone(), &head, chunk, label_style, t)
            } else {
                Line::from(vec![Span::raw(" ".repeat(TIME_COLS)), Span::raw(chunk)])
            }
        })
        .collect()
}

fn first_line(
    time: String,
    head: &str,
    chunk: String,
    label_style: Style,
    t: &Theme,
) -> Line<'static> {
    let time = Span::styled(format!("{time} "), t.dim);
    // Wrapping drops the space after the colon when the body moved to the next line.
    let head_trim = head.trim_end();
    match chunk.strip_prefix(head_trim) {
        Some(rest) => Line::from(vec![
            time,
            Span::styled(head_trim.to_string(), label_style),
            Span::raw(rest.to_string()),
        ]),
        None => Line::from(vec![time, Span::styled(chunk, label_style)]),
    }
}
