//! Which persona answers a contact, and that persona's style.

use std::collections::HashMap;
use std::fmt;

use crate::connection::Con;

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
const CANDIDATES: &str = "MATCH (u:User {id: $user})-[:HAS_CONTACT]->(c:Contact {id: $id}) \
    OPTIONAL MATCH (u)-[:HAS_PERSONA]->(a:Persona) WHERE a.id = c.assignedPersona \
    WITH u, c, a \
    OPTIONAL MATCH (u)-[:HAS_PERSONA]->(r:Persona) WHERE c.relationshipType IN r.applicableTo \
    RETURN a.id, r.id, u.defaultPersona, c.assignedPersona \
    ORDER BY r.id";

const DEFAULT: &str =
    "MATCH (u:User {id: $user}) WHERE u.defaultPersona IS NOT NULL RETURN u.defaultPersona";

/// The user's sleep hours (see [`resolve_all`]).
const SLEEP_HOURS: &str = "MATCH (u:User {id: $user}) \
    WHERE u.sleepHoursStart IS NOT NULL AND u.sleepHoursEnd IS NOT NULL \
    RETURN u.sleepHoursStart, u.sleepHoursEnd";

/// Every contact's candidates in one query (see [`resolve_all`]).
const ALL_CANDIDATES: &str = "MATCH (u:User {id: $user})-[:HAS_CONTACT]->(c:Contact) \
    OPTIONAL MATCH (u)-[:HAS_PERSONA]->(a:Persona) WHERE a.id = c.assignedPersona \
    WITH u, c, a \
    OPTIONAL MATCH (u)-[:HAS_PERSONA]->(r:Persona) WHERE c.relationshipType IN r.applicableTo \
    RETURN a.id, r.id, u.defaultPersona, c.assignedPersona, c.id \
    ORDER BY c.id, r.id";

/// Applies the precedence to one contact's candidate rows (columns as in
/// `CANDIDATES`): assigned, else by relationship (first by id), else user default.
fn pick(contact_id: &str, rows: &[&Vec<Cell>]) -> Option<PersonaResolution> {
    let column = |i| rows.iter().find_map(|row| Cell::at(row, i).text());
    if let Some(id) = column(0) {
        return Some(resolved(id, Rule::Assigned));
    }
    if let Some(missing) = column(3) {
        tracing::warn!(
            "contact `{contact_id}` is assigned persona `{missing}`, which its user does not have; \
             resolving by relationship"
        );
    }
    if let Some(id) = column(1) {
        return Some(resolved(id, Rule::ByRelationship));
    }
    column(2).map(|id| resolved(id, Rule::UserDefault))
}

async fn user_default(con: &mut Con, user_id: &str, what: &str) -> Result<Option<String>> {
    let reply = Query::new(DEFAULT)
        .param("user", user_id)
        .read(con, what)
        .await?;
    Ok(reply.rows.first().and_then(|row| Cell::at(row, 0).text()))
}

/// Picks the persona for `contact_id`: its assigned persona, else one that fits
/// its relationship type (the first by id when several do), else the user's default.
/// Only the `User` whose id is `user_id` (the configured account owner) counts: a
/// graph may hold other users.
pub async fn resolve_persona(
    con: &mut Con,
    user_id: &str,
    contact_id: &str,
) -> Result<PersonaResolution> {
    let what = format!("cannot resolve the persona of `{contact_id}`");
    let reply = Query::new(CANDIDATES)
        .param("user", user_id)
        .param("id", contact_id)
        .read(con, &what)
        .await?;
    let rows: Vec<&Vec<Cell>> = reply.rows.iter().collect();
    if let Some(found) = pick(contact_id, &rows) {
        return Ok(found);
    }
    match user_default(con, user_id, &what).await? {
        Some(id) => Ok(resolved(id, Rule::UserDefault)),
        None => Err(GraphError::NoUser),
    }
}

/// The persona of every contact the graph knows, and the default for the others.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResolvedGraph {
    /// Per contact id.
    pub by_contact: HashMap<String, PersonaResolution>,
    /// The user's default persona (for contacts the graph does not know).
    pub default: Option<String>,
    /// The user's sleep hours as stored (`sleepHoursStart`, `sleepHoursEnd`), when both are set.
    pub sleep_hours: Option<(String, String)>,
}

/// Resolves every contact at once (three queries, with the sleep hours), with the same rules as
/// [`resolve_persona`]: a worker refreshes this now and then instead of asking
/// the graph once per message. Only the `User` whose id is `user_id` counts.
pub async fn resolve_all(con: &mut Con, user_id: &str) -> Result<ResolvedGraph> {
    let what = "cannot resolve the personas of the contacts";
    let reply = Query::new(ALL_CANDIDATES)
        .param("user", user_id)
        .read(con, what)
        .await?;
    let mut grouped: HashMap<String, Vec<&Vec<Cell>>> = HashMap::new();
    for row in &reply.rows {
        if let Some(id) = Cell::at(row, 4).text() {
            grouped.entry(id).or_default().push(row);
        }
    }
    let default = user_default(con, user_id, what).await?;
    let sleep = Query::new(SLEEP_HOURS)
        .param("user", user_id)
        .read(con, what)
        .await?;
    let sleep_hours = sleep
        .rows
        .first()
        .and_then(|row| Some((Cell::at(row, 0).text()?, Cell::at(row, 1).text()?)));
    let by_contact = grouped
        .into_iter()
        .filter_map(|(id, rows)| {
            let found = pick(&id, &rows)
                .or_else(|| default.clone().map(|d| resolved(d, Rule::UserDefault)))?;
            Some((id, found))
        })
        .collect();
    Ok(ResolvedGraph {
        by_contact,
        default,
        sleep_hours,
    })
}

fn resolved(persona_id: String, rule: Rule) -> PersonaResolution {
    PersonaResolution { persona_id, rule }
}

/// A persona's style as the graph holds it, in the shape of `CACHE:persona:{id}`.
pub async fn persona_style(con: &mut Con, persona_id: &str) -> Result<PersonaCache> {
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
