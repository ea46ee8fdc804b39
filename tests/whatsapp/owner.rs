//! The operator's own words (`fromOwner`): sent as the person, without
//! "typing...", to a contact paused by the takeover and not enabled; their echo
//! counted once, by a real worker, as the twin's replies' echoes are.

use std::time::Duration;

use redis::AsyncCommands;
use secondme::reply::persona_engine::PersonaEngine;
use secondme::schema;
use secondme::store::drafts;
use secondme::worker;
use serde_json::Value;
use tokio::sync::watch;

use crate::common::{Harness, collect, eventually, handled};
use crate::setup::{CONTACT, Setup, met_a_contact, pending_replies, sent_times};

/// Waits until the worker recorded `message_id` as `want`.
async fn wait_handled(h: &Harness, message_id: &str, want: &str) {
    let con = h.con.clone();
    let state = eventually(Duration::from_secs(10), || {
        let mut con = con.clone();
        async move { handled(&mut con, message_id).await.filter(|s| s == want) }
    })
    .await;
    assert_eq!(state.as_deref(), Some(want), "{message_id}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_owner_s_words_go_without_typing_and_their_echo_counts_once() {
    let mut h = Harness::start().await;
    h.allow(&[]).await;
    let mut events = h.subscribe().await;
    let run = met_a_contact(&mut h, Setup::default(), "dinner?").await;
    let config = h.config("w1");
    let (stop, stop_rx) = watch::channel(false);
    let worker = tokio::spawn(async move {
        worker::run_worker(&config, PersonaEngine::default(), stop_rx).await
    });
    wait_handled(&h, &format!("{CONTACT}.A1"), "skip:not_enabled").await;

    let reply_id = drafts::send_as_owner(&mut h.con, CONTACT, "on my way")
        .await
        .expect("send as the owner");
    assert!(!reply_id.is_empty());
    let ids = sent_times(&run, "on my way", 1).await;
    let echo_id = format!("{CONTACT}.{}", ids[0]);
    wait_handled(&h, &echo_id, "echo").await;

    let calls = run.fake.calls();
    assert!(
        !calls
            .iter()
            .any(|c| c.starts_with("composing") || c.starts_with("paused")),
        "no typing presence around the owner's words: {calls:?}"
    );
    assert_eq!(
        calls.iter().filter(|c| c.starts_with("send")).count(),
        1,
        "{calls:?}"
    );
    assert_eq!(pending_replies(&mut h).await, 0, "acknowledged");

    let history: Vec<String> = h
        .con
        .lrange(schema::history_key(CONTACT), 0, -1)
        .await
        .expect("LRANGE");
    let owners: Vec<Value> = history
        .iter()
        .map(|raw| serde_json::from_str::<Value>(raw).expect("a history entry is JSON"))
        .filter(|e| e["content"] == "on my way")
        .collect();
    assert_eq!(owners.len(), 1, "the owner's words once: {history:?}");
    assert_eq!(history.len(), 2, "the contact's message and the owner's");

    let pauses: Vec<Value> = collect(
        &mut events,
        schema::channel_pause(),
        Duration::from_millis(500),
    )
    .await
    .into_iter()
    .filter(|e| e["contactId"] == CONTACT && e["action"] == "pause")
    .collect();
    assert_eq!(pauses.len(), 1, "one takeover: {pauses:?}");
    assert_eq!(pauses[0]["reason"], "takeover");
    let reason: Option<String> = h
        .con
        .get(schema::pause_meta_key(CONTACT))
        .await
        .expect("GET");
    assert_eq!(reason.as_deref(), Some("takeover"));

    let _ = stop.send(true);
    let _ = worker.await;
    run.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approved_draft_goes_to_a_paused_contact_and_its_echo_counts_once() {
    let mut h = Harness::start().await;
    h.allow(&[CONTACT]).await;
    drafts::set_mode(&mut h.con, &[CONTACT.to_owned()], drafts::ReplyMode::Draft)
        .await
        .expect("draft mode");
    let run = met_a_contact(&mut h, Setup::default(), "dinner?").await;
    let config = h.config("w1");
    let (stop, stop_rx) = watch::channel(false);
    let worker = tokio::spawn(async move {
        worker::run_worker(&config, PersonaEngine::default(), stop_rx).await
    });
    let message_id = format!("{CONTACT}.A1");
    let con = h.con.clone();
    let draft = eventually(Duration::from_secs(10), || {
        let mut con = con.clone();
        async move {
            let content: Option<String> = con
                .hget(schema::drafts::draft_key(CONTACT), "content")
                .await
                .ok()?;
            content
        }
    })
    .await
    .expect("a draft");
    secondme::store::control::pause(&mut h.con, CONTACT, 3_600_000, schema::PauseReason::Manual)
        .await
        .expect("pause");

    let decided = drafts::approve(&mut h.con, &schema::drafts::draft_id(&message_id), None)
        .await
        .expect("approve");
    assert_eq!(decided, drafts::Decision::Done);
    let ids = sent_times(&run, &draft, 1).await;
    wait_handled(&h, &format!("{CONTACT}.{}", ids[0]), "echo").await;
    let history: Vec<String> = h
        .con
        .lrange(schema::history_key(CONTACT), 0, -1)
        .await
        .expect("LRANGE");
    let replies = history
        .iter()
        .filter(|raw| {
            serde_json::from_str::<Value>(raw).expect("JSON")["content"] == draft.as_str()
        })
        .count();
    assert_eq!(replies, 1, "the approved reply once: {history:?}");
    assert_eq!(history.len(), 2, "the message and the reply");
    let paused: bool = h
        .con
        .exists(schema::pause_key(CONTACT))
        .await
        .expect("EXISTS");
    assert!(paused, "the operator's pause stays");
    assert_eq!(pending_replies(&mut h).await, 0, "acknowledged");

    let _ = stop.send(true);
    let _ = worker.await;
    run.finish().await;
}
