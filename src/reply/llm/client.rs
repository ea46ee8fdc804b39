//! One protocol client over the HTTP client, with the SDKs' retry policy:
//! transient failures are tried again with backoff, within the reply's deadline.
//! Every error leaving it has had the key (and anything key-shaped) removed,
//! and any piece of the image it sent.

use std::time::Duration;

use bytes::Bytes;
use tokio::time::Instant;

use super::chat::{ChatRequest, Completion, ImagePart, scrub};
use super::config::Provider;
use super::error::{LlmError, classify, redact, retry_after};
use super::http::{Http, HttpReply};
use super::{anthropic, openai};

/// An API key; its `Debug` never shows it.
#[derive(Clone)]
pub struct ApiKey(String);

impl ApiKey {
    /// Wraps a key read from the environment.
    pub fn new(key: String) -> Self {
        Self(key)
    }

    /// The key, for the request and for removing it from texts.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiKey(<redacted>)")
    }
}

/// A client of one endpoint.
#[derive(Debug, Clone)]
pub struct ModelClient {
    http: Http,
    provider: Provider,
    base_url: String,
    api_key: Option<ApiKey>,
    max_retries: u32,
}

/// First backoff; doubled each retry, up to [`MAX_BACKOFF`] (the OpenAI SDK's figures).
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(8);

impl ModelClient {
    /// A client of `base_url` speaking `provider`'s protocol.
    pub fn new(
        http: Http,
        provider: Provider,
        base_url: &str,
        api_key: Option<ApiKey>,
        max_retries: u32,
    ) -> Self {
        Self {
            http,
            provider,
            base_url: base_url.to_owned(),
            api_key,
            max_retries,
        }
    }

    /// Asks for a completion, retrying transient failures until `deadline`.
    pub async fn complete(
        &self,
        req: &ChatRequest,
        deadline: Instant,
    ) -> Result<Completion, LlmError> {
        self.complete_with(req, None, deadline).await
    }

    /// Asks for a completion of `req` with `image` beside its last user turn,
    /// retrying transient failures until `deadline`. Errors hold neither the
    /// key nor a piece of the image's data.
    pub async fn complete_with(
        &self,
        req: &ChatRequest,
        image: Option<&ImagePart<'_>>,
        deadline: Instant,
    ) -> Result<Completion, LlmError> {
        // Written once: with a photo it is megabytes, the same for every attempt.
        let body = Bytes::from(match self.provider {
            Provider::OpenAi => openai::body(req, image)?,
            Provider::Anthropic => anthropic::body(req, image)?,
        });
        let sent = &body;
        with_retries(
            self.max_retries,
            self.key(),
            deadline,
            LogAs {
                call: "model call",
                error: LlmError::to_string,
            },
            || async move {
                self.once(sent.clone(), deadline)
                    .await
                    .map_err(|e| without_image(e, image.map(|_| sent.as_ref())))
            },
        )
        .await
    }

    fn key(&self) -> Option<&str> {
        self.api_key.as_ref().map(ApiKey::expose)
    }

    async fn once(&self, body: Bytes, deadline: Instant) -> Result<Completion, LlmError> {
        let key = self.key();
        let (url, headers) = match self.provider {
            Provider::OpenAi => (openai::url(&self.base_url), openai::headers(key)),
            Provider::Anthropic => (anthropic::url(&self.base_url), anthropic::headers(key)),
        };
        let reply = self
            .http
            .post_bytes(&url, headers, "application/json", body, deadline)
            .await?;
        if !(200..300).contains(&reply.status) {
            return Err(status_error(&reply, key));
        }
        match self.provider {
            Provider::OpenAi => openai::parse(&reply.body),
            Provider::Anthropic => anthropic::parse(&reply.body),
        }
    }
}

/// `err` without pieces of the image's data in the texts a server wrote (its
/// message, where it redirected): it may quote the request it refused. `sent`
/// is the body that held the image, `None` without one.
fn without_image(err: LlmError, sent: Option<&[u8]>) -> LlmError {
    let Some(sent) = sent else {
        return err;
    };
    match err {
        LlmError::Status {
            status,
            kind,
            message,
            retry_after,
        } => LlmError::Status {
            status,
            kind,
            message: scrub(&message, sent),
            retry_after,
        },
        LlmError::Redirect { status, location } => LlmError::Redirect {
            status,
            location: scrub(&location, sent),
        },
        other => other,
    }
}

/// How a retry loop names its calls and their errors in the log, so that a
/// transcription's retry never reads as the language model's.
#[derive(Clone, Copy)]
pub struct LogAs {
    /// What is tried ("model call", "transcription").
    pub call: &'static str,
    /// An error's text, naming the server it came from.
    pub error: fn(&LlmError) -> String,
}

/// Runs `attempt` until it succeeds or fails for good, with the SDKs' policy:
/// a retryable error is tried again after a backoff (0.5 s doubling to 8 s) or
/// the wait the server asked for, at most `max_retries` times and never past
/// `deadline`. Every error is redacted of `key` (and anything key-shaped)
/// before it is logged (as `log` says) or returned. The loop of the model's
/// client and the transcription client.
pub async fn with_retries<T, F, Fut>(
    max_retries: u32,
    key: Option<&str>,
    deadline: Instant,
    log: LogAs,
    mut attempt: F,
) -> Result<T, LlmError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, LlmError>>,
{
    let mut retries = 0;
    loop {
        // Redacted here, before the retry log below and before any caller sees it.
        let err = match attempt().await {
            Ok(done) => return Ok(done),
            Err(e) => e.redacted(key),
        };
        if !err.retryable() || retries >= max_retries {
            return Err(err);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        let wait = match &err {
            LlmError::Status {
                retry_after: Some(wait),
                ..
            } => {
                // The server's wait, or nothing: retrying sooner would be refused.
                if *wait >= left {
                    return Err(LlmError::WaitTooLong { wait: *wait });
                }
                *wait
            }
            _ => {
                let wait = backoff(retries);
                if wait >= left {
                    return Err(err);
                }
                wait
            }
        };
        tracing::debug!(
            "{} failed ({}); retry {} in {wait:?}",
            log.call,
            (log.error)(&err),
            retries + 1
        );
        tokio::time::sleep(wait).await;
        retries += 1;
    }
}

/// The error of a non-2xx answer. The key is removed from the body before its
/// message is cut to length, which could leave a piece too short to recognise.
pub fn status_error(reply: &HttpReply, key: Option<&str>) -> LlmError {
    let (kind, message) = classify(reply.status, &redact(&reply.body, key));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    LlmError::Status {
        status: reply.status,
        kind,
        message,
        retry_after: retry_after(
            reply.retry_after_ms.as_deref(),
            reply.retry_after.as_deref(),
            now,
        ),
    }
}

/// The wait before retry `attempt + 1`: doubling from 0.5 s up to 8 s, less up
/// to a quarter at random so many workers do not retry in step.
fn backoff(attempt: u32) -> Duration {
    let full = FIRST_BACKOFF
        .saturating_mul(1 << attempt.min(5))
        .min(MAX_BACKOFF);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let jitter = 1.0 - 0.25 * (f64::from(nanos % 1000) / 1000.0);
    full.mul_f64(jitter)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        for (attempt, full) in [(0, 500), (1, 1000), (2, 2000), (4, 8000), (9, 8000)] {
            let b = backoff(attempt).as_millis() as u64;
            assert!((full * 3 / 4..=full).contains(&b), "{attempt}: {b}");
        }
    }

    #[test]
    fn the_key_is_never_in_debug_output() {
        let key = ApiKey::new("sk-very-secret".into());
        assert!(!format!("{key:?}").contains("sk-very"));
    }
}
