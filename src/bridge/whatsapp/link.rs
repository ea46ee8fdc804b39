//! The narrow boundary between the gateway and the WhatsApp library: what the
//! gateway asks of a connection ([`Link`]), how it gets one ([`Connector`]), and
//! what it hears back ([`LinkEvent`], [`Inbound`]), all plain data. Only
//! `client.rs` implements these for `whatsapp-rust`; the tests use a recording fake.

use std::future::Future;

use tokio::sync::mpsc;

use super::inbox::Inbox;
use crate::schema::QueueMessage;

/// Why a call on the connection failed (the library's error, as text).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct LinkError(pub String);

/// What the connection reports, in the order it happens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkEvent {
    /// A login code to show as a QR code, valid for `expires_in` seconds.
    Qr {
        /// The text the QR code encodes.
        code: String,
        /// Seconds until the next code replaces it.
        expires_in: u32,
    },
    /// An 8-character code to type on the phone (linking by phone number).
    PairCode {
        /// The code.
        code: String,
        /// Seconds it stays valid.
        expires_in: u32,
    },
    /// Linking by phone number failed (the code will not come or was refused).
    PairCodeFailed {
        /// Why, for the operator.
        reason: String,
    },
    /// WhatsApp gave out its last login code; new ones need a new connection.
    CodesExhausted,
    /// Logged in and connected.
    Connected {
        /// The account (a contact id, never the phone number).
        account: String,
        /// This linked device's number on the account.
        device: u16,
        /// The account's display name.
        name: String,
    },
    /// The connection dropped or could not be made; the next try is at `next_try_ms`.
    Reconnecting {
        /// Why, for the operator.
        reason: String,
        /// When the next attempt starts, ms.
        next_try_ms: i64,
    },
    /// WhatsApp's servers cannot be reached at all (no route, no DNS).
    NoNetwork {
        /// What failed.
        reason: String,
        /// When the next attempt starts, ms.
        next_try_ms: i64,
    },
    /// The device was unlinked (from the phone, or refused by WhatsApp).
    LoggedOut {
        /// Why, for the operator.
        reason: String,
    },
    /// Another program logged in with this device's keys.
    StreamReplaced,
    /// WhatsApp banned the account for a while.
    TemporaryBan {
        /// When it ends, ms.
        until_ms: i64,
        /// WhatsApp's reason.
        reason: String,
    },
}

/// One message from WhatsApp, mapped: the queue entry, where to answer it and
/// the sender's display name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inbound {
    /// The `QUEUE:messages` entry.
    pub message: QueueMessage,
    /// The address replies to this contact go to (kept out of Redis).
    pub address: String,
    /// The contact's push name, when the message carried one.
    pub push_name: Option<String>,
}

/// A live connection to WhatsApp.
pub trait Link: Send + Sync + 'static {
    /// A fresh id for a message about to be sent (the library's `generate_message_id`).
    fn message_id(&self) -> String;
    /// Sends `text` to `to` with the id `id`.
    fn send_text(
        &self,
        to: &str,
        id: &str,
        text: &str,
    ) -> impl Future<Output = Result<(), LinkError>> + Send;
    /// Shows "typing..." in the chat with `to`.
    fn composing(&self, to: &str) -> impl Future<Output = Result<(), LinkError>> + Send;
    /// Clears "typing...".
    fn paused(&self, to: &str) -> impl Future<Output = Result<(), LinkError>> + Send;
    /// Appears offline, so the phone keeps its notifications.
    fn set_unavailable(&self) -> impl Future<Output = Result<(), LinkError>> + Send;
    /// Unlinks this device from the account.
    fn logout(&self) -> impl Future<Output = ()> + Send;
    /// Closes the connection and stops reconnecting.
    fn shutdown(&self) -> impl Future<Output = ()> + Send;
}

/// Opens connections: one per login (a new one after a logout or when the codes ran out).
pub trait Connector: Send + Sync + 'static {
    /// The connection type.
    type Link: Link;
    /// Starts a connection that reports to `events` and commits messages through `inbox`.
    fn connect(
        &self,
        inbox: Inbox,
        events: mpsc::Sender<LinkEvent>,
    ) -> impl Future<Output = anyhow::Result<Self::Link>> + Send;
    /// Whether a device store (a logged-in account's keys) exists.
    fn has_store(&self) -> bool;
    /// Deletes the device store and the gateway's other files, nothing else.
    fn remove_store(&self) -> std::io::Result<()>;
    /// Where the device store lives (for the session manifest).
    fn store_path(&self) -> std::path::PathBuf;
}
