//! Pausing and resuming contacts and the global kill switch.

use crate::connection::Con;
use anyhow::{Context, Result};

use super::functions::{Call, Step};
use crate::schema::{self, PauseReason};

/// Pauses `contact_id` for `duration_ms`; returns the expiry in ms.
pub async fn pause(
    con: &mut Con,
    contact_id: &str,
    duration_ms: i64,
    reason: PauseReason,
) -> Result<i64> {
    anyhow::ensure!(duration_ms > 0, "a pause must last more than 0 ms");
    super::ensure_contact_id(contact_id)?;
    Call::new(Step::Control)
        .key(schema::pause_key(contact_id))
        .key(schema::pause_meta_key(contact_id))
        .key(schema::contacts_activity())
        .arg("pause")
        .arg(contact_id)
        .arg(duration_ms)
        .arg(reason.as_str())
        .arg(schema::channel_pause())
        .invoke(con)
        .await
        .with_context(|| format!("cannot pause {contact_id}"))
}

/// Resumes `contact_id`; returns whether it was paused.
pub async fn resume(con: &mut Con, contact_id: &str) -> Result<bool> {
    super::ensure_contact_id(contact_id)?;
    let removed: i64 = Call::new(Step::Control)
        .key(schema::pause_key(contact_id))
        .key(schema::pause_meta_key(contact_id))
        .arg("resume")
        .arg(contact_id)
        .arg(0)
        .arg(PauseReason::Manual.as_str())
        .arg(schema::channel_pause())
        .invoke(con)
        .await
        .with_context(|| format!("cannot resume {contact_id}"))?;
    Ok(removed == 1)
}

/// Switches the kill switch on (returns its activation time) or off (returns 0 or 1).
/// Off also marks this Redis's state as known (`SECONDME:state`), in the same step,
/// so the lost-state rule does not switch it on again at the next message.
pub async fn kill_switch(con: &mut Con, on: bool) -> Result<i64> {
    Call::new(Step::Control)
        .key(schema::pause_all())
        .key(schema::pause_meta_key(schema::PAUSE_ALL_CONTACT))
        .key(schema::state_marker())
        .arg(if on { "kill_on" } else { "kill_off" })
        .arg(schema::PAUSE_ALL_CONTACT)
        .arg(0)
        .arg(PauseReason::Manual.as_str())
        .arg(schema::channel_pause())
        .invoke(con)
        .await
        .with_context(|| {
            format!(
                "cannot switch the kill switch {}",
                if on { "on" } else { "off" }
            )
        })
}
