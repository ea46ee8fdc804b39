//! The one HTTP client: reqwest over rustls with the `ring` provider, one POST
//! with a deadline covering connect, headers and body. It follows no redirect:
//! the prompt (and the key) go to the configured address or nowhere.

use std::time::Duration;

use bytes::Bytes;
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use tokio::time::Instant;

use super::error::LlmError;

/// Largest answer body read; past it the answer is refused.
const MAX_BODY_BYTES: usize = 1 << 20;

/// A header to send; `secret` ones are marked sensitive (never printed by reqwest).
pub struct Header {
    /// Name, lowercase.
    pub name: &'static str,
    /// Value.
    pub value: String,
    /// True for credentials.
    pub secret: bool,
}

/// What came back.
#[derive(Debug, Clone)]
pub struct HttpReply {
    /// Status code.
    pub status: u16,
    /// `retry-after-ms`, when sent.
    pub retry_after_ms: Option<String>,
    /// `retry-after`, when sent.
    pub retry_after: Option<String>,
    /// The body as text (lossy).
    pub body: String,
}

/// The HTTP client, cheap to clone.
#[derive(Debug, Clone)]
pub struct Http {
    client: reqwest::Client,
}

/// Whether requests may go through the proxy the environment names
/// (`HTTP_PROXY`, `HTTPS_PROXY`, `ALL_PROXY`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proxy {
    /// As the environment says: for `https://`, where a proxy sees only TLS.
    FromEnvironment,
    /// Never: for `http://`, where a proxy would read the key in clear, even
    /// when the server is this machine.
    Never,
}

impl Proxy {
    /// What a model server at `base_url` may go through.
    pub fn for_url(base_url: &str) -> Self {
        let https = base_url
            .get(..8)
            .is_some_and(|s| s.eq_ignore_ascii_case("https://"));
        if https {
            Self::FromEnvironment
        } else {
            Self::Never
        }
    }
}

impl Http {
    /// A client whose connections open within `connect_timeout`.
    pub fn new(connect_timeout: Duration, proxy: Proxy) -> Result<Self, LlmError> {
        // reqwest is built without a provider of its own: it uses the process
        // default, the same `ring` one the Redis connections use. A second
        // install returns Err, which only means it is there.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut builder = reqwest::Client::builder();
        if proxy == Proxy::Never {
            builder = builder.no_proxy();
        }
        let client = builder
            .connect_timeout(connect_timeout)
            .tcp_nodelay(true)
            .pool_idle_timeout(Duration::from_secs(60))
            .user_agent(concat!("secondme/", env!("CARGO_PKG_VERSION")))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| LlmError::Connection(format!("cannot build the HTTP client: {e}")))?;
        Ok(Self { client })
    }

    /// POSTs `body` (a request's JSON, a multipart form) as `content_type`;
    /// the whole exchange ends by `deadline`. `Bytes` so that a retry sends
    /// the same buffer again instead of a copy.
    pub async fn post_bytes(
        &self,
        url: &str,
        headers: Vec<Header>,
        content_type: &str,
        body: Bytes,
        deadline: Instant,
    ) -> Result<HttpReply, LlmError> {
        let mut map = header_map(headers)?;
        let value = HeaderValue::from_str(content_type).map_err(|_| {
            LlmError::Connection("the content-type header holds invalid characters".into())
        })?;
        map.insert(CONTENT_TYPE, value);
        let request = self.client.post(url).headers(map).body(body);
        send_by(request, deadline).await
    }
}

/// The headers to send, credentials marked sensitive.
fn header_map(headers: Vec<Header>) -> Result<HeaderMap, LlmError> {
    let mut map = HeaderMap::new();
    for h in headers {
        let mut value = HeaderValue::from_str(&h.value).map_err(|_| {
            LlmError::Connection(format!("the {} header holds invalid characters", h.name))
        })?;
        value.set_sensitive(h.secret);
        map.insert(HeaderName::from_static(h.name), value);
    }
    Ok(map)
}

/// Sends `request`, failing with a timeout when the exchange is not over by `deadline`.
async fn send_by(
    request: reqwest::RequestBuilder,
    deadline: Instant,
) -> Result<HttpReply, LlmError> {
    let limit = deadline.saturating_duration_since(Instant::now());
    tokio::time::timeout_at(deadline, exchange(request))
        .await
        .map_err(|_| LlmError::Timeout(limit))?
}

async fn exchange(request: reqwest::RequestBuilder) -> Result<HttpReply, LlmError> {
    let mut response = request.send().await.map_err(transport)?;
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let retry_after_ms = header("retry-after-ms");
    let retry_after = header("retry-after");
    let status = response.status().as_u16();
    if response.status().is_redirection() {
        return Err(LlmError::Redirect {
            status,
            location: redirect_target(response.url(), header("location").as_deref()),
        });
    }
    if let Some(announced) = response.content_length()
        && announced > MAX_BODY_BYTES as u64
    {
        return Err(too_long());
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(transport)? {
        if body.len().saturating_add(chunk.len()) > MAX_BODY_BYTES {
            return Err(too_long());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(HttpReply {
        status,
        retry_after_ms,
        retry_after,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

fn too_long() -> LlmError {
    LlmError::Decode(format!("the answer is over {MAX_BODY_BYTES} bytes"))
}

/// Where a redirect pointed, resolved against the request's URL, without
/// userinfo, query or fragment (where a token would be), at most 200 characters.
fn redirect_target(from: &reqwest::Url, location: Option<&str>) -> String {
    let Some(location) = location else {
        return "no readable Location".to_owned();
    };
    let Ok(mut url) = from.join(location.trim()) else {
        return "an unreadable Location".to_owned();
    };
    // Only a URL that cannot have them refuses these, and it has none to remove.
    let _ = url.set_username("");
    let _ = url.set_password(None);
    url.set_query(None);
    url.set_fragment(None);
    url.as_str().chars().take(200).collect()
}

/// A transport failure, described without the request (which holds no secret
/// but need not be repeated) and with its cause.
fn transport(e: reqwest::Error) -> LlmError {
    let e = e.without_url();
    let mut text = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    LlmError::Connection(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_https_server_is_reached_through_a_proxy() {
        for url in ["https://api.openai.com", "HTTPS://example.com/v1"] {
            assert_eq!(Proxy::for_url(url), Proxy::FromEnvironment, "{url}");
        }
        for url in [
            "http://127.0.0.1:8080",
            "http://192.168.1.5:11434",
            "htt",
            "",
        ] {
            assert_eq!(Proxy::for_url(url), Proxy::Never, "{url}");
        }
    }
}
