//! The dashboard's plain data. No I/O, no clocks: time arrives as `now_ms`.
//!
//! [`Model`] and its counters live here; each of its parts has a room of its
//! own: contacts and their pauses, the contact index that orders and filters
//! them, conversations, the event log, the WhatsApp login and gateway, draft
//! mode and its editor, the unanswered counts, and the interaction modes.
//! Every item is re-exported here, so `model::X` is the path.
//!
//! Some types mirror the engine's (the pause reasons, the gateway's phases, a
//! few limits): this crate never links the engine, so each mirror says what it
//! mirrors and the engine crate's `tests/mirrors.rs` fails when the two drift.

mod contact_index;
mod contacts;
mod conversation;
mod drafts;
mod editor;
mod event_log;
mod gateway;
mod learned;
mod mode;
mod unanswered;

use std::collections::{HashMap, VecDeque};

use crate::keymap::Keymap;
use crate::theme::Theme;

use contact_index::ContactIndex;
pub use contacts::{
    ALL_CONTACTS, Contact, LIVE_ONLY_KEEP_MS, MAX_LIVE_ONLY, Pause, PauseReason, RATE_LIMIT,
};
pub use conversation::{Author, ChatMessage, Conversation, MAX_MESSAGES};
pub use drafts::{Draft, DraftChange, Drafts, DraftsRead, ReplyMode};
pub use editor::{Editor, MAX_EDITOR_CHARS};
pub use event_log::{LogEntry, LogKind, MAX_EVENTS};
pub use gateway::{GatewayPhase, GatewayState, QrCode};
pub use learned::{LastEval, LearnedProfile, LearnedView, MAX_MEASURES, MAX_TOP, Measure, Scale};
pub use mode::{EditTarget, Mode, PAUSE_CHOICES, PAUSE_CUSTOM_INDEX, Pane, PreviewState};
pub use unanswered::Unanswered;

/// Most services whose status is kept from `events:status`.
pub const MAX_SERVICES: usize = 8;

/// Everything the control room shows; the binary owns one and feeds events.
#[derive(Clone, Debug, Default)]
pub struct Model {
    /// Current time in unix milliseconds, advanced by `Event::Tick`.
    pub now_ms: i64,
    /// Offset from UTC in minutes used for wall-clock times (0 = UTC).
    pub utc_offset_min: i32,
    /// Redis link state.
    pub connection: Connection,
    /// The WhatsApp session, if logged in.
    pub session: Option<SessionInfo>,
    /// When the global kill switch was turned on, if it is on.
    pub kill_switch: Option<i64>,
    /// A lasting problem with the Redis setup, shown under the status bar until
    /// it is fixed (e.g. an eviction policy that can delete SecondMe's keys).
    pub setup_warning: Option<String>,
    /// The language model's figures (`SECONDME:llm`), once a worker wrote some.
    pub llm: Option<crate::llm::LlmFigures>,
    /// End of the sleep hours the worker last said it was in (minutes after
    /// midnight); kept through a disconnection so a reconnect does not log them again.
    pub asleep_until: Option<u16>,
    /// Queue and worker counters.
    pub stats: Stats,
    /// All known contacts, in no particular order (see `visible_contacts`).
    ///
    /// `update` keeps a sorted index of these; after adding contacts or changing
    /// an id or `last_activity_ms` directly, call [`Model::reindex`].
    pub contacts: Vec<Contact>,
    /// Message history per contact id.
    pub conversations: HashMap<String, Conversation>,
    /// Event log, oldest first, capped at [`MAX_EVENTS`].
    pub events: VecDeque<LogEntry>,
    /// Another gateway's session as it describes it (the original gateway's
    /// `SESSION:whatsapp:info`), shown while SecondMe knows no session of its own.
    pub gateway_session: Option<String>,
    /// Services' statuses from `events:status` (`service`, `status`), latest first
    /// per service, at most [`MAX_SERVICES`].
    pub services: Vec<(String, String)>,
    /// Pending login code, shown while there is no session.
    pub qr: Option<QrCode>,
    /// The WhatsApp gateway's state (`GATEWAY:{userId}`), once one was seen;
    /// `Gone` after its key expired.
    pub gateway: Option<GatewayState>,
    /// Id of the selected contact; kept by id so re-sorting keeps it.
    pub selected: Option<String>,
    /// Pane that receives movement keys.
    pub focus: Pane,
    /// Case-insensitive contact filter on name or id.
    pub filter: String,
    /// Which overlay or prompt is active.
    pub mode: Mode,
    /// Styles in use.
    pub theme: Theme,
    /// Key bindings in use.
    pub keymap: Keymap,
    /// Conversation scroll: how many newest messages are hidden (0 = follow).
    pub conversation_scroll: usize,
    /// Event log scroll: how many newest entries are hidden (0 = follow).
    pub events_scroll: usize,
    /// What the twin learned for the selected contact, as last read.
    pub learned: Option<LearnedView>,
    /// The learned panel is shown (toggled by its key).
    pub show_learned: bool,
    /// Draft mode: the waiting drafts and each contact's reply mode.
    pub drafts: Drafts,
    /// Messages the twin chose not to answer, per contact.
    pub unanswered: Unanswered,
    /// Ring the terminal's bell when a draft arrives (the `bell` setting).
    pub bell: bool,
    /// Lookup and display order of `contacts`, kept in step by `update`.
    index: ContactIndex,
}

/// State of the Redis connection.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub enum Connection {
    /// First connection attempt in progress.
    #[default]
    Connecting,
    /// Connected, with the last measured round trip.
    Connected {
        /// Last ping round-trip time in milliseconds.
        rtt_ms: u32,
    },
    /// Lost; the binary may be retrying.
    Disconnected {
        /// When the link was lost.
        since_ms: i64,
        /// Whether a reconnect loop is running.
        retrying: bool,
        /// The last error, already sanitized.
        last_error: String,
    },
}

/// A logged-in WhatsApp session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionInfo {
    /// When the session was established.
    pub connected_at_ms: i64,
    /// When the session must be renewed.
    pub expires_at_ms: i64,
}

/// Worker lifecycle as reported by the binary.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum WorkerState {
    /// Not started.
    #[default]
    Off,
    /// Processing the queue.
    Running,
    /// In the person's sleep hours: recording, not answering.
    Asleep {
        /// When they end, minutes after local midnight.
        until_minute: u16,
    },
    /// Shutting down, finishing `left` in-flight jobs.
    Draining {
        /// Jobs still being finished.
        left: u64,
    },
    /// Fully stopped.
    Stopped,
}

/// Queue and worker counters shown in the status bar.
#[derive(Clone, Debug, PartialEq)]
pub struct Stats {
    /// Jobs waiting in the queue.
    pub queue_len: u64,
    /// Queue capacity (by default the engine's `schema::QUEUE_MESSAGES_CAP`).
    pub queue_cap: u64,
    /// Jobs taken but not yet finished.
    pub pending: u64,
    /// Jobs that failed for good.
    pub dead_letters: u64,
    /// Replies per second over the recent window.
    pub throughput_per_s: f64,
    /// Pub/sub subscribers on the event channel.
    pub subscribers: u64,
    /// Payloads that could not be parsed.
    pub malformed_payloads: u64,
    /// Worker lifecycle.
    pub worker: WorkerState,
}

impl Default for Stats {
    fn default() -> Self {
        Stats {
            queue_len: 0,
            queue_cap: 1000,
            pending: 0,
            dead_letters: 0,
            throughput_per_s: 0.0,
            subscribers: 0,
            malformed_payloads: 0,
            worker: WorkerState::Off,
        }
    }
}

/// Full state re-read from Redis; replaces what the model holds.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    /// All contacts.
    pub contacts: Vec<Contact>,
    /// Counters read from Redis; `worker` and `malformed_payloads` are ignored,
    /// as only the running process knows them.
    pub stats: Stats,
    /// WhatsApp session.
    pub session: Option<SessionInfo>,
    /// Kill switch activation time.
    pub kill_switch: Option<i64>,
    /// Message history per contact id.
    pub conversations: HashMap<String, Conversation>,
}

impl Model {
    /// A model with the given theme and keymap and everything else empty.
    pub fn new(theme: Theme, keymap: Keymap, now_ms: i64) -> Model {
        Model {
            theme,
            keymap,
            now_ms,
            ..Model::default()
        }
    }
}
