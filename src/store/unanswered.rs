//! What the operator has to look at, per contact: `SECONDME:unanswered`, how
//! many of its messages the twin chose not to answer (sleep hours, the kill
//! switch, the rate limit, a pause, a reply withheld) since the twin or the
//! person last wrote to it; and `SECONDME:unheard`, how many of its voice notes
//! and photos the twin could not understand, which the twin's own replies do
//! not clear (only the operator or the person). The workers' functions count
//! and clear both; the operator reads their sum here and dismisses what they
//! have seen.
//!
//! Other programs share this Redis: a value that is not an integer counts as
//! one message, a negative one as none, and a key of another type is left
//! alone and said so ([`Error::Foreign`]), the other key still read.

use std::collections::{HashMap, HashSet};

use crate::connection::Con;

use crate::schema;

/// Fields read per `HSCAN` page.
const PAGE: usize = 1_000;
/// Most contacts read: the hash holds one field per contact; one that grew
/// past this is another program's doing and is not read whole every second.
pub const MAX_CONTACTS: usize = 10_000;

/// Why the counts could not be read or changed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The key holds another type than a hash: another program's, left alone.
    #[error(
        "{key} holds a {kind}, not a hash (another program's?): \
         its counts are not read and it is left as it is"
    )]
    Foreign {
        /// The key.
        key: String,
        /// The type it holds.
        kind: String,
    },
    /// A contact id no key may be built from.
    #[error("contact id {id:?} {problem}")]
    ContactId {
        /// The id given.
        id: String,
        /// What is wrong with it.
        problem: String,
    },
    /// Redis refused or could not be reached.
    #[error("cannot {what} {key}")]
    Redis {
        /// What was being done.
        what: &'static str,
        /// The key.
        key: String,
        /// Redis's error.
        #[source]
        source: redis::RedisError,
    },
}

/// The result of this module's operations.
pub type Result<T> = std::result::Result<T, Error>;

/// The hashes counting for the operator: the messages not answered, then the
/// voice notes and photos not understood.
pub fn keys() -> [&'static str; 2] {
    [schema::unanswered(), schema::unheard()]
}

/// What [`read`] found.
#[derive(Debug, Default)]
pub struct Counts {
    /// Each contact with messages left to the operator, and how many (never 0):
    /// the sum of both hashes.
    pub by_contact: HashMap<String, u64>,
    /// Each hash of another type ([`Error::Foreign`]), left alone and not read.
    pub foreign: Vec<Error>,
}

/// A field and its value as `HSCAN` gives them, bytes: another program may
/// have written anything.
type Field = (Vec<u8>, Vec<u8>);

/// Each contact with messages left to the operator, and how many: its
/// unanswered messages and its voice notes and photos not understood. At most
/// [`MAX_CONTACTS`] contacts; a field that is no UTF-8 text is no contact id
/// and is left out. A hash of another type is said in [`Counts::foreign`] and
/// the other still read.
pub async fn read(con: &mut Con) -> Result<Counts> {
    let mut read = Counts::default();
    for key in keys() {
        match scan(con, key).await {
            Ok(counts) => add(&mut read.by_contact, counts),
            Err(e @ Error::Foreign { .. }) => read.foreign.push(e),
            Err(e) => return Err(e),
        }
    }
    Ok(read)
}

/// Adds `more` to `total`, a contact at a time, without growing `total` past
/// [`MAX_CONTACTS`].
fn add(total: &mut HashMap<String, u64>, more: HashMap<String, u64>) {
    for (contact, n) in more {
        if let Some(count) = total.get_mut(&contact) {
            *count = count.saturating_add(n);
        } else if total.len() < MAX_CONTACTS {
            total.insert(contact, n);
        }
    }
}

/// The nonzero counts of one hash (at most [`MAX_CONTACTS`] contacts).
async fn scan(con: &mut Con, key: &str) -> Result<HashMap<String, u64>> {
    let mut counts = HashMap::new();
    let mut cursor = 0u64;
    loop {
        let reply: redis::RedisResult<(u64, Vec<Field>)> = redis::cmd("HSCAN")
            .arg(key)
            .arg(cursor)
            .arg("COUNT")
            .arg(PAGE)
            .query_async(con)
            .await;
        let (next, page) = match reply {
            Ok(r) => r,
            Err(e) => return Err(refused(con, key, "read", e).await),
        };
        // HSCAN may give a field twice: the last value seen stands, never a sum.
        for (field, value) in page {
            let Ok(contact) = String::from_utf8(field) else {
                continue;
            };
            match count(&value) {
                0 => counts.remove(&contact),
                n => counts.insert(contact, n),
            };
        }
        if next == 0 || counts.len() >= MAX_CONTACTS {
            return Ok(counts);
        }
        cursor = next;
    }
}

/// How many messages a stored value stands for: an integer as it says (a
/// negative one as none), anything else as one.
fn count(value: &[u8]) -> u64 {
    std::str::from_utf8(value)
        .ok()
        .and_then(|text| text.parse::<i64>().ok())
        .map_or(1, |n| u64::try_from(n).unwrap_or(0))
}

/// The operator has seen `contact_id`'s conversation: its counts go from both
/// hashes. Returns whether it had one. A hash of another type is left alone
/// (the other still cleared) and said ([`Error::Foreign`]).
pub async fn dismiss(con: &mut Con, contact_id: &str) -> Result<bool> {
    schema::check_contact_id(contact_id).map_err(|problem| Error::ContactId {
        id: contact_id.to_owned(),
        problem,
    })?;
    let mut had = false;
    let mut foreign = None;
    for key in keys() {
        let removed: redis::RedisResult<u64> = redis::cmd("HDEL")
            .arg(key)
            .arg(contact_id)
            .query_async(con)
            .await;
        match removed {
            Ok(n) => had |= n > 0,
            Err(e) => match refused(con, key, "dismiss a count in", e).await {
                e @ Error::Foreign { .. } => foreign = Some(e),
                e => return Err(e),
            },
        }
    }
    foreign.map_or(Ok(had), Err)
}

/// The operator has seen every conversation: every count of both hashes goes.
/// Returns how many contacts had one in either. A hash of another type is
/// left alone (the other still cleared) and said ([`Error::Foreign`]).
pub async fn dismiss_all(con: &mut Con) -> Result<u64> {
    let mut counted = Vec::new();
    let mut foreign = None;
    for key in keys() {
        match holds_counts(con, key).await {
            Ok(true) => counted.push(key),
            Ok(false) => {}
            Err(e @ Error::Foreign { .. }) => foreign = Some(e),
            Err(e) => return Err(e),
        }
    }
    let contacts = clear(con, &counted).await?;
    foreign.map_or(Ok(contacts), Err)
}

/// Deletes `keys` (hashes); returns how many distinct contacts they counted,
/// read in the same step, so a count a worker adds meanwhile is either counted
/// and deleted or lands after the delete and stays.
async fn clear(con: &mut Con, keys: &[&str]) -> Result<u64> {
    if keys.is_empty() {
        return Ok(0);
    }
    let mut pipe = redis::pipe();
    pipe.atomic();
    for key in keys {
        pipe.hkeys(key);
    }
    pipe.del(keys).ignore();
    let fields: Vec<Vec<Vec<u8>>> = pipe.query_async(con).await.map_err(|source| Error::Redis {
        what: "clear",
        key: keys.join(" and "),
        source,
    })?;
    let contacts: HashSet<Vec<u8>> = fields.into_iter().flatten().collect();
    Ok(contacts.len() as u64)
}

/// Whether `key` (one of [`keys`]) holds counts (a hash), so that an `HDEL`
/// of it can join another step's `MULTI` without failing it; `false` when there
/// is none, [`Error::Foreign`] when it holds another type.
pub async fn holds_counts(con: &mut Con, key: &str) -> Result<bool> {
    match kind(con, key).await?.as_str() {
        "none" => Ok(false),
        "hash" => Ok(true),
        other => Err(Error::Foreign {
            key: key.to_owned(),
            kind: other.to_owned(),
        }),
    }
}

/// The type `key` holds.
async fn kind(con: &mut Con, key: &str) -> Result<String> {
    redis::cmd("TYPE")
        .arg(key)
        .query_async(con)
        .await
        .map_err(|source| Error::Redis {
            what: "read the type of",
            key: key.to_owned(),
            source,
        })
}

/// The error for a command Redis refused on `key`: [`Error::Foreign`] when
/// the key holds another type, else the error as it came.
async fn refused(con: &mut Con, key: &str, what: &'static str, source: redis::RedisError) -> Error {
    if source.code() != Some("WRONGTYPE") {
        return Error::Redis {
            what,
            key: key.to_owned(),
            source,
        };
    }
    match kind(con, key).await {
        Ok(kind) => Error::Foreign {
            key: key.to_owned(),
            kind,
        },
        Err(e) => e,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_count_as_they_say_and_anything_else_as_one() {
        assert_eq!(count(b"3"), 3);
        assert_eq!(count(b"0"), 0);
        assert_eq!(count(b"-2"), 0);
        assert_eq!(count(b"2.5"), 1);
        assert_eq!(count(b"lots"), 1);
        assert_eq!(count(b""), 1);
        assert_eq!(count(&[0xff, 0xfe]), 1);
    }

    #[test]
    fn both_hashes_add_up_per_contact_within_the_bound() {
        let mut total = HashMap::from([("a".to_owned(), 2), ("b".to_owned(), u64::MAX)]);
        add(
            &mut total,
            HashMap::from([
                ("a".to_owned(), 1),
                ("b".to_owned(), 1),
                ("c".to_owned(), 4),
            ]),
        );
        assert_eq!(
            total,
            HashMap::from([
                ("a".to_owned(), 3),
                ("b".to_owned(), u64::MAX),
                ("c".to_owned(), 4)
            ])
        );
        let mut full: HashMap<String, u64> =
            (0..MAX_CONTACTS).map(|i| (format!("c{i}"), 1)).collect();
        add(
            &mut full,
            HashMap::from([("c0".to_owned(), 1), ("new".to_owned(), 1)]),
        );
        assert_eq!(full.len(), MAX_CONTACTS, "no contact past the bound");
        assert_eq!(full["c0"], 2, "a contact already there still adds up");
    }
}
