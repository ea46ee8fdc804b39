//! The person's knowledge graph in FalkorDB: who the contacts are, which persona
//! answers each of them, and what the twin knows about them.
//!
//! Everything lives in one graph, [`crate::schema::graph`] (`secondme`), queried with
//! `GRAPH.QUERY` / `GRAPH.RO_QUERY`. Values always travel as `CYPHER name=value`
//! parameters, never spliced into query text, so contact data cannot change a
//! query's meaning. Callers check [`available`] first and fall back to the shipped
//! personas when the server has no FalkorDB module.

mod context;
mod error;
mod file;
mod import;
mod list;
mod module;
mod optin;
mod query;
mod reply;
mod resolve;

pub use context::contact_context;
pub use error::{GraphError, Result};
pub use file::{Company, ContactEntry, ContactNode, GraphFile, KnownPerson, Mention, UserNode};
pub use import::{ImportSummary, import};
pub use list::{GraphCounts, contact_names, contacts, counts, personas, user};
pub use module::{available, require};
pub use optin::set_bot_enabled;
pub use resolve::{
    PersonaResolution, ResolvedGraph, Rule, persona_style, resolve_all, resolve_persona,
};

/// Personas as the graph holds them: the same shape as the shipped ones.
pub use crate::store::persona::Persona;
