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
    /// The model answered nothing usable (empty, a refusal, "as an AI ...").
    #[error("the model's answer was dropped: {0}")]
    Unusable(&'static str),
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
            }
        )
    }
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
/// that looks like a key (`sk-...`, a masked `abc***xyz`) replaced: a 401 may
/// quote part of the key it refused.
fn shorten(text: &str) -> String {
    let words: Vec<&str> = text
        .split(|c: char| c.is_whitespace() || c.is_control())
        .filter(|w| !w.is_empty())
        .map(|w| {
            let keyish = w.starts_with("sk-") || w.starts_with("sk_") || w.contains("**");
            if keyish { "[redacted]" } else { w }
        })
        .collect();
    words.join(" ").chars().take(200).collect()
}

/// The wait a server asks for: `retry-after-ms` (milliseconds), else
/// `retry-after` as seconds or an HTTP date (relative to `now_unix_s`).
pub fn retry_after(ms: Option<&str>, after: Option<&str>, now_unix_s: i64) -> Option<Duration> {
    if let Some(ms) = ms.and_then(|v| v.trim().parse::<f64>().ok())
        && ms.is_finite()
        && ms >= 0.0
    {
        return Some(Duration::from_secs_f64(ms / 1000.0));
    }
    let after = after?.trim();
    if let Ok(secs) = after.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs));
    }
    let at = parse_http_date(after)?;
    Some(Duration::from_secs(
        u64::try_from(at - now_unix_s).unwrap_or(0),
    ))
}

/// Unix seconds of an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`).
pub fn parse_http_date(text: &str) -> Option<i64> {
    let parts: Vec<&str> = text.split_whitespace().collect();
    let [_, day, month, year, time, "GMT"] = parts.as_slice() else {
        return None;
    };
    let day: i64 = day.parse().ok()?;
    let month = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ]
    .iter()
    .position(|m| m.eq_ignore_ascii_case(month))? as i64
        + 1;
    let year: i64 = year.parse().ok()?;
    let hms: Vec<i64> = time
        .split(':')
        .map(|p| p.parse().ok())
        .collect::<Option<_>>()?;
    let [h, m, s] = hms.as_slice() else {
        return None;
    };
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
}
