//! `replicas_to_wait` in the worker, against a real primary and its replica:
//! an outcome counts once the replica holds what the batch wrote, a replica
//! that does not acknowledge is reported (not ignored), with 0 no `WAIT`
//! reaches Redis, and in a pool one namespace's `WAIT` does not hold up the
//! others' replies.

mod common;

use std::time::{Duration, Instant};

use common::replicated::Replicated;
use common::{TestDir, eventually, incoming, nodes};
use secondme::config::{Config, Overrides, SleepSetting};
use secondme::connection::{self, Con};
use secondme::reply::persona_engine::PersonaEngine;
use secondme::reply::{Reply, ReplyEngine, ReplyRequest};
use secondme::schema;
use secondme::store::durability::WAIT_TIMEOUT;
use secondme::store::{self, namespaces, queue};
use secondme::worker::pool::{Pool, pool_worker_config};
use secondme::worker::{Worker, WorkerConfig, WorkerStatus};
use tokio::sync::watch;

/// How long the replica is stopped while the worker answers.
const PAUSE: Duration = Duration::from_millis(700);
const SECOND: Duration = Duration::from_secs(1);

/// A worker against `topo`'s primary, its status and its stop switch.
struct Running {
    status: watch::Receiver<WorkerStatus>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<anyhow::Result<WorkerStatus>>,
}

impl Running {
    async fn start(topo: &Replicated, replicas_to_wait: u32, dir: &TestDir) -> Self {
        Self::start_with(topo, replicas_to_wait, dir, PersonaEngine::default()).await
    }

    async fn start_with<E: ReplyEngine>(
        topo: &Replicated,
        replicas_to_wait: u32,
        dir: &TestDir,
        engine: E,
    ) -> Self {
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
        let worker = Worker::connect(client, engine, cfg)
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

/// Writes `{ns}:QUEUE:messages` a message every `every`, each from a contact of
/// its own (below the rate limit), until aborted.
fn keep_writing(mut con: Con, ns: &'static str, every: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(schema::in_namespace(Some(ns), async move {
        for i in 0.. {
            send(&mut con, &format!("b{i}"), &format!("c{i}")).await;
            tokio::time::sleep(every).await;
        }
    }))
}

/// How long after `since` `ns`'s `QUEUE:responses` on `port` holds more than
/// `before` replies (`None`: not within `within`).
async fn replies_after(
    port: u16,
    ns: &str,
    before: u64,
    since: Instant,
    within: Duration,
) -> Option<Duration> {
    let mut con = nodes::connect(port).await.expect("connect to the primary");
    let key = schema::in_namespace(Some(ns), async { schema::queue_responses().to_owned() }).await;
    while since.elapsed() < within {
        let n: u64 = redis::cmd("XLEN")
            .arg(&key)
            .query_async(&mut con)
            .await
            .expect("XLEN");
        if n > before {
            return Some(since.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_a_pool_a_namespace_waiting_for_its_replica_does_not_hold_up_the_others() {
    let topo = Replicated::start().await;
    let mut con = allowed(&topo, &[]).await;
    let contacts: Vec<String> = (0..200).map(|i| format!("c{i}")).collect();
    for ns in ["busy", "calm"] {
        assert!(namespaces::add(&mut con, ns).await.expect("register"));
        schema::in_namespace(Some(ns), async {
            let _: () = redis::cmd("SET")
                .arg(schema::state_marker())
                .arg("1")
                .query_async(&mut con)
                .await
                .expect("marker");
            store::optin::set_enabled(&mut con, &contacts, true)
                .await
                .expect("enable");
        })
        .await;
    }
    let dir = TestDir::new("durable-pool");
    let config = Config::load(
        Some(&write_config(&dir)),
        Overrides {
            redis_url: Some(topo.url()),
            consumer: Some("w-pool".to_owned()),
            replicas_to_wait: Some(1),
            review_file: Some(dir.join("review.jsonl")),
            ..Overrides::default()
        },
    )
    .expect("config");
    let client = connection::open_client(&topo.url()).expect("client");
    let shared = connection::manager(&client, None).await.expect("connect");
    let pool = Pool::new(client, shared, pool_worker_config(&config), |_, _| {
        Ok(PersonaEngine::default())
    });
    let (stop, stop_rx) = watch::channel(false);
    let task = tokio::spawn(pool.run(stop_rx));
    // Calm's worker answers with the replica up: the pool is serving it.
    let primary = topo.primary.port();
    schema::in_namespace(Some("calm"), send(&mut con, "m0", "c0")).await;
    let warm = replies_after(primary, "calm", 0, Instant::now(), 15 * SECOND).await;
    assert!(warm.is_some(), "the pool answers calm");
    // Its WAIT follows the reply: let it end before the replica stops.
    tokio::time::sleep(WAIT_TIMEOUT / 10).await;

    // The replica stops: each batch of busy waits WAIT_TIMEOUT for it, back to back.
    topo.process.pause();
    let writer = keep_writing(con.clone(), "busy", Duration::from_millis(100));
    tokio::time::sleep(WAIT_TIMEOUT / 2).await;
    let sent = Instant::now();
    schema::in_namespace(Some("calm"), send(&mut con, "m1", "c1")).await;
    let took = replies_after(primary, "calm", 1, sent, 4 * WAIT_TIMEOUT).await;
    writer.abort();
    topo.process.resume();
    let _ = stop.send(true);
    let _ = tokio::time::timeout(15 * SECOND, task).await;
    eprintln!("calm's reply while busy waits for its replica: {took:?}");
    let took = took.expect("calm is answered while busy waits");
    assert!(
        took < WAIT_TIMEOUT / 4,
        "calm's reply took {took:?}, held up behind busy's WAITs"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wait_answered_on_another_connection_than_the_writes_confirms_nothing() {
    use redis::AsyncCommands;
    use secondme::store::durability::{Confirmer, DurabilityError};
    let topo = Replicated::start().await;
    let mut con = allowed(&topo, &["bob"]).await;
    let key = schema::queue_messages();
    let confirmer = Confirmer::default();
    let mark = confirmer.begin(&mut con, key, 1).await;
    let _: () = con.set("written-before-the-cut", "1").await.expect("SET");
    // The connection that wrote is cut; the manager connects again by itself.
    let id: i64 = redis::cmd("CLIENT")
        .arg("ID")
        .query_async(&mut con)
        .await
        .expect("CLIENT ID");
    let mut admin = nodes::connect(topo.primary.port()).await.expect("admin");
    let _: i64 = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("ID")
        .arg(id)
        .query_async(&mut admin)
        .await
        .expect("CLIENT KILL");
    eventually(Duration::from_secs(5), || {
        let mut con = con.clone();
        async move {
            redis::cmd("PING")
                .query_async::<String>(&mut con)
                .await
                .ok()
        }
    })
    .await
    .expect("connected again");
    // A bare WAIT on the new connection says yes at once: it wrote nothing.
    let bare: i64 = redis::cmd("WAIT")
        .arg(1)
        .arg(1000)
        .query_async(&mut con)
        .await
        .expect("WAIT");
    assert_eq!(bare, 1, "the replica is in sync");
    let refused = confirmer
        .confirm(&mark, &mut con, key, 1, WAIT_TIMEOUT)
        .await;
    assert!(
        matches!(refused, Err(DurabilityError::Replaced)),
        "a WAIT on a connection that did not write confirms nothing: {refused:?}"
    );
    // From there on, writes on this connection are confirmed again.
    let mark = confirmer.begin(&mut con, key, 1).await;
    let _: () = con.set("written-after", "1").await.expect("SET");
    let acked = confirmer
        .confirm(&mark, &mut con, key, 1, WAIT_TIMEOUT)
        .await
        .expect("confirmed");
    assert_eq!(acked, 1);
    // Once known, the connection is not asked again before each write.
    let asked = client_info_calls(&mut admin).await;
    let mark = confirmer.begin(&mut con, key, 1).await;
    assert_eq!(client_info_calls(&mut admin).await, asked, "no CLIENT INFO");
    let _: () = con.set("written-last", "1").await.expect("SET");
    confirmer
        .confirm(&mark, &mut con, key, 1, WAIT_TIMEOUT)
        .await
        .expect("confirmed");
    assert_eq!(
        client_info_calls(&mut admin).await,
        asked + 1,
        "one, with the WAIT"
    );
}

/// How many `CLIENT INFO`s the server has answered.
async fn client_info_calls(admin: &mut redis::aio::MultiplexedConnection) -> u64 {
    let stats: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(admin)
        .await
        .expect("INFO");
    stats
        .lines()
        .find_map(|l| l.strip_prefix("cmdstat_client|info:calls="))
        .and_then(|rest| rest.split(',').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// A model that is down: every reply fails after a moment. Not instant, so its
/// replies are written by jobs beside the worker's loop.
#[derive(Clone, Default)]
struct DownModel(std::sync::Arc<std::sync::atomic::AtomicUsize>);

impl ReplyEngine for DownModel {
    async fn reply(&self, _: &ReplyRequest<'_>) -> anyhow::Result<Reply> {
        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(50)).await;
        anyhow::bail!("503 Service Unavailable: the model is overloaded")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_that_failed_before_writing_are_not_reported_as_unreplicated() {
    let topo = Replicated::start().await;
    let mut con = allowed(&topo, &["bob"]).await;
    let dir = TestDir::new("durable-down-model");
    let model = DownModel::default();
    let calls = std::sync::Arc::clone(&model.0);
    let worker = Running::start_with(&topo, 1, &dir, model).await;
    send(&mut con, "m1", "bob").await;
    // The first try fails, and the claim loop brings the entry back for another.
    eventually(Duration::from_secs(15), || {
        let n = calls.load(std::sync::atomic::Ordering::SeqCst);
        async move { (n >= 2).then_some(()) }
    })
    .await
    .expect("the model was asked twice");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let status = worker.status.borrow().clone();
    assert_eq!(
        status.unreplicated, 0,
        "nothing was written that the replica lacks: {status:?}"
    );
    assert_eq!(answered_on(topo.replica.port()).await, Vec::<String>::new());
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_writers_waiting_on_one_connection_each_get_an_answer_not_a_timeout() {
    use secondme::store::durability::{Confirmer, DurabilityError};
    let topo = Replicated::start().await;
    let con = allowed(&topo, &["bob"]).await;
    let key = schema::queue_messages();
    let confirmer = Confirmer::default();
    topo.process.pause();
    // Two writers of one connection (a worker's loop and its keeper) waiting at once:
    // queued on the connection, the second WAIT would answer past the 3 s timeout.
    let writer = |n: u32| {
        let (confirmer, mut con) = (confirmer.clone(), con.clone());
        tokio::spawn(async move {
            let mark = confirmer.begin(&mut con, key, 1).await;
            let _: () = redis::AsyncCommands::set(&mut con, format!("w{n}"), n)
                .await
                .expect("SET");
            confirmer
                .confirm(&mark, &mut con, key, 1, WAIT_TIMEOUT)
                .await
        })
    };
    let (a, b) = (writer(1), writer(2));
    let (a, b) = (a.await.expect("join"), b.await.expect("join"));
    topo.process.resume();
    for answer in [a, b] {
        assert!(
            matches!(answer, Err(DurabilityError::TooFew { acked: 0, .. })),
            "each told the replica did not acknowledge: {answer:?}"
        );
    }
}
