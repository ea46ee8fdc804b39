//! The dashboard's plain data. No I/O, no clocks: time arrives as `now_ms`.

use std::borrow::Cow;
use std::cmp::Ordering;
use std::collections::{HashMap, VecDeque};

use crate::keymap::Keymap;
use crate::theme::Theme;

/// Most services whose status is kept from `events:status`.
pub const MAX_SERVICES: usize = 8;
/// Most log entries kept; older ones fall off the top.
pub const MAX_EVENTS: usize = 500;
/// Most messages kept per conversation.
pub const MAX_MESSAGES: usize = 200;
/// Messages per minute the per-contact rate limiter allows.
pub const RATE_LIMIT: u32 = 10;
/// Contact id that pause events use to mean "everyone" (the kill switch).
pub const ALL_CONTACTS: &str = "ALL";
/// How long a contact seen only live (a gateway or worker not ours published for
/// it; no key lists it) stays listed after its last activity, across snapshots.
pub const LIVE_ONLY_KEEP_MS: i64 = 24 * 60 * 60 * 1000;
/// Most contacts kept that only the live feed knows; the least recent go first,
/// so a flood of strangers cannot grow the list without bound.
pub const MAX_LIVE_ONLY: usize = 1000;

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
    /// Lookup and display order of `contacts`, kept in step by `update`.
    index: ContactIndex,
}

/// What `contacts` looks like sorted and filtered.
///
/// A frame or an incoming message must not sort or scan 10,000 contacts, so
/// `update` maintains this incrementally. Readers check it against the model
/// (count and filter) and recompute from scratch when it does not match, so a
/// model edited by hand stays correct, only slower.
#[derive(Clone, Debug, Default)]
struct ContactIndex {
    by_id: HashMap<String, usize>,
    /// Indices into `contacts`, most recent activity first, ties by id.
    order: Vec<usize>,
    /// The filter `visible` was built for, lower-cased.
    filter: String,
    /// Indices in display order matching `filter`; unused when it is empty.
    visible: Vec<usize>,
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
    /// Queue capacity.
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

/// Why a contact is paused, as the dashboard shows it. The binary parses the
/// wire names once and hands these in; nothing here reads a wire string.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub enum PauseReason {
    /// Paused from this dashboard or a command.
    #[default]
    Manual,
    /// The person wrote to the contact themselves.
    Takeover,
    /// Too many messages in a short time.
    RateLimit,
    /// Redis lost SecondMe's state, so the worker switched the kill switch on.
    StateLost,
    /// Paused by another program that left no reason.
    Unknown,
    /// Another program's reason, free text (cleaned before it is kept).
    Other(String),
}

impl PauseReason {
    /// Short label for the contacts list.
    pub fn label(&self) -> &str {
        match self {
            PauseReason::Manual => "manual",
            PauseReason::Takeover => "takeover",
            PauseReason::RateLimit => "rate limit",
            PauseReason::StateLost => "state_lost",
            PauseReason::Unknown => "unknown",
            PauseReason::Other(s) => s,
        }
    }
}

/// A pause on one contact.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pause {
    /// When it lifts; `None` means until resumed by hand.
    pub expires_at_ms: Option<i64>,
    /// Why it was set.
    pub reason: PauseReason,
}

/// One WhatsApp contact the twin may answer.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Contact {
    /// WhatsApp id (phone-based JID).
    pub id: String,
    /// Display name if known.
    pub name: Option<String>,
    /// Whether the twin answers this contact at all.
    pub enabled: bool,
    /// Active pause, if any.
    pub pause: Option<Pause>,
    /// Messages in the current rate window (out of [`RATE_LIMIT`]).
    pub rate_count: u32,
    /// Last message time, used for ordering.
    pub last_activity_ms: i64,
}

impl Contact {
    /// An enabled contact with just an id.
    pub fn new(id: impl Into<String>) -> Contact {
        Contact {
            id: id.into(),
            enabled: true,
            ..Contact::default()
        }
    }

    /// Name if present and non-empty, otherwise the id.
    pub fn display_name(&self) -> &str {
        match &self.name {
            Some(n) if !n.trim().is_empty() => n,
            _ => &self.id,
        }
    }

    /// The pause if it is still in force at `now_ms`.
    pub fn active_pause(&self, now_ms: i64) -> Option<&Pause> {
        self.pause
            .as_ref()
            .filter(|p| p.expires_at_ms.is_none_or(|t| t > now_ms))
    }

    fn matches(&self, needle_lower: &str) -> bool {
        needle_lower.is_empty()
            || self.id.to_lowercase().contains(needle_lower)
            || self
                .name
                .as_deref()
                .is_some_and(|n| n.to_lowercase().contains(needle_lower))
    }
}

/// Who wrote a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Author {
    /// The contact.
    Contact,
    /// The AI twin.
    Twin,
    /// The person themselves (takeover).
    Person,
}

/// One message in a conversation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChatMessage {
    /// Message id, used to drop duplicates.
    pub id: String,
    /// When it was sent.
    pub timestamp_ms: i64,
    /// Who wrote it.
    pub author: Author,
    /// Sanitized text; may contain `\n`.
    pub text: String,
}

/// Recent messages with one contact, oldest first.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Conversation {
    /// Messages, capped at [`MAX_MESSAGES`].
    pub messages: VecDeque<ChatMessage>,
}

impl Conversation {
    /// Adds a message unless its id is already present; drops the oldest over the cap.
    pub fn push(&mut self, msg: ChatMessage) -> bool {
        if !msg.id.is_empty() && self.messages.iter().rev().any(|m| m.id == msg.id) {
            return false;
        }
        // Keep time order even when events arrive slightly out of order.
        let pos = self
            .messages
            .iter()
            .rposition(|m| m.timestamp_ms <= msg.timestamp_ms);
        let at = pos.map_or(0, |p| p + 1);
        self.messages.insert(at, msg);
        while self.messages.len() > MAX_MESSAGES {
            self.messages.pop_front();
        }
        true
    }
}

/// Category of a log entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogKind {
    /// A contact was paused.
    Pause,
    /// A contact was resumed.
    Resume,
    /// The rate limiter tripped.
    RateLimit,
    /// The person took over a chat.
    Takeover,
    /// The kill switch changed.
    KillSwitch,
    /// A job went to the dead-letter queue.
    DeadLetter,
    /// Redis or WhatsApp connection change.
    Connection,
    /// An unparseable payload arrived.
    Malformed,
    /// Anything else.
    Info,
}

impl LogKind {
    /// Fixed-width upper-case label, readable without colour.
    pub fn label(self) -> &'static str {
        match self {
            LogKind::Pause => "PAUSE",
            LogKind::Resume => "RESUME",
            LogKind::RateLimit => "RATE",
            LogKind::Takeover => "TAKEOVER",
            LogKind::KillSwitch => "KILL",
            LogKind::DeadLetter => "DEAD",
            LogKind::Connection => "CONN",
            LogKind::Malformed => "BAD",
            LogKind::Info => "INFO",
        }
    }
}

/// One line of the event log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogEntry {
    /// When it happened.
    pub at_ms: i64,
    /// Category.
    pub kind: LogKind,
    /// Sanitized single-line text.
    pub text: String,
}

/// A login code waiting to be scanned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QrCode {
    /// The exact string to encode.
    pub payload: String,
    /// When the dashboard received it.
    pub received_at_ms: i64,
    /// Validity in seconds from `received_at_ms`.
    pub expires_in_s: u32,
}

impl QrCode {
    /// When the code stops being valid.
    pub fn expires_at_ms(&self) -> i64 {
        self.received_at_ms
            .saturating_add(i64::from(self.expires_in_s) * 1000)
    }
}

/// What the WhatsApp connection is doing (the gateway's `state`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GatewayPhase {
    /// Opening the connection.
    Connecting,
    /// A QR code is up, waiting for the phone.
    WaitingForScan,
    /// A pair code is up (`code`), waiting for the phone.
    PairCode,
    /// No login codes left; the operator asks for new ones.
    CodesExhausted,
    /// Logged in (`name`).
    Connected,
    /// Connection lost; trying again at `next_try_ms`.
    Reconnecting,
    /// WhatsApp unreachable; trying again at `next_try_ms`.
    NoNetwork,
    /// Unlinked; a new login follows.
    LoggedOut,
    /// Another instance took over; this gateway stopped.
    Replaced,
    /// Banned until `until_ms`.
    Banned,
    /// The gateway stopped.
    Stopped,
    /// Its state expired: no gateway has refreshed it for its TTL.
    Gone,
}

/// The gateway's state; text fields are cleaned by `update` before they are kept.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GatewayState {
    /// The state.
    pub phase: GatewayPhase,
    /// Since when, ms.
    pub since_ms: i64,
    /// Why, or what to do, from the gateway.
    pub detail: Option<String>,
    /// The account's display name, when connected.
    pub name: Option<String>,
    /// The pair code to type on the phone.
    pub code: Option<String>,
    /// Next connection attempt, ms.
    pub next_try_ms: Option<i64>,
    /// End of a ban or of a code's validity, ms.
    pub until_ms: Option<i64>,
}

impl GatewayState {
    /// A state with only its phase and time.
    pub fn new(phase: GatewayPhase, since_ms: i64) -> GatewayState {
        GatewayState {
            phase,
            since_ms,
            detail: None,
            name: None,
            code: None,
            next_try_ms: None,
            until_ms: None,
        }
    }

    /// The pair code grouped for reading aloud or typing: `ABCD-EFGH`.
    pub fn code_grouped(&self) -> String {
        let code = self.code.as_deref().unwrap_or("?");
        let chars: Vec<char> = code.chars().collect();
        if chars.len() == 8 {
            let (a, b) = chars.split_at(4);
            format!(
                "{}-{}",
                a.iter().collect::<String>(),
                b.iter().collect::<String>()
            )
        } else {
            code.to_string()
        }
    }
}

/// Pane with keyboard focus.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Pane {
    /// Contacts list.
    #[default]
    Contacts,
    /// Selected contact's messages.
    Conversation,
    /// Event log.
    Events,
}

impl Pane {
    /// The pane after this one in Tab order.
    pub fn next(self) -> Pane {
        match self {
            Pane::Contacts => Pane::Conversation,
            Pane::Conversation => Pane::Events,
            Pane::Events => Pane::Contacts,
        }
    }

    /// The pane before this one in Tab order.
    pub fn prev(self) -> Pane {
        self.next().next()
    }
}

/// Choices offered by the pause prompt, in display order.
pub const PAUSE_CHOICES: [(&str, u64); 3] = [("15 minutes", 15), ("1 hour", 60), ("8 hours", 480)];
/// Index of the "custom minutes" row in the pause prompt.
pub const PAUSE_CUSTOM_INDEX: usize = PAUSE_CHOICES.len();

/// Interaction mode: normal browsing or one overlay/prompt.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub enum Mode {
    /// Browsing.
    #[default]
    Normal,
    /// Typing into the contact filter.
    Filter,
    /// Help overlay.
    Help,
    /// Choosing how long to pause `contact_id`.
    PauseDurationPrompt {
        /// Contact the pause will apply to (fixed when the prompt opened).
        contact_id: String,
        /// Highlighted row; [`PAUSE_CUSTOM_INDEX`] is the custom row.
        selected: usize,
        /// Digits typed for the custom number of minutes.
        custom: String,
    },
    /// Asking to confirm turning the kill switch `on` (or off).
    ConfirmKill {
        /// The state that `y` will request.
        on: bool,
    },
    /// Quit requested; waiting for the worker to drain.
    Quitting {
        /// Progress text shown to the user.
        progress: String,
    },
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

    /// Contacts after the filter, most recent activity first (ties by id).
    pub fn visible_contacts(&self) -> Vec<&Contact> {
        self.visible_indices()
            .iter()
            .filter_map(|&i| self.contacts.get(i))
            .collect()
    }

    /// How many contacts pass the filter.
    pub fn visible_len(&self) -> usize {
        self.visible_indices().len()
    }

    /// Up to `count` visible contacts starting at row `start`, in display order.
    pub fn visible_window(&self, start: usize, count: usize) -> Vec<&Contact> {
        self.visible_indices()
            .iter()
            .skip(start)
            .take(count)
            .filter_map(|&i| self.contacts.get(i))
            .collect()
    }

    /// Index into `visible_contacts` of the selection; falls back to the first row.
    pub fn selected_index(&self) -> Option<usize> {
        let list = self.visible_indices();
        if list.is_empty() {
            return None;
        }
        let found = self
            .selected
            .as_deref()
            .and_then(|id| self.position_in(&list, id));
        Some(found.unwrap_or(0))
    }

    /// The contact that actions apply to, consistent with what is highlighted.
    pub fn selected_contact(&self) -> Option<&Contact> {
        let idx = self.selected_index()?;
        let list = self.visible_indices();
        self.contacts.get(*list.get(idx)?)
    }

    /// Looks up a contact by id.
    pub fn contact(&self, id: &str) -> Option<&Contact> {
        self.contacts.get(self.contact_slot(id)?)
    }

    /// Rebuilds the sorted index of `contacts` (what `update` does after a snapshot).
    pub fn reindex(&mut self) {
        let mut order: Vec<usize> = (0..self.contacts.len()).collect();
        order.sort_by(|&a, &b| recency(&self.contacts[a], &self.contacts[b]));
        self.index.by_id = self
            .contacts
            .iter()
            .enumerate()
            .map(|(i, c)| (c.id.clone(), i))
            .collect();
        self.index.order = order;
        self.refilter();
    }

    /// Recomputes the filtered rows after `filter` changed.
    pub(crate) fn refilter(&mut self) {
        let needle = self.filter.to_lowercase();
        self.index.visible = if needle.is_empty() {
            Vec::new()
        } else {
            let contacts = &self.contacts;
            self.index
                .order
                .iter()
                .copied()
                .filter(|&i| contacts.get(i).is_some_and(|c| c.matches(&needle)))
                .collect()
        };
        self.index.filter = needle;
    }

    /// Position in `contacts` of the contact with this id.
    pub(crate) fn contact_slot(&self, id: &str) -> Option<usize> {
        match self.index.by_id.get(id) {
            Some(&i) if self.contacts.get(i).is_some_and(|c| c.id == id) => Some(i),
            _ => self.contacts.iter().position(|c| c.id == id),
        }
    }

    /// Adds a contact and files it in the index; returns its position in `contacts`.
    pub(crate) fn add_contact(&mut self, contact: Contact) -> usize {
        if !self.index_is_current() {
            self.contacts.push(contact);
            self.reindex();
            return self.contacts.len() - 1;
        }
        let slot = self.contacts.len();
        let matches = !self.index.filter.is_empty() && contact.matches(&self.index.filter);
        self.index.by_id.insert(contact.id.clone(), slot);
        self.contacts.push(contact);
        let contacts = &self.contacts;
        let new = &contacts[slot];
        let at = partition(&self.index.order, contacts, new);
        self.index.order.insert(at, slot);
        if matches {
            let at = partition(&self.index.visible, contacts, new);
            self.index.visible.insert(at, slot);
        }
        slot
    }

    /// Raises a contact's last activity to `at_ms` and moves it to its new row.
    pub(crate) fn touch(&mut self, slot: usize, at_ms: i64) {
        let Some(before) = self.contacts.get(slot) else {
            return;
        };
        if at_ms <= before.last_activity_ms {
            return;
        }
        if !self.index_is_current() {
            self.contacts[slot].last_activity_ms = at_ms;
            self.reindex();
            return;
        }
        let in_order = self
            .index
            .order
            .binary_search_by(|&j| recency(&self.contacts[j], before));
        let in_visible = if self.index.filter.is_empty() {
            None
        } else {
            self.index
                .visible
                .binary_search_by(|&j| recency(&self.contacts[j], before))
                .ok()
        };
        self.contacts[slot].last_activity_ms = at_ms;
        let Ok(from) = in_order else {
            // The index no longer matches the data; start over rather than misfile.
            self.reindex();
            return;
        };
        let contacts = &self.contacts;
        reposition(&mut self.index.order, from, contacts, slot);
        if let Some(from) = in_visible {
            reposition(&mut self.index.visible, from, contacts, slot);
        }
    }

    /// Whether the index describes the current contacts and filter.
    fn index_is_current(&self) -> bool {
        self.index.order.len() == self.contacts.len()
            && self.index.filter == self.filter.to_lowercase()
    }

    /// Visible rows as indices into `contacts`, from the index when it is current.
    pub(crate) fn visible_indices(&self) -> Cow<'_, [usize]> {
        if self.index_is_current() {
            return Cow::Borrowed(if self.index.filter.is_empty() {
                &self.index.order
            } else {
                &self.index.visible
            });
        }
        let needle = self.filter.to_lowercase();
        let mut list: Vec<usize> = (0..self.contacts.len())
            .filter(|&i| self.contacts[i].matches(&needle))
            .collect();
        list.sort_by(|&a, &b| recency(&self.contacts[a], &self.contacts[b]));
        Cow::Owned(list)
    }

    /// Row of contact `id` in `list` (sorted by recency), by binary search.
    fn position_in(&self, list: &[usize], id: &str) -> Option<usize> {
        let target = self.contact(id)?;
        list.binary_search_by(|&j| recency(&self.contacts[j], target))
            .ok()
            .or_else(|| {
                list.iter()
                    .position(|&j| self.contacts.get(j).is_some_and(|c| c.id == id))
            })
    }

    /// Whether the login-code overlay should be shown.
    pub fn qr_visible(&self) -> bool {
        self.qr.is_some() && self.session.is_none()
    }

    /// Appends a log entry, dropping the oldest over [`MAX_EVENTS`].
    pub fn push_log(&mut self, entry: LogEntry) {
        self.events.push_back(entry);
        while self.events.len() > MAX_EVENTS {
            self.events.pop_front();
        }
    }
}

/// Display order: most recent activity first, ties by id.
fn recency(a: &Contact, b: &Contact) -> Ordering {
    b.last_activity_ms
        .cmp(&a.last_activity_ms)
        .then_with(|| a.id.cmp(&b.id))
}

/// Where `c` goes in `list` (sorted by recency).
fn partition(list: &[usize], contacts: &[Contact], c: &Contact) -> usize {
    list.partition_point(|&j| recency(&contacts[j], c) == Ordering::Less)
}

/// Moves the entry at `from` (contact `slot`, whose key changed) to its sorted
/// row with one rotation, as a new message mostly moves a contact a short way up.
fn reposition(list: &mut [usize], from: usize, contacts: &[Contact], slot: usize) {
    let moved = &contacts[slot];
    let sorts_before = |&j: &usize| recency(&contacts[j], moved) == Ordering::Less;
    let before = list[..from].partition_point(sorts_before);
    if before < from {
        list[before..=from].rotate_right(1);
        return;
    }
    let after = list[from + 1..].partition_point(sorts_before);
    if after > 0 {
        list[from..=from + after].rotate_left(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The order a full sort gives, to hold the incremental index against.
    fn sorted_ids(model: &Model) -> Vec<String> {
        let needle = model.filter.to_lowercase();
        let mut list: Vec<&Contact> = model
            .contacts
            .iter()
            .filter(|c| c.matches(&needle))
            .collect();
        list.sort_by(|a, b| recency(a, b));
        list.into_iter().map(|c| c.id.clone()).collect()
    }

    fn shown_ids(model: &Model) -> Vec<String> {
        model
            .visible_contacts()
            .into_iter()
            .map(|c| c.id.clone())
            .collect()
    }

    #[test]
    fn incremental_order_matches_a_full_sort() {
        let mut model = Model {
            contacts: (0..50)
                .map(|i| Contact {
                    last_activity_ms: (i * 7919) % 100,
                    ..Contact::new(format!("c{i:02}"))
                })
                .collect(),
            ..Model::default()
        };
        model.reindex();
        let mut seed = 12345u64;
        for step in 0..2000 {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let r = (seed >> 33) as usize;
            if step == 700 {
                model.filter = "1".into();
                model.refilter();
            }
            if r.is_multiple_of(10) {
                model.add_contact(Contact {
                    last_activity_ms: (r % 300) as i64,
                    ..Contact::new(format!("n{step}"))
                });
            } else {
                let slot = r % model.contacts.len();
                model.touch(slot, (r % 3000) as i64);
            }
            assert!(model.index_is_current());
            assert_eq!(shown_ids(&model), sorted_ids(&model), "step {step}");
        }
        assert!(
            model.visible_len() < model.contacts.len(),
            "the filter hid some"
        );
    }

    #[test]
    fn a_hand_edited_model_is_still_listed_correctly() {
        let mut model = Model {
            contacts: vec![Contact::new("b"), Contact::new("a")],
            ..Model::default()
        };
        model.reindex();
        model.contacts.push(Contact {
            last_activity_ms: 5,
            ..Contact::new("c")
        });
        model.filter = "C".into();
        assert_eq!(shown_ids(&model), vec!["c"]);
        model.filter.clear();
        assert_eq!(shown_ids(&model), vec!["c", "a", "b"]);
        model.selected = Some("a".into());
        assert_eq!(model.selected_index(), Some(1));
        assert_eq!(model.contact("c").map(|c| c.last_activity_ms), Some(5));
    }
}
