//! Nights that defer (issue 21) and the count of messages the twin chose not to
//! answer, on a real redis-server with the real worker: a night's messages are
//! kept across a worker restart and answered once per contact when the window
//! ends (in draft mode: one draft), by one of two workers, never for a contact
//! paused by then; an unreadable deferral is dropped and counted; skipped
//! messages of enabled contacts are counted until a reply goes out.

use std::collections::{BTreeSet, HashMap};

use redis::AsyncCommands;
use secondme::config::SleepSetting;
use secondme::schema::{self, PauseReason};
use secondme::store::control;
use secondme::worker::WorkerConfig;

use super::common::worker::Running;
use super::common::{self, Harness, eventually, incoming};
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

/// A night: owl writes twice, lark once, to a worker asleep in `defer` mode.
async fn a_night(h: &mut Harness, reply_mode: Option<&str>) {
    h.allow(&["owl", "lark"]).await;
    let night = start(
        h,
        Numbered::instant(),
        night_config(h, "w-night", Some("defer"), reply_mode, true),
    )
    .await;
    send(h, &incoming("n1", "owl", "you up?")).await;
    send(h, &incoming("n2", "owl", "call me when you wake")).await;
    send(h, &incoming("l1", "lark", "night!")).await;
    for id in ["n1", "n2", "l1"] {
        state_soon(h, id, "deferred").await;
    }
    until_settled(h).await;
    night.stop().await;
}

/// A worker awake in the morning, in `defer` mode.
async fn morning(h: &Harness) -> Running {
    start(
        h,
        Numbered::instant(),
        night_config(h, "w-day", Some("defer"), None, false),
    )
    .await
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
