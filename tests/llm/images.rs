//! Photos to the language model (issue 23) against a fake server speaking real
//! HTTP: the image and its caption in each protocol's shape, the gist cleaned,
//! refusals without a request, failures classified for the worker, and neither
//! the key, the image's bytes, the caption nor the gist in an error or the log.

use std::time::Duration;

use base64::Engine as _;
use serde_json::json;

#[path = "../common/big_allocs.rs"]
mod big_allocs;

use crate::fake_llm::{FakeLlm, Step};
use crate::logs::Captured;
use crate::openai_ok;
use secondme::media::UnderstandError;
use secondme::reply::llm::LlmEngine;
use secondme::reply::llm::config::{LlmConfig, Provider};
use secondme::reply::{ImageInput, ReplyEngine};

#[global_allocator]
static ALLOCATOR: big_allocs::Counting = big_allocs::Counting;

const KEY: &str = "sk-test-SECRETKEY-0123456789";
const CAPTION: &str = "look at my new car!";

fn anthropic_ok(text: &str) -> String {
    json!({
        "id": "msg_1", "type": "message", "role": "assistant", "model": "claude",
        "content": [{"type": "text", "text": text}],
        "stop_reason": "end_turn",
        "usage": {"input_tokens": 1500, "output_tokens": 6}
    })
    .to_string()
}

/// A photo's bytes: not text, every byte value, so the base64 is not trivial.
fn photo() -> Vec<u8> {
    (0..4096u32).map(|i| (i * 37 % 256) as u8).collect()
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn engine(provider: Provider, url: &str, images: bool) -> LlmEngine {
    engine_with(provider, url, images, |_| {})
}

fn engine_with(
    provider: Provider,
    url: &str,
    images: bool,
    adjust: impl FnOnce(&mut LlmConfig),
) -> LlmEngine {
    let mut cfg = LlmConfig::for_url(provider, url).expect("config");
    cfg.fast_model = "fast-model".into();
    cfg.strong_model = "strong-model".into();
    cfg.timeout = Duration::from_secs(10);
    cfg.images = images;
    adjust(&mut cfg);
    LlmEngine::with_key(cfg, Some(KEY.into())).expect("engine")
}

async fn describe(
    e: &LlmEngine,
    bytes: &[u8],
    mime: &str,
    caption: &str,
) -> Result<String, UnderstandError> {
    e.describe_image(&ImageInput {
        bytes,
        mime,
        caption,
    })
    .await
}

fn permanent(r: Result<String, UnderstandError>) -> String {
    match r {
        Err(UnderstandError::Permanent(why)) => why,
        other => panic!("not a permanent failure: {other:?}"),
    }
}

#[tokio::test]
async fn openai_gets_the_photo_as_a_data_url_beside_its_caption() {
    let fake = FakeLlm::start(vec![Step::ok(&openai_ok(
        "Description: \"A red sports car\nparked outside a house.\"",
    ))])
    .await;
    let e = engine(Provider::OpenAi, &fake.url, true);
    assert!(e.takes_images());
    let bytes = photo();
    let gist = describe(&e, &bytes, "image/jpeg", CAPTION)
        .await
        .expect("a gist");
    assert_eq!(gist, "A red sports car parked outside a house");
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
    assert_eq!(
        r.body["model"], "strong-model",
        "photos go to the strong model"
    );
    let messages = r.body["messages"].as_array().expect("messages");
    assert_eq!(messages.len(), 2);
    assert_eq!(messages[0]["role"], "system");
    let system = messages[0]["content"].as_str().expect("system text");
    assert!(system.contains("at most 12 words"), "{system}");
    assert_eq!(messages[1]["role"], "user");
    let content = messages[1]["content"].as_array().expect("content parts");
    assert_eq!(content.len(), 2);
    assert_eq!(content[0]["type"], "text");
    assert!(
        content[0]["text"]
            .as_str()
            .is_some_and(|t| t.contains(CAPTION)),
        "{content:?}"
    );
    assert_eq!(content[1]["type"], "image_url");
    assert_eq!(
        content[1]["image_url"]["url"].as_str(),
        Some(format!("data:image/jpeg;base64,{}", b64(&bytes)).as_str())
    );
    // Counted as a reply's call: openai_ok reports 10 + 3 tokens.
    assert_eq!(e.shared().status().spent_today, 13);
}

#[tokio::test]
async fn anthropic_gets_an_image_block_before_the_caption() {
    let fake = FakeLlm::start(vec![Step::ok(&anthropic_ok("a beagle on a beach"))]).await;
    let e = engine(Provider::Anthropic, &fake.url, true);
    let bytes = photo();
    let gist = describe(&e, &bytes, "image/png", CAPTION)
        .await
        .expect("a gist");
    assert_eq!(gist, "a beagle on a beach");
    let reqs = fake.requests();
    assert_eq!(reqs.len(), 1);
    let r = &reqs[0];
    assert_eq!(r.path, "/v1/messages");
    assert_eq!(r.header("x-api-key"), Some(KEY));
    assert_eq!(r.body["model"], "strong-model");
    assert!(
        r.body["system"]
            .as_str()
            .is_some_and(|s| s.contains("at most 12 words"))
    );
    let messages = r.body["messages"].as_array().expect("messages");
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0]["role"], "user");
    let content = messages[0]["content"].as_array().expect("content blocks");
    assert_eq!(
        content[0],
        json!({"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": b64(&bytes)}})
    );
    assert_eq!(content[1]["type"], "text");
    assert!(
        content[1]["text"]
            .as_str()
            .is_some_and(|t| t.contains(CAPTION)),
        "{content:?}"
    );
    assert_eq!(e.shared().status().spent_today, 1506);
}

#[tokio::test]
async fn a_photo_without_a_caption_still_goes_with_a_text() {
    let fake = FakeLlm::start(vec![Step::ok(&openai_ok("a sunset over the sea"))]).await;
    let e = engine(Provider::OpenAi, &fake.url, true);
    let gist = describe(&e, &photo(), "image/webp", "")
        .await
        .expect("a gist");
    assert_eq!(gist, "a sunset over the sea");
    let body = &fake.requests()[0].body;
    let text = body["messages"][1]["content"][0]["text"]
        .as_str()
        .expect("text part");
    assert!(text.contains("without a caption"), "{text}");
    assert!(
        body["messages"][1]["content"][1]["image_url"]["url"]
            .as_str()
            .is_some_and(|u| u.starts_with("data:image/webp;base64,"))
    );
}

#[tokio::test]
async fn without_images_nothing_is_sent() {
    let fake = FakeLlm::start(vec![Step::ok(&openai_ok("a red car"))]).await;
    let e = engine(Provider::OpenAi, &fake.url, false);
    assert!(!e.takes_images());
    let why = permanent(describe(&e, &photo(), "image/jpeg", CAPTION).await);
    assert!(why.contains("images"), "{why}");
    assert!(fake.requests().is_empty());
    assert_eq!(e.shared().status().spent_today, 0);
}

#[tokio::test]
async fn types_the_endpoint_cannot_take_are_refused_without_a_request() {
    let fake = FakeLlm::start(vec![]).await;
    let anthropic = engine(Provider::Anthropic, &fake.url, true);
    let why = permanent(describe(&anthropic, &photo(), "image/heic", CAPTION).await);
    assert!(why.contains("image/heic"), "{why}");
    let openai = engine(Provider::OpenAi, &fake.url, true);
    permanent(describe(&openai, &photo(), "video/mp4", CAPTION).await);
    permanent(describe(&openai, &[], "image/jpeg", CAPTION).await);
    assert!(fake.requests().is_empty());
}

#[tokio::test]
async fn a_400_is_permanent_after_one_request_and_leaves_the_engine_on() {
    let fake = FakeLlm::start(vec![
        Step::status(
            400,
            r#"{"error":{"message":"Invalid image.","type":"invalid_request_error"}}"#,
        ),
        Step::ok(&openai_ok("a red car")),
    ])
    .await;
    let e = engine(Provider::OpenAi, &fake.url, true);
    let why = permanent(describe(&e, &photo(), "image/jpeg", CAPTION).await);
    assert!(
        why.contains("400") && why.contains("Invalid image"),
        "{why}"
    );
    assert_eq!(fake.requests().len(), 1);
    assert_eq!(e.shared().status().breaker.reason, None);
    assert_eq!(
        describe(&e, &photo(), "image/jpeg", CAPTION).await,
        Ok("a red car".into())
    );
}

#[tokio::test]
async fn a_500_past_the_retries_is_transient() {
    let overloaded =
        r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#;
    let fake = FakeLlm::start(vec![Step::status(500, overloaded); 3]).await;
    let e = engine_with(Provider::Anthropic, &fake.url, true, |c| c.max_retries = 1);
    let r = describe(&e, &photo(), "image/jpeg", CAPTION).await;
    assert!(
        matches!(&r, Err(UnderstandError::Transient(why)) if why.contains("500")),
        "{r:?}"
    );
    assert_eq!(fake.requests().len(), 2, "one try and one retry");
    assert_eq!(e.shared().status().breaker.reason, None);
}

#[tokio::test]
async fn no_answer_within_the_timeout_is_transient() {
    let fake = FakeLlm::start(vec![Step::Silent]).await;
    let e = engine_with(Provider::OpenAi, &fake.url, true, |c| {
        c.timeout = Duration::from_millis(500);
    });
    let r = describe(&e, &photo(), "image/jpeg", CAPTION).await;
    assert!(matches!(r, Err(UnderstandError::Transient(_))), "{r:?}");
}

#[tokio::test]
async fn an_empty_or_declining_answer_is_permanent() {
    for answer in [
        "  ",
        "<think>it is a car",
        "I'm sorry, but I can't help with that.",
    ] {
        let fake = FakeLlm::start(vec![Step::ok(&openai_ok(answer))]).await;
        let e = engine(Provider::OpenAi, &fake.url, true);
        permanent(describe(&e, &photo(), "image/jpeg", CAPTION).await);
        assert_eq!(fake.requests().len(), 1, "{answer:?}");
    }
}

#[tokio::test]
async fn the_key_and_the_image_stay_out_of_errors_and_an_open_breaker_refuses() {
    let bytes = photo();
    let data = b64(&bytes);
    // The server quotes the key and the start of the image it was sent.
    let echo = json!({"error": {
        "message": format!("Incorrect API key provided: {KEY}. Request: data:image/jpeg;base64,{}", &data[..150]),
        "code": "invalid_api_key"
    }})
    .to_string();
    let fake = FakeLlm::start(vec![Step::status(401, &echo)]).await;
    let e = engine(Provider::OpenAi, &fake.url, true);
    let why = permanent(describe(&e, &bytes, "image/jpeg", CAPTION).await);
    assert!(why.contains("401"), "{why}");
    for piece in ["SECRETKEY", "6789", &data[20..40], &data[100..116]] {
        assert!(!why.contains(piece), "{piece:?} in {why}");
    }
    let breaker = e
        .shared()
        .status()
        .breaker
        .reason
        .expect("a 401 opens the breaker");
    assert!(
        !breaker.contains("SECRETKEY") && !breaker.contains(&data[20..40]),
        "{breaker}"
    );
    // Open: the next photo is refused for good, without a request.
    let why = permanent(describe(&e, &bytes, "image/jpeg", CAPTION).await);
    assert!(!why.contains("SECRETKEY"), "{why}");
    assert_eq!(fake.requests().len(), 1);
}

#[tokio::test(flavor = "current_thread")]
async fn the_caption_the_gist_and_the_image_never_reach_the_log() {
    let captured = Captured::start(tracing::Level::TRACE);
    let fake = FakeLlm::start(vec![
        Step::status(503, "{}"),
        Step::ok(&openai_ok("a lighthouse at dusk")),
    ])
    .await;
    let e = engine(Provider::OpenAi, &fake.url, true);
    let bytes = photo();
    let gist = describe(&e, &bytes, "image/jpeg", "grandma's secret recipe card")
        .await
        .expect("a gist after a retry");
    assert_eq!(gist, "a lighthouse at dusk");
    assert_eq!(fake.requests().len(), 2);
    let log = captured.text();
    assert!(
        log.contains("described a photo"),
        "the call is logged:\n{log}"
    );
    let data = b64(&bytes);
    for piece in ["secret recipe", "lighthouse", &data[..24], "SECRETKEY"] {
        assert!(!log.contains(piece), "{piece:?} in the log:\n{log}");
    }
}

/// The request is written once, straight from the photo's bytes: the one
/// large block taken is the body, which a retry sends again as it is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_body_is_written_once_from_the_photo_and_sent_again_on_a_retry() {
    let fake = FakeLlm::start(vec![
        Step::status(500, r#"{"error":{"message":"busy"}}"#),
        Step::ok(&openai_ok("a red car")),
    ])
    .await;
    let e = engine(Provider::OpenAi, &fake.url, true);
    let bytes: Vec<u8> = (0..3u32 << 20).map(|i| (i * 37 % 251) as u8).collect();
    let (gist, taken) = big_allocs::measure(describe(&e, &bytes, "image/jpeg", CAPTION)).await;
    assert_eq!(gist, Ok("a red car".into()));
    let reqs = fake.requests();
    assert_eq!(reqs.len(), 2, "a try and a retry");
    assert!(reqs[0].raw == reqs[1].raw, "the same body sent again");
    let sent = reqs[0].raw.len();
    let base64 = bytes.len().div_ceil(3) * 4;
    assert!(sent > base64, "{sent} bytes sent for {base64} of base64");
    // The body once, sized up front: no base64 copy, no data URL, no second
    // serialisation for the retry.
    assert!(
        taken >= sent && taken <= sent + 64 * 1024,
        "{taken} bytes taken in large blocks for a body of {sent}"
    );
}

/// Anthropic's 5 MB is counted on the base64 (5,242,880 characters, about
/// 3.75 MiB of image); OpenAI's 20 MB on the image. Over it, nothing is sent.
#[tokio::test]
async fn a_photo_over_the_providers_limit_is_refused_without_a_request() {
    let fake = FakeLlm::start(vec![Step::ok(&anthropic_ok("a big photo"))]).await;
    let anthropic = engine(Provider::Anthropic, &fake.url, true);
    // 3 bytes are 4 characters: 3,932,160 bytes are exactly 5,242,880.
    let at_limit = vec![0x5a; (5 << 20) / 4 * 3];
    assert_eq!(
        describe(&anthropic, &at_limit, "image/jpeg", CAPTION).await,
        Ok("a big photo".into())
    );
    let sent = &fake.requests()[0].body["messages"][0]["content"][0]["source"]["data"];
    assert_eq!(sent.as_str().map(str::len), Some(5 << 20));
    let over = vec![0x5a; (5 << 20) / 4 * 3 + 1];
    let why = permanent(describe(&anthropic, &over, "image/jpeg", CAPTION).await);
    assert!(
        why.contains("3932161 bytes") && why.contains("Anthropic"),
        "{why}"
    );
    assert_eq!(
        fake.requests().len(),
        1,
        "the photo over the limit is never sent"
    );

    let openai = engine(Provider::OpenAi, &fake.url, true);
    let over = vec![0x5a; (20 << 20) + 1];
    let why = permanent(describe(&openai, &over, "image/png", CAPTION).await);
    assert!(why.contains("OpenAI"), "{why}");
    assert_eq!(fake.requests().len(), 1, "nor the one over OpenAI's");
    assert_eq!(anthropic.shared().status().breaker.reason, None);
    assert_eq!(openai.shared().status().breaker.reason, None);
}

#[test]
fn a_photos_debug_shows_its_type_and_size_only() {
    let bytes = photo();
    let image = ImageInput {
        bytes: &bytes,
        mime: "image/jpeg",
        caption: "grandma's secret recipe card",
    };
    let debug = format!("{image:?}");
    assert!(
        debug.contains("image/jpeg") && debug.contains("4096"),
        "{debug}"
    );
    assert!(
        !debug.contains("secret") && !debug.contains("37"),
        "{debug}"
    );
}
