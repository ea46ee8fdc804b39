//! The language-model engine against fake model servers that speak real HTTP
//! (a model API cannot run here), and a real redis-server where a worker runs:
//! one test binary for the protocols and retries (`protocol`), what a hostile
//! endpoint cannot do (`hostile`), what may never reach a contact (`leaks`), the
//! figures in Redis (`figures`), photos to the model (`images`) and an opt-in
//! real local model (`real`).

#[path = "../common/mod.rs"]
mod common;
#[path = "../common/fake_llm.rs"]
mod fake_llm;
#[path = "../common/logs.rs"]
mod logs;

mod figures;
mod hostile;
mod images;
mod leaks;
mod protocol;
mod real;

use secondme::reply::llm::error::LlmError;

/// A minimal OpenAI chat completion answering `text` (`protocol` has a full one).
fn openai_ok(text: &str) -> String {
    serde_json::json!({
        "choices": [{"message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 3}
    })
    .to_string()
}

/// The engine's error inside `e`, which a test expects to be one.
fn llm_error(e: &anyhow::Error) -> &LlmError {
    e.downcast_ref::<LlmError>()
        .unwrap_or_else(|| panic!("not an LlmError: {e:#}"))
}
