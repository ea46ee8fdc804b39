//! Where every key and channel name of the contract is spelled, once: the
//! [`Names`] value every builder of `schema` reads, and the namespace it is made for.
//!
//! A namespace `N` puts the hash tag `{N}:` before every key and channel, so one
//! person's keys share one Redis Cluster slot. The process has one namespace, set
//! once at startup ([`set_namespace`]); a task may serve another one inside
//! [`in_namespace`] (a pool of workers serving many people in one process).

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Mutex, OnceLock, PoisonError};

use tokio::task::JoinHandle;

use super::PAUSE_ALL_CONTACT;

/// Every key and channel name of the contract, made once in `Names::new`:
/// the one place a name is spelled, and the one value every builder below
/// reads.
///
/// A namespace sets the prefix here and nowhere else; without one (the
/// default) every name is the seed's, byte for byte.
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
    pub(super) media_prefix: String,
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
    pub(super) unanswered: String,
    pub(super) unheard: String,
    pub(super) deferred: String,
    pub(super) deferred_claim_prefix: String,
    pub(super) namespaces: String,
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
            media_prefix: name("MEDIA:"),
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
            unanswered: name("SECONDME:unanswered"),
            unheard: name("SECONDME:unheard"),
            deferred: name("SECONDME:deferred"),
            deferred_claim_prefix: name("SECONDME:deferred:claim:"),
            // The registry of a pool's namespaces lies outside every namespace.
            namespaces: "SECONDME:namespaces".to_owned(),
        }
    }
}

/// A namespace and its names, made once per namespace and kept for the process.
#[derive(Debug)]
struct Space {
    namespace: Option<String>,
    names: Names,
}

/// The hash-tag prefix of a namespace: `{N}:`, or nothing.
fn prefix(namespace: Option<&str>) -> String {
    namespace.map_or_else(String::new, |n| format!("{{{n}}}:"))
}

/// The one [`Space`] of `namespace`, made on first use.
///
/// Spaces are leaked so [`names`] can hand out `&'static` names without a
/// lock on every call: one per distinct namespace this process ever serves
/// (the process's own, plus each one a pool enters), about 3 KB each, so the
/// bound is the size of the namespace registry. A namespace removed from the
/// registry keeps its few KB until the process exits.
fn intern(namespace: Option<&str>) -> &'static Space {
    static SPACES: OnceLock<Mutex<HashMap<Option<String>, &'static Space>>> = OnceLock::new();
    let mut spaces = SPACES
        .get_or_init(Mutex::default)
        .lock()
        // The map is only ever inserted into whole: a panic elsewhere leaves it sound.
        .unwrap_or_else(PoisonError::into_inner);
    let key = namespace.map(str::to_owned);
    spaces.entry(key).or_insert_with_key(|key| {
        Box::leak(Box::new(Space {
            names: Names::new(&prefix(key.as_deref())),
            namespace: key.clone(),
        }))
    })
}

/// The process's namespace, fixed by [`set_namespace`] or by the first use of a name.
static PROCESS: OnceLock<&'static Space> = OnceLock::new();

tokio::task_local! {
    /// The namespace of the task running inside [`in_namespace`].
    static SCOPED: &'static Space;
}

/// The space in effect: the task's, else the process's.
fn current() -> &'static Space {
    SCOPED
        .try_with(|space| *space)
        .unwrap_or_else(|_| PROCESS.get_or_init(|| intern(None)))
}

/// The names in effect here: the task's namespace inside [`in_namespace`],
/// else the process's ([`set_namespace`]; none by default, the seed's names).
pub fn names() -> &'static Names {
    &current().names
}

/// Sets the process's namespace, once, before any name is used (`None` keeps
/// the seed's names). Setting the same value again is accepted; another value
/// after names were used (or set) is refused, as keys already built would not match.
pub fn set_namespace(namespace: Option<&str>) -> Result<(), NamespaceError> {
    let checked = check_namespace(namespace.map(str::to_owned))?;
    let space = intern(checked.as_deref());
    let set = *PROCESS.get_or_init(|| space);
    if std::ptr::eq(set, space) {
        Ok(())
    } else {
        Err(NamespaceError::AlreadySet {
            current: set.namespace.clone(),
            asked: checked,
        })
    }
}

/// Runs `fut` with `namespace` in effect for every name it builds (`None`: the
/// seed's names), whatever the process's namespace; tasks it spawns keep it
/// only through [`spawn_here`]. The name must have passed [`check_namespace`]
/// (a pool reads them from the registry through `store::namespaces`, which checks them).
pub async fn in_namespace<F: Future>(namespace: Option<&str>, fut: F) -> F::Output {
    debug_assert!(check_namespace(namespace.map(str::to_owned)).is_ok());
    SCOPED.scope(intern(namespace), fut).await
}

/// The namespace in effect here (the task's, else the process's), if any.
pub fn current_namespace() -> Option<String> {
    current().namespace.clone()
}

/// `tokio::spawn`, with the spawning task's namespace (task-locals do not
/// cross a spawn): what code that may run inside [`in_namespace`] spawns with.
pub fn spawn_here<F>(fut: F) -> JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    match SCOPED.try_with(|space| *space) {
        Ok(space) => tokio::spawn(SCOPED.scope(space, fut)),
        Err(_) => tokio::spawn(fut),
    }
}

/// Why a namespace name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NamespaceError {
    /// Empty.
    #[error("a namespace cannot be empty")]
    Empty,
    /// Longer than [`NAMESPACE_MAX_LEN`] bytes.
    #[error("a namespace is at most {NAMESPACE_MAX_LEN} bytes, not {0}")]
    TooLong(usize),
    /// Holds `{`, `}`, `:` (they would break the hash tag or the key's parts), a
    /// glob character `*?[]\` (a key pattern, `SCAN MATCH` or an ACL `~{N}:*`,
    /// would reach other namespaces), whitespace or a control character.
    #[error(
        "a namespace cannot hold {{, }}, :, *, ?, [, ], \\, whitespace or control characters ({0:?})"
    )]
    Forbidden(char),
    /// The process's namespace was set (or its names used) with another value.
    #[error(
        "this process already uses {}; it cannot switch to {}",
        shown(current.as_deref()),
        shown(asked.as_deref())
    )]
    AlreadySet {
        /// The namespace in use (`None`: none).
        current: Option<String>,
        /// The one asked for.
        asked: Option<String>,
    },
}

/// A namespace as an error message names it.
fn shown(namespace: Option<&str>) -> String {
    namespace.map_or_else(|| "no namespace".to_owned(), |n| format!("namespace {n:?}"))
}

/// The longest namespace name, in bytes.
pub const NAMESPACE_MAX_LEN: usize = 64;

/// Checks a namespace setting: `None` stays none; a name must be 1 to
/// [`NAMESPACE_MAX_LEN`] bytes without `{`, `}`, `:`, `*?[]\`, whitespace or
/// control characters.
pub fn check_namespace(namespace: Option<String>) -> Result<Option<String>, NamespaceError> {
    let Some(name) = namespace else {
        return Ok(None);
    };
    if name.is_empty() {
        return Err(NamespaceError::Empty);
    }
    if name.len() > NAMESPACE_MAX_LEN {
        return Err(NamespaceError::TooLong(name.len()));
    }
    if let Some(c) = name.chars().find(|c| {
        matches!(c, '{' | '}' | ':' | '*' | '?' | '[' | ']' | '\\')
            || c.is_whitespace()
            || c.is_control()
    }) {
        return Err(NamespaceError::Forbidden(c));
    }
    Ok(Some(name))
}
