//! Drawing the language model's figures: the breaker banner under the status
//! bar, and a panel that sits beside the event log on a large terminal or, in
//! fewer details, in a few rows under the conversation on a small one.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, BorderType, Sparkline, Widget};

use super::{BreakerOpen, LlmFigures, ModelFigures, buckets, compact, dollars, latency, total};
use crate::format;
use crate::model::Model;
use crate::theme::Theme;
use crate::widgets::put_line;

/// Narrowest terminal where the panel sits beside the event log.
pub const WIDE_MIN_WIDTH: u16 = 140;
/// Lowest event row where the panel sits beside the event log.
const WIDE_MIN_EVENTS: u16 = 8;
/// Most model rows of the compact form.
const COMPACT_MODELS: usize = 2;
/// Rows the conversation and contacts keep at least beside the compact form.
const MAIN_KEEPS: u16 = 7;
/// Width of the label column before each sparkline of the wide panel.
const LABEL_COLS: u16 = 16;

/// Rows the breaker banner needs under the status bar.
pub fn banner_height(model: &Model) -> u16 {
    u16::from(breaker(model).is_some())
}

fn breaker(model: &Model) -> Option<&BreakerOpen> {
    model.llm.as_ref()?.breaker.as_ref()
}

/// Draws the breaker banner into the row `area`, if the breaker is open.
pub fn render_banner(model: &Model, area: Rect, buf: &mut Buffer) {
    let Some(b) = breaker(model) else {
        return;
    };
    let style = model.theme.critical;
    buf.set_style(Rect { height: 1, ..area }, style);
    let (when, short_when) = match b.until_ms {
        Some(at) if at > model.now_ms => {
            let clock = format::clock_hm(at, model.utc_offset_min);
            let left = format::coarse_duration(format::remaining_secs(at, model.now_ms));
            (
                format!("retry at {clock} (in {left})"),
                format!("retry {clock} ({left})"),
            )
        }
        Some(_) => ("retrying now".to_string(), "retrying".to_string()),
        None => ("until it is fixed".to_string(), "until fixed".to_string()),
    };
    let long = format!(
        "■ LANGUAGE MODEL FAILING ■ the twin is silent for it, {when}: {}",
        b.reason
    );
    // On a narrow terminal the reason keeps more room (the event log has it whole).
    let text = if crate::text::width(&long) <= usize::from(area.width) {
        long
    } else {
        format!("■ LLM OFF ■ twin silent, {short_when}: {}", b.reason)
    };
    put_line(buf, area, 0, &Line::styled(text, style));
}

/// Where the panel goes: beside the event log (taken from `events`) on a large
/// terminal, else under the contacts and conversation (taken from `left` and
/// `right`). `None` when there are no figures or no room.
pub fn place(model: &Model, left: &mut Rect, right: &mut Rect, events: &mut Rect) -> Option<Rect> {
    let figures = model.llm.as_ref()?;
    if events.width >= WIDE_MIN_WIDTH && events.height >= WIDE_MIN_EVENTS {
        let w = (events.width * 2 / 5).clamp(LABEL_COLS + 62, 100);
        events.width -= w;
        return Some(Rect {
            x: events.x + events.width,
            width: w,
            ..*events
        });
    }
    let wanted = 1 + figures.models.len().min(COMPACT_MODELS) as u16;
    let rows = if left.height >= wanted + MAIN_KEEPS {
        wanted
    } else if left.height > MAIN_KEEPS {
        1
    } else {
        return None;
    };
    left.height -= rows;
    right.height -= rows;
    Some(Rect {
        x: left.x,
        y: left.y + left.height,
        width: left.width + right.width,
        height: rows,
    })
}

/// Draws the panel into `area`: bordered with every figure when it is a
/// large area, else a header row with the sparklines and a row per model.
pub fn render(model: &Model, area: Rect, buf: &mut Buffer) {
    let Some(f) = model.llm.as_ref() else {
        return;
    };
    if area.height >= WIDE_MIN_EVENTS && area.width >= LABEL_COLS + 62 {
        render_wide(model, f, area, buf);
    } else {
        render_compact(model, f, area, buf);
    }
}

fn render_compact(model: &Model, f: &LlmFigures, area: Rect, buf: &mut Buffer) {
    let t = &model.theme;
    let shown = f
        .models
        .len()
        .min(usize::from(area.height.saturating_sub(1)));
    let more = f.models.len() - shown;
    let title = if more > 0 {
        format!("◆ model (+{more}) ")
    } else {
        "◆ model ".to_string()
    };
    let replies = format!(" {}/h ", compact(total(&f.replies_per_min)));
    let tokens = format!(" {} tok/h", compact(total(&f.tokens_per_min)));
    let fixed = crate::text::width(&title) + "replies ".len() + replies.len() + tokens.len();
    let cells = (usize::from(area.width).saturating_sub(fixed) / 2).min(60);
    let mut x = put(&title, t.title, area.x, area, buf);
    x = put("replies ", t.dim, x, area, buf);
    x = spark(&f.replies_per_min, cells, x, area, t, buf);
    x = put(&replies, t.text, x, area, buf);
    x = spark(&f.tokens_per_min, cells, x, area, t, buf);
    put(&tokens, t.text, x, area, buf);
    for (i, m) in f.models.iter().take(shown).enumerate() {
        put_line(buf, area, 1 + i as u16, &compact_line(m, area.width, t));
    }
}

/// Writes `text` at column `x` of `area`'s first row; returns the column after it.
fn put(text: &str, style: ratatui::style::Style, x: u16, area: Rect, buf: &mut Buffer) -> u16 {
    let room = usize::from(area.right().saturating_sub(x));
    buf.set_stringn(x, area.y, text, room, style).0
}

/// A one-row sparkline of `series` in `cells` columns at `x`; returns the
/// column after it.
fn spark(series: &[u64], cells: usize, x: u16, area: Rect, t: &Theme, buf: &mut Buffer) -> u16 {
    let width = (cells as u16).min(area.right().saturating_sub(x));
    let rect = Rect {
        x,
        y: area.y,
        width,
        height: 1,
    };
    sparkline(series, rect, t, buf);
    x + width
}

/// `series` as a sparkline filling `rect`; a quiet minute shows as a dot.
fn sparkline(series: &[u64], rect: Rect, t: &Theme, buf: &mut Buffer) {
    let data: Vec<Option<u64>> = buckets(series, usize::from(rect.width))
        .into_iter()
        .map(|v| (v > 0).then_some(v))
        .collect();
    Sparkline::default()
        .data(data)
        .style(t.ok)
        .absent_value_symbol("·")
        .absent_value_style(t.dim)
        .render(rect, buf);
}

fn compact_line(m: &ModelFigures, width: u16, t: &Theme) -> Line<'static> {
    let mut figures = format!(
        " {} calls {} err {}+{} tok",
        compact(m.calls),
        compact(m.errors),
        compact(m.prompt_tokens),
        compact(m.completion_tokens)
    );
    if let Some(c) = m.cost_micro_usd {
        figures.push_str(&format!(" {}", dollars(c)));
    }
    figures.push_str(&format!(
        " p50 {} p95 {}",
        latency(m.p50_ms),
        latency(m.p95_ms)
    ));
    let name_cols = usize::from(width)
        .saturating_sub(crate::text::width(&figures))
        .clamp(8, 32);
    let err_style = if m.errors > 0 { t.warn } else { t.text };
    Line::from(vec![
        Span::styled(crate::text::fit(&m.name, name_cols), t.key),
        Span::styled(figures, err_style),
    ])
}

fn render_wide(model: &Model, f: &LlmFigures, area: Rect, buf: &mut Buffer) {
    let t = &model.theme;
    let block = Block::bordered()
        .border_type(BorderType::Plain)
        .border_style(t.border)
        .title(Line::styled(" Language model ", t.title));
    let inner = block.inner(area);
    block.render(area, buf);
    // Two sparklines of at least a row each; the rest for the header and models.
    let model_rows = f
        .models
        .len()
        .min(usize::from(inner.height.saturating_sub(3)));
    put_line(
        buf,
        inner,
        0,
        &Line::styled(table_row(&HEADER, inner.width), t.dim),
    );
    for (i, m) in f.models.iter().take(model_rows).enumerate() {
        let cells = [
            m.name.clone(),
            compact(m.calls),
            compact(m.errors),
            compact(m.prompt_tokens),
            compact(m.completion_tokens),
            m.cost_micro_usd.map_or_else(|| "-".into(), dollars),
            latency(m.p50_ms),
            latency(m.p95_ms),
        ];
        let style = if m.errors > 0 { t.warn } else { t.text };
        put_line(
            buf,
            inner,
            1 + i as u16,
            &Line::styled(table_row(&cells, inner.width), style),
        );
    }
    let top = 1 + model_rows as u16;
    let left = inner.height.saturating_sub(top);
    let spark_h = (left / 2).clamp(1, 3);
    let series = [
        ("replies", &f.replies_per_min),
        ("tokens", &f.tokens_per_min),
    ];
    for (i, (what, data)) in series.into_iter().enumerate() {
        let y = inner.y + top + i as u16 * spark_h;
        if y >= inner.bottom() {
            break;
        }
        let row = Rect {
            y,
            height: spark_h.min(inner.bottom() - y),
            ..inner
        };
        let label = format!("{what} {}/h", compact(total(data)));
        put_line(buf, row, row.height - 1, &Line::styled(label, t.text));
        let rect = Rect {
            x: row.x + LABEL_COLS,
            width: row.width.saturating_sub(LABEL_COLS).min(60),
            ..row
        };
        sparkline(data, rect, t, buf);
    }
}

/// Column titles of the wide panel's table.
const HEADER: [&str; 8] = [
    "model", "calls", "errors", "prompt", "compl", "cost", "p50", "p95",
];

/// A table row: the name in what the figures leave, each figure right-aligned.
fn table_row<S: AsRef<str>>(cells: &[S; 8], width: u16) -> String {
    const COLS: [usize; 7] = [6, 7, 7, 7, 9, 7, 7];
    let figures: usize = COLS.iter().sum();
    let name_cols = usize::from(width).saturating_sub(figures).max(6);
    let mut row = crate::text::fit(cells[0].as_ref(), name_cols);
    for (cell, cols) in cells[1..].iter().zip(COLS) {
        let text = crate::text::truncate(cell.as_ref(), cols - 1);
        row.push_str(&format!("{text:>cols$}"));
    }
    row
}
