//! The transcription client: `POST {base}/v1/audio/transcriptions` (multipart),
//! as OpenAI, whisper.cpp's server and faster-whisper servers serve it, with the
//! language model's retry policy, redaction and circuit breaker.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde::Deserialize;
use tokio::time::Instant;

use super::UnderstandError;
use super::config::SttConfig;
use super::multipart::Form;
use crate::entry::MAX_CONTENT_BYTES;
use crate::llm_usage::BreakerState;
use crate::reply::llm::breaker::Breaker;
use crate::reply::llm::client::{ApiKey, LogAs, status_error, with_retries};
use crate::reply::llm::config::key_in_clear;
use crate::reply::llm::error::{LlmError, StatusKind, redact};
use crate::reply::llm::http::{Header, Http, Proxy};

/// The largest audio sent (OpenAI's limit for one file); larger is refused unsent.
pub const MAX_AUDIO_BYTES: usize = 25 << 20;

/// What a voice note said.
#[derive(Debug, Clone, PartialEq)]
pub struct Transcript {
    /// The words, trimmed.
    pub text: String,
    /// Its length in seconds, when the server said.
    pub seconds: Option<f64>,
}

/// A client of one transcription endpoint, cheap to clone; clones share the breaker.
#[derive(Debug, Clone)]
pub struct Transcriber {
    http: Http,
    url: String,
    model: String,
    language: Option<String>,
    key: Option<ApiKey>,
    max_retries: u32,
    timeout: Duration,
    breaker: Arc<Breaker>,
}

impl Transcriber {
    /// A client of `cfg`'s endpoint, with the key from `cfg.api_key_env` if set.
    pub fn new(cfg: &SttConfig) -> Result<Self, UnderstandError> {
        let key = std::env::var(&cfg.api_key_env).ok();
        Self::with_key(cfg, key)
    }

    /// A client of `cfg`'s endpoint with this key (blank is none); refused when
    /// the key would cross a network in clear and `allow_insecure_http` is off.
    pub fn with_key(cfg: &SttConfig, key: Option<String>) -> Result<Self, UnderstandError> {
        let key = key.map(|k| k.trim().to_owned()).filter(|k| !k.is_empty());
        if key.is_some() && key_in_clear(&cfg.base_url) {
            if !cfg.allow_insecure_http {
                return Err(UnderstandError::Permanent(format!(
                    "the transcription URL {} is plain http:// to another machine, so the API key in ${} would cross the network in clear: use https://, or set allow_insecure_http = true in the [stt] table if that network is trusted",
                    cfg.base_url, cfg.api_key_env
                )));
            }
            tracing::warn!(
                "stt.allow_insecure_http = true: the transcription key goes in clear over plain http:// to {}",
                cfg.base_url
            );
        }
        if key.is_none() {
            tracing::info!(
                "no key in ${}: transcribing at {} without one (fine for a local server)",
                cfg.api_key_env,
                cfg.base_url
            );
        }
        let http = Http::new(cfg.connect_timeout, Proxy::for_url(&cfg.base_url))
            .map_err(|e| UnderstandError::Permanent(describe(&e)))?;
        Ok(Self {
            http,
            url: format!("{}/v1/audio/transcriptions", cfg.base_url),
            model: cfg.model.clone(),
            language: cfg.language.clone(),
            key: key.map(ApiKey::new),
            max_retries: cfg.max_retries,
            timeout: cfg.timeout,
            breaker: Arc::new(Breaker::named(cfg.breaker_cooldown, "transcription")),
        })
    }

    /// Transcribes `audio` of MIME type `mime`, retrying transient failures
    /// within the configured timeout. The audio's buffer becomes the request's
    /// body, sent again as it is by each retry. The transcript is at most
    /// [`MAX_CONTENT_BYTES`], like a typed message. An error's text holds
    /// neither the key nor anything the audio said.
    pub async fn transcribe(
        &self,
        audio: Vec<u8>,
        mime: &str,
    ) -> Result<Transcript, UnderstandError> {
        let len = audio.len();
        if len > MAX_AUDIO_BYTES {
            return Err(UnderstandError::Permanent(format!(
                "the audio is {len} bytes, over the {MAX_AUDIO_BYTES} a transcription takes"
            )));
        }
        if audio.is_empty() {
            return Err(UnderstandError::Permanent("the audio is empty".into()));
        }
        self.breaker.check().map_err(|e| self.failure(&e))?;
        let essence = essence(mime);
        let filename = format!("voice.{}", extension(&essence));
        let mut form = Form::new()
            .file("file", &filename, &essence, audio)
            .text("model", &self.model)
            .text("response_format", "json");
        if let Some(language) = &self.language {
            form = form.text("language", language);
        }
        let body = form.build();
        let (content_type, bytes) = (body.content_type, Bytes::from(body.bytes));
        let started = Instant::now();
        let deadline = started + self.timeout;
        let answer = with_retries(
            self.max_retries,
            self.key(),
            deadline,
            LogAs {
                call: "transcription",
                error: describe,
            },
            || self.once(&content_type, bytes.clone(), deadline),
        )
        .await;
        let answer = answer.map_err(|e| {
            let failure = self.failure(&e);
            if e.permanent() {
                self.breaker.trip(&failure.to_string());
            }
            failure
        })?;
        tracing::debug!(
            "transcribed {len} bytes of {essence} in {} ms",
            started.elapsed().as_millis()
        );
        answer
            .into_transcript()
            .ok_or_else(|| UnderstandError::Permanent("nothing was said in the audio".into()))
    }

    /// True while transcription is off after a permanent error (bad key, unknown model).
    pub fn breaker_open(&self) -> bool {
        self.breaker.state().reason.is_some()
    }

    /// The breaker's state, for the operator: why it is open and for how long.
    pub fn breaker_state(&self) -> BreakerState {
        self.breaker.state()
    }

    fn key(&self) -> Option<&str> {
        self.key.as_ref().map(ApiKey::expose)
    }

    async fn once(
        &self,
        content_type: &str,
        body: Bytes,
        deadline: Instant,
    ) -> Result<Answer, LlmError> {
        let key = self.key();
        let headers = key
            .map(|key| Header {
                name: "authorization",
                value: format!("Bearer {key}"),
                secret: true,
            })
            .into_iter()
            .collect();
        let reply = self
            .http
            .post_bytes(&self.url, headers, content_type, body, deadline)
            .await?;
        if !(200..300).contains(&reply.status) {
            return Err(status_error(&reply, key));
        }
        parse(&reply.body)
    }

    /// The caller's error for `e`: permanent unless trying later may work; its
    /// text redacted once more, since a server's message may quote the key.
    fn failure(&self, e: &LlmError) -> UnderstandError {
        let text = redact(&describe(e), self.key());
        let transient = matches!(
            e,
            LlmError::Status {
                kind: StatusKind::Transient,
                ..
            } | LlmError::Connection(_)
                | LlmError::Timeout(_)
                | LlmError::WaitTooLong { .. }
        );
        if transient {
            UnderstandError::Transient(text)
        } else {
            UnderstandError::Permanent(text)
        }
    }
}

/// The error's text, naming the transcription server rather than the model's.
fn describe(e: &LlmError) -> String {
    match e {
        LlmError::Status {
            status,
            kind,
            message,
            ..
        } => {
            let label = match kind {
                StatusKind::Transient => " (transient)",
                StatusKind::Request => "",
                StatusKind::Permanent => " (permanent)",
            };
            format!("the transcription server answered {status}{label}: {message}")
        }
        LlmError::Connection(text) => format!("cannot reach the transcription server: {text}"),
        LlmError::Timeout(limit) => {
            format!("the transcription server did not answer within {limit:?}")
        }
        LlmError::WaitTooLong { wait } => format!(
            "the transcription server asked to wait {wait:?}, past the transcription's deadline"
        ),
        LlmError::Decode(text) => {
            format!("the transcription server's answer cannot be read: {text}")
        }
        LlmError::Redirect { status, location } => format!(
            "the transcription server redirected ({status}) to {location}; redirects are not followed: set stt.base_url (or --stt-url) to the address that answers"
        ),
        LlmError::BreakerOpen { reason, retry_in } => format!(
            "transcription is off after a permanent error ({reason}); it is tried again in {}s or when the config changes",
            retry_in.as_secs().max(1)
        ),
        other => other.to_string(),
    }
}

/// The answer's fields: `text` always; `duration` from `verbose_json` or some
/// servers' `json`, `usage.seconds` from OpenAI's.
#[derive(Deserialize)]
struct Answer {
    text: String,
    #[serde(default)]
    duration: Option<serde_json::Value>,
    #[serde(default)]
    usage: Option<Usage>,
}

#[derive(Deserialize)]
struct Usage {
    #[serde(default)]
    seconds: Option<serde_json::Value>,
}

impl Answer {
    /// The transcript, `None` when nothing was said: an empty text, or only
    /// whisper's bracketed markers such as `[BLANK_AUDIO]`. A longer text
    /// than a typed message may hold is cut to [`MAX_CONTENT_BYTES`].
    fn into_transcript(self) -> Option<Transcript> {
        let text = self.text.trim();
        if without_markers(text).trim().is_empty() {
            return None;
        }
        let seconds = self
            .duration
            .as_ref()
            .or(self.usage.as_ref().and_then(|u| u.seconds.as_ref()))
            .and_then(number)
            .filter(|s| s.is_finite() && *s >= 0.0);
        let kept = &text[..text.floor_char_boundary(MAX_CONTENT_BYTES)];
        if kept.len() < text.len() {
            tracing::info!(
                "a transcript of {} bytes is cut to {} (a message's limit)",
                text.len(),
                kept.len()
            );
        }
        Some(Transcript {
            text: kept.trim_end().to_owned(),
            seconds,
        })
    }
}

/// A number, or a string holding one.
fn number(v: &serde_json::Value) -> Option<f64> {
    v.as_f64()
        .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
}

/// `text` without its `[...]` spans.
fn without_markers(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut depth = 0usize;
    for c in text.chars() {
        match c {
            '[' => depth += 1,
            ']' if depth > 0 => depth -= 1,
            c if depth == 0 => out.push(c),
            _ => {}
        }
    }
    out
}

/// Reads a 2xx body. The error names where the body went wrong, never what
/// it holds (serde's own message may quote a value, and the value is speech).
fn parse(body: &str) -> Result<Answer, LlmError> {
    serde_json::from_str(body).map_err(|e| {
        let what = match e.classify() {
            serde_json::error::Category::Data => "no \"text\" string",
            serde_json::error::Category::Eof => "cut short",
            serde_json::error::Category::Syntax | serde_json::error::Category::Io => "not JSON",
        };
        LlmError::Decode(format!("{what} (line {} column {})", e.line(), e.column()))
    })
}

/// The MIME type without its parameters, lowercase (`audio/ogg; codecs=opus` is `audio/ogg`).
fn essence(mime: &str) -> String {
    mime.split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// The file extension servers recognise the format by (whisper.cpp's and
/// faster-whisper's decoders, OpenAI's list of accepted files).
fn extension(essence: &str) -> &'static str {
    match essence {
        "audio/ogg" | "audio/opus" | "application/ogg" | "audio/x-opus+ogg" => "ogg",
        "audio/mpeg" | "audio/mp3" | "audio/mpga" => "mp3",
        "audio/mp4" | "audio/m4a" | "audio/x-m4a" => "m4a",
        "video/mp4" => "mp4",
        "audio/aac" | "audio/x-aac" => "aac",
        "audio/wav" | "audio/x-wav" | "audio/wave" | "audio/vnd.wave" => "wav",
        "audio/webm" | "video/webm" => "webm",
        "audio/flac" | "audio/x-flac" => "flac",
        "audio/amr" => "amr",
        "audio/3gpp" | "video/3gpp" => "3gp",
        _ => "bin",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(body: &str) -> Option<Transcript> {
        parse(body).expect("parses").into_transcript()
    }

    #[test]
    fn each_voice_format_gets_its_extension() {
        for (mime, ext) in [
            ("audio/ogg; codecs=opus", "ogg"),
            ("AUDIO/OGG", "ogg"),
            ("audio/mpeg", "mp3"),
            ("audio/mp4", "m4a"),
            ("audio/x-m4a", "m4a"),
            ("audio/wav", "wav"),
            ("audio/webm;codecs=opus", "webm"),
            ("audio/flac", "flac"),
            ("audio/aac", "aac"),
            ("application/pdf", "bin"),
            ("", "bin"),
        ] {
            assert_eq!(extension(&essence(mime)), ext, "{mime}");
        }
        assert_eq!(essence(" Audio/Ogg ; codecs=opus"), "audio/ogg");
    }

    #[test]
    fn text_and_duration_are_read_from_each_servers_answer() {
        assert_eq!(
            answer(r#"{"text":" hola, ¿vienes?\n"}"#),
            Some(Transcript {
                text: "hola, ¿vienes?".into(),
                seconds: None
            })
        );
        let verbose = r#"{"task":"transcribe","language":"english","duration":12.5,"text":"hi","segments":[]}"#;
        assert_eq!(answer(verbose).and_then(|t| t.seconds), Some(12.5));
        let openai = r#"{"text":"hi","usage":{"type":"duration","seconds":9}}"#;
        assert_eq!(answer(openai).and_then(|t| t.seconds), Some(9.0));
        let odd = r#"{"text":"hi","duration":"3.25"}"#;
        assert_eq!(answer(odd).and_then(|t| t.seconds), Some(3.25));
        let negative = r#"{"text":"hi","duration":-1}"#;
        assert_eq!(answer(negative).and_then(|t| t.seconds), None);
    }

    #[test]
    fn a_transcript_longer_than_a_message_is_cut_on_a_character() {
        // 3-byte characters: the limit falls inside one.
        let long = "€".repeat(MAX_CONTENT_BYTES);
        let t = answer(&serde_json::json!({ "text": long }).to_string()).expect("a transcript");
        assert_eq!(t.text.len(), MAX_CONTENT_BYTES / 3 * 3);
        assert!(long.starts_with(&t.text));
        let fits = "a".repeat(MAX_CONTENT_BYTES);
        let t = answer(&serde_json::json!({ "text": fits }).to_string()).expect("a transcript");
        assert_eq!(t.text, fits, "a text at the limit is whole");
    }

    #[test]
    fn silence_is_nothing_said() {
        for body in [
            r#"{"text":""}"#,
            r#"{"text":"  \n "}"#,
            r#"{"text":"[BLANK_AUDIO]"}"#,
            r#"{"text":" [BLANK_AUDIO] [Music] "}"#,
        ] {
            assert_eq!(answer(body), None, "{body}");
        }
        assert_eq!(
            answer(r#"{"text":"[Music] see you saturday"}"#).map(|t| t.text),
            Some("[Music] see you saturday".into())
        );
    }

    #[test]
    fn an_unreadable_answer_never_quotes_it() {
        for body in [
            r#"{"text": 12, "words": "secret words"}"#,
            r#"{"transcript": "secret words"}"#,
            r#"{"text": "secret words""#,
            "secret words",
        ] {
            let Err(e) = parse(body) else {
                panic!("{body} parsed");
            };
            let text = describe(&e);
            assert!(!text.contains("secret"), "{text}");
            assert!(text.contains("cannot be read"), "{text}");
        }
        let wrong_type = parse(r#"{"text": "secret words", "duration": {"x": 1}}"#);
        assert!(wrong_type.is_ok(), "a duration of another shape is ignored");
    }
}
