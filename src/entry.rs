//! Strict parsing of `QUEUE:messages` entries: a bad entry is rejected with the
//! entry id and the field named, never a panic and never a guess.

use std::borrow::Cow;
use std::collections::HashMap;

use redis::Value;
use thiserror::Error;

use crate::schema::media::{self as media_fields, MediaRef};
use crate::schema::{self, Direction, QueueMessage};

/// Largest `content` accepted, in bytes (WhatsApp's own limit is 65,536 characters).
pub const MAX_CONTENT_BYTES: usize = 65_536;

/// Why an entry was rejected.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[error("entry {entry_id}: field `{field}` {problem}")]
pub struct EntryError {
    /// Stream id of the entry.
    pub entry_id: String,
    /// The field at fault.
    pub field: &'static str,
    /// What is wrong with it.
    pub problem: String,
}

/// An entry's fields once checked, borrowed from the reply they came in where
/// they could be, so a reader can pack them without copying them twice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedEntry<'a> {
    /// Gateway message id.
    pub message_id: Cow<'a, str>,
    /// Contact id.
    pub contact_id: Cow<'a, str>,
    /// Message text.
    pub content: Cow<'a, str>,
    /// Unix time in ms.
    pub timestamp: i64,
    /// Incoming or outgoing.
    pub direction: Direction,
    /// Sent from the person's account.
    pub from_me: bool,
    /// The voice note or photo it came with (`mediaType`, `mediaSeconds`), if any.
    pub media: Option<MediaRef>,
}

impl From<CheckedEntry<'_>> for QueueMessage {
    fn from(c: CheckedEntry<'_>) -> Self {
        Self {
            message_id: c.message_id.into_owned(),
            contact_id: c.contact_id.into_owned(),
            content: c.content.into_owned(),
            timestamp: c.timestamp,
            direction: c.direction,
            from_me: c.from_me,
        }
    }
}

/// Checks one stream entry's fields, borrowing them from `fields`.
pub fn check_map<'a>(
    entry_id: &str,
    fields: &'a HashMap<String, Value>,
) -> Result<CheckedEntry<'a>, EntryError> {
    check_with(entry_id, |field| fields.get(field).map(value_text))
}

/// [`check_map`] for fields as the raw bytes of a reply, name and
/// value, in the order the entry holds them (a repeated name: the last one counts,
/// as in the map).
pub fn check_pairs<'a>(
    entry_id: &str,
    pairs: &[(&'a [u8], &'a [u8])],
) -> Result<CheckedEntry<'a>, EntryError> {
    check_with(entry_id, |field| {
        pairs
            .iter()
            .rev()
            .find(|(name, _)| *name == field.as_bytes())
            .map(|(_, value)| bytes_text(value))
    })
}

/// The strict checks, on fields looked up by name: `None` when the field is
/// missing, else its text or why it has none. An entry without `messageId` but
/// with a `payload` field is the original gateway's form (see [`check_payload`]).
fn check_with<'a>(
    entry_id: &str,
    get: impl Fn(&'static str) -> Option<Result<Cow<'a, str>, String>>,
) -> Result<CheckedEntry<'a>, EntryError> {
    let fail = |field: &'static str, problem: String| EntryError {
        entry_id: entry_id.to_owned(),
        field,
        problem,
    };
    if get("messageId").is_none()
        && let Some(payload) = get(PAYLOAD)
    {
        return check_payload(entry_id, &payload.map_err(|p| fail(PAYLOAD, p))?);
    }
    let text = |field: &'static str| -> Result<Cow<'a, str>, EntryError> {
        get(field)
            .ok_or_else(|| fail(field, "is missing".into()))?
            .map_err(|p| fail(field, p))
    };
    let mut checked = check_values(
        &fail,
        text("messageId")?,
        || text("contactId"),
        || text("content"),
        || text("timestamp"),
        || text("direction"),
        || text("fromMe"),
    )?;
    checked.media = check_media(&fail, &get)?;
    Ok(checked)
}

/// The optional media fields: `mediaType` a MIME type, `mediaSeconds` whole
/// seconds; `mediaSeconds` alone means nothing and is let through.
fn check_media<'a>(
    fail: &dyn Fn(&'static str, String) -> EntryError,
    get: &impl Fn(&'static str) -> Option<Result<Cow<'a, str>, String>>,
) -> Result<Option<MediaRef>, EntryError> {
    let Some(mime) = get(media_fields::MEDIA_TYPE_FIELD) else {
        return Ok(None);
    };
    let mime = mime.map_err(|p| fail(media_fields::MEDIA_TYPE_FIELD, p))?;
    media_fields::check_media_type(&mime).map_err(|p| fail(media_fields::MEDIA_TYPE_FIELD, p))?;
    let seconds = match get(media_fields::MEDIA_SECONDS_FIELD) {
        None => None,
        Some(raw) => {
            let raw = raw.map_err(|p| fail(media_fields::MEDIA_SECONDS_FIELD, p))?;
            Some(raw.parse::<u32>().map_err(|_| {
                fail(
                    media_fields::MEDIA_SECONDS_FIELD,
                    format!("is {:?}, not a whole number of seconds", clip(&raw)),
                )
            })?)
        }
    };
    Ok(Some(MediaRef {
        mime: mime.into_owned(),
        seconds,
    }))
}

/// The field of the original TypeScript gateway's entries: one JSON object
/// `{messageId, contactId, contactName, content, timestamp, hasMedia, type}`.
pub const PAYLOAD: &str = "payload";

/// Largest `payload` accepted, in bytes: the content limit with every character
/// escaped (`\uXXXX` is 6 bytes for at most 3 of UTF-8), plus room for the rest.
pub const MAX_PAYLOAD_BYTES: usize = 2 * MAX_CONTENT_BYTES + 8192;

/// Checks an entry of the `payload` form with the same rules as the seed's
/// fields: `direction` missing means `incoming` and `fromMe` missing means
/// `false` (that gateway queues only incoming messages); `timestamp` is a
/// number of ms or its text; `contactName`, `hasMedia` and `type` are optional
/// but, when present, of their JSON type. A problem is reported on the field
/// `payload`, naming the JSON key.
fn check_payload<'a>(entry_id: &str, payload: &str) -> Result<CheckedEntry<'a>, EntryError> {
    let fail = |key: &'static str, problem: String| EntryError {
        entry_id: entry_id.to_owned(),
        field: PAYLOAD,
        problem: if key.is_empty() {
            problem
        } else {
            format!("`{key}` {problem}")
        },
    };
    if payload.len() > MAX_PAYLOAD_BYTES {
        return Err(fail(
            "",
            format!(
                "is {} bytes, over the {MAX_PAYLOAD_BYTES} byte limit",
                payload.len()
            ),
        ));
    }
    let object: serde_json::Map<String, serde_json::Value> = serde_json::from_str(payload)
        .map_err(|e| {
            fail(
                "",
                format!("is not a JSON object ({})", clip(&e.to_string())),
            )
        })?;
    let string = |key: &'static str| -> Result<Option<Cow<'a, str>>, EntryError> {
        match object.get(key) {
            None | Some(serde_json::Value::Null) => Ok(None),
            Some(serde_json::Value::String(s)) => Ok(Some(Cow::Owned(s.clone()))),
            Some(other) => Err(fail(key, format!("is {}, not a string", json_kind(other)))),
        }
    };
    let required = |key: &'static str| -> Result<Cow<'a, str>, EntryError> {
        string(key)?.ok_or_else(|| fail(key, "is missing".into()))
    };
    for key in ["contactName", "type"] {
        string(key)?;
    }
    if let Some(v) = object.get("hasMedia")
        && !v.is_boolean()
        && !v.is_null()
    {
        return Err(fail(
            "hasMedia",
            format!("is {}, not a boolean", json_kind(v)),
        ));
    }
    let timestamp = || -> Result<Cow<'a, str>, EntryError> {
        match object.get("timestamp") {
            None | Some(serde_json::Value::Null) => Err(fail("timestamp", "is missing".into())),
            Some(serde_json::Value::String(s)) => Ok(Cow::Owned(s.clone())),
            Some(serde_json::Value::Number(n)) => Ok(Cow::Owned(n.to_string())),
            Some(other) => Err(fail(
                "timestamp",
                format!("is {}, not a number of ms", json_kind(other)),
            )),
        }
    };
    let from_me = || -> Result<Cow<'a, str>, EntryError> {
        match object.get("fromMe") {
            None | Some(serde_json::Value::Null) => Ok(Cow::Borrowed("false")),
            Some(serde_json::Value::Bool(b)) => {
                Ok(Cow::Borrowed(if *b { "true" } else { "false" }))
            }
            Some(serde_json::Value::String(s)) => Ok(Cow::Owned(s.clone())),
            Some(other) => Err(fail(
                "fromMe",
                format!("is {}, not a boolean", json_kind(other)),
            )),
        }
    };
    check_values(
        &fail,
        required("messageId")?,
        || required("contactId"),
        || required("content"),
        timestamp,
        || Ok(string("direction")?.unwrap_or(Cow::Borrowed("incoming"))),
        from_me,
    )
}

/// What a JSON value is, for an error message (never the value itself).
fn json_kind(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

/// The rules every form shares, field by field in the seed's order (so the first
/// field at fault is the one named); the later fields are only read once the
/// earlier ones passed.
fn check_values<'a>(
    fail: &dyn Fn(&'static str, String) -> EntryError,
    message_id: Cow<'a, str>,
    contact_id: impl FnOnce() -> Result<Cow<'a, str>, EntryError>,
    content: impl FnOnce() -> Result<Cow<'a, str>, EntryError>,
    timestamp: impl FnOnce() -> Result<Cow<'a, str>, EntryError>,
    direction: impl FnOnce() -> Result<Cow<'a, str>, EntryError>,
    from_me: impl FnOnce() -> Result<Cow<'a, str>, EntryError>,
) -> Result<CheckedEntry<'a>, EntryError> {
    schema::check_id(&message_id).map_err(|p| fail("messageId", p))?;
    let contact_id = contact_id()?;
    schema::check_contact_id(&contact_id).map_err(|p| fail("contactId", p))?;
    let content = content()?;
    if content.len() > MAX_CONTENT_BYTES {
        return Err(fail(
            "content",
            format!(
                "is {} bytes, over the {MAX_CONTENT_BYTES} byte limit",
                content.len()
            ),
        ));
    }
    let raw_ts = timestamp()?;
    let timestamp = raw_ts
        .parse::<i64>()
        .ok()
        .filter(|t| *t > 0)
        .ok_or_else(|| {
            fail(
                "timestamp",
                format!("is {:?}, not a positive integer of ms", clip(&raw_ts)),
            )
        })?;
    let raw_dir = direction()?;
    let direction = match raw_dir.as_ref() {
        "incoming" => Direction::Incoming,
        "outgoing" => Direction::Outgoing,
        other => {
            return Err(fail(
                "direction",
                format!(
                    "is {:?}, expected \"incoming\" or \"outgoing\"",
                    clip(other)
                ),
            ));
        }
    };
    let raw_from_me = from_me()?;
    let from_me = match raw_from_me.as_ref() {
        "true" => true,
        "false" => false,
        other => {
            return Err(fail(
                "fromMe",
                format!("is {:?}, expected \"true\" or \"false\"", clip(other)),
            ));
        }
    };
    if from_me && direction == Direction::Incoming {
        return Err(fail(
            "fromMe",
            "is true on an incoming message (only outgoing messages come from the person)".into(),
        ));
    }
    Ok(CheckedEntry {
        message_id,
        contact_id,
        content,
        timestamp,
        direction,
        from_me,
        media: None,
    })
}

fn value_text(value: &Value) -> Result<Cow<'_, str>, String> {
    match value {
        Value::BulkString(bytes) => bytes_text(bytes),
        Value::SimpleString(s) => Ok(Cow::Borrowed(s)),
        Value::Int(i) => Ok(Cow::Owned(i.to_string())),
        other => Err(format!("has an unexpected type ({other:?})")),
    }
}

fn bytes_text(bytes: &[u8]) -> Result<Cow<'_, str>, String> {
    match std::str::from_utf8(bytes) {
        Ok(text) => Ok(Cow::Borrowed(text)),
        Err(e) => Err(format!("is not valid UTF-8 (at byte {})", e.valid_up_to())),
    }
}

/// Shortens a bad value for an error message (the value is untrusted and may be huge).
fn clip(s: &str) -> String {
    const MAX: usize = 40;
    if s.chars().count() <= MAX {
        s.to_owned()
    } else {
        let head: String = s.chars().take(MAX).collect();
        format!("{head}...")
    }
}

/// Most fields of a rejected entry copied to the dead-letter stream.
pub const MAX_DEAD_LETTER_FIELDS: usize = 16;
/// Most bytes of a message's `content` copied to the dead-letter stream (what a
/// valid message may hold): a rejected entry may be of any size.
pub const MAX_DEAD_LETTER_CONTENT_BYTES: usize = MAX_CONTENT_BYTES;
/// Most bytes of any other field value copied to the dead-letter stream.
pub const MAX_DEAD_LETTER_VALUE_BYTES: usize = 4096;
/// Most bytes of a field name copied to the dead-letter stream.
pub const MAX_DEAD_LETTER_NAME_BYTES: usize = 128;

/// The bound of a field's value in a dead letter.
fn value_limit(name: &[u8]) -> usize {
    if name == b"content" {
        MAX_DEAD_LETTER_CONTENT_BYTES
    } else {
        MAX_DEAD_LETTER_VALUE_BYTES
    }
}

/// Renders the fields of an entry as text for the dead-letter stream (lossy on bad
/// UTF-8), bounded in count ([`MAX_DEAD_LETTER_FIELDS`]) and in size per name and
/// value, so one dead letter holds at most about 128 KiB.
pub fn raw_fields(fields: &HashMap<String, Value>) -> Vec<(String, String)> {
    let out: Vec<(String, String)> = fields
        .iter()
        .map(|(k, v)| {
            let limit = value_limit(k.as_bytes());
            let text = match v {
                Value::BulkString(b) => lossy_bounded(b, limit),
                Value::SimpleString(s) => lossy_bounded(s.as_bytes(), limit),
                Value::Int(i) => i.to_string(),
                other => lossy_bounded(format!("{other:?}").as_bytes(), limit),
            };
            (
                lossy_bounded(k.as_bytes(), MAX_DEAD_LETTER_NAME_BYTES),
                text,
            )
        })
        .collect();
    sorted_and_capped(out)
}

/// [`raw_fields`] for fields as the raw bytes of a reply.
pub fn raw_pair_fields(pairs: &[(&[u8], &[u8])]) -> Vec<(String, String)> {
    let out: Vec<(String, String)> = pairs
        .iter()
        .map(|(k, v)| {
            (
                lossy_bounded(k, MAX_DEAD_LETTER_NAME_BYTES),
                lossy_bounded(v, value_limit(k)),
            )
        })
        .collect();
    sorted_and_capped(out)
}

/// The seed's fields first, then the others by name, cut to the field cap.
fn sorted_and_capped(mut fields: Vec<(String, String)>) -> Vec<(String, String)> {
    const SEED: [&str; 6] = [
        "messageId",
        "contactId",
        "content",
        "timestamp",
        "direction",
        "fromMe",
    ];
    fields.sort_by(|a, b| {
        let rank = |k: &str| SEED.iter().position(|s| *s == k).unwrap_or(SEED.len());
        (rank(&a.0), &a.0, &a.1).cmp(&(rank(&b.0), &b.0, &b.1))
    });
    let extra = fields.len().saturating_sub(MAX_DEAD_LETTER_FIELDS);
    if extra > 0 {
        fields.truncate(MAX_DEAD_LETTER_FIELDS);
        fields.push(("secondme:omitted".into(), format!("{extra} more fields")));
    }
    fields
}

/// The text of `bytes`, cut to `limit` bytes before it is copied.
fn lossy_bounded(bytes: &[u8], limit: usize) -> String {
    if bytes.len() <= limit {
        return String::from_utf8_lossy(bytes).into_owned();
    }
    let head = String::from_utf8_lossy(&bytes[..limit]);
    cut_note(&head, bytes.len())
}

fn cut_note(head: &str, total: usize) -> String {
    format!("{head}... [cut: {total} bytes]")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_entry(
        entry_id: &str,
        fields: &HashMap<String, Value>,
    ) -> Result<QueueMessage, EntryError> {
        check_map(entry_id, fields).map(QueueMessage::from)
    }

    fn fields(pairs: &[(&str, &str)]) -> HashMap<String, Value> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), Value::BulkString(v.as_bytes().to_vec())))
            .collect()
    }

    fn good() -> Vec<(&'static str, &'static str)> {
        vec![
            ("messageId", "msg_1"),
            ("contactId", "c1"),
            ("content", "hi"),
            ("timestamp", "1704931200000"),
            ("direction", "incoming"),
            ("fromMe", "false"),
        ]
    }

    #[test]
    fn parses_a_good_entry() {
        let m = parse_entry("1-0", &fields(&good())).expect("valid");
        assert_eq!(m.message_id, "msg_1");
        assert_eq!(m.timestamp, 1_704_931_200_000);
        assert_eq!(m.direction, Direction::Incoming);
        assert!(!m.from_me);
    }

    fn with(field: &str, value: &str) -> HashMap<String, Value> {
        let mut f = fields(&good());
        f.insert(field.into(), Value::BulkString(value.as_bytes().to_vec()));
        f
    }

    #[test]
    fn each_bad_field_is_named() {
        let cases = [
            ("timestamp", "soon", "timestamp"),
            ("timestamp", "-5", "timestamp"),
            ("direction", "sideways", "direction"),
            ("fromMe", "yes", "fromMe"),
            ("messageId", "", "messageId"),
            ("contactId", "a b", "contactId"),
        ];
        for (field, value, named) in cases {
            let err = parse_entry("7-1", &with(field, value)).expect_err(value);
            assert_eq!(err.field, named);
            assert!(err.to_string().starts_with("entry 7-1: field"), "{err}");
        }
    }

    #[test]
    fn missing_field_is_named() {
        let mut f = fields(&good());
        f.remove("contactId");
        let err = parse_entry("3-0", &f).expect_err("missing");
        assert_eq!(err.to_string(), "entry 3-0: field `contactId` is missing");
    }

    #[test]
    fn oversized_and_invalid_utf8_content_rejected() {
        let big = "x".repeat(MAX_CONTENT_BYTES + 1);
        assert_eq!(
            parse_entry("1-1", &with("content", &big))
                .expect_err("big")
                .field,
            "content"
        );
        let mut f = fields(&good());
        f.insert("content".into(), Value::BulkString(vec![0xff, 0xfe]));
        let err = parse_entry("1-2", &f).expect_err("utf8");
        assert!(err.problem.contains("UTF-8"));
    }

    /// An entry of the original gateway: one `payload` field of JSON.
    fn payload(json: &str) -> HashMap<String, Value> {
        fields(&[("payload", json)])
    }

    const GATEWAY: &str = r#"{"messageId":"false_123456789@c.us_3EB0A1","contactId":"123456789@c.us","contactName":"Ann","content":"hi there","timestamp":1704931200000,"hasMedia":false,"type":"chat"}"#;

    #[test]
    fn the_original_gateways_payload_form_is_an_incoming_message() {
        let m = parse_entry("1-0", &payload(GATEWAY)).expect("valid");
        assert_eq!(m.message_id, "false_123456789@c.us_3EB0A1");
        assert_eq!(m.contact_id, "123456789@c.us");
        assert_eq!(m.content, "hi there");
        assert_eq!(m.timestamp, 1_704_931_200_000);
        assert_eq!(m.direction, Direction::Incoming);
        assert!(!m.from_me);
        // The raw reader's path agrees.
        let pairs = [(&b"payload"[..], GATEWAY.as_bytes())];
        assert_eq!(
            check_pairs("1-0", &pairs).map(QueueMessage::from),
            Ok(m.clone())
        );
        // A timestamp as text, and the seed's optional keys, are read the same way.
        let text_ts = GATEWAY.replace("1704931200000", "\"1704931200000\"");
        assert_eq!(parse_entry("1-0", &payload(&text_ts)), Ok(m));
        let outgoing = r#"{"messageId":"m","contactId":"c","content":"x","timestamp":5,"direction":"outgoing","fromMe":true}"#;
        let o = parse_entry("1-1", &payload(outgoing)).expect("outgoing");
        assert!(o.from_me && o.direction == Direction::Outgoing);
    }

    #[test]
    fn the_payload_form_is_as_strict_as_the_seeds() {
        let cases = [
            ("{", "is not a JSON object"),
            ("[1,2]", "is not a JSON object"),
            (
                r#"{"contactId":"c","content":"x","timestamp":5}"#,
                "`messageId` is missing",
            ),
            (
                r#"{"messageId":"m","contactId":"a b","content":"x","timestamp":5}"#,
                "`contactId` contains whitespace",
            ),
            (
                r#"{"messageId":"m","contactId":"ALL","content":"x","timestamp":5}"#,
                "`contactId` is `ALL`",
            ),
            (
                r#"{"messageId":"m","contactId":"c","content":5,"timestamp":5}"#,
                "`content` is a number",
            ),
            (
                r#"{"messageId":"m","contactId":"c","content":"x","timestamp":-5}"#,
                "`timestamp` is \"-5\"",
            ),
            (
                r#"{"messageId":"m","contactId":"c","content":"x","timestamp":1.5}"#,
                "`timestamp` is \"1.5\"",
            ),
            (
                r#"{"messageId":"m","contactId":"c","content":"x","timestamp":true}"#,
                "`timestamp` is a boolean",
            ),
            (
                r#"{"messageId":"m","contactId":"c","content":"x","timestamp":5,"fromMe":true}"#,
                "`fromMe` is true on an incoming",
            ),
            (
                r#"{"messageId":"m","contactId":"c","content":"x","timestamp":5,"hasMedia":"no"}"#,
                "`hasMedia` is a string",
            ),
            (
                r#"{"messageId":"m","contactId":"c","content":"x","timestamp":5,"contactName":[]}"#,
                "`contactName` is an array",
            ),
        ];
        for (json, problem) in cases {
            let err = parse_entry("8-0", &payload(json)).expect_err(json);
            assert_eq!(err.field, PAYLOAD, "{json}");
            assert!(err.problem.starts_with(problem), "{json}: {err}");
        }
        let big = format!(
            r#"{{"messageId":"m","contactId":"c","content":"{}","timestamp":5}}"#,
            "y".repeat(MAX_CONTENT_BYTES + 1)
        );
        let err = parse_entry("8-1", &payload(&big)).expect_err("big");
        assert!(err.problem.starts_with("`content` is 65537 bytes"), "{err}");
        let huge = "z".repeat(MAX_PAYLOAD_BYTES + 1);
        let err = parse_entry("8-2", &payload(&huge)).expect_err("huge");
        assert!(err.problem.len() <= MAX_PROBLEM_BYTES, "{err}");
        // The seed's fields win over a payload: a gateway writing both is read as the seed.
        let mut both = fields(&good());
        both.insert("payload".into(), Value::BulkString(b"{".to_vec()));
        assert!(parse_entry("8-3", &both).is_ok());
    }

    #[test]
    fn incoming_from_me_is_inconsistent() {
        let err = parse_entry("1-3", &with("fromMe", "true")).expect_err("inconsistent");
        assert_eq!(err.field, "fromMe");
    }

    // Property tests: field lists as a gateway, a stranger or a broken writer may
    // leave them (missing, repeated, nil, not UTF-8, 60 KB long). The checks never
    // panic, never copy a value out of the reply, keep their reasons short whatever
    // the value's size, and read a list of pairs exactly as the map redis-rs builds.

    use proptest::prelude::*;
    use proptest::sample::Index;

    use super::strategies::{good_value, value};

    const NAMES: [&str; 6] = [
        "messageId",
        "contactId",
        "content",
        "timestamp",
        "direction",
        "fromMe",
    ];

    /// Longest reason accepted for any value: a bad value is quoted clipped to 40
    /// characters, each at most 10 bytes once escaped.
    const MAX_PROBLEM_BYTES: usize = 512;

    /// Few cases, no regression files: these run with every `cargo test` on a
    /// small machine; a failure found is kept as a plain test instead.
    fn config() -> ProptestConfig {
        ProptestConfig {
            cases: 256,
            failure_persistence: None,
            ..ProptestConfig::default()
        }
    }

    /// A field name: one of the six, a near miss, or bytes that are not UTF-8.
    fn name() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            6 => prop::sample::select(NAMES.to_vec()).prop_map(|n| n.as_bytes().to_vec()),
            1 => prop::sample::select(vec!["ContactId", "content ", "from_me", "", "x"])
                .prop_map(|n| n.as_bytes().to_vec()),
            1 => prop::sample::select(NAMES.to_vec()).prop_map(|n| {
                let mut n = n.as_bytes().to_vec();
                n.push(0xff);
                n
            }),
        ]
    }

    fn pair() -> impl Strategy<Value = (Vec<u8>, Vec<u8>)> {
        name().prop_flat_map(|n| {
            let field = NAMES.iter().find(|f| f.as_bytes() == n.as_slice()).copied();
            (Just(n), value(field.unwrap_or("content")))
        })
    }

    /// An entry's fields: often the six good ones to start with, then pairs put in
    /// anywhere (a repeated name among them) and some taken out.
    fn field_list() -> impl Strategy<Value = Vec<(Vec<u8>, Vec<u8>)>> {
        let base = NAMES
            .iter()
            .map(|n| (Just(n.as_bytes().to_vec()), good_value(n)))
            .collect::<Vec<_>>();
        (
            prop::option::weighted(0.7, base),
            prop::collection::vec((any::<Index>(), pair()), 0..6),
            prop::collection::vec(any::<Index>(), 0..2),
        )
            .prop_map(|(base, extra, removed)| {
                let mut list = base.unwrap_or_default();
                for (at, p) in extra {
                    list.insert(at.index(list.len() + 1), p);
                }
                for at in removed {
                    if !list.is_empty() {
                        list.remove(at.index(list.len()));
                    }
                }
                list
            })
    }

    /// The map redis-rs's path builds from the same pairs (`worker::entries`):
    /// names that are not UTF-8 dropped, a repeated name's last value kept.
    fn as_map(pairs: &[(Vec<u8>, Vec<u8>)]) -> HashMap<String, Value> {
        pairs
            .iter()
            .filter_map(|(k, v)| {
                let k = String::from_utf8(k.clone()).ok()?;
                Some((k, Value::BulkString(v.clone())))
            })
            .collect()
    }

    /// What must hold of any verdict on `pairs`.
    fn check_verdict(
        entry_id: &str,
        pairs: &[(&[u8], &[u8])],
        verdict: &Result<CheckedEntry<'_>, EntryError>,
    ) -> Result<(), TestCaseError> {
        let last = |name: &str| {
            pairs
                .iter()
                .rev()
                .find(|(k, _)| *k == name.as_bytes())
                .map(|(_, v)| *v)
        };
        match verdict {
            Ok(c) => {
                for (name, text) in [
                    ("messageId", &c.message_id),
                    ("contactId", &c.contact_id),
                    ("content", &c.content),
                ] {
                    prop_assert!(
                        matches!(text, Cow::Borrowed(_)),
                        "`{}` was copied out of the reply",
                        name
                    );
                    prop_assert_eq!(Some(text.as_bytes()), last(name), "`{}`", name);
                }
                for id in [&c.message_id, &c.contact_id] {
                    prop_assert!(!id.is_empty());
                    prop_assert!(!id.chars().any(|ch| ch.is_control() || ch.is_whitespace()));
                }
                prop_assert!(c.content.len() <= MAX_CONTENT_BYTES);
                prop_assert!(c.timestamp > 0);
                prop_assert!(!(c.from_me && c.direction == Direction::Incoming));
            }
            Err(e) => {
                prop_assert!(NAMES.contains(&e.field), "{:?}", e);
                prop_assert_eq!(&e.entry_id, entry_id);
                prop_assert!(
                    e.problem.len() <= MAX_PROBLEM_BYTES,
                    "a reason of {} bytes: {:.80}",
                    e.problem.len(),
                    e.problem
                );
                let prefix = format!("entry {entry_id}: field `{}` ", e.field);
                prop_assert!(e.to_string().starts_with(&prefix), "{}", e);
                if last(e.field).is_none() {
                    prop_assert_eq!(e.problem.as_str(), "is missing");
                }
            }
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(config())]

        #[test]
        fn pairs_and_the_map_get_the_same_verdict(
            entry_id in prop_oneof![Just("1704931200000-0".to_owned()), "\\PC{0,20}"],
            list in field_list(),
        ) {
            let pairs: Vec<(&[u8], &[u8])> =
                list.iter().map(|(k, v)| (k.as_slice(), v.as_slice())).collect();
            let from_pairs = check_pairs(&entry_id, &pairs);
            check_verdict(&entry_id, &pairs, &from_pairs)?;
            let map = as_map(&list);
            prop_assert_eq!(&from_pairs, &check_map(&entry_id, &map));
            // Rendering a rejected entry for the dead-letter stream never panics.
            let _ = raw_pair_fields(&pairs);
            let _ = raw_fields(&map);
        }

        #[test]
        fn values_that_are_not_bulk_strings_are_named_not_a_panic(
            list in field_list(),
            odd in prop::collection::vec(
                (
                    prop::sample::select(NAMES.to_vec()),
                    prop_oneof![
                        Just(Value::Nil),
                        any::<i64>().prop_map(Value::Int),
                        "\\PC{0,12}".prop_map(Value::SimpleString),
                        Just(Value::Array(vec![Value::Nil, Value::Int(1)])),
                        Just(Value::Boolean(true)),
                        Just(Value::Okay),
                    ],
                ),
                1..4,
            ),
        ) {
            let mut map = as_map(&list);
            for (name, v) in odd {
                map.insert(name.to_owned(), v);
            }
            match check_map("1-0", &map) {
                Ok(c) => {
                    prop_assert!(c.timestamp > 0);
                    prop_assert!(c.content.len() <= MAX_CONTENT_BYTES);
                }
                Err(e) => {
                    prop_assert!(NAMES.contains(&e.field), "{:?}", e);
                    prop_assert!(e.problem.len() <= MAX_PROBLEM_BYTES, "{}", e.problem.len());
                }
            }
            let _ = raw_fields(&map);
        }
    }

    #[test]
    fn an_entry_deleted_while_pending_is_rejected_for_its_first_field() {
        // Its fields come back nil: the redis-rs path has an empty map, the raw path
        // no pairs, and both name the first field checked.
        let from_map = check_map("5-0", &HashMap::new()).expect_err("no fields");
        assert_eq!(check_pairs("5-0", &[]), Err(from_map.clone()));
        assert_eq!(
            from_map.to_string(),
            "entry 5-0: field `messageId` is missing"
        );
        let mut nil = fields(&good());
        nil.insert("content".into(), Value::Nil);
        let err = parse_entry("5-1", &nil).expect_err("a nil value");
        assert_eq!(err.field, "content");
        assert!(err.problem.len() <= MAX_PROBLEM_BYTES);
    }

    #[test]
    fn a_long_bad_value_is_quoted_short() {
        for (field, value) in [
            ("timestamp", "9".repeat(60_000)),
            ("direction", "\u{202e}".repeat(20_000)),
            ("fromMe", "\u{7f}".repeat(60_000)),
        ] {
            let err = parse_entry("6-0", &with(field, &value)).expect_err(field);
            assert_eq!(err.field, field);
            assert!(
                err.problem.len() <= MAX_PROBLEM_BYTES,
                "{}",
                err.problem.len()
            );
        }
    }
}

/// Generators of entry field values for property tests, shared by this module's
/// tests and the raw reader's (which stores what they make in a real Redis).
#[cfg(test)]
pub(crate) mod strategies {
    use proptest::prelude::*;
    use proptest::sample::Index;

    use super::MAX_CONTENT_BYTES;

    /// A value that passes the check of field `name`.
    pub(crate) fn good_value(name: &str) -> BoxedStrategy<Vec<u8>> {
        let text = match name {
            "messageId" | "contactId" => "[A-Za-z0-9_.:@-]{1,24}",
            "content" => "\\PC{0,40}",
            "timestamp" => "[1-9][0-9]{0,12}",
            "direction" => "incoming|outgoing",
            _ => "false",
        };
        text.prop_map(String::into_bytes).boxed()
    }

    /// Values 60 KB long and just past the content limit, of one- to four-byte
    /// characters and control characters.
    fn long_value() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            Just("x".repeat(60_000)),
            Just("é".repeat(30_000)),
            Just("\u{202e}\u{1b}".repeat(15_000)),
            Just("🙂".repeat(MAX_CONTENT_BYTES / 4 + 1)),
            Just("y".repeat(MAX_CONTENT_BYTES + 1)),
        ]
        .prop_map(String::into_bytes)
    }

    /// Any value for field `name`: good, text, bytes that are not UTF-8, long, empty.
    pub(crate) fn value(name: &str) -> BoxedStrategy<Vec<u8>> {
        prop_oneof![
            4 => good_value(name),
            1 => "\\PC{0,12}".prop_map(String::into_bytes),
            1 => (good_value(name), any::<Index>(), 0x80..=0xffu8).prop_map(|(mut v, i, b)| {
                v.insert(i.index(v.len() + 1), b);
                v
            }),
            1 => long_value(),
            1 => Just(Vec::new()),
        ]
        .boxed()
    }
}
