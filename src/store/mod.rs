//! Operations on the contract's keys, one module per concern. Every function
//! takes the shared [`Con`] and returns errors with context.

pub mod control;
pub mod deadletter;
pub mod deferred;
pub mod dialects;
pub mod drafts;
pub mod durability;
pub mod eviction;
pub mod functions;
pub mod handled;
pub mod history;
pub mod learned;
pub mod llm_figures;
pub mod media;
pub mod namespaces;
pub mod optin;
pub mod persona;
pub mod queue;
pub mod session;
pub mod snapshot;
pub mod unanswered;
pub mod usage;

/// Refuses a contact id that [`crate::schema::check_contact_id`] rejects, before
/// any key is built from it: the CLI and the control room come through here.
pub fn ensure_contact_id(contact_id: &str) -> anyhow::Result<()> {
    crate::schema::check_contact_id(contact_id)
        .map_err(|problem| anyhow::anyhow!("contact id {contact_id:?} {problem}"))
}

/// Current Unix time in milliseconds.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
