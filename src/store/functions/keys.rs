//! The keys of one contact, one message and the `HANDLED:` hours a step touches,
//! built here from [`crate::schema`] and passed in `KEYS`: the library builds no
//! key name, so Redis Cluster's slot checks and ACL key patterns see every key a
//! step touches. The step finds them through the places given in its arguments.

use std::collections::HashMap;

use super::Call;
use crate::schema::{self, drafts};

/// One of a contact's keys, in the order they follow each other in `KEYS`
/// (the library's prelude reads them in this order: `contact_keys`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContactKey {
    /// `PAUSE:{contactId}`.
    Pause,
    /// `PAUSEMETA:{contactId}`.
    PauseMeta,
    /// `COUNTER:{contactId}:msgs`.
    Counter,
    /// `HISTORY:{contactId}`.
    History,
    /// `SECONDME:history:{contactId}`.
    OwnHistory,
    /// `DRAFT:{contactId}`.
    Draft,
}

impl ContactKey {
    /// Every contact key, in their order in `KEYS`.
    pub const ALL: [Self; 6] = [
        Self::Pause,
        Self::PauseMeta,
        Self::Counter,
        Self::History,
        Self::OwnHistory,
        Self::Draft,
    ];

    /// The field of the library's table of a contact's keys that holds this one.
    pub fn field(self) -> &'static str {
        match self {
            Self::Pause => "pause",
            Self::PauseMeta => "pause_meta",
            Self::Counter => "counter",
            Self::History => "history",
            Self::OwnHistory => "own_history",
            Self::Draft => "draft",
        }
    }

    /// The key of `contact`.
    pub fn of(self, contact: &str) -> String {
        match self {
            Self::Pause => schema::pause_key(contact),
            Self::PauseMeta => schema::pause_meta_key(contact),
            Self::Counter => schema::counter_key(contact),
            Self::History => schema::history_key(contact),
            Self::OwnHistory => schema::own_history_key(contact),
            Self::Draft => drafts::draft_key(contact),
        }
    }
}

/// How many `HANDLED:` hours a step gets: the caller's hour - 2 to hour + 1, so
/// whichever of its hour - 1, hour, hour + 1 the server's clock is in, the step
/// has that hour's hash and the one before.
pub const HANDLED_HOURS: i64 = 4;

impl Call {
    /// Adds a key; returns its place in `KEYS` (from 1), for the step's arguments.
    pub fn key_at(&mut self, key: &str) -> usize {
        self.key(key);
        self.key_count()
    }

    /// Adds every key of `contact` ([`ContactKey::ALL`]); returns the place of
    /// the first in `KEYS` (from 1), for the step's arguments.
    pub fn contact_keys(&mut self, contact: &str) -> usize {
        let at = self.key_count() + 1;
        for k in ContactKey::ALL {
            self.key(k.of(contact));
        }
        at
    }

    /// Adds the [`HANDLED_HOURS`] `HANDLED:` hours around `now_ms` (this host's
    /// clock) as keys and the first one's number as the next argument.
    pub fn handled_keys(&mut self, now_ms: i64) -> &mut Self {
        let first = schema::handled_bucket(now_ms) - 2;
        for bucket in first..first + HANDLED_HOURS {
            self.key(schema::handled_key(bucket));
        }
        self.arg(first)
    }
}

/// The contacts whose keys one call carries, each added once however many of
/// the call's entries are theirs.
#[derive(Debug, Default)]
pub struct ContactSlots(HashMap<String, usize>);

impl ContactSlots {
    /// Where `contact`'s keys begin in `call`'s `KEYS`, added on first sight.
    pub fn at(&mut self, call: &mut Call, contact: &str) -> usize {
        if let Some(&at) = self.0.get(contact) {
            return at;
        }
        let at = call.contact_keys(contact);
        self.0.insert(contact.to_owned(), at);
        at
    }
}

#[cfg(test)]
mod tests {
    use super::super::Step;
    use super::*;

    fn texts(list: &redis::Cmd) -> Vec<String> {
        list.args_iter()
            .map(|a| match a {
                redis::Arg::Simple(b) => String::from_utf8_lossy(b).into_owned(),
                _ => "a cursor".to_owned(),
            })
            .collect()
    }

    fn keys(call: &Call) -> Vec<String> {
        texts(&call.keys)
    }

    #[test]
    fn a_contacts_keys_follow_each_other_in_the_documented_order_once_per_call() {
        let mut call = Call::new(Step::Decide);
        call.key(schema::pause_all());
        let mut slots = ContactSlots::default();
        assert_eq!(slots.at(&mut call, "bob"), 2);
        assert_eq!(call.key_at(&schema::sent_key("m1")), 8);
        assert_eq!(slots.at(&mut call, "amy"), 9);
        assert_eq!(slots.at(&mut call, "bob"), 2, "added once");
        assert_eq!(
            keys(&call),
            [
                "PAUSE:ALL",
                "PAUSE:bob",
                "PAUSEMETA:bob",
                "COUNTER:bob:msgs",
                "HISTORY:bob",
                "SECONDME:history:bob",
                "DRAFT:bob",
                "SENT:m1",
                "PAUSE:amy",
                "PAUSEMETA:amy",
                "COUNTER:amy:msgs",
                "HISTORY:amy",
                "SECONDME:history:amy",
                "DRAFT:amy",
            ]
        );
    }

    #[test]
    fn the_handled_hours_run_from_two_before_to_one_after_the_callers() {
        let mut call = Call::new(Step::Supersede);
        let hour = schema::HANDLED_BUCKET_MS;
        call.handled_keys(1000 * hour + 5);
        assert_eq!(
            keys(&call),
            ["HANDLED:998", "HANDLED:999", "HANDLED:1000", "HANDLED:1001"]
        );
        assert_eq!(texts(&call.args), ["998"]);
    }
}
