//! Time passing: countdowns, expiring pauses, and whether a tick shows anything.

use super::UpdateResult;
use crate::format;
use crate::model::{Connection, Model};

pub(super) fn on_tick(model: &mut Model, now_ms: i64) -> UpdateResult {
    let before = visible_clock_texts(model);
    model.now_ms = now_ms;
    let expired = drop_expired_pauses(model);
    let after = visible_clock_texts(model);
    UpdateResult {
        actions: Vec::new(),
        dirty: expired || before != after,
    }
}

fn drop_expired_pauses(model: &mut Model) -> bool {
    let now = model.now_ms;
    let mut changed = false;
    for c in &mut model.contacts {
        if c.pause.is_some() && c.active_pause(now).is_none() {
            c.pause = None;
            changed = true;
        }
    }
    changed
}

/// Every countdown the screen shows, as displayed; a tick redraws only if it changes.
pub fn visible_clock_texts(model: &Model) -> Vec<String> {
    let now = model.now_ms;
    let mut out: Vec<String> = model
        .visible_indices()
        .iter()
        .filter_map(|&i| model.contacts.get(i)?.active_pause(now)?.expires_at_ms)
        .map(|t| format::countdown(format::remaining_secs(t, now)))
        .collect();
    if let Some(qr) = model.qr.as_ref().filter(|_| model.qr_visible()) {
        out.push(format::remaining_secs(qr.expires_at_ms(), now).to_string());
    }
    if let Some(s) = &model.session {
        out.push(format::coarse_duration(format::remaining_secs(
            s.expires_at_ms,
            now,
        )));
    }
    if let Some(g) = &model.gateway {
        out.push(crate::widgets::status_bar::gateway_text(
            g,
            now,
            model.utc_offset_min,
            "",
        ));
    }
    if let Some(left) = crate::widgets::gateway_login::pair_code_left(model) {
        out.push(format::countdown(left));
    }
    if let Connection::Disconnected { since_ms, .. } = model.connection {
        out.push(format::coarse_duration(format::remaining_secs(
            now, since_ms,
        )));
    }
    out
}
