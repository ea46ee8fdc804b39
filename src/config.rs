//! Configuration: flags over environment (`SECONDME_*`) over the config file
//! (`$XDG_CONFIG_HOME/secondme/config.toml`) over defaults.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde::Deserialize;

use crate::sleep::SleepHours;

/// The config file, every field optional. Unknown fields are an error, so a typo is noticed.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// Redis URL.
    pub redis_url: Option<String>,
    /// WhatsApp account owner id (`SESSION:{userId}`).
    pub user_id: Option<String>,
    /// Consumer name of this worker in the group.
    pub consumer: Option<String>,
    /// Takeover pause, e.g. "60m".
    pub takeover: Option<String>,
    /// Persona for contacts without one.
    pub default_persona: Option<String>,
    /// Entries decided per batch.
    pub batch_size: Option<usize>,
    /// MiB of entries read ahead of the decisions; 0 reads one batch at a time.
    pub read_ahead_mb: Option<usize>,
    /// Deliveries after which an entry is dead-lettered.
    pub max_deliveries: Option<u64>,
    /// Where unprocessed entries go on shutdown (JSON lines).
    pub review_file: Option<PathBuf>,
    /// Idle time before another worker's pending entry is claimed, e.g. "30s".
    pub claim_idle: Option<String>,
    /// Daily window without automated replies, e.g. "23:00-07:00", or "off".
    pub sleep_hours: Option<String>,
    /// Session key file.
    pub key_file: Option<PathBuf>,
    /// PEM file of the CA that signed a `rediss://` server's certificate (private CAs).
    pub tls_ca_file: Option<PathBuf>,
    /// Log file.
    pub log_file: Option<PathBuf>,
    /// TUI theme: dark, light or no-color.
    pub theme: Option<String>,
    /// TUI key overrides: action name to key.
    #[serde(default)]
    pub keys: HashMap<String, String>,
}

/// Values given on the command line or in the environment (clap reads both).
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    /// `--redis-url` / `SECONDME_REDIS_URL`.
    pub redis_url: Option<String>,
    /// `--user-id` / `SECONDME_USER_ID`.
    pub user_id: Option<String>,
    /// `--consumer` / `SECONDME_CONSUMER`.
    pub consumer: Option<String>,
    /// `--takeover` / `SECONDME_TAKEOVER`.
    pub takeover: Option<String>,
    /// `--log-file` / `SECONDME_LOG_FILE`.
    pub log_file: Option<PathBuf>,
    /// `--review-file` / `SECONDME_REVIEW_FILE`.
    pub review_file: Option<PathBuf>,
    /// `--claim-idle` / `SECONDME_CLAIM_IDLE`.
    pub claim_idle: Option<String>,
    /// `--sleep-hours` / `SECONDME_SLEEP_HOURS`.
    pub sleep_hours: Option<String>,
    /// `--tls-ca-file` / `SECONDME_TLS_CA_FILE`.
    pub tls_ca_file: Option<PathBuf>,
}

/// Where the sleep hours come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SleepSetting {
    /// Not configured: the persona graph's `User` decides, when there is one.
    FromGraph,
    /// Switched off, whatever the graph says.
    Off,
    /// This window, whatever the graph says.
    Window(SleepHours),
}

impl SleepSetting {
    fn parse(text: Option<String>) -> Result<Self> {
        match text.as_deref().map(str::trim) {
            None | Some("") => Ok(Self::FromGraph),
            Some("off") => Ok(Self::Off),
            Some(window) => Ok(Self::Window(window.parse().context("invalid sleep_hours")?)),
        }
    }
}

/// The resolved configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Redis URL.
    pub redis_url: String,
    /// Account owner id.
    pub user_id: String,
    /// Consumer name.
    pub consumer: String,
    /// Takeover pause.
    pub takeover: Duration,
    /// Persona for contacts without one.
    pub default_persona: String,
    /// Entries decided per batch.
    pub batch_size: usize,
    /// Bytes of entries read ahead of the decisions.
    pub read_ahead_bytes: usize,
    /// Deliveries before dead-lettering.
    pub max_deliveries: u64,
    /// Review file.
    pub review_file: PathBuf,
    /// Idle time before a pending entry of another worker is claimed.
    pub claim_idle: Duration,
    /// Sleep hours.
    pub sleep_hours: SleepSetting,
    /// Session key file.
    pub key_file: PathBuf,
    /// CA certificates for a `rediss://` server signed by a private CA.
    pub tls_ca_file: Option<PathBuf>,
    /// Log file.
    pub log_file: PathBuf,
    /// Theme name.
    pub theme: String,
    /// Key overrides.
    pub keys: HashMap<String, String>,
}

/// Default entries per decision. Redis runs nothing else while a decision script
/// runs, so a smaller batch lets the stream reader in more often; 128 takes about
/// 4 ms of Redis time.
pub const DEFAULT_BATCH_SIZE: usize = 128;

/// Default memory for entries read ahead, MiB: about 230,000 short messages, a
/// 3-second burst at 75,000 a second, and the worker stays under 50 MB resident
/// with all of it spent.
pub const DEFAULT_READ_AHEAD_MB: usize = 32;

/// Default Redis URL.
pub const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379";

/// `$XDG_CONFIG_HOME/secondme` or `~/.config/secondme`.
pub fn config_dir() -> PathBuf {
    xdg_dir("XDG_CONFIG_HOME", ".config").join("secondme")
}

/// `$XDG_STATE_HOME/secondme` or `~/.local/state/secondme`.
pub fn state_dir() -> PathBuf {
    xdg_dir("XDG_STATE_HOME", ".local/state").join("secondme")
}

fn xdg_dir(var: &str, fallback: &str) -> PathBuf {
    match std::env::var_os(var) {
        Some(v) if !v.is_empty() => PathBuf::from(v),
        _ => std::env::var_os("HOME")
            .map(PathBuf::from)
            .unwrap_or_else(std::env::temp_dir)
            .join(fallback),
    }
}

impl Config {
    /// Resolves the configuration; `file` is `--config`, else the default path if it exists.
    pub fn load(file: Option<&Path>, over: Overrides) -> Result<Self> {
        let file_cfg = match file {
            Some(path) => read_file(path)?,
            None => {
                let default = config_dir().join("config.toml");
                if default.exists() {
                    read_file(&default)?
                } else {
                    FileConfig::default()
                }
            }
        };
        Self::merge(file_cfg, over)
    }

    fn merge(f: FileConfig, o: Overrides) -> Result<Self> {
        let takeover_text = o.takeover.or(f.takeover).unwrap_or_else(|| "60m".into());
        let takeover = parse_duration(&takeover_text)
            .with_context(|| format!("invalid takeover pause {takeover_text:?}"))?;
        let claim_text = o
            .claim_idle
            .or(f.claim_idle)
            .unwrap_or_else(|| "30s".into());
        let claim_idle = parse_duration(&claim_text)
            .with_context(|| format!("invalid claim_idle {claim_text:?}"))?;
        let batch_size = f.batch_size.unwrap_or(DEFAULT_BATCH_SIZE);
        if !(1..=10_000).contains(&batch_size) {
            bail!("batch_size must be between 1 and 10000, not {batch_size}");
        }
        let read_ahead_mb = f.read_ahead_mb.unwrap_or(DEFAULT_READ_AHEAD_MB);
        if read_ahead_mb > 4096 {
            bail!("read_ahead_mb must be between 0 and 4096, not {read_ahead_mb}");
        }
        Ok(Self {
            redis_url: o
                .redis_url
                .or(f.redis_url)
                .unwrap_or_else(|| DEFAULT_REDIS_URL.into()),
            user_id: o.user_id.or(f.user_id).unwrap_or_else(|| "user-1".into()),
            consumer: o.consumer.or(f.consumer).unwrap_or_else(default_consumer),
            takeover,
            default_persona: f.default_persona.unwrap_or_else(|| "casual".into()),
            batch_size,
            read_ahead_bytes: read_ahead_mb * 1024 * 1024,
            max_deliveries: f.max_deliveries.unwrap_or(5).max(1),
            review_file: o
                .review_file
                .or(f.review_file)
                .unwrap_or_else(|| state_dir().join("review.jsonl")),
            claim_idle,
            sleep_hours: SleepSetting::parse(o.sleep_hours.or(f.sleep_hours))?,
            key_file: f.key_file.unwrap_or_else(crate::seal::default_key_path),
            tls_ca_file: o.tls_ca_file.or(f.tls_ca_file),
            log_file: o
                .log_file
                .or(f.log_file)
                .unwrap_or_else(|| state_dir().join("secondme.log")),
            theme: f.theme.unwrap_or_else(|| "dark".into()),
            keys: f.keys,
        })
    }
}

fn read_file(path: &Path) -> Result<FileConfig> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read config file {}", path.display()))?;
    toml::from_str(&text).map_err(|e| {
        anyhow::anyhow!(
            "invalid config file {}: {}",
            path.display(),
            describe_toml_error(&text, &e)
        )
    })
}

/// Where a TOML error is and what it is, without the offending line: that line
/// may be the `redis_url` with its password, which toml's own message quotes.
fn describe_toml_error(text: &str, e: &toml::de::Error) -> String {
    let Some(span) = e.span() else {
        return e.message().trim().to_owned();
    };
    let start = span.start.min(text.len());
    let before = text.get(..start).unwrap_or("");
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let line_text = text
        .get(line_start..)
        .and_then(|rest| rest.lines().next())
        .unwrap_or("");
    // A value's type error quotes the value; on a line that may hold a secret,
    // say only that the line is wrong.
    let lower = line_text.to_ascii_lowercase();
    let message = if ["redis_url", "pass", "secret", "token", "key"]
        .iter()
        .any(|w| lower.contains(w))
    {
        "invalid entry (the line is not shown: it may hold a secret)".to_owned()
    } else {
        e.message().trim().to_owned()
    };
    format!("line {line}, column {column}: {message}")
}

/// `hostname-pid`: unique per process, readable in `XINFO CONSUMERS`.
fn default_consumer() -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "host".into());
    format!("{host}-{}", std::process::id())
}

/// Parses `90s`, `30m`, `1h`, `2h30m`, `1d`; a bare number means minutes.
pub fn parse_duration(text: &str) -> Result<Duration> {
    let text = text.trim();
    if text.is_empty() {
        bail!("empty duration");
    }
    if let Ok(minutes) = text.parse::<u64>() {
        return positive(Duration::from_secs(minutes * 60));
    }
    let mut total = 0u64;
    let mut number = String::new();
    for c in text.chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let n: u64 = number
            .parse()
            .with_context(|| format!("expected a number before `{c}` in {text:?}"))?;
        number.clear();
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            other => bail!("unknown unit `{other}` in {text:?} (use s, m, h or d)"),
        };
        total = total.saturating_add(n.saturating_mul(unit));
    }
    if !number.is_empty() {
        bail!("missing unit after {number} in {text:?} (use s, m, h or d)");
    }
    positive(Duration::from_secs(total))
}

fn positive(d: Duration) -> Result<Duration> {
    if d.is_zero() {
        bail!("a duration must be more than zero");
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(
            parse_duration("30m").expect("ok"),
            Duration::from_secs(1800)
        );
        assert_eq!(
            parse_duration("2h30m").expect("ok"),
            Duration::from_secs(9000)
        );
        assert_eq!(parse_duration("45").expect("ok"), Duration::from_secs(2700));
        assert_eq!(parse_duration("90s").expect("ok"), Duration::from_secs(90));
        assert!(parse_duration("0m").is_err());
        assert!(parse_duration("5x").is_err());
        assert!(parse_duration("m").is_err());
        assert!(parse_duration("10").is_ok());
    }

    #[test]
    fn flags_beat_file_beats_defaults() {
        let file = FileConfig {
            redis_url: Some("redis://file:1".into()),
            user_id: Some("file-user".into()),
            ..FileConfig::default()
        };
        let over = Overrides {
            redis_url: Some("redis://flag:2".into()),
            ..Overrides::default()
        };
        let c = Config::merge(file, over).expect("merge");
        assert_eq!(c.redis_url, "redis://flag:2");
        assert_eq!(c.user_id, "file-user");
        assert_eq!(c.takeover, Duration::from_secs(3600));
    }

    #[test]
    fn the_shipped_example_config_is_valid_and_matches_the_defaults() {
        let file: FileConfig =
            toml::from_str(include_str!("../assets/config.example.toml")).expect("parses");
        let keys: Vec<(String, String)> = file.keys.clone().into_iter().collect();
        let keymap = secondme_ui::Keymap::from_overrides(&keys).expect("valid keys");
        assert_eq!(
            keymap,
            secondme_ui::Keymap::default(),
            "the example shows the defaults"
        );
        let example = Config::merge(file, Overrides::default()).expect("merge");
        let defaults = Config::merge(FileConfig::default(), Overrides::default()).expect("merge");
        assert_eq!(example.redis_url, defaults.redis_url);
        assert_eq!(example.takeover, defaults.takeover);
        assert_eq!(example.batch_size, defaults.batch_size);
        assert_eq!(example.read_ahead_bytes, defaults.read_ahead_bytes);
        assert_eq!(example.claim_idle, defaults.claim_idle);
        assert_eq!(example.theme, defaults.theme);
        assert_eq!(example.sleep_hours, defaults.sleep_hours);
    }

    #[test]
    fn sleep_hours_come_from_the_graph_unless_set() {
        let with = |text: Option<&str>| {
            let over = Overrides {
                sleep_hours: text.map(str::to_owned),
                ..Overrides::default()
            };
            Config::merge(FileConfig::default(), over).map(|c| c.sleep_hours)
        };
        assert_eq!(with(None).expect("unset"), SleepSetting::FromGraph);
        assert_eq!(with(Some("off")).expect("off"), SleepSetting::Off);
        assert_eq!(
            with(Some("23:00-07:00")).expect("window"),
            SleepSetting::Window("23:00-07:00".parse().expect("window"))
        );
        let err = with(Some("late")).expect_err("invalid");
        assert!(format!("{err:#}").contains("sleep_hours"), "{err:#}");
    }

    #[test]
    fn unknown_file_keys_are_rejected() {
        let err = toml::from_str::<FileConfig>("redis_ulr = \"x\"").expect_err("typo");
        assert!(err.to_string().contains("redis_ulr"), "{err}");
    }

    #[test]
    fn a_toml_error_names_the_place_but_never_quotes_the_secret() {
        let dir = std::env::temp_dir().join(format!("secondme-toml-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let file = dir.join("config.toml");
        // A missing closing quote: toml's own message prints this line.
        std::fs::write(
            &file,
            "user_id = \"me\"\nredis_url = \"redis://bob:hunter2@host:6379\n",
        )
        .expect("write");
        let err = Config::load(Some(&file), Overrides::default()).expect_err("syntax error");
        let text = format!("{err:#}");
        assert!(!text.contains("hunter2"), "{text}");
        assert!(text.contains("line 2"), "{text}");
        // A type error on a line without a secret keeps toml's explanation.
        std::fs::write(&file, "batch_size = \"many\"\n").expect("write");
        let err = Config::load(Some(&file), Overrides::default()).expect_err("type error");
        let text = format!("{err:#}");
        assert!(
            text.contains("line 1") && text.contains("invalid type"),
            "{text}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
