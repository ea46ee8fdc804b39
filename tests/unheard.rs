//! Voice notes and photos the twin could not understand (`SECONDME:unheard`),
//! through a real worker on a real redis-server: counted apart from the
//! messages not answered, so the twin's next reply to the contact (by the
//! decide step or, for a slower engine, the commit step) leaves the count, which
//! only the operator (dismissing it, approving a draft, their own words) or the
//! person (their own message) clears, and `forget` removes; the control room's
//! reading sums both hashes; a key of another type costs a warning and the note
//! is still handled.

mod common;
#[path = "common/logs.rs"]
mod logs;

use std::collections::HashMap;
use std::time::Duration;

use common::media::{self, handled_soon};
use common::worker::Running;
use common::{Harness, incoming, typed_by_person};
use logs::Captured;
use redis::AsyncCommands;
use secondme::learn::LearnConfig;
use secondme::reply::persona_engine::PersonaEngine;
use secondme::reply::{Reply, ReplyEngine, ReplyRequest};
use secondme::schema;
use secondme::store::drafts::{self, Decision, ReplyMode};
use secondme::store::{learned, unanswered};
use secondme::worker::WorkerConfig;

fn worker_config(h: &Harness, consumer: &str) -> WorkerConfig {
    let cfg = media::quick_claims(h, consumer);
    assert!(
        cfg.media.stt.is_none(),
        "no transcription endpoint: every voice note is unreadable"
    );
    cfg
}

/// The template engine: answers at once, in the decide step.
fn instant() -> PersonaEngine {
    PersonaEngine::new(&LearnConfig::default())
}

/// A language model's pace: its replies go out through the commit step.
struct Slow;

impl ReplyEngine for Slow {
    async fn reply(&self, request: &ReplyRequest<'_>) -> anyhow::Result<Reply> {
        tokio::time::sleep(Duration::from_millis(100)).await;
        Ok(Reply {
            content: format!("re: {}", request.message.content),
            delay_ms: 0,
        })
    }

    fn instant(&self) -> bool {
        false
    }
}

/// A voice note as a gateway writes it whose bytes are gone (`MEDIA:` absent):
/// with no transcription endpoint either, the twin cannot hear it.
async fn voice_note(h: &mut Harness, id: &str, contact: &str) {
    media::send_entry(h, &incoming(id, contact, ""), "audio/ogg", Some(9)).await;
}

/// The contact's field in `key`.
async fn field(h: &mut Harness, key: &str, contact: &str) -> Option<u64> {
    h.con.hget(key, contact).await.expect("HGET")
}

async fn unheard(h: &mut Harness, contact: &str) -> Option<u64> {
    field(h, schema::unheard(), contact).await
}

async fn not_answered(h: &mut Harness, contact: &str) -> Option<u64> {
    field(h, schema::unanswered(), contact).await
}

/// What the control room reads for the contacts.
async fn shown(h: &mut Harness) -> HashMap<String, u64> {
    let read = unanswered::read(&mut h.con).await.expect("read");
    assert!(read.foreign.is_empty(), "{:?}", read.foreign);
    read.by_contact
}

fn counts(pairs: &[(&str, u64)]) -> HashMap<String, u64> {
    pairs.iter().map(|(c, n)| ((*c).to_owned(), *n)).collect()
}

/// A voice note nobody heard, then a text the twin answers: the reply clears
/// what the twin did not answer, never what it did not hear.
async fn the_twins_reply_leaves_the_count<E: ReplyEngine>(engine: E) {
    let mut h = Harness::start().await;
    h.allow(&["alice"]).await;
    let w = Running::start(&h.server.url(), engine, worker_config(&h, "w1")).await;
    voice_note(&mut h, "v1", "alice").await;
    assert_eq!(handled_soon(&h, "v1").await, "skip:unreadable");
    assert_eq!(unheard(&mut h, "alice").await, Some(1));
    assert_eq!(
        not_answered(&mut h, "alice").await,
        None,
        "counted as unheard, not as unanswered"
    );

    h.send(&incoming("t1", "alice", "hello?")).await;
    assert_eq!(handled_soon(&h, "t1").await, "answered");
    let replies = h.responses().await;
    assert_eq!(replies.len(), 1, "{replies:?}");
    assert_eq!(replies[0]["inReplyTo"], "t1");
    assert_eq!(
        unheard(&mut h, "alice").await,
        Some(1),
        "the twin answering the text does not mean anyone heard the voice note"
    );
    assert_eq!(shown(&mut h).await, counts(&[("alice", 1)]));

    // A second note adds up.
    voice_note(&mut h, "v2", "alice").await;
    assert_eq!(handled_soon(&h, "v2").await, "skip:unreadable");
    assert_eq!(unheard(&mut h, "alice").await, Some(2));

    // The operator's `u`.
    assert!(
        unanswered::dismiss(&mut h.con, "alice")
            .await
            .expect("dismiss")
    );
    assert_eq!(unheard(&mut h, "alice").await, None);
    assert_eq!(shown(&mut h).await, HashMap::new());
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instant_reply_leaves_the_unheard_count_and_the_operator_dismisses_it() {
    the_twins_reply_leaves_the_count(instant()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_committed_reply_leaves_the_unheard_count_and_the_operator_dismisses_it() {
    the_twins_reply_leaves_the_count(Slow).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_person_or_the_operator_writing_to_the_contact_clears_it() {
    let mut h = Harness::start().await;
    h.allow(&["alice", "bob", "carol"]).await;
    drafts::set_mode(&mut h.con, &["carol".to_owned()], ReplyMode::Draft)
        .await
        .expect("draft mode");
    let w = Running::start(&h.server.url(), instant(), worker_config(&h, "w1")).await;
    for (id, contact) in [("va", "alice"), ("vb", "bob"), ("vc", "carol")] {
        voice_note(&mut h, id, contact).await;
        assert_eq!(handled_soon(&h, id).await, "skip:unreadable");
        assert_eq!(unheard(&mut h, contact).await, Some(1), "{contact}");
    }

    // The person answers alice on the phone.
    h.send(&typed_by_person("pa", "alice", "I'll call you"))
        .await;
    assert_eq!(handled_soon(&h, "pa").await, "takeover");
    assert_eq!(unheard(&mut h, "alice").await, None, "the person saw it");

    // The operator writes to bob in their own words.
    drafts::send_as_owner(&mut h.con, "bob", "listening now")
        .await
        .expect("own words");
    assert_eq!(unheard(&mut h, "bob").await, None, "the operator saw it");

    // The twin drafts a reply to carol's next text: still unheard until the
    // operator, who read the conversation to decide, approves it.
    h.send(&incoming("tc", "carol", "did you get it?")).await;
    assert_eq!(handled_soon(&h, "tc").await, "drafted");
    assert_eq!(
        unheard(&mut h, "carol").await,
        Some(1),
        "a draft is no look"
    );
    assert_eq!(
        drafts::approve(&mut h.con, "draft_tc", None)
            .await
            .expect("approve"),
        Decision::Done
    );
    assert_eq!(unheard(&mut h, "carol").await, None);

    let exists: bool = h.con.exists(schema::unheard()).await.expect("EXISTS");
    assert!(!exists, "nothing left");
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_control_room_reads_both_counts_summed_and_dismisses_both() {
    let mut h = Harness::start().await;
    let _: () = h
        .con
        .hset_multiple(schema::unanswered(), &[("alice", 2), ("bob", 1)])
        .await
        .expect("HSET");
    let _: () = h
        .con
        .hset_multiple(schema::unheard(), &[("alice", "1"), ("carol", "lots")])
        .await
        .expect("HSET");
    assert_eq!(
        shown(&mut h).await,
        counts(&[("alice", 3), ("bob", 1), ("carol", 1)])
    );
    assert!(
        unanswered::dismiss(&mut h.con, "alice")
            .await
            .expect("dismiss")
    );
    assert_eq!(not_answered(&mut h, "alice").await, None);
    assert_eq!(unheard(&mut h, "alice").await, None);
    assert!(
        unanswered::dismiss(&mut h.con, "carol")
            .await
            .expect("dismiss"),
        "a count in the unheard hash alone is one to dismiss"
    );
    assert_eq!(shown(&mut h).await, counts(&[("bob", 1)]));
    let _: () = h.con.hset(schema::unheard(), "bob", 4).await.expect("HSET");
    assert_eq!(
        unanswered::dismiss_all(&mut h.con).await.expect("all"),
        1,
        "one contact, counted in both"
    );
    let left: u64 = h
        .con
        .exists(&[schema::unanswered(), schema::unheard()])
        .await
        .expect("EXISTS");
    assert_eq!(left, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forget_removes_the_contacts_unheard_count() {
    let mut h = Harness::start().await;
    h.allow(&["alice", "bob"]).await;
    let w = Running::start(&h.server.url(), instant(), worker_config(&h, "w1")).await;
    voice_note(&mut h, "va", "alice").await;
    voice_note(&mut h, "vb", "bob").await;
    assert_eq!(handled_soon(&h, "va").await, "skip:unreadable");
    assert_eq!(handled_soon(&h, "vb").await, "skip:unreadable");
    w.stop().await;
    let _: () = h
        .con
        .hset(schema::unanswered(), "alice", 2)
        .await
        .expect("HSET");
    assert_eq!(shown(&mut h).await, counts(&[("alice", 3), ("bob", 1)]));

    learned::forget(&mut h.con, "alice").await.expect("forget");
    assert_eq!(unheard(&mut h, "alice").await, None);
    assert_eq!(not_answered(&mut h, "alice").await, None);
    assert_eq!(unheard(&mut h, "bob").await, Some(1), "bob's stays");
}

// One thread, so the worker's task logs to this test's subscriber.
#[tokio::test(flavor = "current_thread")]
async fn an_unheard_key_of_another_type_is_a_warning_and_the_note_is_still_handled() {
    let captured = Captured::start(tracing::Level::INFO);
    let mut h = Harness::start().await;
    h.allow(&["alice"]).await;
    let key = schema::unheard();
    let _: () = h.con.rpush(key, "another program's").await.expect("RPUSH");
    let w = Running::start(&h.server.url(), instant(), worker_config(&h, "w1")).await;
    voice_note(&mut h, "v1", "alice").await;
    assert_eq!(handled_soon(&h, "v1").await, "skip:unreadable");
    h.send(&incoming("t1", "alice", "hello?")).await;
    assert_eq!(handled_soon(&h, "t1").await, "answered", "the twin goes on");
    let status = w.stop().await;
    assert_eq!(status.dead_lettered, 0, "nothing failed");
    let letters = h.dead_letters().await;
    assert!(letters.is_empty(), "{letters:?}");
    let kept: Vec<String> = h.con.lrange(key, 0, -1).await.expect("LRANGE");
    assert_eq!(kept, ["another program's"], "left as it was");
    let log = captured.text();
    assert!(
        log.lines().any(|l| l.contains("a best-effort write failed")
            && l.contains(key)
            && l.contains("WRONGTYPE")),
        "the worker says it:\n{log}"
    );

    // The control room says it and still reads the other hash; the operator's
    // dismiss clears that one and says the other.
    let _: () = h
        .con
        .hset(schema::unanswered(), "alice", 2)
        .await
        .expect("HSET");
    let read = unanswered::read(&mut h.con).await.expect("read");
    assert_eq!(read.by_contact, counts(&[("alice", 2)]));
    let said: Vec<String> = read.foreign.iter().map(ToString::to_string).collect();
    assert_eq!(said.len(), 1, "{said:?}");
    assert!(
        said[0].contains(&format!("{key} holds a list, not a hash")),
        "{said:?}"
    );
    let dismissed = unanswered::dismiss(&mut h.con, "alice").await;
    assert!(
        matches!(dismissed, Err(unanswered::Error::Foreign { .. })),
        "{dismissed:?}"
    );
    assert_eq!(
        not_answered(&mut h, "alice").await,
        None,
        "the other is cleared"
    );
    learned::forget(&mut h.con, "alice")
        .await
        .expect("forget goes on");
    let kept: Vec<String> = h.con.lrange(key, 0, -1).await.expect("LRANGE");
    assert_eq!(kept, ["another program's"], "still left as it was");
}
