//! Voice notes and photos through a real worker: its settings, the bytes at
//! `MEDIA:{messageId}` and the entry naming them as a gateway writes them, the
//! verdict once it is final, and the contact's history.

use std::time::Duration;

use redis::AsyncCommands;
use secondme::config::SleepSetting;
use secondme::schema::{self, MessageEvent, QueueMessage, media};
use secondme::worker::WorkerConfig;

use super::{Harness, eventually, handled};

/// Worker `consumer`'s settings: never asleep, reading every 200 ms, answering
/// 100 ms after a burst.
pub fn worker_config(h: &Harness, consumer: &str) -> WorkerConfig {
    let mut cfg = WorkerConfig::from_config(&h.config(consumer));
    cfg.sleep_hours = SleepSetting::Off;
    cfg.block = Duration::from_millis(200);
    cfg.burst_quiet = Duration::from_millis(100);
    cfg
}

/// [`worker_config`] that takes back an entry idle 500 ms, looking every 200 ms:
/// a note left for later is tried again within a second.
pub fn quick_claims(h: &Harness, consumer: &str) -> WorkerConfig {
    let mut cfg = worker_config(h, consumer);
    cfg.claim_every = Duration::from_millis(200);
    cfg.claim_idle = Duration::from_millis(500);
    cfg
}

/// Writes `message` as a gateway writes a voice note or a photo: its bytes at
/// `MEDIA:{messageId}` first, then [`send_entry`].
pub async fn send(
    h: &mut Harness,
    message: &QueueMessage,
    mime: &str,
    seconds: Option<u32>,
    bytes: &[u8],
) {
    let _: () = redis::cmd("SET")
        .arg(schema::media_key(&message.message_id))
        .arg(bytes)
        .arg("PX")
        .arg(media::MEDIA_TTL_MS)
        .query_async(&mut h.con)
        .await
        .expect("SET media");
    send_entry(h, message, mime, seconds).await;
}

/// Writes the entry of `message` naming its medium: the six fields every entry
/// has, then `mediaType` and, when known, `mediaSeconds`.
pub async fn send_entry(h: &mut Harness, message: &QueueMessage, mime: &str, seconds: Option<u32>) {
    let seed = message.fields();
    let mut fields: Vec<(&str, &[u8])> = seed
        .iter()
        .map(|(name, value)| (*name, value.as_bytes()))
        .collect();
    fields.push((media::MEDIA_TYPE_FIELD, mime.as_bytes()));
    let seconds = seconds.map(|s| s.to_string());
    if let Some(seconds) = &seconds {
        fields.push((media::MEDIA_SECONDS_FIELD, seconds.as_bytes()));
    }
    h.send_raw(&fields).await;
}

/// How `id` was handled once decided for good (past `seen`), if within `within`.
pub async fn handled_within(h: &Harness, id: &str, within: Duration) -> Option<String> {
    eventually(within, || {
        let mut con = h.con.clone();
        async move { handled(&mut con, id).await.filter(|s| s != "seen") }
    })
    .await
}

/// How `id` was handled once decided for good, which it must be within 15 s.
pub async fn handled_soon(h: &Harness, id: &str) -> String {
    handled_within(h, id, Duration::from_secs(15))
        .await
        .unwrap_or_else(|| panic!("{id} was not handled in time"))
}

/// The contact's history, newest first, as events.
pub async fn history(h: &mut Harness, contact: &str) -> Vec<MessageEvent> {
    let raw: Vec<String> = h
        .con
        .lrange(schema::history_key(contact), 0, -1)
        .await
        .expect("LRANGE");
    raw.iter()
        .map(|r| serde_json::from_str(r).expect("a history entry is an event"))
        .collect()
}
