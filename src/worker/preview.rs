//! What the twin would answer a contact now, sending nothing: the request built
//! the way the worker builds it (the contact's persona, the conversation so
//! far, what was learned bearing on the message), for `secondme ask` and any
//! other preview. Nothing is written: no reply, no history, no learning.

use crate::connection::Con;
use anyhow::Result;

use super::learned::LearnedCache;
use super::personas::Personas;
use super::request;
use crate::conversation::{HistoryTurn, Speaker};
use crate::learn::LearnConfig;
use crate::reply::{Reply, ReplyEngine};
use crate::schema::{self, Direction, QueueMessage};
use crate::store;

/// The message id a preview gives the text it answers as if the contact wrote it.
pub const ASKED_ID: &str = "preview";

/// A previewed reply and the message it answers.
#[derive(Debug, Clone)]
pub struct Preview {
    /// The message answered: the contact's last, or the text asked about.
    pub message: QueueMessage,
    /// The persona that wrote the reply.
    pub persona_id: String,
    /// The reply the twin would send.
    pub reply: Reply,
}

/// What the twin would answer `contact_id` now: to `text` as if the contact
/// wrote it, else to the contact's last message in the history. `None` when
/// there is no text and the history holds no message of the contact.
pub async fn reply<E: ReplyEngine>(
    con: &mut Con,
    engine: &E,
    personas: &mut Personas,
    learn: &LearnConfig,
    contact_id: &str,
    text: Option<&str>,
) -> Result<Option<Preview>> {
    let learning = LearnedCache::new(learn.clone());
    let wanted = request::history_wanted(engine, con, &learning, contact_id).await;
    let (message, history) = match text {
        Some(t) => (
            asked(contact_id, t),
            store::history::recent(con, contact_id, wanted).await?,
        ),
        None => {
            // The whole kept history, to find the message however many replies followed it.
            let all = store::history::recent(con, contact_id, schema::HISTORY_LEN).await?;
            match last_from_contact(all, contact_id, wanted) {
                Some(found) => found,
                None => return Ok(None),
            }
        }
    };
    let persona = personas.for_contact(con, contact_id).await?;
    let reply = request::ask(engine, con, &learning, &persona, &message, &history).await?;
    Ok(Some(Preview {
        message,
        persona_id: persona.persona_id,
        reply,
    }))
}

/// `text` as the contact's message, arriving now.
fn asked(contact_id: &str, text: &str) -> QueueMessage {
    QueueMessage {
        message_id: ASKED_ID.to_owned(),
        contact_id: contact_id.to_owned(),
        content: text.to_owned(),
        timestamp: store::now_ms(),
        direction: Direction::Incoming,
        from_me: false,
    }
}

/// The contact's last message in `history` with the conversation as it stood
/// when that message came: its last `keep` turns, the message included.
fn last_from_contact(
    mut history: Vec<HistoryTurn>,
    contact_id: &str,
    keep: usize,
) -> Option<(QueueMessage, Vec<HistoryTurn>)> {
    let at = history
        .iter()
        .rposition(|h| h.speaker == Speaker::Contact)?;
    let turn = &history[at];
    let message = QueueMessage {
        message_id: turn.message_id.clone(),
        contact_id: contact_id.to_owned(),
        content: turn.text.clone(),
        timestamp: turn.timestamp,
        direction: Direction::Incoming,
        from_me: false,
    };
    history.truncate(at + 1);
    history.drain(..history.len().saturating_sub(keep));
    Some((message, history))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn turn(id: &str, speaker: Speaker, text: &str) -> HistoryTurn {
        HistoryTurn {
            message_id: id.into(),
            speaker,
            text: text.into(),
            timestamp: 7,
        }
    }

    #[test]
    fn the_last_message_of_the_contact_is_answered_with_the_conversation_up_to_it() {
        let history = vec![
            turn("m1", Speaker::Contact, "dinner?"),
            turn("bot_m1", Speaker::Twin, "sure"),
            turn("m2", Speaker::Contact, "at 8?"),
            turn("o1", Speaker::Owner, "yes"),
        ];
        let ids = |h: &[HistoryTurn]| h.iter().map(|t| t.message_id.clone()).collect::<Vec<_>>();
        let (m, shown) = last_from_contact(history.clone(), "c", 6).expect("a message");
        assert_eq!((m.message_id.as_str(), m.content.as_str()), ("m2", "at 8?"));
        assert_eq!(m.contact_id, "c");
        assert_eq!(
            ids(&shown),
            ["m1", "bot_m1", "m2"],
            "not the owner's later reply"
        );
        let (_, two) = last_from_contact(history.clone(), "c", 2).expect("a message");
        assert_eq!(
            ids(&two),
            ["bot_m1", "m2"],
            "the latest turns the engine wants"
        );
        let (m, none) = last_from_contact(history, "c", 0).expect("a message");
        assert_eq!(m.message_id, "m2", "found beyond what the engine wants");
        assert!(none.is_empty());
        let only_replies = vec![turn("o1", Speaker::Owner, "hi")];
        assert!(last_from_contact(only_replies, "c", 6).is_none());
    }
}
