//! Where every key and channel name of the contract is spelled, once: the
//! [`Names`] value every builder of `schema` reads.

use std::sync::OnceLock;

use super::PAUSE_ALL_CONTACT;

/// Every key and channel name of the contract, made once in `Names::new`:
/// the one place a name is spelled, and the one value every builder below
/// reads.
///
/// A namespace (issue 22) will set the prefix here and nowhere else; without
/// one (the default) every name is the seed's, byte for byte.
#[derive(Debug)]
pub struct Names {
    pub(super) queue_messages: String,
    pub(super) queue_responses: String,
    pub(super) queue_deadletter: String,
    pub(super) pause_all: String,
    pub(super) optin_contacts: String,
    pub(super) contacts_activity: String,
    pub(super) state_marker: String,
    pub(super) stats: String,
    pub(super) llm_stats: String,
    pub(super) llm_breakers: String,
    pub(super) channel_pause: String,
    pub(super) channel_messages: String,
    pub(super) channel_qr: String,
    pub(super) channel_gateway: String,
    pub(super) contact_names: String,
    pub(super) graph: String,
    pub(super) pause_prefix: String,
    pub(super) pause_meta_prefix: String,
    pub(super) counter_prefix: String,
    pub(super) handled_prefix: String,
    pub(super) sent_prefix: String,
    pub(super) history_prefix: String,
    pub(super) own_history_prefix: String,
    pub(super) session_prefix: String,
    pub(super) persona_cache_prefix: String,
    pub(super) qr_prefix: String,
    pub(super) gateway_prefix: String,
    pub(super) gateway_request_prefix: String,
    pub(super) gateway_lock_prefix: String,
    pub(super) sent_reply_prefix: String,
    pub(super) send_fail_prefix: String,
    pub(super) llm_tokens_prefix: String,
    pub(super) llm_latency_prefix: String,
    pub(super) llm_minute_prefix: String,
    pub(super) dialect_session_info: String,
    pub(super) dialect_contacts_list: String,
    pub(super) dialect_config_sleep_hours: String,
    pub(super) dialect_channel_status: String,
    pub(super) learn_chat_prefix: String,
    pub(super) learn_style_prefix: String,
    pub(super) learn_eval_prefix: String,
    pub(super) learn_overall: String,
    pub(super) learn_contacts: String,
    pub(super) modes: String,
    pub(super) draft_prefix: String,
    pub(super) drafts: String,
    pub(super) drafts_regenerate: String,
    pub(super) channel_drafts: String,
}

impl Names {
    /// Suffix of `COUNTER:{contactId}:msgs` (a namespace leaves it alone).
    pub const COUNTER_SUFFIX: &str = ":msgs";

    /// Every name, each behind `prefix`.
    pub(super) fn new(prefix: &str) -> Self {
        let name = |base: &str| format!("{prefix}{base}");
        let pause_prefix = name("PAUSE:");
        Self {
            queue_messages: name("QUEUE:messages"),
            queue_responses: name("QUEUE:responses"),
            queue_deadletter: name("QUEUE:deadletter"),
            pause_all: format!("{pause_prefix}{PAUSE_ALL_CONTACT}"),
            optin_contacts: name("OPTIN:contacts"),
            contacts_activity: name("CONTACTS:activity"),
            state_marker: name("SECONDME:state"),
            stats: name("SECONDME:stats"),
            llm_stats: name("SECONDME:llm"),
            llm_breakers: name("SECONDME:llm:breakers"),
            channel_pause: name("events:pause"),
            channel_messages: name("events:messages"),
            channel_qr: name("events:qr"),
            channel_gateway: name("events:gateway"),
            contact_names: name("CONTACTS:names"),
            graph: name("secondme"),
            pause_prefix,
            pause_meta_prefix: name("PAUSEMETA:"),
            counter_prefix: name("COUNTER:"),
            handled_prefix: name("HANDLED:"),
            sent_prefix: name("SENT:"),
            history_prefix: name("HISTORY:"),
            own_history_prefix: name("SECONDME:history:"),
            session_prefix: name("SESSION:"),
            persona_cache_prefix: name("CACHE:persona:"),
            qr_prefix: name("QR:"),
            gateway_prefix: name("GATEWAY:"),
            gateway_request_prefix: name("GATEWAYREQ:"),
            gateway_lock_prefix: name("GATEWAYLOCK:"),
            sent_reply_prefix: name("SENTREPLY:"),
            send_fail_prefix: name("SENDFAIL:"),
            llm_tokens_prefix: name("SECONDME:llm:tokens:"),
            llm_latency_prefix: name("SECONDME:llm:latency:"),
            llm_minute_prefix: name("SECONDME:llm:minute:"),
            dialect_session_info: name("SESSION:whatsapp:info"),
            dialect_contacts_list: name("CONTACTS:list"),
            dialect_config_sleep_hours: name("CONFIG:sleep_hours"),
            dialect_channel_status: name("events:status"),
            learn_chat_prefix: name("LEARN:chat:"),
            learn_style_prefix: name("LEARN:style:"),
            learn_eval_prefix: name("LEARN:eval:"),
            learn_overall: name("LEARN:overall"),
            learn_contacts: name("LEARN:contacts"),
            modes: name("SECONDME:modes"),
            draft_prefix: name("DRAFT:"),
            drafts: name("DRAFTS"),
            drafts_regenerate: name("DRAFTS:regenerate"),
            channel_drafts: name("events:drafts"),
        }
    }
}

/// The names this process uses: no namespace yet, so the seed's.
pub fn names() -> &'static Names {
    static NAMES: OnceLock<Names> = OnceLock::new();
    NAMES.get_or_init(|| Names::new(""))
}
