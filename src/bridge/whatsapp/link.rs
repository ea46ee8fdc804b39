//! The narrow boundary between the gateway and the WhatsApp library: what the
//! gateway asks of a connection ([`Link`]), how it gets one ([`Connector`]), and
//! what it hears back ([`LinkEvent`], [`Inbound`]), all plain data, and how it
//! fetches a message's media ([`MediaSource`]). Only `client.rs` implements these
//! for `whatsapp-rust`; the tests use a recording fake.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::mpsc;

use super::inbox::Inbox;
use crate::schema::QueueMessage;
use crate::schema::media::MediaKind;

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
    /// The `QUEUE:messages` entry; for a voice note, audio or photo its content
    /// is the caption (empty when none), never a placeholder.
    pub message: QueueMessage,
    /// The address replies to this contact go to (kept out of Redis).
    pub address: String,
    /// The contact's push name, when the message carried one.
    pub push_name: Option<String>,
    /// The voice note, audio or photo it came with, if any: the entry names it
    /// (`mediaType`) whether or not its bytes are fetched.
    pub media: Option<MediaOffer>,
}

/// A voice note, audio or photo as WhatsApp describes it, before any byte is fetched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaOffer {
    /// Voice (a voice note or audio) or photo.
    pub kind: MediaKind,
    /// The MIME type WhatsApp gave (`audio/ogg; codecs=opus`, `image/jpeg`), or
    /// one of the kind when it gave none valid.
    pub mime: String,
    /// Length of audio, seconds, when WhatsApp gave it.
    pub seconds: Option<u32>,
    /// Size WhatsApp declared, bytes; unknown media are never fetched.
    pub file_length: Option<u64>,
    /// Where the bytes are and how to decrypt them; `None` when they may not
    /// or cannot be fetched (view-once, an incomplete description, no valid MIME type).
    pub location: Option<MediaLocation>,
}

/// Where WhatsApp keeps a message's media and what decrypts it; its `Debug`
/// shows none of it (the key opens the file).
#[derive(Clone, PartialEq, Eq)]
pub struct MediaLocation {
    /// The path on WhatsApp's media servers.
    pub direct_path: String,
    /// The key the file is encrypted with.
    pub media_key: Vec<u8>,
    /// SHA-256 of the decrypted file.
    pub file_sha256: Vec<u8>,
    /// SHA-256 of the encrypted file.
    pub file_enc_sha256: Vec<u8>,
}

impl std::fmt::Debug for MediaLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MediaLocation(..)")
    }
}

/// Where a download streams its decrypted bytes: memory that refuses any
/// write past its limit, so a file larger than it said is dropped after at
/// most the limit and one chunk, never read whole. Once abandoned (its
/// download timed out) it refuses every write, which stops a download still
/// running on another thread.
#[derive(Debug)]
pub struct MediaSink {
    bytes: std::io::Cursor<Vec<u8>>,
    max: usize,
    abandoned: Arc<AtomicBool>,
}

impl MediaSink {
    /// An empty sink taking at most `max` bytes, with room for `declared` (within `max`).
    pub fn new(max: usize, declared: u64) -> Self {
        let room = usize::try_from(declared).map_or(max, |d| d.min(max));
        Self {
            bytes: std::io::Cursor::new(Vec::with_capacity(room)),
            max,
            abandoned: Arc::default(),
        }
    }

    /// A handle that makes every later write fail ([`AbandonHandle::abandon`]).
    pub fn abandon_handle(&self) -> AbandonHandle {
        AbandonHandle(Arc::clone(&self.abandoned))
    }

    /// Shortens the bytes to `len` (a download starting again).
    pub fn truncate(&mut self, len: u64) {
        let len = usize::try_from(len).unwrap_or(usize::MAX);
        self.bytes.get_mut().truncate(len);
        if self.bytes.position() > len as u64 {
            self.bytes.set_position(len as u64);
        }
    }

    /// The bytes written.
    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes.into_inner()
    }
}

impl std::io::Write for MediaSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        use std::io::{Error, ErrorKind};
        if self.abandoned.load(Ordering::Relaxed) {
            // Not `Interrupted`: `write_all` would retry that forever.
            return Err(Error::new(
                ErrorKind::TimedOut,
                "the download was abandoned",
            ));
        }
        let end = usize::try_from(self.bytes.position())
            .ok()
            .and_then(|at| at.checked_add(buf.len()))
            .filter(|end| *end <= self.max)
            .ok_or_else(|| {
                Error::new(ErrorKind::FileTooLarge, "more bytes than the media limit")
            })?;
        // Grown here, never past the limit: the cursor's own growth could double past it.
        let vec = self.bytes.get_mut();
        if end > vec.capacity() {
            let target = end.max(vec.capacity().saturating_mul(2)).min(self.max);
            vec.reserve_exact(target - vec.len());
        }
        self.bytes.write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl std::io::Seek for MediaSink {
    fn seek(&mut self, to: std::io::SeekFrom) -> std::io::Result<u64> {
        self.bytes.seek(to)
    }
}

/// Abandons a [`MediaSink`] from outside its download.
#[derive(Debug, Clone)]
pub struct AbandonHandle(Arc<AtomicBool>);

impl AbandonHandle {
    /// Every later write to the sink fails.
    pub fn abandon(&self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Fetches the bytes of a message's media from WhatsApp.
pub trait MediaSource: Send + Sync {
    /// Streams the decrypted bytes of `offer` into `sink` (in chunks, stopping
    /// at the first write it refuses) and hands it back, or fails.
    fn download(
        &self,
        offer: &MediaOffer,
        sink: MediaSink,
    ) -> impl Future<Output = Result<MediaSink, LinkError>> + Send;
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

#[cfg(test)]
mod tests {
    use std::io::{Seek as _, Write as _};

    use super::*;

    #[test]
    fn a_sink_refuses_the_first_write_past_its_limit_and_never_grows_past_it() {
        // Declared 10 bytes, limit 1000: the file brings more than it said.
        let mut sink = MediaSink::new(1_000, 10);
        for _ in 0..10 {
            sink.write_all(&[5; 100]).expect("within the limit");
        }
        let refused = sink.write_all(&[5; 1]).expect_err("one byte too many");
        assert_eq!(refused.kind(), std::io::ErrorKind::FileTooLarge);
        let bytes = sink.into_bytes();
        assert_eq!(bytes, vec![5; 1_000]);
        assert!(bytes.capacity() <= 1_000, "{}", bytes.capacity());

        let mut huge = MediaSink::new(1_000, u64::MAX);
        assert!(huge.write_all(&[1; 1_001]).is_err(), "refused whole");
        let held = huge.into_bytes();
        assert!(held.is_empty() && held.capacity() <= 1_000);
    }

    #[test]
    fn a_sink_emptied_and_rewound_holds_only_the_new_attempt() {
        let mut sink = MediaSink::new(100, 0);
        sink.write_all(b"stale tail from a failed host")
            .expect("write");
        sink.truncate(0);
        sink.rewind().expect("rewind");
        sink.write_all(b"media").expect("write");
        sink.rewind().expect("rewind");
        assert_eq!(sink.into_bytes(), b"media");
    }

    #[test]
    fn an_abandoned_sink_refuses_every_write() {
        let mut sink = MediaSink::new(100, 0);
        let handle = sink.abandon_handle();
        sink.write_all(b"ab").expect("write");
        handle.abandon();
        assert!(sink.write_all(b"c").is_err());
        assert_eq!(sink.into_bytes(), b"ab");
    }
}
