//! The Redis contract in one place: every key, channel and payload of
//! `docs/redis-schema.md` (the seed's keys and the ones SecondMe adds).
//!
//! Nothing else in the crate spells a key name or a channel name: it calls a
//! builder here, so the contract can be read and changed in one file.

use serde::{Deserialize, Serialize};

/// Stream the gateway writes every WhatsApp message to (seed).
pub const QUEUE_MESSAGES: &str = "QUEUE:messages";
/// Seed cap of `QUEUE:messages`; trimming never removes unacknowledged work.
pub const QUEUE_MESSAGES_CAP: usize = 1000;
/// Seed age limit of a queue entry: older ones go to review instead of an answer.
pub const QUEUE_ENTRY_MAX_AGE_MS: i64 = 5 * 60 * 1000;
/// Stream of replies for the gateway to send (upstream design; silent in the seed).
pub const QUEUE_RESPONSES: &str = "QUEUE:responses";
/// Approximate cap of `QUEUE:responses`.
pub const QUEUE_RESPONSES_CAP: usize = 10_000;
/// Stream of entries that could not be answered, each with the reason (added).
pub const QUEUE_DEADLETTER: &str = "QUEUE:deadletter";
/// Approximate cap of `QUEUE:deadletter`.
pub const QUEUE_DEADLETTER_CAP: usize = 10_000;
/// Consumer group every SecondMe worker joins on `QUEUE:messages` (added).
pub const WORKER_GROUP: &str = "secondme-workers";

/// Global kill switch (seed): activation time in ms, no TTL.
pub const PAUSE_ALL: &str = "PAUSE:ALL";
/// The `contactId` that pause events carry for the kill switch.
pub const PAUSE_ALL_CONTACT: &str = "ALL";
/// Default pause length (seed: 60 minutes).
pub const DEFAULT_PAUSE_MS: i64 = 60 * 60 * 1000;
/// Auto-pause length after a rate-limit trip (seed: one hour).
pub const RATE_LIMIT_PAUSE_MS: i64 = 60 * 60 * 1000;
/// Messages a contact may send in one window before the auto-pause (seed).
pub const RATE_LIMIT_MAX: i64 = 10;
/// Rate-limit window in seconds (seed).
pub const RATE_LIMIT_WINDOW_S: i64 = 60;

/// Set of contact ids the person enabled the twin for (added; opt-in).
pub const OPTIN_CONTACTS: &str = "OPTIN:contacts";
/// Sorted set of contact ids scored by last activity in ms (added).
pub const CONTACTS_ACTIVITY: &str = "CONTACTS:activity";
/// Marker that this Redis still holds SecondMe's state (added; no TTL).
pub const STATE_MARKER: &str = "SECONDME:state";
/// Hash of monotonic worker counters (added): received, answered, skipped ...
pub const STATS: &str = "SECONDME:stats";
/// `SECONDME:llm` (added): the language model's counters per model and its breaker.
pub const LLM_STATS: &str = "SECONDME:llm";
/// How long a day's token counter `SECONDME:llm:tokens:{date}` lives, s.
pub const LLM_TOKENS_TTL_S: i64 = 3 * 24 * 60 * 60;

/// `SECONDME:llm:tokens:{YYYY-MM-DD}` (added): tokens spent that UTC day, all workers.
pub fn llm_tokens_key(date: &str) -> String {
    format!("SECONDME:llm:tokens:{date}")
}
/// `SECONDME:llm:latency:{model}` (added): the model's latest call latencies, ms,
/// newest first, trimmed to [`LLM_LATENCY_SAMPLES`].
pub fn llm_latency_key(model: &str) -> String {
    format!("SECONDME:llm:latency:{model}")
}
/// Latencies kept per model in `SECONDME:llm:latency:{model}`.
pub const LLM_LATENCY_SAMPLES: usize = 500;
/// How long a model's latency list lives after its last write, s (a model no
/// longer configured drops out).
pub const LLM_LATENCY_TTL_S: i64 = 7 * 24 * 60 * 60;
/// `SECONDME:llm:minute:{unixMinute}` (added): replies, tokens and errors of
/// that minute over every worker.
pub fn llm_minute_key(minute: i64) -> String {
    format!("SECONDME:llm:minute:{minute}")
}
/// How long a minute's counts live, s: the control room shows the last hour.
pub const LLM_MINUTE_TTL_S: i64 = 2 * 60 * 60;
/// `SECONDME:llm:breakers` (added): each worker's open breaker, field = the
/// worker's engine id, value `{seenMs} {untilMs} {reason}` (server clock).
pub const LLM_BREAKERS: &str = "SECONDME:llm:breakers";
/// An entry of `SECONDME:llm:breakers` not written again for this long is a
/// worker gone away: not shown, and pruned by the next flush, ms.
pub const LLM_BREAKER_STALE_MS: i64 = 10_000;
/// TTL of `SECONDME:llm:breakers`, renewed by each open breaker's flush, s.
pub const LLM_BREAKERS_TTL_S: i64 = 10;
/// Messages kept per contact in `HISTORY:{contactId}` (added).
pub const HISTORY_LEN: usize = 50;
/// Width of a `HANDLED:{bucket}` hash in ms (added): each holds one hour's handled
/// message ids and lives through the next hour, so an id is remembered 1 to 2 hours.
pub const HANDLED_BUCKET_MS: i64 = 60 * 60 * 1000;
/// How long a gateway remembers the ids of messages it sent for the twin (added).
pub const SENT_TTL_S: i64 = 60 * 60;

/// Session lifetime (seed: 24 hours).
pub const SESSION_TTL_S: i64 = 24 * 60 * 60;
/// Persona cache lifetime (seed: 30 minutes).
pub const PERSONA_CACHE_TTL_S: i64 = 30 * 60;

/// Pause and resume events (seed).
pub const CHANNEL_PAUSE: &str = "events:pause";
/// Every message of a conversation, incoming, typed by the person or sent by the twin (seed).
pub const CHANNEL_MESSAGES: &str = "events:messages";
/// Login QR codes (seed).
pub const CHANNEL_QR: &str = "events:qr";
/// All three channels, in the order a dashboard subscribes to them.
pub const CHANNELS: [&str; 3] = [CHANNEL_PAUSE, CHANNEL_MESSAGES, CHANNEL_QR];

/// Prefix of `PAUSE:{contactId}`.
pub const PAUSE_PREFIX: &str = "PAUSE:";
/// Prefix of `PAUSEMETA:{contactId}`.
pub const PAUSE_META_PREFIX: &str = "PAUSEMETA:";
/// Prefix of `COUNTER:{contactId}:msgs`.
pub const COUNTER_PREFIX: &str = "COUNTER:";
/// Suffix of `COUNTER:{contactId}:msgs`.
pub const COUNTER_SUFFIX: &str = ":msgs";
/// Prefix of `HANDLED:{bucket}`.
pub const HANDLED_PREFIX: &str = "HANDLED:";
/// Prefix of `SENT:{messageId}`.
pub const SENT_PREFIX: &str = "SENT:";
/// Prefix of `HISTORY:{contactId}`.
pub const HISTORY_PREFIX: &str = "HISTORY:";

/// `PAUSE:{contactId}` (seed): expiry time in ms, TTL matching it.
pub fn pause_key(contact_id: &str) -> String {
    format!("{PAUSE_PREFIX}{contact_id}")
}

/// `PAUSEMETA:{contactId}` (added): why the contact is paused, same TTL as the pause.
pub fn pause_meta_key(contact_id: &str) -> String {
    format!("{PAUSE_META_PREFIX}{contact_id}")
}

/// `COUNTER:{contactId}:msgs` (seed): messages in the current one-minute window.
pub fn counter_key(contact_id: &str) -> String {
    format!("{COUNTER_PREFIX}{contact_id}{COUNTER_SUFFIX}")
}

/// `SESSION:{userId}` (seed): the WhatsApp session hash.
pub fn session_key(user_id: &str) -> String {
    format!("SESSION:{user_id}")
}

/// `CACHE:persona:{personaId}` (seed): persona JSON, 30 minute TTL.
pub fn persona_cache_key(persona_id: &str) -> String {
    format!("CACHE:persona:{persona_id}")
}

/// `HANDLED:{bucket}` (added): hash of message id -> how it was handled, for the
/// hour `bucket` (ms since the epoch / [`HANDLED_BUCKET_MS`]); makes redelivery harmless.
pub fn handled_key(bucket: i64) -> String {
    format!("{HANDLED_PREFIX}{bucket}")
}

/// The `HANDLED:` bucket of a time in ms.
pub fn handled_bucket(at_ms: i64) -> i64 {
    at_ms.div_euclid(HANDLED_BUCKET_MS)
}

/// `QR:{userId}` (added): the login code on screen now, as its `events:qr` payload,
/// expiring with it, so a dashboard that starts after the publish still shows it.
pub fn qr_key(user_id: &str) -> String {
    format!("QR:{user_id}")
}

/// `SENT:{messageId}` (added): the gateway sent this message for the twin.
pub fn sent_key(message_id: &str) -> String {
    format!("{SENT_PREFIX}{message_id}")
}

// The WhatsApp gateway's own keys, channel and group (added; `src/bridge/whatsapp`).

/// Channel carrying each change of the WhatsApp gateway's state: the `GATEWAY:{userId}` value.
pub const CHANNEL_GATEWAY: &str = "events:gateway";
/// Consumer group the WhatsApp gateway reads `QUEUE:responses` in.
pub const GATEWAY_GROUP: &str = "secondme-gateway";
/// `CONTACTS:names`: contact id to the contact's WhatsApp display name (push name).
pub const CONTACT_NAMES: &str = "CONTACTS:names";

/// `GATEWAY:{userId}`: the WhatsApp gateway's state, JSON, refreshed while it runs.
pub fn gateway_key(user_id: &str) -> String {
    format!("GATEWAY:{user_id}")
}

/// `GATEWAYREQ:{userId}`: what the operator asks of the gateway (`new_codes`).
pub fn gateway_request_key(user_id: &str) -> String {
    format!("GATEWAYREQ:{user_id}")
}

/// `GATEWAYLOCK:{userId}`: the reply lease, so one gateway per account sends replies.
pub fn gateway_lock_key(user_id: &str) -> String {
    format!("GATEWAYLOCK:{user_id}")
}

/// `SENTREPLY:{replyId}`: the message id a reply was sent as (a reply is sent
/// once), `sending:{messageId}` while it is being sent.
pub fn sent_reply_key(reply_id: &str) -> String {
    format!("SENTREPLY:{reply_id}")
}

/// `SENDFAIL:{replyId}`: the WhatsApp id a reply goes out with (`waId`, written
/// before its first send) and its failed sends (`attempts`, `error`).
pub fn send_fail_key(reply_id: &str) -> String {
    format!("SENDFAIL:{reply_id}")
}

/// Largest id accepted (message and contact ids), in bytes: short enough that
/// the control room shows (and acts on) every id whole.
pub const MAX_ID_BYTES: usize = 120;

/// Characters that change how text around them is shown without showing
/// themselves (bidi overrides and isolates, zero-width marks): an id holding one
/// can pass for another id on screen.
fn is_invisible_format(c: char) -> bool {
    matches!(
        c,
        '\u{00ad}'
            | '\u{061c}'
            | '\u{180e}'
            | '\u{200b}'..='\u{200f}'
            | '\u{202a}'..='\u{202e}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{206f}'
            | '\u{feff}'
            | '\u{fff9}'..='\u{fffb}'
            | '\u{034f}'
            | '\u{115f}'
            | '\u{1160}'
            | '\u{3164}'
            | '\u{ffa0}'
            | '\u{fe00}'..='\u{fe0f}'
            | '\u{e0000}'..='\u{e007f}'
            | '\u{e0100}'..='\u{e01ef}'
    )
}

/// The one check of an id (message or contact) from any source: the queue, the
/// command line, the control room. Says what is wrong.
pub fn check_id(id: &str) -> Result<(), String> {
    if id.is_empty() {
        return Err("is empty".into());
    }
    if id.len() > MAX_ID_BYTES {
        return Err(format!("is {} bytes, over {MAX_ID_BYTES}", id.len()));
    }
    if id.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err("contains whitespace or control characters".into());
    }
    if id.chars().any(is_invisible_format) {
        return Err("contains invisible formatting characters (bidi or zero-width)".into());
    }
    Ok(())
}

/// [`check_id`] for a contact id, which also must not be `ALL`: `PAUSE:ALL` is
/// the kill switch, so a contact of that name would pause or resume everyone.
pub fn check_contact_id(id: &str) -> Result<(), String> {
    check_id(id)?;
    if id == PAUSE_ALL_CONTACT {
        return Err(format!(
            "is `{PAUSE_ALL_CONTACT}`, reserved for the kill switch ({PAUSE_ALL})"
        ));
    }
    Ok(())
}

/// How long `HISTORY:{contactId}` of an enabled contact outlives its last message.
pub const HISTORY_TTL_ENABLED_MS: i64 = 30 * 24 * 60 * 60 * 1000;
/// How long the history of a contact the twin does not answer outlives its last
/// message: a stranger writing from ever new numbers leaves nothing for long.
pub const HISTORY_TTL_OTHER_MS: i64 = 24 * 60 * 60 * 1000;
/// Most members kept in `CONTACTS:activity` (the most recently active).
pub const CONTACTS_ACTIVITY_CAP: usize = 10_000;

/// `HISTORY:{contactId}` (added): newest-first list of `events:messages` payloads.
pub fn history_key(contact_id: &str) -> String {
    format!("{HISTORY_PREFIX}{contact_id}")
}

/// Keys and a channel other programs sharing the Redis write, which SecondMe reads
/// (documented under "Dialects we read" in docs/redis-schema.md).
pub mod dialect {
    /// The original gateway's session: a JSON string
    /// `{createdAt, lastVerifiedAt, estimatedExpiryAt, state, needsRefresh}`.
    pub const SESSION_INFO: &str = "SESSION:whatsapp:info";
    /// Contact names kept by the original gateway and dashboards.
    pub const CONTACTS_LIST: &str = "CONTACTS:list";
    /// The sleep window set from the original dashboard (recognised, not obeyed).
    pub const CONFIG_SLEEP_HOURS: &str = "CONFIG:sleep_hours";
    /// Service statuses: `{service, status, reason?}`.
    pub const CHANNEL_STATUS: &str = "events:status";
    /// The original gateway's single queue-entry field (see [`crate::entry::PAYLOAD`]).
    pub const PAYLOAD_FIELD: &str = "payload";
}

/// Prefix of SecondMe's own history key, used when another program keeps
/// `HISTORY:{contactId}` as another type (the original gateway's sorted set).
pub const OWN_HISTORY_PREFIX: &str = "SECONDME:history:";

/// `SECONDME:history:{contactId}`: the same list as [`history_key`], for a contact
/// whose `HISTORY:` key another program owns with another type.
pub fn own_history_key(contact_id: &str) -> String {
    format!("{OWN_HISTORY_PREFIX}{contact_id}")
}

/// Why a contact (or, for `ALL`, everyone) is paused: the `reason` of
/// `events:pause` and the value of `PAUSEMETA:{contactId}`, parsed once here.
///
/// The Lua scripts write the wire names; other programs may write free text,
/// which is kept as [`PauseReason::Other`] so it can still be shown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PauseReason {
    /// The operator paused it (CLI or TUI).
    Manual,
    /// The person typed to the contact from their own phone.
    Takeover,
    /// The contact sent more than the rate limit allows.
    RateLimit,
    /// Redis lost its state; the worker switched the kill switch on.
    StateLost,
    /// The model wrote what must never reach a contact (its instructions, "I am
    /// an AI", a message for someone else): the twin steps back for the operator.
    Refused,
    /// A pause with no `PAUSEMETA` beside it: another program set it.
    Unknown,
    /// Any other program's reason, as it was written (clean it before printing).
    Other(String),
}

impl PauseReason {
    /// The wire name, as in the `reason` field of `events:pause`.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Manual => "manual",
            Self::Takeover => "takeover",
            Self::RateLimit => "rate_limit",
            Self::StateLost => "state_lost",
            Self::Refused => "refused",
            Self::Unknown => "unknown",
            Self::Other(text) => text,
        }
    }

    /// Parses a wire name; any other text becomes [`PauseReason::Other`].
    pub fn parse(s: &str) -> Self {
        match s {
            "manual" => Self::Manual,
            // The original gateway's word for the person typing on the phone.
            "takeover" | "fromMe" => Self::Takeover,
            "rate_limit" => Self::RateLimit,
            "state_lost" => Self::StateLost,
            "refused" => Self::Refused,
            "unknown" => Self::Unknown,
            other => Self::Other(other.to_owned()),
        }
    }

    /// Rewrites the free text of [`PauseReason::Other`] (to make it safe for a
    /// terminal); the wire names need no cleaning and stay.
    pub fn clean_other(&mut self, clean: impl FnOnce(&str) -> String) {
        if let Self::Other(text) = self {
            *text = clean(text);
        }
    }
}

impl std::fmt::Display for PauseReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

// As a plain string on the wire and in `status --json`, never as a tagged enum.
impl Serialize for PauseReason {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for PauseReason {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Self::parse(&String::deserialize(d)?))
    }
}

/// `action` of a pause event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PauseAction {
    /// The contact (or everything, for `ALL`) stopped being answered.
    Pause,
    /// Answering may go on.
    Resume,
}

/// Payload on `events:pause`: `{contactId, action, expiresAt, reason}`.
///
/// `expiresAt` is null for the kill switch and for resumes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PauseEvent {
    /// The contact, or `ALL` for the kill switch.
    pub contact_id: String,
    /// Pause or resume.
    pub action: PauseAction,
    /// When the pause ends, in ms since the epoch.
    pub expires_at: Option<i64>,
    /// Why (`manual`, `takeover`, `rate_limit`, `state_lost`, or other programs'
    /// free text); absent in the seed's payload.
    #[serde(default)]
    pub reason: Option<PauseReason>,
}

/// Payload on `events:messages`: `{messageId, contactId, content, botSent, timestamp}`.
///
/// `fromMe` is added so a dashboard tells the person's own typing from the contact's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageEvent {
    /// The message id (for a reply, the reply's own id).
    pub message_id: String,
    /// The contact of the conversation.
    pub contact_id: String,
    /// The text.
    pub content: String,
    /// True when the twin wrote it.
    pub bot_sent: bool,
    /// Unix time in ms.
    pub timestamp: i64,
    /// True when the person typed it on their phone (added; absent means false).
    #[serde(default)]
    pub from_me: bool,
}

/// Payload on `events:qr`: `{qrCode, expiresIn}` (seed; `qrCode` is base64 of the code's text).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QrEvent {
    /// Base64 of the string the QR code encodes.
    pub qr_code: String,
    /// Seconds until the gateway replaces the code.
    pub expires_in: u32,
}

/// Persona JSON in `CACHE:persona:{personaId}`: `{styleGuide, tone, exampleMessages}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PersonaCache {
    /// How the person writes.
    pub style_guide: String,
    /// One word or phrase: warm, formal, playful ...
    pub tone: String,
    /// Messages the person actually wrote.
    pub example_messages: Vec<String>,
}

/// `direction` of a queue entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// From the contact to the person.
    Incoming,
    /// From the person's account to the contact.
    Outgoing,
}

impl Direction {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Incoming => "incoming",
            Self::Outgoing => "outgoing",
        }
    }
}

/// A `QUEUE:messages` entry, parsed and checked (see [`crate::entry`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QueueMessage {
    /// Gateway message id.
    pub message_id: String,
    /// Contact id (a hash, not a phone number).
    pub contact_id: String,
    /// Message text.
    pub content: String,
    /// Unix time in ms.
    pub timestamp: i64,
    /// Incoming or outgoing.
    pub direction: Direction,
    /// True when sent from the person's account.
    pub from_me: bool,
}

impl QueueMessage {
    /// The entry's fields under the seed's names, in the order a gateway writes them.
    pub fn fields(&self) -> [(&'static str, String); 6] {
        [
            ("messageId", self.message_id.clone()),
            ("contactId", self.contact_id.clone()),
            ("content", self.content.clone()),
            ("timestamp", self.timestamp.to_string()),
            ("direction", self.direction.as_str().to_owned()),
            ("fromMe", self.from_me.to_string()),
        ]
    }
}

/// Field names of a `QUEUE:responses` entry (added).
pub mod response_fields {
    /// The reply's own id.
    pub const REPLY_ID: &str = "replyId";
    /// Contact to send to.
    pub const CONTACT_ID: &str = "contactId";
    /// Reply text.
    pub const CONTENT: &str = "content";
    /// The message answered.
    pub const IN_REPLY_TO: &str = "inReplyTo";
    /// Persona that wrote it.
    pub const PERSONA: &str = "persona";
    /// When the worker wrote it, ms.
    pub const TIMESTAMP: &str = "timestamp";
    /// How long the gateway shows "typing..." before it sends, ms.
    pub const DELAY_MS: &str = "delayMs";
}

/// Field names of a `QUEUE:deadletter` entry (added), beside the original fields.
pub mod deadletter_fields {
    /// Stream id of the original entry.
    pub const SOURCE_ID: &str = "sourceId";
    /// Why it was not answered.
    pub const REASON: &str = "reason";
    /// When it was dead-lettered, ms.
    pub const AT: &str = "at";
}
