//! The worker with a slow engine (a language model's pace) against a real
//! redis-server: generations beside the read loop, a burst answered once, the kill
//! switch cancelling what is being written, engine failures ending in the
//! dead-letter stream (a panic in the engine too), two workers, and a stop in the
//! middle of a generation.

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{Harness, eventually, incoming, streams};
use redis::AsyncCommands;
use secondme::reply::{Reply, ReplyEngine, ReplyRequest};
use secondme::schema;
use secondme::store;
use secondme::worker::{Worker, WorkerConfig, WorkerStatus};
use tokio::sync::watch;

const SECOND: Duration = Duration::from_secs(1);

/// Stands in for a paid language model: answers after `delay`, counts its calls,
/// fails while told to, panics on the messages of `panics_for` (a bug some input
/// trips), and counts the calls dropped before they returned (the worker
/// cancelled them).
#[derive(Clone, Default)]
struct SlowEngine(Arc<Inner>);

#[derive(Default)]
struct Inner {
    delay: Duration,
    fail: AtomicBool,
    panics_for: &'static [&'static str],
    calls: AtomicUsize,
    cancelled: AtomicUsize,
    returned: AtomicUsize,
}

impl SlowEngine {
    fn new(delay: Duration) -> Self {
        Self(Arc::new(Inner {
            delay,
            ..Inner::default()
        }))
    }

    fn calls(&self) -> usize {
        self.0.calls.load(Ordering::SeqCst)
    }

    fn cancelled(&self) -> usize {
        self.0.cancelled.load(Ordering::SeqCst)
    }
}

/// Counts a call as cancelled when dropped before it is disarmed.
struct DropWatch<'a>(&'a Inner, bool);

impl Drop for DropWatch<'_> {
    fn drop(&mut self) {
        if !self.1 {
            self.0.cancelled.fetch_add(1, Ordering::SeqCst);
        }
    }
}

impl ReplyEngine for SlowEngine {
    async fn reply(&self, request: &ReplyRequest<'_>) -> anyhow::Result<Reply> {
        let inner = &*self.0;
        inner.calls.fetch_add(1, Ordering::SeqCst);
        let mut watch = DropWatch(inner, false);
        tokio::time::sleep(inner.delay).await;
        watch.1 = true;
        if inner
            .panics_for
            .contains(&request.message.contact_id.as_str())
        {
            panic!("the engine trips on this message");
        }
        inner.returned.fetch_add(1, Ordering::SeqCst);
        if inner.fail.load(Ordering::SeqCst) {
            anyhow::bail!("503 Service Unavailable: the model is overloaded");
        }
        Ok(Reply {
            content: format!("re: {}", request.message.content),
            delay_ms: 0,
        })
    }
}

struct Running {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<anyhow::Result<WorkerStatus>>,
}

impl Running {
    /// Stops the worker; it must be done within `limit`.
    async fn stop(self, limit: Duration) -> WorkerStatus {
        let _ = self.stop.send(true);
        tokio::time::timeout(limit, self.task)
            .await
            .expect("the worker stops in time")
            .expect("join")
            .expect("worker result")
    }
}

fn config(h: &Harness, consumer: &str, quiet: Duration) -> WorkerConfig {
    let mut cfg = WorkerConfig::from_config(&h.config(consumer));
    cfg.sleep_hours = secondme::config::SleepSetting::Off;
    cfg.block = Duration::from_millis(200);
    cfg.claim_every = Duration::from_millis(200);
    cfg.burst_quiet = quiet;
    cfg
}

async fn start(h: &Harness, engine: SlowEngine, cfg: WorkerConfig) -> Running {
    let client = secondme::connection::open_client(&h.server.url()).expect("client");
    let w = Worker::connect(client, engine, cfg)
        .await
        .expect("worker connects");
    let (stop, stop_rx) = watch::channel(false);
    Running {
        stop,
        task: tokio::spawn(w.run(stop_rx)),
    }
}

/// Waits until the engine has been called `n` times.
async fn until_calls(engine: &SlowEngine, n: usize) {
    let called = eventually(10 * SECOND, || async {
        (engine.calls() >= n).then_some(())
    })
    .await;
    assert!(
        called.is_some(),
        "the engine got {} of {n} calls",
        engine.calls()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_switch_during_generation_cancels_it_and_sends_nothing() {
    let mut h = Harness::start().await;
    h.allow(&["alice"]).await;
    let engine = SlowEngine::new(5 * SECOND);
    let w = start(&h, engine.clone(), config(&h, "kill", Duration::ZERO)).await;
    h.send(&incoming("m1", "alice", "are you there?")).await;
    until_calls(&engine, 1).await;

    let pressed = Instant::now();
    store::control::kill_switch(&mut h.con, true)
        .await
        .expect("kill on");
    let cancelled = eventually(2 * SECOND, || async {
        (engine.cancelled() == 1).then_some(())
    })
    .await;
    assert!(
        cancelled.is_some(),
        "the generation is cancelled within 2 s of the kill switch"
    );
    let within = pressed.elapsed();
    let state = eventually(5 * SECOND, || {
        let mut con = h.con.clone();
        async move {
            common::handled(&mut con, "m1")
                .await
                .filter(|s| s != "seen")
        }
    })
    .await;
    assert_eq!(state.as_deref(), Some("skip:kill_switch"), "decided again");
    // Past the moment the engine would have returned.
    tokio::time::sleep(5 * SECOND).await;
    assert!(h.responses().await.is_empty(), "nothing sent");
    assert_eq!(engine.0.returned.load(Ordering::SeqCst), 0);
    assert_eq!(streams::workers_pending(&mut h.con).await, 0);
    let status = w.stop(10 * SECOND).await;
    assert_eq!(status.answered, 0);
    println!("cancelled {} ms after the kill switch", within.as_millis());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_message_during_generation_gets_the_one_reply_and_the_first_is_superseded() {
    let mut h = Harness::start().await;
    h.allow(&["bob"]).await;
    let engine = SlowEngine::new(2 * SECOND);
    let quiet = Duration::from_millis(300);
    let w = start(&h, engine.clone(), config(&h, "burst", quiet)).await;
    h.send(&incoming("b1", "bob", "dinner tonight?")).await;
    until_calls(&engine, 1).await;
    h.send(&incoming("b2", "bob", "or tomorrow")).await;

    let answered = streams::holds_at_least(&h.con, schema::queue_responses(), 1, 10 * SECOND).await;
    assert!(answered, "the burst is answered");
    // Long enough for a second reply to the first message, if there were one.
    tokio::time::sleep(3 * SECOND).await;
    let per = streams::replies_per_message(&mut h.con).await;
    assert_eq!(
        per,
        HashMap::from([("b2".to_owned(), 1)]),
        "one reply, to b2"
    );
    let reply = &h.responses().await[0];
    assert_eq!(reply["content"], "re: or tomorrow");
    assert_eq!(
        common::handled(&mut h.con, "b1").await.as_deref(),
        Some("superseded")
    );
    assert_eq!(
        common::handled(&mut h.con, "b2").await.as_deref(),
        Some("answered")
    );
    assert_eq!(engine.cancelled(), 1, "b1's generation was dropped");
    assert_eq!(engine.calls(), 2);
    let stats: HashMap<String, i64> = h.con.hgetall(schema::stats()).await.expect("stats");
    assert_eq!(stats.get("superseded"), Some(&1), "{stats:?}");
    assert_eq!(streams::workers_pending(&mut h.con).await, 0);
    let status = w.stop(10 * SECOND).await;
    assert_eq!(status.answered, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_within_the_quiet_window_is_generated_once() {
    let mut h = Harness::start().await;
    h.allow(&["carol"]).await;
    let engine = SlowEngine::new(Duration::from_millis(200));
    let w = start(&h, engine.clone(), config(&h, "quiet", 2 * SECOND)).await;
    for (id, text) in [
        ("c1", "hey"),
        ("c2", "quick question"),
        ("c3", "are you free?"),
    ] {
        h.send(&incoming(id, "carol", text)).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let answered = eventually(10 * SECOND, || {
        let mut con = h.con.clone();
        async move {
            common::handled(&mut con, "c3")
                .await
                .filter(|s| s == "answered")
        }
    })
    .await;
    assert!(answered.is_some(), "the last message is answered");
    let per = streams::replies_per_message(&mut h.con).await;
    assert_eq!(per, HashMap::from([("c3".to_owned(), 1)]));
    assert_eq!(engine.calls(), 1, "one generation for the burst");
    for id in ["c1", "c2"] {
        assert_eq!(
            common::handled(&mut h.con, id).await.as_deref(),
            Some("superseded")
        );
    }
    w.stop(10 * SECOND).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_engine_error_ends_in_the_dead_letter_stream_never_in_a_reply() {
    let mut h = Harness::start().await;
    h.allow(&["dave"]).await;
    let engine = SlowEngine::new(Duration::from_millis(100));
    engine.0.fail.store(true, Ordering::SeqCst);
    let mut cfg = config(&h, "fail", Duration::ZERO);
    cfg.max_deliveries = 3;
    let w = start(&h, engine.clone(), cfg).await;
    h.send(&incoming("d1", "dave", "what's the plan?")).await;

    let dead = streams::holds_at_least(&h.con, schema::queue_deadletter(), 1, 20 * SECOND).await;
    assert!(dead, "dead-lettered within 20 s");
    let letters = h.dead_letters().await;
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0]["messageId"], "d1");
    let reason = &letters[0][schema::deadletter_fields::REASON];
    assert!(reason.contains("delivered 4 times"), "reason: {reason}");
    assert_eq!(
        engine.calls(),
        3,
        "one call per delivery, up to max_deliveries"
    );
    assert!(h.responses().await.is_empty(), "no error text as a reply");
    assert_eq!(streams::workers_pending(&mut h.con).await, 0);
    let status = w.stop(10 * SECOND).await;
    assert_eq!(status.answered, 0);
    assert_eq!(status.dead_lettered, 1);
}

/// A panic in the engine frees the contact's slot like any failure: with one
/// generation at a time, four panicking replies used to hold the scheduler full
/// for good (their entries kept claimed, never retried), so nothing more was read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replies_that_panic_are_dead_lettered_and_the_worker_answers_the_others() {
    const PANICKING: &[&str] = &["p1", "p2", "p3", "p4"];
    let mut h = Harness::start().await;
    h.allow(&["p1", "p2", "p3", "p4", "n1", "n2"]).await;
    let engine = SlowEngine(Arc::new(Inner {
        delay: Duration::from_millis(50),
        panics_for: PANICKING,
        ..Inner::default()
    }));
    let mut cfg = config(&h, "panic", Duration::ZERO);
    cfg.max_generations = 1;
    cfg.max_deliveries = 2;
    let w = start(&h, engine.clone(), cfg).await;
    for (i, c) in PANICKING.iter().enumerate() {
        h.send(&incoming(&format!("pm{i}"), c, "this one trips the engine"))
            .await;
    }
    // Every panicking reply was tried before anyone else writes.
    until_calls(&engine, PANICKING.len()).await;
    h.send(&incoming("n1-1", "n1", "lunch?")).await;
    h.send(&incoming("n2-1", "n2", "call me")).await;

    let settled = eventually(30 * SECOND, || {
        let mut con = h.con.clone();
        async move {
            let letters: usize = con.xlen(schema::queue_deadletter()).await.ok()?;
            let replies: usize = con.xlen(schema::queue_responses()).await.ok()?;
            (letters == PANICKING.len() && replies == 2).then_some(())
        }
    })
    .await;
    let per = streams::replies_per_message(&mut h.con).await;
    assert!(
        settled.is_some(),
        "the others answered and the panicking ones dead-lettered: replies {per:?}, {} letters",
        h.dead_letters().await.len()
    );
    assert_eq!(
        per,
        HashMap::from([("n1-1".to_owned(), 1), ("n2-1".to_owned(), 1)])
    );
    let mut dead: Vec<String> = h
        .dead_letters()
        .await
        .into_iter()
        .map(|l| l["messageId"].clone())
        .collect();
    dead.sort();
    assert_eq!(dead, ["pm0", "pm1", "pm2", "pm3"]);
    // The worker still reads and answers.
    h.send(&incoming("n1-2", "n1", "still there?")).await;
    let again = eventually(10 * SECOND, || {
        let mut con = h.con.clone();
        async move {
            common::handled(&mut con, "n1-2")
                .await
                .filter(|s| s == "answered")
        }
    })
    .await;
    assert!(again.is_some(), "a message after the panics is answered");
    assert_eq!(
        engine.calls(),
        PANICKING.len() * 2 + 3,
        "each panicking message tried once per delivery, up to max_deliveries"
    );
    assert_eq!(streams::workers_pending(&mut h.con).await, 0);
    let status = w.stop(10 * SECOND).await;
    assert_eq!(status.answered, 3);
    assert_eq!(status.dead_lettered, 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_give_one_reply_per_message() {
    let mut h = Harness::start().await;
    let contacts: Vec<String> = (0..24).map(|i| format!("c{i}")).collect();
    let refs: Vec<&str> = contacts.iter().map(String::as_str).collect();
    h.allow(&refs).await;
    let engine = SlowEngine::new(Duration::from_millis(500));
    let quiet = Duration::from_millis(100);
    let a = start(&h, engine.clone(), config(&h, "w-a", quiet)).await;
    let b = start(&h, engine.clone(), config(&h, "w-b", quiet)).await;
    for (i, c) in contacts.iter().enumerate() {
        h.send(&incoming(&format!("m{i}"), c, "hello")).await;
    }
    let n = contacts.len();
    let all = streams::holds_at_least(&h.con, schema::queue_responses(), n, 20 * SECOND).await;
    assert!(all, "every message answered within 20 s");
    tokio::time::sleep(2 * SECOND).await;
    let per = streams::replies_per_message(&mut h.con).await;
    assert_eq!(per.len(), 24);
    assert!(per.values().all(|&n| n == 1), "{per:?}");
    assert_eq!(streams::workers_pending(&mut h.con).await, 0);
    let sa = a.stop(10 * SECOND).await;
    let sb = b.stop(10 * SECOND).await;
    assert_eq!(sa.answered + sb.answered, 24);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_mid_generation_drains_in_time_and_loses_nothing() {
    let mut h = Harness::start().await;
    h.allow(&["erin"]).await;
    let engine = SlowEngine::new(30 * SECOND);
    let cfg = config(&h, "stop", Duration::ZERO);
    let review = cfg.review_file.clone();
    let w = start(&h, engine.clone(), cfg).await;
    h.send(&incoming("e1", "erin", "call me")).await;
    until_calls(&engine, 1).await;

    let stopping = Instant::now();
    let status = w.stop(10 * SECOND).await;
    let took = stopping.elapsed();
    assert!(took < 5 * SECOND, "stopped in {took:?}");
    assert_eq!(engine.cancelled(), 1, "the generation was dropped");
    assert!(h.responses().await.is_empty());
    // Not lost: pending in the group, or in the review file for the operator.
    let reviewed = std::fs::read_to_string(&review).unwrap_or_default();
    let still_pending = streams::workers_pending(&mut h.con).await;
    assert!(
        reviewed.contains("\"e1\"") || still_pending == 1,
        "e1 is neither pending nor reviewed: {reviewed:?}"
    );
    assert_eq!(status.reviewed, u64::from(reviewed.contains("\"e1\"")));
}
