//! Top bar: Redis link, WhatsApp session, worker, queue and counters, and
//! the kill-switch banner when it is on.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Widget;

use super::{gauge, put_line};
use crate::format;
use crate::model::{Connection, GatewayPhase, GatewayState, Model, WorkerState};
use crate::theme::Theme;

/// Rows the bar needs: an extra banner row while the kill switch is on, and one
/// for a setup warning.
pub fn height(model: &Model) -> u16 {
    2 + u16::from(model.kill_switch.is_some()) + u16::from(model.setup_warning.is_some())
}

/// Draws the bar into `area`.
pub fn render(model: &Model, area: Rect, buf: &mut Buffer) {
    let mut row = 0;
    if let Some(since) = model.kill_switch {
        kill_banner(model, since, area, buf);
        row = 1;
    }
    put_line(buf, area, row, &link_line(model));
    put_line(buf, area, row + 1, &counters_line(model, area.width));
    if let Some(warning) = &model.setup_warning {
        let line = Line::styled(format!("⚠ {warning}"), model.theme.warn);
        put_line(buf, area, row + 2, &line);
    }
}

fn kill_banner(model: &Model, since: i64, area: Rect, buf: &mut Buffer) {
    let style = model.theme.kill_banner;
    let row = Rect { height: 1, ..area };
    buf.set_style(row, style);
    let text = format!(
        "■ KILL SWITCH ON ■ the twin answers no one (since {}) - press {} to turn off",
        format::clock_hm(since, model.utc_offset_min),
        first_key(model, crate::keymap::KeyAction::KillSwitch)
    );
    let line = Line::styled(text, style).centered();
    Widget::render(&line, row, buf);
}

fn first_key(model: &Model, action: crate::keymap::KeyAction) -> String {
    model
        .keymap
        .keys_for(action)
        .first()
        .map_or_else(|| "?".to_string(), |k| k.display())
}

fn sep(theme: &Theme) -> Span<'static> {
    Span::styled(" │ ", theme.dim)
}

fn link_line(model: &Model) -> Line<'static> {
    let t = &model.theme;
    let mut spans = connection_spans(model);
    spans.push(sep(t));
    spans.extend(session_spans(model));
    spans.push(sep(t));
    // Sleep hours are why the twin is silent: make them stand out like a pause.
    let style = match model.stats.worker {
        WorkerState::Asleep { .. } => t.warn,
        _ => t.text,
    };
    spans.push(Span::styled(worker_text(model.stats.worker), style));
    Line::from(spans)
}

fn connection_spans(model: &Model) -> Vec<Span<'static>> {
    let t = &model.theme;
    match &model.connection {
        Connection::Connected { rtt_ms } => vec![
            Span::styled("● redis ", t.ok),
            Span::styled(format!("{rtt_ms}ms"), t.dim),
        ],
        Connection::Connecting => vec![Span::styled("○ redis connecting…", t.warn)],
        Connection::Disconnected {
            since_ms,
            retrying,
            last_error,
        } => {
            let what = if *retrying {
                " DISCONNECTED - retrying "
            } else {
                " DISCONNECTED "
            };
            let down = format::coarse_duration(format::remaining_secs(model.now_ms, *since_ms));
            let mut detail = format!(" {down}");
            if !last_error.is_empty() {
                detail.push_str(": ");
                detail.push_str(last_error);
            }
            vec![Span::styled(what, t.critical), Span::styled(detail, t.warn)]
        }
    }
}

fn session_spans(model: &Model) -> Vec<Span<'static>> {
    let t = &model.theme;
    let (now, off) = (model.now_ms, model.utc_offset_min);
    // Our own gateway's state is the WhatsApp side's word: it wins over the session key.
    if let Some(g) = &model.gateway {
        return vec![whatsapp_span(model, g)];
    }
    match &model.session {
        None if model.gateway_session.is_some() || !model.services.is_empty() => {
            gateway_spans(model)
        }
        None if model.qr.is_some() => vec![Span::styled("not logged in - scan the code", t.warn)],
        None => vec![Span::styled("not logged in", t.warn)],
        Some(s) if s.expires_at_ms <= now => vec![Span::styled(" SESSION EXPIRED ", t.critical)],
        Some(s) => vec![
            Span::styled("logged in ", t.ok),
            Span::styled(
                format!(
                    "since {}, expires in {}",
                    format::clock_hm(s.connected_at_ms, off),
                    format::coarse_duration(format::remaining_secs(s.expires_at_ms, now))
                ),
                t.text,
            ),
        ],
    }
}

/// The WhatsApp gateway's state, short (the event log has the full line).
fn whatsapp_span(model: &Model, g: &GatewayState) -> Span<'static> {
    let t = &model.theme;
    let key = first_key(model, crate::keymap::KeyAction::NewCodes);
    let text = gateway_text(g, model.now_ms, model.utc_offset_min, &key);
    let style = match g.phase {
        GatewayPhase::Connected => t.ok,
        GatewayPhase::Standby
        | GatewayPhase::Connecting
        | GatewayPhase::WaitingForScan
        | GatewayPhase::PairCode
        | GatewayPhase::Reconnecting
        | GatewayPhase::NoNetwork => t.warn,
        // The twin cannot work until someone acts.
        GatewayPhase::CodesExhausted
        | GatewayPhase::LoggedOut
        | GatewayPhase::Replaced
        | GatewayPhase::Banned
        | GatewayPhase::Stopped
        | GatewayPhase::Gone => t.critical,
    };
    Span::styled(text, style)
}

/// Longest account name shown in the bar, in columns.
const MAX_NAME_COLS: usize = 20;

/// The bar's text for the gateway's state at `now_ms`, e.g. `WA reconnecting
/// since 21:40, next try in 5s`; `key` is the key that asks for new codes.
/// Short enough for 80 columns beside the Redis link and the worker.
pub fn gateway_text(state: &GatewayState, now_ms: i64, utc_offset_min: i32, key: &str) -> String {
    let since = format::clock_hm(state.since_ms, utc_offset_min);
    let next = |t: Option<i64>| {
        t.map_or(String::new(), |t| {
            format!(
                ", next try in {}",
                format::coarse_duration(format::remaining_secs(t, now_ms))
            )
        })
    };
    let text = match state.phase {
        GatewayPhase::Standby => "standing by (another gateway is connected)".to_string(),
        GatewayPhase::Connecting => "connecting…".to_string(),
        GatewayPhase::WaitingForScan => "waiting for scan".to_string(),
        GatewayPhase::PairCode => match state.until_ms {
            Some(t) => format!(
                "pair code {} ({} left)",
                state.code_grouped(),
                format::coarse_duration(format::remaining_secs(t, now_ms))
            ),
            None => format!("pair code {}", state.code_grouped()),
        },
        GatewayPhase::CodesExhausted => format!("codes ran out: press {key}"),
        GatewayPhase::Connected => format!(
            "connected as {}",
            crate::text::truncate(state.name.as_deref().unwrap_or("?"), MAX_NAME_COLS)
        ),
        GatewayPhase::Reconnecting => {
            format!("reconnecting since {since}{}", next(state.next_try_ms))
        }
        GatewayPhase::NoNetwork => format!("no network since {since}{}", next(state.next_try_ms)),
        GatewayPhase::LoggedOut => "logged out".to_string(),
        GatewayPhase::Replaced => "replaced by another instance".to_string(),
        GatewayPhase::Banned => match state.until_ms {
            Some(t) => format!(
                "temporarily banned until {}",
                format::clock_hm(t, utc_offset_min)
            ),
            None => "temporarily banned".to_string(),
        },
        GatewayPhase::Stopped => "stopped".to_string(),
        GatewayPhase::Gone => format!("gateway gone since {since}"),
    };
    format!("WA {text}")
}

/// What another gateway says of its session and services (the original
/// gateway's `SESSION:whatsapp:info` and `events:status`), in place of SecondMe's own.
fn gateway_spans(model: &Model) -> Vec<Span<'static>> {
    let t = &model.theme;
    let mut spans = Vec::new();
    if let Some(text) = &model.gateway_session {
        spans.push(Span::styled(format!("whatsapp {text}"), t.text));
    }
    for (service, status) in &model.services {
        if !spans.is_empty() {
            spans.push(Span::styled(", ", t.dim));
        }
        spans.push(Span::styled(format!("{service}: {status}"), t.text));
    }
    spans
}

fn worker_text(worker: WorkerState) -> String {
    match worker {
        WorkerState::Off => "worker off".to_string(),
        WorkerState::Running => "worker running".to_string(),
        WorkerState::Asleep { until_minute } => format!(
            "asleep until {:02}:{:02}",
            until_minute / 60,
            until_minute % 60
        ),
        WorkerState::Draining { left } => format!("worker draining ({left})"),
        WorkerState::Stopped => "worker stopped".to_string(),
    }
}

fn counters_line(model: &Model, width: u16) -> Line<'static> {
    let waiting = model.drafts.count() > 0 || model.unanswered.total() > 0;
    if !waiting {
        return counters(model, width, Fit::Full);
    }
    // What waits for the operator is never clipped away: the figures that
    // only diagnose give way to it first.
    Fit::LADDER
        .into_iter()
        .map(|fit| counters(model, width, fit))
        .find(|line| line.width() <= usize::from(width))
        .unwrap_or_else(|| counters(model, width, Fit::NoRate))
}

/// How much of the counters line is kept, from all of it to the tightest.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Fit {
    /// Every counter, words in full.
    Full,
    /// Without the subscribers.
    NoSubs,
    /// And `unans` for `unanswered`.
    ShortWords,
    /// And without the malformed payloads.
    NoBad,
    /// And without the pending jobs.
    NoPending,
    /// And without the throughput: the tightest.
    NoRate,
}

impl Fit {
    const LADDER: [Fit; 6] = [
        Fit::Full,
        Fit::NoSubs,
        Fit::ShortWords,
        Fit::NoBad,
        Fit::NoPending,
        Fit::NoRate,
    ];
}

fn counters(model: &Model, width: u16, fit: Fit) -> Line<'static> {
    let t = &model.theme;
    let s = &model.stats;
    let cells = if width >= 120 { 20 } else { 8 };
    let mut spans = gauge::spans(s.queue_len, s.queue_cap, cells, t);
    let tput = if s.throughput_per_s.is_finite() {
        s.throughput_per_s.max(0.0)
    } else {
        0.0
    };
    if fit < Fit::NoRate {
        spans.push(sep(t));
        spans.push(Span::styled(format!("{tput:.1}/s"), t.text));
    }
    if fit < Fit::NoPending {
        spans.push(counter(t, "pending", s.pending, false));
    }
    spans.push(counter(t, "dead", s.dead_letters, true));
    if fit < Fit::NoSubs {
        spans.push(counter(t, "subs", s.subscribers, false));
    }
    if fit < Fit::NoBad {
        spans.push(counter(t, "bad", s.malformed_payloads, true));
    }
    // What waits for the operator, shown only when something does.
    let drafts = model.drafts.count() as u64;
    if drafts > 0 {
        spans.push(counter(t, "drafts", drafts, true));
    }
    let unanswered = model.unanswered.total();
    if unanswered > 0 {
        let name = if fit < Fit::ShortWords {
            "unanswered"
        } else {
            "unans"
        };
        spans.push(counter(t, name, unanswered, true));
    }
    Line::from(spans)
}

/// `  name N`; counters that mean trouble are highlighted when non-zero.
fn counter(t: &Theme, name: &str, value: u64, alarm: bool) -> Span<'static> {
    let style = if alarm && value > 0 { t.warn } else { t.text };
    Span::styled(format!("  {name} {value}"), style)
}
