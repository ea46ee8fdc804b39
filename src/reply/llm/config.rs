//! The `[llm]` table of the config file and what it resolves to. The API key is
//! never part of it: only the name of the environment variable that holds it.

use std::collections::HashMap;
use std::time::Duration;

use serde::Deserialize;

/// Which protocol the endpoint speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    /// OpenAI Chat Completions (OpenAI, Ollama, llama-server, vLLM, LM Studio, OpenRouter).
    OpenAi,
    /// Anthropic Messages.
    Anthropic,
}

impl Provider {
    fn parse(text: &str) -> Result<Self, ConfigError> {
        match text.trim().to_ascii_lowercase().as_str() {
            "openai" | "openai-compatible" | "ollama" | "llama-server" | "vllm" => Ok(Self::OpenAi),
            "anthropic" => Ok(Self::Anthropic),
            other => Err(ConfigError::Invalid(format!(
                "llm.provider must be openai or anthropic, not {other:?}"
            ))),
        }
    }

    /// The name used in logs and the status.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::OpenAi => "openai",
            Self::Anthropic => "anthropic",
        }
    }

    fn default_base_url(self) -> &'static str {
        match self {
            Self::OpenAi => "https://api.openai.com",
            Self::Anthropic => "https://api.anthropic.com",
        }
    }

    fn default_models(self) -> (&'static str, &'static str) {
        match self {
            Self::OpenAi => ("gpt-4o-mini", "gpt-4o"),
            Self::Anthropic => ("claude-3-5-haiku-latest", "claude-sonnet-4-5"),
        }
    }
}

/// The config file's `[llm]` table, every key optional.
#[derive(Debug, Default, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LlmSettings {
    /// `openai` (any OpenAI-compatible server) or `anthropic`.
    pub provider: Option<String>,
    /// The endpoint, without `/v1/...` (a trailing `/v1` is accepted).
    pub base_url: Option<String>,
    /// Model for short, phatic messages.
    pub fast_model: Option<String>,
    /// Model for substantive messages.
    pub strong_model: Option<String>,
    /// The environment variable holding the API key.
    pub api_key_env: Option<String>,
    /// Time for one reply, retries included (e.g. `30s`).
    pub timeout: Option<String>,
    /// Time to open a connection (e.g. `5s`).
    pub connect_timeout: Option<String>,
    /// Retries of a transient failure within the reply's time.
    pub max_retries: Option<u32>,
    /// Tokens a day (UTC) over all models; 0 is no limit.
    pub daily_token_budget: Option<u64>,
    /// Phatic messages are answered by the template engine, for free.
    pub phatic_to_template: Option<bool>,
    /// Messages of the conversation put in the prompt.
    pub history_messages: Option<usize>,
    /// How long the engine stays off after a permanent error (e.g. `10m`).
    pub breaker_cooldown: Option<String>,
    /// Token cap of a phatic reply.
    pub fast_max_tokens: Option<u32>,
    /// Token cap of a substantive reply.
    pub strong_max_tokens: Option<u32>,
    /// Longest reply, in characters (cut at a sentence end).
    pub max_reply_chars: Option<usize>,
    /// The person's name, for the prompt.
    pub owner_name: Option<String>,
    /// Sends the API key over plain `http://` to a host that is not this machine.
    pub allow_insecure_http: Option<bool>,
    /// The configured models take images (photos are sent to them); default false.
    pub images: Option<bool>,
    /// Price per million tokens, model to `[input, output]` in USD, for the cost figures.
    #[serde(default)]
    pub prices: HashMap<String, [f64; 2]>,
}

/// A configuration problem.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A value is wrong.
    #[error("{0}")]
    Invalid(String),
}

/// The resolved LLM configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct LlmConfig {
    /// Protocol.
    pub provider: Provider,
    /// Endpoint without `/v1`.
    pub base_url: String,
    /// Model for phatic messages.
    pub fast_model: String,
    /// Model for substantive messages.
    pub strong_model: String,
    /// Name of the variable holding the key.
    pub api_key_env: String,
    /// Time for one reply, retries included.
    pub timeout: Duration,
    /// Time to open a connection.
    pub connect_timeout: Duration,
    /// Retries of a transient failure.
    pub max_retries: u32,
    /// Tokens a day; 0 is no limit.
    pub daily_token_budget: u64,
    /// Phatic messages go to the template engine.
    pub phatic_to_template: bool,
    /// Messages of history in the prompt.
    pub history_messages: usize,
    /// Off time after a permanent error.
    pub breaker_cooldown: Duration,
    /// Token cap, phatic.
    pub fast_max_tokens: u32,
    /// Token cap, substantive.
    pub strong_max_tokens: u32,
    /// Longest reply in characters.
    pub max_reply_chars: usize,
    /// The person's name.
    pub owner_name: Option<String>,
    /// The key may go in clear over plain `http://` to another machine.
    pub allow_insecure_http: bool,
    /// The models take images: a photo goes to the strong model with its caption.
    pub images: bool,
    /// Prices per million tokens (input, output), by model.
    pub prices: HashMap<String, [f64; 2]>,
}

/// The default variable for the API key.
pub const DEFAULT_API_KEY_ENV: &str = "SECONDME_LLM_API_KEY";

impl LlmSettings {
    /// This table where set, `lower`'s elsewhere.
    pub fn or(self, lower: LlmSettings) -> LlmSettings {
        let mut prices = lower.prices;
        prices.extend(self.prices);
        LlmSettings {
            provider: self.provider.or(lower.provider),
            base_url: self.base_url.or(lower.base_url),
            fast_model: self.fast_model.or(lower.fast_model),
            strong_model: self.strong_model.or(lower.strong_model),
            api_key_env: self.api_key_env.or(lower.api_key_env),
            timeout: self.timeout.or(lower.timeout),
            connect_timeout: self.connect_timeout.or(lower.connect_timeout),
            max_retries: self.max_retries.or(lower.max_retries),
            daily_token_budget: self.daily_token_budget.or(lower.daily_token_budget),
            phatic_to_template: self.phatic_to_template.or(lower.phatic_to_template),
            history_messages: self.history_messages.or(lower.history_messages),
            breaker_cooldown: self.breaker_cooldown.or(lower.breaker_cooldown),
            fast_max_tokens: self.fast_max_tokens.or(lower.fast_max_tokens),
            strong_max_tokens: self.strong_max_tokens.or(lower.strong_max_tokens),
            max_reply_chars: self.max_reply_chars.or(lower.max_reply_chars),
            owner_name: self.owner_name.or(lower.owner_name),
            allow_insecure_http: self.allow_insecure_http.or(lower.allow_insecure_http),
            images: self.images.or(lower.images),
            prices,
        }
    }

    /// The configuration, or `None` when no LLM is configured: neither a URL
    /// (`url`, from `--llm-url`, wins over `base_url`) nor a provider.
    pub fn resolve(self, url: Option<String>) -> Result<Option<LlmConfig>, ConfigError> {
        let url = url.filter(|u| !u.trim().is_empty()).or(self.base_url);
        if url.is_none() && self.provider.is_none() {
            return Ok(None);
        }
        let provider = match &self.provider {
            Some(p) => Provider::parse(p)?,
            None => Provider::OpenAi,
        };
        let base_url = normalize_base_url(url.as_deref().unwrap_or(provider.default_base_url()))?;
        let (fast, strong) = provider.default_models();
        let fast_model = self.fast_model.clone();
        let strong_model = self.strong_model.clone();
        // One model named is used for both routes.
        let (fast_model, strong_model) = match (fast_model, strong_model) {
            (Some(f), Some(s)) => (f, s),
            (Some(one), None) | (None, Some(one)) => (one.clone(), one),
            (None, None) => (fast.to_owned(), strong.to_owned()),
        };
        // Bounded: a deadline is an `Instant` plus this, which panics past its range.
        let duration = |v: Option<String>, default: &str, name: &str, most: Duration| {
            let text = v.unwrap_or_else(|| default.to_owned());
            let d = crate::duration::parse_duration(&text)
                .map_err(|e| ConfigError::Invalid(format!("invalid llm.{name} {text:?}: {e:#}")))?;
            if d > most {
                return Err(ConfigError::Invalid(format!(
                    "llm.{name} must be at most {}s, not {text:?}",
                    most.as_secs()
                )));
            }
            Ok(d)
        };
        const HOUR: Duration = Duration::from_secs(3600);
        let history_messages = self.history_messages.unwrap_or(12);
        if history_messages > crate::schema::HISTORY_LEN {
            return Err(ConfigError::Invalid(format!(
                "llm.history_messages must be at most {}, not {history_messages}",
                crate::schema::HISTORY_LEN
            )));
        }
        Ok(Some(LlmConfig {
            provider,
            base_url,
            fast_model,
            strong_model,
            api_key_env: self
                .api_key_env
                .unwrap_or_else(|| DEFAULT_API_KEY_ENV.to_owned()),
            timeout: duration(self.timeout, "30s", "timeout", HOUR)?,
            connect_timeout: duration(self.connect_timeout, "5s", "connect_timeout", HOUR)?,
            max_retries: self.max_retries.unwrap_or(2).min(10),
            daily_token_budget: self.daily_token_budget.unwrap_or(0),
            phatic_to_template: self.phatic_to_template.unwrap_or(false),
            history_messages,
            breaker_cooldown: duration(
                self.breaker_cooldown,
                "10m",
                "breaker_cooldown",
                super::breaker::LONGEST_COOLDOWN,
            )?,
            fast_max_tokens: self.fast_max_tokens.unwrap_or(60).max(1),
            strong_max_tokens: self.strong_max_tokens.unwrap_or(300).max(1),
            max_reply_chars: self.max_reply_chars.unwrap_or(600).max(20),
            owner_name: self.owner_name.filter(|n| !n.trim().is_empty()),
            allow_insecure_http: self.allow_insecure_http.unwrap_or(false),
            images: self.images.unwrap_or(false),
            prices: self.prices,
        }))
    }
}

/// `http://host:port[/prefix]` without a trailing `/` or `/v1`: the clients add
/// `/v1/...`. Only http and https, and never credentials in the URL.
pub fn normalize_base_url(url: &str) -> Result<String, ConfigError> {
    let url = url.trim().trim_end_matches('/');
    let url = url.strip_suffix("/v1").unwrap_or(url);
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .ok_or_else(|| {
            ConfigError::Invalid("the LLM URL must start with http:// or https://".into())
        })?;
    let host = rest.split('/').next().unwrap_or("");
    if host.is_empty() {
        return Err(ConfigError::Invalid("the LLM URL has no host".into()));
    }
    if host.contains('@') {
        // Never echo it: the part before '@' is a credential.
        return Err(ConfigError::Invalid(
            "the LLM URL must not hold credentials: put the key in the API key variable".into(),
        ));
    }
    Ok(url.to_owned())
}

/// Whether `url` is plain `http://` to a host other than loopback
/// (127.0.0.0/8, ::1, `localhost`); an address that does not parse counts as another host.
pub(crate) fn key_in_clear(url: &str) -> bool {
    let Ok(parsed) = reqwest::Url::parse(url) else {
        return url.trim().to_ascii_lowercase().starts_with("http://");
    };
    if parsed.scheme() != "http" {
        return false;
    }
    let host = parsed.host_str().unwrap_or("");
    let ip = host.trim_start_matches('[').trim_end_matches(']');
    let loopback = match ip.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(v4)) => v4.is_loopback(),
        Ok(std::net::IpAddr::V6(v6)) => {
            v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
        Err(_) => host.eq_ignore_ascii_case("localhost"),
    };
    !loopback
}

impl LlmConfig {
    /// A configuration for `url` with every default (tests, `--llm-url` alone).
    pub fn for_url(provider: Provider, url: &str) -> Result<Self, ConfigError> {
        let settings = LlmSettings {
            provider: Some(provider.as_str().to_owned()),
            ..LlmSettings::default()
        };
        settings
            .resolve(Some(url.to_owned()))?
            .ok_or_else(|| ConfigError::Invalid("no LLM URL".into()))
    }

    /// Refuses a key that would cross a network in clear (plain `http://` to a
    /// host that is not loopback) unless `allow_insecure_http`; `Ok(true)` when
    /// it is allowed so, for the caller to warn. A keyless endpoint (a local
    /// network's Ollama) is always fine.
    pub fn check_key_transport(&self, has_key: bool) -> Result<bool, ConfigError> {
        if !has_key || !key_in_clear(&self.base_url) {
            return Ok(false);
        }
        if self.allow_insecure_http {
            return Ok(true);
        }
        Err(ConfigError::Invalid(format!(
            "the LLM URL {} is plain http:// to another machine, so the API key in ${} would cross the network in clear: use https://, or set allow_insecure_http = true in the [llm] table if that network is trusted",
            self.base_url, self.api_key_env
        )))
    }

    /// A fingerprint of what decides the endpoint's answers: a changed one closes
    /// the circuit breaker.
    pub fn fingerprint(&self) -> String {
        format!(
            "{}|{}|{}|{}|{}",
            self.provider.as_str(),
            self.base_url,
            self.fast_model,
            self.strong_model,
            self.api_key_env
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_configured_is_no_llm() {
        assert_eq!(LlmSettings::default().resolve(None).expect("ok"), None);
    }

    #[test]
    fn a_url_alone_is_an_openai_compatible_endpoint_with_defaults() {
        let c = LlmSettings::default()
            .resolve(Some("http://127.0.0.1:11434/v1/".into()))
            .expect("ok")
            .expect("configured");
        assert_eq!(c.provider, Provider::OpenAi);
        assert_eq!(c.base_url, "http://127.0.0.1:11434");
        assert_eq!(c.api_key_env, DEFAULT_API_KEY_ENV);
        assert_eq!(c.timeout, Duration::from_secs(30));
    }

    #[test]
    fn the_flag_wins_over_the_table_and_one_model_serves_both_routes() {
        let table = LlmSettings {
            provider: Some("anthropic".into()),
            base_url: Some("https://api.anthropic.com".into()),
            strong_model: Some("claude-x".into()),
            ..LlmSettings::default()
        };
        let c = table
            .resolve(Some("http://proxy:8080".into()))
            .expect("ok")
            .expect("configured");
        assert_eq!(c.base_url, "http://proxy:8080");
        assert_eq!(c.provider, Provider::Anthropic);
        assert_eq!(
            (c.fast_model.as_str(), c.strong_model.as_str()),
            ("claude-x", "claude-x")
        );
    }

    #[test]
    fn bad_values_are_refused_without_echoing_credentials() {
        let bad = |url: &str| {
            LlmSettings::default()
                .resolve(Some(url.into()))
                .expect_err(url)
        };
        assert!(bad("ftp://x").to_string().contains("http"));
        let e = bad("https://user:sk-secret@host").to_string();
        assert!(!e.contains("sk-secret"), "{e}");
        let p = LlmSettings {
            provider: Some("gemini".into()),
            ..LlmSettings::default()
        };
        assert!(p.resolve(None).is_err());
    }

    #[test]
    fn durations_past_their_bound_are_refused() {
        for (name, text) in [
            ("timeout", "2h"),
            ("timeout", "999999999999999d"),
            ("connect_timeout", "61m"),
            ("breaker_cooldown", "366d"),
        ] {
            let mut table: LlmSettings = toml::from_str(&format!("{name} = {text:?}")).expect(name);
            table.provider = Some("openai".into());
            let e = table.resolve(None).expect_err(text).to_string();
            assert!(e.contains(name) && e.contains("at most"), "{e}");
        }
    }

    #[test]
    fn a_key_goes_in_clear_only_to_this_machine_or_when_allowed() {
        let check = |url: &str, allow: bool, has_key: bool| {
            let mut c = LlmConfig::for_url(Provider::OpenAi, url).expect(url);
            c.allow_insecure_http = allow;
            c.check_key_transport(has_key)
        };
        for url in [
            "http://127.0.0.1:11434",
            "http://127.9.8.7",
            "http://127.1:8080",
            "http://localhost:8080",
            "http://LOCALHOST",
            "http://[::1]:8080",
            "http://[::ffff:127.0.0.1]:80",
            "https://192.168.1.20",
            "https://api.openai.com",
        ] {
            assert!(!check(url, false, true).expect(url), "{url}");
        }
        for url in [
            "http://192.168.1.20:11434",
            "http://10.0.0.1",
            "http://api.openai.com",
            "http://localhost.evil.example",
            "http://[fe80::1]:80",
            "http://0.0.0.0:8080",
        ] {
            let e = check(url, false, true).expect_err(url).to_string();
            assert!(e.contains("allow_insecure_http"), "{e}");
            assert!(!check(url, false, false).expect(url), "keyless {url}");
            assert!(check(url, true, true).expect(url), "allowed {url}");
        }
    }

    #[test]
    fn allow_insecure_http_comes_from_the_table() {
        let table: LlmSettings =
            toml::from_str("allow_insecure_http = true\nbase_url = \"http://10.0.0.2:8080\"\n")
                .expect("parses");
        let c = table.resolve(None).expect("ok").expect("configured");
        assert!(c.allow_insecure_http);
        let plain = LlmSettings::default()
            .resolve(Some("http://10.0.0.2".into()))
            .expect("ok")
            .expect("configured");
        assert!(!plain.allow_insecure_http, "off unless set");
    }
}
