//! Failure isolation against a real redis-server: keys of a foreign type or value
//! that another program sharing the Redis left behind stop only the entries they
//! belong to; a server-wide failure stops everything without losing or repeating
//! anything; the contact id `ALL` is never taken for the kill switch.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::{Harness, eventually, incoming, streams, typed_by_person};
use redis::AsyncCommands;
use secondme::reply::persona_engine::PersonaEngine;
use secondme::reply::{Reply, ReplyEngine, ReplyRequest};
use secondme::schema;
use secondme::worker::{Worker, WorkerConfig, WorkerState, WorkerStatus};
use tokio::sync::watch;

const SECOND: Duration = Duration::from_secs(1);

/// The persona engine's replies, written after the decision (as a language model's
/// are), so replies go through the commit step.
struct Deferred;

impl ReplyEngine for Deferred {
    async fn reply(&self, request: &ReplyRequest<'_>) -> anyhow::Result<Reply> {
        Ok(Reply {
            content: format!("re: {}", request.message.content),
            delay_ms: 0,
        })
    }
}

struct Running {
    stop: watch::Sender<bool>,
    status: watch::Receiver<WorkerStatus>,
    task: tokio::task::JoinHandle<anyhow::Result<WorkerStatus>>,
}

impl Running {
    async fn stop(self) -> WorkerStatus {
        let _ = self.stop.send(true);
        tokio::time::timeout(15 * SECOND, self.task)
            .await
            .expect("the worker stops in time")
            .expect("join")
            .expect("worker result")
    }
}

async fn start<E: ReplyEngine>(h: &Harness, engine: E) -> Running {
    start_with(h, engine, &h.server.url(), |_| {}).await
}

/// Waits until `n` replies and `d` dead letters are in Redis.
async fn settle(h: &Harness, n: usize, d: usize, within: Duration) {
    let con = h.con.clone();
    let done = eventually(within, || {
        let mut con = con.clone();
        async move {
            let r: usize = con.xlen(schema::queue_responses()).await.ok()?;
            let dl: usize = con.xlen(schema::queue_deadletter()).await.ok()?;
            (r >= n && dl >= d).then_some(())
        }
    })
    .await;
    assert!(
        done.is_some(),
        "{n} replies and {d} dead letters within {within:?}"
    );
}

/// 12 messages over 6 contacts; the 3rd and 4th contacts' keys were left by another
/// program: a history kept as a sorted set (the original gateway's; SecondMe keeps
/// its own history beside it and answers), a counter holding text (that contact's
/// entries fail alone).
async fn poisoned_batch(h: &mut Harness) -> Vec<(String, String)> {
    let contacts = ["c1", "c2", "c3", "c4", "c5", "c6"];
    h.allow(&contacts).await;
    let _: () = h
        .con
        .zadd("HISTORY:c3", r#"{"from":"their gateway"}"#, 1)
        .await
        .expect("ZADD");
    let _: () = h.con.set("COUNTER:c4:msgs", "many").await.expect("SET");
    let mut sent = Vec::new();
    for round in 0..2 {
        for c in contacts {
            let id = format!("m{round}-{c}");
            h.send(&incoming(&id, c, "hello, how are you?")).await;
            sent.push((id, c.to_owned()));
        }
    }
    sent
}

async fn assert_isolated(h: &mut Harness, sent: &[(String, String)]) {
    let per = streams::replies_per_message(&mut h.con).await;
    for (id, contact) in sent {
        let poisoned = contact == "c4";
        let n = per.get(id).copied().unwrap_or(0);
        assert_eq!(n, usize::from(!poisoned), "replies to {id}: {per:?}");
    }
    let letters = h.dead_letters().await;
    assert_eq!(letters.len(), 2, "{letters:?}");
    for l in &letters {
        let reason = &l[schema::deadletter_fields::REASON];
        match l["contactId"].as_str() {
            "c4" => assert!(reason.contains("COUNTER:c4:msgs"), "{reason}"),
            other => panic!("{other} dead-lettered: {reason}"),
        }
        assert!(l["messageId"].starts_with('m'), "{l:?}");
    }
    // Their keys are theirs: untouched.
    let t: String = redis::cmd("TYPE")
        .arg("HISTORY:c3")
        .query_async(&mut h.con)
        .await
        .expect("TYPE");
    assert_eq!(t, "zset");
    let members: Vec<String> = h.con.zrange("HISTORY:c3", 0, -1).await.expect("ZRANGE");
    assert_eq!(members, [r#"{"from":"their gateway"}"#]);
    // Ours is beside it: both messages and both replies, newest first.
    let ours: Vec<String> = h
        .con
        .lrange(schema::own_history_key("c3"), 0, -1)
        .await
        .expect("LRANGE");
    assert_eq!(ours.len(), 4, "{ours:?}");
    assert!(ours[0].contains(r#""botSent":true"#), "{ours:?}");
    let counter: String = h.con.get("COUNTER:c4:msgs").await.expect("GET");
    assert_eq!(counter, "many");
}

async fn answered_at_once_afterwards(h: &mut Harness) {
    h.send(&incoming("after", "c1", "still there?")).await;
    settle(h, 11, 2, 3 * SECOND).await;
    assert_eq!(
        streams::replies_per_message(&mut h.con).await.get("after"),
        Some(&1)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_keys_of_two_contacts_stop_only_their_entries() {
    let mut h = Harness::start().await;
    let sent = poisoned_batch(&mut h).await;
    let w = start(&h, PersonaEngine::default()).await;
    settle(&h, 10, 2, 10 * SECOND).await;
    assert_isolated(&mut h, &sent).await;
    answered_at_once_afterwards(&mut h).await;
    // Nothing more comes: no reply repeated by a retry.
    tokio::time::sleep(SECOND).await;
    assert_eq!(h.responses().await.len(), 11);
    assert_eq!(streams::workers_pending(&mut h.con).await, 0);
    let status = w.stop().await;
    assert_eq!(status.dead_lettered, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_keys_stop_only_their_entries_when_replies_are_written_after_deciding() {
    let mut h = Harness::start().await;
    let sent = poisoned_batch(&mut h).await;
    let w = start(&h, Deferred).await;
    settle(&h, 10, 2, 10 * SECOND).await;
    assert_isolated(&mut h, &sent).await;
    answered_at_once_afterwards(&mut h).await;
    tokio::time::sleep(SECOND).await;
    assert_eq!(h.responses().await.len(), 11);
    assert_eq!(streams::workers_pending(&mut h.con).await, 0);
    w.stop().await;
}

/// A history key another program keeps as a hash is never written: the takeover
/// pauses the contact and is recorded in SecondMe's own history key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_takeover_with_a_foreign_history_pauses_and_keeps_its_own_history() {
    let mut h = Harness::start().await;
    h.allow(&["c1", "c2"]).await;
    let _: () = h.con.hset("HISTORY:c1", "x", "y").await.expect("HSET");
    h.send(&typed_by_person("typed", "c1", "I'll take it from here"))
        .await;
    h.send(&incoming("hi", "c2", "hi")).await;
    let w = start(&h, PersonaEngine::default()).await;
    settle(&h, 1, 0, 10 * SECOND).await;
    let handled = eventually(5 * SECOND, || {
        let mut con = h.con.clone();
        async move { common::handled(&mut con, "typed").await }
    })
    .await;
    assert_eq!(handled.as_deref(), Some("takeover"));
    assert!(h.dead_letters().await.is_empty());
    let paused: bool = h.con.exists("PAUSE:c1").await.expect("EXISTS");
    assert!(paused);
    let theirs: HashMap<String, String> = h.con.hgetall("HISTORY:c1").await.expect("HGETALL");
    assert_eq!(theirs, HashMap::from([("x".to_owned(), "y".to_owned())]));
    let ours: Vec<String> = h
        .con
        .lrange(schema::own_history_key("c1"), 0, -1)
        .await
        .expect("LRANGE");
    assert_eq!(ours.len(), 1);
    assert!(ours[0].contains("take it from here"), "{ours:?}");
    assert_eq!(
        streams::replies_per_message(&mut h.con).await.get("hi"),
        Some(&1)
    );
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pause_key_of_a_foreign_type_still_pauses() {
    let mut h = Harness::start().await;
    h.allow(&["c1", "c2"]).await;
    let _: () = h.con.hset("PAUSE:c1", "pausedAt", "1").await.expect("HSET");
    h.send(&incoming("to-paused", "c1", "hi")).await;
    h.send(&incoming("to-active", "c2", "hi")).await;
    let w = start(&h, PersonaEngine::default()).await;
    settle(&h, 1, 0, 10 * SECOND).await;
    let handled = eventually(5 * SECOND, || {
        let mut con = h.con.clone();
        async move { common::handled(&mut con, "to-paused").await }
    })
    .await;
    assert_eq!(handled.as_deref(), Some("skip:paused"));
    assert_eq!(
        streams::replies_per_message(&mut h.con)
            .await
            .keys()
            .collect::<Vec<_>>(),
        ["to-active"]
    );
    w.stop().await;
}

/// A server where another program made `QUEUE:responses` a string, and three
/// messages from two enabled contacts wait in the queue.
async fn three_behind_a_foreign_responses_stream() -> Harness {
    let mut h = Harness::start().await;
    h.allow(&["c1", "c2"]).await;
    let _: () = h
        .con
        .set(schema::queue_responses(), "not a stream")
        .await
        .expect("SET");
    for i in 0..3 {
        let contact = if i == 1 { "c2" } else { "c1" };
        h.send(&incoming(&format!("m{i}"), contact, "hi")).await;
    }
    h
}

/// Waits for the worker to report an error containing `text`.
async fn worker_error(status: &watch::Receiver<WorkerStatus>, text: &str) -> String {
    let status = status.clone();
    eventually(10 * SECOND, || {
        let s = status.borrow().clone();
        async move {
            match s.state {
                WorkerState::Disconnected { error } if error.contains(text) => Some(error),
                _ => None,
            }
        }
    })
    .await
    .unwrap_or_else(|| panic!("the worker reports {text:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shared_key_of_a_foreign_type_holds_everything_back_and_loses_nothing() {
    let mut h = three_behind_a_foreign_responses_stream().await;
    let w = start(&h, PersonaEngine::default()).await;
    let error = worker_error(&w.status, "QUEUE:responses").await;
    assert!(error.contains("holds a string"), "{error}");
    tokio::time::sleep(SECOND).await;
    assert_eq!(h.dead_letters().await.len(), 0, "nobody dead-lettered");
    assert_eq!(
        streams::workers_pending(&mut h.con).await,
        3,
        "everything still pending"
    );
    let kept: String = h.con.get(schema::queue_responses()).await.expect("GET");
    assert_eq!(kept, "not a stream", "their key is untouched");
    let _: () = h.con.del(schema::queue_responses()).await.expect("DEL");
    settle(&h, 3, 0, 10 * SECOND).await;
    let per = streams::replies_per_message(&mut h.con).await;
    assert_eq!(per.len(), 3);
    assert!(per.values().all(|n| *n == 1), "{per:?}");
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_memory_holds_everything_back_and_loses_nothing() {
    let mut h = Harness::start().await;
    h.allow(&["c1", "c2"]).await;
    let w = start(&h, PersonaEngine::default()).await;
    // Messages and the memory limit in one transaction: the worker reads them only
    // once Redis refuses every write.
    let mut pipe = redis::pipe();
    pipe.atomic();
    for i in 0..4 {
        let m = incoming(&format!("m{i}"), if i % 2 == 0 { "c1" } else { "c2" }, "hi");
        pipe.add_command(secondme::store::queue::xadd(&m, h.acked))
            .ignore();
    }
    pipe.cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory")
        .arg("1")
        .ignore();
    let _: () = pipe.query_async(&mut h.con).await.expect("MULTI");
    worker_error(&w.status, "OOM").await;
    tokio::time::sleep(SECOND).await;
    let dl: usize = h.con.xlen(schema::queue_deadletter()).await.expect("XLEN");
    assert_eq!(dl, 0, "nobody dead-lettered for the server's state");
    let sent: usize = h.con.xlen(schema::queue_responses()).await.expect("XLEN");
    assert_eq!(sent, 0);
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory")
        .arg("0")
        .query_async(&mut h.con)
        .await
        .expect("CONFIG SET");
    settle(&h, 4, 0, 10 * SECOND).await;
    let per = streams::replies_per_message(&mut h.con).await;
    assert!(per.len() == 4 && per.values().all(|n| *n == 1), "{per:?}");
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entry_for_contact_all_is_dead_lettered_and_the_kill_switch_stays_off() {
    let mut h = Harness::start().await;
    h.allow(&["c1"]).await;
    h.send(&typed_by_person("typed-all", "ALL", "hi")).await;
    for i in 0..12 {
        h.send(&incoming(&format!("flood-{i}"), "ALL", "hi")).await;
    }
    h.send(&incoming("fine", "c1", "hi")).await;
    let w = start(&h, PersonaEngine::default()).await;
    settle(&h, 1, 13, 10 * SECOND).await;
    for l in h.dead_letters().await {
        let reason = &l[schema::deadletter_fields::REASON];
        assert!(reason.contains("reserved for the kill switch"), "{reason}");
    }
    let killed: bool = h.con.exists(schema::pause_all()).await.expect("EXISTS");
    assert!(!killed, "PAUSE:ALL was never set");
    w.stop().await;
}

/// A worker on `h` with `cfg` adjusted by `tune`, connecting as `url`.
async fn start_with<E: ReplyEngine>(
    h: &Harness,
    engine: E,
    url: &str,
    tune: impl FnOnce(&mut WorkerConfig),
) -> Running {
    let mut cfg = WorkerConfig::from_config(&h.config("iso"));
    cfg.sleep_hours = secondme::config::SleepSetting::Off;
    // Every message answered on its own: these tests count replies per message.
    cfg.burst_quiet = Duration::ZERO;
    tune(&mut cfg);
    let client = secondme::connection::open_client(url).expect("client");
    let w = Worker::connect(client, engine, cfg)
        .await
        .expect("worker connects");
    let status = w.status();
    let (stop, stop_rx) = watch::channel(false);
    Running {
        stop,
        status,
        task: tokio::spawn(w.run(stop_rx)),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_shared_key_fault_dead_letters_nobody_on_the_slow_path_either() {
    let mut h = three_behind_a_foreign_responses_stream().await;
    // One batch at a time, re-read from the pending list after each failure, and
    // few deliveries allowed: waiting must not count as a delivery.
    let url = h.server.url();
    let w = start_with(&h, Deferred, &url, |c| {
        c.read_ahead_bytes = 0;
        c.max_deliveries = 2;
    })
    .await;
    worker_error(&w.status, "QUEUE:responses").await;
    // Past several retries (backoff 0.2, 0.4, 0.8, 1.6, 3.2 s).
    tokio::time::sleep(7 * SECOND).await;
    assert_eq!(h.dead_letters().await.len(), 0, "nobody dead-lettered");
    assert_eq!(
        streams::workers_pending(&mut h.con).await,
        3,
        "everything still pending"
    );
    let _: () = h.con.del(schema::queue_responses()).await.expect("DEL");
    settle(&h, 3, 0, 10 * SECOND).await;
    let per = streams::replies_per_message(&mut h.con).await;
    assert!(per.len() == 3 && per.values().all(|n| *n == 1), "{per:?}");
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreign_dead_letter_stream_acknowledges_nothing() {
    let mut h = Harness::start().await;
    h.allow(&["c1"]).await;
    let _: () = h
        .con
        .set(schema::queue_deadletter(), "theirs")
        .await
        .expect("SET");
    h.send_raw(&[("messageId", b"junk"), ("contactId", b"c1")])
        .await;
    let w = start(&h, PersonaEngine::default()).await;
    worker_error(&w.status, "QUEUE:deadletter").await;
    assert_eq!(
        streams::workers_pending(&mut h.con).await,
        1,
        "not acknowledged without its dead letter"
    );
    let _: () = h.con.del(schema::queue_deadletter()).await.expect("DEL");
    settle(&h, 0, 1, 10 * SECOND).await;
    assert_eq!(streams::workers_pending(&mut h.con).await, 0);
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_acl_that_does_not_reach_a_key_is_the_servers_fault_not_the_entrys() {
    let mut h = Harness::start().await;
    h.allow(&["c1"]).await;
    // A worker user whose key patterns forget HISTORY:*: the step's KEYS carry
    // HISTORY:c1 (no key is built inside a step), so Redis refuses the call
    // (NOPERM), which must not read as this entry's fault.
    let _: () = redis::cmd("ACL")
        .arg("SETUSER")
        .arg("forgetful")
        .arg("on")
        .arg(">pw")
        .arg("~QUEUE:*")
        .arg("~PAUSE*")
        .arg("~OPTIN:*")
        .arg("~SECONDME:*")
        .arg("~CONTACTS:*")
        .arg("~HANDLED:*")
        .arg("~COUNTER:*")
        .arg("~SENT:*")
        .arg("~DRAFT*")
        .arg("&*")
        .arg("+@all")
        .query_async(&mut h.con)
        .await
        .expect("ACL SETUSER");
    h.send(&incoming("m1", "c1", "hi")).await;
    let url = format!("{}?user=forgetful&pass=pw", h.server.url());
    let w = start_with(&h, PersonaEngine::default(), &url, |_| {}).await;
    // Redis 8 says "No permissions to access a key", 7.0 "no permissions to
    // access one of the keys used as arguments".
    let error = worker_error(&w.status, "").await;
    assert!(error.contains("ermissions to access"), "{error}");
    tokio::time::sleep(SECOND).await;
    assert_eq!(h.dead_letters().await.len(), 0, "nobody dead-lettered");
    assert_eq!(streams::workers_pending(&mut h.con).await, 1);
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_library_is_loaded_again_when_redis_lost_it() {
    let mut h = Harness::start().await;
    h.allow(&["c1"]).await;
    let w = start(&h, PersonaEngine::default()).await;
    h.send(&incoming("before", "c1", "hi")).await;
    settle(&h, 1, 0, 10 * SECOND).await;
    let _: () = redis::cmd("FUNCTION")
        .arg("FLUSH")
        .query_async(&mut h.con)
        .await
        .expect("FUNCTION FLUSH");
    h.send(&incoming("after", "c1", "hi again")).await;
    settle(&h, 2, 0, 10 * SECOND).await;
    let _: () = redis::cmd("FUNCTION")
        .arg("FLUSH")
        .query_async(&mut h.con)
        .await
        .expect("FUNCTION FLUSH");
    // The operator's controls too.
    secondme::store::control::kill_switch(&mut h.con, true)
        .await
        .expect("kill on after a flush");
    let on: bool = h.con.exists(schema::pause_all()).await.expect("EXISTS");
    assert!(on);
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_queued_twice_is_answered_once_when_replies_are_written_after_deciding() {
    let mut h = Harness::start().await;
    h.allow(&["c1"]).await;
    h.send(&incoming("twice", "c1", "hello")).await;
    h.send(&incoming("twice", "c1", "hello")).await;
    let w = start(&h, Deferred).await;
    settle(&h, 1, 0, 10 * SECOND).await;
    tokio::time::sleep(SECOND).await;
    assert_eq!(
        streams::replies_per_message(&mut h.con).await.get("twice"),
        Some(&1)
    );
    assert_eq!(streams::workers_pending(&mut h.con).await, 0);
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pause_goes_through_whole_when_the_activity_index_is_foreign() {
    let mut h = Harness::start().await;
    let _: () = h
        .con
        .set(schema::contacts_activity(), "theirs")
        .await
        .expect("SET");
    let mut events = h.subscribe().await;
    let expires =
        secondme::store::control::pause(&mut h.con, "bob", 60_000, schema::PauseReason::Manual)
            .await
            .expect("the pause is not stopped by a foreign index");
    let stored: i64 = h.con.get(schema::pause_key("bob")).await.expect("GET");
    assert_eq!(stored, expires);
    let published = common::collect(&mut events, schema::channel_pause(), SECOND).await;
    assert_eq!(published.len(), 1, "{published:?}");
    let kept: String = h.con.get(schema::contacts_activity()).await.expect("GET");
    assert_eq!(kept, "theirs");
}
