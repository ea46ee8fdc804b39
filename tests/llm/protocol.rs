//! The language-model engine against a fake server speaking real HTTP: both
//! protocols, the retry policy, deadlines, the circuit breaker, tolerant
//! parsing, and the key kept out of the log.

use std::time::{Duration, Instant};

use crate::fake_llm::{FakeLlm, Step};
use crate::llm_error;
use crate::logs::Captured;
use secondme::reply::input::{ContactContext, HistoryTurn, Speaker};
use secondme::reply::llm::LlmEngine;
use secondme::reply::llm::config::{LlmConfig, Provider};
use secondme::reply::llm::error::LlmError;
use secondme::reply::{Reply, ReplyEngine, ReplyRequest};
use secondme::schema::{Direction, PersonaCache, QueueMessage};

const KEY: &str = "sk-test-SECRETKEY-0123456789";

fn openai_ok(text: &str) -> String {
    serde_json::json!({
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text, "annotations": []},
                     "finish_reason": "stop", "logprobs": null}],
        "usage": {"prompt_tokens": 42, "completion_tokens": 7, "total_tokens": 49,
                  "prompt_tokens_details": {"cached_tokens": 0}},
        "service_tier": "default",
        "brand_new_field": {"nested": [1, 2, 3]}
    })
    .to_string()
}

fn anthropic_ok(text: &str) -> String {
    serde_json::json!({
        "id": "msg_1", "type": "message", "role": "assistant", "model": "claude",
        "content": [{"type": "thinking", "thinking": "they ask about dinner", "signature": "x"},
                    {"type": "text", "text": text}],
        "stop_reason": "end_turn", "stop_sequence": null,
        "usage": {"input_tokens": 30, "output_tokens": 5, "service_tier": "standard"}
    })
    .to_string()
}

fn config(provider: Provider, url: &str) -> LlmConfig {
    let mut c = LlmConfig::for_url(provider, url).expect("config");
    c.fast_model = "fast-model".into();
    c.strong_model = "strong-model".into();
    c.timeout = Duration::from_secs(10);
    c
}

fn engine(cfg: LlmConfig) -> LlmEngine {
    LlmEngine::with_key(cfg, Some(KEY.into())).expect("engine")
}

struct Input {
    message: QueueMessage,
    persona: PersonaCache,
    context: ContactContext,
    history: Vec<HistoryTurn>,
}

fn input(text: &str) -> Input {
    let turn = |id: &str, speaker, text: &str| HistoryTurn {
        message_id: id.into(),
        speaker,
        text: text.into(),
        timestamp: 1,
    };
    Input {
        message: QueueMessage {
            message_id: "m3".into(),
            contact_id: "c1".into(),
            content: text.into(),
            timestamp: 3,
            direction: Direction::Incoming,
            from_me: false,
        },
        persona: PersonaCache {
            style_guide: "Short lowercase messages.".into(),
            tone: "relaxed".into(),
            example_messages: vec!["haha yes, totally".into()],
        },
        context: ContactContext {
            name: Some("Maria".into()),
            relationship_type: "friend".into(),
            people: Vec::new(),
            topics: vec!["climbing".into()],
        },
        history: vec![
            turn("m1", Speaker::Contact, "hey"),
            turn("m2", Speaker::Contact, "you around?"),
            turn("bot_m2", Speaker::Twin, "yep!"),
            turn("m3", Speaker::Contact, text),
        ],
    }
}

async fn ask(engine: &LlmEngine, i: &Input) -> anyhow::Result<Reply> {
    engine
        .reply(&ReplyRequest {
            message: &i.message,
            persona_id: "casual",
            persona: &i.persona,
            context: Some(&i.context),
            history: &i.history,
            learned: None,
        })
        .await
}

#[tokio::test]
async fn openai_success_carries_the_bearer_key_the_prompt_and_the_history() {
    let fake = FakeLlm::start(vec![Step::ok(&openai_ok("Sam: \"**sure**, 8 works!\""))]).await;
    let mut cfg = config(Provider::OpenAi, &fake.url);
    cfg.owner_name = Some("Sam".into());
    let e = engine(cfg);
    let reply = ask(&e, &input("dinner tomorrow at 8?"))
        .await
        .expect("reply");
    assert_eq!(reply.content, "sure, 8 works!");
    assert!(reply.delay_ms >= 2000, "{}", reply.delay_ms);
    let reqs = fake.requests();
    assert_eq!(reqs.len(), 1);
    let r = &reqs[0];
    assert_eq!(
        (r.method.as_str(), r.path.as_str()),
        ("POST", "/v1/chat/completions")
    );
    assert_eq!(
        r.header("authorization"),
        Some(format!("Bearer {KEY}").as_str())
    );
    assert_eq!(r.header("x-api-key"), None);
    assert_eq!(
        r.body["model"], "strong-model",
        "a question goes to the strong model"
    );
    let messages = r.body["messages"].as_array().expect("messages");
    let roles: Vec<&str> = messages.iter().filter_map(|m| m["role"].as_str()).collect();
    assert_eq!(roles, ["system", "user", "user", "assistant", "user"]);
    assert_eq!(messages[4]["content"], "dinner tomorrow at 8?");
    let system = messages[0]["content"].as_str().expect("system");
    assert!(
        system.contains("You are Sam") && system.contains("- name: Maria"),
        "{system}"
    );
    assert!(system.contains("no markdown"), "{system}");
    let status = e.shared().status();
    assert_eq!(status.spent_today, 49);
    assert_eq!(status.breaker.reason, None);
}

#[tokio::test]
async fn a_phatic_message_goes_to_the_fast_model_with_a_small_cap() {
    let fake = FakeLlm::start(vec![Step::ok(&openai_ok("<think>be nice</think>😊"))]).await;
    let e = engine(config(Provider::OpenAi, &fake.url));
    let reply = ask(&e, &input("thanks!")).await.expect("reply");
    assert_eq!(reply.content, "😊");
    let body = &fake.requests()[0].body;
    assert_eq!(body["model"], "fast-model");
    assert_eq!(body["max_tokens"], 60);
}

#[tokio::test]
async fn phatic_to_template_answers_without_a_request() {
    let fake = FakeLlm::start(vec![]).await;
    let mut cfg = config(Provider::OpenAi, &fake.url);
    cfg.phatic_to_template = true;
    let reply = ask(&engine(cfg), &input("ok")).await.expect("reply");
    assert!(!reply.content.is_empty());
    assert!(fake.requests().is_empty());
}

#[tokio::test]
async fn anthropic_success_sends_its_headers_system_on_top_and_alternating_turns() {
    let fake = FakeLlm::start(vec![Step::ok(&anthropic_ok("sure, 8 works"))]).await;
    let e = engine(config(Provider::Anthropic, &fake.url));
    let reply = ask(&e, &input("dinner tomorrow at 8?"))
        .await
        .expect("reply");
    assert_eq!(reply.content, "sure, 8 works");
    let reqs = fake.requests();
    assert_eq!(reqs.len(), 1);
    let r = &reqs[0];
    assert_eq!(r.path, "/v1/messages");
    assert_eq!(r.header("x-api-key"), Some(KEY));
    assert_eq!(r.header("anthropic-version"), Some("2023-06-01"));
    assert_eq!(r.header("authorization"), None);
    assert!(
        r.body["system"]
            .as_str()
            .is_some_and(|s| s.contains("Maria"))
    );
    let messages = r.body["messages"].as_array().expect("messages");
    let roles: Vec<&str> = messages.iter().filter_map(|m| m["role"].as_str()).collect();
    assert_eq!(roles, ["user", "assistant", "user"]);
    assert_eq!(messages[0]["content"], "hey\nyou around?");
    assert_eq!(e.shared().status().spent_today, 35);
}

#[tokio::test]
async fn a_429_with_retry_after_is_waited_for_then_retried() {
    let fake = FakeLlm::start(vec![
        Step::with_header(
            429,
            "retry-after",
            "1",
            r#"{"error":{"message":"slow down","type":"requests","code":"rate_limit_exceeded"}}"#,
        ),
        Step::ok(&openai_ok("done")),
    ])
    .await;
    let reply = ask(
        &engine(config(Provider::OpenAi, &fake.url)),
        &input("and the plan?"),
    )
    .await
    .expect("reply after the wait");
    assert_eq!(reply.content, "done");
    let reqs = fake.requests();
    assert_eq!(reqs.len(), 2);
    let gap = reqs[1].at - reqs[0].at;
    assert!(gap >= Duration::from_millis(950), "waited only {gap:?}");
}

#[tokio::test]
async fn retry_after_ms_wins_over_retry_after() {
    let fake = FakeLlm::start(vec![
        Step::Respond {
            status: 503,
            headers: vec![
                ("retry-after-ms".into(), "200".into()),
                ("retry-after".into(), "30".into()),
            ],
            body: "{}".into(),
        },
        Step::ok(&openai_ok("back")),
    ])
    .await;
    let started = Instant::now();
    let reply = ask(&engine(config(Provider::OpenAi, &fake.url)), &input("so?"))
        .await
        .expect("reply");
    assert_eq!(reply.content, "back");
    assert!(started.elapsed() < Duration::from_secs(5));
    let reqs = fake.requests();
    assert!(reqs[1].at - reqs[0].at >= Duration::from_millis(190));
}

#[tokio::test]
async fn a_retry_after_past_the_deadline_fails_at_once() {
    let fake = FakeLlm::start(vec![Step::with_header(429, "retry-after", "120", "{}")]).await;
    let started = Instant::now();
    let err = ask(
        &engine(config(Provider::OpenAi, &fake.url)),
        &input("when?"),
    )
    .await
    .expect_err("too long a wait");
    assert!(
        matches!(llm_error(&err), LlmError::WaitTooLong { .. }),
        "{err:#}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(fake.requests().len(), 1);
}

#[tokio::test]
async fn a_quota_429_is_one_request_and_opens_the_breaker() {
    let quota = r#"{"error":{"message":"You exceeded your current quota","type":"insufficient_quota","param":null,"code":"insufficient_quota"}}"#;
    let fake = FakeLlm::start(vec![Step::with_header(429, "retry-after", "1", quota)]).await;
    let e = engine(config(Provider::OpenAi, &fake.url));
    let err = ask(&e, &input("when?")).await.expect_err("quota");
    assert!(llm_error(&err).permanent(), "{err:#}");
    assert_eq!(fake.requests().len(), 1);
    let breaker = e.shared().status().breaker;
    assert!(
        breaker
            .reason
            .as_deref()
            .is_some_and(|r| r.contains("quota")),
        "{breaker:?}"
    );
    // Open: the next message fails without a request.
    let err = ask(&e, &input("hello?")).await.expect_err("breaker open");
    assert!(
        matches!(llm_error(&err), LlmError::BreakerOpen { .. }),
        "{err:#}"
    );
    assert_eq!(fake.requests().len(), 1);
}

#[tokio::test]
async fn an_anthropic_billing_error_opens_the_breaker_and_a_cool_down_closes_it() {
    let billing = r#"{"type":"error","error":{"type":"billing_error","message":"Your credit balance is too low"}}"#;
    let fake = FakeLlm::start(vec![
        Step::status(400, billing),
        Step::ok(&anthropic_ok("hi again")),
    ])
    .await;
    let mut cfg = config(Provider::Anthropic, &fake.url);
    cfg.breaker_cooldown = Duration::from_millis(300);
    let e = engine(cfg);
    assert!(ask(&e, &input("plans?")).await.is_err());
    assert!(ask(&e, &input("plans?")).await.is_err(), "still open");
    assert_eq!(fake.requests().len(), 1);
    tokio::time::sleep(Duration::from_millis(350)).await;
    let reply = ask(&e, &input("plans?")).await.expect("closed again");
    assert_eq!(reply.content, "hi again");
    assert_eq!(fake.requests().len(), 2);
}

#[tokio::test]
async fn a_401_is_one_request_and_permanent() {
    let fake = FakeLlm::start(vec![Step::status(
        401,
        r#"{"error":{"message":"Incorrect API key provided","code":"invalid_api_key"}}"#,
    )])
    .await;
    let e = engine(config(Provider::OpenAi, &fake.url));
    let err = ask(&e, &input("hi there, question?"))
        .await
        .expect_err("401");
    assert!(
        matches!(llm_error(&err), LlmError::Status { status: 401, .. }),
        "{err:#}"
    );
    assert_eq!(fake.requests().len(), 1);
    assert!(e.shared().status().breaker.reason.is_some());
}

#[tokio::test]
async fn a_400_is_one_request_and_leaves_the_engine_on() {
    let fake = FakeLlm::start(vec![
        Step::status(
            400,
            r#"{"error":{"message":"context too long","type":"invalid_request_error"}}"#,
        ),
        Step::ok(&openai_ok("fine")),
    ])
    .await;
    let e = engine(config(Provider::OpenAi, &fake.url));
    let err = ask(&e, &input("what?")).await.expect_err("400");
    assert!(!llm_error(&err).permanent());
    assert_eq!(fake.requests().len(), 1);
    assert_eq!(e.shared().status().breaker.reason, None);
    assert_eq!(
        ask(&e, &input("what?")).await.expect("next").content,
        "fine"
    );
}

#[tokio::test]
async fn server_errors_and_529_are_retried_a_bounded_number_of_times() {
    for status in [500, 503, 529] {
        let fake = FakeLlm::start(vec![
            Step::status(
                status,
                r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#
            );
            4
        ])
        .await;
        let mut cfg = config(Provider::Anthropic, &fake.url);
        cfg.max_retries = 2;
        let e = engine(cfg);
        let err = ask(&e, &input("ok?")).await.expect_err("always failing");
        assert!(llm_error(&err).retryable(), "{status}: {err:#}");
        assert_eq!(
            fake.requests().len(),
            3,
            "{status}: one try and two retries"
        );
        assert_eq!(e.shared().status().breaker.reason, None, "{status}");
    }
}

#[tokio::test]
async fn an_html_502_from_a_proxy_is_retried() {
    let html = "<html><head><title>502 Bad Gateway</title></head><body><center><h1>502 Bad Gateway</h1></center><hr><center>nginx</center></body></html>";
    let fake = FakeLlm::start(vec![
        Step::Respond {
            status: 502,
            headers: vec![("content-type".into(), "text/html".into())],
            body: html.into(),
        },
        Step::ok(&openai_ok("there")),
    ])
    .await;
    let reply = ask(
        &engine(config(Provider::OpenAi, &fake.url)),
        &input("where?"),
    )
    .await
    .expect("second try");
    assert_eq!(reply.content, "there");
    assert_eq!(fake.requests().len(), 2);
    // Alone, the page's words make the error.
    let fake = FakeLlm::start(vec![Step::Respond {
        status: 502,
        headers: vec![],
        body: html.into(),
    }])
    .await;
    let mut cfg = config(Provider::OpenAi, &fake.url);
    cfg.max_retries = 0;
    let err = ask(&engine(cfg), &input("where?")).await.expect_err("502");
    assert!(format!("{err:#}").contains("502 Bad Gateway"), "{err:#}");
}

#[tokio::test]
async fn truncated_json_fails_this_reply_after_one_request() {
    let fake = FakeLlm::start(vec![Step::ok(r#"{"choices":[{"message":{"content":"hel"#)]).await;
    let e = engine(config(Provider::OpenAi, &fake.url));
    let err = ask(&e, &input("what?")).await.expect_err("truncated");
    assert!(matches!(llm_error(&err), LlmError::Decode(_)), "{err:#}");
    assert_eq!(fake.requests().len(), 1);
    assert_eq!(e.shared().status().breaker.reason, None);
}

#[tokio::test]
async fn headers_that_never_come_end_at_the_deadline() {
    let fake = FakeLlm::start(vec![Step::Silent, Step::Silent]).await;
    let mut cfg = config(Provider::OpenAi, &fake.url);
    cfg.timeout = Duration::from_millis(800);
    let started = Instant::now();
    let err = ask(&engine(cfg), &input("hello?"))
        .await
        .expect_err("deadline");
    let took = started.elapsed();
    assert!(matches!(llm_error(&err), LlmError::Timeout(_)), "{err:#}");
    assert!(
        took >= Duration::from_millis(750) && took < Duration::from_millis(2000),
        "{took:?}"
    );
    assert_eq!(fake.requests().len(), 1);
}

#[tokio::test]
async fn a_stalled_body_ends_at_the_deadline() {
    let body = openai_ok("never finished");
    let fake = FakeLlm::start(vec![Step::StallBody { body, sent: 20 }]).await;
    let mut cfg = config(Provider::OpenAi, &fake.url);
    cfg.timeout = Duration::from_millis(800);
    let started = Instant::now();
    let err = ask(&engine(cfg), &input("hello?"))
        .await
        .expect_err("stalled");
    assert!(matches!(llm_error(&err), LlmError::Timeout(_)), "{err:#}");
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn a_dripped_answer_within_the_deadline_is_read() {
    let fake = FakeLlm::start(vec![Step::Drip {
        body: openai_ok("slowly"),
        every: Duration::from_millis(5),
    }])
    .await;
    let reply = ask(
        &engine(config(Provider::OpenAi, &fake.url)),
        &input("hello?"),
    )
    .await
    .expect("dripped");
    assert_eq!(reply.content, "slowly");
}

#[tokio::test]
async fn a_reset_connection_is_retried() {
    let fake = FakeLlm::start(vec![Step::Reset, Step::ok(&openai_ok("reconnected"))]).await;
    let reply = ask(
        &engine(config(Provider::OpenAi, &fake.url)),
        &input("hello?"),
    )
    .await
    .expect("retried");
    assert_eq!(reply.content, "reconnected");
    assert_eq!(fake.requests().len(), 2);
}

#[tokio::test]
async fn a_refusal_or_an_empty_answer_never_becomes_a_reply() {
    for (text, refused) in [
        ("As an AI language model, I cannot meet anyone.", true),
        ("   ", false),
        ("<think>hmm", false),
    ] {
        let fake = FakeLlm::start(vec![Step::ok(&openai_ok(text))]).await;
        let err = ask(
            &engine(config(Provider::OpenAi, &fake.url)),
            &input("meet me?"),
        )
        .await
        .expect_err(text);
        let error = llm_error(&err);
        if refused {
            assert!(matches!(error, LlmError::Refused(_)), "{err:#}");
        } else {
            assert!(matches!(error, LlmError::Unusable(_)), "{err:#}");
        }
    }
    let fake = FakeLlm::start(vec![Step::ok(
        r#"{"choices":[{"message":{"content":null},"finish_reason":"content_filter"}]}"#,
    )])
    .await;
    let err = ask(
        &engine(config(Provider::OpenAi, &fake.url)),
        &input("meet me?"),
    )
    .await
    .expect_err("null content");
    assert!(matches!(llm_error(&err), LlmError::Unusable(_)), "{err:#}");
}

#[tokio::test]
async fn the_daily_budget_stops_calls_once_spent() {
    let fake = FakeLlm::start(vec![
        Step::ok(&openai_ok("one")),
        Step::ok(&openai_ok("two")),
    ])
    .await;
    let mut cfg = config(Provider::OpenAi, &fake.url);
    cfg.daily_token_budget = 40;
    let e = engine(cfg);
    assert_eq!(
        ask(&e, &input("first?")).await.expect("first").content,
        "one"
    );
    let err = ask(&e, &input("second?")).await.expect_err("spent");
    assert!(
        matches!(llm_error(&err), LlmError::BudgetSpent { budget: 40 }),
        "{err:#}"
    );
    assert_eq!(fake.requests().len(), 1);
}

#[tokio::test(flavor = "current_thread")]
async fn the_api_key_never_reaches_the_log() {
    let captured = Captured::start(tracing::Level::TRACE);
    // The server quotes the key back, as OpenAI's 401 does in part.
    let echo = format!(
        r#"{{"error":{{"message":"Incorrect API key provided: {KEY}. Or sk-test***6789.","code":"invalid_api_key"}}}}"#
    );
    let fake = FakeLlm::start(vec![
        Step::status(503, "{}"),
        Step::Reset,
        Step::status(401, &echo),
    ])
    .await;
    let e = engine(config(Provider::OpenAi, &fake.url));
    tracing::info!(?e, "engine built");
    let err = ask(&e, &input("hello?")).await.expect_err("401 in the end");
    tracing::error!("{err:#}");
    assert_eq!(fake.requests().len(), 3);
    let log = captured.text();
    assert!(log.contains("401"), "the failure is logged:\n{log}");
    assert!(
        !log.contains("SECRETKEY") && !log.contains("6789"),
        "the key leaked:\n{log}"
    );
    assert!(!format!("{err:#}").contains("SECRETKEY"));
}

#[test]
fn the_llm_table_and_the_llm_url_flag_configure_the_engine() {
    use clap::Parser;
    use secondme::config::{Config, Settings};
    let file: Settings = toml::from_str(
        "[llm]\nprovider = \"anthropic\"\nfast_model = \"haiku\"\nstrong_model = \"sonnet\"\ndaily_token_budget = 5000\n",
    )
    .expect("the [llm] table parses");
    let c = Config::resolve(file.clone()).expect("resolves");
    let llm = c.llm.expect("configured by the table");
    assert_eq!(llm.provider, Provider::Anthropic);
    assert_eq!(llm.base_url, "https://api.anthropic.com");
    assert_eq!(
        (llm.fast_model.as_str(), llm.daily_token_budget),
        ("haiku", 5000)
    );

    #[derive(Debug, clap::Parser)]
    struct Cli {
        #[command(flatten)]
        settings: Settings,
    }
    let cli = Cli::try_parse_from(["secondme", "--llm-url", "http://127.0.0.1:11434/v1"])
        .expect("the flag parses");
    let c = Config::resolve(cli.settings.or(file)).expect("resolves");
    let llm = c.llm.expect("configured");
    assert_eq!(
        llm.base_url, "http://127.0.0.1:11434",
        "the flag wins over the table"
    );
    assert_eq!(llm.strong_model, "sonnet");
    assert!(
        Config::resolve(Settings::default())
            .expect("defaults")
            .llm
            .is_none()
    );
    assert!(
        toml::from_str::<Settings>("[llm]\napi_key = \"sk-x\"\n").is_err(),
        "no key in the file"
    );
}

#[test]
fn the_shipped_provider_examples_resolve() {
    use secondme::config::{Config, Settings};
    for (text, provider) in [
        (
            include_str!("../../assets/llm-openai.toml"),
            Provider::OpenAi,
        ),
        (
            include_str!("../../assets/llm-anthropic.toml"),
            Provider::Anthropic,
        ),
        (
            include_str!("../../assets/llm-local.toml"),
            Provider::OpenAi,
        ),
    ] {
        let settings: Settings = toml::from_str(text).expect("parses");
        let llm = Config::resolve(settings)
            .expect("resolves")
            .llm
            .expect("configured");
        assert_eq!(llm.provider, provider);
    }
}
