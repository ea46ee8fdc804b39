//! Events in, model changes and actions out. Pure: no I/O, no clock reads.

use crate::format;
use crate::keymap::{KeyAction, KeyCode, KeyInput};
use std::collections::HashSet;

use crate::model::{
    ALL_CONTACTS, Author, ChatMessage, Connection, Contact, LIVE_ONLY_KEEP_MS, LogEntry, LogKind,
    MAX_LIVE_ONLY, Mode, Model, PAUSE_CHOICES, PAUSE_CUSTOM_INDEX, Pane, Pause, PauseReason,
    QrCode, SessionInfo, Snapshot, WorkerState,
};
use crate::sanitize;

/// Longest message body kept, in chars.
const MAX_TEXT: usize = 4000;
/// Longest name, reason or error kept, in chars.
const MAX_SHORT: usize = 120;
/// Longest filter or custom-minutes input.
const MAX_FILTER: usize = 40;
/// Most digits accepted for custom minutes (99999 min is about 69 days).
const MAX_CUSTOM_DIGITS: usize = 5;
/// Rows moved by PageUp/PageDown.
const PAGE: usize = 10;

/// Whether a pause event pauses or resumes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PauseAction {
    /// Pause the contact (or turn the kill switch on for `ALL`).
    Pause,
    /// Resume the contact (or turn the kill switch off for `ALL`).
    Resume,
}

/// Everything that can happen to the dashboard.
#[derive(Clone, Debug)]
pub enum Event {
    /// A key press.
    Key(KeyInput),
    /// Pasted text (used only while typing a filter or custom duration).
    Paste(String),
    /// Time passed.
    Tick {
        /// Current unix time in ms.
        now_ms: i64,
    },
    /// Full state re-read from Redis; replaces contacts, stats, session, kill switch and history.
    Snapshot(Snapshot),
    /// A message was received or sent.
    MessageEvent {
        /// Message id (for de-duplication).
        message_id: String,
        /// Contact the conversation belongs to.
        contact_id: String,
        /// Message body (sanitized again here).
        text: String,
        /// Sent by the twin.
        bot_sent: bool,
        /// Sent by the person themselves.
        from_person: bool,
        /// When it was sent.
        timestamp_ms: i64,
    },
    /// A contact (or `ALL`, the kill switch) was paused or resumed.
    PauseEvent {
        /// Contact id, or `ALL`.
        contact_id: String,
        /// Pause or resume.
        action: PauseAction,
        /// When the pause lifts; `None` = until resumed.
        expires_at_ms: Option<i64>,
        /// Wire reason (`manual`, `takeover`, `rate_limit`, ...).
        reason: Option<String>,
    },
    /// A new login code arrived; its clock starts at the model's `now_ms`.
    QrEvent {
        /// String to encode.
        payload: String,
        /// Validity in seconds.
        expires_in_s: u32,
    },
    /// Logged in or out.
    SessionChanged(Option<SessionInfo>),
    /// Redis link changed.
    Connection(Connection),
    /// A payload on `channel` could not be parsed.
    Malformed {
        /// Channel or key it came from.
        channel: String,
        /// Parse error.
        error: String,
    },
    /// Free-form log line from the binary.
    Log(LogEntry),
    /// A lasting problem with the Redis setup to keep on screen (`None`: fixed).
    SetupWarning(Option<String>),
    /// Worker lifecycle update (also drives the quitting overlay).
    WorkerProgress(WorkerState),
    /// Terminal resized; always redraw.
    Resize,
}

/// Effects the binary must carry out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Pause one contact for `duration_ms`.
    Pause {
        /// Contact id.
        contact_id: String,
        /// Pause length in ms.
        duration_ms: i64,
    },
    /// Lift a contact's pause.
    Resume {
        /// Contact id.
        contact_id: String,
    },
    /// Enable or disable a contact.
    SetEnabled {
        /// Contact id.
        contact_id: String,
        /// New state.
        enabled: bool,
    },
    /// Turn the global kill switch on or off.
    KillSwitch {
        /// New state.
        on: bool,
    },
    /// Drain and exit. Sent again if the user insists (e.g. a second Ctrl-C).
    Quit,
}

/// What `update` produced: effects to run and whether to redraw.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UpdateResult {
    /// Effects for the binary.
    pub actions: Vec<Action>,
    /// The screen changed and should be redrawn.
    pub dirty: bool,
}

impl UpdateResult {
    fn dirty() -> UpdateResult {
        UpdateResult {
            actions: Vec::new(),
            dirty: true,
        }
    }

    fn clean() -> UpdateResult {
        UpdateResult::default()
    }

    fn action(action: Action) -> UpdateResult {
        UpdateResult {
            actions: vec![action],
            dirty: true,
        }
    }
}

/// Applies one event to the model.
pub fn update(model: &mut Model, event: Event) -> UpdateResult {
    match event {
        Event::Key(key) => on_key(model, key),
        Event::Paste(text) => on_paste(model, &text),
        Event::Tick { now_ms } => on_tick(model, now_ms),
        Event::Snapshot(snap) => on_snapshot(model, snap),
        Event::MessageEvent {
            message_id,
            contact_id,
            text,
            bot_sent,
            from_person,
            timestamp_ms,
        } => {
            let author = match (from_person, bot_sent) {
                (true, _) => Author::Person,
                (false, true) => Author::Twin,
                (false, false) => Author::Contact,
            };
            let msg = ChatMessage {
                id: sanitize::clean(&message_id, MAX_SHORT),
                timestamp_ms,
                author,
                text: sanitize::clean_multiline(&text, MAX_TEXT),
            };
            on_message(model, &contact_id, msg)
        }
        Event::PauseEvent {
            contact_id,
            action,
            expires_at_ms,
            reason,
        } => on_pause_event(model, &contact_id, action, expires_at_ms, reason.as_deref()),
        Event::QrEvent {
            payload,
            expires_in_s,
        } => {
            // The payload is encoded, never printed, so it is kept byte-exact.
            model.qr = Some(QrCode {
                payload,
                received_at_ms: model.now_ms,
                expires_in_s,
            });
            UpdateResult::dirty()
        }
        Event::SessionChanged(session) => on_session(model, session),
        Event::Connection(conn) => on_connection(model, conn),
        Event::Malformed { channel, error } => {
            model.stats.malformed_payloads = model.stats.malformed_payloads.saturating_add(1);
            let text = format!(
                "malformed payload on {}: {}",
                sanitize::clean(&channel, 60),
                error
            );
            log(model, LogKind::Malformed, &text);
            UpdateResult::dirty()
        }
        Event::Log(mut entry) => {
            entry.text = sanitize::clean(&entry.text, MAX_TEXT);
            model.push_log(entry);
            UpdateResult::dirty()
        }
        Event::SetupWarning(text) => {
            let text = text.map(|t| sanitize::clean(&t, MAX_TEXT));
            if text == model.setup_warning {
                return UpdateResult::default();
            }
            model.setup_warning = text;
            UpdateResult::dirty()
        }
        Event::WorkerProgress(state) => on_worker(model, state),
        Event::Resize => UpdateResult::dirty(),
    }
}

fn log(model: &mut Model, kind: LogKind, text: &str) {
    let entry = LogEntry {
        at_ms: model.now_ms,
        kind,
        text: sanitize::clean(text, MAX_TEXT),
    };
    model.push_log(entry);
}

// ---------------------------------------------------------------- keys

fn on_key(model: &mut Model, key: KeyInput) -> UpdateResult {
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

fn quitting_text(worker: WorkerState) -> String {
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

fn on_paste(model: &mut Model, text: &str) -> UpdateResult {
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

// ---------------------------------------------------------------- time

fn on_tick(model: &mut Model, now_ms: i64) -> UpdateResult {
    let before = visible_clock_texts(model);
    model.now_ms = now_ms;
    let expired = drop_expired_pauses(model);
    let after = visible_clock_texts(model);
    UpdateResult {
        actions: Vec::new(),
        dirty: expired || before != after,
    }
}

fn drop_expired_pauses(model: &mut Model) -> bool {
    let now = model.now_ms;
    let mut changed = false;
    for c in &mut model.contacts {
        if c.pause.is_some() && c.active_pause(now).is_none() {
            c.pause = None;
            changed = true;
        }
    }
    changed
}

/// Every countdown the screen shows, as displayed; a tick redraws only if it changes.
pub fn visible_clock_texts(model: &Model) -> Vec<String> {
    let now = model.now_ms;
    let mut out: Vec<String> = model
        .visible_indices()
        .iter()
        .filter_map(|&i| model.contacts.get(i)?.active_pause(now)?.expires_at_ms)
        .map(|t| format::countdown(format::remaining_secs(t, now)))
        .collect();
    if let Some(qr) = model.qr.as_ref().filter(|_| model.qr_visible()) {
        out.push(format::remaining_secs(qr.expires_at_ms(), now).to_string());
    }
    if let Some(s) = &model.session {
        out.push(format::coarse_duration(format::remaining_secs(
            s.expires_at_ms,
            now,
        )));
    }
    if let Connection::Disconnected { since_ms, .. } = model.connection {
        out.push(format::coarse_duration(format::remaining_secs(
            now, since_ms,
        )));
    }
    out
}

// ---------------------------------------------------------------- data

fn on_snapshot(model: &mut Model, snap: Snapshot) -> UpdateResult {
    let mut listed = HashSet::with_capacity(snap.contacts.len());
    let mut contacts = Vec::with_capacity(snap.contacts.len());
    for c in snap.contacts.into_iter().map(clean_contact) {
        // Two raw ids can clean to one; the list shows each id once.
        if listed.insert(c.id.clone()) {
            contacts.push(c);
        }
    }
    // A contact the feed showed but no key lists (another gateway's or worker's)
    // keeps what is known of it until it ages out, instead of vanishing here.
    let horizon = model.now_ms.saturating_sub(LIVE_ONLY_KEEP_MS);
    let mut live_only: Vec<Contact> = std::mem::take(&mut model.contacts)
        .into_iter()
        .filter(|c| !listed.contains(&c.id) && c.last_activity_ms > horizon)
        .collect();
    live_only.sort_by_key(|c| std::cmp::Reverse(c.last_activity_ms));
    live_only.truncate(MAX_LIVE_ONLY);
    contacts.extend(live_only);
    model.contacts = contacts;
    model.reindex();
    model.stats = snap.stats;
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
    if let Some(p) = &mut c.pause
        && let PauseReason::Other(r) = &mut p.reason
    {
        *r = sanitize::clean(r, 40);
    }
    c
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
    match model.contact_slot(&contact_id) {
        Some(slot) => model.touch(slot, at),
        // Unknown until the next snapshot says otherwise; show it meanwhile.
        None => {
            model.add_contact(Contact {
                last_activity_ms: at,
                enabled: false,
                ..Contact::new(&contact_id)
            });
        }
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

fn on_pause_event(
    model: &mut Model,
    contact_id: &str,
    action: PauseAction,
    expires_at_ms: Option<i64>,
    reason: Option<&str>,
) -> UpdateResult {
    let contact_id = sanitize::clean(contact_id, MAX_SHORT);
    let reason = PauseReason::parse(&sanitize::clean(reason.unwrap_or(""), 40));
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
        PauseReason::Manual | PauseReason::Other(_) => LogKind::Pause,
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
        (true, PauseReason::Other(r)) if r == "state_lost" => {
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

fn on_session(model: &mut Model, session: Option<SessionInfo>) -> UpdateResult {
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

fn on_connection(model: &mut Model, conn: Connection) -> UpdateResult {
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

fn on_worker(model: &mut Model, state: WorkerState) -> UpdateResult {
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
        *progress = quitting_text(state);
    }
    UpdateResult::dirty()
}
