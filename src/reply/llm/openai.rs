//! OpenAI Chat Completions: `POST {base}/v1/chat/completions`, Bearer auth.

use serde::{Deserialize, Serialize};

use super::chat::{
    ChatRequest, Completion, Content, DataUrl, ImagePart, Message, attach_image, strip_think_tags,
    to_json,
};
use super::error::LlmError;
use super::http::Header;
use super::usage::token_count;

/// The URL of the endpoint.
pub fn url(base: &str) -> String {
    format!("{base}/v1/chat/completions")
}

/// The headers: the key as a Bearer token, when there is one (a local server needs none).
pub fn headers(api_key: Option<&str>) -> Vec<Header> {
    api_key
        .map(|key| Header {
            name: "authorization",
            value: format!("Bearer {key}"),
            secret: true,
        })
        .into_iter()
        .collect()
}

/// The largest image taken, bytes (OpenAI's limit per image: 20 MB).
pub const MAX_IMAGE_BYTES: usize = 20 << 20;

/// The request body, as JSON: the system prompt first, then the turns; `image`
/// goes with the last (the user's) as an `image_url` part holding a data URL.
pub fn body(req: &ChatRequest, image: Option<&ImagePart<'_>>) -> Result<Vec<u8>, LlmError> {
    let mut messages = vec![Message {
        role: "system",
        content: Content::Text(&req.system),
    }];
    messages.extend(req.turns.iter().map(|t| Message {
        role: t.role.as_str(),
        content: Content::Text(&t.text),
    }));
    if let Some(image) = image {
        let block = ImageBlock {
            kind: "image_url",
            image_url: ImageUrl {
                url: image.data_url(),
            },
        };
        attach_image(&mut messages, block, false);
    }
    let body = Body {
        model: &req.model,
        messages,
        max_tokens: req.max_tokens,
        temperature: req.temperature,
        stream: false,
    };
    to_json(&body, req, image)
}

#[derive(Serialize)]
struct Body<'a> {
    model: &'a str,
    messages: Vec<Message<'a, ImageBlock<'a>>>,
    max_tokens: u32,
    temperature: f32,
    stream: bool,
}

#[derive(Serialize)]
struct ImageBlock<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    image_url: ImageUrl<'a>,
}

#[derive(Serialize)]
struct ImageUrl<'a> {
    url: DataUrl<'a>,
}

#[derive(Deserialize)]
struct Response {
    #[serde(default)]
    choices: Vec<Choice>,
    #[serde(default)]
    usage: Option<Usage>,
}

#[derive(Deserialize)]
struct Choice {
    #[serde(default)]
    message: Option<ChoiceMessage>,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct ChoiceMessage {
    #[serde(default)]
    content: Option<String>,
}

#[derive(Deserialize)]
struct Usage {
    #[serde(default, deserialize_with = "token_count")]
    prompt_tokens: u64,
    #[serde(default, deserialize_with = "token_count")]
    completion_tokens: u64,
}

/// Reads a 2xx body; unknown fields and values are ignored, a null content is
/// an empty text, `<think>` sections are removed.
pub fn parse(body: &str) -> Result<Completion, LlmError> {
    let r: Response = serde_json::from_str(body)
        .map_err(|e| LlmError::Decode(format!("not a chat completion ({e})")))?;
    let choice = r.choices.into_iter().next();
    let (content, finish_reason) = match choice {
        Some(c) => (c.message.and_then(|m| m.content), c.finish_reason),
        None => (None, None),
    };
    let usage = r.usage;
    Ok(Completion {
        text: strip_think_tags(content.as_deref().unwrap_or("")),
        finish_reason,
        prompt_tokens: usage.as_ref().map_or(0, |u| u.prompt_tokens),
        completion_tokens: usage.map_or(0, |u| u.completion_tokens),
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
    fn the_body_has_the_system_prompt_then_the_turns() {
        let req = ChatRequest {
            model: "m".into(),
            system: "be brief".into(),
            turns: vec![Turn {
                role: Role::User,
                text: "hi".into(),
            }],
            max_tokens: 20,
            temperature: 0.5,
        };
        let b = value(&req, None);
        assert_eq!(b["messages"][0]["role"], "system");
        assert_eq!(b["messages"][1]["content"], "hi");
        assert_eq!(b["max_tokens"], 20);
        assert_eq!(
            (b["temperature"].as_f64(), &b["stream"]),
            (Some(0.5), &json!(false))
        );
        let image = ImagePart::new("image/png", b"png").expect("an image");
        let b = value(&req, Some(&image));
        assert_eq!(
            b["messages"][1]["content"],
            json!([
                {"type": "text", "text": "hi"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,cG5n"}}
            ])
        );
        assert_eq!(b["messages"][0]["content"], "be brief");
    }

    #[test]
    fn an_image_after_the_assistant_is_a_user_message_of_its_own() {
        let req = ChatRequest {
            model: "m".into(),
            system: "s".into(),
            turns: vec![Turn {
                role: Role::Assistant,
                text: "hello".into(),
            }],
            max_tokens: 20,
            temperature: 0.5,
        };
        let image = ImagePart::new("image/gif", b"gif").expect("an image");
        let b = value(&req, Some(&image));
        assert_eq!(b["messages"][1]["content"], "hello");
        assert_eq!(
            b["messages"][2],
            json!({"role": "user", "content": [
                {"type": "image_url", "image_url": {"url": "data:image/gif;base64,Z2lm"}}
            ]})
        );
    }

    #[test]
    fn tolerant_parsing() {
        let c = parse(r#"{"id":"x","choices":[{"index":0,"message":{"role":"assistant","content":"<think>plan</think>hey!","refusal":null},"finish_reason":"eos_token","logprobs":null}],"usage":{"prompt_tokens":12,"completion_tokens":3,"total_tokens":15,"details":{}},"system_fingerprint":"fp"}"#)
            .expect("parses");
        assert_eq!(c.text, "hey!");
        assert_eq!(c.finish_reason.as_deref(), Some("eos_token"));
        assert_eq!((c.prompt_tokens, c.completion_tokens), (12, 3));
        let null =
            parse(r#"{"choices":[{"message":{"content":null},"finish_reason":"tool_calls"}]}"#)
                .expect("parses");
        assert_eq!(null.text, "");
        assert!(parse(r#"{"choices":[{"message":{"content":"cut"#).is_err());
    }

    #[test]
    fn odd_token_counts_are_unknown_not_a_lost_reply() {
        let c = parse(r#"{"choices":[{"message":{"content":"hi"}}],"usage":{"prompt_tokens":1e300,"completion_tokens":-4}}"#)
            .expect("parses");
        assert_eq!(
            (c.text.as_str(), c.prompt_tokens, c.completion_tokens),
            ("hi", 0, 0)
        );
        let c = parse(r#"{"choices":[{"message":{"content":"hi"}}],"usage":{"prompt_tokens":18446744073709551616,"completion_tokens":null}}"#)
            .expect("parses");
        assert_eq!((c.prompt_tokens, c.completion_tokens), (0, 0));
    }
}
