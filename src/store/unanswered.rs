//! `SECONDME:unanswered`: for each contact, how many of its messages the twin
//! chose not to answer (sleep hours, the kill switch, the rate limit, a pause,
//! a reply withheld) since the twin or the person last wrote to it. The
//! workers' functions count and clear it; the operator reads it here and
//! dismisses what they have seen.
//!
//! Other programs share this Redis: a value that is not an integer counts as
//! one message, a negative one as none, and a key of another type is left
//! alone and said so ([`Error::Foreign`]).

use std::collections::HashMap;

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
         the unanswered counts are not read and it is left as it is"
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

/// A field and its value as `HSCAN` gives them, bytes: another program may
/// have written anything.
type Field = (Vec<u8>, Vec<u8>);

/// Each contact with messages left unanswered, and how many (never 0). At
/// most [`MAX_CONTACTS`] contacts; a field that is no UTF-8 text is no
/// contact id and is left out.
pub async fn read(con: &mut Con) -> Result<HashMap<String, u64>> {
    let key = schema::unanswered();
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
            Err(e) => return Err(refused(con, "read", e).await),
        };
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

/// The operator has seen `contact_id`'s unanswered messages: its count goes.
/// Returns whether it had one.
pub async fn dismiss(con: &mut Con, contact_id: &str) -> Result<bool> {
    schema::check_contact_id(contact_id).map_err(|problem| Error::ContactId {
        id: contact_id.to_owned(),
        problem,
    })?;
    let key = schema::unanswered();
    let removed: redis::RedisResult<u64> = redis::cmd("HDEL")
        .arg(key)
        .arg(contact_id)
        .query_async(con)
        .await;
    match removed {
        Ok(n) => Ok(n > 0),
        Err(e) => Err(refused(con, "dismiss a count in", e).await),
    }
}

/// The operator has seen every unanswered message: every count goes.
/// Returns how many contacts had one.
pub async fn dismiss_all(con: &mut Con) -> Result<u64> {
    let key = schema::unanswered();
    if !holds_counts(con).await? {
        return Ok(0);
    }
    // A count another worker adds between the two lands after the delete and stays.
    let (contacts, _deleted): (u64, u64) = redis::pipe()
        .atomic()
        .hlen(key)
        .del(key)
        .query_async(con)
        .await
        .map_err(|source| Error::Redis {
            what: "clear",
            key: key.to_owned(),
            source,
        })?;
    Ok(contacts)
}

/// Whether the key holds counts (a hash), so that an `HDEL` of it can join
/// another step's `MULTI` without failing it; `false` when there is none,
/// [`Error::Foreign`] when it holds another type.
pub async fn holds_counts(con: &mut Con) -> Result<bool> {
    match kind(con).await?.as_str() {
        "none" => Ok(false),
        "hash" => Ok(true),
        other => Err(Error::Foreign {
            key: schema::unanswered().to_owned(),
            kind: other.to_owned(),
        }),
    }
}

/// The type the key holds.
async fn kind(con: &mut Con) -> Result<String> {
    let key = schema::unanswered();
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

/// The error for a command Redis refused: [`Error::Foreign`] when the key
/// holds another type, else the error as it came.
async fn refused(con: &mut Con, what: &'static str, source: redis::RedisError) -> Error {
    let key = schema::unanswered().to_owned();
    if source.code() != Some("WRONGTYPE") {
        return Error::Redis { what, key, source };
    }
    match kind(con).await {
        Ok(kind) => Error::Foreign { key, kind },
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
}
