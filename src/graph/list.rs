//! Reading the graph's nodes back: the user, personas, contacts, and counts.

use std::collections::{BTreeMap, HashMap};

use crate::connection::Con;

use super::Persona;
use super::error::{GraphError, Result};
use super::file::{ContactNode, UserNode};
use super::query::Query;
use super::reply::{Cell, Reply};
use crate::schema::PersonaCache;

/// How many nodes and edges of each kind the graph holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GraphCounts {
    /// Nodes per label.
    pub nodes: BTreeMap<String, u64>,
    /// Edges per type.
    pub relationships: BTreeMap<String, u64>,
}

impl GraphCounts {
    /// Nodes with `label` (0 when none).
    pub fn node(&self, label: &str) -> u64 {
        self.nodes.get(label).copied().unwrap_or(0)
    }

    /// Edges of `kind` (0 when none).
    pub fn relationship(&self, kind: &str) -> u64 {
        self.relationships.get(kind).copied().unwrap_or(0)
    }
}

/// The account owner: the `User` whose id is `user_id` (the configured one), if
/// the graph has it. Another user in the same graph is never taken for it.
pub async fn user(con: &mut Con, user_id: &str) -> Result<Option<UserNode>> {
    let reply = Query::new(
        "MATCH (u:User {id: $user}) \
         RETURN u.id, u.defaultPersona, u.sleepHoursStart, u.sleepHoursEnd",
    )
    .param("user", user_id)
    .read(con, "cannot read the user")
    .await?;
    Ok(reply.rows.first().map(|row| UserNode {
        id: Cell::at(row, 0).text().unwrap_or_default(),
        default_persona: Cell::at(row, 1).text().unwrap_or_default(),
        sleep_hours_start: Cell::at(row, 2).text(),
        sleep_hours_end: Cell::at(row, 3).text(),
    }))
}

/// Every persona, by id.
pub async fn personas(con: &mut Con) -> Result<Vec<Persona>> {
    const WHAT: &str = "cannot list the personas";
    let reply = Query::new(
        "MATCH (p:Persona) RETURN p.id, p.name, p.styleGuide, p.tone, \
         p.exampleMessages, p.applicableTo ORDER BY p.id",
    )
    .read(con, WHAT)
    .await?;
    reply
        .rows
        .iter()
        .map(|row| {
            let list = |i| Cell::at(row, i).strings().map_err(|d| bad(WHAT, d));
            Ok(Persona {
                id: Cell::at(row, 0).text().unwrap_or_default(),
                name: Cell::at(row, 1).text().unwrap_or_default(),
                applicable_to: list(5)?,
                style: PersonaCache {
                    style_guide: Cell::at(row, 2).text().unwrap_or_default(),
                    tone: Cell::at(row, 3).text().unwrap_or_default(),
                    example_messages: list(4)?,
                },
            })
        })
        .collect()
}

/// Every contact, by id.
pub async fn contacts(con: &mut Con) -> Result<Vec<ContactNode>> {
    let reply = Query::new(
        "MATCH (c:Contact) RETURN c.id, c.phoneNumber, c.name, c.relationshipType, \
         c.botEnabled, c.assignedPersona ORDER BY c.id",
    )
    .read(con, "cannot list the contacts")
    .await?;
    Ok(reply
        .rows
        .iter()
        .map(|row| ContactNode {
            id: Cell::at(row, 0).text().unwrap_or_default(),
            phone_number: Cell::at(row, 1).text(),
            name: Cell::at(row, 2).text(),
            relationship_type: Cell::at(row, 3).text().unwrap_or_else(|| "unknown".into()),
            bot_enabled: Cell::at(row, 4).bool().unwrap_or(false),
            assigned_persona: Cell::at(row, 5).text(),
        })
        .collect())
}

/// Display names of the contacts that have one, by contact id.
pub async fn contact_names(con: &mut Con) -> Result<HashMap<String, String>> {
    let reply = Query::new(
        "MATCH (c:Contact) WHERE c.name IS NOT NULL AND c.name <> '' RETURN c.id, c.name",
    )
    .read(con, "cannot read the contact names")
    .await?;
    Ok(reply
        .rows
        .iter()
        .filter_map(|row| Some((Cell::at(row, 0).text()?, Cell::at(row, 1).text()?)))
        .collect())
}

/// Nodes per label and edges per type.
pub async fn counts(con: &mut Con) -> Result<GraphCounts> {
    let nodes = Query::new("MATCH (n) RETURN labels(n)[0], count(n)")
        .read(con, "cannot count the nodes")
        .await?;
    let edges = Query::new("MATCH ()-[r]->() RETURN type(r), count(r)")
        .read(con, "cannot count the relationships")
        .await?;
    Ok(GraphCounts {
        nodes: tally(&nodes),
        relationships: tally(&edges),
    })
}

fn tally(reply: &Reply) -> BTreeMap<String, u64> {
    reply
        .rows
        .iter()
        .filter_map(|row| {
            let n = u64::try_from(Cell::at(row, 1).int()?).ok()?;
            Some((Cell::at(row, 0).text().unwrap_or_default(), n))
        })
        .collect()
}

fn bad(what: &str, detail: String) -> GraphError {
    GraphError::Reply {
        what: what.to_owned(),
        detail,
    }
}
