//! The operator's decisions on drafts against a real redis-server and the real
//! worker: approve exactly once (also from two tasks at once, also edited, also
//! while paused), discard, expiry to the dead-letter stream, a draft written
//! again, and the operator's own words with the takeover pause.

use redis::AsyncCommands;
use secondme::connection::Con;
use secondme::schema::drafts as keys;
use secondme::schema::{self, PauseReason};
use secondme::store::drafts::{self, Decision};
use secondme::store::{self, control};

use crate::common::{Harness, collect, eventually, handled, incoming, streams};
use crate::{
    ALICE, Numbered, SECOND, draft_events, draft_for, draft_hash, drafting_worker, drafts_index,
    history, responses, send, settings, start, subscribe, until_settled, worker_config,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_approvals_at_once_send_the_draft_exactly_once() {
    let mut h = Harness::start().await;
    h.allow(&[ALICE]).await;
    let w = drafting_worker(&h, Numbered::instant()).await;
    send(&mut h, &incoming("m1", ALICE, "see you at 8?")).await;
    let d = draft_for(&h, ALICE, "m1").await;
    let mut events = subscribe(&h).await;

    let approve = |con: Con| async move {
        let mut con = con;
        drafts::approve(&mut con, "draft_m1", None).await
    };
    let client = secondme::connection::open_client(&h.server.url()).expect("client");
    let other = secondme::connection::manager(&client, None)
        .await
        .expect("second connection");
    let a = tokio::spawn(approve(h.con.clone()));
    let b = tokio::spawn(approve(other));
    let mut decisions = vec![
        a.await.expect("join").expect("approve"),
        b.await.expect("join").expect("approve"),
    ];
    decisions.sort_by_key(|d| *d == Decision::Gone);
    assert_eq!(decisions, [Decision::Done, Decision::Gone]);

    let sent = responses(&mut h).await;
    assert_eq!(sent.len(), 1, "{sent:?}");
    let r = &sent[0];
    assert_eq!(r["replyId"], "bot_m1");
    assert_eq!(r["contactId"], ALICE);
    assert_eq!(r["content"], d["content"]);
    assert_eq!(r["inReplyTo"], "m1");
    assert_eq!(r["persona"], d["persona"]);
    assert_eq!(r["delayMs"], "0", "no long typing delay once approved");
    assert!(!r.contains_key("fromOwner"));
    assert!(draft_hash(&mut h.con, ALICE).await.is_empty());
    assert!(drafts_index(&mut h.con).await.is_empty());
    let said = history(&mut h.con, ALICE).await;
    assert_eq!(said[0]["messageId"], "bot_m1");
    assert_eq!(said[0]["botSent"], true);
    assert_eq!(said[0]["content"], d["content"].as_str());
    let got = draft_events(&collect(&mut events, keys::channel_drafts(), SECOND / 2).await);
    let kinds: Vec<&str> = got.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds, ["approved"]);
    assert_eq!(
        drafts::approve(&mut h.con, "draft_m1", None)
            .await
            .expect("approve"),
        Decision::Gone
    );
    w.stop().await;
}

#[tokio::test]
async fn an_edited_draft_sends_the_edited_text_even_while_the_contact_is_paused() {
    let mut h = Harness::start().await;
    h.allow(&[ALICE]).await;
    let w = drafting_worker(&h, Numbered::instant()).await;
    send(&mut h, &incoming("m1", ALICE, "what time?")).await;
    draft_for(&h, ALICE, "m1").await;
    control::pause(&mut h.con, ALICE, 60_000, PauseReason::Manual)
        .await
        .expect("pause");
    let edited = "好的，八点见 👋🏽 café\nbis später";
    let decided = drafts::approve(&mut h.con, "draft_m1", Some(edited))
        .await
        .expect("approve");
    assert_eq!(decided, Decision::Done);
    let sent = responses(&mut h).await;
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0]["content"], edited);
    assert_eq!(history(&mut h.con, ALICE).await[0]["content"], edited);
    let paused: bool = h
        .con
        .exists(schema::pause_key(ALICE))
        .await
        .expect("exists");
    assert!(paused, "approving does not lift the pause");
    assert!(
        drafts::approve(&mut h.con, "draft_m1", Some("   "))
            .await
            .is_err(),
        "empty text is refused"
    );
    w.stop().await;
}

#[tokio::test]
async fn a_discarded_draft_is_never_sent() {
    let mut h = Harness::start().await;
    h.allow(&[ALICE]).await;
    let w = drafting_worker(&h, Numbered::instant()).await;
    send(&mut h, &incoming("m1", ALICE, "lend me 500?")).await;
    draft_for(&h, ALICE, "m1").await;
    let mut events = subscribe(&h).await;
    let discarded = drafts::discard(&mut h.con, "draft_m1")
        .await
        .expect("discard");
    assert_eq!(discarded, Decision::Done);
    assert_eq!(
        drafts::approve(&mut h.con, "draft_m1", None)
            .await
            .expect("approve"),
        Decision::Gone
    );
    assert_eq!(
        drafts::discard(&mut h.con, "draft_m1")
            .await
            .expect("discard"),
        Decision::Gone
    );
    tokio::time::sleep(SECOND).await;
    assert!(responses(&mut h).await.is_empty());
    assert!(drafts::list(&mut h.con).await.expect("list").is_empty());
    let got = draft_events(&collect(&mut events, keys::channel_drafts(), SECOND / 2).await);
    let kinds: Vec<&str> = got.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds, ["discarded"]);
    w.stop().await;
}

#[tokio::test]
async fn a_draft_not_decided_in_time_expires_to_the_dead_letters_unsent() {
    let mut h = Harness::start().await;
    h.allow(&[ALICE]).await;
    let mut events = subscribe(&h).await;
    let c = settings(&h, "w-ttl", Some("draft"), Some("1s"));
    let w = start(&h, Numbered::instant(), worker_config(&c)).await;
    let sid = send(&mut h, &incoming("m1", ALICE, "call me")).await;
    let d = draft_for(&h, ALICE, "m1").await;
    let letters = eventually(5 * SECOND, || {
        let mut con = h.con.clone();
        async move {
            let l = streams::entries(&mut con, schema::queue_deadletter()).await;
            (!l.is_empty()).then_some(l)
        }
    })
    .await
    .expect("the expired draft is dead-lettered");
    assert_eq!(letters.len(), 1);
    let l = &letters[0];
    assert_eq!(l["reason"], "expired");
    assert_eq!(l["sourceId"], sid);
    assert_eq!(l["draftId"], "draft_m1");
    assert_eq!(l["contactId"], ALICE);
    assert_eq!(l["content"], d["content"]);
    let at: i64 = l["at"].parse().expect("ms");
    assert!(at >= d["expiresAt"].parse::<i64>().expect("ms"));
    assert!(draft_hash(&mut h.con, ALICE).await.is_empty());
    assert!(drafts_index(&mut h.con).await.is_empty());
    assert_eq!(
        drafts::approve(&mut h.con, "draft_m1", None)
            .await
            .expect("approve"),
        Decision::Gone
    );
    assert!(responses(&mut h).await.is_empty(), "never sent");
    let got = draft_events(&collect(&mut events, keys::channel_drafts(), SECOND / 2).await);
    let kinds: Vec<&str> = got.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds, ["created", "expired"]);
    w.stop().await;
}

#[tokio::test]
async fn regenerate_writes_a_new_draft_for_the_latest_message() {
    let mut h = Harness::start().await;
    h.allow(&[ALICE]).await;
    let engine = Numbered::instant();
    let w = drafting_worker(&h, engine.clone()).await;
    send(&mut h, &incoming("m1", ALICE, "what's the plan?")).await;
    let old = draft_for(&h, ALICE, "m1").await;
    assert_eq!(old["content"], "reply 1 to what's the plan?");
    let mut events = subscribe(&h).await;
    let asked = drafts::regenerate(&mut h.con, "draft_m1")
        .await
        .expect("regenerate");
    assert_eq!(asked, Decision::Done);
    let new = eventually(10 * SECOND, || {
        let mut con = h.con.clone();
        async move {
            let d = draft_hash(&mut con, ALICE).await;
            (d.get("content").map(String::as_str) == Some("reply 2 to what's the plan?"))
                .then_some(d)
        }
    })
    .await
    .expect("a new draft");
    assert_eq!(new["draftId"], "draft_m1");
    assert_eq!(new["inReplyTo"], "m1");
    assert_eq!(new["streamId"], old["streamId"]);
    let regen: usize = h.con.hlen(keys::regenerate_key()).await.expect("hlen");
    assert_eq!(regen, 0, "the request was taken");
    let got = draft_events(&collect(&mut events, keys::channel_drafts(), SECOND / 2).await);
    let kinds: Vec<&str> = got.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds, ["regenerate", "replaced"]);
    assert_eq!(
        drafts::regenerate(&mut h.con, "draft_nothing")
            .await
            .expect("regenerate"),
        Decision::Gone
    );
    assert!(responses(&mut h).await.is_empty());
    w.stop().await;
}

#[tokio::test]
async fn the_owners_words_go_out_as_the_owner_and_the_twin_steps_back() {
    let mut h = Harness::start().await;
    h.allow(&[ALICE]).await;
    let mut events = subscribe(&h).await;
    let before = store::now_ms();
    let text = "on my way — 5 min 🚲";
    let reply_id = drafts::send_as_owner(&mut h.con, "bob", text)
        .await
        .expect("send to a contact who is not enabled");
    assert!(reply_id.starts_with("own_"), "{reply_id}");
    let sent = responses(&mut h).await;
    assert_eq!(sent.len(), 1);
    let r = &sent[0];
    assert_eq!(r["replyId"], reply_id);
    assert_eq!(r["contactId"], "bob");
    assert_eq!(r["content"], text);
    assert_eq!(r["fromOwner"], "true");
    assert_eq!(r["delayMs"], "0");

    let until: i64 = h.con.get(schema::pause_key("bob")).await.expect("paused");
    assert!((before + 3_600_000..store::now_ms() + 3_600_000 + 1).contains(&until));
    let pttl: i64 = h.con.pttl(schema::pause_key("bob")).await.expect("pttl");
    assert!((3_590_000..=3_600_000).contains(&pttl), "{pttl}");
    let reason: String = h
        .con
        .get(schema::pause_meta_key("bob"))
        .await
        .expect("meta");
    assert_eq!(reason, "takeover");
    let said = history(&mut h.con, "bob").await;
    assert_eq!(said[0]["messageId"], reply_id.as_str());
    assert_eq!(said[0]["fromMe"], true);
    assert_eq!(said[0]["botSent"], false);
    let pauses = collect(&mut events, schema::channel_pause(), SECOND / 2).await;
    assert_eq!(pauses.len(), 1);
    assert_eq!(pauses[0]["reason"], "takeover");
    assert_eq!(pauses[0]["expiresAt"], until);

    // An enabled contact: the twin then leaves them alone, as after a takeover.
    drafts::send_as_owner_for(&mut h.con, ALICE, "I'll answer this one", 10 * SECOND)
        .await
        .expect("send");
    let pttl: i64 = h.con.pttl(schema::pause_key(ALICE)).await.expect("pttl");
    assert!((9_000..=10_000).contains(&pttl), "{pttl}");
    let w = start(
        &h,
        Numbered::instant(),
        worker_config(&settings(&h, "w-own", None, None)),
    )
    .await;
    send(&mut h, &incoming("m1", ALICE, "ok?")).await;
    until_settled(&h).await;
    assert_eq!(
        handled(&mut h.con, "m1").await.as_deref(),
        Some("skip:paused")
    );
    assert_eq!(responses(&mut h).await.len(), 2, "only the owner's words");
    assert!(
        drafts::send_as_owner(&mut h.con, ALICE, "").await.is_err(),
        "nothing to send"
    );
    w.stop().await;
}
