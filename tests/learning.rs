//! What the twin does with what it learned, against a real redis-server and a
//! fake model speaking real HTTP: the prompt holds the same chat's most similar
//! exchange and nothing of another chat, a contact without history gets the
//! overall profile, the person's live messages move the profile of a chat
//! already learned (and `forget` wins over them), the offline engine answers
//! with the person's own past reply of that chat (never twice in a row, not
//! even within one batch), a live add stays cheap in a long chat, and learned
//! data another program broke never stops a reply.

mod common;
#[path = "common/fake_llm.rs"]
mod fake_llm;

use std::collections::HashMap;
use std::time::Duration;

use common::worker::Running;
use common::{Harness, eventually, incoming, typed_by_person};
use fake_llm::{FakeLlm, Step};
use redis::AsyncCommands;
use secondme::learn::{ChatLine, Exchange, LearnConfig, Learned, LineKind, StyleProfile};
use secondme::reply::llm::LlmEngine;
use secondme::reply::llm::config::{LlmConfig, Provider};
use secondme::reply::llm::prompt;
use secondme::reply::persona_engine::PersonaEngine;
use secondme::reply::{MAX_TYPING_MS, ReplyEngine, ReplyRequest};
use secondme::schema::{self, PersonaCache, learned as keys};
use secondme::store::{learned, persona};
use secondme::worker::WorkerConfig;

const SECOND: Duration = Duration::from_secs(1);
/// The first line's time: a chat of 2023.
const T0: i64 = 1_700_000_000_000;
/// How long after the contact's message the person answers in the learned chats.
const REPLY_S: i64 = 40;

/// Alice's chat: climbing and a plant. "quarry", "ficus" are hers alone.
const ALICE: &[(&str, &str)] = &[
    (
        "are we still going climbing at the quarry on sunday?",
        "yes!! bringing the blue rope",
    ),
    ("did you water my ficus plant", "oops forgot, tomorrow"),
    (
        "still going climbing on sunday?",
        "yes yes, 9am at the quarry",
    ),
];

/// Bob's chat: words found nowhere else, on both sides.
const BOB: &[(&str, &str)] = &[
    (
        "the zeppelin tickets for the marimba concert arrived",
        "wow glockenspiel vibes, count me in",
    ),
    ("lunch at the xylophone diner?", "only if they have waffles"),
];
/// Bob's words, his side and the person's side of his chat.
const BOB_THEM: &[&str] = &["zeppelin", "marimba", "xylophone"];
const BOB_ME: &[&str] = &["glockenspiel", "waffles"];

/// A text line at `ts`, the person's when `me`.
fn text_line(ts: i64, me: bool, text: &str) -> ChatLine {
    ChatLine {
        ts,
        me,
        kind: LineKind::Text,
        text: text.to_owned(),
    }
}

/// The chat of `pairs`: each contact message, then the person's answer
/// [`REPLY_S`] later, an hour apart.
fn chat(pairs: &[(&str, &str)]) -> Vec<ChatLine> {
    let mut lines = Vec::new();
    for (i, (them, me)) in pairs.iter().enumerate() {
        let at = T0 + i as i64 * 3_600_000;
        for (ts, me, text) in [(at, false, them), (at + REPLY_S * 1000, true, me)] {
            lines.push(text_line(ts, me, text));
        }
    }
    lines
}

async fn learn_chat(h: &mut Harness, contact: &str, pairs: &[(&str, &str)]) {
    let added = learned::add_lines(&mut h.con, contact, &chat(pairs), 50_000)
        .await
        .expect("learn a chat");
    assert_eq!(added.added, pairs.len() * 2);
}

/// A harness where Alice's and Bob's chats are learned.
async fn alice_and_bob_learned() -> Harness {
    let mut h = Harness::start().await;
    learn_chat(&mut h, "alice", ALICE).await;
    learn_chat(&mut h, "bob", BOB).await;
    h
}

fn persona() -> PersonaCache {
    PersonaCache {
        style_guide: "Formal, complete sentences.".into(),
        tone: "friendly".into(),
        example_messages: vec!["Understood, I will come back to you today.".into()],
    }
}

fn openai_ok(text: &str) -> String {
    serde_json::json!({
        "choices": [{"message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 3}
    })
    .to_string()
}

/// A worker with `engine` and the `[learn]` settings `learn`.
async fn start<E: ReplyEngine>(h: &mut Harness, engine: E, learn: &LearnConfig) -> Running {
    let mut cfg = WorkerConfig::from_config(&h.config("learning"));
    cfg.sleep_hours = secondme::config::SleepSetting::Off;
    cfg.block = Duration::from_millis(200);
    cfg.claim_every = Duration::from_millis(200);
    cfg.burst_quiet = Duration::ZERO;
    cfg.learn = learn.clone();
    persona::store(&mut h.con, &cfg.default_persona, &persona())
        .await
        .expect("persona");
    Running::start(&h.server.url(), engine, cfg).await
}

fn llm(url: &str, learn: &LearnConfig) -> LlmEngine {
    let mut c = LlmConfig::for_url(Provider::OpenAi, url).expect("config");
    c.owner_name = Some("Sam".into());
    c.timeout = 5 * SECOND;
    c.max_retries = 0;
    LlmEngine::with_key(c, None)
        .expect("engine")
        .with_learning(learn)
}

/// A worker with the offline engine and the `[learn]` settings `learn`.
async fn start_offline(h: &mut Harness, learn: LearnConfig) -> Running {
    start(h, PersonaEngine::new(&learn), &learn).await
}

/// The `[learn]` settings with `similarity` 0.25: a past exchange sharing a
/// quarter of the question's weight is close enough.
fn similar_from_a_quarter() -> LearnConfig {
    LearnConfig {
        similarity: 0.25,
        ..LearnConfig::default()
    }
}

/// The `n`-th request's system prompt and its whole body as text.
async fn nth_request(fake: &FakeLlm, n: usize) -> (String, String) {
    let got = eventually(20 * SECOND, || async {
        (fake.requests().len() > n).then_some(())
    })
    .await;
    assert!(got.is_some(), "the model was asked {} times", n + 1);
    let body = fake.requests()[n].body.clone();
    let system = body["messages"][0]["content"]
        .as_str()
        .expect("a system message")
        .to_owned();
    (system, body.to_string())
}

/// The prompt's size as the engine counts it against the budget.
fn prompt_tokens(body: &str) -> usize {
    let body: serde_json::Value = serde_json::from_str(body).expect("json");
    let messages = body["messages"].as_array().expect("messages");
    let system = messages[0]["content"].as_str().unwrap_or_default();
    let turns: Vec<_> = messages[1..]
        .iter()
        .map(|m| secondme::reply::llm::chat::Turn {
            role: secondme::reply::llm::chat::Role::User,
            text: m["content"].as_str().unwrap_or_default().to_owned(),
        })
        .collect();
    prompt::estimate_prompt_tokens(system, &turns)
}

/// The reply to `message_id` in `QUEUE:responses`, once it is there.
async fn response_to(h: &Harness, message_id: &str) -> HashMap<String, String> {
    let found = eventually(20 * SECOND, || {
        let mut con = h.con.clone();
        async move {
            common::streams::entries(&mut con, schema::queue_responses())
                .await
                .into_iter()
                .find(|r| {
                    r.get(schema::response_fields::IN_REPLY_TO)
                        .is_some_and(|to| to == message_id)
                })
        }
    })
    .await;
    found.unwrap_or_else(|| panic!("no reply to {message_id}"))
}

/// Sends `text` as `contact`'s message `id`; the reply to it, once written.
async fn answer(h: &mut Harness, id: &str, contact: &str, text: &str) -> HashMap<String, String> {
    h.send(&incoming(id, contact, text)).await;
    response_to(h, id).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_prompt_holds_this_chats_closest_exchange_and_nothing_of_another_chat() {
    let mut h = Harness::start().await;
    h.allow(&["alice"]).await;
    let steps = (0..4)
        .map(|_| Step::ok(&openai_ok("sounds good")))
        .collect();
    let fake = FakeLlm::start(steps).await;
    let learn = LearnConfig::default();
    let w = start(&mut h, llm(&fake.url, &learn), &learn).await;

    // Before anything is learned: the persona's style, no examples.
    h.send(&incoming(
        "a0",
        "alice",
        "quarry climbing on sunday, still on?",
    ))
    .await;
    let (before_system, before) = nth_request(&fake, 0).await;
    assert!(before_system.contains("How you write: Formal, complete sentences."));
    assert!(!before_system.contains("When they wrote"));
    response_to(&h, "a0").await;

    learn_chat(&mut h, "alice", ALICE).await;
    learn_chat(&mut h, "bob", BOB).await;
    // The worker trusts its list of learned contacts for a few seconds.
    tokio::time::sleep(6 * SECOND).await;
    h.send(&incoming(
        "a1",
        "alice",
        "climbing at the quarry on sunday?",
    ))
    .await;
    let (system, body) = nth_request(&fake, 1).await;
    let closest = "- When they wrote: \"are we still going climbing at the quarry on sunday?\" you answered: \"yes!! bringing the blue rope\"";
    assert!(system.contains(closest), "{system}");
    assert!(
        system.contains("measured from 3 of your own messages to this contact"),
        "{system}"
    );
    assert!(!system.contains("Formal, complete sentences."), "{system}");
    for word in BOB_THEM.iter().chain(BOB_ME) {
        assert!(
            !body.contains(word),
            "{word:?} of Bob's chat reached Alice's prompt"
        );
    }
    let (before, after) = (prompt_tokens(&before), prompt_tokens(&body));
    println!(
        "tokens per reply (estimated, ~4 characters a token): before learning {before}, after learning {after} (budget {})",
        learn.prompt_budget_tokens
    );
    assert!(
        after > before && after <= learn.prompt_budget_tokens,
        "{before} -> {after}"
    );
    w.stop().await;

    // Allowed to lend style: Bob's reply may come, as the person's words only.
    let others = LearnConfig {
        style_from_other_chats: true,
        examples: 6,
        ..LearnConfig::default()
    };
    let w = start(&mut h, llm(&fake.url, &others), &others).await;
    h.send(&incoming(
        "a2",
        "alice",
        "quarry on sunday, then the concert tickets?",
    ))
    .await;
    let (system, body) = nth_request(&fake, 2).await;
    assert!(
        system.contains("- Something you wrote: \"wow glockenspiel vibes, count me in\""),
        "{system}"
    );
    for word in BOB_THEM {
        assert!(
            !body.contains(word),
            "{word:?}: Bob's own words never leave his chat"
        );
    }
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_contact_without_history_gets_the_overall_profile() {
    let mut h = alice_and_bob_learned().await;
    h.allow(&["carol"]).await;
    let fake = FakeLlm::start(vec![Step::ok(&openai_ok("sure thing"))]).await;
    let learn = LearnConfig::default();
    let w = start(&mut h, llm(&fake.url, &learn), &learn).await;
    h.send(&incoming(
        "c1",
        "carol",
        "climbing at the quarry on sunday?",
    ))
    .await;
    let (system, body) = nth_request(&fake, 0).await;
    let owner_messages = ALICE.len() + BOB.len();
    assert!(
        system.contains(&format!(
            "measured from {owner_messages} of your own messages in all your chats"
        )),
        "{system}"
    );
    assert!(
        system.contains("Tone: friendly"),
        "the persona still serves: {system}"
    );
    assert!(
        !system.contains("When they wrote"),
        "no examples from others: {system}"
    );
    for word in BOB_THEM.iter().chain(BOB_ME).chain(&["ficus", "rope"]) {
        assert!(!body.contains(word), "{word:?} reached Carol's prompt");
    }
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_messages_move_the_profile_and_the_twins_replies_are_never_learned() {
    let mut h = Harness::start().await;
    learn_chat(&mut h, "alice", ALICE).await;
    h.allow(&["alice", "dave"]).await;
    let before = learned::profile(&mut h.con, Some("alice"))
        .await
        .expect("read")
        .expect("a profile");
    assert_eq!(before.samples, ALICE.len() as u64);
    let w = start_offline(&mut h, LearnConfig::default()).await;

    let reply = answer(&mut h, "in1", "alice", "what time do we leave").await;
    let twin_said = reply[schema::response_fields::CONTENT].clone();
    let long = "ok so here is the whole plan for sunday: we meet at the parking lot by nine, then walk up together";
    h.send(&typed_by_person("me1", "alice", long)).await;
    let mut con = h.con.clone();
    let after = eventually(10 * SECOND, || {
        let mut con = con.clone();
        async move {
            let p = learned::profile(&mut con, Some("alice")).await.ok()??;
            (p.samples == before.samples + 1).then_some(p)
        }
    })
    .await
    .expect("the person's live message is learned");
    // The three answers are 28, 21 and 26 characters: the longest is now the new one.
    assert_ne!(after.p90_chars, before.p90_chars, "{before:?} -> {after:?}");
    let lines = learned::lines(&mut con, "alice").await.expect("lines");
    assert!(
        lines
            .iter()
            .any(|l| !l.me && l.text == "what time do we leave")
    );
    assert!(lines.iter().any(|l| l.me && l.text == long));
    assert!(
        !lines.iter().any(|l| l.text == twin_said),
        "the twin's reply {twin_said:?} is not the person's writing"
    );

    // The gateway's placeholder for a sticker the person sent is media, not text.
    h.send(&typed_by_person("me2", "alice", "[sticker]")).await;
    h.send(&typed_by_person("me3", "alice", "[photo] the crag"))
        .await;
    let media = eventually(10 * SECOND, || {
        let mut con = con.clone();
        async move {
            let l = learned::lines(&mut con, "alice").await.ok()?;
            let media: Vec<ChatLine> = l
                .into_iter()
                .filter(|l| l.kind == LineKind::Media)
                .collect();
            (media.len() == 2).then_some(media)
        }
    })
    .await
    .expect("both placeholders learned as media");
    assert!(media[0].me && media[0].text.is_empty());
    assert_eq!(media[1].text, "the crag", "the caption kept");
    let p = learned::profile(&mut con, Some("alice"))
        .await
        .expect("read")
        .expect("a profile");
    assert_eq!(p.samples, after.samples, "media is no text sample");

    // A contact the person enabled but never learned starts no learned chat
    // when they type to it (learning grows the chats `learn` started); one
    // neither enabled nor learned neither.
    h.send(&typed_by_person("me4", "dave", "see you at the gym"))
        .await;
    h.send(&typed_by_person("me5", "erin", "happy birthday!!"))
        .await;
    all_handled(&h, &["me4", "me5"]).await;
    tokio::time::sleep(SECOND).await;
    for contact in ["dave", "erin"] {
        let exists: bool = con.exists(keys::chat_key(contact)).await.expect("exists");
        assert!(!exists, "nothing learned of {contact}");
    }
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_offline_engine_answers_with_the_persons_past_reply_never_twice_in_a_row() {
    let mut h = Harness::start().await;
    learn_chat(&mut h, "alice", ALICE).await;
    h.allow(&["alice"]).await;
    // "still going climbing on sunday?" matches a third of the question's
    // weight (its rarer words are the first exchange's alone).
    let w = start_offline(&mut h, similar_from_a_quarter()).await;
    let asked = "are we still going climbing at the quarry on sunday?";
    let first = answer(&mut h, "q1", "alice", asked).await;
    assert_eq!(
        first[schema::response_fields::CONTENT],
        "yes!! bringing the blue rope"
    );
    // The person answers Alice in 40 s: the typing time goes halfway there from
    // the human pace of 5 words (300 ms each and a 2-5 s pause).
    let delay: u64 = first[schema::response_fields::DELAY_MS]
        .parse()
        .expect("delay");
    let (low, high) = ((2_000 + 1_500 + 40_000) / 2, (5_000 + 1_500 + 40_000) / 2);
    assert!((low..=high).contains(&delay), "{delay} ms");
    let second = answer(&mut h, "q2", "alice", asked).await;
    assert_eq!(
        second[schema::response_fields::CONTENT],
        "yes yes, 9am at the quarry",
        "the next most similar past reply, not the same twice"
    );
    // Nothing like it was ever asked: today's templates.
    let third = answer(&mut h, "q3", "alice", "Can you review the contract?").await;
    assert!(
        third[schema::response_fields::CONTENT].contains("Understood"),
        "{third:?}"
    );
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreign_learned_chat_never_stops_a_reply_nor_the_worker() {
    let mut h = alice_and_bob_learned().await;
    // Another program took Alice's chat key for something else.
    let _: () = h.con.del(keys::chat_key("alice")).await.expect("del");
    let _: () = h
        .con
        .set(keys::chat_key("alice"), "not a chat")
        .await
        .expect("set");
    h.allow(&["alice", "bob"]).await;
    let w = start_offline(&mut h, LearnConfig::default()).await;
    let asked = "are we still going climbing at the quarry on sunday?";
    let reply = answer(&mut h, "f1", "alice", asked).await;
    assert!(
        reply[schema::response_fields::CONTENT].contains("Understood"),
        "answered from the templates: {reply:?}"
    );
    h.send(&typed_by_person("f2", "alice", "never mind")).await;
    let bob = answer(
        &mut h,
        "f3",
        "bob",
        "the zeppelin tickets for the marimba concert arrived",
    )
    .await;
    assert_eq!(
        bob[schema::response_fields::CONTENT],
        "wow glockenspiel vibes, count me in",
        "the worker goes on, learning included"
    );
    assert!(h.dead_letters().await.is_empty(), "nothing dead-lettered");
    let mut con = h.con.clone();
    assert_eq!(
        common::handled(&mut con, "f2").await.as_deref(),
        Some("takeover")
    );
    let status = w.stop().await;
    assert_eq!(status.dead_lettered, 0);
}

/// Asks `engine` directly (no worker) to answer `text` with `learned`.
async fn ask(
    engine: &LlmEngine,
    text: &str,
    learned: &Learned,
) -> anyhow::Result<secondme::reply::Reply> {
    let message = incoming("m1", "alice", text);
    let style = persona();
    engine
        .reply(&ReplyRequest {
            message: &message,
            persona_id: "casual",
            persona: &style,
            context: None,
            history: &[],
            learned: Some(learned),
        })
        .await
}

#[tokio::test]
async fn the_persons_own_past_reply_is_no_leak_but_the_measured_style_is() {
    let past = "can't this weekend, my sister is visiting from porto until monday night";
    let learned = Learned {
        profile: Some(StyleProfile {
            samples: 40,
            median_chars: 30.0,
            p90_chars: 70.0,
            starts_lowercase: 0.9,
            ends_with_period: 0.05,
            ..StyleProfile::default()
        }),
        from_contact: true,
        examples: vec![(
            Exchange {
                ts: T0,
                them: "free this weekend?".into(),
                me: past.into(),
                reply_ms: Some(40_000),
            },
            0.9,
        )],
        ..Learned::default()
    };
    let echo =
        "You start with a lowercase letter 90% of the time and rarely end with a period (5%).";
    let fake = FakeLlm::start(vec![Step::ok(&openai_ok(past)), Step::ok(&openai_ok(echo))]).await;
    let engine = llm(&fake.url, &LearnConfig::default());
    let reply = ask(&engine, "free this weekend?", &learned)
        .await
        .expect("the person's own words may be said again");
    assert_eq!(reply.content, past);
    let err = ask(&engine, "how do you write?", &learned)
        .await
        .expect_err("the measured style is part of the instructions");
    assert!(
        err.to_string().contains("repeats its instructions"),
        "{err:#}"
    );
}

#[test]
fn a_learned_typing_time_is_bounded_like_the_gateways() {
    let gateway = secondme::bridge::whatsapp::pacing::MAX_TYPING_DELAY;
    assert_eq!(u128::from(MAX_TYPING_MS), gateway.as_millis());
}

/// Whether `key` exists.
async fn exists(h: &mut Harness, key: &str) -> bool {
    h.con.exists(key).await.expect("exists")
}

/// Waits until the worker recorded handling each of `ids`.
async fn all_handled(h: &Harness, ids: &[&str]) {
    for id in ids {
        let con = h.con.clone();
        let done = eventually(10 * SECOND, || {
            let mut con = con.clone();
            async move { common::handled(&mut con, id).await }
        })
        .await;
        assert!(done.is_some(), "{id} handled");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forget_wins_over_live_learning_and_only_learned_chats_grow() {
    let mut h = Harness::start().await;
    learn_chat(&mut h, "alice", ALICE).await;
    h.allow(&["alice", "dave"]).await;
    let w = start_offline(&mut h, LearnConfig::default()).await;
    // The worker has read the learned contacts: Alice among them.
    answer(&mut h, "in1", "alice", "what time do we leave").await;
    let learned_live = eventually(10 * SECOND, || {
        let mut con = h.con.clone();
        async move {
            let n: usize = con.zcard(keys::chat_key("alice")).await.ok()?;
            (n == ALICE.len() * 2 + 1).then_some(())
        }
    })
    .await;
    assert!(learned_live.is_some(), "Alice's message learned live");

    let gone = learned::forget(&mut h.con, "alice").await.expect("forget");
    assert_eq!(gone.learned_messages, (ALICE.len() * 2 + 1) as u64);
    h.send(&incoming("in2", "alice", "hello again")).await;
    h.send(&typed_by_person("me2", "alice", "on my way")).await;
    // Enabled but never learned: the person's typing starts no learned chat.
    h.send(&typed_by_person("me3", "dave", "see you at the gym"))
        .await;
    all_handled(&h, &["in2", "me2", "me3"]).await;
    // Live learning follows the decision in the same batch: give it time.
    tokio::time::sleep(SECOND).await;
    for key in [
        keys::chat_key("alice"),
        keys::style_key("alice"),
        keys::chat_key("dave"),
        keys::style_key("dave"),
    ] {
        assert!(!exists(&mut h, &key).await, "{key} came back");
    }
    let set: Vec<String> = h.con.smembers(keys::contacts_key()).await.expect("set");
    assert!(set.is_empty(), "{set:?}");
    w.stop().await;
}

/// Alice's chat learned again after `forget`: the same questions, other answers.
const ALICE_AGAIN: &[(&str, &str)] = &[
    (
        "are we still going climbing at the quarry on sunday?",
        "nope, my knee still hurts",
    ),
    ("did you water my ficus plant", "yes, twice"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chat_forgotten_then_learned_again_is_the_new_one() {
    let mut h = Harness::start().await;
    learn_chat(&mut h, "alice", ALICE).await;
    let before = learned::version(&mut h.con, "alice")
        .await
        .expect("version");
    h.allow(&["alice"]).await;
    let w = start_offline(&mut h, similar_from_a_quarter()).await;
    let asked = "are we still going climbing at the quarry on sunday?";
    let first = answer(&mut h, "q1", "alice", asked).await;
    assert_eq!(
        first[schema::response_fields::CONTENT],
        "yes!! bringing the blue rope"
    );
    learned::forget(&mut h.con, "alice").await.expect("forget");
    learn_chat(&mut h, "alice", ALICE_AGAIN).await;
    let after = learned::version(&mut h.con, "alice")
        .await
        .expect("version");
    assert_ne!(before, after, "a version never comes back");
    let second = answer(&mut h, "q2", "alice", asked).await;
    assert_eq!(
        second[schema::response_fields::CONTENT],
        "nope, my knee still hurts",
        "the chat learned after forget, not the forgotten one"
    );
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_offline_engine_never_sends_another_chats_reply() {
    let mut h = alice_and_bob_learned().await;
    h.allow(&["alice"]).await;
    let learn = LearnConfig {
        style_from_other_chats: true,
        similarity: 0.0,
        ..LearnConfig::default()
    };
    let w = start_offline(&mut h, learn).await;
    let reply = answer(&mut h, "x1", "alice", BOB[0].0).await;
    let said = &reply[schema::response_fields::CONTENT];
    for (_, bobs) in BOB {
        assert_ne!(said, bobs, "Bob's reply sent to Alice");
    }
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_batch_never_gets_the_same_past_reply_twice() {
    let mut h = Harness::start().await;
    learn_chat(&mut h, "alice", ALICE).await;
    h.allow(&["alice"]).await;
    let asked = "are we still going climbing at the quarry on sunday?";
    // Both queued before the worker starts: one batch.
    h.send(&incoming("b1", "alice", asked)).await;
    h.send(&incoming("b2", "alice", asked)).await;
    let w = start_offline(&mut h, similar_from_a_quarter()).await;
    let first = response_to(&h, "b1").await;
    let second = response_to(&h, "b2").await;
    assert_eq!(
        first[schema::response_fields::CONTENT],
        "yes!! bringing the blue rope"
    );
    assert_eq!(
        second[schema::response_fields::CONTENT],
        "yes yes, 9am at the quarry",
        "the next past reply, not the same one twice in a row"
    );
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreign_overall_profile_leaves_each_chat_learned() {
    let mut h = Harness::start().await;
    learn_chat(&mut h, "alice", ALICE).await;
    let _: () = h.con.del(keys::overall_key()).await.expect("del");
    let _: () = h
        .con
        .hset(keys::overall_key(), "someone", "else's")
        .await
        .expect("hset");
    // Another import still works, and leaves the foreign key alone.
    learn_chat(&mut h, "bob", BOB).await;
    let kind: String = redis::cmd("TYPE")
        .arg(keys::overall_key())
        .query_async(&mut h.con)
        .await
        .expect("type");
    assert_eq!(kind, "hash");
    h.allow(&["alice"]).await;
    let w = start_offline(&mut h, similar_from_a_quarter()).await;
    let reply = answer(&mut h, "o1", "alice", ALICE[0].0).await;
    assert_eq!(reply[schema::response_fields::CONTENT], ALICE[0].1);
    w.stop().await;
}

#[tokio::test]
async fn the_persons_repeated_reply_and_the_contacts_words_are_no_leak() {
    let thanks = "thank you so much for everything, you really saved my whole weekend";
    let question = "can you pick up the kids from school at half past four tomorrow";
    let exchange = |them: &str, me: &str| {
        (
            Exchange {
                ts: T0,
                them: them.into(),
                me: me.into(),
                reply_ms: Some(40_000),
            },
            0.9,
        )
    };
    let learned = Learned {
        from_contact: true,
        examples: vec![
            exchange("here are the concert tickets", thanks),
            exchange("i fixed your bike", thanks),
            exchange(question, "sure, no problem"),
        ],
        ..Learned::default()
    };
    let echoing = "pick up the kids from school at half past four tomorrow? sure";
    let fake = FakeLlm::start(vec![
        Step::ok(&openai_ok(thanks)),
        Step::ok(&openai_ok(echoing)),
    ])
    .await;
    let engine = llm(&fake.url, &LearnConfig::default());
    let reply = ask(&engine, "i brought you soup", &learned)
        .await
        .expect("the person's own thanks, written twice before, said again");
    assert_eq!(reply.content, thanks);
    let reply = ask(&engine, question, &learned)
        .await
        .expect("the contact's own words, from this chat, echoed back");
    assert_eq!(reply.content, echoing);
}

/// A chat of `n` exchanges with varied words, `T0` on.
fn long_chat(n: usize) -> Vec<ChatLine> {
    let words = [
        "sunday", "quarry", "rope", "dinner", "train", "late", "coffee", "movie", "beach", "haha",
        "tomorrow", "maybe", "sure", "ok", "lol", "nope",
    ];
    let mut lines = Vec::with_capacity(2 * n);
    for i in 0..n {
        let at = T0 + i as i64 * 120_000;
        let w = |k: usize| words[(i * 7 + k * 3) % words.len()];
        lines.push(text_line(
            at,
            false,
            &format!("{} {} {}? {i}", w(0), w(1), w(2)),
        ));
        lines.push(text_line(at + 30_000, true, &format!("{} {}!", w(3), w(4))));
    }
    lines
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_message_is_cheap_to_learn_in_a_long_chat_and_counts_exactly() {
    let mut h = Harness::start().await;
    let cap = 50_000;
    let chat = long_chat(cap / 2);
    learned::add_lines(&mut h.con, "long", &chat, cap)
        .await
        .expect("import");
    let last = chat.last().map_or(T0, |l| l.ts);
    let adds = 20;
    let started = std::time::Instant::now();
    for i in 0..adds {
        let line = text_line(
            last + (i + 1) * 60_000,
            i % 3 != 0,
            &format!("live {i} haha 😂"),
        );
        learned::add_live(&mut h.con, "long", &line, cap)
            .await
            .expect("live add");
    }
    let per_add = started.elapsed().as_secs_f64() * 1e3 / adds as f64;
    println!("a live add to a chat of {cap} messages: {per_add:.1} ms");
    assert!(per_add < 100.0, "{per_add:.1} ms a live add");
    // The counts kept incrementally are the whole chat's, cap included.
    let stored = learned::lines(&mut h.con, "long").await.expect("lines");
    assert_eq!(stored.len(), cap);
    assert_eq!(stored[0], chat[adds as usize], "the oldest went first");
    let mut whole = secondme::learn::style::Tally::default();
    whole.add_chat(&stored);
    let kept = learned::tally(&mut h.con, Some("long"))
        .await
        .expect("tally")
        .expect("counts");
    assert_eq!(kept, whole);
    let overall = learned::tally(&mut h.con, None)
        .await
        .expect("tally")
        .expect("overall");
    assert_eq!(overall, whole, "one contact: the overall is its counts");
}
