//! What a reply engine is handed: plain data, read by the worker from Redis and
//! the graph, so no engine depends on a module that talks to either. The types
//! live in the lower layer, where the store and the graph build them too.

pub use crate::conversation::{ContactContext, ContactPerson, HistoryTurn, Speaker};
pub use crate::schema::{PersonaCache, QueueMessage};
