//! Anthropic Messages: `POST {base}/v1/messages`, `x-api-key`,
//! `anthropic-version: 2023-06-01`, the system prompt as a top-level field and
//! strictly alternating turns.

use serde::{Deserialize, Serialize};

use super::chat::{
    Base64, ChatRequest, Completion, Content, ImagePart, Message, alternate, attach_image,
    strip_think_tags, to_json,
};
use super::error::LlmError;
use super::http::Header;
use super::usage::token_count;

/// The API version sent.
pub const VERSION: &str = "2023-06-01";

/// The URL of the endpoint.
pub fn url(base: &str) -> String {
    format!("{base}/v1/messages")
}

/// The headers: the version, and the key when there is one.
pub fn headers(api_key: Option<&str>) -> Vec<Header> {
    let mut h = vec![Header {
        name: "anthropic-version",
        value: VERSION.to_owned(),
        secret: false,
    }];
    if let Some(key) = api_key {
        h.push(Header {
            name: "x-api-key",
            value: key.to_owned(),
            secret: true,
        });
    }
    h
}

/// The image types the Messages API takes.
pub const IMAGE_TYPES: [&str; 4] = ["image/jpeg", "image/png", "image/gif", "image/webp"];

/// The largest image taken, in base64 characters: Anthropic's 5 MB per image
/// is measured on the base64 string (its 400 reads "image exceeds 5 MB
/// maximum: N bytes > 5242880 bytes"), so about 3.75 MiB of image.
pub const MAX_IMAGE_BASE64: usize = 5 << 20;

/// The request body, as JSON: `system` on top, turns merged so they alternate
/// from the user; `image` goes with the last (the user's) as a base64 image
/// block before its text. Its type is one of [`IMAGE_TYPES`]: the caller checks.
pub fn body(req: &ChatRequest, image: Option<&ImagePart<'_>>) -> Result<Vec<u8>, LlmError> {
    let turns = alternate(&req.turns);
    let mut messages: Vec<Message<'_, ImageBlock<'_>>> = turns
        .iter()
        .map(|t| Message {
            role: t.role.as_str(),
            content: Content::Text(&t.text),
        })
        .collect();
    if let Some(image) = image {
        let block = ImageBlock {
            kind: "image",
            source: Source {
                kind: "base64",
                media_type: &image.media_type,
                data: image.base64(),
            },
        };
        attach_image(&mut messages, block, true);
    }
    let body = Body {
        model: &req.model,
        system: &req.system,
        messages,
        max_tokens: req.max_tokens,
        temperature: req.temperature,
    };
    to_json(&body, req, image)
}

#[derive(Serialize)]
struct Body<'a> {
    model: &'a str,
    system: &'a str,
    messages: Vec<Message<'a, ImageBlock<'a>>>,
    max_tokens: u32,
    temperature: f32,
}

#[derive(Serialize)]
struct ImageBlock<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    source: Source<'a>,
}

#[derive(Serialize)]
struct Source<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    media_type: &'a str,
    data: Base64<'a>,
}

#[derive(Deserialize)]
struct Response {
    #[serde(default)]
    content: Vec<Block>,
    #[serde(default)]
    stop_reason: Option<String>,
    #[serde(default)]
    usage: Option<Usage>,
}

#[derive(Deserialize)]
struct Block {
    #[serde(default, rename = "type")]
    kind: String,
    #[serde(default)]
    text: Option<String>,
}

#[derive(Deserialize, Default)]
struct Usage {
    #[serde(default, deserialize_with = "token_count")]
    input_tokens: u64,
    #[serde(default, deserialize_with = "token_count")]
    output_tokens: u64,
    #[serde(default, deserialize_with = "token_count")]
    cache_creation_input_tokens: u64,
    #[serde(default, deserialize_with = "token_count")]
    cache_read_input_tokens: u64,
}

/// Reads a 2xx body: the `text` blocks joined; `thinking`, `redacted_thinking`
/// and any other block type are skipped.
pub fn parse(body: &str) -> Result<Completion, LlmError> {
    let r: Response = serde_json::from_str(body)
        .map_err(|e| LlmError::Decode(format!("not a Messages answer ({e})")))?;
    let text: Vec<&str> = r
        .content
        .iter()
        .filter(|b| b.kind == "text")
        .filter_map(|b| b.text.as_deref())
        .collect();
    let usage = r.usage.unwrap_or_default();
    // The server's numbers: a sum that overflowed would panic.
    let prompt = usage
        .input_tokens
        .saturating_add(usage.cache_creation_input_tokens)
        .saturating_add(usage.cache_read_input_tokens);
    Ok(Completion {
        text: strip_think_tags(&text.join("")),
        finish_reason: r.stop_reason,
        prompt_tokens: prompt,
        completion_tokens: usage.output_tokens,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reply::llm::chat::{Role, Turn};
    use serde_json::json;

    fn value(req: &ChatRequest, image: Option<&ImagePart<'_>>) -> serde_json::Value {
        serde_json::from_slice(&body(req, image).expect("a body")).expect("JSON")
    }

    #[test]
    fn system_on_top_and_turns_alternate() {
        let turn = |role, text: &str| Turn {
            role,
            text: text.into(),
        };
        let req = ChatRequest {
            model: "claude".into(),
            system: "rules".into(),
            turns: vec![
                turn(Role::Assistant, "old"),
                turn(Role::User, "a"),
                turn(Role::User, "b"),
            ],
            max_tokens: 10,
            temperature: 0.7,
        };
        let b = value(&req, None);
        assert_eq!(b["system"], "rules");
        assert_eq!(b["messages"].as_array().map(Vec::len), Some(1));
        assert_eq!(b["messages"][0]["content"], "a\nb");
        let image = ImagePart::new("image/webp", b"webp").expect("an image");
        let b = value(&req, Some(&image));
        assert_eq!(
            b["messages"][0]["content"],
            json!([
                {"type": "image", "source": {"type": "base64", "media_type": "image/webp", "data": "d2VicA=="}},
                {"type": "text", "text": "a\nb"}
            ])
        );
    }

    #[test]
    fn thinking_blocks_and_unknown_blocks_are_skipped() {
        let c = parse(r#"{"id":"msg","type":"message","role":"assistant","content":[{"type":"thinking","thinking":"hmm","signature":"s"},{"type":"redacted_thinking","data":"x"},{"type":"text","text":"sure, 7pm"},{"type":"new_kind"}],"stop_reason":"brand_new_reason","usage":{"input_tokens":20,"output_tokens":4,"cache_read_input_tokens":5}}"#)
            .expect("parses");
        assert_eq!(c.text, "sure, 7pm");
        assert_eq!(c.finish_reason.as_deref(), Some("brand_new_reason"));
        assert_eq!((c.prompt_tokens, c.completion_tokens), (25, 4));
        assert_eq!(parse(r#"{"content":[]}"#).expect("parses").text, "");
    }

    #[test]
    fn token_counts_that_would_overflow_saturate() {
        let max = u64::MAX;
        let c = parse(&format!(
            r#"{{"content":[{{"type":"text","text":"ok"}}],"usage":{{"input_tokens":{max},"cache_read_input_tokens":{max},"output_tokens":"many"}}}}"#
        ))
        .expect("parses");
        assert_eq!((c.prompt_tokens, c.completion_tokens), (max, 0));
    }
}
