//! The stand-in for WhatsApp's network: a connector and link behind the
//! gateway's narrow `Connector`/`Link` traits that record what they were asked
//! to do, and fail, hang or pause Redis when a test says so. It also serves
//! media behind the `MediaSource` trait, recording each download.

use secondme::connection::Con;
use std::collections::{HashMap, HashSet};
use std::io::Write as _;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use redis::AsyncCommands;
use secondme::bridge::whatsapp::inbox::Inbox;
use secondme::bridge::whatsapp::link::{
    Connector, Inbound, Link, LinkError, LinkEvent, MediaOffer, MediaSink, MediaSource,
};

/// The chunk the fake media servers stream in: the library's own (8 KiB).
pub const CHUNK: usize = 8 * 1024;
use tokio::sync::mpsc;

/// What the fake was asked to do, in order.
#[derive(Default)]
pub struct Record {
    /// Every call, as `send {to} {id} {text}`, `composing {to}` and the like.
    pub calls: Vec<String>,
    /// `SENT:` keys present when each send happened.
    pub sent_marks_at_send: Vec<Vec<String>>,
    /// The gateway's end of the current connection's events.
    pub events: Option<mpsc::Sender<LinkEvent>>,
    /// The inbox of the current connection.
    pub inbox: Option<Inbox>,
    /// Connections made (or tried).
    pub connects: usize,
    /// Sends of this text fail, as a send WhatsApp did not confirm.
    pub fail_text: Option<String>,
    /// Sends of this text never return (the process dies during them).
    pub hang_text: Option<String>,
    /// When each send was tried.
    pub send_times: Vec<std::time::Instant>,
    /// Connecting fails, as with WhatsApp out of reach.
    pub fail_connect: bool,
    /// A send of this text succeeds, then Redis refuses writes for this long
    /// (`CLIENT PAUSE … WRITE`), past the connection's response timeout.
    pub pause_writes_after: Option<(String, u64)>,
    /// Keys set the first time "typing..." is shown (another gateway's writes
    /// landing meanwhile).
    pub on_composing: Vec<(String, String)>,
    /// The bytes WhatsApp's media servers hold, by path; a path not here fails to download.
    pub media: HashMap<String, Vec<u8>>,
    /// The paths of every download asked for, in order.
    pub downloads: Vec<String>,
    /// Downloads of these paths never answer (a media server that stalls).
    pub stalled: HashSet<String>,
    /// Per download, in order: the bytes handed to the gateway's sink (the
    /// refused chunk included) and the bytes it took.
    pub streamed: Vec<(usize, usize)>,
}

/// A connector like the library: a stored device connects, a new one shows a code.
#[derive(Clone)]
pub struct FakeConnector {
    /// What it and its links were asked to do.
    pub record: Arc<Mutex<Record>>,
    /// The device store: present, a connection logs in without a code.
    pub store: PathBuf,
    /// The test's own connection (to look at and to pause Redis).
    pub redis: Con,
}

/// One connection of [`FakeConnector`].
pub struct FakeLink {
    record: Arc<Mutex<Record>>,
    redis: Con,
}

impl FakeConnector {
    /// Every call so far.
    pub fn calls(&self) -> Vec<String> {
        self.record.lock().expect("lock").calls.clone()
    }

    /// Sends `event` as the connection's next.
    pub async fn emit(&self, event: LinkEvent) {
        let tx = self.record.lock().expect("lock").events.clone();
        tx.expect("connected")
            .send(event)
            .await
            .expect("gateway listening");
    }

    /// The connection ends by itself: its event channel closes.
    pub fn drop_link(&self) {
        self.record.lock().expect("lock").events = None;
    }

    /// Delivers `batch` as the library's durability hook does: through the
    /// inbox, fetching media from this fake.
    pub async fn deliver(&self, batch: Vec<Inbound>) -> anyhow::Result<()> {
        self.inbox().receive(batch, self).await
    }

    /// WhatsApp's media servers hold `bytes` at `path`.
    pub fn serve(&self, path: &str, bytes: &[u8]) {
        let mut r = self.record.lock().expect("lock");
        r.media.insert(path.to_owned(), bytes.to_vec());
    }

    /// The paths downloaded so far.
    pub fn downloads(&self) -> Vec<String> {
        self.record.lock().expect("lock").downloads.clone()
    }

    /// Downloads of `path` never answer.
    pub fn stall(&self, path: &str) {
        self.record
            .lock()
            .expect("lock")
            .stalled
            .insert(path.to_owned());
    }

    /// What each download streamed: (bytes handed to the sink, bytes it took).
    pub fn streamed(&self) -> Vec<(usize, usize)> {
        self.record.lock().expect("lock").streamed.clone()
    }

    /// The inbox the gateway gave the current connection.
    pub fn inbox(&self) -> Inbox {
        self.record
            .lock()
            .expect("lock")
            .inbox
            .clone()
            .expect("connected")
    }
}

impl Connector for FakeConnector {
    type Link = FakeLink;

    async fn connect(
        &self,
        inbox: Inbox,
        events: mpsc::Sender<LinkEvent>,
    ) -> anyhow::Result<FakeLink> {
        {
            let mut r = self.record.lock().expect("lock");
            r.connects += 1;
            if r.fail_connect {
                anyhow::bail!("connection refused");
            }
            r.events = Some(events.clone());
            r.inbox = Some(inbox);
        }
        let first = if self.has_store() {
            LinkEvent::Connected {
                account: "wa_account".into(),
                device: 7,
                name: "Alice".into(),
            }
        } else {
            LinkEvent::Qr {
                code: "2@fake-code".into(),
                expires_in: 60,
            }
        };
        events.send(first).await?;
        Ok(FakeLink {
            record: Arc::clone(&self.record),
            redis: self.redis.clone(),
        })
    }

    fn has_store(&self) -> bool {
        self.store.exists()
    }

    fn remove_store(&self) -> std::io::Result<()> {
        std::fs::remove_file(&self.store)
    }

    fn store_path(&self) -> PathBuf {
        self.store.clone()
    }
}

/// Streams like the library: the bytes go into the sink chunk by chunk, and
/// the download stops at the first chunk the sink refuses.
impl MediaSource for FakeConnector {
    async fn download(
        &self,
        offer: &MediaOffer,
        mut sink: MediaSink,
    ) -> Result<MediaSink, LinkError> {
        let path = offer
            .location
            .as_ref()
            .map(|l| l.direct_path.clone())
            .ok_or_else(|| LinkError("nothing says where the media is".into()))?;
        let (served, stalled) = {
            let mut r = self.record.lock().expect("lock");
            r.downloads.push(path.clone());
            (r.media.get(&path).cloned(), r.stalled.contains(&path))
        };
        if stalled {
            std::future::pending::<()>().await;
        }
        let bytes = served.ok_or_else(|| LinkError(format!("media server: 404 for {path}")))?;
        let (mut handed, mut taken) = (0, 0);
        let mut refused = None;
        for chunk in bytes.chunks(CHUNK) {
            handed += chunk.len();
            if let Err(e) = sink.write_all(chunk) {
                refused = Some(e);
                break;
            }
            taken += chunk.len();
        }
        self.record
            .lock()
            .expect("lock")
            .streamed
            .push((handed, taken));
        match refused {
            Some(e) => Err(LinkError(format!("writing the media: {e}"))),
            None => Ok(sink),
        }
    }
}

impl FakeLink {
    fn call(&self, text: String) {
        self.record.lock().expect("lock").calls.push(text);
    }
}

impl Link for FakeLink {
    fn message_id(&self) -> String {
        let n = self.record.lock().expect("lock").calls.len();
        format!("FAKE{n}")
    }

    async fn send_text(&self, to: &str, id: &str, text: &str) -> Result<(), LinkError> {
        let mut con = self.redis.clone();
        let marks: Vec<String> = con.keys("SENT:*").await.unwrap_or_default();
        let fail = {
            let mut r = self.record.lock().expect("lock");
            r.sent_marks_at_send.push(marks);
            r.send_times.push(std::time::Instant::now());
            r.fail_text.as_deref() == Some(text)
        };
        let hang = self.record.lock().expect("lock").hang_text.as_deref() == Some(text);
        self.call(format!("send {to} {id} {text}"));
        if hang {
            std::future::pending::<()>().await;
        }
        if fail {
            return Err(LinkError(
                "timed out waiting for the server's ack to 15550001111@s.whatsapp.net".into(),
            ));
        }
        let pause = self.record.lock().expect("lock").pause_writes_after.clone();
        if let Some((_, ms)) = pause.filter(|(t, _)| t == text) {
            let _: () = redis::cmd("CLIENT")
                .arg("PAUSE")
                .arg(ms)
                .arg("WRITE")
                .query_async(&mut con)
                .await
                .expect("CLIENT PAUSE");
        }
        Ok(())
    }

    async fn composing(&self, to: &str) -> Result<(), LinkError> {
        self.call(format!("composing {to}"));
        let writes = std::mem::take(&mut self.record.lock().expect("lock").on_composing);
        let mut con = self.redis.clone();
        for (key, value) in writes {
            let _: () = con.set(&key, &value).await.expect("SET");
        }
        Ok(())
    }

    async fn paused(&self, to: &str) -> Result<(), LinkError> {
        self.call(format!("paused {to}"));
        Ok(())
    }

    async fn set_unavailable(&self) -> Result<(), LinkError> {
        self.call("unavailable".into());
        Ok(())
    }

    async fn logout(&self) {
        self.call("logout".into());
    }

    async fn shutdown(&self) {
        self.call("shutdown".into());
    }
}
