//! The reply request as the worker builds it, shared by the worker and its
//! previews so a preview asks exactly what the worker would: how much of the
//! conversation goes in, and the request itself.

use crate::connection::Con;
use anyhow::{Context, Result};

use super::learned::{LEARNED_HISTORY, LearnedCache, burst_query};
use super::personas::ContactPersona;
use crate::conversation::HistoryTurn;
use crate::reply::{Reply, ReplyEngine, ReplyRequest};
use crate::schema::QueueMessage;

/// How many turns of `contact_id`'s history a reply is written from: the
/// engine's own need, and at least [`LEARNED_HISTORY`] for a contact that may
/// have learned exchanges (they are matched against the conversation).
pub(super) async fn history_wanted<E: ReplyEngine>(
    engine: &E,
    con: &mut Con,
    learning: &LearnedCache,
    contact_id: &str,
) -> usize {
    let wanted = engine.history_len();
    if learning.may_have_examples(con, contact_id).await {
        wanted.max(LEARNED_HISTORY)
    } else {
        wanted
    }
}

/// Asks `engine` for the reply to `message` in `persona`'s style, with
/// `history` and what was learned from the person's chats bearing on them.
pub(super) async fn ask<E: ReplyEngine>(
    engine: &E,
    con: &mut Con,
    learning: &LearnedCache,
    persona: &ContactPersona,
    message: &QueueMessage,
    history: &[HistoryTurn],
) -> Result<Reply> {
    let query = burst_query(history, message);
    let learned = learning.for_reply(con, &message.contact_id, &query).await;
    engine
        .reply(&ReplyRequest {
            message,
            persona_id: &persona.persona_id,
            persona: &persona.style,
            context: persona.context.as_ref(),
            history,
            learned: learned.as_ref(),
        })
        .await
        .context("the reply engine failed")
}
