//! Events in, model changes and actions out. Pure: no I/O, no clock reads.
//!
//! Split by what the event is about: [`keys`] (key presses and pastes, the
//! operator's side), [`time`] (ticks and countdowns), [`data`] (what the
//! binary reads from Redis, the feed and the worker), [`learned`] (what the
//! twin learned for the selected contact), [`drafts`] (draft mode, its
//! editor and the preview) and [`unanswered`] (the messages the twin chose
//! not to answer).

mod data;
mod drafts;
mod gateway;
mod keys;
mod learned;
mod time;
mod unanswered;

pub use time::visible_clock_texts;

use crate::keymap::KeyInput;
use crate::model::Connection;
use crate::model::{LogEntry, LogKind, Model, PauseReason, SessionInfo, Snapshot, WorkerState};
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

/// Whether a pause event pauses or resumes; mirrors the engine's `schema::PauseAction`.
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
    /// Pasted text (used while typing a filter, a custom duration or in the editor).
    Paste(String),
    /// Time passed.
    Tick {
        /// Current unix time in ms.
        now_ms: i64,
    },
    /// Full state re-read from Redis; replaces contacts, stats, session, kill switch and history.
    /// The worker state and the malformed-payload count stay: only this process knows them.
    Snapshot(Snapshot),
    /// A message was received or sent (the engine's `schema::MessageEvent`).
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
    /// A contact (or `ALL`, the kill switch) was paused or resumed (the engine's
    /// `schema::PauseEvent`).
    PauseEvent {
        /// Contact id, or `ALL`.
        contact_id: String,
        /// Pause or resume.
        action: PauseAction,
        /// When the pause lifts; `None` = until resumed.
        expires_at_ms: Option<i64>,
        /// Why; `Manual` when the payload gave none (the seed's gives none).
        reason: PauseReason,
    },
    /// A new login code arrived (the engine's `schema::QrEvent`); its clock
    /// starts at the model's `now_ms`.
    QrEvent {
        /// String to encode.
        payload: String,
        /// Validity in seconds.
        expires_in_s: u32,
    },
    /// Logged in or out.
    SessionChanged(Option<SessionInfo>),
    /// The language model's figures re-read (`None`: no model wrote any).
    Llm(Option<crate::llm::LlmFigures>),
    /// Another gateway's session, described (`None`: it wrote none).
    GatewaySession(Option<String>),
    /// What the twin learned for a contact (the selected one when it was read).
    Learned(crate::model::LearnedView),
    /// A service's status from `events:status`.
    ServiceStatus {
        /// Which service (e.g. `whatsapp`).
        service: String,
        /// Its status, with the reason when one was given.
        status: String,
    },
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
    /// The WhatsApp gateway's state (`GATEWAY:{userId}`) changed; `None`: its
    /// key is gone (expired or deleted).
    GatewayState(Option<crate::model::GatewayState>),
    /// Draft mode re-read: the waiting drafts and the modes; replaces what the
    /// model holds.
    Drafts(crate::model::DraftsRead),
    /// A draft changed (`events:drafts`).
    DraftEvent {
        /// What happened to it.
        change: crate::model::DraftChange,
        /// The draft.
        draft_id: String,
        /// The contact it answers.
        contact_id: String,
    },
    /// The messages the twin chose not to answer re-read (`SECONDME:unanswered`):
    /// each contact's count; replaces what the model holds.
    Unanswered(std::collections::HashMap<String, u64>),
    /// What the twin would answer `contact_id` (the preview the operator asked for).
    Preview {
        /// The contact asked about.
        contact_id: String,
        /// The reply, or why there is none.
        reply: Result<String, String>,
    },
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
    /// Ask the WhatsApp gateway for a new round of login codes
    /// (`GATEWAYREQ:{userId}` = `new_codes`), after they ran out.
    RequestNewCodes,
    /// Send the draft `draft_id`: as written, or `text` when it was edited.
    /// The operator's decision: sent even while the contact is paused.
    Approve {
        /// The contact it answers.
        contact_id: String,
        /// The draft.
        draft_id: String,
        /// The edited text; `None`: as the twin wrote it.
        text: Option<String>,
    },
    /// Drop the draft `draft_id` unsent.
    Discard {
        /// The contact it answers.
        contact_id: String,
        /// The draft.
        draft_id: String,
    },
    /// Ask the worker for a new draft in place of `draft_id`.
    Regenerate {
        /// The contact it answers.
        contact_id: String,
        /// The draft.
        draft_id: String,
    },
    /// Put a contact in auto or draft mode.
    SetMode {
        /// Contact id.
        contact_id: String,
        /// New mode.
        mode: crate::model::ReplyMode,
    },
    /// Send the operator's own words to a contact, as them.
    SendAsOwner {
        /// Contact id.
        contact_id: String,
        /// The message.
        text: String,
    },
    /// Compute what the twin would answer a contact now, sending nothing;
    /// the answer comes back as [`Event::Preview`].
    Preview {
        /// Contact id.
        contact_id: String,
    },
    /// The operator saw the contact's unanswered messages: clear its count.
    DismissUnanswered {
        /// Contact id.
        contact_id: String,
    },
    /// Ring the terminal's bell (a draft arrived and `bell` is on).
    Bell,
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
        Event::Key(key) => keys::on_key(model, key),
        Event::Paste(text) => keys::on_paste(model, &text),
        Event::Tick { now_ms } => time::on_tick(model, now_ms),
        Event::Snapshot(snap) => data::on_snapshot(model, snap),
        Event::MessageEvent {
            message_id,
            contact_id,
            text,
            bot_sent,
            from_person,
            timestamp_ms,
        } => data::on_message_event(
            model,
            &message_id,
            &contact_id,
            &text,
            bot_sent,
            from_person,
            timestamp_ms,
        ),
        Event::PauseEvent {
            contact_id,
            action,
            expires_at_ms,
            reason,
        } => data::on_pause_event(model, &contact_id, action, expires_at_ms, reason),
        Event::QrEvent {
            payload,
            expires_in_s,
        } => data::on_qr(model, payload, expires_in_s),
        Event::SessionChanged(session) => data::on_session(model, session),
        Event::Llm(figures) => crate::llm::on_figures(model, figures),
        Event::GatewaySession(text) => data::on_gateway_session(model, text),
        Event::Learned(view) => learned::on_learned(model, view),
        Event::ServiceStatus { service, status } => {
            data::on_service_status(model, &service, &status)
        }
        Event::Connection(conn) => data::on_connection(model, conn),
        Event::Malformed { channel, error } => data::on_malformed(model, &channel, &error),
        Event::Log(entry) => data::on_log(model, entry),
        Event::SetupWarning(text) => data::on_setup_warning(model, text),
        Event::WorkerProgress(state) => data::on_worker(model, state),
        Event::GatewayState(state) => gateway::on_state(model, state),
        Event::Drafts(read) => drafts::on_read(model, read),
        Event::DraftEvent {
            change,
            draft_id,
            contact_id,
        } => drafts::on_event(model, change, &draft_id, &contact_id),
        Event::Unanswered(counts) => unanswered::on_read(model, counts),
        Event::Preview { contact_id, reply } => drafts::on_preview(model, &contact_id, reply),
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
