//! Operations on the contract's keys, one module per concern. Every function
//! takes the shared [`redis::aio::ConnectionManager`] and returns errors with context.

pub mod control;
pub mod eviction;
pub mod handled;
pub mod optin;
pub mod persona;
pub mod queue;
pub mod session;
pub mod snapshot;

use std::sync::LazyLock;

use redis::Script;

/// Pause, resume and kill switch, each atomic with its `events:pause` publish.
pub(crate) static CONTROL_SCRIPT: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("../../assets/lua/control.lua")));
/// The worker's batch decision (see `assets/lua/decide.lua`).
pub(crate) static DECIDE_SCRIPT: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("../../assets/lua/decide.lua")));
/// The worker's batch commit of replies (see `assets/lua/commit.lua`).
pub(crate) static COMMIT_SCRIPT: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("../../assets/lua/commit.lua")));

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
