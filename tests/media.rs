//! Voice notes and photos through a real worker and a real redis-server, with a
//! fake transcription server and a fake model that speak real HTTP (neither can
//! run here): a voice note is transcribed and answered as if typed, a photo
//! reaches the model with its caption, what cannot be understood is never
//! answered (no guess from a placeholder, no error text) but counted for the
//! operator, a transient failure leaves the entry pending until it works, and
//! the bytes at `MEDIA:{messageId}` are deleted once the entry is handled.

mod common;
#[path = "common/fake_llm.rs"]
mod fake_llm;

use std::collections::HashMap;
use std::time::Duration;

use common::media::{self, handled_soon, history, quick_claims};
use common::streams::workers_pending;
use common::worker::Running;
use common::{Harness, eventually, incoming, typed_by_person};
use fake_llm::{FakeLlm, Step};
use redis::AsyncCommands;
use secondme::learn::LearnConfig;
use secondme::media::config::{MediaConfig, SttSettings};
use secondme::reply::ReplyEngine;
use secondme::reply::engine::Engine;
use secondme::reply::llm::config::{LlmConfig, Provider};
use secondme::reply::persona_engine::PersonaEngine;
use secondme::schema::{self, QueueMessage};
use secondme::worker::WorkerConfig;

const SECOND: Duration = Duration::from_secs(1);
/// Bytes that are no text, with every value a byte can take.
fn audio_bytes() -> Vec<u8> {
    (0..=255u8).cycle().take(40_000).collect()
}

/// What a transcription server answers.
fn transcript(text: &str) -> String {
    serde_json::json!({ "text": text }).to_string()
}

/// A minimal OpenAI chat completion answering `text`.
fn completion(text: &str) -> String {
    serde_json::json!({
        "choices": [{"message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 3}
    })
    .to_string()
}

fn worker_config(h: &Harness, consumer: &str, stt: Option<&str>) -> WorkerConfig {
    let mut cfg = quick_claims(h, consumer);
    cfg.media = MediaConfig {
        stt: SttSettings {
            timeout: Some("2s".into()),
            max_retries: Some(1),
            ..SttSettings::default()
        }
        .resolve(stt.map(str::to_owned))
        .expect("stt settings"),
        max_bytes: schema::media::DEFAULT_MAX_BYTES,
    };
    cfg
}

/// Writes a voice note (or any media) as a gateway does: the bytes first, then
/// the entry naming them.
async fn send_media(
    h: &mut Harness,
    id: &str,
    contact: &str,
    mime: &str,
    caption: &str,
    bytes: &[u8],
) {
    send_media_at(
        h,
        id,
        contact,
        mime,
        caption,
        bytes,
        secondme::store::now_ms(),
    )
    .await;
}

/// [`send_media`] of a message sent at `timestamp_ms`.
async fn send_media_at(
    h: &mut Harness,
    id: &str,
    contact: &str,
    mime: &str,
    caption: &str,
    bytes: &[u8],
    timestamp_ms: i64,
) {
    let message = QueueMessage {
        timestamp: timestamp_ms,
        ..incoming(id, contact, caption)
    };
    media::send(h, &message, mime, Some(12), bytes).await;
}

/// Waits until the bytes of `id` are deleted.
async fn media_gone_soon(h: &Harness, id: &str) -> bool {
    eventually(5 * SECOND, || {
        let mut con = h.con.clone();
        let key = schema::media_key(id);
        async move {
            let n: u64 = con.exists(key).await.ok()?;
            (n == 0).then_some(())
        }
    })
    .await
    .is_some()
}

/// The dead letters once there is one, within 10 s.
async fn dead_letters_soon(h: &Harness) -> Vec<HashMap<String, String>> {
    eventually(10 * SECOND, || {
        let mut con = h.con.clone();
        async move {
            let l = common::streams::entries(&mut con, schema::queue_deadletter()).await;
            (!l.is_empty()).then_some(l)
        }
    })
    .await
    .expect("a dead letter")
}

/// What the control room counts for the contact (unanswered and unheard).
async fn unanswered(h: &mut Harness, contact: &str) -> Option<u64> {
    secondme::store::unanswered::read(&mut h.con)
        .await
        .expect("the counts")
        .by_contact
        .get(contact)
        .copied()
}

fn template() -> PersonaEngine {
    PersonaEngine::new(&LearnConfig::default())
}

async fn start<E: ReplyEngine>(h: &Harness, engine: E, cfg: WorkerConfig) -> Running {
    Running::start(&h.server.url(), engine, cfg).await
}

/// A server with `contacts` allowed, a fake transcription server playing
/// `steps`, and a worker with the template engine sending it the voice notes.
async fn hearing(contacts: &[&str], steps: Vec<Step>) -> (Harness, FakeLlm, Running) {
    let mut h = Harness::start().await;
    h.allow(contacts).await;
    let stt = FakeLlm::start(steps).await;
    let w = start(&h, template(), worker_config(&h, "w1", Some(&stt.url))).await;
    (h, stt, w)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_voice_note_is_transcribed_answered_kept_and_its_bytes_deleted() {
    let (mut h, stt, w) = hearing(
        &["alice"],
        vec![Step::ok(&transcript("are you coming saturday?"))],
    )
    .await;
    let bytes = audio_bytes();
    send_media(&mut h, "v1", "alice", "audio/ogg; codecs=opus", "", &bytes).await;
    assert_eq!(handled_soon(&h, "v1").await, "answered");
    let responses = h.responses().await;
    assert_eq!(responses.len(), 1, "one reply: {responses:?}");
    assert_eq!(responses[0]["inReplyTo"], "v1");
    let requests = stt.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].path, "/v1/audio/transcriptions");
    let raw = &requests[0].raw;
    assert!(
        raw.windows(bytes.len()).any(|w| w == bytes.as_slice()),
        "the exact audio bytes were sent"
    );
    let heard = history(&mut h, "alice").await;
    let note = heard
        .iter()
        .find(|e| e.message_id == "v1")
        .expect("the voice note is in the history");
    assert_eq!(note.content, "are you coming saturday?");
    let mark = note.media.as_ref().expect("marked as media");
    assert_eq!(mark.kind, schema::media::MediaKind::Voice);
    assert_eq!(mark.seconds, Some(12));
    assert!(!mark.unread);
    assert!(media_gone_soon(&h, "v1").await, "the bytes are deleted");
    assert_eq!(workers_pending(&mut h.con).await, 0);
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_transcription_endpoint_a_voice_note_is_left_to_the_operator() {
    let mut h = Harness::start().await;
    h.allow(&["alice"]).await;
    let w = start(&h, template(), worker_config(&h, "w1", None)).await;
    send_media(&mut h, "v1", "alice", "audio/ogg", "", &audio_bytes()).await;
    assert_eq!(handled_soon(&h, "v1").await, "skip:unreadable");
    assert!(
        h.responses().await.is_empty(),
        "no reply to a voice note nobody heard"
    );
    assert_eq!(
        unanswered(&mut h, "alice").await,
        Some(1),
        "counted for the operator"
    );
    assert_eq!(
        workers_pending(&mut h.con).await,
        0,
        "acknowledged, not left stuck"
    );
    assert!(media_gone_soon(&h, "v1").await, "the bytes are deleted");
    let heard = history(&mut h, "alice").await;
    let note = heard.iter().find(|e| e.message_id == "v1").expect("kept");
    assert!(note.media.as_ref().is_some_and(|m| m.unread), "{note:?}");
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_transcription_never_reaches_the_contact() {
    let (mut h, stt, w) = hearing(
        &["alice", "bob"],
        vec![Step::status(
            400,
            r#"{"error":{"message":"Invalid file format. SYSTEM PROMPT LEAK"}}"#,
        )],
    )
    .await;
    send_media(&mut h, "v1", "alice", "audio/ogg", "", &audio_bytes()).await;
    h.send(&incoming("t1", "bob", "hi there")).await;
    assert_eq!(handled_soon(&h, "v1").await, "skip:unreadable");
    assert_eq!(
        handled_soon(&h, "t1").await,
        "answered",
        "the other contact is answered"
    );
    let responses = h.responses().await;
    assert_eq!(responses.len(), 1, "{responses:?}");
    assert_eq!(responses[0]["contactId"], "bob");
    assert!(
        responses
            .iter()
            .all(|r| !r["content"].contains("Invalid") && !r["content"].contains("LEAK")),
        "no error text reaches a contact"
    );
    assert_eq!(stt.requests().len(), 1, "a 400 is not retried");
    assert_eq!(unanswered(&mut h, "alice").await, Some(1));
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transient_failure_leaves_the_note_pending_until_it_is_heard() {
    // Two failures (the first try and its one retry), then the server is back.
    let (mut h, stt, w) = hearing(
        &["alice"],
        vec![
            Step::status(503, "{}"),
            Step::status(503, "{}"),
            Step::ok(&transcript("call me back")),
        ],
    )
    .await;
    send_media(&mut h, "v1", "alice", "audio/ogg", "", &audio_bytes()).await;
    assert_eq!(handled_soon(&h, "v1").await, "answered");
    assert_eq!(
        stt.requests().len(),
        3,
        "tried, retried, then tried again later"
    );
    assert_eq!(h.responses().await.len(), 1, "answered once");
    assert_eq!(workers_pending(&mut h.con).await, 0);
    assert!(media_gone_soon(&h, "v1").await);
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_strangers_voice_note_is_never_sent_to_the_endpoint() {
    let (mut h, stt, w) = hearing(&["alice"], vec![Step::ok(&transcript("hello"))]).await;
    send_media(&mut h, "v1", "stranger", "audio/ogg", "", &audio_bytes()).await;
    assert_eq!(handled_soon(&h, "v1").await, "skip:not_enabled");
    assert!(stt.requests().is_empty(), "nothing sent for a stranger");
    assert!(media_gone_soon(&h, "v1").await, "its bytes are deleted too");
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bytes_gone_or_of_another_type_are_unreadable_and_the_batch_goes_on() {
    let (mut h, stt, w) = hearing(&["alice", "bob"], vec![Step::ok(&transcript("fine"))]).await;
    // Expired before the worker saw it: the entry names bytes that are gone.
    send_media(&mut h, "gone", "alice", "audio/ogg", "", &audio_bytes()).await;
    let _: () = h.con.del(schema::media_key("gone")).await.expect("DEL");
    // Another program's list where the bytes should be.
    let _: () = h
        .con
        .rpush(schema::media_key("odd"), "x")
        .await
        .expect("RPUSH");
    media::send_entry(&mut h, &incoming("odd", "bob", ""), "audio/ogg", None).await;
    h.send(&incoming("t1", "bob", "and this?")).await;
    assert_eq!(handled_soon(&h, "gone").await, "skip:unreadable");
    assert_eq!(handled_soon(&h, "odd").await, "skip:unreadable");
    assert_eq!(handled_soon(&h, "t1").await, "answered");
    assert!(stt.requests().is_empty(), "nothing to send");
    assert_eq!(workers_pending(&mut h.con).await, 0);
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_media_type_is_dead_lettered_with_the_field_named() {
    let mut h = Harness::start().await;
    h.allow(&["alice"]).await;
    let w = start(&h, template(), worker_config(&h, "w1", None)).await;
    let _: () = h
        .con
        .set(schema::media_key("bad"), "bytes")
        .await
        .expect("SET");
    let bad = incoming("bad", "alice", "");
    media::send_entry(&mut h, &bad, "\x1b[2Jaudio", None).await;
    let letters = dead_letters_soon(&h).await;
    let reason = &letters[0][schema::deadletter_fields::REASON];
    assert!(reason.contains("mediaType"), "{reason}");
    assert!(
        media_gone_soon(&h, "bad").await,
        "a dead letter's bytes are deleted"
    );
    w.stop().await;
}

fn vision_config(url: &str, images: bool) -> LlmConfig {
    let mut c = LlmConfig::for_url(Provider::OpenAi, url).expect("config");
    c.fast_model = "fast-model".into();
    c.strong_model = "strong-model".into();
    c.timeout = 5 * SECOND;
    c.images = images;
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_photo_reaches_the_model_with_its_caption_and_its_gist_is_answered() {
    let mut h = Harness::start().await;
    h.allow(&["alice"]).await;
    let model = FakeLlm::start(vec![
        Step::ok(&completion("a red sports car")),
        Step::ok(&completion("wow, when can I ride in it?")),
    ])
    .await;
    let learn = LearnConfig::default();
    let engine =
        Engine::from_config(Some(&vision_config(&model.url, true)), &learn).expect("engine");
    let w = start(&h, engine, worker_config(&h, "w1", None)).await;
    let photo: Vec<u8> = (0..5_000u32).map(|i| (i * 7 % 251) as u8).collect();
    send_media(
        &mut h,
        "p1",
        "alice",
        "image/jpeg",
        "look at my new car!",
        &photo,
    )
    .await;
    assert_eq!(handled_soon(&h, "p1").await, "answered");
    let requests = model.requests();
    assert_eq!(requests.len(), 2, "the photo's gist, then the reply");
    let seen = requests[0].body.to_string();
    let data_url = format!(
        "data:image/jpeg;base64,{}",
        base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &photo)
    );
    assert!(seen.contains(&data_url), "the photo went as a data URL");
    assert!(seen.contains("look at my new car!"), "with its caption");
    let reply_prompt = requests[1].body.to_string();
    assert!(
        reply_prompt.contains("a red sports car"),
        "the reply sees the gist"
    );
    let responses = h.responses().await;
    assert_eq!(responses.len(), 1);
    assert_eq!(responses[0]["content"], "wow, when can I ride in it?");
    let heard = history(&mut h, "alice").await;
    let photo_event = heard.iter().find(|e| e.message_id == "p1").expect("kept");
    assert_eq!(photo_event.content, "look at my new car!");
    let mark = photo_event.media.as_ref().expect("marked");
    assert_eq!(mark.gist.as_deref(), Some("a red sports car"));
    // A slow engine's job commits beside the read loop, which deletes the bytes
    // when it takes the job's result.
    assert!(
        media_gone_soon(&h, "p1").await,
        "the photo's bytes are deleted"
    );
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_photo_for_a_model_without_images_is_left_to_the_operator() {
    let mut h = Harness::start().await;
    h.allow(&["alice"]).await;
    let model = FakeLlm::start(vec![Step::ok(&completion("should not be asked"))]).await;
    let learn = LearnConfig::default();
    let engine =
        Engine::from_config(Some(&vision_config(&model.url, false)), &learn).expect("engine");
    let w = start(&h, engine, worker_config(&h, "w1", None)).await;
    send_media(
        &mut h,
        "p1",
        "alice",
        "image/png",
        "guess what",
        b"\x89PNG....",
    )
    .await;
    assert_eq!(handled_soon(&h, "p1").await, "skip:unreadable");
    assert!(model.requests().is_empty(), "no guess from the caption");
    assert!(h.responses().await.is_empty());
    assert_eq!(unanswered(&mut h, "alice").await, Some(1));
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_voice_note_is_dead_lettered_with_its_media_fields_and_bytes_deleted() {
    let (mut h, stt, w) = hearing(&["alice"], vec![Step::ok(&transcript("too late"))]).await;
    let ten_minutes_ago = secondme::store::now_ms() - 600_000;
    send_media_at(
        &mut h,
        "old",
        "alice",
        "audio/ogg",
        "",
        &audio_bytes(),
        ten_minutes_ago,
    )
    .await;
    let letters = dead_letters_soon(&h).await;
    assert!(letters[0][schema::deadletter_fields::REASON].contains("expired"));
    assert_eq!(
        letters[0]["mediaType"], "audio/ogg",
        "a replay keeps the media"
    );
    assert_eq!(letters[0]["mediaSeconds"], "12");
    assert!(media_gone_soon(&h, "old").await, "its bytes are deleted");
    assert!(
        stt.requests().is_empty(),
        "an expired note is not transcribed"
    );
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_the_kill_switch_or_a_pause_nothing_is_sent_to_the_endpoint() {
    let mut h = Harness::start().await;
    h.allow(&["alice", "bob"]).await;
    let stt = FakeLlm::start(vec![Step::ok(&transcript("hello"))]).await;
    secondme::store::control::pause(&mut h.con, "bob", 600_000, schema::PauseReason::Manual)
        .await
        .expect("pause bob");
    let w = start(&h, template(), worker_config(&h, "w1", Some(&stt.url))).await;
    send_media(&mut h, "b1", "bob", "audio/ogg", "", &audio_bytes()).await;
    assert_eq!(handled_soon(&h, "b1").await, "skip:paused");
    let _: () = h.con.set(schema::pause_all(), "1").await.expect("kill on");
    send_media(&mut h, "a1", "alice", "audio/ogg", "", &audio_bytes()).await;
    assert_eq!(handled_soon(&h, "a1").await, "skip:kill_switch");
    assert!(
        stt.requests().is_empty(),
        "the twin is off: no audio leaves"
    );
    assert!(media_gone_soon(&h, "a1").await && media_gone_soon(&h, "b1").await);
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_voice_note_delivered_twice_is_transcribed_and_answered_once() {
    let (mut h, stt, w) = hearing(
        &["alice"],
        vec![
            Step::ok(&transcript("see you at eight")),
            Step::ok(&transcript("see you at eight")),
        ],
    )
    .await;
    send_media(&mut h, "v1", "alice", "audio/ogg", "", &audio_bytes()).await;
    assert_eq!(handled_soon(&h, "v1").await, "answered");
    // The gateway writes it again (a redelivery from WhatsApp).
    send_media(&mut h, "v1", "alice", "audio/ogg", "", &audio_bytes()).await;
    let drained = eventually(10 * SECOND, || {
        let mut h2 = h.con.clone();
        async move {
            let acked_all = workers_pending(&mut h2).await == 0;
            let len: u64 = h2.xlen(schema::queue_messages()).await.ok()?;
            (acked_all && len == 2).then_some(())
        }
    })
    .await;
    assert!(drained.is_some(), "both deliveries are acknowledged");
    assert_eq!(stt.requests().len(), 1, "transcribed once");
    assert_eq!(h.responses().await.len(), 1, "answered once");
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_note_left_for_later_holds_back_the_contacts_next_message() {
    let mut h = Harness::start().await;
    h.allow(&["alice"]).await;
    let stt = FakeLlm::start(vec![
        Step::status(503, "{}"),
        Step::status(503, "{}"),
        Step::ok(&transcript("are you there?")),
    ])
    .await;
    // Both queued before the worker starts, so they come in one batch: the
    // note's retry holds back the text of the same batch (across batches a
    // text read while the note waits is answered at once).
    send_media(&mut h, "v1", "alice", "audio/ogg", "", &audio_bytes()).await;
    h.send(&incoming("t1", "alice", "hello??")).await;
    let w = start(&h, template(), worker_config(&h, "w1", Some(&stt.url))).await;
    assert_eq!(handled_soon(&h, "v1").await, "answered");
    assert_eq!(handled_soon(&h, "t1").await, "answered");
    let order: Vec<String> = h
        .responses()
        .await
        .iter()
        .map(|r| r["inReplyTo"].clone())
        .collect();
    assert_eq!(order, ["v1", "t1"], "the contact is answered in turn");
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_note_that_would_expire_before_another_try_is_left_to_the_operator() {
    let (mut h, _stt, w) = hearing(
        &["alice"],
        vec![Step::status(503, "{}"), Step::status(503, "{}")],
    )
    .await;
    // 4 min 59 s old: the next try, a claim later, would find it expired.
    let almost_expired = secondme::store::now_ms() - 299_000;
    send_media_at(
        &mut h,
        "v1",
        "alice",
        "audio/ogg",
        "",
        &audio_bytes(),
        almost_expired,
    )
    .await;
    assert_eq!(handled_soon(&h, "v1").await, "skip:unreadable");
    assert_eq!(
        unanswered(&mut h, "alice").await,
        Some(1),
        "counted, not lost"
    );
    assert!(h.responses().await.is_empty());
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_persons_own_voice_note_is_kept_as_a_voice_note_never_read() {
    let (mut h, stt, w) = hearing(
        &["alice"],
        vec![Step::ok(&transcript("should not be asked"))],
    )
    .await;
    let own = typed_by_person("own", "alice", "");
    media::send_entry(&mut h, &own, "audio/ogg; codecs=opus", Some(5)).await;
    assert_eq!(handled_soon(&h, "own").await, "takeover");
    assert!(
        stt.requests().is_empty(),
        "the person's own words are not sent out"
    );
    let heard = history(&mut h, "alice").await;
    let own = heard.iter().find(|e| e.message_id == "own").expect("kept");
    let mark = own
        .media
        .as_ref()
        .expect("shown as a voice note, not as nothing");
    assert_eq!(mark.kind, schema::media::MediaKind::Voice);
    assert_eq!(mark.seconds, Some(5));
    w.stop().await;
}
