//! `HISTORY:{contactId}`: the conversation a reply engine reads.

use crate::connection::Con;
use anyhow::{Context, Result};
use redis::AsyncCommands;

use crate::conversation::HistoryTurn;
use crate::schema::{self, MessageEvent};

/// The contact's latest `len` messages, oldest first; entries that are not
/// `events:messages` payloads are skipped (the list may hold a foreign writer's).
///
/// When another program keeps `HISTORY:{contactId}` with another type, the
/// twin's own list `SECONDME:history:{contactId}` is read instead; the history
/// is context, not a condition of a reply, so an unreadable one is empty.
/// Connection failures are errors.
pub async fn recent(con: &mut Con, contact_id: &str, len: usize) -> Result<Vec<HistoryTurn>> {
    if len == 0 {
        return Ok(Vec::new());
    }
    let stop = isize::try_from(len).unwrap_or(isize::MAX) - 1;
    let raw: redis::RedisResult<Vec<String>> =
        con.lrange(schema::history_key(contact_id), 0, stop).await;
    match raw {
        Ok(raw) => Ok(turns(&raw)),
        Err(e) if e.code() == Some("WRONGTYPE") => {
            // Another program owns `HISTORY:`: ours is under `SECONDME:history:`.
            let own: Vec<String> = con
                .lrange(schema::own_history_key(contact_id), 0, stop)
                .await
                .unwrap_or_default();
            Ok(turns(&own))
        }
        Err(e) => Err(e).context("cannot read the conversation history"),
    }
}

/// Parses a newest-first `HISTORY` list into turns, oldest first.
pub fn turns(newest_first: &[String]) -> Vec<HistoryTurn> {
    newest_first
        .iter()
        .rev()
        .filter_map(|raw| serde_json::from_str::<MessageEvent>(raw).ok())
        .map(|e| HistoryTurn::from_event(&e))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conversation::Speaker;

    #[test]
    fn newest_first_becomes_oldest_first_and_garbage_is_skipped() {
        let raw = [
            r#"{"messageId":"bot_m1","contactId":"c","content":"hey!","botSent":true,"timestamp":3}"#,
            "not json",
            r#"{"messageId":"m1","contactId":"c","content":"hi","botSent":false,"timestamp":1,"fromMe":false}"#,
            r#"{"messageId":"m0","contactId":"c","content":"yo","botSent":false,"timestamp":0,"fromMe":true}"#,
        ]
        .map(String::from);
        let t = turns(&raw);
        let speakers: Vec<Speaker> = t.iter().map(|t| t.speaker).collect();
        assert_eq!(speakers, [Speaker::Owner, Speaker::Contact, Speaker::Twin]);
        assert_eq!(t[2].text, "hey!");
    }
}
