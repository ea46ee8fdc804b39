//! Test harness: a real `redis-server` per test (private Unix socket, killed at
//! the end), pub/sub capture, and helpers to write entries as a gateway does.
#![allow(dead_code)]

pub mod cluster;
pub mod media;
pub mod node_pubsub;
pub mod nodes;
pub mod pty;
pub mod replicated;
pub mod sentinel;
pub mod streams;
pub mod tls;
pub mod worker;

use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use redis::AsyncCommands;
use secondme::config::{Config, Overrides};
use secondme::connection::Con;
use secondme::schema::{self, Direction, QueueMessage};
use secondme::server::{GraphModule, RedisServer};
use secondme::store::{self, queue};
use secondme::{connection, server};
use tokio::sync::mpsc;

/// A directory for one test's files (config, review file, logs), removed with it.
pub struct TestDir(PathBuf);

static TEST_DIRS: AtomicUsize = AtomicUsize::new(0);

impl TestDir {
    /// A fresh, empty directory named after `label`, this process and a counter.
    pub fn new(label: &str) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "secondme-{label}-{}-{}",
            std::process::id(),
            TEST_DIRS.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("test dir");
        Self(dir)
    }
}

impl Deref for TestDir {
    type Target = Path;

    fn deref(&self) -> &Path {
        &self.0
    }
}

impl AsRef<Path> for TestDir {
    fn as_ref(&self) -> &Path {
        &self.0
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A running server and a connection to it.
pub struct Harness {
    pub server: RedisServer,
    pub con: Con,
    pub acked: bool,
    /// Where the test's config and review files go.
    pub dir: TestDir,
}

impl Harness {
    /// Starts a fresh server (the one `SECONDME_REDIS_SERVER` names, else the project's).
    pub async fn start() -> Self {
        let binary = server::find_binary().expect("a redis-server (run scripts/setup.sh)");
        let server = RedisServer::start(binary, GraphModule::Without).expect("start redis-server");
        let client = connection::open_client(&server.url()).expect("client");
        let mut con = connection::manager(&client, None).await.expect("connect");
        let version = connection::server_version(&mut con).await.expect("version");
        Self {
            server,
            con,
            acked: connection::supports_acked_trim(version),
            dir: TestDir::new("test"),
        }
    }

    /// A config pointing at this server, with a test-speed claim time.
    pub fn config(&self, consumer: &str) -> Config {
        let dir = &self.dir;
        Config::load(
            Some(&write_empty_config(dir)),
            Overrides {
                redis_url: Some(self.server.url()),
                consumer: Some(consumer.into()),
                claim_idle: Some("1s".into()),
                review_file: Some(dir.join(format!("review-{consumer}.jsonl"))),
                ..Overrides::default()
            },
        )
        .expect("config")
    }

    /// Lets the twin answer: state marker present, kill switch off, contacts enabled.
    pub async fn allow(&mut self, contacts: &[&str]) {
        let _: () = self
            .con
            .set(schema::state_marker(), "1")
            .await
            .expect("marker");
        let _: () = self.con.del(schema::pause_all()).await.expect("kill off");
        let ids: Vec<String> = contacts.iter().map(|c| c.to_string()).collect();
        store::optin::set_enabled(&mut self.con, &ids, true)
            .await
            .expect("enable");
    }

    /// Writes a message as a gateway does.
    pub async fn send(&mut self, m: &QueueMessage) {
        let _: String = queue::xadd(m, self.acked)
            .query_async(&mut self.con)
            .await
            .expect("xadd");
    }

    /// Writes raw fields (for malformed entries).
    pub async fn send_raw(&mut self, fields: &[(&str, &[u8])]) -> String {
        let mut cmd = redis::cmd("XADD");
        cmd.arg(schema::queue_messages()).arg("*");
        for (k, v) in fields {
            cmd.arg(*k).arg(*v);
        }
        cmd.query_async(&mut self.con).await.expect("xadd raw")
    }

    /// Entries of `QUEUE:responses` as field maps.
    pub async fn responses(&mut self) -> Vec<std::collections::HashMap<String, String>> {
        streams::entries(&mut self.con, schema::queue_responses()).await
    }

    /// Entries of `QUEUE:deadletter` as field maps.
    pub async fn dead_letters(&mut self) -> Vec<std::collections::HashMap<String, String>> {
        streams::entries(&mut self.con, schema::queue_deadletter()).await
    }

    /// Subscribes to every channel; returns (channel, payload) pairs as they arrive.
    pub async fn subscribe(&self) -> mpsc::UnboundedReceiver<(String, String)> {
        self.subscribe_to(&schema::channels()[..]).await
    }

    /// Subscribes to `channels`; returns (channel, payload) pairs as they arrive.
    pub async fn subscribe_to(
        &self,
        channels: &[&str],
    ) -> mpsc::UnboundedReceiver<(String, String)> {
        let client = connection::open_client(&self.server.url()).expect("client");
        let mut pubsub = client.get_async_pubsub().await.expect("pubsub");
        pubsub.subscribe(channels).await.expect("subscribe");
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut stream = pubsub.into_on_message();
            while let Some(msg) = stream.next().await {
                let payload: String = msg.get_payload().unwrap_or_default();
                if tx
                    .send((msg.get_channel_name().to_owned(), payload))
                    .is_err()
                {
                    break;
                }
            }
        });
        rx
    }
}

fn write_empty_config(dir: &std::path::Path) -> std::path::PathBuf {
    std::fs::create_dir_all(dir).expect("temp dir");
    let path = dir.join("config.toml");
    std::fs::write(&path, "").expect("config");
    path
}

/// Runs the real `secondme ARGS --redis-url URL` with private config and state
/// directories under `dir`.
pub fn run_cli(url: &str, dir: &Path, args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_secondme"))
        .args(args)
        .arg("--redis-url")
        .arg(url)
        .env("XDG_CONFIG_HOME", dir.join("config"))
        .env("XDG_STATE_HOME", dir.join("state"))
        .env_remove("SECONDME_CONFIG")
        .output()
        .expect("run secondme")
}

/// An incoming message from `contact`, stamped now.
pub fn incoming(id: &str, contact: &str, content: &str) -> QueueMessage {
    QueueMessage {
        message_id: id.into(),
        contact_id: contact.into(),
        content: content.into(),
        timestamp: store::now_ms(),
        direction: Direction::Incoming,
        from_me: false,
    }
}

/// A message the person typed on their phone.
pub fn typed_by_person(id: &str, contact: &str, content: &str) -> QueueMessage {
    QueueMessage {
        direction: Direction::Outgoing,
        from_me: true,
        ..incoming(id, contact, content)
    }
}

/// Sleep hours two hours wide, in local time: around now when `around_now`, else
/// starting two hours from now.
#[allow(dead_code)]
pub fn sleep_window(around_now: bool) -> secondme::sleep::SleepHours {
    let now = secondme::sleep::local_minute_of_day(store::now_ms()).expect("local time");
    let at = |offset: i32| {
        let m = (i32::from(now) + offset).rem_euclid(24 * 60);
        format!("{:02}:{:02}", m / 60, m % 60)
    };
    let (start, end) = if around_now { (-60, 60) } else { (120, 240) };
    secondme::sleep::SleepHours::between(&at(start), &at(end)).expect("window")
}

/// How the worker recorded handling `message_id`, if it did (`None` on a read error too).
pub async fn handled(con: &mut Con, message_id: &str) -> Option<String> {
    secondme::store::handled::state(con, message_id)
        .await
        .ok()
        .flatten()
}

/// Polls `check` until it returns Some or `timeout` passes.
pub async fn eventually<T, F, Fut>(timeout: Duration, mut check: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return Some(v);
        }
        if Instant::now() > deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Collects published payloads of `channel` for `wait`.
pub async fn collect(
    rx: &mut mpsc::UnboundedReceiver<(String, String)>,
    channel: &str,
    wait: Duration,
) -> Vec<serde_json::Value> {
    let deadline = tokio::time::Instant::now() + wait;
    let mut out = Vec::new();
    while let Ok(Some((ch, payload))) = tokio::time::timeout_at(deadline, rx.recv()).await {
        if ch == channel {
            out.push(serde_json::from_str(&payload).expect("payload is JSON"));
        }
    }
    out
}
