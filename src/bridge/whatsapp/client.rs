//! The [`Connector`] and [`Link`] of `whatsapp-rust`: the only code that drives
//! the library. It turns the library's events into [`LinkEvent`]s, commits
//! incoming messages through the durability hook, and owns the reconnect loop
//! (the library's own is switched off) so every failed attempt is reported with
//! its next try, and "no network" is told apart from a dropped connection.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, Result};
use tokio::sync::{Notify, mpsc};
use whatsapp_rust::pair_code::PairCodeOptions;
use whatsapp_rust::prelude::*;
use whatsapp_rust::transport::TokioWebSocketTransportFactory;
use whatsapp_rust::types::events::ConnectFailureReason;

use super::contact::{ContactHasher, Person};
use super::inbox::Inbox;
use super::link::{
    Connector, Inbound, Link, LinkError, LinkEvent, MediaOffer, MediaSink, MediaSource,
};
use super::mapping::{self, MapOptions};
use crate::private_file;
use crate::store::now_ms;

/// The device store's file name inside its directory.
pub const STORE_FILE: &str = "device.db";

/// The contact directory's file name (contact id to address), beside the store.
pub const CONTACTS_FILE: &str = "contacts.json";

/// Every file the gateway makes in its directory, and only those: `logout`
/// deletes them and a start makes them 0600, leaving anything else there alone.
/// The store is SQLite's database with its journals (write-ahead log and shared
/// memory in WAL mode, the library's default; a rollback journal otherwise);
/// the contact directory is written through a temporary file and a rename
/// ([`super::inbox::Directory`]).
pub const OWN_FILES: [&str; 6] = [
    STORE_FILE,
    "device.db-wal",
    "device.db-shm",
    "device.db-journal",
    CONTACTS_FILE,
    "contacts.tmp",
];

/// WhatsApp's WebSocket endpoint, the library's default.
pub const DEFAULT_ENDPOINT: &str = whatsapp_rust::wacore::net::WHATSAPP_WEB_WS_URL;

/// Environment variable that points the client (and the network probe) at another
/// WebSocket endpoint: for tests (a closed local port) or a relay. Unset in production.
pub const ENDPOINT_ENV: &str = "SECONDME_WHATSAPP_ENDPOINT";

/// Opens `whatsapp-rust` connections on a device store in `dir`.
#[derive(Debug, Clone)]
pub struct WhatsAppConnector {
    dir: PathBuf,
    hasher: ContactHasher,
    map: MapOptions,
    phone: Option<String>,
    endpoint: String,
}

impl WhatsAppConnector {
    /// A connector keeping the device store in `dir` (created 0700).
    pub fn new(dir: PathBuf, hasher: ContactHasher, map: MapOptions) -> Self {
        Self {
            dir,
            hasher,
            map,
            phone: None,
            endpoint: DEFAULT_ENDPOINT.to_owned(),
        }
    }

    /// Connects to `url` (`wss://host/path` or `ws://host:port/path`) instead of WhatsApp.
    pub fn with_endpoint(mut self, url: String) -> Self {
        self.endpoint = url;
        self
    }

    /// Logs in with an 8-character pair code for `digits` instead of only the QR code.
    pub fn with_phone(mut self, digits: String) -> Self {
        self.phone = Some(digits);
        self
    }
}

impl Connector for WhatsAppConnector {
    type Link = WhatsAppLink;

    async fn connect(&self, inbox: Inbox, events: mpsc::Sender<LinkEvent>) -> Result<WhatsAppLink> {
        let path = prepare_store(&self.dir)?;
        let url = path
            .to_str()
            .context("the device store's path is not UTF-8")?
            .to_owned();
        let store = SqliteStore::new(&url)
            .await
            .map_err(|e| anyhow::anyhow!("cannot open the device store: {e}"))?;
        private_files(&self.dir);
        let probe_at = probe_address(&self.endpoint)
            .with_context(|| format!("{ENDPOINT_ENV} is not a ws:// or wss:// URL"))?;
        let shared = Arc::new(Shared {
            probe_at,
            events,
            hasher: self.hasher.clone(),
            terminal: AtomicBool::new(false),
            connected: AtomicBool::new(false),
            wake: Notify::new(),
        });
        let hook = Hook {
            inbox,
            hasher: self.hasher.clone(),
            map: self.map,
        };
        let on_event = Arc::clone(&shared);
        let mut builder = Bot::builder()
            .with_backend(store)
            .with_transport_factory(TokioWebSocketTransportFactory::new().with_url(&self.endpoint))
            .with_inbound_durability_hook(hook)
            .with_event_delivery(EventDelivery::Ordered { capacity: 1024 })
            .skip_history_sync()
            .on_event(move |event, client| {
                let shared = Arc::clone(&on_event);
                async move { shared.forward(&event, &client).await }
            });
        if let Some(phone) = &self.phone {
            builder = builder.with_pair_code(PairCodeOptions {
                phone_number: phone.clone(),
                ..Default::default()
            });
        }
        let bot = builder
            .build()
            .await
            .map_err(|e| anyhow::anyhow!("cannot start the WhatsApp client: {e}"))?;
        let client = bot.client();
        // Our loop reconnects (see `supervise`), so each attempt is reported.
        client.enable_auto_reconnect.store(false, Ordering::SeqCst);
        let task = tokio::spawn(supervise(bot, Arc::clone(&shared)));
        Ok(WhatsAppLink {
            client,
            shared,
            task,
        })
    }

    fn has_store(&self) -> bool {
        self.dir.join(STORE_FILE).exists()
    }

    fn remove_store(&self) -> std::io::Result<()> {
        use std::io::ErrorKind;
        for name in OWN_FILES {
            let path = self.dir.join(name);
            match std::fs::remove_file(&path) {
                Err(e) if e.kind() != ErrorKind::NotFound => {
                    return Err(std::io::Error::new(
                        e.kind(),
                        format!("{}: {e}", path.display()),
                    ));
                }
                _ => {}
            }
        }
        // The directory was made for the store: it goes too, unless the user keeps
        // something else in it.
        match std::fs::remove_dir(&self.dir) {
            Err(e) if !matches!(e.kind(), ErrorKind::NotFound | ErrorKind::DirectoryNotEmpty) => {
                Err(e)
            }
            _ => Ok(()),
        }
    }

    fn store_path(&self) -> PathBuf {
        self.dir.join(STORE_FILE)
    }
}

/// Creates the store's directory 0700 and its file 0600 before SQLite opens it.
fn prepare_store(dir: &Path) -> Result<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    private_file::create_dir(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    // The directory is ours alone even when it existed: it holds the account's keys.
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(private_file::DIR_MODE))
        .with_context(|| format!("cannot make {} private", dir.display()))?;
    let path = dir.join(STORE_FILE);
    drop(
        private_file::open_append(&path)
            .with_context(|| format!("cannot create {}", path.display()))?,
    );
    Ok(path)
}

/// SQLite's journal files are created with the process's umask: the gateway's
/// files ([`OWN_FILES`]) are made 0600 too. Nothing else in the directory is
/// touched, and a link or folder under one of those names is not followed.
fn private_files(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    for name in OWN_FILES {
        let path = dir.join(name);
        if !std::fs::symlink_metadata(&path).is_ok_and(|m| m.is_file()) {
            continue;
        }
        let private = std::fs::Permissions::from_mode(private_file::FILE_MODE);
        if let Err(e) = std::fs::set_permissions(&path, private) {
            tracing::warn!(
                "whatsapp gateway: cannot make {} private: {e}",
                path.display()
            );
        }
    }
}

/// What the event handler and the reconnect loop share.
struct Shared {
    /// `host:port` of the endpoint, for the network probe.
    probe_at: String,
    events: mpsc::Sender<LinkEvent>,
    hasher: ContactHasher,
    /// No more reconnecting: logged out, replaced, banned, codes used up, or shut down.
    terminal: AtomicBool,
    /// Connected since the last attempt began.
    connected: AtomicBool,
    wake: Notify,
}

impl Shared {
    async fn forward(&self, event: &Event, client: &Arc<Client>) {
        let mapped = match event {
            Event::PairingQrCode(qr) => Some(LinkEvent::Qr {
                code: qr.code.clone(),
                expires_in: secs(qr.timeout),
            }),
            Event::PairingCode(code) => Some(LinkEvent::PairCode {
                code: code.code.clone(),
                expires_in: secs(code.timeout),
            }),
            Event::PairingCodeError(e) => Some(LinkEvent::PairCodeFailed {
                reason: e.error.clone(),
            }),
            Event::PairingQrCodesExhausted(_) => {
                self.stop();
                Some(LinkEvent::CodesExhausted)
            }
            Event::Connected(_) => {
                self.connected.store(true, Ordering::SeqCst);
                let pn = client.pn();
                let account = pn
                    .as_ref()
                    .and_then(|j| Person::from_address(&j.user, j.server.as_str()))
                    .map(|p| self.hasher.id(&p))
                    .unwrap_or_default();
                Some(LinkEvent::Connected {
                    account,
                    device: pn.map(|j| j.device).unwrap_or(0),
                    name: client.push_name(),
                })
            }
            Event::LoggedOut(out) => {
                self.stop();
                Some(LinkEvent::LoggedOut {
                    reason: logout_reason(out.reason),
                })
            }
            Event::StreamReplaced(_) => {
                self.stop();
                Some(LinkEvent::StreamReplaced)
            }
            Event::TemporaryBan(ban) => {
                self.stop();
                Some(LinkEvent::TemporaryBan {
                    until_ms: now_ms() + ban.expire.num_milliseconds(),
                    reason: ban.code.to_string(),
                })
            }
            _ => None,
        };
        if let Some(event) = mapped {
            let _ = self.events.send(event).await;
        }
    }

    fn stop(&self) {
        self.terminal.store(true, Ordering::SeqCst);
        self.wake.notify_waiters();
    }
}

fn logout_reason(reason: ConnectFailureReason) -> String {
    match reason {
        ConnectFailureReason::LoggedOut => "the device was unlinked".into(),
        ConnectFailureReason::AccountLocked => "WhatsApp locked the account".into(),
        other => format!("WhatsApp ended the session ({other:?})"),
    }
}

fn secs(d: Duration) -> u32 {
    u32::try_from(d.as_secs()).unwrap_or(u32::MAX).max(1)
}

/// Runs the client, and again after each failure with backoff (1 s doubling to
/// 5 min; back to 1 s after a connection), reporting each wait.
async fn supervise(bot: Bot, shared: Arc<Shared>) {
    let client = bot.client();
    bot.run().await;
    let mut step = 0u32;
    while !shared.terminal.load(Ordering::SeqCst) {
        if shared.connected.swap(false, Ordering::SeqCst) {
            step = 0;
        }
        let wait = Duration::from_secs(1u64 << step.min(8)).min(Duration::from_secs(300));
        step += 1;
        let next_try_ms = now_ms() + i64::try_from(wait.as_millis()).unwrap_or(0);
        let event = match probe(shared.probe_at.clone()).await {
            Err(reason) => LinkEvent::NoNetwork {
                reason,
                next_try_ms,
            },
            Ok(()) => LinkEvent::Reconnecting {
                reason: "the connection to WhatsApp closed or could not be made".into(),
                next_try_ms,
            },
        };
        if shared.terminal.load(Ordering::SeqCst) {
            break;
        }
        let _ = shared.events.send(event).await;
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = shared.wake.notified() => {}
        }
        if shared.terminal.load(Ordering::SeqCst) {
            break;
        }
        client.run().await;
    }
}

/// Whether WhatsApp's servers (`host:port`) can be reached at all: DNS and a TCP connection.
async fn probe(address: String) -> Result<(), String> {
    let attempt = tokio::task::spawn_blocking(move || {
        use std::net::ToSocketAddrs;
        let host = address
            .rsplit_once(':')
            .map_or(address.as_str(), |(h, _)| h);
        let addresses: Vec<_> = address
            .to_socket_addrs()
            .map_err(|e| format!("cannot resolve {host}: {e}"))?
            .collect();
        let mut last = format!("{host} has no address");
        for a in addresses {
            match std::net::TcpStream::connect_timeout(&a, Duration::from_secs(5)) {
                Ok(_) => return Ok(()),
                Err(e) => last = format!("cannot reach {host}: {e}"),
            }
        }
        Err(last)
    });
    attempt.await.map_err(|e| e.to_string())?
}

/// `host:port` of a `ws://` or `wss://` URL (default ports 80 and 443).
fn probe_address(url: &str) -> Option<String> {
    let (rest, port) = if let Some(rest) = url.strip_prefix("wss://") {
        (rest, 443)
    } else {
        (url.strip_prefix("ws://")?, 80)
    };
    let authority = rest.split(['/', '?', '#']).next()?;
    if authority.is_empty() || authority.contains('@') {
        return None;
    }
    let has_port = authority
        .rsplit_once(':')
        .is_some_and(|(_, p)| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    Some(if has_port {
        authority.to_owned()
    } else {
        format!("{authority}:{port}")
    })
}

/// The durability hook: a batch is acknowledged to WhatsApp only once it is in Redis.
struct Hook {
    inbox: Inbox,
    hasher: ContactHasher,
    map: MapOptions,
}

#[whatsapp_rust::async_trait]
impl whatsapp_rust::InboundDurabilityHook for Hook {
    async fn on_messages(
        &self,
        client: Arc<Client>,
        batch: &[InboundMessage],
    ) -> whatsapp_rust::anyhow::Result<()> {
        let mut entries: Vec<Inbound> = Vec::with_capacity(batch.len());
        for m in batch {
            let info = with_known_phone(&client, &m.info).await;
            match mapping::map(&info, &m.message, &self.hasher, self.map) {
                Ok(entry) => entries.push(entry),
                Err(skip) => tracing::debug!("whatsapp gateway: message skipped ({skip:?})"),
            }
        }
        self.inbox
            .receive(entries, &ClientMedia(&client))
            .await
            .map_err(|e| whatsapp_rust::anyhow::anyhow!("{e:#}"))
    }
}

/// Media downloads through the library's client, streamed into the sink
/// (`download_from_params_to_writer`): the sink refuses the first chunk past
/// the limit, so a file larger than it said is never held whole. The chat's
/// message lane waits for them, not the connection's reader, so the
/// media-server query a download makes is answered meanwhile.
struct ClientMedia<'a>(&'a Client);

impl MediaSource for ClientMedia<'_> {
    async fn download(&self, offer: &MediaOffer, sink: MediaSink) -> Result<MediaSink, LinkError> {
        use whatsapp_rust::download::{DownloadParams, MediaType};
        let media_type = match offer.kind {
            crate::schema::media::MediaKind::Voice => MediaType::Audio,
            crate::schema::media::MediaKind::Photo => MediaType::Image,
            crate::schema::media::MediaKind::Other => {
                return Err(LinkError("only voice notes and photos are fetched".into()));
            }
        };
        let at = offer
            .location
            .as_ref()
            .ok_or_else(|| LinkError("the media cannot be fetched".into()))?;
        let params = DownloadParams::encrypted(
            at.direct_path.clone(),
            &at.media_key,
            &at.file_sha256,
            &at.file_enc_sha256,
            offer.file_length.unwrap_or(0),
            media_type,
        );
        self.0
            .download_from_params_to_writer(&params, sink)
            .await
            .map_err(|e| LinkError(e.to_string()))
    }
}

/// The library empties the sink before each attempt (another media host
/// after a failed one), so a retry never follows a stale tail.
impl whatsapp_rust::download::DownloadWriter for MediaSink {
    fn truncate(&mut self, len: u64) -> std::io::Result<()> {
        MediaSink::truncate(self, len);
        Ok(())
    }
}

/// The message's info with the chat's phone form filled in when the library
/// knows it, so a contact seen by LID and by number keeps one id.
async fn with_known_phone(client: &Arc<Client>, info: &MessageInfo) -> MessageInfo {
    let mut info = info.clone();
    let source = &mut info.source;
    let alt = if source.is_from_me {
        &mut source.recipient_alt
    } else {
        &mut source.sender_alt
    };
    if source.chat.is_lid()
        && alt.is_none()
        && let Ok(Some(entry)) = client.get_lid_pn_entry(&source.chat).await
    {
        *alt = Some(Jid::pn(entry.phone_number.to_string()));
    }
    info
}

/// A connection of the library's client.
pub struct WhatsAppLink {
    client: Arc<Client>,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

fn jid(to: &str) -> Result<Jid, LinkError> {
    to.parse()
        .map_err(|e| LinkError(format!("not a WhatsApp address: {e}")))
}

impl Link for WhatsAppLink {
    fn message_id(&self) -> String {
        self.client.generate_message_id()
    }

    async fn send_text(&self, to: &str, id: &str, text: &str) -> Result<(), LinkError> {
        let message = wa::Message {
            conversation: Some(text.to_owned()),
            ..Default::default()
        };
        self.client
            .send_message_with_options(
                jid(to)?,
                message,
                SendOptions::default().with_message_id(id),
            )
            .await
            .map(|_| ())
            .map_err(|e| LinkError(e.to_string()))
    }

    async fn composing(&self, to: &str) -> Result<(), LinkError> {
        self.client
            .chatstate()
            .send_composing(&jid(to)?)
            .await
            .map_err(|e| LinkError(e.to_string()))
    }

    async fn paused(&self, to: &str) -> Result<(), LinkError> {
        self.client
            .chatstate()
            .send_paused(&jid(to)?)
            .await
            .map_err(|e| LinkError(e.to_string()))
    }

    async fn set_unavailable(&self) -> Result<(), LinkError> {
        self.client
            .presence()
            .set_unavailable()
            .await
            .map_err(|e| LinkError(e.to_string()))
    }

    async fn logout(&self) {
        self.shared.stop();
        self.client.logout().await;
    }

    async fn shutdown(&self) {
        self.shared.stop();
        // Bounded: a flush that hangs on a dead socket must not hold the gateway.
        let _ = tokio::time::timeout(Duration::from_secs(10), self.client.disconnect()).await;
        self.task.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_probe_goes_where_the_client_connects() {
        assert_eq!(
            probe_address(DEFAULT_ENDPOINT).as_deref(),
            Some("web.whatsapp.com:443")
        );
        assert_eq!(
            probe_address("ws://127.0.0.1:9/ws/chat").as_deref(),
            Some("127.0.0.1:9")
        );
        assert_eq!(probe_address("ws://relay").as_deref(), Some("relay:80"));
        assert_eq!(probe_address("http://x/ws"), None);
        assert_eq!(probe_address("wss://user@x/ws"), None);
        assert_eq!(probe_address("wss:///ws"), None);
    }
}
