//! The event log: what happened, one line each.

use super::Model;

/// Most log entries kept; older ones fall off the top.
pub const MAX_EVENTS: usize = 500;

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
    /// A draft arrived, was decided or expired.
    Draft,
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
            LogKind::Draft => "DRAFT",
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

impl Model {
    /// Appends a log entry, dropping the oldest over [`MAX_EVENTS`].
    pub fn push_log(&mut self, entry: LogEntry) {
        self.events.push_back(entry);
        while self.events.len() > MAX_EVENTS {
            self.events.pop_front();
        }
    }
}
