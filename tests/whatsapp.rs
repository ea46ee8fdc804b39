//! The WhatsApp gateway against a real redis-server: its behaviour behind the
//! `Link`/`Connector` trait with a recording fake (WhatsApp's network cannot
//! run here), and the real binary with the real library when there is no network.

mod common;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use common::{Harness, TestDir, eventually};
use redis::AsyncCommands;
use secondme::bridge::whatsapp::gateway::{self, Exit, GatewayOptions, WhatsAppGateway};
use secondme::bridge::whatsapp::inbox::{Directory, Inbox};
use secondme::bridge::whatsapp::link::{Connector, Inbound, Link, LinkError, LinkEvent};
use secondme::bridge::whatsapp::status;
use secondme::schema::{self, Direction, QueueMessage};
use secondme::seal::{self, SessionKey};
use tokio::sync::{mpsc, watch};

const USER: &str = "user-1";
const CONTACT: &str = "wa_0123456789abcdef01234567";

/// What the fake was asked to do, in order.
#[derive(Default)]
struct Record {
    calls: Vec<String>,
    /// `SENT:` keys present when each send happened.
    sent_marks_at_send: Vec<Vec<String>>,
    events: Option<mpsc::Sender<LinkEvent>>,
    inbox: Option<Inbox>,
    connects: usize,
    /// Sends of this text fail, as a send WhatsApp did not confirm.
    fail_text: Option<String>,
    /// Sends of this text never return (the process dies during them).
    hang_text: Option<String>,
    /// When each send was tried.
    send_times: Vec<std::time::Instant>,
    /// Connecting fails, as with WhatsApp out of reach.
    fail_connect: bool,
    /// A send of this text succeeds, then Redis refuses writes for this long
    /// (`CLIENT PAUSE … WRITE`), past the connection's response timeout.
    pause_writes_after: Option<(String, u64)>,
    /// Keys set the first time "typing..." is shown (another gateway's writes
    /// landing meanwhile).
    on_composing: Vec<(String, String)>,
}

/// A connector like the library: a stored device connects, a new one shows a code.
#[derive(Clone)]
struct FakeConnector {
    record: Arc<Mutex<Record>>,
    store: PathBuf,
    redis: redis::aio::ConnectionManager,
}

struct FakeLink {
    record: Arc<Mutex<Record>>,
    redis: redis::aio::ConnectionManager,
}

impl FakeConnector {
    fn calls(&self) -> Vec<String> {
        self.record.lock().expect("lock").calls.clone()
    }

    async fn emit(&self, event: LinkEvent) {
        let tx = self.record.lock().expect("lock").events.clone();
        tx.expect("connected")
            .send(event)
            .await
            .expect("gateway listening");
    }

    /// The connection ends by itself: its event channel closes.
    fn drop_link(&self) {
        self.record.lock().expect("lock").events = None;
    }

    fn inbox(&self) -> Inbox {
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

struct Running {
    fake: FakeConnector,
    key: SessionKey,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<anyhow::Result<Exit>>,
    _dir: TestDir,
}

impl Running {
    /// Stops the gateway and waits until it is gone, whatever it returned.
    async fn finish(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// How a test gateway starts, beyond the defaults of [`start`].
struct Setup {
    /// The directory of an earlier run (its store and contacts), or a new one.
    dir: Option<TestDir>,
    /// The session key of an earlier run, or a new one.
    key: Option<SessionKey>,
    fail_text: Option<String>,
    hang_text: Option<String>,
    /// The gateway's Redis connection (another user), or the harness's.
    con: Option<redis::aio::ConnectionManager>,
    send_attempts: u32,
    send_retry: Duration,
    refresh: Duration,
    /// The gateway's consumer name in its group.
    consumer: String,
    /// Replies sent per minute at most.
    send_per_minute: u32,
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
        }
    }
}

async fn start(h: &Harness, with_store: bool) -> Running {
    start_with(h, with_store, Setup::default()).await
}

/// The gateway started again on an earlier run's store, contacts and key.
async fn start_again(h: &Harness, dir: TestDir, key: SessionKey) -> Running {
    let setup = Setup {
        dir: Some(dir),
        key: Some(key),
        ..Setup::default()
    };
    start_with(h, true, setup).await
}

async fn start_with(h: &Harness, with_store: bool, setup: Setup) -> Running {
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
    let inbox = Inbox::new(con.clone(), h.acked, directory);
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
async fn met_a_contact(h: &mut Harness, setup: Setup, text: &str) -> Running {
    let run = start_with(h, true, setup).await;
    wait_state(h, status::State::Connected).await;
    run.fake
        .inbox()
        .commit(&[inbound("A1", text)])
        .await
        .expect("commit");
    run
}

async fn state(h: &mut Harness) -> Option<status::GatewayStatus> {
    let json: Option<String> = h.con.get(status::key(USER)).await.ok()?;
    serde_json::from_str(&json?).ok()
}

async fn wait_state(h: &mut Harness, want: status::State) -> status::GatewayStatus {
    let con = h.con.clone();
    let found = eventually(Duration::from_secs(5), || {
        let mut con = con.clone();
        async move {
            let json: Option<String> = con.get(status::key(USER)).await.ok()?;
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

fn inbound(id: &str, text: &str) -> Inbound {
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
    }
}

async fn queue_reply(h: &mut Harness, reply_id: &str, delay_ms: u64) {
    queue_text(h, reply_id, "sounds good", delay_ms).await;
}

async fn queue_text(h: &mut Harness, reply_id: &str, text: &str, delay_ms: u64) -> String {
    h.con
        .xadd(
            schema::QUEUE_RESPONSES,
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

#[tokio::test]
async fn login_codes_reach_events_qr_and_the_qr_key_then_connecting_writes_the_session() {
    let mut h = Harness::start().await;
    let mut events = h.subscribe().await;
    let run = start(&h, false).await;
    let s = wait_state(&mut h, status::State::WaitingForScan).await;
    assert!(s.until.is_some());
    let qr: String = h.con.get(schema::qr_key(USER)).await.expect("QR key");
    let payload: serde_json::Value = serde_json::from_str(&qr).expect("json");
    let code = base64::engine::general_purpose::STANDARD
        .decode(payload["qrCode"].as_str().expect("qrCode"))
        .expect("base64");
    assert_eq!(code, b"2@fake-code");
    assert_eq!(payload["expiresIn"], 60);
    let ttl: i64 = h.con.pttl(schema::qr_key(USER)).await.expect("pttl");
    assert!((50_000..=60_000).contains(&ttl), "{ttl}");
    let published =
        common::collect(&mut events, schema::CHANNEL_QR, Duration::from_millis(300)).await;
    assert_eq!(published, vec![payload]);

    let before_link = secondme::store::now_ms();
    run.fake
        .emit(LinkEvent::Connected {
            account: "wa_acc".into(),
            device: 3,
            name: "Alice".into(),
        })
        .await;
    let s = wait_state(&mut h, status::State::Connected).await;
    assert_eq!(s.name.as_deref(), Some("Alice"));
    let gone: bool = h.con.exists(schema::qr_key(USER)).await.expect("exists");
    assert!(!gone, "the code is deleted at login");
    let token: String = h
        .con
        .hget(schema::session_key(USER), "token")
        .await
        .expect("session");
    let manifest: serde_json::Value = serde_json::from_slice(
        &seal::open(&run.key, &token, &schema::session_key(USER)).expect("opens"),
    )
    .expect("manifest");
    assert_eq!(manifest["account"], "wa_acc");
    assert_eq!(manifest["device"], 3);
    assert!(
        manifest["storePath"]
            .as_str()
            .expect("path")
            .ends_with("device.db")
    );
    assert!(
        manifest["pairedAt"].as_i64().expect("pairedAt") >= before_link,
        "linked by this scan: {manifest}"
    );
    let ttl: i64 = h.con.ttl(schema::session_key(USER)).await.expect("ttl");
    assert!(ttl > 86_000, "{ttl}");
    assert!(
        run.fake.calls().contains(&"unavailable".to_owned()),
        "presence set offline"
    );
    let _ = run.stop.send(true);
    assert_eq!(run.task.await.expect("join").expect("run"), Exit::Stopped);
}

#[tokio::test]
async fn a_restart_with_a_store_connects_without_a_code() {
    let mut h = Harness::start().await;
    let mut events = h.subscribe().await;
    let run = start(&h, true).await;
    wait_state(&mut h, status::State::Connected).await;
    assert!(
        common::collect(&mut events, schema::CHANNEL_QR, Duration::from_millis(300))
            .await
            .is_empty()
    );
    let qr: bool = h.con.exists(schema::qr_key(USER)).await.expect("exists");
    assert!(!qr);
    assert!(run.fake.has_store(), "the store is kept");
    run.finish().await;
}

#[tokio::test]
async fn incoming_messages_reach_the_stream_through_the_hook_commit_only() {
    let mut h = Harness::start().await;
    let run = start(&h, true).await;
    wait_state(&mut h, status::State::Connected).await;
    let len: usize = h.con.xlen(schema::QUEUE_MESSAGES).await.expect("xlen");
    assert_eq!(len, 0, "connecting adds nothing");
    run.fake
        .inbox()
        .commit(&[inbound("A1", "hi there")])
        .await
        .expect("commit");
    let entries = stream(&mut h, schema::QUEUE_MESSAGES).await;
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0]["content"], "hi there");
    assert_eq!(entries[0]["direction"], "incoming");
    assert_eq!(entries[0]["fromMe"], "false");
    let name: Option<String> = h.con.hget("CONTACTS:names", CONTACT).await.expect("names");
    assert_eq!(name.as_deref(), Some("Bob"));
    let all: Vec<String> = h.con.keys("*").await.expect("keys");
    let dump = format!("{all:?} {entries:?}");
    assert!(
        !dump.contains("15550001111"),
        "no phone number in Redis: {dump}"
    );
    run.finish().await;
}

async fn stream(h: &mut Harness, key: &str) -> Vec<std::collections::HashMap<String, String>> {
    let reply: redis::streams::StreamRangeReply = h.con.xrange_all(key).await.expect("xrange");
    reply
        .ids
        .into_iter()
        .map(|e| {
            e.map
                .into_iter()
                .map(|(k, v)| (k, redis::from_redis_value::<String>(v).unwrap_or_default()))
                .collect()
        })
        .collect()
}

#[tokio::test]
async fn a_reply_is_sent_once_after_typing_with_its_sent_mark_written_first() {
    let mut h = Harness::start().await;
    h.allow(&[CONTACT]).await;
    let run = met_a_contact(&mut h, Setup::default(), "dinner?").await;
    queue_reply(&mut h, "bot_A1", 1000).await;
    queue_reply(&mut h, "bot_A1", 0).await; // the same reply again: never sent twice
    let fake = run.fake.clone();
    let sent = eventually(Duration::from_secs(6), || {
        let calls = fake.calls();
        async move { calls.iter().any(|c| c.starts_with("send")).then_some(calls) }
    })
    .await
    .expect("the reply is sent");
    tokio::time::sleep(Duration::from_millis(800)).await;
    let calls = run.fake.calls();
    let sends: Vec<_> = calls.iter().filter(|c| c.starts_with("send")).collect();
    assert_eq!(sends.len(), 1, "{calls:?}");
    let at = sent
        .iter()
        .position(|c| c.starts_with("send"))
        .expect("send");
    let typing = sent[..at]
        .iter()
        .filter(|c| c.starts_with("composing 15550001111@s.whatsapp.net"))
        .count();
    assert!(
        typing >= 3,
        "\"typing...\" refreshed every 400 ms of the 1 s delay: {sent:?}"
    );
    assert!(
        calls[at + 1..].iter().any(|c| c.starts_with("paused")),
        "{calls:?}"
    );
    let wa_id = sends[0].split(' ').nth(2).expect("id").to_owned();
    let message_id = format!("{CONTACT}.{wa_id}");
    let marks = run
        .fake
        .record
        .lock()
        .expect("lock")
        .sent_marks_at_send
        .clone();
    assert_eq!(
        marks,
        vec![vec![schema::sent_key(&message_id)]],
        "SENT: before the send"
    );
    let entries = stream(&mut h, schema::QUEUE_MESSAGES).await;
    let echo = entries
        .iter()
        .find(|e| e["fromMe"] == "true")
        .expect("echo entry");
    assert_eq!(echo["messageId"], message_id);
    assert_eq!(echo["direction"], "outgoing");
    let pending: redis::streams::StreamPendingReply = h
        .con
        .xpending(schema::QUEUE_RESPONSES, "secondme-gateway")
        .await
        .expect("xpending");
    assert_eq!(pending.count(), 0, "both entries acknowledged");
    run.finish().await;
}

#[tokio::test]
async fn the_kill_switch_pressed_while_typing_stops_the_send() {
    let mut h = Harness::start().await;
    h.allow(&[CONTACT]).await;
    let run = met_a_contact(&mut h, Setup::default(), "you there?").await;
    queue_reply(&mut h, "bot_A1", 3000).await;
    let fake = run.fake.clone();
    eventually(Duration::from_secs(5), || {
        let calls = fake.calls();
        async move {
            calls
                .iter()
                .any(|c| c.starts_with("composing"))
                .then_some(())
        }
    })
    .await
    .expect("typing shown");
    let _: () = h
        .con
        .set(schema::PAUSE_ALL, secondme::store::now_ms())
        .await
        .expect("kill");
    tokio::time::sleep(Duration::from_secs(4)).await;
    let calls = run.fake.calls();
    assert!(!calls.iter().any(|c| c.starts_with("send")), "{calls:?}");
    assert!(
        calls.iter().any(|c| c.starts_with("paused")),
        "typing cleared: {calls:?}"
    );
    let marks: Vec<String> = h.con.keys("SENT:*").await.expect("keys");
    assert!(marks.is_empty(), "nothing marked as sent");
    run.finish().await;
}

async fn dead_letters(h: &mut Harness) -> Vec<std::collections::HashMap<String, String>> {
    let con = h.con.clone();
    eventually(Duration::from_secs(15), || {
        let mut con = con.clone();
        async move {
            let n: usize = con.xlen(schema::QUEUE_DEADLETTER).await.ok()?;
            (n > 0).then_some(())
        }
    })
    .await
    .expect("a dead letter");
    stream(h, schema::QUEUE_DEADLETTER).await
}

async fn pending_replies(h: &mut Harness) -> usize {
    let pending: redis::streams::StreamPendingReply = h
        .con
        .xpending(schema::QUEUE_RESPONSES, "secondme-gateway")
        .await
        .expect("xpending");
    pending.count()
}

/// The WhatsApp ids a fake's sends of `text` used, in order.
fn send_ids(calls: &[String], text: &str) -> Vec<String> {
    calls
        .iter()
        .filter(|c| c.starts_with("send") && c.ends_with(text))
        .filter_map(|c| c.split(' ').nth(2).map(str::to_owned))
        .collect()
}

#[tokio::test]
async fn a_reply_that_keeps_failing_is_retried_with_backoff_then_dead_lettered_without_holding_others_back()
 {
    let mut h = Harness::start().await;
    h.allow(&[CONTACT]).await;
    let setup = Setup {
        fail_text: Some("will fail".into()),
        send_attempts: 3,
        send_retry: Duration::from_millis(400),
        ..Setup::default()
    };
    let run = start_with(&h, true, setup).await;
    wait_state(&mut h, status::State::Connected).await;
    run.fake
        .inbox()
        .commit(&[inbound("A1", "dinner?")])
        .await
        .expect("commit");
    let failing = queue_text(&mut h, "bot_A1", "will fail", 0).await;
    queue_text(&mut h, "bot_A2", "sounds good", 0).await;
    let letters = dead_letters(&mut h).await;
    let calls = run.fake.calls();
    let sends: Vec<&String> = calls.iter().filter(|c| c.starts_with("send")).collect();
    let failed: Vec<usize> = (0..sends.len())
        .filter(|i| sends[*i].ends_with("will fail"))
        .collect();
    assert_eq!(failed.len(), 3, "three attempts, then no more: {calls:?}");
    let ids = send_ids(&calls, "will fail");
    assert!(
        ids.iter().all(|id| *id == ids[0]),
        "every retry reuses the first attempt's WhatsApp id: {ids:?}"
    );
    let good = sends
        .iter()
        .position(|c| c.ends_with("sounds good"))
        .expect("the other reply is sent");
    assert!(
        good < failed[1],
        "the other reply goes while the failing one waits: {sends:?}"
    );
    let times = run.fake.record.lock().expect("lock").send_times.clone();
    let first_wait = times[failed[1]] - times[failed[0]];
    let second_wait = times[failed[2]] - times[failed[1]];
    assert!(first_wait >= Duration::from_millis(400), "{first_wait:?}");
    assert!(
        second_wait >= Duration::from_millis(800),
        "the wait doubles: {first_wait:?} then {second_wait:?}"
    );
    assert_eq!(letters.len(), 1, "{letters:?}");
    let letter = &letters[0];
    assert_eq!(letter["sourceId"], failing);
    assert!(
        letter["reason"].contains("reply bot_A1: sending failed 3 times"),
        "{letter:?}"
    );
    assert!(
        !letter["reason"].contains("15550001111"),
        "no phone number: {letter:?}"
    );
    assert!(letter["at"].parse::<i64>().expect("at") > 0);
    assert_eq!(letter["replyId"], "bot_A1");
    assert_eq!(letter["contactId"], CONTACT);
    assert_eq!(letter["content"], "will fail");
    assert_eq!(letter["delayMs"], "0");
    assert_eq!(pending_replies(&mut h).await, 0, "both acknowledged");
    let stats: Option<i64> = h
        .con
        .hget(schema::STATS, "dead_letters")
        .await
        .expect("stats");
    assert_eq!(stats, Some(1));
    let claims: (bool, bool, bool) = redis::pipe()
        .exists("SENTREPLY:bot_A1")
        .exists("SENDFAIL:bot_A1")
        .exists("SENTREPLY:bot_A2")
        .query_async(&mut h.con)
        .await
        .expect("exists");
    assert_eq!(
        claims,
        (false, false, true),
        "the failed reply holds no claim"
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        send_ids(&run.fake.calls(), "will fail").len(),
        3,
        "nothing after the dead letter"
    );
    run.finish().await;
}

#[tokio::test]
async fn failed_sends_are_counted_across_a_gateway_restart() {
    let mut h = Harness::start().await;
    h.allow(&[CONTACT]).await;
    let setup = || Setup {
        fail_text: Some("will fail".into()),
        send_attempts: 2,
        send_retry: Duration::from_secs(60),
        ..Setup::default()
    };
    let run = start_with(&h, true, setup()).await;
    wait_state(&mut h, status::State::Connected).await;
    run.fake
        .inbox()
        .commit(&[inbound("A1", "dinner?")])
        .await
        .expect("commit");
    let failing = queue_text(&mut h, "bot_A1", "will fail", 0).await;
    let con = h.con.clone();
    eventually(Duration::from_secs(5), || {
        let mut con = con.clone();
        async move {
            let n: Option<String> = con.hget("SENDFAIL:bot_A1", "attempts").await.ok()?;
            (n.as_deref() == Some("1")).then_some(())
        }
    })
    .await
    .expect("one failure recorded");
    let first_ids = send_ids(&run.fake.calls(), "will fail");
    assert_eq!(first_ids.len(), 1);
    let _ = run.stop.send(true);
    let _ = run.task.await;
    assert_eq!(pending_replies(&mut h).await, 1, "the reply stays pending");

    let again = start_with(
        &h,
        true,
        Setup {
            dir: Some(run._dir),
            key: Some(run.key),
            ..setup()
        },
    )
    .await;
    let letters = dead_letters(&mut h).await;
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0]["sourceId"], failing);
    assert!(
        letters[0]["reason"].contains("failed 2 times"),
        "{letters:?}"
    );
    assert_eq!(
        send_ids(&again.fake.calls(), "will fail"),
        first_ids,
        "one more attempt after the restart, with the same WhatsApp id"
    );
    assert_eq!(pending_replies(&mut h).await, 0);
    again.finish().await;
}

#[tokio::test]
async fn a_send_cut_short_by_a_crash_goes_again_after_the_restart_with_the_same_id() {
    let mut h = Harness::start().await;
    h.allow(&[CONTACT]).await;
    let run = met_a_contact(
        &mut h,
        Setup {
            hang_text: Some("on my way".into()),
            ..Setup::default()
        },
        "where are you?",
    )
    .await;
    queue_text(&mut h, "bot_A1", "on my way", 0).await;
    sent_times(&run, "on my way", 1).await;
    let first = send_ids(&run.fake.calls(), "on my way");
    let claim: Option<String> = h.con.get("SENTREPLY:bot_A1").await.expect("claim");
    let message_id = format!("{CONTACT}.{}", first[0]);
    assert_eq!(claim, Some(format!("sending:{message_id}")));
    // The process dies during the send: its tasks are dropped mid-call.
    let _ = run.stop.send(true);
    let _ = run.task.await;
    assert_eq!(pending_replies(&mut h).await, 1);

    let again = start_again(&h, run._dir, run.key).await;
    sent_times(&again, "on my way", 1).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        send_ids(&again.fake.calls(), "on my way"),
        first,
        "once more, with the same WhatsApp id"
    );
    let claim: Option<String> = h.con.get("SENTREPLY:bot_A1").await.expect("claim");
    assert_eq!(claim.as_deref(), Some(message_id.as_str()), "now sent");
    let fail: bool = h.con.exists("SENDFAIL:bot_A1").await.expect("exists");
    assert!(!fail);
    assert_eq!(pending_replies(&mut h).await, 0);
    let echoes: Vec<_> = stream(&mut h, schema::QUEUE_MESSAGES)
        .await
        .into_iter()
        .filter(|e| e["fromMe"] == "true")
        .collect();
    assert_eq!(echoes.len(), 1, "{echoes:?}");
    assert_eq!(echoes[0]["messageId"], message_id);
    again.finish().await;
}

/// The gateway's rules of docs/redis-schema.md ("ACL users").
const GATEWAY_ACL: &[&str] = &[
    "~QUEUE:*",
    "~SESSION:*",
    "~QR:*",
    "~SENT:*",
    "~SENTREPLY:*",
    "~SENDFAIL:*",
    "~GATEWAY*",
    "~CONTACTS:names",
    "~OPTIN:contacts",
    "~PAUSE:*",
    "~PAUSEMETA:*",
    "~HISTORY:*",
    "~SECONDME:stats",
    "&events:*",
    "+@all",
    "-@dangerous",
    "-@admin",
    "-@scripting",
    "+fcall",
];

/// As a Redis user with only the documented rules, the gateway logs in, takes a
/// message, sends a reply and dead-letters a failing one, and Redis refuses it nothing.
#[tokio::test]
async fn the_documented_gateway_acl_is_enough() {
    let mut h = Harness::start().await;
    h.allow(&[CONTACT]).await;
    let mut setuser = redis::cmd("ACL");
    setuser.arg("SETUSER").arg("gw").arg("on").arg(">gw-pass");
    for rule in GATEWAY_ACL {
        setuser.arg(*rule);
    }
    let _: () = setuser.query_async(&mut h.con).await.expect("ACL SETUSER");
    let _: () = redis::cmd("ACL")
        .arg("LOG")
        .arg("RESET")
        .query_async(&mut h.con)
        .await
        .expect("ACL LOG RESET");
    // The library as the worker leaves it: loaded at its start, by its own user.
    let _: () = redis::cmd("FUNCTION")
        .arg("FLUSH")
        .query_async(&mut h.con)
        .await
        .expect("FUNCTION FLUSH");
    secondme::store::functions::load(&mut h.con)
        .await
        .expect("the worker loads the library");
    let url = format!("{}?user=gw&pass=gw-pass", h.server.url());
    let client = secondme::connection::open_client(&url).expect("client");
    let con = secondme::connection::manager(&client, None)
        .await
        .expect("connect as gw");
    let mut probe = con.clone();
    let setup = Setup {
        con: Some(con),
        fail_text: Some("will fail".into()),
        send_attempts: 1,
        ..Setup::default()
    };
    let run = start_with(&h, false, setup).await;
    wait_state(&mut h, status::State::WaitingForScan).await;
    run.fake
        .emit(LinkEvent::Connected {
            account: "wa_acc".into(),
            device: 3,
            name: "Alice".into(),
        })
        .await;
    wait_state(&mut h, status::State::Connected).await;
    run.fake
        .inbox()
        .commit(&[inbound("A1", "dinner?")])
        .await
        .expect("commit as gw");
    queue_text(&mut h, "bot_A1", "sounds good", 0).await;
    queue_text(&mut h, "bot_A2", "will fail", 0).await;
    let letters = dead_letters(&mut h).await;
    assert_eq!(letters.len(), 1);
    assert!(
        letters[0]["reason"].contains("reply bot_A2: sending failed 1 times"),
        "{letters:?}"
    );
    let fake = run.fake.clone();
    eventually(Duration::from_secs(5), || {
        let ids = send_ids(&fake.calls(), "sounds good");
        async move { (ids.len() == 1).then_some(()) }
    })
    .await
    .expect("the reply is sent");
    assert_eq!(pending_replies(&mut h).await, 0);
    let session: bool = h
        .con
        .exists(schema::session_key(USER))
        .await
        .expect("exists");
    assert!(session);
    let refused: Vec<redis::Value> = redis::cmd("ACL")
        .arg("LOG")
        .query_async(&mut h.con)
        .await
        .expect("ACL LOG");
    assert!(refused.is_empty(), "refused: {refused:?}");
    let other: redis::RedisResult<Option<String>> = probe.get(schema::STATE_MARKER).await;
    assert!(other.is_err(), "the connection is the limited user");
    // Nor can it change the code the worker runs with the worker's rights.
    let library = &secondme::store::functions::LIBRARY;
    let name = format!("secondme_{}", library.version);
    let attempts: [&[&str]; 3] = [
        &["LOAD", "REPLACE", library.text.as_str()],
        &["DELETE", name.as_str()],
        &["FLUSH"],
    ];
    for args in attempts {
        let refused: redis::RedisResult<redis::Value> = redis::cmd("FUNCTION")
            .arg(args)
            .query_async(&mut probe)
            .await;
        let code = refused
            .as_ref()
            .err()
            .and_then(|e| e.code().map(str::to_owned));
        assert_eq!(
            code.as_deref(),
            Some("NOPERM"),
            "FUNCTION {}: {refused:?}",
            args[0]
        );
    }
    run.finish().await;
}

#[tokio::test]
async fn a_reply_to_a_contact_without_an_address_is_dead_lettered() {
    let mut h = Harness::start().await;
    h.allow(&[CONTACT]).await;
    let run = start(&h, true).await;
    wait_state(&mut h, status::State::Connected).await;
    let source = queue_text(&mut h, "bot_B1", "hello?", 0).await;
    let letters = dead_letters(&mut h).await;
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0]["sourceId"], source);
    assert!(
        letters[0]["reason"].contains("no WhatsApp address is known for contact"),
        "{letters:?}"
    );
    assert_eq!(letters[0]["content"], "hello?");
    assert_eq!(pending_replies(&mut h).await, 0);
    let calls = run.fake.calls();
    assert!(!calls.iter().any(|c| c.starts_with("send")), "{calls:?}");
    run.finish().await;
}

async fn manifest(h: &mut Harness, key: &SessionKey) -> serde_json::Value {
    let token: String = h
        .con
        .hget(schema::session_key(USER), "token")
        .await
        .expect("session");
    serde_json::from_slice(&seal::open(key, &token, &schema::session_key(USER)).expect("opens"))
        .expect("manifest")
}

#[tokio::test]
async fn the_session_is_rewritten_before_its_ttl_runs_out_and_keeps_the_time_the_device_was_linked()
{
    let mut h = Harness::start().await;
    let dir = TestDir::new("wa");
    std::fs::write(dir.join("device.db"), b"keys").expect("store");
    let linked = secondme::store::now_ms();
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let setup = Setup {
        dir: Some(dir),
        refresh: Duration::from_millis(300),
        ..Setup::default()
    };
    let run = start_with(&h, false, setup).await;
    wait_state(&mut h, status::State::Connected).await;
    let first = manifest(&mut h, &run.key).await;
    let paired = first["pairedAt"].as_i64().expect("pairedAt");
    assert!(
        (linked - 5_000..=linked).contains(&paired),
        "the store's creation, not this connection: {paired} vs {linked}"
    );
    let times = |h: &mut Harness| {
        let mut con = h.con.clone();
        async move {
            let t: (i64, i64) = redis::cmd("HMGET")
                .arg(schema::session_key(USER))
                .arg("connectedAt")
                .arg("expiresAt")
                .query_async(&mut con)
                .await
                .expect("times");
            t
        }
    };
    let (connected_at, expires_at) = times(&mut h).await;
    assert!(connected_at >= linked + 1_000, "{connected_at}");
    let _: () = h
        .con
        .expire(schema::session_key(USER), 100)
        .await
        .expect("expire");
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let ttl: i64 = h.con.ttl(schema::session_key(USER)).await.expect("ttl");
    assert!(ttl > 86_000, "the TTL is renewed: {ttl}");
    let (connected_again, expires_again) = times(&mut h).await;
    assert_eq!(connected_again, connected_at);
    assert!(
        expires_again > expires_at,
        "expiresAt moves with the TTL: {expires_at} then {expires_again}"
    );
    assert_eq!(manifest(&mut h, &run.key).await, first);
    run.finish().await;
}

#[tokio::test]
async fn a_contact_paused_or_disabled_while_typing_gets_no_reply() {
    let mut h = Harness::start().await;
    h.allow(&[CONTACT]).await;
    let run = met_a_contact(&mut h, Setup::default(), "you there?").await;
    let typing = |fake: FakeConnector, at_least: usize| async move {
        eventually(Duration::from_secs(5), || {
            let n = fake
                .calls()
                .iter()
                .filter(|c| c.starts_with("composing"))
                .count();
            async move { (n >= at_least).then_some(()) }
        })
        .await
        .expect("typing shown");
    };
    queue_reply(&mut h, "bot_A1", 3000).await;
    typing(run.fake.clone(), 1).await;
    let _: () = h
        .con
        .set_ex(
            schema::pause_key(CONTACT),
            secondme::store::now_ms() + 60_000,
            60,
        )
        .await
        .expect("pause");
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let _: () = h.con.del(schema::pause_key(CONTACT)).await.expect("resume");
    let typed = run
        .fake
        .calls()
        .iter()
        .filter(|c| c.starts_with("composing"))
        .count();
    queue_reply(&mut h, "bot_A2", 3000).await;
    typing(run.fake.clone(), typed + 1).await;
    secondme::store::optin::set_enabled(&mut h.con, &[CONTACT.to_owned()], false)
        .await
        .expect("disable");
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let calls = run.fake.calls();
    assert!(!calls.iter().any(|c| c.starts_with("send")), "{calls:?}");
    assert_eq!(
        pending_replies(&mut h).await,
        0,
        "both withheld and acknowledged"
    );
    let marks: Vec<String> = h.con.keys("SENT*").await.expect("keys");
    assert!(marks.is_empty(), "nothing marked as sent: {marks:?}");
    run.finish().await;
}

#[tokio::test]
async fn a_temporary_ban_is_shown_and_waited_out() {
    let mut h = Harness::start().await;
    let run = start(&h, true).await;
    wait_state(&mut h, status::State::Connected).await;
    let until = secondme::store::now_ms() + 1_500;
    run.fake
        .emit(LinkEvent::TemporaryBan {
            until_ms: until,
            reason: "101".into(),
        })
        .await;
    let s = wait_state(&mut h, status::State::Banned).await;
    assert_eq!(s.until, Some(until));
    assert_eq!(run.fake.record.lock().expect("lock").connects, 1);
    tokio::time::sleep(Duration::from_millis(2_000)).await;
    wait_state(&mut h, status::State::Connected).await;
    assert!(secondme::store::now_ms() >= until);
    assert_eq!(
        run.fake.record.lock().expect("lock").connects,
        2,
        "one new connection once the ban is over"
    );
    run.finish().await;
}

/// The commands Redis received, as `MONITOR` shows them, until `want` matches one.
async fn monitor_until(url: &str, want: impl Fn(&str) -> bool) -> Option<String> {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let path = url.strip_prefix("unix://")?;
    let mut socket = tokio::net::UnixStream::connect(path).await.ok()?;
    socket.write_all(b"*1\r\n$7\r\nMONITOR\r\n").await.ok()?;
    let mut lines = BufReader::new(socket).lines();
    tokio::time::timeout(Duration::from_secs(5), async {
        while let Ok(Some(line)) = lines.next_line().await {
            if want(&line) {
                return Some(line);
            }
        }
        None
    })
    .await
    .ok()
    .flatten()
}

#[tokio::test]
async fn incoming_messages_are_added_with_acked_trimming_on_redis_8_2() {
    let h = Harness::start().await;
    let run = start(&h, true).await;
    let url = h.server.url();
    let seen = tokio::spawn(async move {
        monitor_until(&url, |l| l.contains("\"XADD\" \"QUEUE:messages\"")).await
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    run.fake
        .inbox()
        .commit(&[inbound("A1", "hi")])
        .await
        .expect("commit");
    let line = seen.await.expect("join").expect("the XADD");
    if h.acked {
        assert!(
            line.contains("\"XADD\" \"QUEUE:messages\" \"ACKED\" \"MAXLEN\" \"~\""),
            "{line}"
        );
    } else {
        assert!(
            line.contains("\"XADD\" \"QUEUE:messages\" \"*\""),
            "no trimming before 8.2: {line}"
        );
    }
    run.finish().await;
}

#[tokio::test]
async fn logging_out_deletes_the_store_and_the_session_and_shows_a_code_again() {
    let mut h = Harness::start().await;
    let run = start(&h, true).await;
    wait_state(&mut h, status::State::Connected).await;
    let session: bool = h
        .con
        .exists(schema::session_key(USER))
        .await
        .expect("exists");
    assert!(session);
    run.fake
        .emit(LinkEvent::LoggedOut {
            reason: "the device was unlinked".into(),
        })
        .await;
    wait_state(&mut h, status::State::WaitingForScan).await;
    assert!(!run.fake.has_store(), "store deleted");
    let session: bool = h
        .con
        .exists(schema::session_key(USER))
        .await
        .expect("exists");
    assert!(!session, "SESSION deleted");
    let qr: bool = h.con.exists(schema::qr_key(USER)).await.expect("exists");
    assert!(qr, "a new login code is up");
    assert_eq!(run.fake.record.lock().expect("lock").connects, 2);
    run.finish().await;
}

#[tokio::test]
async fn a_replaced_stream_stops_the_gateway_and_used_up_codes_wait_for_the_operator() {
    let mut h = Harness::start().await;
    let setup = Setup {
        refresh: Duration::from_millis(200),
        ..Setup::default()
    };
    let run = start_with(&h, false, setup).await;
    wait_state(&mut h, status::State::WaitingForScan).await;
    run.fake.emit(LinkEvent::CodesExhausted).await;
    let waiting = wait_state(&mut h, status::State::CodesExhausted).await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    // Refreshed (the TTL renewed) but the same state: nobody watching sees news.
    assert_eq!(state(&mut h).await, Some(waiting.clone()));
    assert!(
        waiting
            .detail
            .as_deref()
            .unwrap_or("")
            .contains("GATEWAYREQ:"),
        "{waiting:?}"
    );
    assert_eq!(
        run.fake.record.lock().expect("lock").connects,
        1,
        "no new codes unasked"
    );
    let _: () = h
        .con
        .set(status::request_key(USER), status::REQUEST_NEW_CODES)
        .await
        .expect("ask");
    wait_state(&mut h, status::State::WaitingForScan).await;
    assert_eq!(run.fake.record.lock().expect("lock").connects, 2);
    run.fake.emit(LinkEvent::StreamReplaced).await;
    let exit = tokio::time::timeout(Duration::from_secs(5), run.task)
        .await
        .expect("stops")
        .expect("join")
        .expect("run");
    assert_eq!(exit, Exit::Replaced);
    assert_eq!(
        state(&mut h).await.map(|s| s.state),
        Some(status::State::Replaced)
    );
}

/// The real binary and library with WhatsApp out of reach, made so on any
/// machine: the client's endpoint is a closed local port. The gateway says so in
/// `GATEWAY:{userId}` and its log, and keeps trying with backoff.
#[cfg(feature = "whatsapp")]
#[tokio::test]
async fn with_no_network_the_real_gateway_reports_it_and_keeps_retrying() {
    let h = Harness::start().await;
    let dir = TestDir::new("wa-real");
    let log = std::fs::File::create(dir.join("stderr")).expect("log");
    let mut child = real_command(&h, &dir, &["gateway"])
        .stderr(log)
        .spawn()
        .expect("spawn secondme gateway");
    let first = eventually(Duration::from_secs(60), || {
        let mut con = h.con.clone();
        async move {
            let json: Option<String> = con.get(status::key(USER)).await.ok()?;
            let s: status::GatewayStatus = serde_json::from_str(&json?).ok()?;
            (s.state == status::State::NoNetwork).then_some(s)
        }
    })
    .await
    .expect("the gateway reports the missing network");
    assert!(first.next_try.is_some(), "{first:?}");
    assert!(
        first
            .detail
            .as_deref()
            .is_some_and(|d| d.contains("cannot reach 127.0.0.1") && d.contains("refused")),
        "{first:?}"
    );
    let next_report = |after: Option<i64>| {
        let con = h.con.clone();
        async move {
            eventually(Duration::from_secs(60), || {
                let mut con = con.clone();
                async move {
                    let json: Option<String> = con.get(status::key(USER)).await.ok()?;
                    let s: status::GatewayStatus = serde_json::from_str(&json?).ok()?;
                    (s.next_try > after).then_some(s)
                }
            })
            .await
            .expect("it tries again")
        }
    };
    let later = next_report(first.next_try).await;
    assert_eq!(later.since, first.since, "the trouble keeps its start time");
    let third = next_report(later.next_try).await;
    let gap = |a: &status::GatewayStatus, b: &status::GatewayStatus| {
        b.next_try.unwrap_or(0) - a.next_try.unwrap_or(0)
    };
    assert!(
        gap(&later, &third) > gap(&first, &later),
        "the wait grows (backoff): {first:?} {later:?} {third:?}"
    );
    let store = dir.join("wa");
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&store).expect("store dir").permissions(),
    );
    assert_eq!(mode & 0o777, 0o700);
    assert!(store.join("device.db").exists(), "the store file");
    for entry in std::fs::read_dir(&store).expect("store dir") {
        let entry = entry.expect("entry");
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &entry.metadata().expect("metadata").permissions(),
        );
        assert_eq!(mode & 0o777, 0o600, "{:?}", entry.path());
    }
    let _ = std::process::Command::new("kill")
        .arg(child.id().to_string())
        .status();
    let _ = child.wait();
    let text = std::fs::read_to_string(dir.join("stderr")).unwrap_or_default();
    assert!(text.contains("no network"), "{text}");
}

/// The real binary with private files under `dir`, WhatsApp's endpoint a closed
/// local port (nothing answers on any machine).
#[cfg(feature = "whatsapp")]
fn real_command(h: &Harness, dir: &TestDir, args: &[&str]) -> std::process::Command {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_secondme"));
    command
        .args(args)
        .env("SECONDME_REDIS_URL", h.server.url())
        .env("SECONDME_USER_ID", USER)
        .env("SECONDME_KEY_FILE", dir.join("session.key"))
        .env("SECONDME_WHATSAPP_DIR", dir.join("wa"))
        .env("XDG_CONFIG_HOME", dir.join("config"))
        .env("XDG_STATE_HOME", dir.join("state"))
        .env("HOME", &**dir)
        .env("SECONDME_LOG", "info")
        .env("SECONDME_WHATSAPP_ENDPOINT", closed_endpoint())
        .env("HTTPS_PROXY", "")
        .env_remove("SECONDME_CONFIG");
    command
}

/// `secondme login` says what is wrong in the terminal: a phone number it cannot
/// use, and WhatsApp out of reach (it keeps trying).
#[cfg(feature = "whatsapp")]
#[tokio::test]
async fn secondme_login_refuses_a_bad_phone_and_tells_when_whatsapp_is_out_of_reach() {
    let h = Harness::start().await;
    let dir = TestDir::new("wa-login");
    let bad = real_command(&h, &dir, &["login", "--phone", "call me"])
        .output()
        .expect("run secondme login");
    assert!(!bad.status.success());
    let said = String::from_utf8_lossy(&bad.stderr);
    assert!(
        said.contains("--phone must be a phone number with its country code"),
        "{said}"
    );
    let out = std::fs::File::create(dir.join("stdout")).expect("stdout");
    let mut child = real_command(&h, &dir, &["login"])
        .stdout(out)
        .spawn()
        .expect("spawn secondme login");
    let text = eventually(Duration::from_secs(60), || {
        let text = std::fs::read_to_string(dir.join("stdout")).unwrap_or_default();
        async move {
            text.contains("no network: cannot reach 127.0.0.1")
                .then_some(text)
        }
    })
    .await;
    let _ = std::process::Command::new("kill")
        .arg(child.id().to_string())
        .status();
    let status = child.wait().expect("wait");
    let text =
        text.unwrap_or_else(|| std::fs::read_to_string(dir.join("stdout")).unwrap_or_default());
    assert!(text.starts_with("Connecting to WhatsApp..."), "{text}");
    assert!(text.contains("(next try in "), "{text}");
    assert!(!status.success(), "stopped before linking is a failure");
}

/// `secondme logout` without a linked device: the store directory and
/// `SESSION:{userId}` go, and the state says logged out.
#[cfg(feature = "whatsapp")]
#[tokio::test]
async fn secondme_logout_deletes_the_store_and_the_session() {
    let mut h = Harness::start().await;
    let dir = TestDir::new("wa-logout");
    std::fs::create_dir_all(dir.join("wa")).expect("dir");
    std::fs::write(dir.join("wa").join("contacts.json"), b"{}").expect("contacts");
    let _: () = h
        .con
        .hset(schema::session_key(USER), "token", "v1.x")
        .await
        .expect("session");
    let out = real_command(&h, &dir, &["logout"])
        .output()
        .expect("run secondme logout");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{said} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(said.contains("The device's keys are deleted"), "{said}");
    assert!(!dir.join("wa").exists(), "the store directory is gone");
    let session: bool = h
        .con
        .exists(schema::session_key(USER))
        .await
        .expect("exists");
    assert!(!session, "SESSION deleted");
    assert_eq!(
        state(&mut h).await.map(|s| s.state),
        Some(status::State::LoggedOut)
    );
}

/// The control room tells the gateway's state, written by a gateway in another
/// process: here the "no network" the real gateway reports in this sandbox.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_control_room_shows_the_gateway_state() {
    let mut h = Harness::start().await;
    let mut s = status::GatewayStatus::new(status::State::NoNetwork, secondme::store::now_ms())
        .detail("cannot resolve web.whatsapp.com");
    s.next_try = Some(secondme::store::now_ms() + 30_000);
    let json = serde_json::to_string(&s).expect("json");
    let _: () = h.con.set(status::key(USER), &json).await.expect("set");
    let mut screen = common::pty::Screen::start_with(&h.server.url(), 30, 160, &["--no-worker"]);
    screen.wait_for("WhatsApp: no network");
    wait_for_bar(&screen, "WA no network since");
    let connected = {
        let mut c = status::GatewayStatus::new(status::State::Connected, secondme::store::now_ms());
        c.name = Some("Alice".into());
        serde_json::to_string(&c).expect("json")
    };
    let _: () = h.con.set(status::key(USER), &connected).await.expect("set");
    screen.wait_for("WhatsApp: connected as Alice");
    wait_for_bar(&screen, "WA connected as Alice");
    screen.stop();
}

/// Waits until the status bar (the screen's first row) shows `needle`.
fn wait_for_bar(screen: &common::pty::Screen, needle: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let bar: String = screen.rows().first().into_iter().flatten().collect();
        if bar.contains(needle) {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the status bar never showed {needle:?}: {bar:?}\n{}",
            screen.text()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// At 80 columns: the bar and the login panel say the codes ran out, `n` writes
/// `GATEWAYREQ:{userId}` = `new_codes` with its TTL; in any other state `n`
/// writes nothing and the event log says why; a state whose key expired leaves
/// the bar as "gateway gone".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_control_room_asks_for_new_codes_once_they_ran_out() {
    let mut h = Harness::start().await;
    let set_state = |s: status::GatewayStatus| serde_json::to_string(&s).expect("json");
    let out = set_state(status::GatewayStatus::new(
        status::State::CodesExhausted,
        secondme::store::now_ms(),
    ));
    let _: () = h
        .con
        .set_ex(status::key(USER), &out, status::TTL_S)
        .await
        .expect("set");
    let mut screen = common::pty::Screen::start_with(&h.server.url(), 24, 80, &["--no-worker"]);
    wait_for_bar(&screen, "WA codes ran out: press n");
    screen.wait_for("The login codes ran out");
    screen.wait_for("Press n to ask for new ones.");
    let request = status::request_key(USER);
    let before: Option<String> = h.con.get(&request).await.expect("get");
    assert_eq!(before, None, "nothing asked before the key");

    screen.keys("n");
    let mut con = h.con.clone();
    let asked = eventually(Duration::from_secs(10), || {
        let (mut con, request) = (con.clone(), request.clone());
        async move {
            let v: Option<String> = con.get(&request).await.ok()?;
            v
        }
    })
    .await;
    assert_eq!(asked.as_deref(), Some(status::REQUEST_NEW_CODES));
    let ttl: i64 = con.ttl(&request).await.expect("ttl");
    assert!((290..=300).contains(&ttl), "TTL {ttl}");
    screen.wait_for("asked the WhatsApp gateway for new login codes");

    // Connected: the key asks for nothing and says so.
    let _: () = con.del(&request).await.expect("del");
    let mut c = status::GatewayStatus::new(status::State::Connected, secondme::store::now_ms());
    c.name = Some("Alice".into());
    let _: () = con
        .set_ex(status::key(USER), set_state(c), status::TTL_S)
        .await
        .expect("set");
    wait_for_bar(&screen, "WA connected as Alice");
    screen.keys("n");
    screen.wait_for("WhatsApp is connected");
    let after: Option<String> = con.get(&request).await.expect("get");
    assert_eq!(after, None, "n wrote a request while connected");

    // The key expires (here: deleted): the bar does not keep a stale "connected".
    let _: () = con.del(status::key(USER)).await.expect("del");
    wait_for_bar(&screen, "WA gateway gone since");
    screen.stop();
}

/// The consumers of the gateway's group, by name.
async fn gateway_consumers(h: &mut Harness) -> Vec<String> {
    let info: redis::streams::StreamInfoConsumersReply = h
        .con
        .xinfo_consumers(schema::QUEUE_RESPONSES, "secondme-gateway")
        .await
        .expect("XINFO CONSUMERS");
    info.consumers.into_iter().map(|c| c.name).collect()
}

/// A reply whose send failed under an older consumer name (before names were
/// stable, or another `consumer`) is not stranded: the next gateway takes it
/// over, sends it once with the same WhatsApp id, and removes the old consumer.
#[tokio::test]
async fn replies_left_pending_under_another_consumer_name_are_sent_after_a_restart() {
    let mut h = Harness::start().await;
    h.allow(&[CONTACT]).await;
    let run = met_a_contact(
        &mut h,
        Setup {
            fail_text: Some("see you".into()),
            send_retry: Duration::from_secs(60),
            consumer: "oldhost-4242".into(),
            ..Setup::default()
        },
        "tomorrow?",
    )
    .await;
    queue_text(&mut h, "bot_A1", "see you", 0).await;
    let con = h.con.clone();
    eventually(Duration::from_secs(5), || {
        let mut con = con.clone();
        async move {
            let n: Option<String> = con.hget("SENDFAIL:bot_A1", "attempts").await.ok()?;
            (n.as_deref() == Some("1")).then_some(())
        }
    })
    .await
    .expect("one failure recorded");
    let first = send_ids(&run.fake.calls(), "see you");
    assert_eq!(first.len(), 1);
    let _ = run.stop.send(true);
    let _ = run.task.await;
    assert_eq!(pending_replies(&mut h).await, 1);
    // The old consumer idle long enough to be removed once empty.
    tokio::time::sleep(gateway::IDLE_BEFORE_REMOVAL + Duration::from_millis(200)).await;

    let again = start_again(&h, run._dir, run.key).await;
    sent_times(&again, "see you", 1).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        send_ids(&again.fake.calls(), "see you"),
        first,
        "once, with the first attempt's WhatsApp id"
    );
    let claim: Option<String> = h.con.get("SENTREPLY:bot_A1").await.expect("claim");
    assert_eq!(claim, Some(format!("{CONTACT}.{}", first[0])));
    assert_eq!(pending_replies(&mut h).await, 0);
    assert_eq!(gateway_consumers(&mut h).await, ["gw-test"]);
    again.finish().await;
}

#[test]
fn the_gateway_s_consumer_name_is_the_same_at_every_start() {
    assert_eq!(gateway::consumer_name(USER), "gateway-user-1");
}

/// `GATEWAY:{userId}` is rewritten during a wait longer than its TTL, unchanged.
async fn assert_kept_fresh(h: &mut Harness, shown: &status::GatewayStatus, wait: Duration) {
    let _: () = h.con.expire(status::key(USER), 5).await.expect("expire");
    tokio::time::sleep(wait).await;
    let ttl: i64 = h.con.ttl(status::key(USER)).await.expect("ttl");
    assert!(ttl > 80, "the TTL is renewed: {ttl}");
    assert_eq!(state(h).await.as_ref(), Some(shown), "the same state");
}

#[tokio::test]
async fn a_long_ban_keeps_its_state_fresh_and_unchanged() {
    let mut h = Harness::start().await;
    let run = start_with(
        &h,
        true,
        Setup {
            refresh: Duration::from_millis(150),
            ..Setup::default()
        },
    )
    .await;
    wait_state(&mut h, status::State::Connected).await;
    run.fake
        .emit(LinkEvent::TemporaryBan {
            until_ms: secondme::store::now_ms() + 3_000,
            reason: "101".into(),
        })
        .await;
    let banned = wait_state(&mut h, status::State::Banned).await;
    assert_kept_fresh(&mut h, &banned, Duration::from_millis(500)).await;
    assert_kept_fresh(&mut h, &banned, Duration::from_millis(500)).await;
    run.finish().await;
}

#[tokio::test]
async fn a_lost_connection_and_the_reconnect_backoff_keep_their_state_fresh_and_unchanged() {
    let mut h = Harness::start().await;
    let run = start_with(
        &h,
        true,
        Setup {
            refresh: Duration::from_millis(150),
            ..Setup::default()
        },
    )
    .await;
    wait_state(&mut h, status::State::Connected).await;
    run.fake.record.lock().expect("lock").fail_connect = true;
    run.fake.drop_link();
    // Lost: 1 s before the next try.
    let lost = wait_state(&mut h, status::State::Reconnecting).await;
    assert!(lost.next_try.is_some(), "{lost:?}");
    assert_kept_fresh(&mut h, &lost, Duration::from_millis(400)).await;
    // That try fails: 2 s before the next.
    let con = h.con.clone();
    let refused = eventually(Duration::from_secs(5), || {
        let mut con = con.clone();
        async move {
            let json: Option<String> = con.get(status::key(USER)).await.ok()?;
            let s: status::GatewayStatus = serde_json::from_str(&json?).ok()?;
            s.detail
                .as_deref()
                .is_some_and(|d| d.contains("connection refused"))
                .then_some(s)
        }
    })
    .await
    .expect("the failed reconnect shown");
    assert_eq!(refused.state, status::State::Reconnecting);
    assert_kept_fresh(&mut h, &refused, Duration::from_millis(600)).await;
    assert_eq!(run.fake.record.lock().expect("lock").connects, 2);
    run.finish().await;
}

/// A connection as a Redis user with the gateway's documented rules.
async fn as_gateway_user(h: &mut Harness) -> redis::aio::ConnectionManager {
    let mut setuser = redis::cmd("ACL");
    setuser.arg("SETUSER").arg("gw").arg("on").arg(">gw-pass");
    for rule in GATEWAY_ACL {
        setuser.arg(*rule);
    }
    let _: () = setuser.query_async(&mut h.con).await.expect("ACL SETUSER");
    let url = format!("{}?user=gw&pass=gw-pass", h.server.url());
    let client = secondme::connection::open_client(&url).expect("client");
    secondme::connection::manager(&client, None)
        .await
        .expect("connect as gw")
}

/// With the functions library missing (the worker not started yet), the
/// gateway may not load it: a reply out of attempts stays pending, is not sent
/// again, and is dead-lettered once the worker has loaded the library.
/// A gateway as its ACL user, with the functions library gone (it may not
/// load it), connected, a message in, and every send of its reply failing once.
async fn a_failing_reply_without_the_library(h: &mut Harness) -> Running {
    h.allow(&[CONTACT]).await;
    let con = as_gateway_user(h).await;
    let _: () = redis::cmd("FUNCTION")
        .arg("FLUSH")
        .query_async(&mut h.con)
        .await
        .expect("FUNCTION FLUSH");
    let run = start_with(
        h,
        true,
        Setup {
            con: Some(con),
            fail_text: Some("will fail".into()),
            send_attempts: 1,
            send_retry: Duration::from_millis(200),
            ..Setup::default()
        },
    )
    .await;
    wait_state(h, status::State::Connected).await;
    run.fake
        .inbox()
        .commit(&[inbound("A1", "dinner?")])
        .await
        .expect("commit");
    run
}

#[tokio::test]
async fn a_dead_letter_without_the_library_waits_pending_until_it_is_loaded() {
    let mut h = Harness::start().await;
    let run = a_failing_reply_without_the_library(&mut h).await;
    let failing = queue_text(&mut h, "bot_A1", "will fail", 0).await;
    queue_text(&mut h, "bot_A2", "sounds good", 0).await;
    let fake = run.fake.clone();
    eventually(Duration::from_secs(5), || {
        let ids = send_ids(&fake.calls(), "sounds good");
        async move { (ids.len() == 1).then_some(()) }
    })
    .await
    .expect("the other reply is sent meanwhile");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let letters: usize = h.con.xlen(schema::QUEUE_DEADLETTER).await.expect("xlen");
    assert_eq!(letters, 0);
    assert_eq!(pending_replies(&mut h).await, 1, "kept pending");
    assert_eq!(
        send_ids(&run.fake.calls(), "will fail").len(),
        1,
        "not sent again"
    );
    let fail: bool = h.con.exists("SENDFAIL:bot_A1").await.expect("exists");
    assert!(fail, "its failures kept for the next try");

    secondme::store::functions::load(&mut h.con)
        .await
        .expect("the worker loads the library");
    let letters = dead_letters(&mut h).await;
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0]["sourceId"], failing);
    assert!(
        letters[0]["reason"].contains("sending failed 1 times"),
        "{letters:?}"
    );
    assert!(!letters[0]["reason"].contains("15550001111"), "{letters:?}");
    assert_eq!(pending_replies(&mut h).await, 0);
    assert_eq!(send_ids(&run.fake.calls(), "will fail").len(), 1);
    let claims: (bool, bool) = redis::pipe()
        .exists("SENTREPLY:bot_A1")
        .exists("SENDFAIL:bot_A1")
        .query_async(&mut h.con)
        .await
        .expect("exists");
    assert_eq!(claims, (false, false));
    run.finish().await;
}

/// A second press of the new-codes key, landing after the gateway took the
/// first, is dropped when codes show or run out, so it starts no round later.
#[tokio::test]
async fn a_second_press_for_new_codes_starts_no_round_unasked() {
    let mut h = Harness::start().await;
    let run = start_with(
        &h,
        false,
        Setup {
            refresh: Duration::from_millis(200),
            ..Setup::default()
        },
    )
    .await;
    wait_state(&mut h, status::State::WaitingForScan).await;
    run.fake.emit(LinkEvent::CodesExhausted).await;
    wait_state(&mut h, status::State::CodesExhausted).await;
    let press = |h: &mut Harness| {
        let mut con = h.con.clone();
        async move {
            let _: () = con
                .set_ex(status::request_key(USER), status::REQUEST_NEW_CODES, 300)
                .await
                .expect("ask");
        }
    };
    press(&mut h).await;
    wait_state(&mut h, status::State::WaitingForScan).await;
    assert_eq!(run.fake.record.lock().expect("lock").connects, 2);
    // The second press, late: the next code drops it.
    press(&mut h).await;
    run.fake
        .emit(LinkEvent::Qr {
            code: "2@second".into(),
            expires_in: 20,
        })
        .await;
    let con = h.con.clone();
    eventually(Duration::from_secs(5), || {
        let mut con = con.clone();
        async move {
            let asked: bool = con.exists(status::request_key(USER)).await.ok()?;
            (!asked).then_some(())
        }
    })
    .await
    .expect("the stale request is dropped when a code shows");
    // Again, and the codes run out at once: dropped too, no new round.
    press(&mut h).await;
    run.fake.emit(LinkEvent::CodesExhausted).await;
    wait_state(&mut h, status::State::CodesExhausted).await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(
        state(&mut h).await.map(|s| s.state),
        Some(status::State::CodesExhausted)
    );
    assert_eq!(
        run.fake.record.lock().expect("lock").connects,
        2,
        "no round unasked"
    );
    let asked: bool = h
        .con
        .exists(status::request_key(USER))
        .await
        .expect("exists");
    assert!(!asked);
    run.finish().await;
}

/// How many commands Redis receives during `window` that match `want` (`MONITOR`).
async fn monitor_count(url: &str, window: Duration, want: impl Fn(&str) -> bool) -> usize {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let path = url.strip_prefix("unix://").expect("a unix socket");
    let mut socket = tokio::net::UnixStream::connect(path)
        .await
        .expect("connect");
    socket
        .write_all(b"*1\r\n$7\r\nMONITOR\r\n")
        .await
        .expect("MONITOR");
    let mut lines = BufReader::new(socket).lines();
    let mut n = 0;
    let _ = tokio::time::timeout(window, async {
        while let Ok(Some(line)) = lines.next_line().await {
            if want(&line) {
                n += 1;
            }
        }
    })
    .await;
    n
}

/// A reply waiting for its retry that leaves the pending list another way
/// (acknowledged by hand here) is forgotten at the next scan, not scanned for
/// again and again.
#[tokio::test]
async fn a_deferred_reply_acknowledged_elsewhere_is_forgotten() {
    let mut h = Harness::start().await;
    h.allow(&[CONTACT]).await;
    let run = met_a_contact(
        &mut h,
        Setup {
            fail_text: Some("will fail".into()),
            send_retry: Duration::from_millis(300),
            ..Setup::default()
        },
        "dinner?",
    )
    .await;
    let failing = queue_text(&mut h, "bot_A1", "will fail", 0).await;
    let fake = run.fake.clone();
    eventually(Duration::from_secs(5), || {
        let ids = send_ids(&fake.calls(), "will fail");
        async move { (ids.len() == 1).then_some(()) }
    })
    .await
    .expect("the first send");
    let _: i64 = h
        .con
        .xack(schema::QUEUE_RESPONSES, "secondme-gateway", &[&failing])
        .await
        .expect("xack");
    // Past its retry time: one scan finds it gone.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let scans = monitor_count(&h.server.url(), Duration::from_millis(2500), |l| {
        l.contains("\"XREADGROUP\"") && l.ends_with("\"QUEUE:responses\" \"0\"")
    })
    .await;
    assert!(scans <= 1, "scanned {scans} times for a reply gone");
    assert_eq!(send_ids(&run.fake.calls(), "will fail").len(), 1);
    run.finish().await;
}

/// The reply lease's holder as the test sees it: `GATEWAYLOCK:{userId}`'s value.
async fn lease_holder(h: &mut Harness) -> Option<String> {
    h.con
        .get(secondme::bridge::whatsapp::lease::key(USER))
        .await
        .expect("GET lease")
}

/// Waits until `run`'s fake has sent `text` `n` times; its sends' WhatsApp ids.
async fn sent_times(run: &Running, text: &str, n: usize) -> Vec<String> {
    let fake = run.fake.clone();
    let text = text.to_owned();
    eventually(Duration::from_secs(8), || {
        let ids = send_ids(&fake.calls(), &text);
        async move { (ids.len() >= n).then_some(ids) }
    })
    .await
    .unwrap_or_else(|| panic!("{n} sends of {text:?}: {:?}", run.fake.calls()))
}

/// Two gateways of one account (same user, same consumer name, one pending
/// list): only the holder of `GATEWAYLOCK:{userId}` sends, each attempt of a
/// failing reply goes out once and with one WhatsApp id; the other says it
/// waits, and takes over when the first stops (the lease released) or crashes
/// (the lease expired).
#[tokio::test]
async fn two_gateways_of_one_account_send_each_attempt_once_and_hand_over_by_the_lease() {
    let mut h = Harness::start().await;
    h.allow(&[CONTACT]).await;
    let setup = || Setup {
        fail_text: Some("will fail".into()),
        send_attempts: 50,
        send_retry: Duration::from_millis(300),
        ..Setup::default()
    };
    let first = start_with(&h, true, setup()).await;
    wait_state(&mut h, status::State::Connected).await;
    let con = h.con.clone();
    let holder = eventually(Duration::from_secs(5), || {
        let mut con = con.clone();
        async move {
            let v: Option<String> = con
                .get(secondme::bridge::whatsapp::lease::key(USER))
                .await
                .ok()?;
            v
        }
    })
    .await
    .expect("the first gateway takes the lease");
    let second = start_with(&h, true, setup()).await;
    let waiting = eventually(Duration::from_secs(5), || {
        let mut con = con.clone();
        async move {
            let json: Option<String> = con.get(status::key(USER)).await.ok()?;
            let s: status::GatewayStatus = serde_json::from_str(&json?).ok()?;
            s.detail
                .filter(|d| d.contains("GATEWAYLOCK:user-1") && d.contains("waits"))
        }
    })
    .await;
    assert!(waiting.is_some(), "the second says it waits");
    for run in [&first, &second] {
        run.fake
            .inbox()
            .commit(&[inbound("A1", "dinner?")])
            .await
            .expect("commit");
    }
    queue_text(&mut h, "bot_A1", "will fail", 0).await;
    let ids = sent_times(&first, "will fail", 3).await;
    assert_eq!(
        send_ids(&second.fake.calls(), "will fail"),
        Vec::<String>::new()
    );
    assert_eq!(lease_holder(&mut h).await, Some(holder.clone()));

    // A clean stop releases the lease: the second takes over at once.
    let _ = first.stop.send(true);
    let _ = first.task.await;
    let by_first = send_ids(&first.fake.calls(), "will fail");
    let taken = sent_times(&second, "will fail", 1).await;
    assert_eq!(taken[0], ids[0], "the same WhatsApp id");
    let held = lease_holder(&mut h).await;
    assert!(held.is_some() && held != Some(holder), "{held:?}");
    let attempts: Option<usize> = h
        .con
        .hget("SENDFAIL:bot_A1", "attempts")
        .await
        .expect("attempts");
    let by_second = send_ids(&second.fake.calls(), "will fail");
    assert_eq!(
        attempts,
        Some(by_first.len() + by_second.len()),
        "one send per attempt: {by_first:?} then {by_second:?}"
    );

    // A crash leaves the lease until it expires; then the third takes over.
    let third = start_with(&h, true, setup()).await;
    let fake = third.fake.clone();
    eventually(Duration::from_secs(5), || {
        let up = fake.record.lock().expect("lock").inbox.is_some();
        async move { up.then_some(()) }
    })
    .await
    .expect("the third connects");
    third
        .fake
        .inbox()
        .commit(&[inbound("A1", "dinner?")])
        .await
        .expect("commit");
    second.task.abort();
    let _ = second.task.await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(
        send_ids(&third.fake.calls(), "will fail"),
        Vec::<String>::new()
    );
    let ttl: i64 = h
        .con
        .pttl(secondme::bridge::whatsapp::lease::key(USER))
        .await
        .expect("pttl");
    assert!((1..=90_000).contains(&ttl), "kept until it expires: {ttl}");
    // Its 90 s run out.
    let _: bool = h
        .con
        .pexpire(secondme::bridge::whatsapp::lease::key(USER), 1)
        .await
        .expect("pexpire");
    let taken = sent_times(&third, "will fail", 1).await;
    assert_eq!(taken[0], ids[0], "still the same WhatsApp id");
    third.finish().await;
    assert_eq!(
        lease_holder(&mut h).await,
        None,
        "released at the clean stop"
    );
}

/// The reconnect backoff starts over after a connection: a loss after
/// reconnecting waits 1 s again, not twice the last wait.
#[tokio::test]
async fn the_reconnect_backoff_starts_over_once_connected() {
    let mut h = Harness::start().await;
    let run = start(&h, true).await;
    wait_state(&mut h, status::State::Connected).await;
    run.fake.drop_link();
    let lost = wait_state(&mut h, status::State::Reconnecting).await;
    let first_wait = lost.next_try.expect("next try") - lost.since;
    assert!((900..=1100).contains(&first_wait), "{lost:?}");
    let con = h.con.clone();
    let fake = run.fake.clone();
    eventually(Duration::from_secs(5), || {
        let mut con = con.clone();
        let connects = fake.record.lock().expect("lock").connects;
        async move {
            let json: Option<String> = con.get(status::key(USER)).await.ok()?;
            let s: status::GatewayStatus = serde_json::from_str(&json?).ok()?;
            (connects == 2 && s.state == status::State::Connected).then_some(())
        }
    })
    .await
    .expect("connected again");
    run.fake.drop_link();
    let again = wait_state(&mut h, status::State::Reconnecting).await;
    let second_wait = again.next_try.expect("next try") - again.since;
    assert!(
        (900..=1100).contains(&second_wait),
        "1 s again after a connection: {again:?}"
    );
    run.finish().await;
}

/// Failed connections in a row keep the `since` of the loss that began the
/// trouble.
#[tokio::test]
async fn failed_reconnects_keep_the_time_the_trouble_began() {
    let mut h = Harness::start().await;
    let run = start(&h, true).await;
    wait_state(&mut h, status::State::Connected).await;
    run.fake.record.lock().expect("lock").fail_connect = true;
    run.fake.drop_link();
    let lost = wait_state(&mut h, status::State::Reconnecting).await;
    // Two tries fail (after 1 s, then 2 s more).
    let con = h.con.clone();
    let fake = run.fake.clone();
    let after = eventually(Duration::from_secs(8), || {
        let mut con = con.clone();
        let connects = fake.record.lock().expect("lock").connects;
        async move {
            let json: Option<String> = con.get(status::key(USER)).await.ok()?;
            let s: status::GatewayStatus = serde_json::from_str(&json?).ok()?;
            (connects == 3 && s.detail.as_deref() == Some("connection refused")).then_some(s)
        }
    })
    .await
    .expect("two failed reconnects");
    assert_eq!(after.state, status::State::Reconnecting);
    assert_eq!(
        after.since, lost.since,
        "since the loss: {lost:?} {after:?}"
    );
    run.finish().await;
}

/// A reply waiting for its dead letter (the library missing) keeps its claim
/// and its failures alive at each retry, so they never expire into a fresh
/// claim that would send the old reply again.
#[tokio::test]
async fn a_reply_waiting_for_its_dead_letter_keeps_its_claim_and_is_not_sent_again() {
    let mut h = Harness::start().await;
    let run = a_failing_reply_without_the_library(&mut h).await;
    queue_text(&mut h, "bot_A1", "will fail", 0).await;
    sent_times(&run, "will fail", 1).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    // As if most of their 24 h had passed.
    for key in ["SENTREPLY:bot_A1", "SENDFAIL:bot_A1"] {
        let set: bool = h.con.pexpire(key, 1500).await.expect("pexpire");
        assert!(set, "{key} exists");
    }
    tokio::time::sleep(Duration::from_millis(2500)).await;
    for key in ["SENTREPLY:bot_A1", "SENDFAIL:bot_A1"] {
        let ttl: i64 = h.con.pttl(key).await.expect("pttl");
        assert!(ttl > 60_000, "{key} renewed at each retry: {ttl}");
    }
    assert_eq!(
        send_ids(&run.fake.calls(), "will fail").len(),
        1,
        "not sent again"
    );
    assert_eq!(pending_replies(&mut h).await, 1, "still pending");
    run.finish().await;
}

/// A reply's "typing..." lasts its `delayMs`, at most a minute: a huge one
/// (hostile or a bug) would hold every later reply behind it.
#[test]
fn the_typing_delay_is_capped_at_a_minute() {
    assert_eq!(gateway::MAX_TYPING_DELAY, Duration::from_secs(60));
    assert_eq!(gateway::typing_delay("1500"), Duration::from_millis(1500));
    assert_eq!(gateway::typing_delay("60000"), Duration::from_secs(60));
    assert_eq!(gateway::typing_delay("60001"), gateway::MAX_TYPING_DELAY);
    assert_eq!(
        gateway::typing_delay(&u64::MAX.to_string()),
        gateway::MAX_TYPING_DELAY
    );
    assert_eq!(
        gateway::typing_delay("99999999999999999999999"),
        Duration::ZERO
    );
    assert_eq!(gateway::typing_delay("-5"), Duration::ZERO);
    assert_eq!(gateway::typing_delay(""), Duration::ZERO);
}

/// A reply WhatsApp took is recorded even when Redis refuses writes right after
/// the send (longer than the connection's 3 s response timeout): the gateway
/// keeps trying to record it instead of going round and sending it again.
#[tokio::test]
async fn a_sent_reply_redis_could_not_record_at_once_is_not_sent_again() {
    let mut h = Harness::start().await;
    h.allow(&[CONTACT]).await;
    let run = start(&h, true).await;
    run.fake.record.lock().expect("lock").pause_writes_after = Some(("on my way".into(), 4500));
    wait_state(&mut h, status::State::Connected).await;
    run.fake
        .inbox()
        .commit(&[inbound("A1", "where are you?")])
        .await
        .expect("commit");
    queue_text(&mut h, "bot_A1", "on my way", 0).await;
    let con = h.con.clone();
    let recorded = eventually(Duration::from_secs(15), || {
        let mut con = con.clone();
        async move {
            let claim: Option<String> = con.get("SENTREPLY:bot_A1").await.ok()?;
            claim.filter(|c| !c.starts_with("sending:"))
        }
    })
    .await
    .expect("recorded as sent once Redis takes writes again");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let ids = send_ids(&run.fake.calls(), "on my way");
    assert_eq!(ids.len(), 1, "sent once: {:?}", run.fake.calls());
    assert_eq!(recorded, format!("{CONTACT}.{}", ids[0]));
    assert_eq!(pending_replies(&mut h).await, 0);
    let echoes = stream(&mut h, schema::QUEUE_MESSAGES)
        .await
        .into_iter()
        .filter(|e| e["fromMe"] == "true")
        .count();
    assert_eq!(echoes, 1);
    run.finish().await;
}

/// A reply left unsent for over a day without a claim (a gateway down that
/// long: an earlier attempt's claim may have expired after WhatsApp took it) is
/// dead-lettered, never sent late under a fresh id.
#[tokio::test]
async fn a_reply_older_than_its_claims_can_live_is_dead_lettered_not_sent() {
    let mut h = Harness::start().await;
    h.allow(&[CONTACT]).await;
    let run = met_a_contact(&mut h, Setup::default(), "where are you?").await;
    let day_ago = secondme::store::now_ms() - 25 * 60 * 60 * 1000;
    let _: String = h
        .con
        .xadd(
            schema::QUEUE_RESPONSES,
            format!("{day_ago}-0"),
            &[
                (schema::response_fields::REPLY_ID, "bot_old"),
                (schema::response_fields::CONTACT_ID, CONTACT),
                (schema::response_fields::CONTENT, "on my way"),
                (schema::response_fields::DELAY_MS, "0"),
            ],
        )
        .await
        .expect("xadd");
    let letters = dead_letters(&mut h).await;
    assert_eq!(letters.len(), 1);
    assert!(
        letters[0]["reason"].contains("bot_old") && letters[0]["reason"].contains("after a day"),
        "{letters:?}"
    );
    assert!(send_ids(&run.fake.calls(), "on my way").is_empty());
    assert_eq!(pending_replies(&mut h).await, 0);
    assert!(!gateway::too_old_to_claim(
        &format!("{}-0", secondme::store::now_ms() - 60_000),
        secondme::store::now_ms()
    ));
    assert!(!gateway::too_old_to_claim("not-an-id", 0));
    run.finish().await;
}

/// The lease taken by another gateway while a reply shows "typing...": the
/// reply is not sent, its "typing..." is cleared, nothing more is typed, sent
/// or dead-lettered without the lease; once it is back, each reply goes once.
#[tokio::test]
async fn a_lease_lost_while_typing_sends_nothing_and_clears_the_typing() {
    let mut h = Harness::start().await;
    h.allow(&[CONTACT]).await;
    let run = met_a_contact(
        &mut h,
        Setup {
            refresh: Duration::from_millis(300),
            ..Setup::default()
        },
        "where are you?",
    )
    .await;
    let lease = secondme::bridge::whatsapp::lease::key(USER);
    eventually(Duration::from_secs(5), || {
        let mut con = h.con.clone();
        let lease = lease.clone();
        async move { con.exists::<_, bool>(&lease).await.ok()?.then_some(()) }
    })
    .await
    .expect("the lease taken");
    // Typing longer than the wait below: it must end when the lease goes.
    queue_text(&mut h, "bot_A1", "on my way", 8_000).await;
    queue_text(&mut h, "bot_A2", "see you", 0).await;
    let fake = run.fake.clone();
    eventually(Duration::from_secs(5), || {
        let typing = fake.calls().iter().any(|c| c.starts_with("composing"));
        async move { typing.then_some(()) }
    })
    .await
    .expect("typing");
    let _: () = h.con.set(&lease, "another-gateway").await.expect("SET");
    // The lease check (every 2 s) sees it; the typing ends within a second.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let calls = run.fake.calls();
    assert!(
        !calls.iter().any(|c| c.starts_with("send")),
        "nothing sent without the lease: {calls:?}"
    );
    let last_typing = calls
        .iter()
        .rposition(|c| c.starts_with("composing") || c.starts_with("paused"))
        .expect("typing calls");
    assert!(
        calls[last_typing].starts_with("paused"),
        "typing cleared and not shown again: {calls:?}"
    );
    assert_eq!(pending_replies(&mut h).await, 2);
    let letters: usize = h.con.xlen(schema::QUEUE_DEADLETTER).await.expect("xlen");
    assert_eq!(letters, 0);

    // Back with the lease, the reply types its whole delay again, then goes.
    let _: () = h.con.del(&lease).await.expect("DEL");
    let fake = run.fake.clone();
    eventually(Duration::from_secs(20), || {
        let calls = fake.calls();
        let both =
            !send_ids(&calls, "on my way").is_empty() && !send_ids(&calls, "see you").is_empty();
        async move { both.then_some(()) }
    })
    .await
    .expect("both sent once the lease is back");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(send_ids(&run.fake.calls(), "on my way").len(), 1);
    assert_eq!(send_ids(&run.fake.calls(), "see you").len(), 1);
    assert_eq!(pending_replies(&mut h).await, 0);
    run.finish().await;
}

/// The lease is never renewed for, nor released from under, another gateway:
/// a release leaves another's lease and one of ours about to expire.
#[tokio::test]
async fn the_lease_is_never_renewed_or_released_for_another_gateway() {
    use secondme::bridge::whatsapp::lease::{self, Lease};
    let mut h = Harness::start().await;
    let key = lease::key(USER);
    let ours = Lease::new(USER);
    assert!(ours.hold(&mut h.con).await.expect("take"));
    assert!(ours.hold(&mut h.con).await.expect("renew"));
    let ttl: i64 = h.con.pttl(&key).await.expect("pttl");
    assert!(ttl > 80_000, "{ttl}");

    let _: () = h.con.set_ex(&key, "other", 60).await.expect("SET");
    assert!(!ours.hold(&mut h.con).await.expect("check"));
    ours.release(&mut h.con).await.expect("release");
    assert_eq!(lease_holder(&mut h).await.as_deref(), Some("other"));

    let _: () = h.con.del(&key).await.expect("DEL");
    assert!(ours.hold(&mut h.con).await.expect("take"));
    let _: bool = h.con.pexpire(&key, 2000).await.expect("pexpire");
    ours.release(&mut h.con).await.expect("release");
    let left: i64 = h.con.pttl(&key).await.expect("pttl");
    assert!(
        left > 0,
        "a lease about to expire is left to expire: {left}"
    );

    let _: () = h.con.del(&key).await.expect("DEL");
    assert!(ours.hold(&mut h.con).await.expect("take"));
    ours.release(&mut h.con).await.expect("release");
    assert_eq!(lease_holder(&mut h).await, None, "released");
}

/// Another gateway sends the reply under the same WhatsApp id while this one
/// types it (both read the id from `SENDFAIL:`): this one's lost claim leaves
/// the `SENT:` mark the winner's echo needs, sends nothing and acknowledges.
#[tokio::test]
async fn a_claim_lost_to_a_send_under_the_same_id_keeps_its_sent_mark() {
    let mut h = Harness::start().await;
    h.allow(&[CONTACT]).await;
    let run = met_a_contact(&mut h, Setup::default(), "where are you?").await;
    let message_id = format!("{CONTACT}.X1");
    let _: () = h
        .con
        .hset_multiple(
            "SENDFAIL:bot_A1",
            &[("attempts", "1"), ("waId", "X1"), ("error", "timeout")],
        )
        .await
        .expect("HSET");
    run.fake.record.lock().expect("lock").on_composing = vec![
        ("SENTREPLY:bot_A1".into(), message_id.clone()),
        (format!("SENT:{message_id}"), "1".into()),
    ];
    queue_text(&mut h, "bot_A1", "on my way", 0).await;
    let con = h.con.clone();
    let fake = run.fake.clone();
    eventually(Duration::from_secs(5), || {
        let mut con = con.clone();
        let typed = fake.calls().iter().any(|c| c.starts_with("composing"));
        async move {
            let pending: redis::streams::StreamPendingReply = con
                .xpending(schema::QUEUE_RESPONSES, "secondme-gateway")
                .await
                .ok()?;
            (typed && pending.count() == 0).then_some(())
        }
    })
    .await
    .expect("acknowledged");
    assert!(send_ids(&run.fake.calls(), "on my way").is_empty());
    let mark: bool = h
        .con
        .exists(format!("SENT:{message_id}"))
        .await
        .expect("exists");
    assert!(mark, "the winner's SENT: mark stays");
    run.finish().await;
}

/// A contact another gateway of the account met first (its address only in
/// the shared directory file) is answered, not dead-lettered.
#[tokio::test]
async fn a_contact_met_by_another_gateway_is_found_in_the_directory_file() {
    let mut h = Harness::start().await;
    h.allow(&[CONTACT]).await;
    let run = start(&h, true).await;
    wait_state(&mut h, status::State::Connected).await;
    let other = Directory::open(run._dir.join("contacts.json")).expect("directory");
    other
        .remember([(CONTACT, "15550001111@s.whatsapp.net")])
        .expect("remember");
    queue_text(&mut h, "bot_A1", "on my way", 0).await;
    let ids = sent_times(&run, "on my way", 1).await;
    assert_eq!(ids.len(), 1);
    assert!(
        run.fake
            .calls()
            .iter()
            .any(|c| c.starts_with("send 15550001111@s.whatsapp.net")),
        "{:?}",
        run.fake.calls()
    );
    let letters: usize = h.con.xlen(schema::QUEUE_DEADLETTER).await.expect("xlen");
    assert_eq!(letters, 0);
    run.finish().await;
}

/// The dead-letter step writes a letter only for an entry still pending in
/// the group: one another consumer acknowledged meanwhile (sent by another
/// gateway) was handled, not lost.
#[tokio::test]
async fn an_entry_acknowledged_meanwhile_gets_no_dead_letter() {
    use secondme::worker::batch::{self, DeadLetter};
    let mut h = Harness::start().await;
    secondme::store::functions::load(&mut h.con)
        .await
        .expect("library");
    let _: () = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(schema::QUEUE_RESPONSES)
        .arg("g")
        .arg("$")
        .arg("MKSTREAM")
        .query_async(&mut h.con)
        .await
        .expect("group");
    let a = queue_text(&mut h, "bot_A1", "one", 0).await;
    let b = queue_text(&mut h, "bot_A2", "two", 0).await;
    let _: redis::Value = redis::cmd("XREADGROUP")
        .arg("GROUP")
        .arg("g")
        .arg("c")
        .arg("STREAMS")
        .arg(schema::QUEUE_RESPONSES)
        .arg(">")
        .query_async(&mut h.con)
        .await
        .expect("read");
    let _: i64 = h
        .con
        .xack(schema::QUEUE_RESPONSES, "g", &[&a])
        .await
        .expect("ack");
    let letters: Vec<DeadLetter> = [&a, &b]
        .into_iter()
        .map(|id| DeadLetter {
            stream_id: id.clone(),
            reason: format!("test {id}"),
            fields: vec![],
        })
        .collect();
    batch::dead_letter_from(&mut h.con, schema::QUEUE_RESPONSES, "g", &letters)
        .await
        .expect("dead letter");
    let written = stream(&mut h, schema::QUEUE_DEADLETTER).await;
    assert_eq!(written.len(), 1, "{written:?}");
    assert_eq!(written[0]["reason"], format!("test {b}"));
}

/// Waits until `run`'s fake made its `n`-th connection and the gateway shows it connected.
async fn connected_again(h: &mut Harness, run: &Running, n: usize) {
    let con = h.con.clone();
    let fake = run.fake.clone();
    eventually(Duration::from_secs(5), || {
        let mut con = con.clone();
        let connects = fake.record.lock().expect("lock").connects;
        async move {
            let json: Option<String> = con.get(status::key(USER)).await.ok()?;
            let s: status::GatewayStatus = serde_json::from_str(&json?).ok()?;
            (connects == n && s.state == status::State::Connected).then_some(())
        }
    })
    .await
    .unwrap_or_else(|| panic!("connection {n} never came"));
}

/// How many sends `fake` was asked for.
fn sends(fake: &FakeConnector) -> usize {
    fake.calls()
        .iter()
        .filter(|c| c.starts_with("send "))
        .count()
}

/// The send budget belongs to the gateway's run, not to one connection: a
/// connection that drops and comes back three times within a minute sends no
/// more than `send_per_minute` in that minute.
#[tokio::test]
async fn a_flapping_connection_sends_no_more_than_the_budget_in_a_minute() {
    let mut h = Harness::start().await;
    h.allow(&[CONTACT]).await;
    let setup = Setup {
        send_per_minute: 2,
        ..Setup::default()
    };
    let run = met_a_contact(&mut h, setup, "are you free?").await;
    let started = std::time::Instant::now();
    for n in 0..6 {
        queue_text(&mut h, &format!("bot_R{n}"), &format!("reply {n}"), 0).await;
    }
    let fake = run.fake.clone();
    eventually(Duration::from_secs(8), || {
        let n = sends(&fake);
        async move { (n >= 2).then_some(()) }
    })
    .await
    .expect("the budget's two replies go at once");
    for connection in 2..=4 {
        run.fake.drop_link();
        connected_again(&mut h, &run, connection).await;
        // Long enough for a new connection's sender to send whatever it may.
        tokio::time::sleep(Duration::from_millis(1500)).await;
    }
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "within the half minute the next token needs"
    );
    assert_eq!(sends(&run.fake), 2, "{:?}", run.fake.calls());
    run.finish().await;
}

/// A contact id as the gateway makes them.
fn contact_id(phone: &str) -> String {
    use secondme::bridge::whatsapp::contact::{ContactHasher, Person};
    ContactHasher::new([5; 32]).id(&Person::Phone(phone.into()))
}

/// WhatsApp ids the queue once refused (over 92 bytes: the message id went over
/// the 120-byte limit) or merged (no letters or digits), and a usual one, which
/// is kept as it is.
#[test]
fn long_and_odd_whatsapp_ids_get_valid_distinct_message_ids() {
    use secondme::bridge::whatsapp::message_id;
    let contact = contact_id("15550001111");
    for len in [92, 93, 120, 128, 4096] {
        let id = message_id(&contact, &"A".repeat(len));
        assert!(schema::check_id(&id).is_ok(), "{len}: {id}");
    }
    assert_ne!(
        message_id(&contact, &"A".repeat(128)),
        message_id(&contact, &"A".repeat(129))
    );
    let odd = [
        "",
        "!",
        "??",
        "++",
        "--",
        "__",
        "\u{1f600}",
        "\u{202e}",
        "é",
    ];
    let ids: std::collections::HashSet<String> =
        odd.iter().map(|w| message_id(&contact, w)).collect();
    assert_eq!(ids.len(), odd.len(), "{ids:?}");
    assert!(ids.iter().all(|id| schema::check_id(id).is_ok()), "{ids:?}");
    assert_eq!(
        message_id(&contact, "3EB0C767D26A8F8B2D4A"),
        format!("{contact}.3EB0C767D26A8F8B2D4A")
    );
}

/// WhatsApp ids as they may come: usual ones, long ones, ones without letters
/// or digits, and anything at all.
fn whatsapp_id() -> impl proptest::strategy::Strategy<Value = String> {
    use proptest::prelude::*;
    prop_oneof![
        "[A-Za-z0-9_-]{0,70}",
        "[A-Za-z0-9]{88,140}",
        "[^A-Za-z0-9]{0,12}",
        "[-_.!? ]{0,6}",
        any::<String>(),
    ]
}

proptest::proptest! {
    #![proptest_config(proptest::test_runner::Config::with_cases(1024))]

    /// Any two distinct WhatsApp ids (and an id and its near twin), in one chat
    /// or two, map to distinct message ids, each valid (within the 120-byte
    /// limit) and the same every time.
    #[test]
    fn distinct_whatsapp_ids_map_to_distinct_valid_stable_message_ids(
        a in whatsapp_id(),
        b in whatsapp_id(),
        tail in "[A-Za-z0-9!é]{1,3}",
    ) {
        use secondme::bridge::whatsapp::message_id;
        let (one, two) = (contact_id("15550001111"), contact_id("15550002222"));
        let near = format!("{a}{tail}");
        for w in [&a, &b, &near] {
            let id = message_id(&one, w);
            proptest::prop_assert!(schema::check_id(&id).is_ok(), "{:?} -> {}", w, id);
            proptest::prop_assert!(id.len() <= schema::MAX_ID_BYTES);
            proptest::prop_assert_eq!(&id, &message_id(&one, w));
            proptest::prop_assert_ne!(&id, &message_id(&two, w));
        }
        proptest::prop_assert_ne!(message_id(&one, &a), message_id(&one, &near));
        if a != b {
            proptest::prop_assert_ne!(message_id(&one, &a), message_id(&one, &b));
            proptest::prop_assert_ne!(message_id(&one, &a), message_id(&two, &b));
        }
    }
}

/// A `ws://` endpoint on a closed local port: nothing answers, on any machine.
#[cfg(feature = "whatsapp")]
fn closed_endpoint() -> String {
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("address").port()
    };
    format!("ws://127.0.0.1:{closed}/ws/chat")
}

/// Mode bits of `path`.
#[cfg(feature = "whatsapp")]
fn mode_of(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .expect("metadata")
        .permissions()
        .mode()
        & 0o777
}

/// A directory of the user's in the gateway's: a file (0640) and a folder
/// (0750) holding a file.
#[cfg(feature = "whatsapp")]
fn user_things(wa: &std::path::Path) {
    use std::os::unix::fs::PermissionsExt;
    let photos = wa.join("photos");
    std::fs::create_dir_all(&photos).expect("dirs");
    std::fs::write(photos.join("beach.jpg"), b"jpg").expect("photo");
    std::fs::write(wa.join("notes.txt"), b"mine").expect("notes");
    for (path, mode) in [(photos, 0o750), (wa.join("notes.txt"), 0o640)] {
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).expect("chmod");
    }
}

/// What [`user_things`] made is all there, with its modes.
#[cfg(feature = "whatsapp")]
fn user_things_kept(wa: &std::path::Path) {
    assert_eq!(
        mode_of(&wa.join("photos")),
        0o750,
        "the folder stays usable"
    );
    assert_eq!(
        std::fs::read(wa.join("photos").join("beach.jpg")).expect("the photo is kept"),
        b"jpg"
    );
    assert_eq!(mode_of(&wa.join("notes.txt")), 0o640);
    assert_eq!(
        std::fs::read(wa.join("notes.txt")).expect("the file is kept"),
        b"mine"
    );
}

/// The gateway's directory may hold things of the user's: a start (the real
/// library opening its SQLite store) makes only the gateway's files 0600, and
/// deleting the store (at a logout) removes only those.
#[cfg(feature = "whatsapp")]
#[tokio::test]
async fn the_gateway_tightens_and_deletes_only_its_own_files() {
    use secondme::bridge::whatsapp::client::{
        CONTACTS_FILE, OWN_FILES, STORE_FILE, WhatsAppConnector,
    };
    use secondme::bridge::whatsapp::contact::ContactHasher;
    use secondme::bridge::whatsapp::mapping::MapOptions;
    use std::os::unix::fs::PermissionsExt;
    let h = Harness::start().await;
    let dir = TestDir::new("wa-own");
    let wa = dir.join("wa");
    user_things(&wa);
    let contacts = wa.join(CONTACTS_FILE);
    std::fs::write(&contacts, b"{}").expect("contacts");
    std::fs::set_permissions(&contacts, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let connector = WhatsAppConnector::new(
        wa.clone(),
        ContactHasher::new([1; 32]),
        MapOptions::default(),
    )
    .with_endpoint(closed_endpoint());
    let inbox = Inbox::new(
        h.con.clone(),
        h.acked,
        Directory::open(contacts.clone()).expect("directory"),
    );
    let (tx, _events) = mpsc::channel(64);
    let link = connector.connect(inbox, tx).await.expect("the store opens");
    link.shutdown().await;
    user_things_kept(&wa);
    assert_eq!(mode_of(&wa.join(STORE_FILE)), 0o600);
    assert_eq!(
        mode_of(&contacts),
        0o600,
        "an older, looser file is tightened"
    );
    for name in OWN_FILES {
        if wa.join(name).exists() {
            assert_eq!(mode_of(&wa.join(name)), 0o600, "{name}");
        }
    }
    // What a crash may leave behind is the gateway's too.
    for leftover in ["device.db-journal", "contacts.tmp"] {
        std::fs::write(wa.join(leftover), b"x").expect("leftover");
    }
    assert!(connector.has_store());
    connector.remove_store().expect("deleted");
    for name in OWN_FILES {
        assert!(!wa.join(name).exists(), "{name} is deleted");
    }
    assert!(!connector.has_store());
    user_things_kept(&wa);
}

/// `secondme logout` deletes the gateway's files and leaves the user's.
#[cfg(feature = "whatsapp")]
#[tokio::test]
async fn secondme_logout_leaves_what_is_not_the_gateway_s() {
    let h = Harness::start().await;
    let dir = TestDir::new("wa-logout-own");
    let wa = dir.join("wa");
    user_things(&wa);
    let own = [
        "contacts.json",
        "contacts.tmp",
        "device.db-wal",
        "device.db-shm",
        "device.db-journal",
    ];
    for name in own {
        std::fs::write(wa.join(name), b"x").expect("file");
    }
    let out = real_command(&h, &dir, &["logout"])
        .output()
        .expect("run secondme logout");
    assert!(
        out.status.success(),
        "{} {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    for name in own {
        assert!(!wa.join(name).exists(), "{name} is deleted");
    }
    user_things_kept(&wa);
}
