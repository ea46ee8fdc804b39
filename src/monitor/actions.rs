//! The operator's actions carried out in Redis at once; the outcome goes to the event
//! log, unless the action's own `events:pause` message will say it (with the
//! contact's name) a moment later.

use redis::aio::ConnectionManager;
use secondme_ui::{Action, Event, LogEntry, LogKind};
use tokio::sync::mpsc::UnboundedSender;

use crate::graph;
use crate::schema::PauseReason;
use crate::store::{self, control, optin};

/// Runs one action in the background and reports what happened.
pub fn spawn(con: &ConnectionManager, action: Action, tx: &UnboundedSender<Event>) {
    let mut con = con.clone();
    let tx = tx.clone();
    tokio::spawn(async move {
        let (kind, text) = match execute(&mut con, &action).await {
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

async fn execute(con: &mut ConnectionManager, action: &Action) -> anyhow::Result<Option<String>> {
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
        Action::Quit => None,
    })
}
