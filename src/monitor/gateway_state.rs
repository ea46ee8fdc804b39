//! The WhatsApp gateway's state in the control room: `GATEWAY:{userId}`, read
//! every second (a gateway in another process writes it), told in the event log
//! when it changes.

use std::time::Duration;

use redis::AsyncCommands;
use secondme_ui::{Event, LogEntry, LogKind};
use tokio::sync::mpsc;

use crate::bridge::whatsapp::status::{self, GatewayStatus};
use crate::store;

/// Polls the gateway's state and logs each change ("WhatsApp: no network ...").
pub async fn watch(
    mut con: redis::aio::ConnectionManager,
    user_id: String,
    tx: mpsc::UnboundedSender<Event>,
) {
    let key = status::key(&user_id);
    let mut last: Option<GatewayStatus> = None;
    loop {
        let read: redis::RedisResult<Option<String>> = con.get(&key).await;
        let parsed = read
            .ok()
            .flatten()
            .and_then(|json| serde_json::from_str::<GatewayStatus>(&json).ok());
        if let Some(s) = parsed {
            // The gateway rewrites an unchanged state every 30 s: only a change is news.
            if last.as_ref() != Some(&s) {
                let text = format!("WhatsApp: {}", s.line(store::now_ms()));
                let entry = LogEntry {
                    at_ms: store::now_ms(),
                    kind: LogKind::Connection,
                    text: secondme_ui::sanitize::clean(&text, 400),
                };
                if tx.send(Event::Log(entry)).is_err() {
                    return;
                }
                last = Some(s);
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}
