//! What a reply engine is handed: plain data, read by the worker from Redis and
//! the graph, so no engine depends on a module that talks to either.

pub use crate::schema::{PersonaCache, QueueMessage};

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
