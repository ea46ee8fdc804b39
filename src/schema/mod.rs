//! The Redis contract in one place: every key, channel and payload of
//! `docs/redis-schema.md` (the seed's keys and the ones SecondMe adds).
//!
//! Nothing else in the crate spells a key name or a channel name: it calls a
//! builder here, and every builder reads the one [`Names`] value (`names.rs`,
//! the one place a name is spelled), so the contract is read and changed here.

use serde::{Deserialize, Serialize};

pub mod deferred;
pub mod drafts;
pub mod learned;
pub mod media;
mod names;

pub use names::{
    NAMESPACE_MAX_LEN, Names, NamespaceError, check_namespace, current_namespace, in_namespace,
    names, set_namespace, spawn_here,
};

/// Stream the gateway writes every WhatsApp message to (seed).
pub fn queue_messages() -> &'static str {
    &names().queue_messages
}
/// Seed cap of `QUEUE:messages`; trimming never removes unacknowledged work.
pub const QUEUE_MESSAGES_CAP: usize = 1000;
/// Seed age limit of a queue entry: older ones go to review instead of an answer.
pub const QUEUE_ENTRY_MAX_AGE_MS: i64 = 5 * 60 * 1000;
/// Stream of replies for the gateway to send (upstream design; silent in the seed).
pub fn queue_responses() -> &'static str {
    &names().queue_responses
}
/// Approximate cap of `QUEUE:responses`.
pub const QUEUE_RESPONSES_CAP: usize = 10_000;
/// Stream of entries that could not be answered, each with the reason (added).
pub fn queue_deadletter() -> &'static str {
    &names().queue_deadletter
}
/// Approximate cap of `QUEUE:deadletter`.
pub const QUEUE_DEADLETTER_CAP: usize = 10_000;
/// Consumer group every SecondMe worker joins on `QUEUE:messages` (added).
pub const WORKER_GROUP: &str = "secondme-workers";

/// Global kill switch `PAUSE:ALL` (seed): activation time in ms, no TTL.
pub fn pause_all() -> &'static str {
    &names().pause_all
}
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

/// `OPTIN:contacts`: contact ids the person enabled the twin for (added; opt-in).
pub fn optin_contacts() -> &'static str {
    &names().optin_contacts
}
/// `CONTACTS:activity`: contact ids scored by last activity in ms (added).
pub fn contacts_activity() -> &'static str {
    &names().contacts_activity
}
/// `SECONDME:state`: this Redis still holds SecondMe's state (added; no TTL).
pub fn state_marker() -> &'static str {
    &names().state_marker
}
/// `SECONDME:unanswered` (added): hash, contact id to the number of its messages
/// the twin chose not to answer since it or the person last wrote to the contact.
pub fn unanswered() -> &'static str {
    &names().unanswered
}
/// `SECONDME:unheard` (added): hash, contact id to the number of its voice notes
/// and photos the twin could not understand, until the operator or the person
/// looks at the conversation (the twin's own replies leave it).
pub fn unheard() -> &'static str {
    &names().unheard
}
/// `SECONDME:deferred` (added): hash, contact id to the newest message it wrote in
/// the sleep hours under `sleep_mode = "defer"`, answered when the window ends.
pub fn deferred() -> &'static str {
    &names().deferred
}
/// `SECONDME:namespaces` (added): set of the namespaces a pool of workers serves;
/// outside every namespace.
pub fn namespaces() -> &'static str {
    &names().namespaces
}
/// `SECONDME:stats`: monotonic worker counters (added): received, answered, skipped ...
pub fn stats() -> &'static str {
    &names().stats
}
/// `SECONDME:llm` (added): the language model's counters per model and its breaker.
pub fn llm_stats() -> &'static str {
    &names().llm_stats
}
/// How long a day's token counter `SECONDME:llm:tokens:{date}` lives, s.
pub const LLM_TOKENS_TTL_S: i64 = 3 * 24 * 60 * 60;

/// `SECONDME:llm:tokens:{YYYY-MM-DD}` (added): tokens spent that UTC day, all workers.
pub fn llm_tokens_key(date: &str) -> String {
    format!("{}{date}", names().llm_tokens_prefix)
}
/// `SECONDME:llm:latency:{model}` (added): the model's latest call latencies, ms,
/// newest first, trimmed to [`LLM_LATENCY_SAMPLES`].
pub fn llm_latency_key(model: &str) -> String {
    format!("{}{model}", names().llm_latency_prefix)
}
/// Latencies kept per model in `SECONDME:llm:latency:{model}`.
pub const LLM_LATENCY_SAMPLES: usize = 500;
/// How long a model's latency list lives after its last write, s (a model no
/// longer configured drops out).
pub const LLM_LATENCY_TTL_S: i64 = 7 * 24 * 60 * 60;
/// `SECONDME:llm:minute:{unixMinute}` (added): replies, tokens and errors of
/// that minute over every worker.
pub fn llm_minute_key(minute: i64) -> String {
    format!("{}{minute}", names().llm_minute_prefix)
}
/// How long a minute's counts live, s: the control room shows the last hour.
pub const LLM_MINUTE_TTL_S: i64 = 2 * 60 * 60;
/// `SECONDME:llm:breakers` (added): each worker's open breaker, field = the
/// worker's engine id, value `{seenMs} {untilMs} {reason}` (server clock).
pub fn llm_breakers() -> &'static str {
    &names().llm_breakers
}
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

/// `events:pause`: pause and resume events (seed).
pub fn channel_pause() -> &'static str {
    &names().channel_pause
}
/// `events:messages`: every message of a conversation, incoming, typed by the
/// person or sent by the twin (seed).
pub fn channel_messages() -> &'static str {
    &names().channel_messages
}
/// `events:qr`: login QR codes (seed).
pub fn channel_qr() -> &'static str {
    &names().channel_qr
}
/// All three channels, in the order a dashboard subscribes to them.
pub fn channels() -> [&'static str; 3] {
    [channel_pause(), channel_messages(), channel_qr()]
}

/// Prefix of `PAUSE:{contactId}`.
pub fn pause_prefix() -> &'static str {
    &names().pause_prefix
}
/// Prefix of `PAUSEMETA:{contactId}`.
pub fn pause_meta_prefix() -> &'static str {
    &names().pause_meta_prefix
}
/// Prefix of `COUNTER:{contactId}:msgs`.
pub fn counter_prefix() -> &'static str {
    &names().counter_prefix
}
/// Prefix of `HANDLED:{bucket}`.
pub fn handled_prefix() -> &'static str {
    &names().handled_prefix
}
/// Prefix of `SENT:{messageId}`.
pub fn sent_prefix() -> &'static str {
    &names().sent_prefix
}
/// Prefix of `HISTORY:{contactId}`.
pub fn history_prefix() -> &'static str {
    &names().history_prefix
}

/// `PAUSE:{contactId}` (seed): expiry time in ms, TTL matching it.
pub fn pause_key(contact_id: &str) -> String {
    format!("{}{contact_id}", pause_prefix())
}

/// `PAUSEMETA:{contactId}` (added): why the contact is paused, same TTL as the pause.
pub fn pause_meta_key(contact_id: &str) -> String {
    format!("{}{contact_id}", pause_meta_prefix())
}

/// `COUNTER:{contactId}:msgs` (seed): messages in the current one-minute window.
pub fn counter_key(contact_id: &str) -> String {
    format!("{}{contact_id}{}", counter_prefix(), Names::COUNTER_SUFFIX)
}

/// `SESSION:{userId}` (seed): the WhatsApp session hash.
pub fn session_key(user_id: &str) -> String {
    format!("{}{user_id}", names().session_prefix)
}

/// `CACHE:persona:{personaId}` (seed): persona JSON, 30 minute TTL.
pub fn persona_cache_key(persona_id: &str) -> String {
    format!("{}{persona_id}", names().persona_cache_prefix)
}

/// `HANDLED:{bucket}` (added): hash of message id -> how it was handled, for the
/// hour `bucket` (ms since the epoch / [`HANDLED_BUCKET_MS`]); makes redelivery harmless.
pub fn handled_key(bucket: i64) -> String {
    format!("{}{bucket}", handled_prefix())
}

/// The `HANDLED:` bucket of a time in ms.
pub fn handled_bucket(at_ms: i64) -> i64 {
    at_ms.div_euclid(HANDLED_BUCKET_MS)
}

/// `QR:{userId}` (added): the login code on screen now, as its `events:qr` payload,
/// expiring with it, so a dashboard that starts after the publish still shows it.
pub fn qr_key(user_id: &str) -> String {
    format!("{}{user_id}", names().qr_prefix)
}

/// `SENT:{messageId}` (added): the gateway sent this message for the twin.
pub fn sent_key(message_id: &str) -> String {
    format!("{}{message_id}", sent_prefix())
}

/// `MEDIA:{messageId}` (added, issue 23): the bytes of a message's voice note,
/// audio or photo, written by the gateway before the entry (see [`media`]).
pub fn media_key(message_id: &str) -> String {
    format!("{}{message_id}", names().media_prefix)
}

/// `secondme` (added): the FalkorDB graph of persons, personas and contacts.
pub fn graph() -> &'static str {
    &names().graph
}

// The WhatsApp gateway's own keys, channel and group (added; `src/bridge/whatsapp`).

/// `events:gateway`: each change of the WhatsApp gateway's state, the `GATEWAY:{userId}` value.
pub fn channel_gateway() -> &'static str {
    &names().channel_gateway
}
/// Consumer group the WhatsApp gateway reads `QUEUE:responses` in.
pub const GATEWAY_GROUP: &str = "secondme-gateway";
/// `CONTACTS:names`: contact id to the contact's WhatsApp display name (push name).
pub fn contact_names() -> &'static str {
    &names().contact_names
}

/// `GATEWAY:{userId}`: the WhatsApp gateway's state, JSON, refreshed while it runs.
pub fn gateway_key(user_id: &str) -> String {
    format!("{}{user_id}", names().gateway_prefix)
}

/// `GATEWAYREQ:{userId}`: what the operator asks of the gateway (`new_codes`).
pub fn gateway_request_key(user_id: &str) -> String {
    format!("{}{user_id}", names().gateway_request_prefix)
}

/// `GATEWAYLOCK:{userId}`: the reply lease, so one gateway per account sends replies.
pub fn gateway_lock_key(user_id: &str) -> String {
    format!("{}{user_id}", names().gateway_lock_prefix)
}

/// `SENTREPLY:{replyId}`: the message id a reply was sent as (a reply is sent
/// once), `sending:{messageId}` while it is being sent.
pub fn sent_reply_key(reply_id: &str) -> String {
    format!("{}{reply_id}", names().sent_reply_prefix)
}

/// `SENDFAIL:{replyId}`: the WhatsApp id a reply goes out with (`waId`, written
/// before its first send) and its failed sends (`attempts`, `error`).
pub fn send_fail_key(reply_id: &str) -> String {
    format!("{}{reply_id}", names().send_fail_prefix)
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
            "is `{PAUSE_ALL_CONTACT}`, reserved for the kill switch ({})",
            pause_all()
        ));
    }
    if id == drafts::DEFAULT_MODE_FIELD {
        return Err(format!(
            "is `{}`, reserved for the default reply mode ({})",
            drafts::DEFAULT_MODE_FIELD,
            drafts::modes_key()
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
    format!("{}{contact_id}", history_prefix())
}

/// Keys and a channel other programs sharing the Redis write, which SecondMe reads
/// (documented under "Dialects we read" in docs/redis-schema.md).
pub mod dialect {
    /// `SESSION:whatsapp:info`, the original gateway's session: a JSON string
    /// `{createdAt, lastVerifiedAt, estimatedExpiryAt, state, needsRefresh}`.
    pub fn session_info() -> &'static str {
        &super::names().dialect_session_info
    }
    /// `CONTACTS:list`: contact names kept by the original gateway and dashboards.
    pub fn contacts_list() -> &'static str {
        &super::names().dialect_contacts_list
    }
    /// `CONFIG:sleep_hours`: the sleep window set from the original dashboard
    /// (recognised, not obeyed).
    pub fn config_sleep_hours() -> &'static str {
        &super::names().dialect_config_sleep_hours
    }
    /// `events:status`: service statuses, `{service, status, reason?}`.
    pub fn channel_status() -> &'static str {
        &super::names().dialect_channel_status
    }
    /// The original gateway's single queue-entry field (see [`crate::entry::PAYLOAD`]).
    pub const PAYLOAD_FIELD: &str = "payload";
}

/// Prefix of SecondMe's own history key `SECONDME:history:{contactId}`, used
/// when another program keeps `HISTORY:{contactId}` as another type (the
/// original gateway's sorted set).
pub fn own_history_prefix() -> &'static str {
    &names().own_history_prefix
}

/// `SECONDME:history:{contactId}`: the same list as [`history_key`], for a contact
/// whose `HISTORY:` key another program owns with another type.
pub fn own_history_key(contact_id: &str) -> String {
    format!("{}{contact_id}", own_history_prefix())
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
    /// The voice note or photo it came with, as the twin understood it (added,
    /// issue 23; absent for plain text): `content` is then the transcript or the caption.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media: Option<media::MediaMark>,
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

/// The `messageId` field of a `QUEUE:messages` entry (and of its dead letter).
pub const MESSAGE_ID_FIELD: &str = "messageId";

impl QueueMessage {
    /// The entry's fields under the seed's names, in the order a gateway writes them.
    pub fn fields(&self) -> [(&'static str, String); 6] {
        [
            (MESSAGE_ID_FIELD, self.message_id.clone()),
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
    /// `true` on the operator's own words (added): the gateway sends them as
    /// the person, without "typing...", whatever the pauses and the opt-in say.
    pub const FROM_OWNER: &str = "fromOwner";
    /// `true` on an approved draft (added): the operator decided, so the gateway
    /// sends it whatever the pauses and the opt-in say.
    pub const APPROVED: &str = "approved";
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

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use proptest::prelude::*;

    use super::*;

    /// Every name of `n`; the pattern lists every field, so a name added to
    /// [`Names`] without being added here does not compile.
    fn every_name(n: &Names) -> Vec<&str> {
        macro_rules! each {
            ($($field:ident),* $(,)?) => {{
                let Names { $($field),* } = n;
                vec![$($field.as_str()),*]
            }};
        }
        each!(
            queue_messages,
            queue_responses,
            queue_deadletter,
            pause_all,
            optin_contacts,
            contacts_activity,
            state_marker,
            stats,
            llm_stats,
            llm_breakers,
            channel_pause,
            channel_messages,
            channel_qr,
            channel_gateway,
            contact_names,
            graph,
            pause_prefix,
            pause_meta_prefix,
            counter_prefix,
            handled_prefix,
            sent_prefix,
            media_prefix,
            history_prefix,
            own_history_prefix,
            session_prefix,
            persona_cache_prefix,
            qr_prefix,
            gateway_prefix,
            gateway_request_prefix,
            gateway_lock_prefix,
            sent_reply_prefix,
            send_fail_prefix,
            llm_tokens_prefix,
            llm_latency_prefix,
            llm_minute_prefix,
            dialect_session_info,
            dialect_contacts_list,
            dialect_config_sleep_hours,
            dialect_channel_status,
            learn_chat_prefix,
            learn_style_prefix,
            learn_eval_prefix,
            learn_overall,
            learn_contacts,
            modes,
            draft_prefix,
            drafts,
            drafts_regenerate,
            channel_drafts,
            unanswered,
            unheard,
            deferred,
            deferred_claim_prefix,
            namespaces,
        )
    }

    #[test]
    fn the_fixed_names_are_the_seeds() {
        let names = [
            (queue_messages(), "QUEUE:messages"),
            (queue_responses(), "QUEUE:responses"),
            (queue_deadletter(), "QUEUE:deadletter"),
            (pause_all(), "PAUSE:ALL"),
            (optin_contacts(), "OPTIN:contacts"),
            (contacts_activity(), "CONTACTS:activity"),
            (state_marker(), "SECONDME:state"),
            (stats(), "SECONDME:stats"),
            (llm_stats(), "SECONDME:llm"),
            (llm_breakers(), "SECONDME:llm:breakers"),
            (channel_pause(), "events:pause"),
            (channel_messages(), "events:messages"),
            (channel_qr(), "events:qr"),
            (channel_gateway(), "events:gateway"),
            (contact_names(), "CONTACTS:names"),
            (graph(), "secondme"),
            (pause_prefix(), "PAUSE:"),
            (pause_meta_prefix(), "PAUSEMETA:"),
            (counter_prefix(), "COUNTER:"),
            (handled_prefix(), "HANDLED:"),
            (sent_prefix(), "SENT:"),
            (history_prefix(), "HISTORY:"),
            (own_history_prefix(), "SECONDME:history:"),
            (dialect::session_info(), "SESSION:whatsapp:info"),
            (dialect::contacts_list(), "CONTACTS:list"),
            (dialect::config_sleep_hours(), "CONFIG:sleep_hours"),
            (dialect::channel_status(), "events:status"),
        ];
        for (built, seed) in names {
            assert_eq!(built, seed);
        }
        assert_eq!(channels(), ["events:pause", "events:messages", "events:qr"]);
        assert_eq!(Names::COUNTER_SUFFIX, ":msgs");
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            cases: 256,
            failure_persistence: None,
            ..ProptestConfig::default()
        })]

        #[test]
        fn every_builder_yields_the_seeds_name_for_any_id(id in any::<String>(), n in any::<i64>()) {
            prop_assert_eq!(pause_key(&id), format!("PAUSE:{id}"));
            prop_assert_eq!(pause_meta_key(&id), format!("PAUSEMETA:{id}"));
            prop_assert_eq!(counter_key(&id), format!("COUNTER:{id}:msgs"));
            prop_assert_eq!(session_key(&id), format!("SESSION:{id}"));
            prop_assert_eq!(persona_cache_key(&id), format!("CACHE:persona:{id}"));
            prop_assert_eq!(handled_key(n), format!("HANDLED:{n}"));
            prop_assert_eq!(qr_key(&id), format!("QR:{id}"));
            prop_assert_eq!(sent_key(&id), format!("SENT:{id}"));
            prop_assert_eq!(gateway_key(&id), format!("GATEWAY:{id}"));
            prop_assert_eq!(gateway_request_key(&id), format!("GATEWAYREQ:{id}"));
            prop_assert_eq!(gateway_lock_key(&id), format!("GATEWAYLOCK:{id}"));
            prop_assert_eq!(sent_reply_key(&id), format!("SENTREPLY:{id}"));
            prop_assert_eq!(send_fail_key(&id), format!("SENDFAIL:{id}"));
            prop_assert_eq!(history_key(&id), format!("HISTORY:{id}"));
            prop_assert_eq!(own_history_key(&id), format!("SECONDME:history:{id}"));
            prop_assert_eq!(llm_tokens_key(&id), format!("SECONDME:llm:tokens:{id}"));
            prop_assert_eq!(llm_latency_key(&id), format!("SECONDME:llm:latency:{id}"));
            prop_assert_eq!(llm_minute_key(n), format!("SECONDME:llm:minute:{n}"));
            prop_assert_eq!(deferred::claim_key(&id), format!("SECONDME:deferred:claim:{id}"));
        }
    }

    /// A prefix given to [`Names`] reaches every name but the registry of
    /// namespaces (outside them all) and changes nothing else: the one place a
    /// namespace is set.
    #[test]
    fn a_prefix_goes_before_every_name_and_nothing_else_changes() {
        let prefixed = Names::new("{alice}:");
        let seed = every_name(names());
        let with_prefix = every_name(&prefixed);
        assert_eq!(seed.len(), with_prefix.len());
        let mut outside = Vec::new();
        for (seed, name) in seed.into_iter().zip(with_prefix) {
            if name == seed {
                outside.push(name);
            } else {
                assert_eq!(name.strip_prefix("{alice}:"), Some(seed), "{name}");
            }
        }
        assert_eq!(outside, ["SECONDME:namespaces"]);
        assert_eq!(prefixed.namespaces, names().namespaces);
    }

    /// CRC16/XMODEM (polynomial 0x1021, start 0), the hash of Redis Cluster's key slots.
    fn crc16(bytes: &[u8]) -> u16 {
        let mut crc = 0u16;
        for &b in bytes {
            crc ^= u16::from(b) << 8;
            for _ in 0..8 {
                crc = if crc & 0x8000 == 0 {
                    crc << 1
                } else {
                    (crc << 1) ^ 0x1021
                };
            }
        }
        crc
    }

    /// The Redis Cluster slot of a key: of its hash tag (between the first `{`
    /// and the next `}`) when that is not empty, else of the whole key.
    fn key_slot(key: &str) -> u16 {
        let key = key.as_bytes();
        let tag = key.iter().position(|&b| b == b'{').and_then(|open| {
            let rest = &key[open + 1..];
            let len = rest.iter().position(|&b| b == b'}')?;
            (len > 0).then(|| &rest[..len])
        });
        crc16(tag.unwrap_or(key)) % 16384
    }

    #[test]
    fn the_key_slot_is_redis_clusters() {
        assert_eq!(crc16(b"123456789"), 0x31C3);
        assert_eq!(key_slot("123456789"), 12739);
        assert_eq!(key_slot("foo"), 12182);
        assert_eq!(key_slot("bar"), 5061);
        assert_eq!(
            key_slot("{user1000}.following"),
            key_slot("{user1000}.followers")
        );
        assert_eq!(key_slot("{user1000}.following"), key_slot("user1000"));
        // An empty tag does not count; only the first `{` opens one.
        assert_eq!(key_slot("foo{}{bar}"), crc16(b"foo{}{bar}") % 16384);
        assert_eq!(key_slot("foo{{bar}}zap"), key_slot("{bar"));
        assert_eq!(key_slot("foo{bar}{zap}"), key_slot("bar"));
        // As `CLUSTER KEYSLOT` of a redis-server 7 with cluster-enabled answered.
        assert_eq!(key_slot("foo{}{bar}"), 8363);
        assert_eq!(key_slot("foo{{bar}}zap"), 4015);
        assert_eq!(key_slot("{alice}:QUEUE:messages"), 749);
        assert_eq!(key_slot("{josé}:PAUSE:x"), 13522);
    }

    /// Runs `build` with `namespace` in effect, as a task of a pool would.
    fn under<T>(namespace: &str, build: impl FnOnce() -> T) -> T {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a runtime");
        runtime.block_on(in_namespace(Some(namespace), async { build() }))
    }

    /// Every key and channel the program builds for `id` and `n`: each name,
    /// each builder's key, the fixed names through their builders.
    fn every_key(id: &str, n: i64) -> Vec<String> {
        let mut keys: Vec<String> = every_name(names())
            .into_iter()
            .filter(|name| *name != namespaces())
            .map(str::to_owned)
            .collect();
        keys.extend([
            pause_key(id),
            pause_meta_key(id),
            counter_key(id),
            session_key(id),
            persona_cache_key(id),
            handled_key(n),
            handled_key(handled_bucket(n)),
            qr_key(id),
            sent_key(id),
            gateway_key(id),
            gateway_request_key(id),
            gateway_lock_key(id),
            sent_reply_key(id),
            send_fail_key(id),
            history_key(id),
            own_history_key(id),
            llm_tokens_key(id),
            llm_latency_key(id),
            llm_minute_key(n),
            drafts::draft_key(id),
            deferred::claim_key(id),
            learned::chat_key(id),
            learned::style_key(id),
            learned::eval_key(id),
        ]);
        let fixed = [
            queue_messages(),
            queue_responses(),
            queue_deadletter(),
            pause_all(),
            optin_contacts(),
            contacts_activity(),
            state_marker(),
            unanswered(),
            unheard(),
            deferred(),
            stats(),
            llm_stats(),
            llm_breakers(),
            contact_names(),
            graph(),
            channel_gateway(),
            dialect::session_info(),
            dialect::contacts_list(),
            dialect::config_sleep_hours(),
            dialect::channel_status(),
            drafts::modes_key(),
            drafts::drafts_key(),
            drafts::regenerate_key(),
            drafts::channel_drafts(),
            learned::overall_key(),
            learned::contacts_key(),
        ];
        keys.extend(fixed.into_iter().chain(channels()).map(str::to_owned));
        keys
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            cases: 128,
            failure_persistence: None,
            ..ProptestConfig::default()
        })]

        /// In a namespace, every key and channel hashes to the namespace's one
        /// slot, so each atomic step, transaction and pipeline stays in it.
        #[test]
        fn in_a_namespace_every_key_shares_one_cluster_slot(
            namespace in "[^{}:*?\\[\\]\\\\ \\x00-\\x1f\\x7f-\\x9f]{1,16}",
            id in any::<String>(),
            n in any::<i64>(),
        ) {
            prop_assume!(check_namespace(Some(namespace.clone())).is_ok());
            let keys = under(&namespace, || every_key(&id, n));
            let slot = crc16(namespace.as_bytes()) % 16384;
            let tag = format!("{{{namespace}}}:");
            prop_assert!(keys.len() >= 70, "{}", keys.len());
            for key in &keys {
                prop_assert!(key.starts_with(&tag), "{key:?}");
                prop_assert_eq!(key_slot(key), slot, "{:?}", key);
            }
            prop_assert_eq!(under(&namespace, || namespaces().to_owned()), "SECONDME:namespaces");
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_tasks_namespace_holds_in_its_scope_and_crosses_only_spawn_here() {
        assert_eq!(current_namespace(), None);
        assert_eq!(queue_messages(), "QUEUE:messages");
        in_namespace(Some("alice"), async {
            assert_eq!(current_namespace().as_deref(), Some("alice"));
            assert_eq!(queue_messages(), "{alice}:QUEUE:messages");
            assert_eq!(pause_key("bob"), "{alice}:PAUSE:bob");
            assert_eq!(namespaces(), "SECONDME:namespaces");
            tokio::task::yield_now().await;
            let kept = spawn_here(async {
                tokio::task::yield_now().await;
                (current_namespace(), channel_pause().to_owned())
            });
            let lost = tokio::spawn(async { (current_namespace(), channel_pause().to_owned()) });
            assert_eq!(
                kept.await.expect("join"),
                (Some("alice".to_owned()), "{alice}:events:pause".to_owned())
            );
            assert_eq!(lost.await.expect("join"), (None, "events:pause".to_owned()));
            let inner = in_namespace(Some("bob"), async { history_key("c1") }).await;
            assert_eq!(inner, "{bob}:HISTORY:c1");
            let none = in_namespace(None, async { (current_namespace(), pause_all()) }).await;
            assert_eq!(none, (None, "PAUSE:ALL"));
            assert_eq!(queue_responses(), "{alice}:QUEUE:responses");
        })
        .await;
        assert_eq!(current_namespace(), None);
        let outside = spawn_here(async { queue_messages() }).await.expect("join");
        assert_eq!(outside, "QUEUE:messages");
        let same = in_namespace(Some("alice"), async { names() }).await;
        let again = in_namespace(Some("alice"), async { names() }).await;
        assert!(std::ptr::eq(same, again), "one Names per namespace");
    }

    #[test]
    fn a_namespace_refuses_what_would_break_its_tag_a_pattern_or_a_line() {
        for good in [
            "alice",
            "o'brien",
            "josé",
            "a.b-c_d",
            "n@1",
            &"x".repeat(64),
        ] {
            assert_eq!(
                check_namespace(Some(good.to_owned())),
                Ok(Some(good.to_owned()))
            );
        }
        assert_eq!(check_namespace(None), Ok(None));
        assert_eq!(
            check_namespace(Some(String::new())),
            Err(NamespaceError::Empty)
        );
        assert_eq!(
            check_namespace(Some("x".repeat(65))),
            Err(NamespaceError::TooLong(65))
        );
        for c in [
            '{', '}', ':', '*', '?', '[', ']', '\\', ' ', '\t', '\u{a0}', '\n', '\u{7}',
        ] {
            assert_eq!(
                check_namespace(Some(format!("a{c}b"))),
                Err(NamespaceError::Forbidden(c)),
                "{c:?}"
            );
        }
    }

    #[test]
    fn the_process_namespace_is_checked_and_set_once() {
        // No lib test sets one: the process keeps the seed's names.
        assert_eq!(set_namespace(None), Ok(()));
        assert_eq!(set_namespace(None), Ok(()));
        assert_eq!(
            set_namespace(Some("alice")),
            Err(NamespaceError::AlreadySet {
                current: None,
                asked: Some("alice".to_owned())
            })
        );
        assert_eq!(
            set_namespace(Some("a:b")),
            Err(NamespaceError::Forbidden(':'))
        );
        assert_eq!(set_namespace(Some("")), Err(NamespaceError::Empty));
        assert_eq!(queue_messages(), "QUEUE:messages");
        let message = NamespaceError::AlreadySet {
            current: None,
            asked: Some("alice".to_owned()),
        }
        .to_string();
        assert!(
            message.contains("no namespace") && message.contains("\"alice\""),
            "{message}"
        );
    }

    /// The start of every key and channel name, up to its first `:` (the
    /// graph's name has none and is not looked for), and the counter's suffix.
    fn key_prefixes() -> Vec<String> {
        let mut found: Vec<String> = every_name(names())
            .into_iter()
            .filter_map(|n| n.find(':').map(|end| n[..=end].to_owned()))
            .chain([Names::COUNTER_SUFFIX.to_owned()])
            .collect();
        found.sort();
        found.dedup();
        found
    }

    /// Every file under `dir` whose name ends in `ext`.
    fn files(dir: &Path, ext: &str) -> Vec<PathBuf> {
        let (mut todo, mut found) = (vec![dir.to_path_buf()], Vec::new());
        while let Some(path) = todo.pop() {
            if path.is_dir() {
                for entry in std::fs::read_dir(&path).expect("read a folder") {
                    todo.push(entry.expect("a folder entry").path());
                }
            } else if path.extension().is_some_and(|e| e == ext) {
                found.push(path);
            }
        }
        found
    }

    /// The production part of a Rust file: without its test module (unit-test
    /// data may spell a key) and, for this file, without `impl Names`.
    fn production(path: &Path, text: &str) -> String {
        let text = text.split("#[cfg(test)]\nmod tests").next().unwrap_or(text);
        if !path.ends_with("src/schema/names.rs") {
            return text.to_owned();
        }
        let start = text.find("\nimpl Names {\n").expect("impl Names");
        let end = start + 1 + text[start + 1..].find("\n}\n").expect("its end");
        format!("{}{}", &text[..start], &text[end..])
    }

    /// Each line of `text` outside comments (`//` in Rust, `--` in Lua) that
    /// opens a string literal with one of `prefixes`.
    fn spellings(path: &Path, text: &str, prefixes: &[String]) -> Vec<String> {
        let mut found = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let code = line.trim_start();
            if code.starts_with("//") || code.starts_with("--") {
                continue;
            }
            for p in prefixes {
                if line.contains(&format!("\"{p}")) || line.contains(&format!("'{p}")) {
                    found.push(format!("{}:{}: {}", path.display(), n + 1, code));
                }
            }
        }
        found
    }

    /// No code outside `impl Names` spells a key or channel prefix in a
    /// string literal, Rust or the Lua library: a name is built in one place.
    #[test]
    fn no_key_prefix_is_spelled_outside_the_names() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let prefixes = key_prefixes();
        assert!(prefixes.len() >= 15, "only {prefixes:?}");
        let rust = files(&root.join("src"), "rs");
        let lua = files(&root.join("assets/lua"), "lua");
        assert!(rust.len() >= 50 && !lua.is_empty(), "{rust:?} {lua:?}");
        let mut found = Vec::new();
        for path in rust.iter().chain(&lua) {
            let text = std::fs::read_to_string(path).expect("read a source file");
            let rust = path.extension().is_some_and(|e| e == "rs");
            let text = if rust { production(path, &text) } else { text };
            found.extend(spellings(path, &text, &prefixes));
        }
        assert!(
            found.is_empty(),
            "key names spelled outside impl Names:\n{}",
            found.join("\n")
        );
    }

    #[test]
    fn a_spelled_prefix_is_found_in_code_and_not_in_comments() {
        let prefixes = ["QUEUE:".to_owned()];
        let path = Path::new("x.rs");
        let text =
            "// \"QUEUE:x\"\n    -- 'QUEUE:x'\nlet k = \"QUEUE:x\";\nlocal k = 'QUEUE:' .. id\n";
        assert_eq!(spellings(path, text, &prefixes).len(), 2);
    }
}
