//! How the operator is interacting: the focused pane and the active overlay or prompt.

use super::editor::Editor;

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
    /// Writing in the inline editor: a draft being edited, or the operator's
    /// own message.
    Editor {
        /// What Enter does with the text.
        target: EditTarget,
        /// The text and cursor.
        editor: Editor,
    },
    /// What the twin would answer the contact now (nothing is sent).
    Preview {
        /// The contact asked about.
        contact_id: String,
        /// The answer, once the binary computed it.
        state: PreviewState,
    },
    /// Quit requested; waiting for the worker to drain.
    Quitting {
        /// Progress text shown to the user.
        progress: String,
    },
}

/// What the editor's text is for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EditTarget {
    /// The draft `draft_id` of `contact_id`: Enter approves it with the text.
    Draft {
        /// The contact it answers.
        contact_id: String,
        /// The draft being edited.
        draft_id: String,
        /// The draft as the twin wrote it (unchanged text approves it as is).
        original: String,
    },
    /// The operator's own message to `contact_id`: Enter sends it as them.
    Compose {
        /// The contact written to.
        contact_id: String,
    },
}

impl EditTarget {
    /// The contact the text goes to.
    pub fn contact_id(&self) -> &str {
        match self {
            EditTarget::Draft { contact_id, .. } | EditTarget::Compose { contact_id } => contact_id,
        }
    }
}

/// Where a preview of the twin's answer is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PreviewState {
    /// Asked; the engine is writing.
    Waiting,
    /// What the twin would answer.
    Ready(String),
    /// Why there is no answer (no message to answer, the engine failed).
    Failed(String),
}
