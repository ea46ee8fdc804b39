//! Messages the twin chose not to answer (asleep, kill switch, rate limit, a
//! pause, a reply withheld), counted per contact since the twin or the person
//! last wrote to it. The binary reads them (`SECONDME:unanswered`) and hands
//! them in; contact ids are cleaned by `update` before they are kept.

use std::collections::HashMap;

/// The unanswered counts as last read, and their sum for the status bar.
#[derive(Clone, Debug, Default)]
pub struct Unanswered {
    by_contact: HashMap<String, u64>,
    total: u64,
    /// The reading these came from, as it arrived: the same reading again
    /// (nearly every one) is told apart without cleaning it. `None` once
    /// changed here, so the next reading replaces what changed.
    read: Option<HashMap<String, u64>>,
}

impl Unanswered {
    /// The reading these came from, unless changed here since.
    pub fn last_read(&self) -> Option<&HashMap<String, u64>> {
        self.read.as_ref()
    }

    /// Replaces every count with `clean` (ids cleaned), read as `read`.
    /// Contacts with none are left out.
    pub fn replace(&mut self, read: HashMap<String, u64>, mut clean: HashMap<String, u64>) {
        clean.retain(|_, n| *n > 0);
        self.total = sum(&clean);
        self.by_contact = clean;
        self.read = Some(read);
    }

    /// How many of `contact_id`'s messages wait unanswered (0: none).
    pub fn for_contact(&self, contact_id: &str) -> u64 {
        self.by_contact.get(contact_id).copied().unwrap_or(0)
    }

    /// How many messages wait unanswered, all contacts together.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// Forgets `contact_id`'s count (the operator saw it) before the binary's
    /// next reading confirms it; returns what it was.
    pub fn dismiss(&mut self, contact_id: &str) -> u64 {
        let was = self.by_contact.remove(contact_id).unwrap_or(0);
        if was > 0 {
            self.total = sum(&self.by_contact);
            self.read = None;
        }
        was
    }
}

fn sum(counts: &HashMap<String, u64>) -> u64 {
    counts.values().fold(0, |sum, n| sum.saturating_add(*n))
}
