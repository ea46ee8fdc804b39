//! The pool of workers (`secondme worker --all-namespaces`) on real Redis: every
//! registered namespace answered in its own keys, the registry followed while it
//! runs, pools sharing the work and one killed mid-batch losing nothing, on one
//! server and on a Cluster with a worker killed, a replica promoted and a
//! primary killed.

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::cluster::{self, Cluster};
use common::{Harness, TestDir, eventually, incoming, nodes, streams};
use redis::AsyncCommands;
use redis::aio::MultiplexedConnection;
use secondme::config::{Config, Overrides};
use secondme::connection;
use secondme::reply::persona_engine::PersonaEngine;
use secondme::reply::{Reply, ReplyEngine, ReplyRequest};
use secondme::schema;
use secondme::store::{namespaces, queue};
use secondme::worker::WorkerStatus;
use secondme::worker::pool::{Pool, pool_worker_config};
use tokio::sync::watch;

const SECOND: Duration = Duration::from_secs(1);
/// Contacts enabled in each namespace; messages cycle through them, staying
/// below the rate limit (10 a minute per contact).
const CONTACTS: usize = 10;

fn contacts() -> Vec<String> {
    (0..CONTACTS).map(|i| format!("c{i}")).collect()
}

/// Runs `fut` with every name it builds in namespace `ns`.
async fn within<F: Future>(ns: &str, fut: F) -> F::Output {
    schema::in_namespace(Some(ns), fut).await
}

/// A pool's config: Redis at `url`, consumer `consumer`, a test-speed claim time.
fn pool_config(url: &str, consumer: &str, dir: &Path, replicas_to_wait: u32) -> Config {
    std::fs::create_dir_all(dir).expect("dir");
    let file = dir.join("config.toml");
    std::fs::write(&file, "").expect("config file");
    Config::load(
        Some(&file),
        Overrides {
            redis_url: Some(url.to_owned()),
            consumer: Some(consumer.to_owned()),
            claim_idle: Some("1s".to_owned()),
            replicas_to_wait: Some(replicas_to_wait),
            review_file: Some(dir.join(format!("review-{consumer}.jsonl"))),
            ..Overrides::default()
        },
    )
    .expect("config")
}

/// A pool running in this process with the template engine.
struct InProcess {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<BTreeMap<String, WorkerStatus>>,
    serving: watch::Receiver<BTreeSet<String>>,
}

impl InProcess {
    async fn start(config: &Config) -> Self {
        let client = connection::open_client(&config.redis_url).expect("client");
        let con = connection::manager(&client, None).await.expect("connect");
        let pool = Pool::new(client, con, pool_worker_config(config), |_, _| {
            Ok(PersonaEngine::default())
        });
        let serving = pool.serving();
        let (stop, stop_rx) = watch::channel(false);
        Self {
            stop,
            task: tokio::spawn(pool.run(stop_rx)),
            serving,
        }
    }

    /// Waits until the pool serves exactly `expected`.
    async fn wait_serving(&mut self, expected: &[&str], within: Duration) -> bool {
        let expected: BTreeSet<String> = expected.iter().map(|s| s.to_string()).collect();
        tokio::time::timeout(within, self.serving.wait_for(|s| *s == expected))
            .await
            .is_ok()
    }

    /// Stops it; each namespace's final totals, within `within`.
    async fn stop(self, within: Duration) -> BTreeMap<String, WorkerStatus> {
        let _ = self.stop.send(true);
        tokio::time::timeout(within, self.task)
            .await
            .expect("the pool stops in time")
            .expect("join")
    }
}

/// `secondme worker --all-namespaces` as a child process; killed if the test
/// ends without killing it.
struct PoolProcess {
    child: Child,
    log: PathBuf,
}

impl PoolProcess {
    fn spawn(url: &str, dir: &Path, consumer: &str, replicas_to_wait: u32) -> Self {
        std::fs::create_dir_all(dir).expect("dir");
        let config = dir.join("config.toml");
        std::fs::write(&config, "").expect("empty config");
        let log = dir.join(format!("pool-{consumer}.log"));
        let stderr = std::fs::File::create(&log).expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_secondme"))
            .arg("--config")
            .arg(&config)
            .args(["--redis-url", url, "--consumer", consumer])
            .args(["--claim-idle", "1s", "--replicas-to-wait"])
            .arg(replicas_to_wait.to_string())
            .arg("--review-file")
            .arg(dir.join(format!("review-{consumer}.jsonl")))
            .args(["worker", "--all-namespaces"])
            .env("XDG_CONFIG_HOME", dir)
            .env("XDG_STATE_HOME", dir)
            .env("SECONDME_LOG", "info")
            .env("NO_COLOR", "1")
            .env_remove("SECONDME_NAMESPACE")
            .env_remove("SECONDME_REDIS_URL")
            .env_remove("SECONDME_CONSUMER")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(stderr))
            .spawn()
            .expect("start secondme worker --all-namespaces");
        Self { child, log }
    }

    /// Freezes it (SIGSTOP): its blocked reads stay blocked in Redis and are
    /// handed entries it never decides.
    fn freeze(&self) {
        let status = Command::new("kill")
            .arg("-STOP")
            .arg(self.child.id().to_string())
            .status()
            .expect("kill -STOP");
        assert!(status.success());
    }

    /// SIGKILL: no drain, no review; what it was handed stays pending for it.
    fn kill(&mut self) {
        self.child.kill().expect("kill -9");
        self.child.wait().expect("reap");
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for PoolProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Per namespace, how many replies answer each message (by `inReplyTo`).
async fn replies(con: &mut secondme::connection::Con, ns: &str) -> HashMap<String, usize> {
    within(ns, streams::replies_per_message(con)).await
}

/// How many entries consumer `consumer` holds pending in namespace `ns`.
async fn held_by(con: &mut secondme::connection::Con, ns: &str, consumer: &str) -> u64 {
    // The key is built inside the namespace: an argument would be built before it.
    let reply: redis::RedisResult<redis::streams::StreamInfoConsumersReply> = within(ns, async {
        con.xinfo_consumers(schema::queue_messages(), schema::WORKER_GROUP)
            .await
    })
    .await;
    reply.map_or(0, |r| {
        r.consumers
            .iter()
            .filter(|c| c.name == consumer)
            .map(|c| c.pending as u64)
            .sum()
    })
}

/// Registers `names` and lets the twin answer every contact in each.
async fn register_and_allow(h: &mut Harness, names: &[&str]) {
    let enabled = contacts();
    let enabled: Vec<&str> = enabled.iter().map(String::as_str).collect();
    for ns in names {
        within(ns, h.allow(&enabled)).await;
        assert!(namespaces::add(&mut h.con, ns).await.expect("register"));
    }
}

/// Writes message `id` to namespace `ns` as a gateway does.
async fn send_to(h: &mut Harness, ns: &str, id: &str, contact: &str) {
    within(ns, h.send(&incoming(id, contact, "are you there?"))).await;
}

/// Waits until every namespace of `sent` answered each of its messages and holds
/// nothing pending; each namespace's replies then.
async fn all_answered(
    con: &secondme::connection::Con,
    sent: &BTreeMap<String, Vec<String>>,
    timeout: Duration,
) -> Result<BTreeMap<String, HashMap<String, usize>>, String> {
    let done = eventually(timeout, || {
        let mut con = con.clone();
        async move {
            let mut all = BTreeMap::new();
            for (ns, ids) in sent {
                let per = replies(&mut con, ns).await;
                let pending = within(ns, streams::workers_pending(&mut con)).await;
                if pending > 0 || !ids.iter().all(|id| per.contains_key(id)) {
                    return None;
                }
                all.insert(ns.clone(), per);
            }
            Some(all)
        }
    })
    .await;
    if let Some(all) = done {
        return Ok(all);
    }
    let mut con = con.clone();
    let mut missing = Vec::new();
    for (ns, ids) in sent {
        let per = replies(&mut con, ns).await;
        missing.extend(ids.iter().filter(|id| !per.contains_key(*id)).cloned());
    }
    Err(format!("unanswered after {timeout:?}: {missing:?}"))
}

/// Each message of each namespace answered once, in its own namespace only.
fn assert_each_answered_once(
    sent: &BTreeMap<String, Vec<String>>,
    answered: &BTreeMap<String, HashMap<String, usize>>,
) {
    for (ns, ids) in sent {
        let per = &answered[ns];
        for id in ids {
            assert_eq!(per.get(id), Some(&1), "{id} answered once in {ns}: {per:?}");
        }
        for (id, n) in per {
            assert!(ids.contains(id), "{ns} answered {id}, never sent to it");
            assert_eq!(*n, 1, "{id} answered {n} times in {ns}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pool_answers_each_namespace_in_its_own_keys_and_follows_the_registry() {
    let mut h = Harness::start().await;
    register_and_allow(&mut h, &["n1", "n2", "n3"]).await;
    // A namespace whose queue another program holds as a string: its worker
    // cannot start, the others must not mind.
    let _: () = within("broken", async {
        h.con.set(schema::queue_messages(), "not a stream").await
    })
    .await
    .expect("foreign key");
    namespaces::add(&mut h.con, "broken")
        .await
        .expect("register");
    let dir = TestDir::new("pool-one");
    let config = pool_config(&h.server.url(), "pool-a", &dir, 0);
    let mut pool = InProcess::start(&config).await;
    assert!(
        pool.wait_serving(&["broken", "n1", "n2", "n3"], 5 * SECOND)
            .await
    );

    let mut sent: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for i in 0..4 {
        for ns in ["n1", "n2", "n3"] {
            let id = format!("{ns}-m{i}");
            send_to(&mut h, ns, &id, &format!("c{i}")).await;
            sent.entry(ns.to_owned()).or_default().push(id);
        }
    }
    let answered = all_answered(&h.con, &sent, 15 * SECOND)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_each_answered_once(&sent, &answered);
    assert!(
        h.responses().await.is_empty(),
        "nothing answered under the seed's names"
    );

    // Added while it runs: served within a refresh or two.
    register_and_allow(&mut h, &["n4"]).await;
    let added_at = Instant::now();
    send_to(&mut h, "n4", "n4-m0", "c0").await;
    let one: BTreeMap<String, Vec<String>> = [("n4".to_owned(), vec!["n4-m0".to_owned()])].into();
    let answered = all_answered(&h.con, &one, 6 * SECOND)
        .await
        .unwrap_or_else(|e| panic!("a namespace added while the pool runs: {e}"));
    assert_each_answered_once(&one, &answered);
    eprintln!(
        "a namespace registered while the pool ran was answered {:?} later",
        added_at.elapsed()
    );

    // Removed: its worker stops, and what comes after waits for another pool.
    assert!(namespaces::remove(&mut h.con, "n2").await.expect("remove"));
    assert!(
        pool.wait_serving(&["broken", "n1", "n3", "n4"], 5 * SECOND)
            .await
    );
    tokio::time::sleep(SECOND).await;
    send_to(&mut h, "n2", "n2-late", "c5").await;
    tokio::time::sleep(3 * SECOND).await;
    let per = replies(&mut h.con, "n2").await;
    assert!(
        !per.contains_key("n2-late"),
        "an unregistered namespace answered"
    );
    assert_eq!(per.len(), 4);

    let kind: String = within("broken", async {
        redis::cmd("TYPE")
            .arg(schema::queue_messages())
            .query_async(&mut h.con)
            .await
    })
    .await
    .expect("TYPE");
    assert_eq!(kind, "string", "the foreign key is left alone");

    let finished = pool.stop(20 * SECOND).await;
    for (ns, answered) in [("n1", 4), ("n2", 4), ("n3", 4), ("n4", 1)] {
        let status = finished
            .get(ns)
            .unwrap_or_else(|| panic!("no totals for {ns}: {finished:?}"));
        assert_eq!(status.answered, answered, "{ns}: {status:?}");
        assert_eq!(status.state, secondme::worker::WorkerState::Stopped);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_pools_share_the_work_and_one_killed_mid_batch_loses_nothing() {
    let mut h = Harness::start().await;
    let names = ["n1", "n2", "n3"];
    register_and_allow(&mut h, &names).await;
    let dir = TestDir::new("pool-two");
    let mut other = PoolProcess::spawn(&h.server.url(), &dir.join("b"), "pool-b", 0);
    let mut pool =
        InProcess::start(&pool_config(&h.server.url(), "pool-a", &dir.join("a"), 0)).await;
    assert!(pool.wait_serving(&names, 5 * SECOND).await);
    // Both read every namespace before anything is written.
    let both_read = eventually(15 * SECOND, || {
        let mut con = h.con.clone();
        async move {
            for ns in names {
                let consumers: redis::streams::StreamInfoConsumersReply = within(ns, async {
                    con.xinfo_consumers(schema::queue_messages(), schema::WORKER_GROUP)
                        .await
                })
                .await
                .ok()?;
                let seen: BTreeSet<String> =
                    consumers.consumers.into_iter().map(|c| c.name).collect();
                if !seen.contains("pool-a") || !seen.contains("pool-b") {
                    return None;
                }
            }
            Some(())
        }
    })
    .await;
    assert!(
        both_read.is_some(),
        "the child pool never read:\n{}",
        other.log_text()
    );

    let mut sent: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut n = 0;
    let mut send_round = async |h: &mut Harness, sent: &mut BTreeMap<String, Vec<String>>| {
        for ns in names {
            let id = format!("{ns}-m{n}");
            send_to(h, ns, &id, &format!("c{}", n % CONTACTS)).await;
            sent.entry(ns.to_owned()).or_default().push(id);
        }
        n += 1;
    };
    for _ in 0..8 {
        send_round(&mut h, &mut sent).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Frozen, its reads blocked in Redis are handed the next messages; then killed.
    other.freeze();
    for _ in 0..3 {
        send_round(&mut h, &mut sent).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut held = 0;
    for ns in names {
        held += held_by(&mut h.con, ns, "pool-b").await;
    }
    other.kill();
    assert!(
        held > 0,
        "the killed pool held nothing: the test proves nothing"
    );
    for _ in 0..4 {
        send_round(&mut h, &mut sent).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let answered = all_answered(&h.con, &sent, 20 * SECOND)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_each_answered_once(&sent, &answered);
    eprintln!("the killed pool held {held} entries; the other answered them");
    assert!(!pool.task.is_finished(), "the surviving pool stopped");
    pool.stop(20 * SECOND).await;
}

/// The template engine, but its first reply panics when `armed`.
struct PanicsOnce {
    inner: PersonaEngine,
    armed: Arc<AtomicBool>,
}

impl ReplyEngine for PanicsOnce {
    async fn reply(&self, request: &ReplyRequest<'_>) -> anyhow::Result<Reply> {
        assert!(!self.armed.swap(false, Ordering::SeqCst), "an engine bug");
        self.inner.reply(request).await
    }

    fn instant(&self) -> bool {
        self.inner.instant()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_namespace_whose_worker_fails_is_started_again_and_the_others_go_on() {
    let mut h = Harness::start().await;
    register_and_allow(&mut h, &["flaky", "steady"]).await;
    let dir = TestDir::new("pool-flaky");
    let config = pool_config(&h.server.url(), "pool-a", &dir, 0);
    // In "flaky": the first engine cannot be made, the second panics at its
    // first reply, the third works.
    let made = Arc::new(AtomicUsize::new(0));
    let armed = Arc::new(AtomicBool::new(true));
    let (made_in, armed_in) = (Arc::clone(&made), Arc::clone(&armed));
    let client = connection::open_client(&config.redis_url).expect("client");
    let con = connection::manager(&client, None).await.expect("connect");
    let pool = Pool::new(client, con, pool_worker_config(&config), move |_, _| {
        let flaky = schema::current_namespace().as_deref() == Some("flaky");
        let armed = Arc::new(AtomicBool::new(false));
        if !flaky {
            return Ok(PanicsOnce {
                inner: PersonaEngine::default(),
                armed,
            });
        }
        if made_in.fetch_add(1, Ordering::SeqCst) == 0 {
            anyhow::bail!("no engine the first time");
        }
        Ok(PanicsOnce {
            inner: PersonaEngine::default(),
            armed: Arc::clone(&armed_in),
        })
    });
    let (stop, stop_rx) = watch::channel(false);
    let task = tokio::spawn(pool.run(stop_rx));

    send_to(&mut h, "steady", "steady-m0", "c0").await;
    send_to(&mut h, "flaky", "flaky-m0", "c0").await;
    let steady: BTreeMap<String, Vec<String>> =
        [("steady".to_owned(), vec!["steady-m0".to_owned()])].into();
    all_answered(&h.con, &steady, 5 * SECOND)
        .await
        .unwrap_or_else(|e| panic!("the steady namespace waited for the flaky one: {e}"));
    let flaky: BTreeMap<String, Vec<String>> =
        [("flaky".to_owned(), vec!["flaky-m0".to_owned()])].into();
    let answered = all_answered(&h.con, &flaky, 15 * SECOND)
        .await
        .unwrap_or_else(|e| panic!("the flaky namespace was not started again: {e}"));
    assert_each_answered_once(&flaky, &answered);
    assert!(!armed.load(Ordering::SeqCst), "the engine never panicked");
    assert_eq!(
        made.load(Ordering::SeqCst),
        3,
        "made, failed, panicked, made again"
    );
    assert!(!task.is_finished());
    let _ = stop.send(true);
    let finished = tokio::time::timeout(20 * SECOND, task)
        .await
        .expect("the pool stops in time")
        .expect("join");
    assert_eq!(finished["flaky"].answered, 1, "{finished:?}");
}

#[test]
fn all_namespaces_refuses_a_namespace_given_any_way() {
    let dir = TestDir::new("pool-refuses");
    let run = |file: &str, args: &[&str]| {
        let config = dir.join("config.toml");
        std::fs::write(&config, file).expect("config");
        Command::new(env!("CARGO_BIN_EXE_secondme"))
            .arg("--config")
            .arg(&config)
            .args(["--redis-url", "redis://127.0.0.1:1"])
            .args(args)
            .env("XDG_CONFIG_HOME", dir.join("config"))
            .env("XDG_STATE_HOME", dir.join("state"))
            .env_remove("SECONDME_NAMESPACE")
            .output()
            .expect("run secondme")
    };
    for (file, args) in [
        (
            "",
            &["--namespace", "alice", "worker", "--all-namespaces"][..],
        ),
        (
            "",
            &["worker", "--all-namespaces", "--namespace", "alice"][..],
        ),
        (
            "namespace = \"alice\"\n",
            &["worker", "--all-namespaces"][..],
        ),
    ] {
        let out = run(file, args);
        let said = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} {file:?}: {said}");
        assert!(
            said.contains("--all-namespaces"),
            "{args:?} {file:?}: {said}"
        );
    }
}

/// A language model stand-in: not instant, so the worker's scheduler writes its
/// replies from tasks of its own.
struct Slow;

impl ReplyEngine for Slow {
    async fn reply(&self, request: &ReplyRequest<'_>) -> anyhow::Result<Reply> {
        tokio::time::sleep(Duration::from_millis(50)).await;
        Ok(Reply {
            content: format!("re: {}", request.message.content),
            delay_ms: 0,
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_engines_replies_are_written_in_the_namespace_of_their_message() {
    let mut h = Harness::start().await;
    register_and_allow(&mut h, &["s1", "s2"]).await;
    let dir = TestDir::new("pool-slow");
    let mut config = pool_config(&h.server.url(), "pool-a", &dir, 0);
    config.burst_quiet = Duration::from_millis(100);
    let client = connection::open_client(&config.redis_url).expect("client");
    let con = connection::manager(&client, None).await.expect("connect");
    let pool = Pool::new(client, con, pool_worker_config(&config), |_, _| Ok(Slow));
    let (stop, stop_rx) = watch::channel(false);
    let task = tokio::spawn(pool.run(stop_rx));
    let mut sent: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for ns in ["s1", "s2"] {
        for (i, contact) in ["c0", "c1"].into_iter().enumerate() {
            let id = format!("{ns}-m{i}");
            send_to(&mut h, ns, &id, contact).await;
            sent.entry(ns.to_owned()).or_default().push(id);
        }
    }
    let answered = all_answered(&h.con, &sent, 15 * SECOND)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_each_answered_once(&sent, &answered);
    assert!(
        h.responses().await.is_empty(),
        "a reply went to the seed's names"
    );
    let _ = stop.send(true);
    tokio::time::timeout(20 * SECOND, task)
        .await
        .expect("the pool stops in time")
        .expect("join");
}

/// Namespaces on the Cluster.
const CLUSTER_NAMESPACES: usize = 40;

/// Writes messages as a gateway with `replicas_to_wait = 1` does, straight to the
/// node serving each namespace's slot, and keeps the ids whose write `WAIT`
/// confirmed.
struct ClusterWriter {
    ports: Vec<u16>,
    /// Primary per slot, as last seen.
    primaries: HashMap<u16, u16>,
    cons: HashMap<u16, MultiplexedConnection>,
    sent: BTreeMap<String, Vec<String>>,
    confirmed: BTreeMap<String, Vec<String>>,
}

impl ClusterWriter {
    fn new(ports: Vec<u16>) -> Self {
        Self {
            ports,
            primaries: HashMap::new(),
            cons: HashMap::new(),
            sent: BTreeMap::new(),
            confirmed: BTreeMap::new(),
        }
    }

    /// The primary serving `slot`, asked of any node that answers.
    async fn primary_for(&mut self, slot: u16) -> Option<u16> {
        if let Some(p) = self.primaries.get(&slot) {
            return Some(*p);
        }
        for port in &self.ports {
            if let Some(map) = cluster::slot_map(*port).await {
                let shard = map.iter().find(|s| (s.start..=s.end).contains(&slot))?;
                self.primaries.insert(slot, shard.primary);
                return Some(shard.primary);
            }
        }
        None
    }

    async fn con(&mut self, port: u16) -> Option<&mut MultiplexedConnection> {
        if let std::collections::hash_map::Entry::Vacant(e) = self.cons.entry(port) {
            e.insert(nodes::connect(port).await.ok()?);
        }
        self.cons.get_mut(&port)
    }

    /// `XADD` then `WAIT 1 1000` on the node of the namespace's slot; a failed
    /// write is not retried (it may or may not be in Redis; only confirmed ones
    /// are promised).
    async fn write(&mut self, ns: &str, slot: u16, id: String, contact: &str) {
        self.sent.entry(ns.to_owned()).or_default().push(id.clone());
        let xadd = within(ns, async {
            queue::xadd(&incoming(&id, contact, "are you there?"), false)
        })
        .await;
        let Some(port) = self.primary_for(slot).await else {
            return;
        };
        let Some(con) = self.con(port).await else {
            self.primaries.remove(&slot);
            return;
        };
        let reply: redis::RedisResult<(String, i64)> = redis::pipe()
            .add_command(xadd)
            .cmd("WAIT")
            .arg(1)
            .arg(1000)
            .query_async(con)
            .await;
        match reply {
            Ok((_, acked)) if acked >= 1 => {
                self.confirmed.entry(ns.to_owned()).or_default().push(id);
            }
            Ok(_) => {}
            Err(_) => {
                // Moved, or the node is gone: ask the cluster again next time.
                self.primaries.remove(&slot);
                self.cons.remove(&port);
            }
        }
    }
}

/// A command on the primary serving `slot`, with the slot map asked afresh.
async fn on_slot<T: redis::FromRedisValue>(
    cluster: &Cluster,
    slot: u16,
    cmd: &redis::Cmd,
) -> Option<T> {
    let port = cluster.node_for_slot(slot).await;
    let mut con = nodes::connect(port).await.ok()?;
    cmd.query_async(&mut con).await.ok()
}

/// Replies per message in namespace `ns`, read on the primary of its slot.
async fn cluster_replies(cluster: &Cluster, ns: &str, slot: u16) -> Option<HashMap<String, usize>> {
    let mut cmd = redis::cmd("XRANGE");
    within(ns, async {
        cmd.arg(schema::queue_responses()).arg("-").arg("+");
    })
    .await;
    let reply: redis::streams::StreamRangeReply = on_slot(cluster, slot, &cmd).await?;
    let mut per = HashMap::new();
    for entry in reply.ids {
        let to: String = entry
            .get(schema::response_fields::IN_REPLY_TO)
            .unwrap_or_default();
        *per.entry(to).or_insert(0) += 1;
    }
    Some(per)
}

/// What the workers' group of namespace `ns` holds per consumer.
async fn cluster_held(cluster: &Cluster, ns: &str, slot: u16) -> HashMap<String, u64> {
    let mut cmd = redis::cmd("XINFO");
    within(ns, async {
        cmd.arg("CONSUMERS")
            .arg(schema::queue_messages())
            .arg(schema::WORKER_GROUP);
    })
    .await;
    let reply: Option<redis::streams::StreamInfoConsumersReply> =
        on_slot(cluster, slot, &cmd).await;
    reply
        .map(|r| {
            r.consumers
                .into_iter()
                .map(|c| (c.name, c.pending as u64))
                .collect()
        })
        .unwrap_or_default()
}

/// Registers every namespace and enables its contacts, each write confirmed by
/// a replica (`WAIT 1`), so a failover cannot take them back.
async fn cluster_setup(cluster: &Cluster, names: &[String]) -> Vec<u16> {
    let mut slots = Vec::new();
    for ns in names {
        let (marker, optin) = within(ns, async {
            (
                schema::state_marker().to_owned(),
                schema::optin_contacts().to_owned(),
            )
        })
        .await;
        let slot = cluster.key_slot(&marker).await;
        assert_eq!(
            cluster.key_slot(&optin).await,
            slot,
            "{ns}'s keys share a slot"
        );
        let mut con = nodes::connect(cluster.node_for_slot(slot).await)
            .await
            .expect("connect");
        let (acked,): (i64,) = redis::pipe()
            .cmd("SET")
            .arg(&marker)
            .arg("1")
            .ignore()
            .cmd("SADD")
            .arg(&optin)
            .arg(contacts())
            .ignore()
            .cmd("WAIT")
            .arg(1)
            .arg(2000)
            .query_async(&mut con)
            .await
            .expect("enable the contacts");
        assert_eq!(acked, 1, "{ns}: a replica holds its opt-in");
        slots.push(slot);
    }
    let registry = schema::namespaces();
    let slot = cluster.key_slot(registry).await;
    let mut con = nodes::connect(cluster.node_for_slot(slot).await)
        .await
        .expect("connect");
    let (acked,): (i64,) = redis::pipe()
        .cmd("SADD")
        .arg(registry)
        .arg(names)
        .ignore()
        .cmd("WAIT")
        .arg(1)
        .arg(2000)
        .query_async(&mut con)
        .await
        .expect("register");
    assert_eq!(acked, 1, "a replica holds the registry");
    slots
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pools_on_a_cluster_answer_every_confirmed_message_once_across_kills_and_failovers() {
    let mut cluster = Cluster::start().await;
    let url = cluster.url();
    let names: Vec<String> = (0..CLUSTER_NAMESPACES).map(|i| format!("p{i}")).collect();
    let slots = cluster_setup(&cluster, &names).await;
    let dir = TestDir::new("pool-cluster");
    let mut doomed = PoolProcess::spawn(&url, &dir.join("c"), "pool-c", 1);
    let mut pools = Vec::new();
    for consumer in ["pool-a", "pool-b"] {
        let config = pool_config(&url, consumer, &dir.join(consumer), 1);
        pools.push(InProcess::start(&config).await);
    }
    let every: Vec<&str> = names.iter().map(String::as_str).collect();
    for pool in &mut pools {
        assert!(
            pool.wait_serving(&every, 10 * SECOND).await,
            "a pool serves all 40"
        );
    }

    // A gateway writing to every namespace in turn, 40 messages a second.
    let (stop_writing, mut stop_rx) = watch::channel(false);
    let ports = cluster.live_ports();
    let (names_w, slots_w) = (names.clone(), slots.clone());
    let writer = tokio::spawn(async move {
        let mut w = ClusterWriter::new(ports);
        let mut i = 0usize;
        while !*stop_rx.borrow() {
            let k = i % CLUSTER_NAMESPACES;
            let contact = format!("c{}", (i / CLUSTER_NAMESPACES) % CONTACTS);
            w.write(
                &names_w[k],
                slots_w[k],
                format!("{}-m{i}", names_w[k]),
                &contact,
            )
            .await;
            i += 1;
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(25)) => {}
                _ = stop_rx.changed() => {}
            }
        }
        w
    });

    tokio::time::sleep(3 * SECOND).await;
    let mut connections = 0;
    for port in cluster.live_ports() {
        let info = nodes::info(port, "clients").await.unwrap_or_default();
        connections += nodes::field(&info, "connected_clients")
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or(0);
    }
    eprintln!(
        "3 pools serving {CLUSTER_NAMESPACES} namespaces: {connections} connections on 6 nodes"
    );
    // A pool frozen with reads blocked in Redis, handed entries, then killed.
    doomed.freeze();
    // Entries reach the frozen pool's blocked reads as the writers go on; on a
    // loaded machine that can take more than a moment.
    let mut held = 0;
    let deadline = std::time::Instant::now() + 15 * SECOND;
    while held == 0 && std::time::Instant::now() < deadline {
        tokio::time::sleep(SECOND / 2).await;
        for (ns, slot) in names.iter().zip(&slots) {
            held += cluster_held(&cluster, ns, *slot)
                .await
                .get("pool-c")
                .copied()
                .unwrap_or(0);
        }
    }
    doomed.kill();
    eprintln!("the killed pool held {held} entries");
    assert!(
        held > 0,
        "the killed pool held nothing: the test proves nothing"
    );

    tokio::time::sleep(2 * SECOND).await;
    let promoted_at = Instant::now();
    let promoted = cluster.failover_replica_of(slots[0]).await;
    eprintln!(
        "replica {promoted} promoted by CLUSTER FAILOVER in {:?}",
        promoted_at.elapsed()
    );

    tokio::time::sleep(2 * SECOND).await;
    let first_shard = cluster.shard_of(slots[0]).await;
    let victim = *slots
        .iter()
        .find(|s| !(first_shard.start..=first_shard.end).contains(*s))
        .expect("namespaces on another shard");
    let killed_at = Instant::now();
    let killed = cluster.kill_primary_of(victim).await;
    cluster.wait_ok().await;
    eprintln!(
        "primary {killed} killed; the cluster settled in {:?}",
        killed_at.elapsed()
    );

    tokio::time::sleep(3 * SECOND).await;
    let _ = stop_writing.send(true);
    let w = writer.await.expect("writer");
    let sent: usize = w.sent.values().map(Vec::len).sum();
    let confirmed: usize = w.confirmed.values().map(Vec::len).sum();
    eprintln!("{sent} written, {confirmed} confirmed by WAIT 1");

    // Every confirmed message answered once in its namespace, nothing pending.
    let settled = nodes::poll(Duration::from_secs(60), || async {
        let mut all = BTreeMap::new();
        for (ns, slot) in names.iter().zip(&slots) {
            let per = cluster_replies(&cluster, ns, *slot).await?;
            let ids = w.confirmed.get(ns).cloned().unwrap_or_default();
            let pending: u64 = cluster_held(&cluster, ns, *slot).await.values().sum();
            if pending > 0 || !ids.iter().all(|id| per.contains_key(id)) {
                return None;
            }
            all.insert(ns.clone(), per);
        }
        Some(all)
    })
    .await;
    let Some(answered) = settled else {
        let mut missing = Vec::new();
        for (ns, slot) in names.iter().zip(&slots) {
            let per = cluster_replies(&cluster, ns, *slot)
                .await
                .unwrap_or_default();
            let ids = w.confirmed.get(ns).cloned().unwrap_or_default();
            missing.extend(ids.into_iter().filter(|id| !per.contains_key(id)));
        }
        let finished: Vec<bool> = pools.iter().map(|p| p.task.is_finished()).collect();
        panic!("confirmed messages unanswered: {missing:?} (pools finished: {finished:?})");
    };
    for (ns, per) in &answered {
        let sent_here = w.sent.get(ns).cloned().unwrap_or_default();
        for id in w.confirmed.get(ns).into_iter().flatten() {
            assert_eq!(per.get(id), Some(&1), "{id} answered once in {ns}");
        }
        for (id, n) in per {
            assert!(
                sent_here.contains(id),
                "{ns} answered {id}, never written to it"
            );
            assert_eq!(*n, 1, "{id} answered {n} times in {ns}");
        }
    }
    for pool in &pools {
        assert!(
            !pool.task.is_finished(),
            "a pool stopped during the failovers"
        );
    }
    let mut answered_total = 0;
    for pool in pools {
        let finished = pool.stop(30 * SECOND).await;
        answered_total += finished.values().map(|s| s.answered).sum::<u64>();
    }
    eprintln!("the two surviving pools answered {answered_total}");
}
