//! What the binary reads and hears: snapshots of Redis, the live feed (messages,
//! pauses, login codes), the link, the worker and its own log lines.

use std::collections::HashSet;

use super::{MAX_SHORT, MAX_TEXT, PauseAction, UpdateResult, keys, log};
use crate::format;
use crate::model::{
    ALL_CONTACTS, Author, ChatMessage, Connection, Contact, LIVE_ONLY_KEEP_MS, LogEntry, LogKind,
    MAX_LIVE_ONLY, Mode, Model, Pause, PauseReason, QrCode, SessionInfo, Snapshot, Stats,
    WorkerState,
};
use crate::sanitize;

/// Longest pause reason kept, in chars: it shares a list cell with a countdown.
const MAX_REASON: usize = 40;

/// A message seen live, cleaned, in its conversation.
pub(super) fn on_message_event(
    model: &mut Model,
    message_id: &str,
    contact_id: &str,
    text: &str,
    bot_sent: bool,
    from_person: bool,
    timestamp_ms: i64,
) -> UpdateResult {
    let author = match (from_person, bot_sent) {
        (true, _) => Author::Person,
        (false, true) => Author::Twin,
        (false, false) => Author::Contact,
    };
    let msg = ChatMessage {
        id: sanitize::clean(message_id, MAX_SHORT),
        timestamp_ms,
        author,
        text: sanitize::clean_multiline(text, MAX_TEXT),
    };
    on_message(model, contact_id, msg)
}

/// A new login code; its clock starts at the model's `now_ms`.
pub(super) fn on_qr(model: &mut Model, payload: String, expires_in_s: u32) -> UpdateResult {
    // The payload is encoded, never printed, so it is kept byte-exact.
    model.qr = Some(QrCode {
        payload,
        received_at_ms: model.now_ms,
        expires_in_s,
    });
    UpdateResult::dirty()
}

/// A payload that could not be parsed: counted and logged.
pub(super) fn on_malformed(model: &mut Model, channel: &str, error: &str) -> UpdateResult {
    model.stats.malformed_payloads = model.stats.malformed_payloads.saturating_add(1);
    let text = format!(
        "malformed payload on {}: {}",
        sanitize::clean(channel, 60),
        error
    );
    log(model, LogKind::Malformed, &text);
    UpdateResult::dirty()
}

/// A log line from the binary.
pub(super) fn on_log(model: &mut Model, mut entry: LogEntry) -> UpdateResult {
    entry.text = sanitize::clean(&entry.text, MAX_TEXT);
    model.push_log(entry);
    UpdateResult::dirty()
}

/// The lasting setup warning under the status bar, set or cleared.
pub(super) fn on_setup_warning(model: &mut Model, text: Option<String>) -> UpdateResult {
    let text = text.map(|t| sanitize::clean(&t, MAX_TEXT));
    if text == model.setup_warning {
        return UpdateResult::default();
    }
    model.setup_warning = text;
    UpdateResult::dirty()
}

pub(super) fn on_snapshot(model: &mut Model, snap: Snapshot) -> UpdateResult {
    let mut listed = HashSet::with_capacity(snap.contacts.len());
    let mut contacts = Vec::with_capacity(snap.contacts.len());
    for mut c in snap.contacts.into_iter().map(clean_contact) {
        // Two raw ids can clean to one; the list shows each id once.
        if listed.insert(c.id.clone()) {
            c.seen_live_ms = model.contact(&c.id).map_or(0, |old| old.seen_live_ms);
            contacts.push(c);
        }
    }
    // A contact the feed showed but no key lists (another gateway's or worker's)
    // keeps what is known of it until it ages out, instead of vanishing here. Its
    // age runs from when it was seen here: a sender's clock (an offline phone, a
    // gateway writing seconds or microseconds) can claim any time, past or future.
    let horizon = model.now_ms.saturating_sub(LIVE_ONLY_KEEP_MS);
    let now = model.now_ms;
    // A claim from the future says nothing: only when it was seen here counts.
    let kept_since = |c: &Contact| {
        let claimed = if c.last_activity_ms > now {
            0
        } else {
            c.last_activity_ms
        };
        c.seen_live_ms.max(claimed)
    };
    let mut live_only: Vec<Contact> = std::mem::take(&mut model.contacts)
        .into_iter()
        .filter(|c| !listed.contains(&c.id) && kept_since(c) > horizon)
        .collect();
    live_only.sort_by_key(|c| std::cmp::Reverse(c.last_activity_ms));
    live_only.truncate(MAX_LIVE_ONLY);
    contacts.extend(live_only);
    model.contacts = contacts;
    model.reindex();
    // The worker's state and the malformed-payload count live in this process, not
    // in Redis: a read knows neither, so the model keeps its own across snapshots.
    model.stats = Stats {
        worker: model.stats.worker,
        malformed_payloads: model.stats.malformed_payloads,
        ..snap.stats
    };
    model.kill_switch = snap.kill_switch;
    // History merges into what the live feed already showed: a snapshot may carry
    // the history of only some contacts, and it must not erase messages seen live.
    for (id, conv) in snap.conversations {
        let id = sanitize::clean(&id, MAX_SHORT);
        let target = model.conversations.entry(id).or_default();
        for mut m in conv.messages {
            m.text = sanitize::clean_multiline(&m.text, MAX_TEXT);
            target.push(m);
        }
    }
    on_session(model, snap.session);
    keep_selection_valid(model);
    UpdateResult::dirty()
}

fn clean_contact(mut c: Contact) -> Contact {
    // Cleaned as the live feed cleans it, so both name the same contact.
    c.id = sanitize::clean(&c.id, MAX_SHORT);
    c.name = c.name.map(|n| sanitize::clean(&n, MAX_SHORT));
    if let Some(p) = &mut c.pause {
        clean_reason(&mut p.reason);
    }
    c
}

/// Another program's free-text reason, made safe and short for one list cell.
fn clean_reason(reason: &mut PauseReason) {
    if let PauseReason::Other(r) = reason {
        *r = sanitize::clean(r, MAX_REASON);
    }
}

fn keep_selection_valid(model: &mut Model) {
    let exists = model
        .selected
        .as_ref()
        .is_some_and(|id| model.contact(id).is_some());
    if !exists {
        model.selected = model.visible_window(0, 1).first().map(|c| c.id.clone());
        model.conversation_scroll = 0;
    }
}

fn on_message(model: &mut Model, contact_id: &str, msg: ChatMessage) -> UpdateResult {
    let contact_id = sanitize::clean(contact_id, MAX_SHORT);
    let at = msg.timestamp_ms;
    let slot = match model.contact_slot(&contact_id) {
        Some(slot) => {
            model.touch(slot, at);
            slot
        }
        // Unknown until the next snapshot says otherwise; show it meanwhile.
        None => model.add_contact(Contact {
            last_activity_ms: at,
            enabled: false,
            ..Contact::new(&contact_id)
        }),
    };
    if let Some(c) = model.contacts.get_mut(slot) {
        c.seen_live_ms = model.now_ms;
    }
    let is_selected_conv = model.selected_contact().is_some_and(|c| c.id == contact_id);
    let added = model.conversations.entry(contact_id).or_default().push(msg);
    // Keep the reader's place when scrolled back in the open conversation.
    if added && is_selected_conv && model.conversation_scroll > 0 {
        model.conversation_scroll += 1;
    }
    keep_selection_valid(model);
    UpdateResult {
        actions: Vec::new(),
        dirty: added,
    }
}

pub(super) fn on_pause_event(
    model: &mut Model,
    contact_id: &str,
    action: PauseAction,
    expires_at_ms: Option<i64>,
    mut reason: PauseReason,
) -> UpdateResult {
    let contact_id = sanitize::clean(contact_id, MAX_SHORT);
    clean_reason(&mut reason);
    if contact_id == ALL_CONTACTS {
        set_kill_switch(model, action == PauseAction::Pause, &reason);
        return UpdateResult::dirty();
    }
    let now = model.now_ms;
    let name = model
        .contact(&contact_id)
        .map_or(contact_id.clone(), |c| c.display_name().to_string());
    let (kind, text) = match action {
        PauseAction::Pause => {
            let until = expires_at_ms.map_or("until resumed".to_string(), |t| {
                format!(
                    "for {}",
                    format::coarse_duration(format::remaining_secs(t, now))
                )
            });
            (
                pause_log_kind(&reason),
                format!("{name} paused {until} ({})", reason.label()),
            )
        }
        PauseAction::Resume => (LogKind::Resume, format!("{name} resumed")),
    };
    let pause = (action == PauseAction::Pause).then_some(Pause {
        expires_at_ms,
        reason,
    });
    match model.contact_slot(&contact_id) {
        Some(slot) => model.contacts[slot].pause = pause,
        None => {
            model.add_contact(Contact {
                pause,
                ..Contact::new(&contact_id)
            });
        }
    }
    log(model, kind, &text);
    keep_selection_valid(model);
    UpdateResult::dirty()
}

fn pause_log_kind(reason: &PauseReason) -> LogKind {
    match reason {
        PauseReason::Takeover => LogKind::Takeover,
        PauseReason::RateLimit => LogKind::RateLimit,
        PauseReason::Manual
        | PauseReason::StateLost
        | PauseReason::Refused
        | PauseReason::Unknown
        | PauseReason::Other(_) => LogKind::Pause,
    }
}

fn set_kill_switch(model: &mut Model, on: bool, reason: &PauseReason) {
    if on == model.kill_switch.is_some() {
        return;
    }
    model.kill_switch = on.then_some(model.now_ms);
    let text = match (on, reason) {
        (false, _) => "kill switch OFF".to_string(),
        // The worker's safe default after a Redis restart without persistence: say why,
        // or the operator sees the twin stop for no visible reason.
        (true, PauseReason::StateLost) => {
            "kill switch ON: Redis lost SecondMe's state (restart without persistence); \
             re-enable contacts, then press K to turn it off"
                .to_string()
        }
        (true, PauseReason::Manual) => "kill switch ON: the twin is paused for everyone".into(),
        (true, other) => format!(
            "kill switch ON ({}): the twin is paused for everyone",
            other.label()
        ),
    };
    log(model, LogKind::KillSwitch, &text);
}

pub(super) fn on_gateway_session(model: &mut Model, text: Option<String>) -> UpdateResult {
    let text = text.map(|t| sanitize::clean(&t, MAX_SHORT));
    if text == model.gateway_session {
        return UpdateResult::clean();
    }
    model.gateway_session = text;
    UpdateResult::dirty()
}

pub(super) fn on_service_status(model: &mut Model, service: &str, status: &str) -> UpdateResult {
    let service = sanitize::clean(service, 24);
    let status = sanitize::clean(status, MAX_SHORT);
    log(
        model,
        LogKind::Connection,
        &format!("service {service}: {status}"),
    );
    model.services.retain(|(s, _)| *s != service);
    model.services.insert(0, (service, status));
    model.services.truncate(crate::model::MAX_SERVICES);
    UpdateResult::dirty()
}

pub(super) fn on_session(model: &mut Model, session: Option<SessionInfo>) -> UpdateResult {
    if session == model.session {
        return UpdateResult::clean();
    }
    match (&model.session, &session) {
        (None, Some(_)) => log(model, LogKind::Connection, "WhatsApp logged in"),
        (Some(_), None) => log(model, LogKind::Connection, "WhatsApp logged out"),
        _ => {}
    }
    if session.is_some() {
        // A scanned code is spent; the overlay must not come back with it.
        model.qr = None;
    }
    model.session = session;
    UpdateResult::dirty()
}

pub(super) fn on_connection(model: &mut Model, conn: Connection) -> UpdateResult {
    let conn = match conn {
        Connection::Disconnected {
            since_ms,
            retrying,
            last_error,
        } => Connection::Disconnected {
            // Every failed retry reports again; the outage began at the first report.
            since_ms: match model.connection {
                Connection::Disconnected {
                    since_ms: first, ..
                } => first.min(since_ms),
                _ => since_ms,
            },
            retrying,
            last_error: sanitize::clean(&last_error, MAX_SHORT),
        },
        other => other,
    };
    if conn == model.connection {
        return UpdateResult::clean();
    }
    let was_up = matches!(model.connection, Connection::Connected { .. });
    // Each retry updates the header; the log gets a line only when the error changes,
    // so an outage does not push every other event out of the log.
    let previous_error = match &model.connection {
        Connection::Disconnected { last_error, .. } => Some(last_error.as_str()),
        _ => None,
    };
    match &conn {
        Connection::Disconnected { last_error, .. }
            if previous_error != Some(last_error.as_str()) =>
        {
            log(
                model,
                LogKind::Connection,
                &format!("redis disconnected: {last_error}"),
            )
        }
        Connection::Connected { .. } if !was_up => {
            log(model, LogKind::Connection, "redis connected")
        }
        _ => {}
    }
    model.connection = conn;
    UpdateResult::dirty()
}

pub(super) fn on_worker(model: &mut Model, state: WorkerState) -> UpdateResult {
    // Only Running and Asleep say anything about sleep hours; Off (a disconnection)
    // and the stop states leave the last word standing.
    match state {
        WorkerState::Asleep { until_minute } if model.asleep_until != Some(until_minute) => {
            model.asleep_until = Some(until_minute);
            log(
                model,
                LogKind::Info,
                &format!(
                    "sleep hours: no automated replies until {:02}:{:02}",
                    until_minute / 60,
                    until_minute % 60
                ),
            )
        }
        WorkerState::Running if model.asleep_until.is_some() => {
            model.asleep_until = None;
            log(
                model,
                LogKind::Info,
                "sleep hours over: the twin answers again",
            )
        }
        _ => {}
    }
    model.stats.worker = state;
    if let Mode::Quitting { progress } = &mut model.mode {
        *progress = keys::quitting_text(state);
    }
    UpdateResult::dirty()
}
