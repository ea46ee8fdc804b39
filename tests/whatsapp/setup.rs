//! A test gateway over the fake: how it starts (and starts again on an
//! earlier run's store), what a test writes for it (messages in, replies out)
//! and what a test reads back (its state, its sends, dead letters, pending replies).

use secondme::connection::Con;
use std::sync::Arc;
use std::time::Duration;

use redis::AsyncCommands;
use secondme::bridge::whatsapp::gateway::{Exit, GatewayOptions, WhatsAppGateway};
use secondme::bridge::whatsapp::inbox::{Directory, Inbox};
use secondme::bridge::whatsapp::link::Inbound;
use secondme::bridge::whatsapp::status;
use secondme::schema::{self, Direction, QueueMessage};
use secondme::seal::SessionKey;
use tokio::sync::watch;

use crate::common::{Harness, TestDir, eventually, streams};
use crate::fake::FakeConnector;

/// The account the test gateways log into.
pub const USER: &str = "user-1";
/// The contact every test talks with (a contact id as the gateway makes them).
pub const CONTACT: &str = "wa_0123456789abcdef01234567";

/// A test gateway running in its task, with its fake and its files.
pub struct Running {
    pub fake: FakeConnector,
    pub key: SessionKey,
    pub stop: watch::Sender<bool>,
    pub task: tokio::task::JoinHandle<anyhow::Result<Exit>>,
    pub _dir: TestDir,
}

impl Running {
    /// Stops the gateway and waits until it is gone, whatever it returned.
    pub async fn finish(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// How a test gateway starts, beyond the defaults of [`start`].
pub struct Setup {
    /// The directory of an earlier run (its store and contacts), or a new one.
    pub dir: Option<TestDir>,
    /// The session key of an earlier run, or a new one.
    pub key: Option<SessionKey>,
    /// Sends of this text fail.
    pub fail_text: Option<String>,
    /// Sends of this text never return.
    pub hang_text: Option<String>,
    /// The gateway's Redis connection (another user), or the harness's.
    pub con: Option<Con>,
    /// Failed sends of one reply before it is dead-lettered.
    pub send_attempts: u32,
    /// Wait after a reply's first failed send.
    pub send_retry: Duration,
    /// How often the state and the session are rewritten.
    pub refresh: Duration,
    /// The gateway's consumer name in its group.
    pub consumer: String,
    /// Replies sent per minute at most.
    pub send_per_minute: u32,
    /// Replicas an inbound message and a reply's claim wait for.
    pub replicas_to_wait: u32,
    /// How long the account's lease outlives its last renewal.
    pub lease_ttl: Duration,
    /// Largest media fetched, bytes.
    pub media_max_bytes: usize,
    /// Longest one download and all of a batch's downloads may take, when not the defaults.
    pub media_times: Option<(Duration, Duration)>,
}

impl Default for Setup {
    fn default() -> Self {
        Self {
            dir: None,
            key: None,
            fail_text: None,
            hang_text: None,
            con: None,
            send_attempts: 5,
            send_retry: Duration::from_millis(300),
            refresh: status::REFRESH,
            consumer: "gw-test".into(),
            send_per_minute: 60,
            replicas_to_wait: 0,
            lease_ttl: secondme::bridge::whatsapp::lease::TTL,
            media_max_bytes: schema::media::DEFAULT_MAX_BYTES,
            media_times: None,
        }
    }
}

/// A gateway with the default [`Setup`], with a device store or without.
pub async fn start(h: &Harness, with_store: bool) -> Running {
    start_with(h, with_store, Setup::default()).await
}

/// The gateway started again on an earlier run's store, contacts and key.
pub async fn start_again(h: &Harness, dir: TestDir, key: SessionKey) -> Running {
    let setup = Setup {
        dir: Some(dir),
        key: Some(key),
        ..Setup::default()
    };
    start_with(h, true, setup).await
}

/// A gateway as `setup` says, with a device store or without.
pub async fn start_with(h: &Harness, with_store: bool, setup: Setup) -> Running {
    let dir = setup.dir.unwrap_or_else(|| TestDir::new("wa"));
    let store = dir.join("device.db");
    if with_store {
        std::fs::write(&store, b"keys").expect("store");
    }
    let fake = FakeConnector {
        record: Arc::default(),
        store,
        redis: h.con.clone(),
    };
    {
        let mut r = fake.record.lock().expect("lock");
        r.fail_text = setup.fail_text;
        r.hang_text = setup.hang_text;
    }
    let key = setup.key.unwrap_or_else(SessionKey::generate);
    let directory = Directory::open(dir.join("contacts.json")).expect("directory");
    let con = setup.con.unwrap_or_else(|| h.con.clone());
    let mut inbox =
        Inbox::new(con.clone(), h.acked, directory).with_media_limit(setup.media_max_bytes);
    if let Some((download, batch)) = setup.media_times {
        inbox = inbox.with_media_times(download, batch);
    }
    let opts = GatewayOptions {
        user_id: USER.into(),
        key: key.clone(),
        send_per_minute: setup.send_per_minute,
        typing_refresh: Duration::from_millis(400),
        send_attempts: setup.send_attempts,
        send_retry: setup.send_retry,
        refresh: setup.refresh,
        until_connected: false,
        consumer: setup.consumer,
        replicas_to_wait: setup.replicas_to_wait,
        lease_ttl: setup.lease_ttl,
    };
    let gateway = WhatsAppGateway::new(fake.clone(), con, inbox, opts);
    let (stop, stop_rx) = watch::channel(false);
    let task = tokio::spawn(gateway.run(stop_rx));
    Running {
        fake,
        key,
        stop,
        task,
        _dir: dir,
    }
}

/// A gateway connected with a store, after `CONTACT` wrote `text` (so the
/// gateway knows the contact's address).
pub async fn met_a_contact(h: &mut Harness, setup: Setup, text: &str) -> Running {
    let run = start_with(h, true, setup).await;
    wait_state(h, status::State::Connected).await;
    run.fake
        .inbox()
        .commit(&[inbound("A1", text)])
        .await
        .expect("commit");
    run
}

/// The state `GATEWAY:{userId}` holds now.
pub async fn state(h: &mut Harness) -> Option<status::GatewayStatus> {
    let json: Option<String> = h.con.get(schema::gateway_key(USER)).await.ok()?;
    serde_json::from_str(&json?).ok()
}

/// Waits until `GATEWAY:{userId}` shows `want`, and returns it.
pub async fn wait_state(h: &mut Harness, want: status::State) -> status::GatewayStatus {
    let con = h.con.clone();
    let found = eventually(Duration::from_secs(5), || {
        let mut con = con.clone();
        async move {
            let json: Option<String> = con.get(schema::gateway_key(USER)).await.ok()?;
            let s: status::GatewayStatus = serde_json::from_str(&json?).ok()?;
            (s.state == want).then_some(s)
        }
    })
    .await;
    match found {
        Some(s) => s,
        None => panic!("gateway never reached {want:?}; last: {:?}", state(h).await),
    }
}

/// A message from [`CONTACT`] as the link hands it to the inbox.
pub fn inbound(id: &str, text: &str) -> Inbound {
    Inbound {
        message: QueueMessage {
            message_id: format!("{CONTACT}.{id}"),
            contact_id: CONTACT.into(),
            content: text.into(),
            timestamp: secondme::store::now_ms(),
            direction: Direction::Incoming,
            from_me: false,
        },
        address: "15550001111@s.whatsapp.net".into(),
        push_name: Some("Bob".into()),
        media: None,
    }
}

/// A reply of "sounds good" to [`CONTACT`] on `QUEUE:responses`.
pub async fn queue_reply(h: &mut Harness, reply_id: &str, delay_ms: u64) {
    queue_text(h, reply_id, "sounds good", delay_ms).await;
}

/// A reply of `text` to [`CONTACT`] on `QUEUE:responses`; its stream id.
pub async fn queue_text(h: &mut Harness, reply_id: &str, text: &str, delay_ms: u64) -> String {
    queue_text_on(&mut h.con, reply_id, text, delay_ms).await
}

/// [`queue_text`] through `con` (a Redis other than the harness's).
pub async fn queue_text_on(con: &mut Con, reply_id: &str, text: &str, delay_ms: u64) -> String {
    con.xadd(
        schema::queue_responses(),
        "*",
        &[
            (schema::response_fields::REPLY_ID, reply_id.to_owned()),
            (schema::response_fields::CONTACT_ID, CONTACT.to_owned()),
            (schema::response_fields::CONTENT, text.to_owned()),
            (schema::response_fields::IN_REPLY_TO, "m1".to_owned()),
            (schema::response_fields::DELAY_MS, delay_ms.to_string()),
        ],
    )
    .await
    .expect("xadd")
}

/// Waits for a dead letter, then reads them all.
pub async fn dead_letters(h: &mut Harness) -> Vec<std::collections::HashMap<String, String>> {
    let con = h.con.clone();
    eventually(Duration::from_secs(15), || {
        let mut con = con.clone();
        async move {
            let n: usize = con.xlen(schema::queue_deadletter()).await.ok()?;
            (n > 0).then_some(())
        }
    })
    .await
    .expect("a dead letter");
    h.dead_letters().await
}

/// Replies the gateway's group holds pending.
pub async fn pending_replies(h: &mut Harness) -> u64 {
    streams::pending(&mut h.con, schema::queue_responses(), "secondme-gateway").await
}

/// The WhatsApp ids a fake's sends of `text` used, in order.
pub fn send_ids(calls: &[String], text: &str) -> Vec<String> {
    calls
        .iter()
        .filter(|c| c.starts_with("send") && c.ends_with(text))
        .filter_map(|c| c.split(' ').nth(2).map(str::to_owned))
        .collect()
}

/// Waits until `run`'s fake has sent `text` `n` times; its sends' WhatsApp ids.
pub async fn sent_times(run: &Running, text: &str, n: usize) -> Vec<String> {
    let fake = run.fake.clone();
    let text = text.to_owned();
    eventually(Duration::from_secs(8), || {
        let ids = send_ids(&fake.calls(), &text);
        async move { (ids.len() >= n).then_some(ids) }
    })
    .await
    .unwrap_or_else(|| panic!("{n} sends of {text:?}: {:?}", run.fake.calls()))
}
