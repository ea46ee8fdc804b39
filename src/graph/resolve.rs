//! Which persona answers a contact, and that persona's style.

use std::fmt;

use redis::aio::ConnectionManager;

use super::error::{GraphError, Result};
use super::query::Query;
use super::reply::Cell;
use crate::schema::PersonaCache;

/// Why a persona was chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// The contact's `assignedPersona`.
    Assigned,
    /// A persona whose `applicableTo` holds the contact's `relationshipType`.
    ByRelationship,
    /// The user's `defaultPersona` (also for contacts the graph does not know).
    UserDefault,
}

impl Rule {
    /// A short label: `assigned`, `by relationship`, `user default`.
    pub fn label(self) -> &'static str {
        match self {
            Rule::Assigned => "assigned",
            Rule::ByRelationship => "by relationship",
            Rule::UserDefault => "user default",
        }
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// The persona that answers a contact and the rule that chose it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PersonaResolution {
    /// Persona id.
    pub persona_id: String,
    /// Why this one.
    pub rule: Rule,
}

// One round trip gathers every candidate; the precedence is applied in Rust where
// it is explicit. Only personas the contact's own user has are considered.
const CANDIDATES: &str = "MATCH (u:User)-[:HAS_CONTACT]->(c:Contact {id: $id}) \
    OPTIONAL MATCH (u)-[:HAS_PERSONA]->(a:Persona) WHERE a.id = c.assignedPersona \
    WITH u, c, a \
    OPTIONAL MATCH (u)-[:HAS_PERSONA]->(r:Persona) WHERE c.relationshipType IN r.applicableTo \
    RETURN a.id, r.id, u.defaultPersona, c.assignedPersona \
    ORDER BY r.id";

const DEFAULT: &str = "MATCH (u:User) WHERE u.defaultPersona IS NOT NULL RETURN u.defaultPersona ORDER BY u.id LIMIT 1";

/// Picks the persona for `contact_id`: its assigned persona, else one that fits
/// its relationship type (the first by id when several do), else the user's default.
pub async fn resolve_persona(
    con: &mut ConnectionManager,
    contact_id: &str,
) -> Result<PersonaResolution> {
    let what = format!("cannot resolve the persona of `{contact_id}`");
    let reply = Query::new(CANDIDATES)
        .param("id", contact_id)
        .read(con, &what)
        .await?;
    let column = |i| reply.rows.iter().find_map(|row| Cell::at(row, i).text());
    if let Some(id) = column(0) {
        return Ok(resolved(id, Rule::Assigned));
    }
    if let Some(missing) = column(3) {
        tracing::warn!(
            "contact `{contact_id}` is assigned persona `{missing}`, which its user does not have; \
             resolving by relationship"
        );
    }
    if let Some(id) = column(1) {
        return Ok(resolved(id, Rule::ByRelationship));
    }
    if let Some(id) = column(2) {
        return Ok(resolved(id, Rule::UserDefault));
    }
    let reply = Query::new(DEFAULT).read(con, &what).await?;
    match reply.rows.first().and_then(|row| Cell::at(row, 0).text()) {
        Some(id) => Ok(resolved(id, Rule::UserDefault)),
        None => Err(GraphError::NoUser),
    }
}

fn resolved(persona_id: String, rule: Rule) -> PersonaResolution {
    PersonaResolution { persona_id, rule }
}

/// A persona's style as the graph holds it, in the shape of `CACHE:persona:{id}`.
pub async fn persona_style(con: &mut ConnectionManager, persona_id: &str) -> Result<PersonaCache> {
    let what = format!("cannot read persona `{persona_id}`");
    let reply =
        Query::new("MATCH (p:Persona {id: $id}) RETURN p.styleGuide, p.tone, p.exampleMessages")
            .param("id", persona_id)
            .read(con, &what)
            .await?;
    let Some(row) = reply.rows.first() else {
        return Err(GraphError::NotFound {
            kind: "persona",
            id: persona_id.to_owned(),
        });
    };
    Ok(PersonaCache {
        style_guide: Cell::at(row, 0).text().unwrap_or_default(),
        tone: Cell::at(row, 1).text().unwrap_or_default(),
        example_messages: Cell::at(row, 2)
            .strings()
            .map_err(|detail| GraphError::Reply { what, detail })?,
    })
}
