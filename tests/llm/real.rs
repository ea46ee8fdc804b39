//! The language-model engine against a real model (opt-in): set
//! `SECONDME_TEST_LLM_URL` to an OpenAI-compatible server, e.g. the one
//! `scripts/llm-local.sh` installs and `node scripts/llm-server.mjs` runs. Without
//! it the test says why and passes. It checks the protocol path end to end, not
//! the quality of a tiny model's replies.

use std::time::Duration;

use secondme::reply::input::{ContactContext, HistoryTurn, Speaker};
use secondme::reply::llm::LlmEngine;
use secondme::reply::llm::config::{LlmConfig, Provider};
use secondme::reply::llm::error::LlmError;
use secondme::reply::{ReplyEngine, ReplyRequest};
use secondme::schema::{Direction, PersonaCache, QueueMessage};

#[tokio::test]
async fn a_real_model_answers_through_the_openai_protocol() {
    let Some(url) = std::env::var("SECONDME_TEST_LLM_URL")
        .ok()
        .filter(|u| !u.is_empty())
    else {
        eprintln!(
            "skipped: SECONDME_TEST_LLM_URL is not set (scripts/llm-local.sh, then node scripts/llm-server.mjs)"
        );
        return;
    };
    let mut cfg = LlmConfig::for_url(Provider::OpenAi, &url).expect("config");
    // A small model on a shared CPU: slow, so a long deadline and no retries.
    cfg.timeout = Duration::from_secs(300);
    cfg.max_retries = 0;
    cfg.owner_name = Some("Sam".into());
    cfg.history_messages = 4;
    // Short answers: a 135M model on a shared CPU writes a few tokens a second.
    cfg.fast_max_tokens = 20;
    cfg.strong_max_tokens = 40;
    let engine = LlmEngine::with_key(cfg, None).expect("engine");
    let persona = PersonaCache {
        style_guide: "Short lowercase messages, no sign-off, an emoji now and then.".into(),
        tone: "relaxed".into(),
        example_messages: vec![
            "haha yes, totally".into(),
            "sounds good, see you there".into(),
        ],
    };
    let context = ContactContext {
        name: Some("Maria".into()),
        relationship_type: "friend".into(),
        people: Vec::new(),
        topics: vec!["climbing".into()],
    };
    let history = [HistoryTurn {
        message_id: "h1".into(),
        speaker: Speaker::Contact,
        text: "back from the gym".into(),
        timestamp: 1,
    }];
    let mut answered = 0;
    for (i, text) in [
        "hey! are we still on for dinner tomorrow?",
        "thanks!",
        "did you go climbing this weekend?",
        "can you send me the address?",
    ]
    .iter()
    .enumerate()
    {
        let message = QueueMessage {
            message_id: format!("m{i}"),
            contact_id: "c1".into(),
            content: (*text).into(),
            timestamp: 2,
            direction: Direction::Incoming,
            from_me: false,
        };
        let request = ReplyRequest {
            message: &message,
            persona_id: "casual",
            persona: &persona,
            context: Some(&context),
            history: &history,
            learned: None,
        };
        match engine.reply(&request).await {
            Ok(reply) => {
                eprintln!(
                    "{text:?} -> {:?} ({} ms typing)",
                    reply.content, reply.delay_ms
                );
                assert!(!reply.content.trim().is_empty());
                assert!(reply.delay_ms >= 2000);
                answered += 1;
            }
            // The protocol worked; the tiny model's text was dropped by the cleaner.
            Err(e)
                if matches!(
                    e.downcast_ref(),
                    Some(LlmError::Unusable(_) | LlmError::Refused(_))
                ) =>
            {
                eprintln!("{text:?} -> dropped: {e:#}");
            }
            Err(e) => panic!("{text:?}: {e:#}"),
        }
    }
    assert!(answered > 0, "no reply survived the cleaner");
    assert!(
        engine.shared().status().spent_today > 0,
        "usage was counted"
    );
}
