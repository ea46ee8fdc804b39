//! The learned panel: for the selected contact, what the twin learned from the
//! person's own chats (how many messages, the style's key figures in plain
//! words) and the last eval's fidelity, with the owner's figure beside the
//! twin's for each measure as bars. Shown by its key under the conversation
//! when there is room, in its place otherwise.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, BorderType, Widget};

use super::put_line;
use crate::format;
use crate::model::{LastEval, LearnedProfile, LearnedView, Measure, Model, Scale};
use crate::text;
use crate::theme::Theme;

/// Rows the conversation keeps at least when the panel sits under it.
const CONVERSATION_KEEPS: u16 = 8;
/// Rows of figures above the bars (samples, length, emoji, reply time, fidelity).
const FIGURE_ROWS: u16 = 5;
/// Columns of a measure's label.
const LABEL_COLS: usize = 11;
/// Columns of a figure after its bar.
const VALUE_COLS: usize = 6;
/// Longest bar, in cells.
const MAX_BAR: usize = 20;
/// What the panel says when nothing is learned.
pub const NOTHING_LEARNED: &str = "nothing learned yet — secondme learn CHAT.txt";

/// Where the panel goes when shown: under the conversation (taken from
/// `right`) when both fit, else in its place (`right` left empty).
pub fn place(model: &Model, right: &mut Rect) -> Option<Rect> {
    if !model.show_learned || right.height < 3 {
        return None;
    }
    let wanted = rows_wanted(model);
    if right.height >= wanted + CONVERSATION_KEEPS {
        right.height -= wanted;
        return Some(Rect {
            y: right.y + right.height,
            height: wanted,
            ..*right
        });
    }
    let whole = *right;
    right.height = 0;
    Some(whole)
}

/// Rows the panel needs with its border for what is known of the selection.
fn rows_wanted(model: &Model) -> u16 {
    let measures = shown(model)
        .and_then(|v| v.eval.as_ref())
        .map_or(0, |e| e.measures.len() as u16);
    // The header row of the bars comes with them.
    2 + FIGURE_ROWS + if measures > 0 { 1 + measures } else { 0 }
}

/// What was read for the selected contact; an older reading for another
/// contact is never shown as this one's.
fn shown(model: &Model) -> Option<&LearnedView> {
    let selected = model.selected_contact()?;
    model
        .learned
        .as_ref()
        .filter(|v| v.contact_id == selected.id)
}

/// Draws the panel into `area`.
pub fn render(model: &Model, area: Rect, buf: &mut Buffer) {
    let t = &model.theme;
    let contact = model.selected_contact();
    let title = contact.map_or_else(
        || " Learned ".to_string(),
        |c| format!(" Learned · {} ", c.display_name()),
    );
    let block = Block::bordered()
        .border_type(BorderType::Plain)
        .border_style(t.border)
        .title(Line::styled(title, t.title));
    let inner = block.inner(area);
    block.render(area, buf);
    let lines = match (contact, shown(model)) {
        (None, _) => vec![Line::styled("select a contact", t.dim)],
        (Some(_), None) => vec![Line::styled("reading…", t.dim)],
        (Some(_), Some(view)) => content(model, view, usize::from(inner.width)),
    };
    let rows = usize::from(inner.height);
    let hidden = lines.len().saturating_sub(rows);
    for (row, line) in lines.iter().take(rows).enumerate() {
        put_line(buf, inner, row as u16, line);
    }
    if hidden > 0 {
        let more = Line::styled(format!("… {} more rows", hidden + 1), t.dim);
        put_line(buf, inner, inner.height - 1, &more);
    }
}

/// The panel's lines: the profile's figures, the fidelity, the bars.
fn content(model: &Model, view: &LearnedView, width: usize) -> Vec<Line<'static>> {
    let t = &model.theme;
    let mut lines = match &view.profile {
        Some(p) => profile_lines(p, t),
        None => vec![Line::styled(NOTHING_LEARNED, t.dim)],
    };
    match &view.eval {
        Some(e) => {
            lines.push(fidelity_line(e, t));
            if !e.measures.is_empty() {
                lines.extend(bar_lines(e, model.now_ms, width, t));
            }
        }
        None if view.profile.is_some() => lines.push(Line::styled(
            "no fidelity score yet — secondme eval --contact ID",
            t.dim,
        )),
        None => {}
    }
    lines
}

fn profile_lines(p: &LearnedProfile, t: &Theme) -> Vec<Line<'static>> {
    let whose = if p.from_contact {
        Span::styled(" · this chat", t.ok)
    } else {
        Span::styled(" · overall profile", t.warn)
    };
    let samples = Line::from(vec![
        Span::styled(format!("{} messages learned", p.samples), t.text),
        whose,
    ]);
    let shape = format!(
        "length ~{:.0} chars · lowercase {} · period {}",
        p.median_chars,
        percent(p.starts_lowercase),
        percent(p.ends_with_period)
    );
    let mut marks = format!("emoji {:.1}/msg", p.emoji_per_message);
    push_tokens(&mut marks, &p.top_emoji);
    marks.push_str(&format!(" · laughs {:.1}/msg", p.laughter_per_message));
    push_tokens(&mut marks, &p.top_laughter);
    let reply = match p.reply_time_median_s {
        Some(s) => format!("replies in ~{} (median)", format::coarse_duration(s as i64)),
        None => "reply time unknown".to_string(),
    };
    vec![
        samples,
        Line::styled(shape, t.text),
        Line::styled(marks, t.text),
        Line::styled(reply, t.text),
    ]
}

fn push_tokens(out: &mut String, tokens: &[String]) {
    for token in tokens {
        out.push(' ');
        out.push_str(token);
    }
}

/// The twin's style distance beside the baseline's.
fn fidelity_line(e: &LastEval, t: &Theme) -> Line<'static> {
    let mut spans = vec![
        Span::styled("fidelity ", t.title),
        Span::styled(format!("{:.2}", e.twin_distance), t.author_twin),
    ];
    if let Some(b) = e.baseline_distance {
        spans.push(Span::styled(format!(" · baseline {b:.2}"), t.text));
    }
    spans.push(Span::styled(" · lower is closer", t.dim));
    Line::from(spans)
}

/// The bars' header (with how old the eval is) and one row per measure: the
/// owner's bar and figure, then the twin's.
fn bar_lines(e: &LastEval, now_ms: i64, width: usize, t: &Theme) -> Vec<Line<'static>> {
    let bar = bar_cells(width);
    let column = bar + VALUE_COLS;
    let when = e.at_ms.map_or_else(String::new, |at| {
        let secs = now_ms.saturating_sub(at) / 1000;
        format!("{} ago", format::coarse_duration(secs))
    });
    let replies = if e.holdout > 0 {
        format!(" · {} replies", e.holdout)
    } else {
        String::new()
    };
    let header = format!(
        "{}{}  twin{replies}",
        text::fit(&when, LABEL_COLS),
        text::fit("owner", column),
    );
    let mut lines = vec![Line::styled(header, t.dim)];
    lines.extend(e.measures.iter().map(|m| measure_line(m, bar, t)));
    lines
}

/// Cells of each bar: what the label, the figures and the gap leave, halved.
fn bar_cells(width: usize) -> usize {
    (width.saturating_sub(LABEL_COLS + 2 * VALUE_COLS + 2) / 2).clamp(3, MAX_BAR)
}

fn measure_line(m: &Measure, cells: usize, t: &Theme) -> Line<'static> {
    let (label, scale) = m.label();
    let full = match scale {
        Scale::Share => 1.0,
        Scale::Amount => m.owner.max(m.twin),
    };
    let figure = |v: f64| match scale {
        Scale::Share => percent(v),
        Scale::Amount => amount(v),
    };
    let side = |v: f64, style: Style| {
        [
            Span::styled(bar(v, full, cells), style),
            Span::styled(format!(" {:<w$}", figure(v), w = VALUE_COLS - 1), t.text),
        ]
    };
    let mut spans = vec![Span::styled(text::fit(label, LABEL_COLS), t.text)];
    spans.extend(side(m.owner, t.author_person));
    spans.push(Span::raw("  "));
    spans.extend(side(m.twin, t.author_twin));
    Line::from(spans)
}

/// `v` of `full` as `cells` cells; a figure above zero shows at least one.
pub fn bar(v: f64, full: f64, cells: usize) -> String {
    let filled = if full > 0.0 && v > 0.0 {
        ((v / full).min(1.0) * cells as f64).round().max(1.0) as usize
    } else {
        0
    };
    let filled = filled.min(cells);
    "█".repeat(filled) + &"░".repeat(cells - filled)
}

/// A share as a whole percentage.
fn percent(share: f64) -> String {
    format!("{:.0}%", share * 100.0)
}

/// A figure in at most five characters: `0.35`, `4.2`, `61`, `3600`, `12k`.
fn amount(v: f64) -> String {
    if v < 10.0 {
        format!("{v:.2}")
    } else if v < 100.0 {
        format!("{v:.1}")
    } else if v < 10_000.0 {
        format!("{v:.0}")
    } else {
        format!("{:.0}k", (v / 1000.0).min(9_999.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_fill_in_proportion() {
        assert_eq!(bar(0.85, 1.0, 10), "█████████░");
        assert_eq!(bar(0.0, 1.0, 4), "░░░░");
        assert_eq!(bar(0.01, 1.0, 4), "█░░░");
        assert_eq!(bar(30.0, 60.0, 4), "██░░");
        assert_eq!(bar(5.0, 0.0, 4), "░░░░");
        assert_eq!(bar(2.0, 1.0, 4), "████");
    }

    #[test]
    fn amounts_stay_short() {
        assert_eq!(amount(0.354), "0.35");
        assert_eq!(amount(24.0), "24.0");
        assert_eq!(amount(3600.0), "3600");
        assert_eq!(amount(123_456.0), "123k");
        assert!(amount(f64::MAX).len() <= 6);
        assert_eq!(percent(0.854), "85%");
    }
}
