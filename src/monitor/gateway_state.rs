//! The WhatsApp gateway's state in the control room: `GATEWAY:{userId}`, read
//! every second (a gateway in another process writes it), handed to the status
//! bar and told in the event log when it changes; a key gone (expired: no gateway
//! has refreshed it for 90 s) is handed on too, so the bar does not go stale.

use crate::connection::Con;
use std::time::Duration;

use redis::AsyncCommands;
use secondme_ui::{Event, GatewayPhase, GatewayState, LogEntry, LogKind};
use tokio::sync::mpsc;

use crate::bridge::whatsapp::status::{GatewayStatus, State};
use crate::store;

/// Polls the gateway's state; logs each change ("WhatsApp: no network ...") and
/// sends it to the model.
pub async fn watch(mut con: Con, user_id: String, tx: mpsc::UnboundedSender<Event>) {
    let key = crate::schema::gateway_key(&user_id);
    // The raw value last seen: the gateway rewrites an unchanged state every 30 s,
    // and only a change is news.
    let mut last: Option<Option<String>> = None;
    loop {
        let read: redis::RedisResult<Option<String>> = con.get(&key).await;
        // A failed read says nothing about the gateway: the bar keeps what it shows.
        if let Ok(raw) = read
            && last.as_ref() != Some(&raw)
        {
            let sent = match raw.as_deref().map(serde_json::from_str::<GatewayStatus>) {
                None => report(&tx, None),
                Some(Ok(s)) => report(&tx, Some(&s)),
                Some(Err(e)) => tx
                    .send(Event::Malformed {
                        channel: key.clone(),
                        error: e.to_string(),
                    })
                    .is_ok(),
            };
            if !sent {
                return;
            }
            last = Some(raw);
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Sends a change to the control room; false once it is gone.
fn report(tx: &mpsc::UnboundedSender<Event>, s: Option<&GatewayStatus>) -> bool {
    if let Some(s) = s {
        let text = format!("WhatsApp: {}", s.line(store::now_ms()));
        let entry = LogEntry {
            at_ms: store::now_ms(),
            kind: LogKind::Connection,
            text: secondme_ui::sanitize::clean(&text, 400),
        };
        if tx.send(Event::Log(entry)).is_err() {
            return false;
        }
    }
    tx.send(Event::GatewayState(s.map(to_model))).is_ok()
}

/// The wire form in the model's terms (its text is cleaned by the model's update).
fn to_model(s: &GatewayStatus) -> GatewayState {
    GatewayState {
        phase: phase(s.state),
        since_ms: s.since,
        detail: s.detail.clone(),
        name: s.name.clone(),
        code: s.code.clone(),
        next_try_ms: s.next_try,
        until_ms: s.until,
    }
}

fn phase(state: State) -> GatewayPhase {
    match state {
        State::Standby => GatewayPhase::Standby,
        State::Connecting => GatewayPhase::Connecting,
        State::WaitingForScan => GatewayPhase::WaitingForScan,
        State::PairCode => GatewayPhase::PairCode,
        State::CodesExhausted => GatewayPhase::CodesExhausted,
        State::Connected => GatewayPhase::Connected,
        State::Reconnecting => GatewayPhase::Reconnecting,
        State::NoNetwork => GatewayPhase::NoNetwork,
        State::LoggedOut => GatewayPhase::LoggedOut,
        State::Replaced => GatewayPhase::Replaced,
        State::Banned => GatewayPhase::Banned,
        State::Stopped => GatewayPhase::Stopped,
    }
}
