//! SecondMe control room: a pure dashboard model, update function and view.
//!
//! The binary owns every effect (Redis, terminal, clock). It builds a
//! [`Model`], turns what happens into [`Event`]s, calls [`update`], carries
//! out the returned [`Action`]s, and calls [`view`] when `dirty` is set.

#![warn(missing_docs)]

pub mod format;
pub mod keymap;
pub mod llm;
pub mod model;
pub mod sanitize;
pub mod text;
pub mod theme;
pub mod update;
pub mod view;
pub mod widgets;

pub use keymap::{KeyAction, KeyCode, KeyInput, Keymap};
pub use model::{
    Author, ChatMessage, Connection, Contact, Conversation, GatewayPhase, GatewayState, LogEntry,
    LogKind, Mode, Model, Pane, Pause, PauseReason, QrCode, SessionInfo, Snapshot, Stats,
    WorkerState,
};
pub use theme::Theme;
pub use update::{Action, Event, PauseAction, UpdateResult, update};
pub use view::{render, view};
