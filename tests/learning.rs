//! What the twin does with what it learned, against a real redis-server and a
//! fake model speaking real HTTP: the prompt holds the same chat's most similar
//! exchange and nothing of another chat, a contact without history gets the
//! overall profile, the person's live messages move the profile, the offline
//! engine answers with the person's own past reply (never twice in a row), and
//! learned data another program broke never stops a reply.

mod common;
#[path = "common/fake_llm.rs"]
mod fake_llm;

use std::collections::HashMap;
use std::time::Duration;

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
use secondme::worker::{Worker, WorkerConfig, WorkerStatus};
use tokio::sync::watch;

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

/// The chat of `pairs`: each contact message, then the person's answer
/// [`REPLY_S`] later, an hour apart.
fn chat(pairs: &[(&str, &str)]) -> Vec<ChatLine> {
    let mut lines = Vec::new();
    for (i, (them, me)) in pairs.iter().enumerate() {
        let at = T0 + i as i64 * 3_600_000;
        for (ts, me, text) in [(at, false, them), (at + REPLY_S * 1000, true, me)] {
            lines.push(ChatLine {
                ts,
                me,
                kind: LineKind::Text,
                text: (*text).to_owned(),
            });
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

struct Running {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<anyhow::Result<WorkerStatus>>,
}

impl Running {
    async fn stop(self) -> WorkerStatus {
        let _ = self.stop.send(true);
        tokio::time::timeout(10 * SECOND, self.task)
            .await
            .expect("the worker stops in time")
            .expect("join")
            .expect("worker result")
    }
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

fn llm(url: &str, learn: &LearnConfig) -> LlmEngine {
    let mut c = LlmConfig::for_url(Provider::OpenAi, url).expect("config");
    c.owner_name = Some("Sam".into());
    c.timeout = 5 * SECOND;
    c.max_retries = 0;
    LlmEngine::with_key(c, None)
        .expect("engine")
        .with_learning(learn)
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
    let mut h = Harness::start().await;
    learn_chat(&mut h, "alice", ALICE).await;
    learn_chat(&mut h, "bob", BOB).await;
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
    let learn = LearnConfig::default();
    let w = start(&mut h, PersonaEngine::new(&learn), &learn).await;

    h.send(&incoming("in1", "alice", "what time do we leave"))
        .await;
    let reply = response_to(&h, "in1").await;
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

    // A contact the person enabled is learned from their first typed message;
    // one neither enabled nor learned is not.
    h.send(&typed_by_person("me2", "dave", "see you at the gym"))
        .await;
    h.send(&typed_by_person("me3", "erin", "happy birthday!!"))
        .await;
    let dave = eventually(10 * SECOND, || {
        let mut con = con.clone();
        async move {
            let l = learned::lines(&mut con, "dave").await.ok()?;
            (!l.is_empty()).then_some(l)
        }
    })
    .await
    .expect("dave's chat is learned");
    assert_eq!(dave.len(), 1);
    assert!(dave[0].me && dave[0].text == "see you at the gym");
    common::eventually(5 * SECOND, || {
        let mut con = con.clone();
        async move { common::handled(&mut con, "me3").await }
    })
    .await
    .expect("erin's message handled");
    let erin: bool = con.exists(keys::chat_key("erin")).await.expect("exists");
    assert!(
        !erin,
        "nothing learned of a contact neither enabled nor learned"
    );
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_offline_engine_answers_with_the_persons_past_reply_never_twice_in_a_row() {
    let mut h = Harness::start().await;
    learn_chat(&mut h, "alice", ALICE).await;
    h.allow(&["alice"]).await;
    // "still going climbing on sunday?" matches a third of the question's
    // weight (its rarer words are the first exchange's alone).
    let learn = LearnConfig {
        similarity: 0.25,
        ..LearnConfig::default()
    };
    let w = start(&mut h, PersonaEngine::new(&learn), &learn).await;
    let asked = "are we still going climbing at the quarry on sunday?";
    h.send(&incoming("q1", "alice", asked)).await;
    let first = response_to(&h, "q1").await;
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
    h.send(&incoming("q2", "alice", asked)).await;
    let second = response_to(&h, "q2").await;
    assert_eq!(
        second[schema::response_fields::CONTENT],
        "yes yes, 9am at the quarry",
        "the next most similar past reply, not the same twice"
    );
    // Nothing like it was ever asked: today's templates.
    h.send(&incoming("q3", "alice", "Can you review the contract?"))
        .await;
    let third = response_to(&h, "q3").await;
    assert!(
        third[schema::response_fields::CONTENT].contains("Understood"),
        "{third:?}"
    );
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreign_learned_chat_never_stops_a_reply_nor_the_worker() {
    let mut h = Harness::start().await;
    learn_chat(&mut h, "alice", ALICE).await;
    learn_chat(&mut h, "bob", BOB).await;
    // Another program took Alice's chat key for something else.
    let _: () = h.con.del(keys::chat_key("alice")).await.expect("del");
    let _: () = h
        .con
        .set(keys::chat_key("alice"), "not a chat")
        .await
        .expect("set");
    h.allow(&["alice", "bob"]).await;
    let learn = LearnConfig::default();
    let w = start(&mut h, PersonaEngine::new(&learn), &learn).await;
    let asked = "are we still going climbing at the quarry on sunday?";
    h.send(&incoming("f1", "alice", asked)).await;
    let reply = response_to(&h, "f1").await;
    assert!(
        reply[schema::response_fields::CONTENT].contains("Understood"),
        "answered from the templates: {reply:?}"
    );
    h.send(&typed_by_person("f2", "alice", "never mind")).await;
    h.send(&incoming(
        "f3",
        "bob",
        "the zeppelin tickets for the marimba concert arrived",
    ))
    .await;
    let bob = response_to(&h, "f3").await;
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
