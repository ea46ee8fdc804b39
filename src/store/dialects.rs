//! The forms other programs sharing this Redis write beside the seed's (the
//! original TypeScript gateway and other dashboards): parsed here, and named by a
//! startup check so the user sees what SecondMe is reading. Every read here
//! tolerates a key of any type: another program's key never stops SecondMe.

use std::collections::HashMap;

use crate::connection::Con;
use serde::Serialize;
use serde_json::Value;

use crate::schema::{self, PauseReason, dialect};

/// The original gateway's session (`SESSION:whatsapp:info`), as far as it says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GatewaySession {
    /// Its `state` (e.g. `connected`, `qr`, `disconnected`).
    pub state: String,
    /// When the session was created, ms.
    pub created_at: Option<i64>,
    /// When the gateway last verified it, ms.
    pub last_verified_at: Option<i64>,
    /// When the gateway expects it to expire, ms.
    pub estimated_expiry_at: Option<i64>,
    /// The gateway says the session needs a new login soon.
    pub needs_refresh: bool,
}

/// Parses `SESSION:whatsapp:info`; times may be ms or ISO 8601 text.
pub fn parse_session_info(json: &str) -> Result<GatewaySession, String> {
    let v: Value = serde_json::from_str(json).map_err(|e| format!("not JSON: {e}"))?;
    let obj = v.as_object().ok_or("not a JSON object")?;
    Ok(GatewaySession {
        state: obj
            .get("state")
            .and_then(Value::as_str)
            .unwrap_or("unknown")
            .chars()
            .take(64)
            .collect(),
        created_at: obj.get("createdAt").and_then(time_ms),
        last_verified_at: obj.get("lastVerifiedAt").and_then(time_ms),
        estimated_expiry_at: obj.get("estimatedExpiryAt").and_then(time_ms),
        needs_refresh: obj
            .get("needsRefresh")
            .and_then(Value::as_bool)
            .unwrap_or(false),
    })
}

/// A time as another program writes it: ms, digits, or ISO 8601 UTC text
/// (`2026-11-02T10:20:30.123Z`, what JavaScript's `toISOString` gives).
pub fn time_ms(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)),
        Value::String(s) => s.parse().ok().or_else(|| iso_ms(s)),
        _ => None,
    }
}

/// ISO 8601 `YYYY-MM-DDTHH:MM:SS[.fff]Z` (or `+00:00`) to Unix ms.
fn iso_ms(s: &str) -> Option<i64> {
    let s = s.strip_suffix('Z').or_else(|| s.strip_suffix("+00:00"))?;
    let (date, time) = s.split_once('T')?;
    let mut d = date.splitn(3, '-').map(|p| p.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let (hms, frac) = time.split_once('.').unwrap_or((time, "0"));
    let mut t = hms.splitn(3, ':').map(|p| p.parse::<i64>().ok());
    let (h, min, sec) = (t.next()??, t.next()??, t.next()??);
    if !(1..=12).contains(&m) || !(1..=31).contains(&day) || h > 23 || min > 59 || sec > 60 {
        return None;
    }
    let ms: i64 = format!("{frac:0<3}").get(..3)?.parse().ok()?;
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(((days * 24 + h) * 60 + min) * 60_000 + sec * 1000 + ms)
}

/// A `PAUSE:{contactId}` value of the original gateway: `{pausedAt, reason}`,
/// without expiry (paused until resumed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonPause {
    /// When it was paused, ms.
    pub paused_at: Option<i64>,
    /// Its reason (`fromMe` is a takeover); none when not given.
    pub reason: Option<PauseReason>,
}

/// Parses a pause value written as JSON; `None` for anything else.
pub fn parse_json_pause(value: &str) -> Option<JsonPause> {
    let v: Value = serde_json::from_str(value).ok()?;
    let obj = v.as_object()?;
    Some(JsonPause {
        paused_at: obj.get("pausedAt").and_then(time_ms),
        reason: obj
            .get("reason")
            .and_then(Value::as_str)
            .map(PauseReason::parse),
    })
}

/// Most names read from `CONTACTS:list`.
const MAX_NAMES: isize = 10_000;

/// Contact names from `CONTACTS:list`, whatever its type: a hash (contact id to a
/// name or to a JSON object with one), a string of JSON (an object of the same, or
/// an array of contacts), or a list, set or sorted set of JSON contacts
/// (`{id|contactId, name|contactName}`). Empty when the key is absent.
pub async fn contact_names(con: &mut Con) -> Result<HashMap<String, String>, String> {
    let key = dialect::contacts_list();
    let kind = key_type(con, key).await.map_err(|e| e.to_string())?;
    let q = |cmd: &mut redis::Cmd| cmd.clone();
    let values: Vec<String> = match kind.as_str() {
        "none" => return Ok(HashMap::new()),
        "hash" => {
            let map: HashMap<String, String> = q(redis::cmd("HGETALL").arg(key))
                .query_async(con)
                .await
                .map_err(|e| e.to_string())?;
            return Ok(map
                .into_iter()
                .take(MAX_NAMES as usize)
                .filter_map(|(id, v)| Some((id, name_of(&v)?)))
                .collect());
        }
        "string" => {
            let text: String = q(redis::cmd("GET").arg(key))
                .query_async(con)
                .await
                .map_err(|e| e.to_string())?;
            return Ok(names_from_json(&text));
        }
        "list" => q(redis::cmd("LRANGE").arg(key).arg(0).arg(MAX_NAMES - 1)),
        "set" => q(redis::cmd("SRANDMEMBER").arg(key).arg(MAX_NAMES)),
        "zset" => q(redis::cmd("ZRANGE").arg(key).arg(0).arg(MAX_NAMES - 1)),
        other => return Err(format!("{key} is a {other}: no names read")),
    }
    .query_async(con)
    .await
    .map_err(|e| e.to_string())?;
    Ok(values
        .iter()
        .filter_map(|v| serde_json::from_str::<Value>(v).ok())
        .filter_map(|v| contact_of(&v))
        .collect())
}

/// A name given as plain text or as JSON holding one.
fn name_of(v: &str) -> Option<String> {
    match serde_json::from_str::<Value>(v) {
        Ok(Value::Object(o)) => o
            .get("name")
            .or_else(|| o.get("contactName"))
            .and_then(Value::as_str)
            .map(str::to_owned),
        Ok(Value::String(s)) => Some(s),
        _ => Some(v.to_owned()).filter(|s| !s.trim().is_empty()),
    }
}

/// `(id, name)` of a JSON contact.
fn contact_of(v: &Value) -> Option<(String, String)> {
    let o = v.as_object()?;
    let id = o.get("id").or_else(|| o.get("contactId"))?.as_str()?;
    let name = o
        .get("name")
        .or_else(|| o.get("contactName"))
        .or_else(|| o.get("pushname"))?
        .as_str()?;
    Some((id.to_owned(), name.to_owned()))
}

/// Names from a JSON object (id to name or contact) or array of contacts.
pub fn names_from_json(text: &str) -> HashMap<String, String> {
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(o)) => o
            .iter()
            .filter_map(|(id, v)| match v {
                Value::String(name) => Some((id.clone(), name.clone())),
                other => contact_of(other)
                    .map(|(_, name)| (id.clone(), name))
                    .or_else(|| {
                        let name = other.get("name")?.as_str()?;
                        Some((id.clone(), name.to_owned()))
                    }),
            })
            .collect(),
        Ok(Value::Array(items)) => items.iter().filter_map(contact_of).collect(),
        _ => HashMap::new(),
    }
}

/// `TYPE key`.
pub async fn key_type(con: &mut Con, key: &str) -> redis::RedisResult<String> {
    redis::cmd("TYPE").arg(key).query_async(con).await
}

/// Most contacts whose keys the startup check looks at.
const CHECKED_CONTACTS: isize = 200;

/// The dialects found in this Redis, each as a sentence for `status`, the worker's
/// log and the control room. Reads a few keys; never fails (an unreadable key is
/// itself reported).
pub async fn detect(con: &mut Con, user_id: &str) -> Vec<String> {
    let mut found = Vec::new();
    if let Ok(n) = payload_entries(con).await
        && n > 0
    {
        found.push(format!(
            "{}: {n} of the newest entries are one `payload` JSON field (the original \
             gateway's form): read as incoming messages",
            schema::queue_messages()
        ));
    }
    let session = schema::session_key(user_id);
    match key_type(con, &session).await.as_deref() {
        Ok("none" | "hash") | Err(_) => {}
        Ok(other) => found.push(format!(
            "{session} is a {other}, not the seed's hash: not read as a session"
        )),
    }
    if let Ok("string") = key_type(con, dialect::session_info()).await.as_deref() {
        found.push(format!(
            "{}: the original gateway's session (JSON), shown as the session state",
            dialect::session_info()
        ));
    }
    match key_type(con, dialect::contacts_list()).await.as_deref() {
        Ok("none") | Err(_) => {}
        Ok(kind) => found.push(format!(
            "{} ({kind}): contact names shown in the control room",
            dialect::contacts_list()
        )),
    }
    if let Ok(kind) = key_type(con, dialect::config_sleep_hours()).await
        && kind != "none"
    {
        found.push(format!(
            "{} is set by another dashboard: not obeyed (SecondMe's sleep hours come \
             from the sleep_hours setting or the graph)",
            dialect::config_sleep_hours()
        ));
    }
    found.extend(contact_keys(con).await);
    found
}

/// How many of the newest `QUEUE:messages` entries are of the `payload` form.
async fn payload_entries(con: &mut Con) -> redis::RedisResult<usize> {
    let reply: redis::streams::StreamRangeReply = redis::cmd("XREVRANGE")
        .arg(schema::queue_messages())
        .arg("+")
        .arg("-")
        .arg("COUNT")
        .arg(20)
        .query_async(con)
        .await?;
    Ok(reply
        .ids
        .iter()
        .filter(|e| e.map.contains_key(dialect::PAYLOAD_FIELD) && !e.map.contains_key("messageId"))
        .count())
}

/// The placeholder for a contact id in the keys an operator message names.
const CONTACT_ID: &str = "{contactId}";

/// Histories and pauses of the most recent contacts kept in other programs' forms.
async fn contact_keys(con: &mut Con) -> Vec<String> {
    let ids: Vec<String> = redis::cmd("ZREVRANGE")
        .arg(schema::contacts_activity())
        .arg(0)
        .arg(CHECKED_CONTACTS - 1)
        .query_async(con)
        .await
        .unwrap_or_default();
    if ids.is_empty() {
        return Vec::new();
    }
    let mut pipe = redis::pipe();
    pipe.ignore_errors();
    for id in &ids {
        pipe.cmd("TYPE").arg(schema::history_key(id));
        pipe.cmd("GET").arg(schema::pause_key(id));
    }
    let replies: Vec<redis::RedisResult<Option<String>>> =
        pipe.query_async(con).await.unwrap_or_default();
    let (mut histories, mut pauses) = (HashMap::<String, usize>::new(), 0);
    for pair in replies.chunks(2) {
        if let Some(Ok(Some(kind))) = pair.first()
            && kind != "list"
            && kind != "none"
        {
            *histories.entry(kind.clone()).or_default() += 1;
        }
        if let Some(Ok(Some(v))) = pair.get(1)
            && parse_json_pause(v).is_some()
        {
            pauses += 1;
        }
    }
    let mut out: Vec<String> = histories
        .into_iter()
        .map(|(kind, n)| {
            format!(
                "{} kept as a {kind} by another program ({n} contacts): \
                 read and left alone; SecondMe keeps its own under {}",
                schema::history_key(CONTACT_ID),
                schema::own_history_key(CONTACT_ID)
            )
        })
        .collect();
    out.sort();
    if pauses > 0 {
        out.push(format!(
            "{} as JSON {{pausedAt, reason}} without expiry ({pauses} \
             contacts): paused until resumed",
            schema::pause_key(CONTACT_ID)
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_times_and_ms_are_read() {
        assert_eq!(
            time_ms(&Value::from("2024-01-11T00:00:00.000Z")),
            Some(1_704_931_200_000)
        );
        assert_eq!(
            time_ms(&Value::from("2024-01-11T00:00:01.5Z")),
            Some(1_704_931_201_500)
        );
        assert_eq!(
            time_ms(&Value::from(1_704_931_200_000i64)),
            Some(1_704_931_200_000)
        );
        assert_eq!(
            time_ms(&Value::from("1704931200000")),
            Some(1_704_931_200_000)
        );
        for bad in ["yesterday", "2024-13-01T00:00:00Z", "2024-01-01 00:00:00"] {
            assert_eq!(time_ms(&Value::from(bad)), None, "{bad}");
        }
    }

    #[test]
    fn the_gateways_session_and_pauses_are_parsed() {
        let s = parse_session_info(
            r#"{"createdAt":"2024-01-11T00:00:00.000Z","lastVerifiedAt":1704931200000,"estimatedExpiryAt":"2024-01-12T00:00:00.000Z","state":"connected","needsRefresh":true}"#,
        )
        .expect("parsed");
        assert_eq!(s.state, "connected");
        assert_eq!(s.created_at, Some(1_704_931_200_000));
        assert_eq!(s.estimated_expiry_at, Some(1_704_931_200_000 + 86_400_000));
        assert!(s.needs_refresh);
        assert!(parse_session_info("[1]").is_err());

        let p = parse_json_pause(r#"{"pausedAt":1704931200000,"reason":"fromMe"}"#)
            .expect("a JSON pause");
        assert_eq!(p.paused_at, Some(1_704_931_200_000));
        assert_eq!(p.reason, Some(PauseReason::Takeover));
        assert_eq!(parse_json_pause("1704931200000"), None);
    }

    #[test]
    fn names_are_read_from_every_json_shape() {
        let from_object = names_from_json(r#"{"1@c.us":"Ann","2@c.us":{"name":"Bob"}}"#);
        assert_eq!(from_object.get("1@c.us").map(String::as_str), Some("Ann"));
        assert_eq!(from_object.get("2@c.us").map(String::as_str), Some("Bob"));
        let from_array = names_from_json(
            r#"[{"id":"1@c.us","name":"Ann"},{"contactId":"2@c.us","contactName":"Bob"},7]"#,
        );
        assert_eq!(from_array.len(), 2);
        assert_eq!(name_of(r#"{"contactName":"Cy"}"#).as_deref(), Some("Cy"));
        assert_eq!(name_of("Dee").as_deref(), Some("Dee"));
    }
}
