//! Stream replies (`XREADGROUP`, `XAUTOCLAIM`) turned into entries by moving the
//! values out of the reply. redis-rs's generic `StreamReadReply` clones the whole
//! reply before converting it, which was a third of the worker's CPU under load.

use std::collections::HashMap;

use redis::streams::StreamId;
use redis::{FromRedisValue, ParsingError, Value};

/// The entries of an `XREADGROUP` reply for one stream (none when it timed out).
#[derive(Debug, Default)]
pub struct ReadEntries(pub Vec<StreamId>);

/// An `XRANGE` reply: the entries in the range, with their fields.
#[derive(Debug, Default)]
pub struct RangeEntries(pub Vec<StreamId>);

impl FromRedisValue for RangeEntries {
    fn from_redis_value(v: Value) -> Result<Self, ParsingError> {
        let mut out = Vec::new();
        push_entries(v, &mut out)?;
        Ok(Self(out))
    }
}

/// An `XAUTOCLAIM` reply: the entries claimed and the ids deleted from the stream.
#[derive(Debug, Default)]
pub struct Claimed {
    /// Claimed entries with their fields.
    pub entries: Vec<StreamId>,
    /// Pending ids whose entry no longer exists (trimmed before anyone handled it).
    pub deleted: Vec<String>,
}

impl FromRedisValue for ReadEntries {
    fn from_redis_value(v: Value) -> Result<Self, ParsingError> {
        let mut out = Vec::new();
        match v {
            Value::Nil => {}
            // RESP3: {stream => [entry, ...]}
            Value::Map(streams) => {
                for (_, list) in streams {
                    push_entries(list, &mut out)?;
                }
            }
            // RESP2: [[stream, [entry, ...]], ...]
            Value::Array(streams) => {
                for pair in streams {
                    let Value::Array(mut kv) = pair else {
                        return Err(unexpected("a [stream, entries] pair", &pair));
                    };
                    if kv.len() != 2 {
                        return Err("a [stream, entries] pair of two items".into());
                    }
                    push_entries(kv.swap_remove(1), &mut out)?;
                }
            }
            other => return Err(unexpected("an XREADGROUP reply", &other)),
        }
        Ok(Self(out))
    }
}

impl FromRedisValue for Claimed {
    fn from_redis_value(v: Value) -> Result<Self, ParsingError> {
        // [next cursor, [entry, ...], [deleted id, ...]] (the last one from Redis 7.0 on)
        let Value::Array(parts) = v else {
            return Err(unexpected("an XAUTOCLAIM reply", &v));
        };
        let mut parts = parts.into_iter().skip(1);
        let mut claimed = Self::default();
        if let Some(list) = parts.next() {
            push_entries(list, &mut claimed.entries)?;
        }
        if let Some(Value::Array(ids)) = parts.next() {
            claimed.deleted = ids.into_iter().filter_map(text).collect();
        }
        Ok(claimed)
    }
}

fn push_entries(list: Value, out: &mut Vec<StreamId>) -> Result<(), ParsingError> {
    let Value::Array(items) = list else {
        return Err(unexpected("a list of entries", &list));
    };
    out.reserve(items.len());
    for item in items {
        out.push(entry(item)?);
    }
    Ok(())
}

/// `[id, [field, value, ...]]`; the fields are nil for a pending entry that was
/// deleted, which yields an entry without fields (rejected later with a reason).
fn entry(item: Value) -> Result<StreamId, ParsingError> {
    let Value::Array(parts) = item else {
        return Err(unexpected("an [id, fields] entry", &item));
    };
    let mut parts = parts.into_iter();
    let id = parts
        .next()
        .and_then(text)
        .ok_or_else(|| ParsingError::from("an entry without an id"))?;
    let map = match parts.next() {
        Some(Value::Array(flat)) => {
            let mut map = HashMap::with_capacity(flat.len() / 2);
            let mut flat = flat.into_iter();
            while let (Some(k), Some(v)) = (flat.next(), flat.next()) {
                if let Some(k) = text(k) {
                    map.insert(k, v);
                }
            }
            map
        }
        Some(Value::Map(pairs)) => pairs
            .into_iter()
            .filter_map(|(k, v)| Some((text(k)?, v)))
            .collect(),
        _ => HashMap::new(),
    };
    Ok(StreamId {
        id,
        map,
        milliseconds_elapsed_from_delivery: None,
        delivered_count: None,
    })
}

/// A field name or id as text; names that are not UTF-8 are dropped, which makes
/// the entry fail strict parsing with the field named instead of a read error.
fn text(v: Value) -> Option<String> {
    match v {
        Value::BulkString(b) => String::from_utf8(b).ok(),
        Value::SimpleString(s) => Some(s),
        Value::VerbatimString { text, .. } => Some(text),
        _ => None,
    }
}

fn unexpected(what: &str, got: &Value) -> ParsingError {
    ParsingError::from(format!("expected {what}, got {got:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    fn one_entry() -> Value {
        Value::Array(vec![
            bulk("1-0"),
            Value::Array(vec![
                bulk("messageId"),
                bulk("m1"),
                bulk("content"),
                bulk("hi"),
            ]),
        ])
    }

    #[test]
    fn reads_resp3_and_resp2_replies() {
        let resp3 = Value::Map(vec![(
            bulk("QUEUE:messages"),
            Value::Array(vec![one_entry()]),
        )]);
        let resp2 = Value::Array(vec![Value::Array(vec![
            bulk("QUEUE:messages"),
            Value::Array(vec![one_entry()]),
        ])]);
        for v in [resp3, resp2] {
            let ReadEntries(got) = ReadEntries::from_redis_value(v).expect("parse");
            assert_eq!(got.len(), 1);
            assert_eq!(got[0].id, "1-0");
            assert_eq!(got[0].map.get("content"), Some(&bulk("hi")));
        }
        let ReadEntries(none) = ReadEntries::from_redis_value(Value::Nil).expect("nil");
        assert!(none.is_empty());
    }

    #[test]
    fn a_deleted_pending_entry_has_no_fields() {
        let v = Value::Map(vec![(
            bulk("QUEUE:messages"),
            Value::Array(vec![Value::Array(vec![bulk("2-0"), Value::Nil])]),
        )]);
        let ReadEntries(got) = ReadEntries::from_redis_value(v).expect("parse");
        assert_eq!(got[0].id, "2-0");
        assert!(got[0].map.is_empty());
    }

    #[test]
    fn reads_an_autoclaim_reply_with_deleted_ids() {
        let v = Value::Array(vec![
            bulk("0-0"),
            Value::Array(vec![one_entry()]),
            Value::Array(vec![bulk("3-0")]),
        ]);
        let c = Claimed::from_redis_value(v).expect("parse");
        assert_eq!(c.entries.len(), 1);
        assert_eq!(c.deleted, vec!["3-0".to_owned()]);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(ReadEntries::from_redis_value(Value::Int(3)).is_err());
        assert!(Claimed::from_redis_value(bulk("x")).is_err());
        assert!(ReadEntries::from_redis_value(Value::Array(vec![Value::Int(1)])).is_err());
    }
}
