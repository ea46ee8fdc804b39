//! Anthropic Messages: `POST {base}/v1/messages`, `x-api-key`,
//! `anthropic-version: 2023-06-01`, the system prompt as a top-level field and
//! strictly alternating turns.

use serde::Deserialize;
use serde_json::json;

use super::chat::{ChatRequest, Completion, alternate, strip_think_tags};
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

/// The request body: `system` on top, turns merged so they alternate from the user.
pub fn body(req: &ChatRequest) -> serde_json::Value {
    let messages: Vec<serde_json::Value> = alternate(&req.turns)
        .iter()
        .map(|t| json!({"role": t.role.as_str(), "content": t.text}))
        .collect();
    json!({
        "model": req.model,
        "system": req.system,
        "messages": messages,
        "max_tokens": req.max_tokens,
        "temperature": req.temperature,
    })
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
        let b = body(&req);
        assert_eq!(b["system"], "rules");
        assert_eq!(b["messages"].as_array().map(Vec::len), Some(1));
        assert_eq!(b["messages"][0]["content"], "a\nb");
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
