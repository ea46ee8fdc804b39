//! The messages the twin chose not to answer: what the binary reads, and the
//! key that says the operator saw the selected contact's.

use std::collections::HashMap;

use super::{Action, MAX_SHORT, UpdateResult, log};
use crate::model::{LogKind, Model};
use crate::sanitize;

/// A new reading of the counts; redraws only when it changed them. The binary
/// re-reads every second: the same reading again costs a comparison.
pub(super) fn on_read(model: &mut Model, read: HashMap<String, u64>) -> UpdateResult {
    if model.unanswered.last_read() == Some(&read) {
        return UpdateResult::clean();
    }
    let mut clean: HashMap<String, u64> = HashMap::with_capacity(read.len());
    for (contact_id, n) in &read {
        // Two raw ids may clean to one: their counts add up.
        let slot = clean
            .entry(sanitize::clean(contact_id, MAX_SHORT))
            .or_default();
        *slot = slot.saturating_add(*n);
    }
    model.unanswered.replace(read, clean);
    UpdateResult::dirty()
}

/// The dismiss key: the selected contact's count goes at once, and the binary
/// is asked to clear it in Redis (none selected: nothing happens).
pub(super) fn dismiss(model: &mut Model) -> UpdateResult {
    let Some(contact) = model.selected_contact() else {
        return UpdateResult::clean();
    };
    let (contact_id, name) = (contact.id.clone(), contact.display_name().to_owned());
    if model.unanswered.dismiss(&contact_id) == 0 {
        log(model, LogKind::Info, &format!("{name}: nothing unanswered"));
        return UpdateResult::dirty();
    }
    UpdateResult::action(Action::DismissUnanswered { contact_id })
}
