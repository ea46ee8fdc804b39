//! The `[stt]` table: where voice notes are transcribed, resolved with `--stt-url`
//! (`SECONDME_STT_URL`) over the table's `base_url`.

use std::time::Duration;

use serde::Deserialize;

use crate::reply::llm::config::{ConfigError, normalize_base_url};

/// The config file's `[stt]` table, every key optional.
#[derive(Debug, Default, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SttSettings {
    /// The endpoint, without `/v1/...` (a trailing `/v1` is accepted).
    pub base_url: Option<String>,
    /// Model name sent with each audio (`whisper-1`; servers of one model ignore it).
    pub model: Option<String>,
    /// The environment variable holding the API key.
    pub api_key_env: Option<String>,
    /// Time for one transcription, retries included (e.g. `60s`).
    pub timeout: Option<String>,
    /// Time to open a connection (e.g. `5s`).
    pub connect_timeout: Option<String>,
    /// Retries of a transient failure within the transcription's time.
    pub max_retries: Option<u32>,
    /// The language spoken, ISO-639-1 (`en`, `es`), as a hint; unset lets the server detect it.
    pub language: Option<String>,
    /// How long transcription stays off after a permanent error (e.g. `10m`).
    pub breaker_cooldown: Option<String>,
    /// Sends the API key over plain `http://` to a host that is not this machine.
    pub allow_insecure_http: Option<bool>,
}

/// The resolved transcription endpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct SttConfig {
    /// Endpoint without `/v1`.
    pub base_url: String,
    /// Model name.
    pub model: String,
    /// Name of the variable holding the key.
    pub api_key_env: String,
    /// Time for one transcription, retries included.
    pub timeout: Duration,
    /// Time to open a connection.
    pub connect_timeout: Duration,
    /// Retries of a transient failure.
    pub max_retries: u32,
    /// Language hint.
    pub language: Option<String>,
    /// Off time after a permanent error.
    pub breaker_cooldown: Duration,
    /// The key may go in clear over plain `http://` to another machine.
    pub allow_insecure_http: bool,
}

/// The default variable for the transcription API key.
pub const DEFAULT_STT_KEY_ENV: &str = "SECONDME_STT_API_KEY";
/// The default model name (OpenAI's; whisper.cpp's and faster-whisper's servers accept any).
pub const DEFAULT_STT_MODEL: &str = "whisper-1";

impl SttSettings {
    /// This table where set, `lower`'s elsewhere.
    pub fn or(self, lower: SttSettings) -> SttSettings {
        SttSettings {
            base_url: self.base_url.or(lower.base_url),
            model: self.model.or(lower.model),
            api_key_env: self.api_key_env.or(lower.api_key_env),
            timeout: self.timeout.or(lower.timeout),
            connect_timeout: self.connect_timeout.or(lower.connect_timeout),
            max_retries: self.max_retries.or(lower.max_retries),
            language: self.language.or(lower.language),
            breaker_cooldown: self.breaker_cooldown.or(lower.breaker_cooldown),
            allow_insecure_http: self.allow_insecure_http.or(lower.allow_insecure_http),
        }
    }

    /// The configuration, or `None` when no endpoint is named (`url`, from
    /// `--stt-url`, wins over `base_url`): voice notes are then never answered.
    pub fn resolve(self, url: Option<String>) -> Result<Option<SttConfig>, ConfigError> {
        let Some(url) = url.filter(|u| !u.trim().is_empty()).or(self.base_url) else {
            return Ok(None);
        };
        let base_url = normalize_base_url(&url)?;
        let duration = |v: Option<String>, default: &str, name: &str, most: Duration| {
            let text = v.unwrap_or_else(|| default.to_owned());
            let d = crate::duration::parse_duration(&text)
                .map_err(|e| ConfigError::Invalid(format!("invalid stt.{name} {text:?}: {e:#}")))?;
            if d > most {
                return Err(ConfigError::Invalid(format!(
                    "stt.{name} must be at most {}s, not {text:?}",
                    most.as_secs()
                )));
            }
            Ok(d)
        };
        const HOUR: Duration = Duration::from_secs(3600);
        let language = match self.language.map(|l| l.trim().to_ascii_lowercase()) {
            None => None,
            Some(l) if l.is_empty() => None,
            Some(l) if (2..=3).contains(&l.len()) && l.bytes().all(|b| b.is_ascii_lowercase()) => {
                Some(l)
            }
            Some(l) => {
                return Err(ConfigError::Invalid(format!(
                    "stt.language must be a language code such as \"en\", not {l:?}"
                )));
            }
        };
        Ok(Some(SttConfig {
            base_url,
            model: self
                .model
                .filter(|m| !m.trim().is_empty())
                .unwrap_or_else(|| DEFAULT_STT_MODEL.to_owned()),
            api_key_env: self
                .api_key_env
                .unwrap_or_else(|| DEFAULT_STT_KEY_ENV.to_owned()),
            timeout: duration(self.timeout, "60s", "timeout", HOUR)?,
            connect_timeout: duration(self.connect_timeout, "5s", "connect_timeout", HOUR)?,
            max_retries: self.max_retries.unwrap_or(2).min(10),
            language,
            breaker_cooldown: duration(
                self.breaker_cooldown,
                "10m",
                "breaker_cooldown",
                crate::reply::llm::breaker::LONGEST_COOLDOWN,
            )?,
            allow_insecure_http: self.allow_insecure_http.unwrap_or(false),
        }))
    }
}

/// What the worker needs to read media: the transcription endpoint, if any, and
/// the largest media it reads.
#[derive(Debug, Clone, PartialEq)]
pub struct MediaConfig {
    /// The transcription endpoint; `None` leaves every voice note to the operator.
    pub stt: Option<SttConfig>,
    /// Largest media read, bytes (`media_max_mb`).
    pub max_bytes: usize,
}

impl Default for MediaConfig {
    fn default() -> Self {
        Self {
            stt: None,
            max_bytes: crate::schema::media::DEFAULT_MAX_BYTES,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_named_is_no_endpoint_and_the_flag_wins() {
        assert!(matches!(SttSettings::default().resolve(None), Ok(None)));
        let table = SttSettings {
            base_url: Some("http://10.0.0.1:9000".into()),
            language: Some("EN".into()),
            ..SttSettings::default()
        };
        let cfg = table
            .resolve(Some("http://127.0.0.1:8080/v1/".into()))
            .expect("valid")
            .expect("configured");
        assert_eq!(cfg.base_url, "http://127.0.0.1:8080");
        assert_eq!(cfg.model, DEFAULT_STT_MODEL);
        assert_eq!(cfg.language.as_deref(), Some("en"));
        assert_eq!(cfg.timeout, Duration::from_secs(60));
    }

    #[test]
    fn bad_values_are_named() {
        let bad = SttSettings {
            base_url: Some("http://h".into()),
            language: Some("english please".into()),
            ..SttSettings::default()
        };
        let err = bad.resolve(None).expect_err("bad language");
        assert!(err.to_string().contains("stt.language"), "{err}");
        let bad = SttSettings {
            timeout: Some("2h".into()),
            ..SttSettings::default()
        };
        let err = bad.resolve(Some("http://h".into())).expect_err("too long");
        assert!(err.to_string().contains("stt.timeout"), "{err}");
    }
}
