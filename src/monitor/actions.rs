//! The operator's actions carried out in Redis at once; the outcome goes to the event
//! log, unless the action's own `events:pause` message will say it (with the
//! contact's name) a moment later.

use redis::aio::ConnectionManager;
use secondme_ui::{Action, Event, LogEntry, LogKind};
use tokio::sync::mpsc::UnboundedSender;

use crate::bridge::whatsapp::status;
use crate::graph;
use crate::schema::PauseReason;
use crate::store::{self, control, optin};

/// Runs one action of user `user_id`'s control room in the background and
/// reports what happened.
pub fn spawn(con: &ConnectionManager, user_id: &str, action: Action, tx: &UnboundedSender<Event>) {
    let mut con = con.clone();
    let tx = tx.clone();
    let user_id = user_id.to_owned();
    tokio::spawn(async move {
        let (kind, text) = match execute(&mut con, &user_id, &action).await {
            Ok(Some(text)) => (LogKind::Info, text),
            Ok(None) => return,
            Err(e) => (LogKind::Connection, format!("failed: {e:#}")),
        };
        let _ = tx.send(Event::Log(LogEntry {
            at_ms: store::now_ms(),
            kind,
            text,
        }));
    });
}

async fn execute(
    con: &mut ConnectionManager,
    user_id: &str,
    action: &Action,
) -> anyhow::Result<Option<String>> {
    Ok(match action {
        Action::Pause {
            contact_id,
            duration_ms,
        } => {
            control::pause(con, contact_id, *duration_ms, PauseReason::Manual).await?;
            None
        }
        Action::Resume { contact_id } => {
            let was = control::resume(con, contact_id).await?;
            (!was).then(|| format!("{contact_id} was not paused"))
        }
        Action::SetEnabled {
            contact_id,
            enabled,
        } => {
            optin::set_enabled(con, std::slice::from_ref(contact_id), *enabled).await?;
            // The opt-in set is what the worker obeys; the graph mirrors it when present.
            let mirrored = if graph::available(con).await {
                match graph::set_bot_enabled(con, contact_id, *enabled).await {
                    Ok(true) => " (graph updated)",
                    Ok(false) => " (not in the graph)",
                    Err(e) => {
                        tracing::warn!("graph botEnabled for {contact_id}: {e}");
                        " (graph not updated)"
                    }
                }
            } else {
                ""
            };
            Some(format!(
                "twin {} for {contact_id}{mirrored}",
                if *enabled { "enabled" } else { "disabled" }
            ))
        }
        Action::KillSwitch { on } => {
            control::kill_switch(con, *on).await?;
            None
        }
        Action::RequestNewCodes => {
            request_new_codes(con, user_id).await?;
            Some("asked the WhatsApp gateway for new login codes".to_string())
        }
        Action::Quit => None,
    })
}

/// How long a request for new codes waits for a gateway to take it, s: one
/// started within that time still obeys it, a later one starts afresh.
pub const NEW_CODES_TTL_S: u64 = 300;

/// `SET GATEWAYREQ:{userId} new_codes EX 300`: the gateway, waiting after its
/// codes ran out, starts a new round of login codes when it sees it.
async fn request_new_codes(con: &mut ConnectionManager, user_id: &str) -> redis::RedisResult<()> {
    redis::cmd("SET")
        .arg(crate::schema::gateway_request_key(user_id))
        .arg(status::REQUEST_NEW_CODES)
        .arg("EX")
        .arg(NEW_CODES_TTL_S)
        .query_async(con)
        .await
}
