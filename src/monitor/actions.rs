//! The operator's actions carried out in Redis at once; the outcome goes to the event
//! log, unless the action's own `events:pause` or `events:drafts` message will
//! say it (with the contact's name) a moment later.

use std::sync::Arc;
use std::time::Duration;

use crate::connection::Con;
use secondme_ui::{Action, Event, LogEntry, LogKind};
use tokio::sync::Notify;
use tokio::sync::mpsc::UnboundedSender;

use crate::bridge::whatsapp::status;
use crate::graph;
use crate::schema::PauseReason;
use crate::store::drafts::{self, Decision};
use crate::store::{self, control, optin, unanswered};

/// What the operator's actions work with.
#[derive(Clone)]
pub struct Context {
    /// The control room's connection.
    pub con: Con,
    /// Whose control room it is (`GATEWAYREQ:{userId}`).
    pub user_id: String,
    /// The takeover pause the operator's own message sets (the `takeover` setting).
    pub takeover: Duration,
    /// Where the outcome goes.
    pub events: UnboundedSender<Event>,
    /// Woken after a change to the drafts or modes, so they are read again at once.
    pub drafts_changed: Arc<Notify>,
    /// Woken after a count was dismissed, so the counts are read again at once.
    pub unanswered_changed: Arc<Notify>,
}

/// Runs one action in the background and reports what happened.
pub fn spawn(ctx: &Context, action: Action) {
    let mut ctx = ctx.clone();
    tokio::spawn(async move {
        let outcome = execute(&mut ctx, &action).await;
        if touches_drafts(&action) {
            ctx.drafts_changed.notify_one();
        }
        if matches!(action, Action::DismissUnanswered { .. }) {
            ctx.unanswered_changed.notify_one();
        }
        let (kind, text) = match outcome {
            Ok(Some(text)) => (log_kind(&action), text),
            Ok(None) => return,
            Err(e) => (LogKind::Connection, format!("failed: {e:#}")),
        };
        let _ = ctx.events.send(Event::Log(LogEntry {
            at_ms: store::now_ms(),
            kind,
            text,
        }));
    });
}

fn touches_drafts(action: &Action) -> bool {
    matches!(
        action,
        Action::Approve { .. }
            | Action::Discard { .. }
            | Action::Regenerate { .. }
            | Action::SetMode { .. }
    )
}

fn log_kind(action: &Action) -> LogKind {
    if touches_drafts(action) || matches!(action, Action::SendAsOwner { .. }) {
        LogKind::Draft
    } else {
        LogKind::Info
    }
}

async fn execute(ctx: &mut Context, action: &Action) -> anyhow::Result<Option<String>> {
    let con = &mut ctx.con;
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
            request_new_codes(con, &ctx.user_id).await?;
            Some("asked the WhatsApp gateway for new login codes".to_string())
        }
        Action::Approve {
            contact_id,
            draft_id,
            text,
        } => {
            let decision = drafts::approve(con, draft_id, text.as_deref()).await?;
            gone(decision, contact_id)
        }
        Action::Discard {
            contact_id,
            draft_id,
        } => gone(drafts::discard(con, draft_id).await?, contact_id),
        Action::Regenerate {
            contact_id,
            draft_id,
        } => gone(drafts::regenerate(con, draft_id).await?, contact_id),
        Action::SetMode { contact_id, mode } => {
            let mode = super::drafts::engine_mode(*mode);
            drafts::set_mode(con, std::slice::from_ref(contact_id), mode).await?;
            Some(format!("{contact_id}: {mode} mode"))
        }
        Action::SendAsOwner { contact_id, text } => {
            drafts::send_as_owner_for(con, contact_id, text, ctx.takeover).await?;
            Some(format!("{contact_id}: your message is on its way"))
        }
        Action::DismissUnanswered { contact_id } => {
            let had = unanswered::dismiss(con, contact_id).await?;
            // Gone already: a reply or the person's own message cleared it meanwhile.
            had.then(|| format!("{contact_id}: unanswered messages marked as seen"))
        }
        // The event loop carries these out itself.
        Action::Preview { .. } | Action::Bell | Action::Quit => None,
    })
}

/// What a decision that found its draft gone says: it was decided elsewhere
/// (another control room, the CLI), replaced by a newer one or expired. A
/// decision that was made is said by its `events:drafts` message.
fn gone(decision: Decision, contact_id: &str) -> Option<String> {
    (decision == Decision::Gone).then(|| {
        format!(
            "{contact_id}: draft already decided (elsewhere, replaced or expired): nothing done"
        )
    })
}

/// How long a request for new codes waits for a gateway to take it, s: one
/// started within that time still obeys it, a later one starts afresh.
pub const NEW_CODES_TTL_S: u64 = 300;

/// `SET GATEWAYREQ:{userId} new_codes EX 300`: the gateway, waiting after its
/// codes ran out, starts a new round of login codes when it sees it.
async fn request_new_codes(con: &mut Con, user_id: &str) -> redis::RedisResult<()> {
    redis::cmd("SET")
        .arg(crate::schema::gateway_request_key(user_id))
        .arg(status::REQUEST_NEW_CODES)
        .arg("EX")
        .arg(NEW_CODES_TTL_S)
        .query_async(con)
        .await
}
