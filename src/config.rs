//! Configuration: flags over environment (`SECONDME_*`) over the config file
//! (`$XDG_CONFIG_HOME/secondme/config.toml`) over defaults.
//!
//! Every setting is declared once, in [`Settings`]: that type is the command
//! line's flags and variables (clap reads both, flags first) and the config
//! file's keys (serde). [`Settings::or`] layers one set over another and
//! [`Config::resolve`] fills in the defaults and checks the values.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde::Deserialize;

use crate::duration::parse_duration;
use crate::learn::{LearnConfig, LearnSettings};
use crate::media::config::{MediaConfig, SttSettings};
use crate::paths;
use crate::reply::llm::config::{LlmConfig, LlmSettings};
use crate::schema::drafts::ReplyMode;
use crate::sleep::SleepHours;
use crate::sleep::SleepMode;

/// Every setting, each optional: what the command line, the environment or the
/// config file says, before defaults.
///
/// To add a setting, add a field here with a one-line doc comment (its `--help`
/// text) and an `#[arg]` like the others: it is then `--name`,
/// `SECONDME_NAME` and `name` in the file. The compiler then asks for it in
/// [`Settings::or`] and [`Config::resolve`] (its default and its check); show it
/// in `assets/config.example.toml`, which a test holds to this list.
// Every `env` argument has `hide_env_values`: `--help` must not print
// SECONDME_REDIS_URL, which may hold a password. Unknown file keys are an error,
// so a typo is noticed.
#[derive(Debug, Default, Clone, clap::Args, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// The gateway the control room runs: whatsapp or none.
    #[arg(long, global = true, env = "SECONDME_GATEWAY", hide_env_values = true)]
    pub gateway: Option<String>,
    /// Let WhatsApp group chats in (each group is one contact).
    #[arg(long, global = true, env = "SECONDME_GROUPS", hide_env_values = true)]
    pub groups: Option<bool>,
    /// Replies the WhatsApp gateway sends per minute at most (1-600).
    #[arg(
        long,
        global = true,
        env = "SECONDME_SEND_PER_MINUTE",
        hide_env_values = true
    )]
    pub send_per_minute: Option<u32>,
    /// WhatsApp device store directory (default: $XDG_DATA_HOME/secondme/whatsapp).
    #[arg(
        long,
        global = true,
        env = "SECONDME_WHATSAPP_DIR",
        hide_env_values = true
    )]
    pub whatsapp_dir: Option<PathBuf>,
    /// Redis URL: redis://[user:password@]host:port[/db], rediss://..., unix:///path/to.sock
    #[arg(
        long,
        global = true,
        env = "SECONDME_REDIS_URL",
        hide_env_values = true
    )]
    pub redis_url: Option<String>,
    /// The WhatsApp account owner's id (SESSION:{userId}).
    #[arg(long, global = true, env = "SECONDME_USER_ID", hide_env_values = true)]
    pub user_id: Option<String>,
    /// This worker's consumer name in the group (default: hostname-pid).
    #[arg(long, global = true, env = "SECONDME_CONSUMER", hide_env_values = true)]
    pub consumer: Option<String>,
    /// How long the twin stays quiet after you type to a contact (e.g. 60m).
    #[arg(long, global = true, env = "SECONDME_TAKEOVER", hide_env_values = true)]
    pub takeover: Option<String>,
    /// Persona for contacts the graph does not place (casual, professional, family).
    #[arg(
        long,
        global = true,
        env = "SECONDME_DEFAULT_PERSONA",
        hide_env_values = true
    )]
    pub default_persona: Option<String>,
    /// Entries decided per batch (1-10000).
    #[arg(
        long,
        global = true,
        env = "SECONDME_BATCH_SIZE",
        hide_env_values = true
    )]
    pub batch_size: Option<usize>,
    /// MiB of entries read ahead of the decisions (0-4096); 0 reads one batch at a time.
    #[arg(
        long,
        global = true,
        env = "SECONDME_READ_AHEAD_MB",
        hide_env_values = true
    )]
    pub read_ahead_mb: Option<usize>,
    /// Deliveries after which an entry is dead-lettered.
    #[arg(
        long,
        global = true,
        env = "SECONDME_MAX_DELIVERIES",
        hide_env_values = true
    )]
    pub max_deliveries: Option<u64>,
    /// Replies a slow engine (a language model) writes at once (1-1024).
    #[arg(
        long,
        global = true,
        env = "SECONDME_MAX_GENERATIONS",
        hide_env_values = true
    )]
    pub max_generations: Option<usize>,
    /// Quiet time in ms after a contact's last message before a slow engine replies (0-60000).
    #[arg(
        long,
        global = true,
        env = "SECONDME_BURST_QUIET_MS",
        hide_env_values = true
    )]
    pub burst_quiet_ms: Option<u64>,
    /// Where unprocessed entries go when the worker stops (JSON lines).
    #[arg(
        long,
        global = true,
        env = "SECONDME_REVIEW_FILE",
        hide_env_values = true
    )]
    pub review_file: Option<PathBuf>,
    /// Idle time after which a dead worker's pending entries are claimed (e.g. 30s).
    #[arg(
        long,
        global = true,
        env = "SECONDME_CLAIM_IDLE",
        hide_env_values = true
    )]
    pub claim_idle: Option<String>,
    /// Daily window without automated replies, local time (e.g. 23:00-07:00), or "off".
    #[arg(
        long,
        global = true,
        env = "SECONDME_SLEEP_HOURS",
        hide_env_values = true
    )]
    pub sleep_hours: Option<String>,
    /// Another program (the original gateway) already counts COUNTER:{contactId}:msgs: only read it.
    #[arg(
        long,
        global = true,
        env = "SECONDME_RATE_COUNTED_ELSEWHERE",
        hide_env_values = true
    )]
    pub rate_counted_elsewhere: Option<bool>,
    /// Session key file (default: $XDG_CONFIG_HOME/secondme/session.key).
    #[arg(long, global = true, env = "SECONDME_KEY_FILE", hide_env_values = true)]
    pub key_file: Option<PathBuf>,
    /// PEM file of the CA that signed a rediss:// server's certificate (private CA).
    #[arg(
        long,
        global = true,
        env = "SECONDME_TLS_CA_FILE",
        hide_env_values = true
    )]
    pub tls_ca_file: Option<PathBuf>,
    /// Log file.
    #[arg(long, global = true, env = "SECONDME_LOG_FILE", hide_env_values = true)]
    pub log_file: Option<PathBuf>,
    /// Control-room theme: dark, light or no-color.
    #[arg(long, global = true, env = "SECONDME_THEME", hide_env_values = true)]
    pub theme: Option<String>,
    /// Ring the terminal's bell in the control room when a draft arrives (true/false).
    #[arg(long, global = true, env = "SECONDME_BELL", hide_env_values = true)]
    pub bell: Option<bool>,
    /// Language-model endpoint (http://host:port); set, replies come from it (the `[llm]` table's base_url).
    #[arg(long, global = true, env = "SECONDME_LLM_URL", hide_env_values = true)]
    pub llm_url: Option<String>,
    /// Your name as your contacts know you (the owner's lines in a chat export; the prompt's "you are").
    #[arg(
        long,
        global = true,
        env = "SECONDME_OWNER_NAME",
        hide_env_values = true
    )]
    pub owner_name: Option<String>,
    /// How the twin answers contacts without a mode of their own: auto (sends) or draft (waits for you).
    #[arg(
        long,
        global = true,
        env = "SECONDME_REPLY_MODE",
        hide_env_values = true
    )]
    pub reply_mode: Option<String>,
    /// How long a draft waits for your decision before it expires unsent (e.g. 24h).
    #[arg(
        long,
        global = true,
        env = "SECONDME_DRAFT_TTL",
        hide_env_values = true
    )]
    pub draft_ttl: Option<String>,
    /// What the sleep hours do to messages: skip (never answered) or defer (answered when they end).
    #[arg(
        long,
        global = true,
        env = "SECONDME_SLEEP_MODE",
        hide_env_values = true
    )]
    pub sleep_mode: Option<String>,
    /// The person this process serves on a shared Redis: every key and channel behind `{N}:`.
    #[arg(
        long,
        global = true,
        env = "SECONDME_NAMESPACE",
        hide_env_values = true
    )]
    pub namespace: Option<String>,
    /// Replicas that must hold an inbound message or a reply before it counts as written (WAIT; 0: none).
    #[arg(
        long,
        global = true,
        env = "SECONDME_REPLICAS_TO_WAIT",
        hide_env_values = true
    )]
    pub replicas_to_wait: Option<u32>,
    /// Transcription endpoint for voice notes (OpenAI-compatible `/v1/audio/transcriptions`).
    #[arg(long, global = true, env = "SECONDME_STT_URL", hide_env_values = true)]
    pub stt_url: Option<String>,
    /// Largest voice note or photo read, MiB (1-64; default 16).
    #[arg(
        long,
        global = true,
        env = "SECONDME_MEDIA_MAX_MB",
        hide_env_values = true
    )]
    pub media_max_mb: Option<usize>,
    /// The transcription endpoint's details: only in the file's `[stt]` table.
    #[arg(skip)]
    #[serde(default)]
    pub stt: SttSettings,
    /// Learning from the person's chats: only in the file's `[learn]` table.
    #[arg(skip)]
    #[serde(default)]
    pub learn: LearnSettings,
    /// The language model: only in the file's `[llm]` table.
    #[arg(skip)]
    #[serde(default)]
    pub llm: LlmSettings,
    /// Control-room key overrides, action name to keys: only in the file's `[keys]` table.
    #[arg(skip)]
    #[serde(default)]
    pub keys: HashMap<String, String>,
}

/// The values given on the command line or in the environment, which tests
/// build by hand: the same type as the file's.
pub type Overrides = Settings;

impl Settings {
    /// These settings where given, `lower`'s elsewhere; a key binding here
    /// replaces the same action's in `lower`.
    pub fn or(self, lower: Settings) -> Settings {
        // Destructured without `..`, so a new field cannot be forgotten here.
        let Settings {
            owner_name,
            learn,
            llm_url,
            llm,
            gateway,
            groups,
            send_per_minute,
            whatsapp_dir,
            redis_url,
            user_id,
            consumer,
            takeover,
            default_persona,
            batch_size,
            read_ahead_mb,
            max_deliveries,
            max_generations,
            burst_quiet_ms,
            review_file,
            claim_idle,
            sleep_hours,
            rate_counted_elsewhere,
            key_file,
            tls_ca_file,
            log_file,
            theme,
            bell,
            reply_mode,
            draft_ttl,
            sleep_mode,
            namespace,
            replicas_to_wait,
            stt_url,
            media_max_mb,
            stt,
            keys,
        } = self;
        let mut merged_keys = lower.keys;
        merged_keys.extend(keys);
        Settings {
            owner_name: owner_name.or(lower.owner_name),
            learn: learn.or(lower.learn),
            llm_url: llm_url.or(lower.llm_url),
            llm: llm.or(lower.llm),
            gateway: gateway.or(lower.gateway),
            groups: groups.or(lower.groups),
            send_per_minute: send_per_minute.or(lower.send_per_minute),
            whatsapp_dir: whatsapp_dir.or(lower.whatsapp_dir),
            redis_url: redis_url.or(lower.redis_url),
            user_id: user_id.or(lower.user_id),
            consumer: consumer.or(lower.consumer),
            takeover: takeover.or(lower.takeover),
            default_persona: default_persona.or(lower.default_persona),
            batch_size: batch_size.or(lower.batch_size),
            read_ahead_mb: read_ahead_mb.or(lower.read_ahead_mb),
            max_deliveries: max_deliveries.or(lower.max_deliveries),
            max_generations: max_generations.or(lower.max_generations),
            burst_quiet_ms: burst_quiet_ms.or(lower.burst_quiet_ms),
            review_file: review_file.or(lower.review_file),
            claim_idle: claim_idle.or(lower.claim_idle),
            sleep_hours: sleep_hours.or(lower.sleep_hours),
            rate_counted_elsewhere: rate_counted_elsewhere.or(lower.rate_counted_elsewhere),
            key_file: key_file.or(lower.key_file),
            tls_ca_file: tls_ca_file.or(lower.tls_ca_file),
            log_file: log_file.or(lower.log_file),
            theme: theme.or(lower.theme),
            bell: bell.or(lower.bell),
            reply_mode: reply_mode.or(lower.reply_mode),
            draft_ttl: draft_ttl.or(lower.draft_ttl),
            sleep_mode: sleep_mode.or(lower.sleep_mode),
            namespace: namespace.or(lower.namespace),
            replicas_to_wait: replicas_to_wait.or(lower.replicas_to_wait),
            stt_url: stt_url.or(lower.stt_url),
            media_max_mb: media_max_mb.or(lower.media_max_mb),
            stt: stt.or(lower.stt),
            keys: merged_keys,
        }
    }

    /// Reads a config file; its TOML errors never quote the offending line.
    pub fn from_file(path: &Path) -> Result<Settings> {
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
    /// Run the WhatsApp gateway in the control room.
    pub gateway_whatsapp: bool,
    /// Group chats enter the queue.
    pub groups: bool,
    /// The send budget, replies per minute.
    pub send_per_minute: u32,
    /// The WhatsApp device store's directory.
    pub whatsapp_dir: PathBuf,
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
    /// Replies a slow engine writes at once.
    pub max_generations: usize,
    /// Quiet time after a contact's last message before a slow engine replies.
    pub burst_quiet: Duration,
    /// Review file.
    pub review_file: PathBuf,
    /// Idle time before a pending entry of another worker is claimed.
    pub claim_idle: Duration,
    /// Sleep hours.
    pub sleep_hours: SleepSetting,
    /// Another program counts the rate counters: the worker only reads them.
    pub rate_counted_elsewhere: bool,
    /// Session key file.
    pub key_file: PathBuf,
    /// CA certificates for a `rediss://` server signed by a private CA.
    pub tls_ca_file: Option<PathBuf>,
    /// Log file.
    pub log_file: PathBuf,
    /// Theme name.
    pub theme: String,
    /// Ring the terminal's bell when a draft arrives.
    pub bell: bool,
    /// The reply mode of contacts without one (`SECONDME:modes` `*` overrides it).
    pub reply_mode: ReplyMode,
    /// How long a draft waits for a decision before it expires unsent.
    pub draft_ttl: Duration,
    /// What the sleep hours do to messages.
    pub sleep_mode: SleepMode,
    /// The namespace every key and channel sits behind (`{N}:`), if any.
    pub namespace: Option<String>,
    /// Replicas a write waits for (`WAIT`) before it counts; 0 waits for none.
    pub replicas_to_wait: u32,
    /// The owner's name: `owner_name`, else the `[llm]` table's.
    pub owner_name: Option<String>,
    /// Learning from the person's chats.
    pub learn: LearnConfig,
    /// Reading voice notes and photos: the transcription endpoint and the size limit.
    pub media: MediaConfig,
    /// The language model, when one is configured.
    pub llm: Option<LlmConfig>,
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

/// Default replies a slow engine writes at once: a hosted model's rate limits
/// allow a few requests in flight, and a local one shares the machine's cores.
pub const DEFAULT_MAX_GENERATIONS: usize = 8;

/// Default quiet time, ms, after a contact's last message: people send a thought
/// in two or three quick messages, and one reply should answer them all.
pub const DEFAULT_BURST_QUIET_MS: u64 = 1500;

/// Default Redis URL.
pub const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379";

impl Config {
    /// Resolves the configuration: `over` (flags and environment) over `file`
    /// (`--config`, else the default path if it exists) over defaults.
    pub fn load(file: Option<&Path>, over: Settings) -> Result<Self> {
        let from_file = match file {
            Some(path) => Settings::from_file(path)?,
            None => {
                let default = paths::config_file();
                if default.exists() {
                    Settings::from_file(&default)?
                } else {
                    Settings::default()
                }
            }
        };
        Self::resolve(over.or(from_file))
    }

    /// Fills in the defaults of merged settings and checks their values.
    pub fn resolve(s: Settings) -> Result<Self> {
        // Destructured without `..`, so a new field cannot be forgotten here.
        let Settings {
            owner_name,
            learn,
            llm_url,
            llm,
            gateway,
            groups,
            send_per_minute,
            whatsapp_dir,
            redis_url,
            user_id,
            consumer,
            takeover,
            default_persona,
            batch_size,
            read_ahead_mb,
            max_deliveries,
            max_generations,
            burst_quiet_ms,
            review_file,
            claim_idle,
            sleep_hours,
            rate_counted_elsewhere,
            key_file,
            tls_ca_file,
            log_file,
            theme,
            bell,
            reply_mode,
            draft_ttl,
            sleep_mode,
            namespace,
            replicas_to_wait,
            stt_url,
            media_max_mb,
            stt,
            keys,
        } = s;
        let owner_name = owner_name
            .or_else(|| llm.owner_name.clone())
            .filter(|n| !n.trim().is_empty());
        let takeover_text = takeover.unwrap_or_else(|| "60m".into());
        let takeover = parse_duration(&takeover_text)
            .with_context(|| format!("invalid takeover pause {takeover_text:?}"))?;
        // Redis takes a pause's expiry as a 64-bit ms time: a longer takeover
        // would fail the step that records the person's own message.
        if takeover > MAX_TAKEOVER {
            bail!("takeover must be at most 30d, not {takeover_text:?}");
        }
        let claim_text = claim_idle.unwrap_or_else(|| "30s".into());
        let claim_idle = parse_duration(&claim_text)
            .with_context(|| format!("invalid claim_idle {claim_text:?}"))?;
        if claim_idle > MAX_CLAIM_IDLE {
            bail!("claim_idle must be at most 1d, not {claim_text:?}");
        }
        let reply_mode = match reply_mode.as_deref().map(str::trim) {
            None => ReplyMode::default(),
            Some(text) => text.parse().context("invalid reply_mode")?,
        };
        let ttl_text = draft_ttl.unwrap_or_else(|| "24h".into());
        let draft_ttl =
            parse_duration(&ttl_text).with_context(|| format!("invalid draft_ttl {ttl_text:?}"))?;
        if draft_ttl > MAX_DRAFT_TTL {
            bail!("draft_ttl must be at most 30d, not {ttl_text:?}");
        }
        let batch_size = batch_size.unwrap_or(DEFAULT_BATCH_SIZE);
        if !(1..=10_000).contains(&batch_size) {
            bail!("batch_size must be between 1 and 10000, not {batch_size}");
        }
        let read_ahead_mb = read_ahead_mb.unwrap_or(DEFAULT_READ_AHEAD_MB);
        if read_ahead_mb > 4096 {
            bail!("read_ahead_mb must be between 0 and 4096, not {read_ahead_mb}");
        }
        let max_generations = max_generations.unwrap_or(DEFAULT_MAX_GENERATIONS);
        if !(1..=1024).contains(&max_generations) {
            bail!("max_generations must be between 1 and 1024, not {max_generations}");
        }
        let burst_quiet_ms = burst_quiet_ms.unwrap_or(DEFAULT_BURST_QUIET_MS);
        if burst_quiet_ms > 60_000 {
            bail!("burst_quiet_ms must be between 0 and 60000, not {burst_quiet_ms}");
        }
        Ok(Self {
            gateway_whatsapp: match gateway.as_deref().map(str::trim) {
                None | Some("none") => false,
                Some("whatsapp") => true,
                Some(other) => bail!("gateway must be whatsapp or none, not {other:?}"),
            },
            groups: groups.unwrap_or(false),
            send_per_minute: match send_per_minute
                .unwrap_or(crate::bridge::whatsapp::gateway::DEFAULT_SEND_PER_MINUTE)
            {
                n @ 1..=600 => n,
                n => bail!("send_per_minute must be between 1 and 600, not {n}"),
            },
            whatsapp_dir: whatsapp_dir.unwrap_or_else(|| paths::data_dir().join("whatsapp")),
            owner_name: owner_name.clone(),
            learn: learn.resolve()?,
            llm: llm.resolve(llm_url)?.map(|mut l| {
                l.owner_name = l.owner_name.or_else(|| owner_name.clone());
                l
            }),
            redis_url: redis_url.unwrap_or_else(|| DEFAULT_REDIS_URL.into()),
            user_id: user_id.unwrap_or_else(|| "user-1".into()),
            consumer: consumer.unwrap_or_else(default_consumer),
            takeover,
            default_persona: default_persona.unwrap_or_else(|| "casual".into()),
            batch_size,
            read_ahead_bytes: read_ahead_mb * 1024 * 1024,
            max_deliveries: max_deliveries.unwrap_or(5).max(1),
            max_generations,
            burst_quiet: Duration::from_millis(burst_quiet_ms),
            review_file: review_file.unwrap_or_else(paths::review_file),
            claim_idle,
            sleep_hours: SleepSetting::parse(sleep_hours)?,
            rate_counted_elsewhere: rate_counted_elsewhere.unwrap_or(false),
            key_file: key_file.unwrap_or_else(paths::key_file),
            tls_ca_file,
            log_file: log_file.unwrap_or_else(paths::log_file),
            theme: theme.unwrap_or_else(|| "dark".into()),
            bell: bell.unwrap_or(false),
            reply_mode,
            draft_ttl,
            sleep_mode: match sleep_mode.as_deref().map(str::trim) {
                None => SleepMode::default(),
                Some(text) => text.parse().context("invalid sleep_mode")?,
            },
            namespace: crate::schema::check_namespace(namespace).context("invalid namespace")?,
            replicas_to_wait: match replicas_to_wait.unwrap_or(0) {
                n @ 0..=16 => n,
                n => bail!("replicas_to_wait must be between 0 and 16, not {n}"),
            },
            media: MediaConfig {
                stt: stt.resolve(stt_url)?,
                max_bytes: match media_max_mb {
                    None => crate::schema::media::DEFAULT_MAX_BYTES,
                    Some(n @ 1..=64) => n * 1024 * 1024,
                    Some(n) => bail!("media_max_mb must be between 1 and 64, not {n}"),
                },
            },
            keys,
        })
    }
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
        hide_quoted(e.message().trim())
    };
    format!("line {line}, column {column}: {message}")
}

/// A message with every double-quoted value shown as `"…"`: a value spanning
/// lines (a multi-line string) may hold a secret the erroring line doesn't name.
/// A quote escaped inside a value (`\"`, as toml quotes it) does not end it.
fn hide_quoted(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut inside = false;
    let mut escaped = false;
    for c in message.chars() {
        if inside {
            match (escaped, c) {
                (false, '\\') => escaped = true,
                (false, '"') => {
                    inside = false;
                    out.push_str("…\"");
                }
                _ => escaped = false,
            }
        } else {
            out.push(c);
            inside = c == '"';
        }
    }
    if inside {
        out.push('…');
    }
    out
}

/// `hostname-pid`: unique per process, readable in `XINFO CONSUMERS`.
/// Longest takeover pause.
const MAX_TAKEOVER: Duration = Duration::from_secs(30 * 86_400);
/// Longest a draft waits: its expiry is a 64-bit ms time in Redis.
const MAX_DRAFT_TTL: Duration = Duration::from_secs(30 * 86_400);
/// Longest wait before another consumer's pending entry is claimed.
const MAX_CLAIM_IDLE: Duration = Duration::from_secs(86_400);

fn default_consumer() -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "host".into());
    format!("{host}-{}", std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_takeover_or_claim_wait_too_long_for_redis_is_refused() {
        let with = |takeover: &str, claim: &str| {
            Config::resolve(Settings {
                takeover: Some(takeover.into()),
                claim_idle: Some(claim.into()),
                ..Settings::default()
            })
        };
        let err = with("9999999999999999", "30s").expect_err("too long");
        assert!(
            format!("{err:#}").contains("takeover must be at most 30d"),
            "{err:#}"
        );
        let err = with("60m", "400d").expect_err("too long");
        assert!(
            format!("{err:#}").contains("claim_idle must be at most 1d"),
            "{err:#}"
        );
        assert!(with("30d", "1d").is_ok());
    }

    #[test]
    fn the_reply_mode_and_the_draft_lifetime_are_checked() {
        let with = |mode: Option<&str>, ttl: Option<&str>| {
            Config::resolve(Settings {
                reply_mode: mode.map(str::to_owned),
                draft_ttl: ttl.map(str::to_owned),
                ..Settings::default()
            })
        };
        let c = with(None, None).expect("defaults");
        assert_eq!(c.reply_mode, ReplyMode::Auto);
        assert_eq!(c.draft_ttl, Duration::from_secs(24 * 3600));
        let c = with(Some("draft"), Some("90s")).expect("given");
        assert_eq!(c.reply_mode, ReplyMode::Draft);
        assert_eq!(c.draft_ttl, Duration::from_secs(90));
        assert!(with(Some("manual"), None).is_err());
        let err = with(None, Some("31d")).expect_err("too long");
        assert!(format!("{err:#}").contains("draft_ttl must be at most 30d"));
        assert!(with(None, Some("soon")).is_err());
    }

    #[test]
    fn flags_beat_file_beats_defaults() {
        let file = Settings {
            redis_url: Some("redis://file:1".into()),
            user_id: Some("file-user".into()),
            ..Settings::default()
        };
        let over = Overrides {
            redis_url: Some("redis://flag:2".into()),
            ..Overrides::default()
        };
        let c = Config::resolve(over.or(file)).expect("merge");
        assert_eq!(c.redis_url, "redis://flag:2");
        assert_eq!(c.user_id, "file-user");
        assert_eq!(c.takeover, Duration::from_secs(3600));
    }

    /// The command line as `main` builds it: the settings flattened in.
    #[derive(Debug, clap::Parser)]
    struct TestCli {
        #[command(flatten)]
        settings: Settings,
    }

    #[test]
    fn every_setting_is_a_hidden_global_flag_a_variable_and_in_the_example() {
        use clap::CommandFactory;
        let example = include_str!("../assets/config.example.toml");
        let command = TestCli::command();
        for arg in command.get_arguments() {
            let id = arg.get_id().as_str();
            if id == "help" {
                continue;
            }
            assert_eq!(arg.get_long(), Some(id.replace('_', "-").as_str()), "{id}");
            let env = format!("SECONDME_{}", id.to_ascii_uppercase());
            assert_eq!(arg.get_env(), Some(std::ffi::OsStr::new(&env)), "{id}");
            assert!(
                arg.is_hide_env_values_set(),
                "{id}: the value may be a secret"
            );
            assert!(arg.is_global_set(), "{id}: usable after a subcommand");
            let shown = example
                .lines()
                .any(|l| l.trim_start_matches("# ").starts_with(&format!("{id} = ")));
            assert!(shown, "{id} is not in assets/config.example.toml");
        }
    }

    #[test]
    fn a_flag_and_a_file_key_fill_the_same_setting() {
        use clap::Parser;
        // Every value given as a flag, so no SECONDME_* variable of the test's
        // environment can stand in for one.
        let cli = TestCli::try_parse_from([
            "secondme",
            "--batch-size",
            "7",
            "--theme",
            "light",
            "--key-file",
            "/k",
        ])
        .expect("flags parse");
        let file: Settings =
            toml::from_str("batch_size = 7\ntheme = \"light\"\nkey_file = \"/k\"\n")
                .expect("file parses");
        let flags = cli.settings;
        assert_eq!(flags.batch_size, file.batch_size);
        assert_eq!(flags.theme, file.theme);
        assert_eq!(flags.key_file, file.key_file);
        assert!(TestCli::try_parse_from(["secondme", "--batch-size", "many"]).is_err());
    }

    #[test]
    fn a_key_binding_given_over_the_file_replaces_only_its_action() {
        let file: Settings =
            toml::from_str("[keys]\npause = \"p\"\nquit = \"q\"\n").expect("file parses");
        let over = Settings {
            keys: HashMap::from([("pause".to_owned(), "x".to_owned())]),
            ..Settings::default()
        };
        let keys = over.or(file).keys;
        assert_eq!(keys.get("pause").map(String::as_str), Some("x"));
        assert_eq!(keys.get("quit").map(String::as_str), Some("q"));
    }

    #[test]
    fn the_shipped_example_config_is_valid_and_matches_the_defaults() {
        let file: Settings =
            toml::from_str(include_str!("../assets/config.example.toml")).expect("parses");
        let keys: Vec<(String, String)> = file.keys.clone().into_iter().collect();
        let keymap = secondme_ui::Keymap::from_overrides(&keys).expect("valid keys");
        assert_eq!(
            keymap,
            secondme_ui::Keymap::default(),
            "the example shows the defaults"
        );
        let example = Config::resolve(file).expect("merge");
        let defaults = Config::resolve(Settings::default()).expect("merge");
        assert_eq!(example.redis_url, defaults.redis_url);
        assert_eq!(example.takeover, defaults.takeover);
        assert_eq!(example.batch_size, defaults.batch_size);
        assert_eq!(example.read_ahead_bytes, defaults.read_ahead_bytes);
        assert_eq!(example.claim_idle, defaults.claim_idle);
        assert_eq!(example.max_generations, defaults.max_generations);
        assert_eq!(example.burst_quiet, defaults.burst_quiet);
        assert_eq!(example.theme, defaults.theme);
        assert_eq!(example.bell, defaults.bell);
        assert_eq!(example.sleep_hours, defaults.sleep_hours);
        assert_eq!(example.reply_mode, defaults.reply_mode);
        assert_eq!(example.draft_ttl, defaults.draft_ttl);
    }

    #[test]
    fn the_example_config_shows_the_gateway_defaults() {
        let file: Settings =
            toml::from_str(include_str!("../assets/config.example.toml")).expect("parses");
        let example = Config::resolve(file).expect("merge");
        let defaults = Config::resolve(Settings::default()).expect("merge");
        assert_eq!(example.gateway_whatsapp, defaults.gateway_whatsapp);
        assert_eq!(example.groups, defaults.groups);
        assert_eq!(example.send_per_minute, defaults.send_per_minute);
        assert_eq!(example.whatsapp_dir, defaults.whatsapp_dir);
    }

    #[test]
    fn sleep_hours_come_from_the_graph_unless_set() {
        let with = |text: Option<&str>| {
            let over = Overrides {
                sleep_hours: text.map(str::to_owned),
                ..Overrides::default()
            };
            Config::resolve(over).map(|c| c.sleep_hours)
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
        let err = toml::from_str::<Settings>("redis_ulr = \"x\"").expect_err("typo");
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
        // A multi-line string: the secret is on a line of its own, and the
        // erroring line names no secret, yet toml quotes the value.
        std::fs::write(&file, "batch_size = \"\"\"\nhunter2\"\"\"\n").expect("write");
        let err = Config::load(Some(&file), Overrides::default()).expect_err("type error");
        let text = format!("{err:#}");
        assert!(!text.contains("hunter2"), "{text}");
        assert!(text.contains("invalid type"), "{text}");
        // A quote inside the value, which toml escapes when quoting it.
        std::fs::write(&file, "batch_size = '''\na\"b hunter2'''\n").expect("write");
        let err = Config::load(Some(&file), Overrides::default()).expect_err("type error");
        let text = format!("{err:#}");
        assert!(!text.contains("hunter2"), "{text}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
