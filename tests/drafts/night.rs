//! Nights that defer (issue 21) and the count of messages the twin chose not to
//! answer, on a real redis-server with the real worker: a night's messages are
//! kept across a worker restart and answered once per contact when the window
//! ends (in draft mode: one draft), by one of two workers, never for a contact
//! paused by then; an unreadable deferral is dropped and counted; skipped
//! messages of enabled contacts are counted until a reply goes out. With a slow
//! engine the night's replies are written beside the worker's loop: the
//! person's own message or a contact's newer one at wake-up is decided at once
//! and the night's reply it makes needless is never sent; two workers waking
//! together write each night once; and while the sleep hours (from the graph)
//! are unknown, the night waits.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::Ordering;

use redis::AsyncCommands;
use secondme::config::SleepSetting;
use secondme::connection;
use secondme::schema::{self, PauseReason, QueueMessage};
use secondme::server::{self, GraphModule, RedisServer};
use secondme::store::control;
use secondme::worker::WorkerConfig;
use tracing::Level;

use super::common::worker::Running;
use super::common::{self, Harness, TestDir, eventually, incoming, typed_by_person};
use super::logs::Captured;
use super::{
    Numbered, SECOND, draft_for, responses, send, settings, start, until_settled, worker_config,
};

/// A worker's settings in `sleep_mode` (`None`: the default), asleep or awake now.
fn night_config(
    h: &Harness,
    consumer: &str,
    mode: Option<&str>,
    reply_mode: Option<&str>,
    asleep: bool,
) -> WorkerConfig {
    let mut c = settings(h, consumer, reply_mode, None);
    if let Some(mode) = mode {
        c.sleep_mode = mode.parse().expect("a sleep mode");
    }
    let mut cfg = worker_config(&c);
    cfg.sleep_hours = SleepSetting::Window(common::sleep_window(asleep));
    cfg
}

async fn deferred(h: &mut Harness) -> HashMap<String, serde_json::Value> {
    let raw: HashMap<String, String> = h.con.hgetall(schema::deferred()).await.expect("hgetall");
    raw.into_iter()
        .map(|(c, v)| (c, serde_json::from_str(&v).expect("a deferral is JSON")))
        .collect()
}

async fn unanswered(h: &mut Harness) -> HashMap<String, i64> {
    h.con.hgetall(schema::unanswered()).await.expect("hgetall")
}

async fn state_soon(h: &Harness, id: &str, want: &str) {
    let got = eventually(10 * SECOND, || {
        let mut con = h.con.clone();
        async move { common::handled(&mut con, id).await.filter(|s| s == want) }
    })
    .await;
    assert!(got.is_some(), "{id} never became {want}");
}

/// A night: `messages` come to a worker asleep in `defer` mode, and are kept.
async fn keep_a_night(h: &mut Harness, reply_mode: Option<&str>, messages: &[QueueMessage]) {
    let night = start(
        h,
        Numbered::instant(),
        night_config(h, "w-night", Some("defer"), reply_mode, true),
    )
    .await;
    for m in messages {
        send(h, m).await;
    }
    for m in messages {
        state_soon(h, &m.message_id, "deferred").await;
    }
    until_settled(h).await;
    night.stop().await;
}

/// A night: owl writes twice, lark once, to a worker asleep in `defer` mode.
async fn a_night(h: &mut Harness, reply_mode: Option<&str>) {
    h.allow(&["owl", "lark"]).await;
    let messages = [
        incoming("n1", "owl", "you up?"),
        incoming("n2", "owl", "call me when you wake"),
        incoming("l1", "lark", "night!"),
    ];
    keep_a_night(h, reply_mode, &messages).await;
}

/// A worker awake in the morning, in `defer` mode.
async fn morning(h: &Harness) -> Running {
    morning_with(h, Numbered::instant(), "w-day").await
}

/// A worker `consumer` awake in the morning, in `defer` mode, with `engine`.
async fn morning_with(h: &Harness, engine: Numbered, consumer: &str) -> Running {
    start(
        h,
        engine,
        night_config(h, consumer, Some("defer"), None, false),
    )
    .await
}

/// Waits until `engine` is writing a reply.
async fn until_writing(engine: &Numbered) {
    let calls = &engine.calls;
    let writing = eventually(10 * SECOND, || async move {
        (calls.load(Ordering::SeqCst) > 0).then_some(())
    })
    .await;
    assert!(writing.is_some(), "no reply to the night was begun");
}

/// Once the night is over: lark got its reply, owl none and is counted once.
async fn only_lark_answered_and_owl_counted(h: &mut Harness) {
    until_no_deferral(h).await;
    let rs = responses(h).await;
    assert_eq!(
        answered_ids(&rs),
        BTreeSet::from(["l1".to_owned()]),
        "{rs:?}"
    );
    assert_eq!(unanswered(h).await.get("owl"), Some(&1));
}

/// Waits until no deferral is left.
async fn until_no_deferral(h: &Harness) {
    eventually(10 * SECOND, || {
        let mut con = h.con.clone();
        async move {
            let n: usize = con.hlen(schema::deferred()).await.ok()?;
            (n == 0).then_some(())
        }
    })
    .await
    .expect("the deferrals end");
}

fn answered_ids(rs: &[HashMap<String, String>]) -> BTreeSet<String> {
    rs.iter().map(|r| r["inReplyTo"].clone()).collect()
}

#[tokio::test]
async fn a_deferred_night_is_kept_across_a_restart_and_answered_once_per_contact() {
    let mut h = Harness::start().await;
    a_night(&mut h, None).await;
    assert!(
        responses(&mut h).await.is_empty(),
        "nothing goes out in the night"
    );
    let kept = deferred(&mut h).await;
    assert_eq!(kept.len(), 2, "{kept:?}");
    assert_eq!(
        kept["owl"]["message"]["messageId"], "n2",
        "the newest message"
    );
    assert_eq!(kept["owl"]["message"]["content"], "call me when you wake");
    assert!(
        kept["owl"]["streamId"]
            .as_str()
            .is_some_and(|s| s.contains('-'))
    );
    assert_eq!(kept["lark"]["message"]["messageId"], "l1");
    assert!(
        unanswered(&mut h).await.is_empty(),
        "a deferred message is not unanswered"
    );

    // Morning: a new worker (the night's one is gone) answers the night.
    let day = morning(&h).await;
    let got = eventually(10 * SECOND, || {
        let mut h2 = h.con.clone();
        async move {
            let rs = common::streams::entries(&mut h2, schema::queue_responses()).await;
            (rs.len() >= 2).then_some(rs)
        }
    })
    .await
    .expect("the night is answered");
    tokio::time::sleep(2 * SECOND).await;
    let rs = responses(&mut h).await;
    assert_eq!(rs.len(), 2, "one reply per contact, once: {rs:?}");
    assert_eq!(
        answered_ids(&rs),
        BTreeSet::from(["l1".to_owned(), "n2".to_owned()])
    );
    assert!(
        got.iter()
            .any(|r| r["content"].ends_with("to call me when you wake"))
    );
    assert!(deferred(&mut h).await.is_empty(), "the deferrals are over");
    assert_eq!(
        common::handled(&mut h.con, "n2").await.as_deref(),
        Some("answered")
    );
    day.stop().await;
}

#[tokio::test]
async fn in_draft_mode_the_night_becomes_one_draft_per_contact() {
    let mut h = Harness::start().await;
    a_night(&mut h, Some("draft")).await;
    let day = start(
        &h,
        Numbered::instant(),
        night_config(&h, "w-day", Some("defer"), Some("draft"), false),
    )
    .await;
    let owl = draft_for(&h, "owl", "n2").await;
    assert!(owl["content"].ends_with("to call me when you wake"));
    draft_for(&h, "lark", "l1").await;
    assert!(responses(&mut h).await.is_empty(), "drafts, not replies");
    assert!(deferred(&mut h).await.is_empty());
    day.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_waking_together_answer_the_night_once() {
    let mut h = Harness::start().await;
    a_night(&mut h, None).await;
    let a = start(
        &h,
        Numbered::instant(),
        night_config(&h, "w-a", Some("defer"), None, false),
    );
    let b = start(
        &h,
        Numbered::instant(),
        night_config(&h, "w-b", Some("defer"), None, false),
    );
    let (a, b) = tokio::join!(a, b);
    until_no_deferral(&h).await;
    tokio::time::sleep(2 * SECOND).await;
    let rs = responses(&mut h).await;
    assert_eq!(answered_ids(&rs).len(), 2, "{rs:?}");
    assert_eq!(rs.len(), 2, "no contact answered twice: {rs:?}");
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn a_contact_paused_by_morning_is_not_answered_and_is_counted() {
    let mut h = Harness::start().await;
    a_night(&mut h, None).await;
    control::pause(&mut h.con, "owl", 3_600_000, PauseReason::Manual)
        .await
        .expect("pause");
    let day = morning(&h).await;
    only_lark_answered_and_owl_counted(&mut h).await;
    day.stop().await;
}

#[tokio::test]
async fn an_unreadable_deferral_is_dropped_and_counted_and_the_rest_answered() {
    let mut h = Harness::start().await;
    a_night(&mut h, None).await;
    let _: () = h
        .con
        .hset(schema::deferred(), "owl", "not json")
        .await
        .expect("hset");
    let day = morning(&h).await;
    only_lark_answered_and_owl_counted(&mut h).await;
    day.stop().await;
}

#[tokio::test]
async fn skipped_messages_of_enabled_contacts_are_counted_until_a_reply_goes_out() {
    let mut h = Harness::start().await;
    h.allow(&["owl", "wren"]).await;
    control::pause(&mut h.con, "wren", 3_600_000, PauseReason::Takeover)
        .await
        .expect("pause");
    let night = start(
        &h,
        Numbered::instant(),
        night_config(&h, "w-night", None, None, true),
    )
    .await;
    send(&mut h, &incoming("s1", "owl", "you up?")).await;
    send(&mut h, &incoming("s2", "owl", "hello?")).await;
    send(&mut h, &incoming("x1", "stranger", "hi")).await;
    state_soon(&h, "s2", "skip:sleep_hours").await;
    state_soon(&h, "x1", "skip:not_enabled").await;
    night.stop().await;
    assert_eq!(
        unanswered(&mut h).await,
        HashMap::from([("owl".to_owned(), 2)])
    );

    // The person is answering wren themselves: a message then is not the operator's to see.
    let day = start(
        &h,
        Numbered::instant(),
        night_config(&h, "w-day", None, None, false),
    )
    .await;
    send(&mut h, &incoming("w1", "wren", "still there?")).await;
    state_soon(&h, "w1", "skip:paused").await;
    assert_eq!(unanswered(&mut h).await.get("wren"), None);
    send(&mut h, &incoming("s3", "owl", "morning")).await;
    state_soon(&h, "s3", "answered").await;
    assert!(
        unanswered(&mut h).await.is_empty(),
        "a reply ends the count"
    );
    day.stop().await;
}

#[tokio::test]
async fn a_message_after_the_night_answers_it_and_ends_the_deferral() {
    let mut h = Harness::start().await;
    a_night(&mut h, None).await;
    // Owl writes again before any worker is up in the morning: the reply to it has
    // the night in view, and the night's message gets no second reply.
    send(&mut h, &incoming("n3", "owl", "good morning")).await;
    let day = morning(&h).await;
    state_soon(&h, "n3", "answered").await;
    until_no_deferral(&h).await;
    tokio::time::sleep(2 * SECOND).await;
    let rs = responses(&mut h).await;
    assert_eq!(
        answered_ids(&rs),
        BTreeSet::from(["l1".to_owned(), "n3".to_owned()]),
        "{rs:?}"
    );
    assert_eq!(rs.len(), 2, "owl is answered once: {rs:?}");
    day.stop().await;
}

#[tokio::test]
async fn the_persons_own_message_at_wake_up_is_decided_at_once_and_the_night_gets_no_reply() {
    let mut h = Harness::start().await;
    a_night(&mut h, None).await;
    let engine = Numbered::slow(4 * SECOND);
    let day = morning_with(&h, engine.clone(), "w-day").await;
    until_writing(&engine).await;
    // The person answers both contacts from the phone while a night's reply is written.
    send(&mut h, &typed_by_person("p1", "owl", "calling you in 5")).await;
    send(&mut h, &typed_by_person("p2", "lark", "night night")).await;
    state_soon(&h, "p1", "takeover").await;
    state_soon(&h, "p2", "takeover").await;
    assert_eq!(
        engine.done.load(Ordering::SeqCst),
        0,
        "decided while the night's first reply was still being written"
    );
    let done = &engine.done;
    let written = eventually(10 * SECOND, || async move {
        (done.load(Ordering::SeqCst) > 0).then_some(())
    })
    .await;
    assert!(written.is_some(), "the reply being written ends");
    tokio::time::sleep(2 * SECOND).await;
    let rs = responses(&mut h).await;
    assert!(
        rs.is_empty(),
        "the person answered: no reply of the twin's: {rs:?}"
    );
    assert_eq!(
        engine.calls.load(Ordering::SeqCst),
        1,
        "no reply written to a night already over"
    );
    assert!(deferred(&mut h).await.is_empty(), "the nights are over");
    assert!(
        unanswered(&mut h).await.is_empty(),
        "nothing left to the operator"
    );
    day.stop().await;
}

#[tokio::test]
async fn a_newer_message_at_wake_up_gets_the_one_reply_with_the_night_in_view() {
    let mut h = Harness::start().await;
    h.allow(&["owl"]).await;
    let night = [
        incoming("n1", "owl", "you up?"),
        incoming("n2", "owl", "call me when you wake"),
    ];
    keep_a_night(&mut h, None, &night).await;
    let engine = Numbered::slow(2 * SECOND);
    let day = morning_with(&h, engine.clone(), "w-day").await;
    until_writing(&engine).await;
    send(&mut h, &incoming("n3", "owl", "are you there?")).await;
    state_soon(&h, "n3", "answered").await;
    until_no_deferral(&h).await;
    tokio::time::sleep(2 * SECOND).await;
    let rs = responses(&mut h).await;
    assert_eq!(rs.len(), 1, "owl gets one reply: {rs:?}");
    assert_eq!(rs[0]["inReplyTo"], "n3");
    assert!(rs[0]["content"].ends_with("to are you there?"));
    day.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_waking_together_write_each_night_once() {
    let mut h = Harness::start().await;
    a_night(&mut h, None).await;
    let engine = Numbered::slow(SECOND);
    let (a, b) = tokio::join!(
        morning_with(&h, engine.clone(), "w-a"),
        morning_with(&h, engine.clone(), "w-b"),
    );
    until_no_deferral(&h).await;
    tokio::time::sleep(2 * SECOND).await;
    let rs = responses(&mut h).await;
    assert_eq!(rs.len(), 2, "{rs:?}");
    assert_eq!(
        engine.calls.load(Ordering::SeqCst),
        2,
        "one model call per night"
    );
    for contact in ["owl", "lark"] {
        let key = schema::deferred::claim_key(contact);
        let by: String = h.con.get(&key).await.expect("the claim");
        assert!(by == "w-a" || by == "w-b", "{key}: {by}");
        let ttl: i64 = h.con.pttl(&key).await.expect("pttl");
        assert!((1..=300_000).contains(&ttl), "{key}: {ttl} ms");
    }
    a.stop().await;
    b.stop().await;
}

/// A harness whose server has FalkorDB, where the sleep hours may come from.
async fn with_graph() -> Harness {
    let binary = server::find_binary().expect("a redis-server (run scripts/setup.sh)");
    let server = RedisServer::start(binary, GraphModule::WhenFound).expect("start redis-server");
    assert!(server.has_falkordb(), "falkordb.so: run scripts/setup.sh");
    let client = connection::open_client(&server.url()).expect("client");
    let mut con = connection::manager(&client, None).await.expect("connect");
    let version = connection::server_version(&mut con).await.expect("version");
    Harness {
        server,
        con,
        acked: connection::supports_acked_trim(version),
        dir: TestDir::new("night-graph"),
    }
}

#[tokio::test]
async fn while_the_graphs_sleep_hours_are_unknown_the_night_waits() {
    let logs = Captured::start(Level::WARN);
    let mut h = with_graph().await;
    a_night(&mut h, None).await;
    // Another program's string where the graph should be: it cannot be read.
    let _: () = h
        .con
        .set(schema::graph(), "not a graph")
        .await
        .expect("set");
    let mut cfg = night_config(&h, "w-day", Some("defer"), None, false);
    cfg.sleep_hours = SleepSetting::FromGraph;
    let day = start(&h, Numbered::instant(), cfg.clone()).await;
    tokio::time::sleep(4 * SECOND).await;
    let rs = responses(&mut h).await;
    assert!(rs.is_empty(), "it may still be night: {rs:?}");
    assert_eq!(deferred(&mut h).await.len(), 2, "the nights are kept");
    day.stop().await;
    let said = "the sleep hours are not known yet";
    assert_eq!(logs.text().matches(said).count(), 1, "{}", logs.text());

    // The graph can be read again (it holds no sleep hours): the night is answered.
    let _: () = h.con.del(schema::graph()).await.expect("del");
    let day = start(&h, Numbered::instant(), cfg).await;
    until_no_deferral(&h).await;
    let rs = responses(&mut h).await;
    assert_eq!(
        answered_ids(&rs),
        BTreeSet::from(["l1".to_owned(), "n2".to_owned()])
    );
    day.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graph_that_cannot_be_asked_for_a_while_does_not_wake_the_night() {
    let mut h = with_graph().await;
    a_night(&mut h, None).await;
    // Whether FalkorDB is there cannot be asked (an error that is not "no module").
    let acl = |rule: &str| {
        let mut cmd = redis::cmd("ACL");
        cmd.arg("SETUSER").arg("default").arg(rule);
        cmd
    };
    let _: () = acl("-command").query_async(&mut h.con).await.expect("ACL");
    let mut cfg = night_config(&h, "w-day", Some("defer"), None, false);
    cfg.sleep_hours = SleepSetting::FromGraph;
    let day = start(&h, Numbered::instant(), cfg).await;
    tokio::time::sleep(4 * SECOND).await;
    let rs = responses(&mut h).await;
    assert!(rs.is_empty(), "it may still be night: {rs:?}");
    assert_eq!(deferred(&mut h).await.len(), 2, "the nights are kept");

    // It can be asked again: the same worker reads the graph (no sleep hours) and wakes.
    let _: () = acl("+command").query_async(&mut h.con).await.expect("ACL");
    until_no_deferral(&h).await;
    let rs = responses(&mut h).await;
    assert_eq!(
        answered_ids(&rs),
        BTreeSet::from(["l1".to_owned(), "n2".to_owned()])
    );
    day.stop().await;
}
