//! Contacts and their pauses, and the limits of the contacts list.

/// Messages per minute the per-contact rate limiter allows; mirrors the engine's
/// `schema::RATE_LIMIT_MAX`.
pub const RATE_LIMIT: u32 = 10;
/// Contact id that pause events use to mean "everyone" (the kill switch);
/// mirrors the engine's `schema::PAUSE_ALL_CONTACT`.
pub const ALL_CONTACTS: &str = "ALL";
/// How long a contact seen only live (a gateway or worker not ours published for
/// it; no key lists it) stays listed after its last activity, across snapshots.
pub const LIVE_ONLY_KEEP_MS: i64 = 24 * 60 * 60 * 1000;
/// Most contacts kept that only the live feed knows; the least recent go first,
/// so a flood of strangers cannot grow the list without bound.
pub const MAX_LIVE_ONLY: usize = 1000;

/// Why a contact is paused, as the dashboard shows it. The binary parses the
/// wire names once and hands these in; nothing here reads a wire string.
/// Mirrors the engine's `schema::PauseReason`, variant for variant.
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
    /// The model's reply was refused (it leaked or confessed); left for the operator.
    Refused,
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
            PauseReason::Refused => "reply refused",
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
    /// When this control room last saw a message of it live (its own clock; 0:
    /// never): what keeps an unlisted contact, whatever time the sender claims.
    pub seen_live_ms: i64,
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
}
