//! Draft mode as the control room shows it: each contact's reply mode, the
//! draft waiting for each contact (one per contact), and what the operator is
//! asked to look at. The binary reads them (`SECONDME:modes`, `DRAFT:*`) and
//! hands them in; every string is cleaned by `update` before it is kept.

use std::collections::HashMap;

/// How the twin answers a contact; mirrors the engine's `schema::drafts::ReplyMode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum ReplyMode {
    /// The reply goes out on its own.
    #[default]
    Auto,
    /// The reply waits as a draft for the operator.
    Draft,
}

impl ReplyMode {
    /// The other mode (what the toggle key asks for).
    pub fn toggled(self) -> ReplyMode {
        match self {
            ReplyMode::Auto => ReplyMode::Draft,
            ReplyMode::Draft => ReplyMode::Auto,
        }
    }

    /// The mode's name as the operator reads it: `auto` or `draft`.
    pub fn label(self) -> &'static str {
        match self {
            ReplyMode::Auto => "auto",
            ReplyMode::Draft => "draft",
        }
    }
}

/// A reply the twin wrote that waits for the operator's decision.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Draft {
    /// Its id (`draft_` + the answered message id).
    pub draft_id: String,
    /// The contact it answers.
    pub contact_id: String,
    /// The reply as the twin wrote it.
    pub content: String,
    /// The message id it answers.
    pub in_reply_to: String,
    /// When it was written, ms.
    pub created_at_ms: i64,
    /// When it expires unsent, ms.
    pub expires_at_ms: i64,
}

/// What the binary read of draft mode: replaces what the model holds.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DraftsRead {
    /// Every waiting draft.
    pub drafts: Vec<Draft>,
    /// The contacts with a mode of their own.
    pub modes: Vec<(String, ReplyMode)>,
    /// The mode of a contact without one (`SECONDME:modes` `*`, else the setting).
    pub default_mode: ReplyMode,
}

/// What happened to a draft, as `events:drafts` says; mirrors the engine's
/// event types.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DraftChange {
    /// The twin wrote a draft.
    Created,
    /// A newer message's draft took the place of the waiting one.
    Replaced,
    /// Sent, as written or edited.
    Approved,
    /// Dropped unsent.
    Discarded,
    /// Not decided in time: never sent.
    Expired,
    /// A new draft was asked for.
    Regenerate,
}

impl DraftChange {
    /// Whether the draft is gone for good after it (decided or expired).
    pub fn ends_draft(self) -> bool {
        matches!(
            self,
            DraftChange::Approved | DraftChange::Discarded | DraftChange::Expired
        )
    }

    /// Past-tense words for the event log.
    pub fn words(self) -> &'static str {
        match self {
            DraftChange::Created => "draft waiting",
            DraftChange::Replaced => "draft replaced by a newer one",
            DraftChange::Approved => "draft approved and sent",
            DraftChange::Discarded => "draft discarded",
            DraftChange::Expired => "draft expired unsent",
            DraftChange::Regenerate => "new draft asked for",
        }
    }
}

/// Draft mode's state: waiting drafts by contact, and the modes.
#[derive(Clone, Debug, Default)]
pub struct Drafts {
    waiting: HashMap<String, Draft>,
    modes: HashMap<String, ReplyMode>,
    default_mode: ReplyMode,
    /// The reading these came from, as it arrived: the same reading again
    /// (most of them) is told apart without cleaning a thousand drafts.
    /// `None` once changed here, so the next reading replaces what changed.
    read: Option<DraftsRead>,
}

impl Drafts {
    /// The reading these came from, unless changed here since.
    pub fn last_read(&self) -> Option<&DraftsRead> {
        self.read.as_ref()
    }

    /// Replaces everything with `clean`, cleaned from `read`.
    pub fn replace(&mut self, read: DraftsRead, clean: DraftsRead) {
        self.waiting = clean
            .drafts
            .into_iter()
            .map(|d| (d.contact_id.clone(), d))
            .collect();
        self.modes = clean.modes.into_iter().collect();
        self.default_mode = clean.default_mode;
        self.read = Some(read);
    }

    /// The draft waiting for `contact_id`, if any.
    pub fn for_contact(&self, contact_id: &str) -> Option<&Draft> {
        self.waiting.get(contact_id)
    }

    /// Whether the draft `draft_id` still waits.
    pub fn is_waiting(&self, contact_id: &str, draft_id: &str) -> bool {
        self.for_contact(contact_id)
            .is_some_and(|d| d.draft_id == draft_id)
    }

    /// Forgets the draft `draft_id` (decided or expired), if it is the one waiting.
    pub fn remove(&mut self, contact_id: &str, draft_id: &str) {
        if self.is_waiting(contact_id, draft_id) {
            self.waiting.remove(contact_id);
            self.read = None;
        }
    }

    /// How many drafts wait.
    pub fn count(&self) -> usize {
        self.waiting.len()
    }

    /// The mode `contact_id` is in: its own, else the default.
    pub fn mode_of(&self, contact_id: &str) -> ReplyMode {
        self.modes
            .get(contact_id)
            .copied()
            .unwrap_or(self.default_mode)
    }

    /// Sets `contact_id`'s mode (before the binary's next read confirms it).
    pub fn set_mode(&mut self, contact_id: &str, mode: ReplyMode) {
        self.modes.insert(contact_id.to_owned(), mode);
        self.read = None;
    }
}
