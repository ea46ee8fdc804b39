//! What the graph knows about a contact, for writing a substantive reply.

use crate::connection::Con;

use super::error::Result;
use super::query::Query;
use super::reply::Cell;
use crate::conversation::{ContactContext, ContactPerson};

const PEOPLE: &str = "MATCH (:User {id: $user})-[:HAS_CONTACT]->(c:Contact {id: $id}) \
    OPTIONAL MATCH (c)-[:KNOWS]->(p:Person) \
    OPTIONAL MATCH (p)-[:WORKS_AT]->(co:Company) \
    RETURN c.name, c.relationshipType, p.name, p.occupation, co.name \
    ORDER BY p.name";

const TOPICS: &str = "MATCH (:User {id: $user})-[:HAS_CONTACT]->(:Contact {id: $id})-[m:MENTIONED]->(t:Topic) \
    RETURN t.name ORDER BY m.times DESC, t.name";

/// The contact's name, relationship, people and topics; `None` when the graph
/// does not know the contact as one of `user_id`'s.
pub async fn contact_context(
    con: &mut Con,
    user_id: &str,
    contact_id: &str,
) -> Result<Option<ContactContext>> {
    let what = format!("cannot read what the graph knows about `{contact_id}`");
    let people = Query::new(PEOPLE)
        .param("user", user_id)
        .param("id", contact_id)
        .read(con, &what)
        .await?;
    let Some(first) = people.rows.first() else {
        return Ok(None);
    };
    let mut context = ContactContext {
        name: Cell::at(first, 0).text(),
        relationship_type: Cell::at(first, 1)
            .text()
            .unwrap_or_else(|| "unknown".into()),
        ..ContactContext::default()
    };
    for row in &people.rows {
        if let Some(name) = Cell::at(row, 2).text() {
            context.people.push(ContactPerson {
                name,
                occupation: Cell::at(row, 3).text(),
                company: Cell::at(row, 4).text(),
            });
        }
    }
    let topics = Query::new(TOPICS)
        .param("user", user_id)
        .param("id", contact_id)
        .read(con, &what)
        .await?;
    context.topics = topics
        .rows
        .iter()
        .filter_map(|row| Cell::at(row, 0).text())
        .collect();
    Ok(Some(context))
}
