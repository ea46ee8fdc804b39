//! A conversation as the reply engines read it, in plain data: its turns (the
//! payloads of `HISTORY:{contactId}`, read by the store) and what the graph
//! knows about the contact.

use crate::schema::MessageEvent;

/// What the twin knows about one contact.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContactContext {
    /// Display name, when known.
    pub name: Option<String>,
    /// `family`, `friend`, `colleague` ...
    pub relationship_type: String,
    /// People the contact knows, by name.
    pub people: Vec<ContactPerson>,
    /// Topics the contact brings up, most frequent first.
    pub topics: Vec<String>,
}

/// A person a contact knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContactPerson {
    /// Name.
    pub name: String,
    /// Job, when known.
    pub occupation: Option<String>,
    /// Company they work at, when known.
    pub company: Option<String>,
}

/// Who wrote a message of the conversation history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Speaker {
    /// The contact.
    Contact,
    /// The person, typing on their phone.
    Owner,
    /// The twin, answering for the person.
    Twin,
}

/// One message of `HISTORY:{contactId}`, as an engine sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryTurn {
    /// The message id (the reply's own id for the twin's replies).
    pub message_id: String,
    /// Who wrote it.
    pub speaker: Speaker,
    /// The text.
    pub text: String,
    /// Unix time in ms.
    pub timestamp: i64,
}

impl HistoryTurn {
    /// The turn of an `events:messages` payload; a voice note or photo reads
    /// as what was said or shown, marked (`(voice note) are you coming`).
    pub fn from_event(event: &MessageEvent) -> Self {
        let speaker = if event.bot_sent {
            Speaker::Twin
        } else if event.from_me {
            Speaker::Owner
        } else {
            Speaker::Contact
        };
        Self {
            message_id: event.message_id.clone(),
            speaker,
            text: match &event.media {
                Some(mark) => crate::schema::media::prompt_text(&event.content, mark),
                None => event.content.clone(),
            },
            timestamp: event.timestamp,
        }
    }
}
