//! Contact ids for real WhatsApp contacts: a keyed hash of the normalised
//! contact, so phone numbers never reach Redis in clear and the same person
//! always gets the same id.
//!
//! WhatsApp names a person either by phone number (`15551234567@s.whatsapp.net`)
//! or by a "linked identity" (`100000012345678@lid`). When both forms are known
//! the phone number wins, so a conversation that moves from one form to the
//! other keeps its id; a contact known only by its LID is hashed as the LID.

use hmac::{KeyInit as _, Mac};

/// What [`ContactHasher::id`] returns: `wa_` and 24 hex digits (96 bits).
pub const ID_PREFIX: &str = "wa_";

/// The label the hashing key is derived under from the session key.
pub const KEY_LABEL: &str = "secondme whatsapp contact id v1";

/// A person, normalised: the digits of a phone number, or a LID user part.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Person {
    /// Phone number digits, without `+` or separators.
    Phone(String),
    /// A linked identity's user part.
    Lid(String),
    /// A group chat (only when groups are enabled): the group is the contact.
    Group(String),
}

impl Person {
    /// The person a WhatsApp address names, from its user part and server;
    /// `None` for groups, broadcasts, newsletters and anything else that is not one person.
    pub fn from_address(user: &str, server: &str) -> Option<Self> {
        // The user part may carry a device (`1555:12`) or an agent (`1555_1`) suffix.
        let bare = user.split([':', '_']).next().unwrap_or("");
        if bare.is_empty() || !bare.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        match server {
            "s.whatsapp.net" | "c.us" => Some(Self::Phone(bare.to_owned())),
            "lid" => Some(Self::Lid(bare.to_owned())),
            _ => None,
        }
    }

    /// The phone form of `a` or `b` when either is one, else the first known.
    pub fn prefer_phone(a: Option<Self>, b: Option<Self>) -> Option<Self> {
        match (a, b) {
            (Some(p @ Self::Phone(_)), _) | (_, Some(p @ Self::Phone(_))) => Some(p),
            (a, b) => a.or(b),
        }
    }

    /// Parses a phone number as an operator types it (`+1 555-123 4567`).
    pub fn from_phone_text(text: &str) -> Option<Self> {
        let digits: String = text.chars().filter(char::is_ascii_digit).collect();
        let only_separators = text
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '+' | ' ' | '-' | '(' | ')' | '.'));
        (only_separators && (6..=15).contains(&digits.len())).then_some(Self::Phone(digits))
    }

    /// The address to send to: `digits@s.whatsapp.net` or `user@lid`.
    pub fn address(&self) -> String {
        match self {
            Self::Phone(d) => format!("{d}@s.whatsapp.net"),
            Self::Lid(u) => format!("{u}@lid"),
            Self::Group(g) => format!("{g}@g.us"),
        }
    }

    fn canonical(&self) -> String {
        match self {
            Self::Phone(d) => format!("phone:{d}"),
            Self::Lid(u) => format!("lid:{u}"),
            Self::Group(g) => format!("group:{g}"),
        }
    }
}

/// Turns people into contact ids with a secret key.
#[derive(Clone)]
pub struct ContactHasher {
    key: [u8; 32],
}

impl std::fmt::Debug for ContactHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ContactHasher(..)")
    }
}

impl ContactHasher {
    /// A hasher with this 32-byte key (see [`KEY_LABEL`]).
    pub fn new(key: [u8; 32]) -> Self {
        Self { key }
    }

    /// The contact id of `person`: stable for a key, unlinkable to the number without it.
    pub fn id(&self, person: &Person) -> String {
        let mut mac = <hmac::Hmac<sha2::Sha256>>::new_from_slice(&self.key)
            .unwrap_or_else(|_| unreachable!("HMAC takes a key of any length"));
        mac.update(person.canonical().as_bytes());
        let digest = mac.finalize().into_bytes();
        let hex: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
        format!("{ID_PREFIX}{hex}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hasher() -> ContactHasher {
        ContactHasher::new([7; 32])
    }

    #[test]
    fn an_id_is_stable_valid_and_hides_the_number() {
        let p = Person::Phone("15551234567".into());
        let id = hasher().id(&p);
        assert_eq!(id, hasher().id(&p));
        assert!(!id.contains("5551234567"));
        assert_eq!(id.len(), ID_PREFIX.len() + 24);
        assert!(crate::schema::check_contact_id(&id).is_ok());
        assert_ne!(id, ContactHasher::new([8; 32]).id(&p), "keyed");
    }

    #[test]
    fn addresses_normalise_devices_and_reject_groups() {
        let pn = Person::from_address("15551234567:12", "s.whatsapp.net");
        assert_eq!(pn, Some(Person::Phone("15551234567".into())));
        assert_eq!(
            Person::from_address("100000012345678", "lid"),
            Some(Person::Lid("100000012345678".into()))
        );
        assert_eq!(Person::from_address("120363-1234", "g.us"), None);
        assert_eq!(Person::from_address("status", "broadcast"), None);
        assert_eq!(Person::from_address("1234", "newsletter"), None);
    }

    #[test]
    fn the_phone_form_wins_over_the_lid() {
        let lid = Person::from_address("100000012345678", "lid");
        let pn = Person::from_address("15551234567", "s.whatsapp.net");
        assert_eq!(
            Person::prefer_phone(lid.clone(), pn.clone()),
            Person::prefer_phone(pn.clone(), lid.clone())
        );
        assert_eq!(Person::prefer_phone(lid.clone(), None), lid);
    }

    #[test]
    fn typed_phone_numbers_are_digits() {
        assert_eq!(
            Person::from_phone_text("+1 (555) 123-4567"),
            Some(Person::Phone("15551234567".into()))
        );
        assert_eq!(Person::from_phone_text("call me"), None);
        assert_eq!(Person::from_phone_text("+12"), None);
    }
}
