//! `replicas_to_wait` in the worker, against a real primary and its replica:
//! an outcome counts once the replica holds what the batch wrote, a replica
//! that does not acknowledge is reported (not ignored), and with 0 no `WAIT`
//! reaches Redis.

mod common;

use std::time::{Duration, Instant};

use common::replicated::Replicated;
use common::{TestDir, incoming, nodes};
use secondme::config::{Config, Overrides, SleepSetting};
use secondme::connection::{self, Con};
use secondme::reply::persona_engine::PersonaEngine;
use secondme::schema;
use secondme::store::durability::WAIT_TIMEOUT;
use secondme::store::{self, queue};
use secondme::worker::{Worker, WorkerConfig, WorkerStatus};
use tokio::sync::watch;

/// How long the replica is stopped while the worker answers.
const PAUSE: Duration = Duration::from_millis(700);

/// A worker against `topo`'s primary, its status and its stop switch.
struct Running {
    status: watch::Receiver<WorkerStatus>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<anyhow::Result<WorkerStatus>>,
}

impl Running {
    async fn start(topo: &Replicated, replicas_to_wait: u32, dir: &TestDir) -> Self {
        let config = Config::load(
            Some(&write_config(dir)),
            Overrides {
                redis_url: Some(topo.url()),
                consumer: Some("w-durable".to_owned()),
                claim_idle: Some("1s".to_owned()),
                replicas_to_wait: Some(replicas_to_wait),
                review_file: Some(dir.join("review.jsonl")),
                ..Overrides::default()
            },
        )
        .expect("config");
        let mut cfg = WorkerConfig::from_config(&config);
        assert_eq!(cfg.replicas_to_wait, replicas_to_wait, "from the setting");
        cfg.sleep_hours = SleepSetting::Off;
        cfg.block = Duration::from_millis(200);
        let client = connection::open_client(&topo.url()).expect("client");
        let worker = Worker::connect(client, PersonaEngine::default(), cfg)
            .await
            .expect("worker connects");
        let mut status = worker.status();
        let (stop, stop_rx) = watch::channel(false);
        let task = tokio::spawn(worker.run(stop_rx));
        tokio::time::timeout(
            Duration::from_secs(10),
            status.wait_for(|s| s.state == secondme::worker::WorkerState::Running),
        )
        .await
        .expect("the worker runs in time")
        .expect("status");
        Self { status, stop, task }
    }

    /// Waits until `done` holds of the status; when it did.
    async fn until(&mut self, done: impl Fn(&WorkerStatus) -> bool) -> (WorkerStatus, Instant) {
        let s = tokio::time::timeout(Duration::from_secs(15), self.status.wait_for(done))
            .await
            .expect("the outcome in time")
            .expect("status")
            .clone();
        (s, Instant::now())
    }

    async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = tokio::time::timeout(Duration::from_secs(15), self.task).await;
    }
}

fn write_config(dir: &TestDir) -> std::path::PathBuf {
    let file = dir.join("config.toml");
    std::fs::write(&file, "").expect("config file");
    file
}

/// A connection to the primary with the twin allowed to answer `contacts`.
async fn allowed(topo: &Replicated, contacts: &[&str]) -> Con {
    let client = connection::open_client(&topo.url()).expect("client");
    let mut con = connection::manager(&client, None).await.expect("connect");
    let _: () = redis::cmd("SET")
        .arg(schema::state_marker())
        .arg("1")
        .query_async(&mut con)
        .await
        .expect("marker");
    let ids: Vec<String> = contacts.iter().map(|c| (*c).to_owned()).collect();
    store::optin::set_enabled(&mut con, &ids, true)
        .await
        .expect("enable");
    con
}

async fn send(con: &mut Con, id: &str, contact: &str) {
    let _: String = queue::xadd(&incoming(id, contact, "are you coming tonight?"), false)
        .query_async(con)
        .await
        .expect("xadd");
}

/// The message ids `QUEUE:responses` answers on the node at `port`, read there.
async fn answered_on(port: u16) -> Vec<String> {
    let mut con = nodes::connect(port).await.expect("connect to the node");
    let reply: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
        .arg(schema::queue_responses())
        .arg("-")
        .arg("+")
        .query_async(&mut con)
        .await
        .expect("XRANGE");
    reply
        .ids
        .iter()
        .map(|e| {
            e.get::<String>(schema::response_fields::IN_REPLY_TO)
                .unwrap_or_default()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_one_replica_to_wait_the_reply_is_on_the_replica_when_the_outcome_counts() {
    let topo = Replicated::start().await;
    let mut con = allowed(&topo, &["alice", "amy"]).await;
    let dir = TestDir::new("durable-wait");
    let mut worker = Running::start(&topo, 1, &dir).await;
    let waits_before = topo.waits_on_primary().await;

    // The replica acknowledges nothing for a while: the outcome waits for it.
    topo.process.pause();
    let sent = Instant::now();
    send(&mut con, "m1", "alice").await;
    let process = topo.process;
    let resumer = tokio::spawn(async move {
        tokio::time::sleep(PAUSE).await;
        process.resume();
        Instant::now()
    });
    let (status, counted) = worker.until(|s| s.answered >= 1).await;
    let resumed = resumer.await.expect("resumed");
    assert_eq!(
        answered_on(topo.replica.port()).await,
        ["m1"],
        "the reply is on the replica when the outcome counts"
    );
    assert!(
        counted >= resumed,
        "counted {:?} after the write, before the replica resumed ({:?})",
        counted - sent,
        resumed - sent
    );
    assert_eq!(status.unreplicated, 0);
    assert!(
        topo.waits_on_primary().await > waits_before,
        "WAIT was sent"
    );

    // With the replica up, an outcome does not wait long.
    send(&mut con, "m2", "amy").await;
    let sent = Instant::now();
    let (_, counted) = worker.until(|s| s.answered >= 2).await;
    assert!(counted - sent < WAIT_TIMEOUT, "{:?}", counted - sent);
    assert_eq!(answered_on(topo.replica.port()).await, ["m1", "m2"]);
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_that_does_not_acknowledge_is_reported_and_the_steps_stay_done() {
    let topo = Replicated::start().await;
    let mut con = allowed(&topo, &["bob", "ben"]).await;
    let dir = TestDir::new("durable-fail");
    let mut worker = Running::start(&topo, 1, &dir).await;

    topo.process.pause();
    let sent = Instant::now();
    send(&mut con, "m1", "bob").await;
    let (status, counted) = worker.until(|s| s.entries >= 1).await;
    assert!(
        counted - sent >= WAIT_TIMEOUT,
        "the worker waited for the replica: {:?}",
        counted - sent
    );
    assert!(
        status.unreplicated >= 1,
        "the failed WAIT is reported: {status:?}"
    );
    assert_eq!(status.answered, 1, "the steps are done on the primary");
    assert_eq!(answered_on(topo.primary.port()).await, ["m1"]);
    let pending: redis::streams::StreamPendingReply = redis::cmd("XPENDING")
        .arg(schema::queue_messages())
        .arg(schema::WORKER_GROUP)
        .query_async(&mut con)
        .await
        .expect("XPENDING");
    assert_eq!(pending.count(), 0, "acknowledged: not answered twice");
    let unreplicated = status.unreplicated;

    // Back in sync: the next outcome is confirmed, and only the first was reported.
    topo.process.resume();
    send(&mut con, "m2", "ben").await;
    let (status, _) = worker.until(|s| s.answered >= 2).await;
    assert_eq!(status.unreplicated, unreplicated);
    assert_eq!(answered_on(topo.replica.port()).await, ["m1", "m2"]);
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_no_replica_to_wait_no_wait_reaches_redis() {
    let topo = Replicated::start().await;
    let mut con = allowed(&topo, &["carol", "dave"]).await;
    let dir = TestDir::new("durable-none");
    let mut worker = Running::start(&topo, 0, &dir).await;
    send(&mut con, "m1", "carol").await;
    send(&mut con, "m2", "dave").await;
    let (status, _) = worker.until(|s| s.entries >= 2).await;
    assert_eq!(status.unreplicated, 0);
    assert_eq!(status.answered, 2);
    assert_eq!(answered_on(topo.primary.port()).await, ["m1", "m2"]);
    assert_eq!(
        topo.waits_on_primary().await,
        0,
        "no WAIT with replicas_to_wait = 0"
    );
    worker.stop().await;
}
