//! Errors of a language-model call, classified the way the official SDKs do:
//! what may be retried, what fails this reply only, what is permanent.

use std::time::Duration;

/// Why a call gave no reply. No variant holds the API key or a reply text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LlmError {
    /// The server answered with an error status.
    #[error("the model server answered {status}{}: {message}", kind.label())]
    Status {
        /// HTTP status.
        status: u16,
        /// What the status means for the twin.
        kind: StatusKind,
        /// The server's error message, shortened.
        message: String,
        /// How long the server asked to wait before a retry.
        retry_after: Option<Duration>,
    },
    /// No answer: connection refused, reset, DNS, TLS.
    #[error("cannot reach the model server: {0}")]
    Connection(String),
    /// The reply's time ran out.
    #[error("the model server did not answer within {0:?}")]
    Timeout(Duration),
    /// The server asked to wait longer than the reply's time allows.
    #[error("the model server asked to wait {wait:?}, past the reply's deadline")]
    WaitTooLong {
        /// The wait asked for.
        wait: Duration,
    },
    /// A 2xx answer that is not the protocol's JSON.
    #[error("the model server's answer cannot be read: {0}")]
    Decode(String),
    /// A 3xx answer: redirects are never followed (the prompt and the key
    /// would go to wherever it points), so the configured URL is wrong.
    #[error(
        "the model server redirected ({status}) to {location}; redirects are not followed: set llm.base_url to the address that answers"
    )]
    Redirect {
        /// HTTP status.
        status: u16,
        /// Where it pointed, without credentials, query or fragment.
        location: String,
    },
    /// The configuration cannot be used safely.
    #[error("the language model's configuration is refused: {0}")]
    Config(String),
    /// The model answered nothing usable (empty, cut off mid-sentence, a refusal to help).
    #[error("the model's answer was dropped: {0}")]
    Unusable(&'static str),
    /// The model wrote what must never reach a contact: its instructions, that
    /// the writer is an AI, a message for someone else. Not worth another call.
    #[error("the model's answer was refused: {0}")]
    Refused(&'static str),
    /// The engine is off after a permanent error.
    #[error(
        "the language model is off after a permanent error ({reason}); it retries in {retry_in:?} or when the config changes"
    )]
    BreakerOpen {
        /// The error that opened it.
        reason: String,
        /// Time left.
        retry_in: Duration,
    },
    /// The daily token budget is spent.
    #[error("today's token budget ({budget}) is spent")]
    BudgetSpent {
        /// The budget.
        budget: u64,
    },
}

/// What an error status means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusKind {
    /// Worth another try: 408, 409, 429 (rate), 5xx, 529.
    Transient,
    /// This request is wrong (400, 422 ...): no retry, the engine stays on.
    Request,
    /// The configuration or account is wrong (401, 403, 404, quota, billing):
    /// no retry, and the engine goes off.
    Permanent,
}

impl StatusKind {
    fn label(self) -> &'static str {
        match self {
            Self::Transient => " (transient)",
            Self::Request => "",
            Self::Permanent => " (permanent)",
        }
    }
}

impl LlmError {
    /// Whether another attempt may succeed.
    pub fn retryable(&self) -> bool {
        match self {
            Self::Status { kind, .. } => *kind == StatusKind::Transient,
            Self::Connection(_) => true,
            _ => false,
        }
    }

    /// Whether the engine must stop calling until the cool-down or a config change.
    pub fn permanent(&self) -> bool {
        matches!(
            self,
            Self::Status {
                kind: StatusKind::Permanent,
                ..
            } | Self::Redirect { .. }
                | Self::Config(_)
        )
    }

    /// This error with `key` and anything shaped like a credential removed
    /// from its texts, so that no log, Redis entry or screen gets them.
    pub fn redacted(self, key: Option<&str>) -> Self {
        let r = |text: String| redact(&text, key);
        // Every variant is listed: a new one with a text must be thought about.
        match self {
            Self::Status {
                status,
                kind,
                message,
                retry_after,
            } => Self::Status {
                status,
                kind,
                message: r(message),
                retry_after,
            },
            Self::Connection(text) => Self::Connection(r(text)),
            Self::Decode(text) => Self::Decode(r(text)),
            Self::Redirect { status, location } => Self::Redirect {
                status,
                location: r(location),
            },
            Self::Config(text) => Self::Config(r(text)),
            Self::BreakerOpen { reason, retry_in } => Self::BreakerOpen {
                reason: r(reason),
                retry_in,
            },
            Self::Timeout(d) => Self::Timeout(d),
            Self::WaitTooLong { wait } => Self::WaitTooLong { wait },
            Self::Unusable(why) => Self::Unusable(why),
            Self::Refused(why) => Self::Refused(why),
            Self::BudgetSpent { budget } => Self::BudgetSpent { budget },
        }
    }
}

/// What stands in for a removed secret.
const REDACTED: &str = "[redacted]";

/// `text` without `key` (trimmed, when not empty) and without any word that
/// looks like a credential: `sk-...`/`sk_...` (OpenAI, `sk-ant-` Anthropic), a
/// masked `abc***xyz`, the word after `Bearer`, or a piece of the key of 8
/// characters or more (a 401 may quote part of the key it refused).
pub fn redact(text: &str, key: Option<&str>) -> String {
    let key = key.map(str::trim).filter(|k| !k.is_empty());
    let text = match key {
        Some(k) => text.replace(k, REDACTED),
        None => text.to_owned(),
    };
    let mut out = String::with_capacity(text.len());
    let mut rest = text.as_str();
    let mut after_bearer = false;
    while let Some(start) = rest.find(is_word_char) {
        out.push_str(&rest[..start]);
        let tail = &rest[start..];
        let end = tail.find(|c| !is_word_char(c)).unwrap_or(tail.len());
        let word = &tail[..end];
        let already = word == &REDACTED[1..REDACTED.len() - 1];
        if !already && (after_bearer || secret_like(word, key)) {
            out.push_str(REDACTED);
        } else {
            out.push_str(word);
        }
        after_bearer = word.eq_ignore_ascii_case("bearer");
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

/// The characters of a token: keys are base64, base64url or hex, with `-`,
/// `_` and `.` as separators and `*` in a masked one.
fn is_word_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '*' | '+' | '/' | '=')
}

fn secret_like(word: &str, key: Option<&str>) -> bool {
    let lower = word.to_ascii_lowercase();
    if lower.starts_with("sk-") || lower.starts_with("sk_") || word.contains("**") {
        return true;
    }
    let core = word.trim_matches(|c: char| !c.is_ascii_alphanumeric());
    key.is_some_and(|k| core.len() >= 8 && k.contains(core))
}

/// Classifies an error status and its body (OpenAI `{"error":{"code","type","message"}}`,
/// Anthropic `{"type":"error","error":{"type","message"}}`, or anything else).
pub fn classify(status: u16, body: &str) -> (StatusKind, String) {
    let (code, message) = error_fields(body);
    let billing = [
        "insufficient_quota",
        "billing_error",
        "billing_hard_limit_reached",
    ]
    .iter()
    .any(|c| code.iter().any(|x| x == c))
        || message.to_ascii_lowercase().contains("credit balance");
    let kind = match status {
        _ if billing => StatusKind::Permanent,
        401..=404 => StatusKind::Permanent,
        408 | 409 | 429 | 529 => StatusKind::Transient,
        500..=599 => StatusKind::Transient,
        _ => StatusKind::Request,
    };
    (kind, message)
}

/// The error's codes/types and message from a JSON body; for another body
/// (an HTML page from a proxy) its first readable words.
fn error_fields(body: &str) -> (Vec<String>, String) {
    let Ok(json) = serde_json::from_str::<serde_json::Value>(body) else {
        return (Vec::new(), shorten(&strip_tags(body)));
    };
    let err = json.get("error").unwrap_or(&json);
    let text = |v: Option<&serde_json::Value>| v.and_then(|v| v.as_str()).map(str::to_owned);
    let codes = [text(err.get("code")), text(err.get("type"))]
        .into_iter()
        .flatten()
        .collect();
    let message = text(err.get("message"))
        .or_else(|| err.as_str().map(str::to_owned))
        .unwrap_or_default();
    (codes, shorten(&message))
}

fn strip_tags(html: &str) -> String {
    let mut out = String::new();
    let mut inside = false;
    for c in html.chars() {
        match c {
            '<' => inside = true,
            '>' => {
                inside = false;
                out.push(' ');
            }
            c if !inside => out.push(c),
            _ => {}
        }
    }
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// At most 200 characters of a server's message, on one line, with anything
/// that looks like a key replaced (before the cut, which could leave a piece
/// of one too short to recognise).
fn shorten(text: &str) -> String {
    let clean = redact(text, None);
    let words: Vec<&str> = clean
        .split(|c: char| c.is_whitespace() || c.is_control())
        .filter(|w| !w.is_empty())
        .collect();
    words.join(" ").chars().take(200).collect()
}

/// The wait a server asks for: `retry-after-ms` (milliseconds), else
/// `retry-after` as seconds or an HTTP date (relative to `now_unix_s`). A wait
/// too long for a `Duration` (`1e30`, `inf`) is [`Duration::MAX`], which no
/// deadline allows; a negative or unreadable value is no wait asked for.
pub fn retry_after(ms: Option<&str>, after: Option<&str>, now_unix_s: i64) -> Option<Duration> {
    if let Some(ms) = ms.and_then(seconds) {
        return Some(secs_f64(ms / 1000.0));
    }
    let after = after?.trim();
    if let Some(secs) = seconds(after) {
        return Some(secs_f64(secs));
    }
    let at = parse_http_date(after)?;
    Some(Duration::from_secs(
        u64::try_from(at.saturating_sub(now_unix_s)).unwrap_or(0),
    ))
}

/// A non-negative number (`inf` included); `None` for NaN, a negative or a non-number.
fn seconds(text: &str) -> Option<f64> {
    text.trim()
        .parse::<f64>()
        .ok()
        .filter(|v| !v.is_nan() && *v >= 0.0)
        // -0 becomes 0, which every conversion takes.
        .map(f64::abs)
}

/// `secs` as a `Duration`, saturating at [`Duration::MAX`] where
/// `Duration::from_secs_f64` would panic.
fn secs_f64(secs: f64) -> Duration {
    Duration::try_from_secs_f64(secs).unwrap_or(Duration::MAX)
}

/// Unix seconds of an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`); `None`
/// for any field out of its range (which also keeps the arithmetic in range).
pub fn parse_http_date(text: &str) -> Option<i64> {
    let parts: Vec<&str> = text.split_whitespace().collect();
    let [_, day, month, year, time, "GMT"] = parts.as_slice() else {
        return None;
    };
    let in_range = |text: &str, range: std::ops::RangeInclusive<i64>| {
        text.parse::<i64>().ok().filter(|v| range.contains(v))
    };
    let day = in_range(day, 1..=31)?;
    let month = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ]
    .iter()
    .position(|m| m.eq_ignore_ascii_case(month))? as i64
        + 1;
    let year = in_range(year, 1..=9999)?;
    let hms: Vec<&str> = time.split(':').collect();
    let [h, m, s] = hms.as_slice() else {
        return None;
    };
    let (h, m, s) = (
        in_range(h, 0..=23)?,
        in_range(m, 0..=59)?,
        in_range(s, 0..=60)?,
    );
    Some(days_from_civil(year, month, day) * 86_400 + h * 3600 + m * 60 + s)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_classified_like_the_sdks() {
        for s in [408, 409, 429, 500, 502, 503, 504, 529] {
            assert_eq!(classify(s, "{}").0, StatusKind::Transient, "{s}");
        }
        for s in [400, 413, 422] {
            assert_eq!(classify(s, "{}").0, StatusKind::Request, "{s}");
        }
        for s in [401, 403, 404] {
            assert_eq!(classify(s, "{}").0, StatusKind::Permanent, "{s}");
        }
    }

    #[test]
    fn a_quota_429_and_a_billing_error_are_permanent() {
        let openai = r#"{"error":{"message":"You exceeded your current quota","type":"insufficient_quota","code":"insufficient_quota"}}"#;
        assert_eq!(classify(429, openai).0, StatusKind::Permanent);
        let anthropic = r#"{"type":"error","error":{"type":"billing_error","message":"no"}}"#;
        assert_eq!(classify(400, anthropic).0, StatusKind::Permanent);
        let balance = r#"{"type":"error","error":{"type":"invalid_request_error","message":"Your credit balance is too low"}}"#;
        assert_eq!(classify(400, balance).0, StatusKind::Permanent);
        let rate = r#"{"error":{"message":"Rate limit reached","type":"requests","code":"rate_limit_exceeded"}}"#;
        assert_eq!(
            classify(429, rate),
            (StatusKind::Transient, "Rate limit reached".into())
        );
    }

    #[test]
    fn a_quoted_key_is_redacted() {
        let body = r#"{"error":{"message":"Incorrect API key provided: sk-proj-abc***wxyz. See docs.","code":"invalid_api_key"}}"#;
        let (kind, message) = classify(401, body);
        assert_eq!(kind, StatusKind::Permanent);
        assert_eq!(message, "Incorrect API key provided: [redacted] See docs.");
    }

    #[test]
    fn an_html_page_gives_its_words() {
        let (kind, message) = classify(
            502,
            "<html><body><h1>502 Bad Gateway</h1>\n<hr>nginx</body></html>",
        );
        assert_eq!(kind, StatusKind::Transient);
        assert_eq!(message, "502 Bad Gateway nginx");
    }

    #[test]
    fn retry_after_in_its_three_forms() {
        let now = parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT").expect("date");
        assert_eq!(now, 784_111_777);
        assert_eq!(
            retry_after(Some("1500"), Some("9"), now),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(
            retry_after(None, Some("2"), now),
            Some(Duration::from_secs(2))
        );
        assert_eq!(
            retry_after(None, Some("0.5"), now),
            Some(Duration::from_millis(500))
        );
        assert_eq!(
            retry_after(None, Some("Sun, 06 Nov 1994 08:50:07 GMT"), now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(retry_after(Some("soon"), Some("later"), now), None);
        assert_eq!(retry_after(None, Some("-3"), now), None);
    }

    #[test]
    fn a_wait_too_long_for_a_duration_is_the_longest_not_a_panic() {
        let now = 784_111_777;
        for (ms, after) in [
            (None, Some("1e30")),
            (Some("1e300"), None),
            (Some("1e300"), Some("1")),
            (None, Some("inf")),
            (Some("+Infinity"), None),
            (None, Some("18446744073709551616")),
        ] {
            assert_eq!(
                retry_after(ms, after, now),
                Some(Duration::MAX),
                "{ms:?} {after:?}"
            );
        }
        assert_eq!(retry_after(None, Some("-0"), now), Some(Duration::ZERO));
        assert_eq!(retry_after(Some("NaN"), Some("nan"), now), None);
        assert_eq!(retry_after(None, Some("-1e30"), now), None);
    }

    #[test]
    fn http_dates_out_of_range_are_refused_not_overflowed() {
        for date in [
            "Sun, 06 Nov 99999999999999999 08:49:37 GMT",
            "Sun, 9223372036854775807 Nov 1994 08:49:37 GMT",
            "Sun, 06 Nov 1994 9223372036854775807:00:00 GMT",
            "Sun, 06 Nov 1994 08:-1:37 GMT",
            "Sun, 00 Nov 1994 08:49:37 GMT",
        ] {
            assert_eq!(parse_http_date(date), None, "{date}");
            assert_eq!(retry_after(None, Some(date), i64::MIN), None, "{date}");
        }
        let far = "Fri, 31 Dec 9999 23:59:59 GMT";
        assert!(retry_after(None, Some(far), i64::MIN).is_some());
    }

    #[test]
    fn the_key_and_key_shaped_words_are_redacted() {
        let key = Some("key-ABCDEF123456");
        let r = |t: &str| redact(t, key);
        assert_eq!(
            r("Invalid API key key-ABCDEF123456 for project p1."),
            "Invalid API key [redacted] for project p1."
        );
        // A piece of the key, as a cut or a masked quote leaves it.
        assert_eq!(
            r("key ending ABCDEF1234, retry"),
            "key ending [redacted], retry"
        );
        assert_eq!(
            r("auth: Bearer abc.def-ghi and sk-ant-api03-xyz; x sk_live_1 y a1***z9"),
            "auth: Bearer [redacted] and [redacted]; x [redacted] y [redacted]"
        );
        assert_eq!(r("Bearer key-ABCDEF123456"), "Bearer [redacted]");
        assert_eq!(
            r("keys are fine, short 1234 too"),
            "keys are fine, short 1234 too"
        );
        assert_eq!(redact("no key: sk-x", Some("  ")), "no key: [redacted]");
    }

    #[test]
    fn every_text_of_an_error_is_redacted() {
        let key = "0123456789abcdef";
        let errors = [
            LlmError::Status {
                status: 401,
                kind: StatusKind::Permanent,
                message: format!("bad {key}"),
                retry_after: None,
            },
            LlmError::Connection(format!("reset {key}")),
            LlmError::Decode(format!("odd {key}")),
            LlmError::Redirect {
                status: 307,
                location: format!("https://x/{key}"),
            },
            LlmError::Config(format!("url {key}")),
            LlmError::BreakerOpen {
                reason: format!("401 {key}"),
                retry_in: Duration::from_secs(1),
            },
        ];
        for e in errors {
            let text = e.redacted(Some(key)).to_string();
            assert!(!text.contains(key) && text.contains("[redacted]"), "{text}");
        }
    }

    #[test]
    fn a_redirect_and_a_refused_config_are_permanent() {
        let redirect = LlmError::Redirect {
            status: 307,
            location: "https://elsewhere/".into(),
        };
        assert!(redirect.permanent() && !redirect.retryable());
        let config = LlmError::Config("no".into());
        assert!(config.permanent() && !config.retryable());
    }
}
