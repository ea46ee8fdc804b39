//! The contract's rules against a real redis-server: keys, TTLs and payloads.

mod common;

use std::time::Duration;

use common::{Harness, collect, eventually, incoming, typed_by_person};
use redis::AsyncCommands;
use secondme::config::SleepSetting;
use secondme::reply::persona_engine::PersonaEngine;
use secondme::schema::{self, PauseReason};
use secondme::seal::SessionKey;
use secondme::store::{self, control, persona, session};
use secondme::worker;
use tokio::sync::watch;

const SECOND: Duration = Duration::from_secs(1);

/// Starts an in-process worker; returns its stop switch and handle.
fn spawn_worker(
    h: &Harness,
    consumer: &str,
) -> (
    watch::Sender<bool>,
    tokio::task::JoinHandle<anyhow::Result<worker::WorkerStatus>>,
) {
    let config = h.config(consumer);
    let (tx, rx) = watch::channel(false);
    let handle =
        tokio::spawn(
            async move { worker::run_worker(&config, PersonaEngine::default(), rx).await },
        );
    (tx, handle)
}

async fn stop(
    tx: watch::Sender<bool>,
    handle: tokio::task::JoinHandle<anyhow::Result<worker::WorkerStatus>>,
) -> worker::WorkerStatus {
    let _ = tx.send(true);
    handle.await.expect("join").expect("worker result")
}

async fn responses_len(h: &mut Harness) -> usize {
    h.con.xlen(schema::queue_responses()).await.expect("xlen")
}

#[tokio::test]
async fn pause_sets_expiry_with_matching_ttl_and_publishes() {
    let mut h = Harness::start().await;
    let mut events = h.subscribe().await;
    let before = store::now_ms();
    let expires = control::pause(&mut h.con, "c1", 30 * 60 * 1000, PauseReason::Manual)
        .await
        .expect("pause");
    let value: i64 = h.con.get("PAUSE:c1").await.expect("get");
    assert_eq!(value, expires);
    assert!((before + 30 * 60 * 1000..before + 30 * 60 * 1000 + 2000).contains(&value));
    let pttl: i64 = h.con.pttl("PAUSE:c1").await.expect("pttl");
    assert!(
        (30 * 60 * 1000 - 2000..=30 * 60 * 1000).contains(&pttl),
        "{pttl}"
    );
    let reason: String = h.con.get("PAUSEMETA:c1").await.expect("meta");
    assert_eq!(reason, "manual");

    assert!(control::resume(&mut h.con, "c1").await.expect("resume"));
    let exists: bool = h.con.exists("PAUSE:c1").await.expect("exists");
    assert!(!exists);

    let got = collect(&mut events, schema::channel_pause(), SECOND / 2).await;
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(got[0]["contactId"], "c1");
    assert_eq!(got[0]["action"], "pause");
    assert_eq!(got[0]["expiresAt"], expires);
    assert_eq!(got[0]["reason"], "manual");
    assert_eq!(got[1]["action"], "resume");
    assert!(got[1]["expiresAt"].is_null());
}

#[tokio::test]
async fn any_pause_duration_is_allowed_and_the_default_is_an_hour() {
    let mut h = Harness::start().await;
    control::pause(&mut h.con, "c2", 8 * 3600 * 1000, PauseReason::Manual)
        .await
        .expect("pause 8h");
    let ttl: i64 = h.con.ttl("PAUSE:c2").await.expect("ttl");
    assert!((8 * 3600 - 2..=8 * 3600).contains(&ttl));
    assert_eq!(schema::DEFAULT_PAUSE_MS, 3_600_000);
    assert!(
        control::pause(&mut h.con, "c2", 0, PauseReason::Manual)
            .await
            .is_err()
    );
}

#[tokio::test]
async fn kill_switch_holds_activation_time_without_ttl() {
    let mut h = Harness::start().await;
    let mut events = h.subscribe().await;
    let at = control::kill_switch(&mut h.con, true).await.expect("on");
    let value: i64 = h.con.get(schema::pause_all()).await.expect("get");
    assert_eq!(value, at);
    assert!((store::now_ms() - at).abs() < 2000);
    let ttl: i64 = h.con.ttl(schema::pause_all()).await.expect("ttl");
    assert_eq!(ttl, -1, "PAUSE:ALL has no TTL");
    tokio::time::sleep(Duration::from_millis(20)).await;
    let again = control::kill_switch(&mut h.con, true)
        .await
        .expect("on again");
    assert_eq!(
        again, at,
        "switching on twice keeps the first activation time"
    );
    control::kill_switch(&mut h.con, false).await.expect("off");
    let exists: bool = h.con.exists(schema::pause_all()).await.expect("exists");
    assert!(!exists);
    let got = collect(&mut events, schema::channel_pause(), SECOND / 2).await;
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(got[0]["contactId"], "ALL");
    assert_eq!(got[0]["action"], "pause");
    assert_eq!(got[1]["action"], "resume");
}

#[tokio::test]
async fn replies_are_queued_published_and_kept_in_history() {
    let mut h = Harness::start().await;
    h.allow(&["alice"]).await;
    let mut events = h.subscribe().await;
    let (tx, handle) = spawn_worker(&h, "w1");
    h.send(&incoming("m1", "alice", "are we still on for dinner?"))
        .await;
    assert!(
        eventually(5 * SECOND, || {
            let mut con = h.con.clone();
            async move {
                let n: usize = con.xlen(schema::queue_responses()).await.ok()?;
                (n == 1).then_some(())
            }
        })
        .await
        .is_some(),
        "a reply within 5 s"
    );
    let responses = h.responses().await;
    let r = &responses[0];
    assert_eq!(r["contactId"], "alice");
    assert_eq!(r["inReplyTo"], "m1");
    assert_eq!(r["replyId"], "bot_m1");
    assert_eq!(r["persona"], "casual");
    assert!(!r["content"].is_empty());
    let delay: u64 = r["delayMs"].parse().expect("delay");
    assert!(delay >= 2000, "never an instant reply: {delay}");

    let msgs = collect(&mut events, schema::channel_messages(), SECOND / 2).await;
    assert_eq!(msgs.len(), 2, "{msgs:?}");
    assert_eq!(msgs[0]["messageId"], "m1");
    assert_eq!(msgs[0]["botSent"], false);
    assert_eq!(msgs[1]["messageId"], "bot_m1");
    assert_eq!(msgs[1]["botSent"], true);
    assert_eq!(msgs[1]["content"], r["content"].as_str());

    let history = store::snapshot::history(&mut h.con, "alice", 10)
        .await
        .expect("history");
    assert_eq!(history.len(), 2);
    assert_eq!(history[0].message_id, "m1");
    assert!(history[1].bot_sent);
    let status = stop(tx, handle).await;
    assert_eq!(status.answered, 1);
}

#[tokio::test]
async fn the_same_message_twice_is_answered_once() {
    let mut h = Harness::start().await;
    h.allow(&["bob"]).await;
    let (tx, handle) = spawn_worker(&h, "w1");
    let m = incoming("dup-1", "bob", "hello there, how are you?");
    h.send(&m).await;
    h.send(&m).await;
    h.send(&incoming("after", "bob", "ping")).await;
    eventually(5 * SECOND, || {
        let mut con = h.con.clone();
        async move {
            let v = common::handled(&mut con, "after").await;
            v.filter(|v| v != "seen")
        }
    })
    .await
    .expect("handled");
    assert_eq!(responses_len(&mut h).await, 2);
    // Handled ids live in hourly hashes that outlive their hour by one more.
    let buckets: Vec<String> = h.con.keys("HANDLED:*").await.expect("keys");
    assert!(!buckets.is_empty());
    for key in &buckets {
        let hour: i64 = key["HANDLED:".len()..].parse().expect("hour number");
        let expires_at: i64 = redis::cmd("PEXPIRETIME")
            .arg(key)
            .query_async(&mut h.con)
            .await
            .expect("pexpiretime");
        assert_eq!(expires_at, (hour + 2) * schema::HANDLED_BUCKET_MS, "{key}");
    }
    assert_eq!(
        common::handled(&mut h.con, "dup-1").await.as_deref(),
        Some("answered")
    );
    assert_eq!(common::streams::workers_pending(&mut h.con).await, 0);
    stop(tx, handle).await;
}

#[tokio::test]
async fn rate_limit_counts_atomically_and_auto_pauses_for_an_hour() {
    let mut h = Harness::start().await;
    h.allow(&["spammer"]).await;
    let mut events = h.subscribe().await;
    let (tx, handle) = spawn_worker(&h, "w1");
    for i in 0..12 {
        h.send(&incoming(
            &format!("s{i}"),
            "spammer",
            &format!("message number {i}"),
        ))
        .await;
    }
    let done = eventually(5 * SECOND, || {
        let mut con = h.con.clone();
        async move {
            let mut done = Vec::new();
            for i in 0..12 {
                done.push(common::handled(&mut con, &format!("s{i}")).await);
            }
            let all: Option<Vec<String>> = done.into_iter().collect();
            all.filter(|d| d.iter().all(|v| v != "seen"))
        }
    })
    .await
    .expect("all handled");
    // The first ten may be answered; a reply still being written when the pause
    // lands is withheld (the commit re-checks pauses). The 11th and 12th never are.
    let mut answered = 0;
    for (i, d) in done.iter().enumerate() {
        if i < 10 {
            assert!(d == "answered" || d == "skip:withheld", "s{i}: {d}");
            answered += usize::from(d == "answered");
        } else {
            assert!(d.starts_with("skip:"), "s{i}: {d}");
        }
    }
    assert_eq!(done[10], "skip:rate_limit");
    let count: i64 = h.con.get("COUNTER:spammer:msgs").await.expect("count");
    assert_eq!(count, 12);
    let ttl: i64 = h.con.ttl("COUNTER:spammer:msgs").await.expect("ttl");
    assert!((1..=60).contains(&ttl), "counter window TTL {ttl}");
    let pause_ttl: i64 = h.con.ttl("PAUSE:spammer").await.expect("ttl");
    assert!((3598..=3600).contains(&pause_ttl), "{pause_ttl}");
    let reason: String = h.con.get("PAUSEMETA:spammer").await.expect("meta");
    assert_eq!(reason, "rate_limit");
    assert!(answered >= 1);
    assert_eq!(
        responses_len(&mut h).await,
        answered,
        "one reply per answered message"
    );
    let pauses = collect(&mut events, schema::channel_pause(), SECOND / 2).await;
    assert_eq!(pauses.len(), 1, "one auto-pause event: {pauses:?}");
    assert_eq!(pauses[0]["reason"], "rate_limit");
    assert_eq!(pauses[0]["contactId"], "spammer");
    stop(tx, handle).await;
}

#[tokio::test]
async fn a_counter_left_without_ttl_gets_one() {
    let mut h = Harness::start().await;
    h.allow(&["c"]).await;
    // What the seed's INCR-then-EXPIRE leaves after a crash between the two calls.
    let _: () = h.con.set("COUNTER:c:msgs", 3).await.expect("set");
    let (tx, handle) = spawn_worker(&h, "w1");
    h.send(&incoming("x1", "c", "hi there friend")).await;
    handled_soon(&h, "x1").await;
    let ttl: i64 = h.con.ttl("COUNTER:c:msgs").await.expect("ttl");
    assert!((1..=60).contains(&ttl), "{ttl}");
    stop(tx, handle).await;
}

#[tokio::test]
async fn the_person_typing_pauses_the_contact_but_the_twins_echo_does_not() {
    let mut h = Harness::start().await;
    h.allow(&["carol", "dave"]).await;
    let mut events = h.subscribe().await;
    let mut config = h.config("w1");
    config.takeover = Duration::from_secs(20 * 60);
    let (tx, rx) = watch::channel(false);
    let handle =
        tokio::spawn(
            async move { worker::run_worker(&config, PersonaEngine::default(), rx).await },
        );

    // The gateway records what it sent for the twin; its echo comes back as fromMe.
    let _: () = h.con.set_ex("SENT:echo-1", 1, 3600).await.expect("sent");
    h.send(&typed_by_person("echo-1", "dave", "the twin's reply"))
        .await;
    h.send(&typed_by_person("me-1", "carol", "I'll take it from here"))
        .await;
    handled_soon(&h, "me-1").await;
    let ttl: i64 = h.con.ttl("PAUSE:carol").await.expect("ttl");
    assert!(
        (20 * 60 - 2..=20 * 60).contains(&ttl),
        "configurable takeover: {ttl}"
    );
    let reason: String = h.con.get("PAUSEMETA:carol").await.expect("meta");
    assert_eq!(reason, "takeover");
    let dave: bool = h.con.exists("PAUSE:dave").await.expect("exists");
    assert!(!dave, "the twin's own reply never counts as the person's");

    h.send(&incoming("c-2", "carol", "ok so what now?")).await;
    handled_soon(&h, "c-2").await;
    let done = common::handled(&mut h.con, "c-2").await.expect("done");
    assert_eq!(done, "skip:paused");
    assert_eq!(responses_len(&mut h).await, 0);

    let pauses = collect(&mut events, schema::channel_pause(), SECOND / 2).await;
    assert_eq!(pauses.len(), 1, "{pauses:?}");
    assert_eq!(pauses[0]["reason"], "takeover");
    let _ = tx.send(true);
    handle.await.expect("join").expect("worker");
}

#[tokio::test]
async fn only_enabled_contacts_are_answered() {
    let mut h = Harness::start().await;
    h.allow(&["friend"]).await;
    let (tx, handle) = spawn_worker(&h, "w1");
    h.send(&incoming("a", "stranger", "who is this?")).await;
    h.send(&incoming("b", "friend", "hey, free tonight?")).await;
    eventually(5 * SECOND, || {
        let mut con = h.con.clone();
        async move {
            let v = common::handled(&mut con, "b").await;
            v.filter(|v| v == "answered")
        }
    })
    .await
    .expect("friend answered");
    let stranger = common::handled(&mut h.con, "a").await.expect("done");
    assert_eq!(stranger, "skip:not_enabled");
    assert_eq!(responses_len(&mut h).await, 1);
    stop(tx, handle).await;
}

#[tokio::test]
async fn in_sleep_hours_messages_are_shown_but_not_answered() {
    let mut h = Harness::start().await;
    h.allow(&["owl"]).await;
    let mut events = h.subscribe().await;
    let mut config = h.config("w1");
    let night = common::sleep_window(true);
    config.sleep_hours = SleepSetting::Window(night);
    let (tx, rx) = watch::channel(false);
    let handle =
        tokio::spawn(
            async move { worker::run_worker(&config, PersonaEngine::default(), rx).await },
        );
    h.send(&incoming("n1", "owl", "you up?")).await;
    let state = handled_soon(&h, "n1").await;
    assert_eq!(state, "skip:sleep_hours");
    assert_eq!(responses_len(&mut h).await, 0);
    let shown = collect(&mut events, schema::channel_messages(), SECOND / 2).await;
    assert_eq!(shown.len(), 1, "the message is shown, no reply: {shown:?}");
    assert_eq!(shown[0]["messageId"], "n1");
    let status = stop(tx, handle).await;
    assert_eq!(status.asleep, Some(night));

    // Outside the window the same contact is answered.
    let mut config = h.config("w2");
    config.sleep_hours = SleepSetting::Window(common::sleep_window(false));
    let (tx, rx) = watch::channel(false);
    let handle =
        tokio::spawn(
            async move { worker::run_worker(&config, PersonaEngine::default(), rx).await },
        );
    h.send(&incoming("n2", "owl", "morning!")).await;
    let state = handled_soon(&h, "n2").await;
    assert_eq!(state, "answered");
    assert_eq!(stop(tx, handle).await.asleep, None);
}

#[tokio::test]
async fn after_redis_lost_its_state_the_twin_answers_nobody_until_told() {
    let mut h = Harness::start().await;
    // A fresh Redis: no state marker. Enabling a contact is not enough.
    store::optin::set_enabled(&mut h.con, &["erin".to_string()], true)
        .await
        .expect("enable");
    let mut events = h.subscribe().await;
    let (tx, handle) = spawn_worker(&h, "w1");
    h.send(&incoming("e1", "erin", "are you there?")).await;
    handled_soon(&h, "e1").await;
    let done = common::handled(&mut h.con, "e1").await.expect("done");
    assert_eq!(done, "skip:kill_switch");
    let kill: Option<i64> = h.con.get(schema::pause_all()).await.expect("get");
    assert!(kill.is_some(), "the worker switched the kill switch on");
    let pauses = collect(&mut events, schema::channel_pause(), SECOND / 2).await;
    assert_eq!(pauses[0]["contactId"], "ALL");
    assert_eq!(pauses[0]["reason"], "state_lost");

    control::kill_switch(&mut h.con, false).await.expect("off");
    h.send(&incoming("e2", "erin", "hello again?")).await;
    eventually(5 * SECOND, || {
        let mut con = h.con.clone();
        async move {
            let v = common::handled(&mut con, "e2").await;
            v.filter(|v| v == "answered")
        }
    })
    .await
    .expect("answered after kill off");
    stop(tx, handle).await;
}

#[tokio::test]
async fn kill_switch_withholds_replies_and_too_old_entries_go_to_review() {
    let mut h = Harness::start().await;
    h.allow(&["f"]).await;
    control::kill_switch(&mut h.con, true).await.expect("on");
    let (tx, handle) = spawn_worker(&h, "w1");
    h.send(&incoming("k1", "f", "anyone home?")).await;
    let mut old = incoming("old", "f", "sent long ago");
    old.timestamp -= 6 * 60 * 1000;
    h.send(&old).await;
    eventually(5 * SECOND, || {
        let mut con = h.con.clone();
        async move {
            let n: usize = con.xlen(schema::queue_deadletter()).await.ok()?;
            let done = common::handled(&mut con, "k1").await;
            (n == 1 && done.is_some()).then_some(())
        }
    })
    .await
    .expect("handled");
    assert_eq!(responses_len(&mut h).await, 0);
    let dead = h.dead_letters().await;
    assert!(dead[0]["reason"].contains("expired"), "{:?}", dead[0]);
    assert_eq!(dead[0]["messageId"], "old");
    stop(tx, handle).await;
}

#[tokio::test]
async fn malformed_entries_are_dead_lettered_with_reasons_and_good_ones_answered() {
    let mut h = Harness::start().await;
    h.allow(&["g"]).await;
    let now = store::now_ms().to_string();
    let now = now.as_bytes();
    let big = vec![b'x'; 70_000];
    type Fields<'a> = Vec<(&'a str, &'a [u8])>;
    let corpus: Vec<(&str, Fields)> = vec![
        (
            "`contactId` is missing",
            vec![
                ("messageId", b"bad1"),
                ("content", b"x"),
                ("timestamp", now),
                ("direction", b"incoming"),
                ("fromMe", b"false"),
            ],
        ),
        (
            "`timestamp`",
            vec![
                ("messageId", b"bad2"),
                ("contactId", b"g"),
                ("content", b"x"),
                ("timestamp", b"yesterday"),
                ("direction", b"incoming"),
                ("fromMe", b"false"),
            ],
        ),
        (
            "`direction`",
            vec![
                ("messageId", b"bad3"),
                ("contactId", b"g"),
                ("content", b"x"),
                ("timestamp", now),
                ("direction", b"sideways"),
                ("fromMe", b"false"),
            ],
        ),
        (
            "`fromMe`",
            vec![
                ("messageId", b"bad4"),
                ("contactId", b"g"),
                ("content", b"x"),
                ("timestamp", now),
                ("direction", b"incoming"),
                ("fromMe", b"maybe"),
            ],
        ),
        (
            "`content`",
            vec![
                ("messageId", b"bad5"),
                ("contactId", b"g"),
                ("content", &big),
                ("timestamp", now),
                ("direction", b"incoming"),
                ("fromMe", b"false"),
            ],
        ),
        (
            "UTF-8",
            vec![
                ("messageId", b"bad6"),
                ("contactId", b"g"),
                ("content", b"\xff\xfe"),
                ("timestamp", now),
                ("direction", b"incoming"),
                ("fromMe", b"false"),
            ],
        ),
    ];
    let mut ids = Vec::new();
    h.send(&incoming("good-1", "g", "first good one, hello"))
        .await;
    for (_, fields) in &corpus {
        ids.push(h.send_raw(fields).await);
    }
    h.send(&incoming("good-2", "g", "second good one, hello"))
        .await;
    let (tx, handle) = spawn_worker(&h, "w1");
    eventually(5 * SECOND, || {
        let mut con = h.con.clone();
        async move {
            let n: usize = con.xlen(schema::queue_responses()).await.ok()?;
            (n == 2).then_some(())
        }
    })
    .await
    .expect("both good entries answered");
    let dead = h.dead_letters().await;
    assert_eq!(dead.len(), corpus.len());
    for ((expect, _), (id, letter)) in corpus.iter().zip(ids.iter().zip(&dead)) {
        assert_eq!(&letter["sourceId"], id);
        assert!(letter["reason"].contains(id.as_str()), "{letter:?}");
        assert!(letter["reason"].contains(expect), "{expect}: {letter:?}");
    }
    let status = stop(tx, handle).await;
    assert_eq!(status.dead_lettered, corpus.len() as u64);
    assert_eq!(status.answered, 2);
}

#[tokio::test]
async fn session_is_sealed_with_a_24h_ttl() {
    let mut h = Harness::start().await;
    let key = SessionKey::generate();
    let connected = store::now_ms();
    session::write(
        &mut h.con,
        "user-1",
        &key,
        b"whatsapp-secret-creds",
        connected,
    )
    .await
    .expect("write");
    let fields: std::collections::HashMap<String, String> =
        h.con.hgetall("SESSION:user-1").await.expect("hgetall");
    assert_eq!(fields.len(), 3);
    assert_eq!(fields["connectedAt"], connected.to_string());
    assert_eq!(fields["expiresAt"], (connected + 86_400_000).to_string());
    assert!(fields["token"].starts_with("v1."));
    assert!(!fields["token"].contains("whatsapp-secret-creds"));
    let ttl: i64 = h.con.ttl("SESSION:user-1").await.expect("ttl");
    assert!((86_398..=86_400).contains(&ttl));
    let plain = session::open_token(&mut h.con, "user-1", &key)
        .await
        .expect("open")
        .expect("present");
    assert_eq!(plain, b"whatsapp-secret-creds");
    let wrong = session::open_token(&mut h.con, "user-1", &SessionKey::generate())
        .await
        .expect_err("wrong key");
    assert!(format!("{wrong:#}").contains("does not open"), "{wrong:#}");
    // Moving the token to another user's key does not open it.
    let _: () = h
        .con
        .hset_multiple("SESSION:user-2", &[("token", fields["token"].as_str())])
        .await
        .expect("copy");
    assert!(
        session::open_token(&mut h.con, "user-2", &key)
            .await
            .is_err()
    );
}

#[tokio::test]
async fn persona_cache_has_the_seed_shape_and_rebuilds_on_a_miss() {
    let mut h = Harness::start().await;
    let p = persona::cached(&mut h.con, "professional")
        .await
        .expect("persona");
    assert_eq!(p.tone, "formal");
    let raw: String = h.con.get("CACHE:persona:professional").await.expect("get");
    let json: serde_json::Value = serde_json::from_str(&raw).expect("json");
    let mut keys: Vec<&str> = json
        .as_object()
        .expect("object")
        .keys()
        .map(|k| k.as_str())
        .collect();
    keys.sort();
    assert_eq!(keys, ["exampleMessages", "styleGuide", "tone"]);
    let ttl: i64 = h.con.ttl("CACHE:persona:professional").await.expect("ttl");
    assert!((1798..=1800).contains(&ttl));
    let _: () = h
        .con
        .set("CACHE:persona:professional", "{not json")
        .await
        .expect("corrupt");
    let again = persona::cached(&mut h.con, "professional")
        .await
        .expect("rebuilt");
    assert_eq!(again, p);
    assert!(persona::cached(&mut h.con, "nobody").await.is_err());
}

/// How `id` was handled, waiting up to 5 s for it.
async fn handled_soon(h: &Harness, id: &str) -> String {
    eventually(5 * SECOND, || {
        let mut con = h.con.clone();
        async move { common::handled(&mut con, id).await }
    })
    .await
    .expect("handled")
}
