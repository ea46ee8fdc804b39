//! Faults against a real redis-server: workers killed or stopped mid-stream,
//! Redis restarted under a worker, several workers sharing the queue, and an
//! entry that never succeeds. Every test checks that each message is answered
//! exactly once (or accounted for) and nothing stays pending.

mod common;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use common::{Harness, TestDir, eventually, incoming, streams};
use redis::AsyncCommands;
use secondme::connection::Con;
use secondme::reply::persona_engine::PersonaEngine;
use secondme::reply::{Reply, ReplyEngine, ReplyRequest};
use secondme::schema;
use secondme::store::queue;
use secondme::worker::{self, Worker, WorkerConfig};
use tokio::sync::watch;

const SECOND: Duration = Duration::from_secs(1);
/// Messages per contact stay at the rate limit (10 a minute), never above it.
const PER_CONTACT: usize = 10;

/// A `secondme worker` child process; killed hard if the test ends without stopping it.
struct WorkerProcess {
    child: Child,
    consumer: String,
    log: PathBuf,
}

impl WorkerProcess {
    fn spawn(h: &Harness, dir: &Path, consumer: &str) -> Self {
        std::fs::create_dir_all(dir).expect("worker dir");
        let config = dir.join("config.toml");
        std::fs::write(&config, "").expect("empty config");
        let log = dir.join(format!("worker-{consumer}.log"));
        let stderr = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .expect("worker log");
        let child = Command::new(env!("CARGO_BIN_EXE_secondme"))
            .arg("--config")
            .arg(&config)
            .arg("--redis-url")
            .arg(h.server.url())
            .arg("--consumer")
            .arg(consumer)
            .arg("--claim-idle")
            .arg("1s")
            .arg("--review-file")
            .arg(review_path(dir))
            .arg("worker")
            // The child must not read or write the developer's own config and state.
            .env("XDG_CONFIG_HOME", dir)
            .env("XDG_STATE_HOME", dir)
            .env("SECONDME_LOG", "info")
            .env("NO_COLOR", "1")
            .env_remove("SECONDME_REDIS_URL")
            .env_remove("SECONDME_CONSUMER")
            .env_remove("SECONDME_LOG_FILE")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(stderr))
            .spawn()
            .expect("start secondme worker");
        Self {
            child,
            consumer: consumer.to_owned(),
            log,
        }
    }

    /// SIGKILL: no drain, no review file, pending entries stay with this consumer.
    fn kill_hard(&mut self) {
        self.child.kill().expect("kill -9");
        self.child.wait().expect("reap");
    }

    /// Freezes the process (SIGSTOP) until it holds delivered but unacknowledged
    /// entries, then SIGKILLs it there: a crash in the middle of a batch.
    /// Returns how many entries it held.
    async fn kill_hard_mid_batch(&mut self, con: &Con) -> u64 {
        let pid = self.child.id().to_string();
        for _ in 0..500 {
            signal(&pid, "-STOP");
            let held = consumer_pending(&mut con.clone(), self.consumer.as_str()).await;
            if held > 0 {
                self.kill_hard();
                return held;
            }
            signal(&pid, "-CONT");
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        self.kill_hard();
        0
    }

    /// SIGTERM, then waits (bounded) for the exit status.
    async fn terminate(&mut self) -> ExitStatus {
        signal(&self.child.id().to_string(), "-TERM");
        let child = &mut self.child;
        eventually(15 * SECOND, || {
            let exited = child.try_wait().expect("try_wait");
            async move { exited }
        })
        .await
        .unwrap_or_else(|| panic!("worker did not stop within 15 s:\n{}", self.log_text()))
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Entries this worker reported handling in its final log line.
    fn handled_entries(&self) -> u64 {
        let text = self.log_text();
        text.lines()
            .filter_map(|l| l.split("handled ").nth(1))
            .filter_map(|rest| rest.split_whitespace().next()?.parse().ok())
            .next_back()
            .unwrap_or_else(|| panic!("no final 'handled N entries' line in:\n{text}"))
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Sends a signal with kill(1): the crate has no libc dependency.
fn signal(pid: &str, sig: &str) {
    let status = Command::new("kill")
        .arg(sig)
        .arg(pid)
        .status()
        .expect("run kill");
    assert!(status.success(), "kill {sig} {pid} failed");
}

/// Entries delivered to `consumer` and not yet acknowledged.
async fn consumer_pending(con: &mut Con, consumer: &str) -> u64 {
    let reply: Result<redis::streams::StreamInfoConsumersReply, _> = con
        .xinfo_consumers(schema::queue_messages(), schema::WORKER_GROUP)
        .await;
    reply
        .map(|r| {
            r.consumers
                .iter()
                .filter(|c| c.name == consumer)
                .map(|c| c.pending as u64)
                .sum()
        })
        .unwrap_or(0)
}

/// Waits up to 15 s for `n` replies in `QUEUE:responses`; `None` if they never come.
async fn answered_at_least(h: &Harness, n: usize) -> Option<()> {
    eventually(15 * SECOND, || {
        let mut con = h.con.clone();
        async move { (responses_len(&mut con).await >= n).then_some(()) }
    })
    .await
}

fn review_path(dir: &Path) -> PathBuf {
    dir.join("review.jsonl")
}

/// A fresh directory for one test's worker files, removed at its end.
fn test_dir(name: &str) -> TestDir {
    TestDir::new(&format!("faults-{name}"))
}

fn contacts_for(n: usize) -> Vec<String> {
    (0..n.div_ceil(PER_CONTACT))
        .map(|c| format!("c{c}"))
        .collect()
}

fn message_id(i: usize) -> String {
    format!("msg_{i}")
}

/// Message `i` of a test's run, from a contact that sends at most `PER_CONTACT`.
fn numbered(i: usize) -> secondme::schema::QueueMessage {
    incoming(
        &message_id(i),
        &format!("c{}", i / PER_CONTACT),
        "how are you doing?",
    )
}

/// Writes messages `range` as a gateway does, pipelined, each contact at most
/// `PER_CONTACT` times.
async fn send_range(con: &mut Con, acked: bool, range: std::ops::Range<usize>) {
    let mut pipe = redis::pipe();
    for i in range {
        let m = numbered(i);
        pipe.add_command(queue::xadd(&m, acked)).ignore();
    }
    pipe.exec_async(con).await.expect("pipelined XADD");
}

/// Writes `n` messages in small chunks with short gaps, so workers read them
/// as a stream rather than as one backlog.
async fn trickle(mut con: Con, acked: bool, n: usize) {
    let chunk = 50;
    let mut start = 0;
    while start < n {
        let end = (start + chunk).min(n);
        send_range(&mut con, acked, start..end).await;
        start = end;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// `inReplyTo` of every entry in `QUEUE:responses`, in order.
async fn replied_ids(con: &mut Con) -> Vec<String> {
    let reply: redis::streams::StreamRangeReply = con
        .xrange_all(schema::queue_responses())
        .await
        .expect("XRANGE responses");
    reply
        .ids
        .iter()
        .map(|e| {
            e.get::<String>(schema::response_fields::IN_REPLY_TO)
                .expect("every response has inReplyTo")
        })
        .collect()
}

async fn responses_len(con: &mut Con) -> usize {
    con.xlen(schema::queue_responses()).await.unwrap_or(0)
}

/// Waits until `n` responses exist and nothing is pending; panics with the counts if not.
async fn wait_all_answered(con: &Con, n: usize, within: Duration) {
    let done = eventually(within, || {
        let mut con = con.clone();
        async move {
            let answered = responses_len(&mut con).await;
            (answered >= n && streams::workers_pending(&mut con).await == 0).then_some(())
        }
    })
    .await;
    if done.is_none() {
        let mut con = con.clone();
        panic!(
            "not all answered within {} s: {} responses of {n}, {} pending",
            within.as_secs(),
            responses_len(&mut con).await,
            streams::workers_pending(&mut con).await
        );
    }
}

/// Every one of `n` message ids has exactly one response.
async fn assert_exactly_once(con: &mut Con, n: usize) {
    let ids = replied_ids(con).await;
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for id in &ids {
        *counts.entry(id.as_str()).or_default() += 1;
    }
    let twice: Vec<_> = counts.iter().filter(|(_, c)| **c > 1).collect();
    assert!(twice.is_empty(), "answered more than once: {twice:?}");
    let missing: Vec<String> = (0..n)
        .map(message_id)
        .filter(|id| !counts.contains_key(id.as_str()))
        .take(10)
        .collect();
    assert!(missing.is_empty(), "never answered (first 10): {missing:?}");
    assert_eq!(ids.len(), n, "one response per message, no more");
    assert_eq!(
        streams::workers_pending(con).await,
        0,
        "nothing left pending"
    );
}

async fn enable(h: &mut Harness, n: usize) {
    let contacts = contacts_for(n);
    let refs: Vec<&str> = contacts.iter().map(String::as_str).collect();
    h.allow(&refs).await;
}

/// Worker A is killed with SIGKILL while it answers a stream of messages, then
/// `second` (another consumer, or A again) finishes the work.
async fn kill_mid_stream_then(second: &str) {
    const N: usize = 2000;
    let mut h = Harness::start().await;
    enable(&mut h, N).await;
    let dir = test_dir(&format!("kill-{second}"));
    let mut a = WorkerProcess::spawn(&h, &dir, "A");
    let writer = tokio::spawn(trickle(h.con.clone(), h.acked, N));

    let started = answered_at_least(&h, 100).await;
    assert!(
        started.is_some(),
        "worker A answered nothing:\n{}",
        a.log_text()
    );
    let in_flight = a.kill_hard_mid_batch(&h.con).await;
    assert!(
        in_flight > 0,
        "A is killed holding delivered, unanswered entries"
    );
    assert!(
        responses_len(&mut h.con).await < N,
        "A finished everything before the kill; the test proves nothing"
    );
    writer.await.expect("writer");

    let mut b = WorkerProcess::spawn(&h, &dir, second);
    wait_all_answered(&h.con, N, 20 * SECOND).await;
    assert_exactly_once(&mut h.con, N).await;
    let status = b.terminate().await;
    assert!(status.success(), "worker {second} exit: {status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_minus_9_mid_batch_then_another_worker_answers_everything_exactly_once() {
    kill_mid_stream_then("B").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_minus_9_then_the_same_consumer_restarts_and_answers_its_own_pending_once() {
    kill_mid_stream_then("A").await;
}

/// Retries `f` until Redis answers again after a restart.
async fn with_retry<T, F, Fut>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = redis::RedisResult<T>>,
{
    eventually(10 * SECOND, || {
        let fut = f();
        async move { fut.await.ok() }
    })
    .await
    .unwrap_or_else(|| panic!("{what}: Redis did not answer within 10 s"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_redis_under_a_running_worker_it_reconnects_and_goes_on() {
    let mut h = Harness::start().await;
    h.allow(&["alice"]).await;
    let config = h.config("w-restart");
    let (stop_tx, stop_rx) = watch::channel(false);
    let handle = tokio::spawn(async move {
        worker::run_worker(&config, PersonaEngine::default(), stop_rx).await
    });

    h.send(&incoming("before", "alice", "hello?")).await;
    let answered = eventually(5 * SECOND, || {
        let mut con = h.con.clone();
        async move { (responses_len(&mut con).await == 1).then_some(()) }
    })
    .await;
    assert!(answered.is_some(), "the first message is answered");

    h.server.restart().expect("restart redis-server");

    // The new Redis has no state marker: the first batch the worker decides must
    // switch the kill switch on (state_lost) rather than answer.
    let con = h.con.clone();
    let acked = h.acked;
    let lost = incoming("after-restart", "alice", "still there?");
    with_retry("XADD after restart", || {
        let mut con = con.clone();
        let cmd = queue::xadd(&lost, acked);
        async move { cmd.query_async::<String>(&mut con).await }
    })
    .await;
    let killed = eventually(15 * SECOND, || {
        let mut con = h.con.clone();
        async move {
            let v: Option<String> = con.get(schema::pause_all()).await.ok()?;
            v
        }
    })
    .await;
    assert!(
        killed.is_some(),
        "PAUSE:ALL appears after Redis lost its state"
    );
    let verdict = eventually(5 * SECOND, || {
        let mut con = h.con.clone();
        async move { common::handled(&mut con, "after-restart").await }
    })
    .await;
    assert_eq!(verdict.as_deref(), Some("skip:kill_switch"));
    let marker: bool = h
        .con
        .exists(schema::state_marker())
        .await
        .expect("EXISTS marker");
    assert!(marker, "the worker marks the new Redis as holding state");
    assert_eq!(responses_len(&mut h.con).await, 0, "nothing answered");

    // The operator switches answering back on.
    h.allow(&["alice"]).await;
    h.send(&incoming("after-enable", "alice", "hello again"))
        .await;
    let replied = eventually(10 * SECOND, || {
        let mut con = h.con.clone();
        async move {
            let ids = replied_ids(&mut con).await;
            (ids == ["after-enable"]).then_some(())
        }
    })
    .await;
    assert!(replied.is_some(), "the worker answers after re-enabling");

    let status = stop_worker(&stop_tx, handle, 15 * SECOND).await;
    assert_eq!(status.state, worker::WorkerState::Stopped);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_workers_share_the_load_and_answer_each_message_once() {
    const N: usize = 3000;
    let mut h = Harness::start().await;
    enable(&mut h, N).await;
    let dir = test_dir("share");
    let mut workers: Vec<WorkerProcess> = ["W1", "W2", "W3"]
        .iter()
        .map(|c| WorkerProcess::spawn(&h, &dir, c))
        .collect();
    // Every worker joins the group before messages flow, so each can get a share.
    let joined = eventually(10 * SECOND, || {
        let mut con = h.con.clone();
        async move {
            let v: redis::streams::StreamInfoConsumersReply = con
                .xinfo_consumers(schema::queue_messages(), schema::WORKER_GROUP)
                .await
                .ok()?;
            (v.consumers.len() == 3).then_some(())
        }
    })
    .await;
    assert!(joined.is_some(), "three consumers in the group");

    trickle(h.con.clone(), h.acked, N).await;
    wait_all_answered(&h.con, N, 20 * SECOND).await;
    assert_exactly_once(&mut h.con, N).await;

    let mut handled = Vec::new();
    for w in &mut workers {
        let status = w.terminate().await;
        assert!(status.success(), "worker exit: {status}");
        handled.push(w.handled_entries());
    }
    assert_eq!(
        handled.iter().sum::<u64>(),
        N as u64,
        "per worker: {handled:?}"
    );
    let busy = handled.iter().filter(|n| **n > 0).count();
    assert!(busy > 1, "only one worker did the work: {handled:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_stop_writes_leftovers_to_the_review_file() {
    const N: usize = 2000;
    let mut h = Harness::start().await;
    enable(&mut h, N).await;
    let dir = test_dir("graceful");
    let mut a = WorkerProcess::spawn(&h, &dir, "A");
    let writer = tokio::spawn(trickle(h.con.clone(), h.acked, N));
    let started = answered_at_least(&h, 100).await;
    assert!(started.is_some(), "worker A answered nothing");

    let status = a.terminate().await;
    assert!(status.success(), "SIGTERM exit: {status}\n{}", a.log_text());
    let consumers: redis::streams::StreamInfoConsumersReply = h
        .con
        .xinfo_consumers(schema::queue_messages(), schema::WORKER_GROUP)
        .await
        .expect("XINFO CONSUMERS");
    let a_pending = consumers
        .consumers
        .iter()
        .find(|c| c.name == "A")
        .map(|c| c.pending)
        .expect("consumer A");
    assert_eq!(a_pending, 0, "A left nothing pending on a graceful stop");
    writer.await.expect("writer");

    // What A did not read stays in the stream for the next worker: nothing is lost.
    let mut b = WorkerProcess::spawn(&h, &dir, "B");
    let reviewed = read_review(&review_path(&dir));
    let expected = N - reviewed.len();
    wait_all_answered(&h.con, expected, 20 * SECOND).await;
    let status = b.terminate().await;
    assert!(status.success(), "worker B exit: {status}");

    let answered = replied_ids(&mut h.con).await;
    let answered_set: HashSet<&str> = answered.iter().map(String::as_str).collect();
    assert_eq!(
        answered_set.len(),
        answered.len(),
        "no message answered twice"
    );
    let reviewed_set: HashSet<&str> = reviewed.iter().map(String::as_str).collect();
    assert!(
        answered_set.is_disjoint(&reviewed_set),
        "a reviewed message was also answered"
    );
    let lost: Vec<String> = (0..N)
        .map(message_id)
        .filter(|id| !answered_set.contains(id.as_str()) && !reviewed_set.contains(id.as_str()))
        .take(10)
        .collect();
    assert!(lost.is_empty(), "lost (first 10): {lost:?}");
    assert_eq!(streams::workers_pending(&mut h.con).await, 0);
}

/// `messageId`s in the review file (absent file: none), checking each line's shape.
fn read_review(path: &Path) -> Vec<String> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Vec::new();
    };
    text.lines()
        .map(|line| {
            let v: serde_json::Value = serde_json::from_str(line).expect("review line is JSON");
            assert!(
                v["streamId"].is_string(),
                "review line has streamId: {line}"
            );
            v["fields"]["messageId"]
                .as_str()
                .expect("review line has fields.messageId")
                .to_owned()
        })
        .collect()
}

/// Stands in for a paid LLM that fails on some inputs.
struct FailingEngine;

impl ReplyEngine for FailingEngine {
    async fn reply(&self, request: &ReplyRequest<'_>) -> anyhow::Result<Reply> {
        if request.message.content == "FAIL" {
            anyhow::bail!("the model refused");
        }
        Ok(Reply {
            content: format!("re: {}", request.message.content),
            delay_ms: 0,
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entry_that_keeps_failing_is_dead_lettered_after_n_deliveries() {
    let mut h = Harness::start().await;
    // Three contacts: two quick messages of one contact would be one burst, answered once.
    h.allow(&["alice", "bob", "carol"]).await;
    let dir = test_dir("deadletter");
    let cfg = WorkerConfig {
        group: schema::WORKER_GROUP.to_owned(),
        consumer: "w-dl".to_owned(),
        batch_size: 16,
        read_ahead_bytes: 0,
        block: Duration::from_millis(200),
        takeover_ms: schema::DEFAULT_PAUSE_MS,
        max_deliveries: 3,
        claim_idle: SECOND,
        claim_every: Duration::from_millis(200),
        default_persona: "casual".to_owned(),
        user_id: "user-1".to_owned(),
        review_file: review_path(&dir),
        sleep_hours: secondme::config::SleepSetting::Off,
        sleep_mode: secondme::sleep::SleepMode::Skip,
        rate_counted_elsewhere: false,
        max_generations: 8,
        burst_quiet: Duration::from_millis(100),
        learn: secondme::learn::LearnConfig::default(),
        reply_mode: secondme::schema::drafts::ReplyMode::Auto,
        draft_ttl_ms: 24 * 3600 * 1000,
        replicas_to_wait: 0,
        chores_every: Duration::from_secs(1),
        media: secondme::media::config::MediaConfig::default(),
    };
    let (stop_tx, handle) = run_worker_with(&h, FailingEngine, cfg).await;

    h.send(&incoming("good-1", "alice", "hi")).await;
    h.send(&incoming("bad", "bob", "FAIL")).await;
    h.send(&incoming("good-2", "carol", "still there?")).await;

    let dead = eventually(15 * SECOND, || {
        let mut con = h.con.clone();
        async move {
            let reply: redis::streams::StreamRangeReply =
                con.xrange_all(schema::queue_deadletter()).await.ok()?;
            let e = reply.ids.into_iter().next()?;
            Some(e)
        }
    })
    .await
    .expect("the failing entry is dead-lettered within 15 s");
    let field = |name: &str| -> String { dead.get(name).unwrap_or_default() };
    assert_eq!(field("messageId"), "bad", "{:?}", dead.map);
    assert_eq!(field("content"), "FAIL");
    let reason = field(schema::deadletter_fields::REASON);
    assert!(reason.contains("delivered"), "reason: {reason}");
    assert!(!field(schema::deadletter_fields::SOURCE_ID).is_empty());

    let mut answered = replied_ids(&mut h.con).await;
    answered.sort();
    assert_eq!(answered, ["good-1", "good-2"]);
    let dl_len: usize = h.con.xlen(schema::queue_deadletter()).await.expect("XLEN");
    assert_eq!(dl_len, 1, "dead-lettered once");
    assert_eq!(streams::workers_pending(&mut h.con).await, 0);

    let status = stop_worker(&stop_tx, handle, 15 * SECOND).await;
    assert_eq!(status.answered, 2);
    assert_eq!(status.dead_lettered, 1);
}

/// A worker running in this process, as `tokio::spawn` returned it.
type WorkerTask = tokio::task::JoinHandle<anyhow::Result<worker::WorkerStatus>>;

/// Connects a worker on `engine` and `cfg` to `h`'s server and runs it; returns
/// its stop switch and its task.
async fn run_worker_with<E: ReplyEngine>(
    h: &Harness,
    engine: E,
    cfg: WorkerConfig,
) -> (watch::Sender<bool>, WorkerTask) {
    let client = secondme::connection::open_client(&h.server.url()).expect("client");
    let w = Worker::connect(client, engine, cfg)
        .await
        .expect("worker connects");
    let (stop, stop_rx) = watch::channel(false);
    (stop, tokio::spawn(w.run(stop_rx)))
}

/// Asks an in-process worker to stop and returns its final status; it must stop within `limit`.
async fn stop_worker(
    stop: &watch::Sender<bool>,
    handle: WorkerTask,
    limit: Duration,
) -> worker::WorkerStatus {
    let _ = stop.send(true);
    tokio::time::timeout(limit, handle)
        .await
        .expect("worker stops in time")
        .expect("join")
        .expect("worker result")
}

/// An instant engine that answers only once the gate opens, so a test can hold the
/// worker's decisions while a burst arrives.
struct GatedEngine(watch::Receiver<bool>);

impl ReplyEngine for GatedEngine {
    async fn reply(&self, request: &ReplyRequest<'_>) -> anyhow::Result<Reply> {
        let mut gate = self.0.clone();
        gate.wait_for(|open| *open).await?;
        Ok(Reply {
            content: format!("re: {}", request.message.content),
            delay_ms: 0,
        })
    }

    fn instant(&self) -> bool {
        true
    }
}

/// A fresh server with the contacts of `n` messages enabled, and a worker on
/// `GatedEngine` reading ahead on it.
struct Gated {
    h: Harness,
    /// Where the review file goes.
    dir: TestDir,
    /// Opens the gate: decisions may proceed.
    gate: watch::Sender<bool>,
    stop: watch::Sender<bool>,
    handle: WorkerTask,
}

/// Starts [`Gated`] for test `name`, the gate closed, reading ahead with `budget`
/// bytes (`None`: the default).
async fn start_gated(n: usize, name: &str, budget: Option<usize>) -> Gated {
    let mut h = Harness::start().await;
    enable(&mut h, n).await;
    let dir = test_dir(name);
    let mut cfg = WorkerConfig::from_config(&h.config("gated"));
    cfg.review_file = review_path(&dir);
    cfg.sleep_hours = secondme::config::SleepSetting::Off;
    // Entries wait in the worker for seconds here; no claim may take them meanwhile.
    cfg.claim_idle = 120 * SECOND;
    cfg.claim_every = 120 * SECOND;
    cfg.block = Duration::from_millis(200);
    if let Some(bytes) = budget {
        cfg.read_ahead_bytes = bytes;
    }
    let (gate, gate_rx) = watch::channel(false);
    let (stop, handle) = run_worker_with(&h, GatedEngine(gate_rx), cfg).await;
    Gated {
        h,
        dir,
        gate,
        stop,
        handle,
    }
}

/// Writes messages `range` in one pipeline as the seed's gateway does, but trimming
/// the stream to about 100 entries, so entries not read at once are lost.
async fn send_capped(con: &mut Con, range: std::ops::Range<usize>) {
    let mut pipe = redis::pipe();
    for i in range {
        let m = numbered(i);
        let mut cmd = redis::cmd("XADD");
        cmd.arg(schema::queue_messages())
            .arg("MAXLEN")
            .arg("~")
            .arg(100)
            .arg("*");
        for (name, value) in m.fields() {
            cmd.arg(name).arg(value);
        }
        pipe.add_command(cmd).ignore();
    }
    pipe.exec_async(con).await.expect("pipelined XADD");
}

/// Writes `n` messages in pipelined chunks as the seed's gateway does, trimming the
/// stream to about 100 entries, and waits after each chunk until the worker has
/// taken delivery of everything sent so far.
async fn burst_past_a_small_cap(h: &Harness, n: usize) {
    let mut con = h.con.clone();
    for start in (0..n).step_by(100) {
        send_capped(&mut con, start..(start + 100).min(n)).await;
        let sent = (start + 100).min(n) as u64;
        let delivered = eventually(10 * SECOND, || {
            let mut con = con.clone();
            async move { (streams::workers_pending(&mut con).await >= sent).then_some(()) }
        })
        .await;
        assert!(
            delivered.is_some(),
            "the worker stopped reading at {} of {sent} while its decisions were held",
            streams::workers_pending(&mut con).await
        );
    }
    let len: usize = con.xlen(schema::queue_messages()).await.expect("XLEN");
    assert!(
        len < n / 2,
        "the gateway's cap trimmed the stream ({len} of {n} entries left)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_past_the_gateways_cap_waits_in_the_worker_and_is_answered_once() {
    const N: usize = 3000;
    let mut g = start_gated(N, "burst", None).await;

    burst_past_a_small_cap(&g.h, N).await;
    let _ = g.gate.send(true);
    wait_all_answered(&g.h.con, N, 30 * SECOND).await;
    assert_exactly_once(&mut g.h.con, N).await;

    let status = stop_worker(&g.stop, g.handle, 15 * SECOND).await;
    assert_eq!(status.answered, N as u64);
    assert_eq!(status.reviewed, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_writes_entries_read_ahead_to_the_review_file_even_when_trimmed() {
    const N: usize = 1000;
    let mut g = start_gated(N, "burst-stop", None).await;

    burst_past_a_small_cap(&g.h, N).await;
    // The gate never opens: the drain gives up after its 10 s and writes what is left.
    let status = stop_worker(&g.stop, g.handle, 30 * SECOND).await;
    let mut reviewed = read_review(&review_path(&g.dir));
    reviewed.sort();
    reviewed.dedup();
    let mut expected: Vec<String> = (0..N).map(message_id).collect();
    expected.sort();
    assert_eq!(
        reviewed, expected,
        "every message read ahead is in the review file"
    );
    assert_eq!(status.reviewed, N as u64, "each written once");
    assert_eq!(responses_len(&mut g.h.con).await, 0);
    assert_eq!(
        streams::workers_pending(&mut g.h.con).await,
        0,
        "reviewed entries are acknowledged"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_with_the_read_ahead_budget_spent_hands_over_everything_it_read() {
    const N: usize = 2000;
    // About 250 short messages fit: the reader stops at the budget, holding what
    // it read and what its reads in flight bring.
    let mut g = start_gated(N, "burst-budget", Some(64 * 1024)).await;
    let mut con = g.h.con.clone();
    for start in (0..N).step_by(100) {
        send_capped(&mut con, start..start + 100).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let status = stop_worker(&g.stop, g.handle, 30 * SECOND).await;
    // Every line names its message: nothing the worker read was dropped, even the
    // entries the gateway trimmed while the budget was spent.
    let reviewed = read_review(&review_path(&g.dir));
    let unique: HashSet<&String> = reviewed.iter().collect();
    assert_eq!(unique.len(), reviewed.len(), "each written once");
    assert!(reviewed.len() >= 200, "{} reviewed", reviewed.len());
    assert_eq!(status.reviewed, reviewed.len() as u64);
    assert_eq!(
        streams::workers_pending(&mut g.h.con).await,
        0,
        "nothing left pending"
    );
}
