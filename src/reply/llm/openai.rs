//! OpenAI Chat Completions: `POST {base}/v1/chat/completions`, Bearer auth.

use serde::Deserialize;
use serde_json::json;

use super::chat::{ChatRequest, Completion, strip_think_tags};
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

/// The request body: the system prompt first, then the turns.
pub fn body(req: &ChatRequest) -> serde_json::Value {
    let mut messages = vec![json!({"role": "system", "content": req.system})];
    messages.extend(
        req.turns
            .iter()
            .map(|t| json!({"role": t.role.as_str(), "content": t.text})),
    );
    json!({
        "model": req.model,
        "messages": messages,
        "max_tokens": req.max_tokens,
        "temperature": req.temperature,
        "stream": false,
    })
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
    message: Option<Message>,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct Message {
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
        let b = body(&req);
        assert_eq!(b["messages"][0]["role"], "system");
        assert_eq!(b["messages"][1]["content"], "hi");
        assert_eq!(b["max_tokens"], 20);
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
