//! Loading a [`GraphFile`] into the graph. Every node and edge is `MERGE`d on
//! its identity and its properties `SET`, so importing the same file again
//! changes nothing and importing an edited file updates in place.

use crate::connection::Con;

use super::error::Result;
use super::file::{ContactEntry, GraphFile};
use super::query::Query;
use super::reply::Reply;

/// What an import did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportSummary {
    /// The user's id.
    pub user: String,
    /// Persona ids, in file order.
    pub personas: Vec<String>,
    /// Contact ids, in file order.
    pub contacts: Vec<String>,
    /// `KNOWS` edges in the file.
    pub people: usize,
    /// `MENTIONED` edges in the file.
    pub mentions: usize,
    /// Nodes that did not exist before.
    pub nodes_created: u64,
    /// Edges that did not exist before.
    pub relationships_created: u64,
    /// Property writes (re-setting an unchanged value counts too).
    pub properties_set: u64,
}

impl ImportSummary {
    fn add(&mut self, reply: &Reply) {
        self.nodes_created += reply.stat("Nodes created");
        self.relationships_created += reply.stat("Relationships created");
        self.properties_set += reply.stat("Properties set");
    }
}

const USER: &str = "MERGE (u:User {id: $id}) \
    SET u.defaultPersona = $defaultPersona, u.sleepHoursStart = $sleepStart, \
        u.sleepHoursEnd = $sleepEnd";

const PERSONA: &str = "MATCH (u:User {id: $user}) \
    MERGE (p:Persona {id: $id}) \
    SET p.name = $name, p.styleGuide = $styleGuide, p.tone = $tone, \
        p.exampleMessages = $examples, p.applicableTo = $applicableTo \
    MERGE (u)-[:HAS_PERSONA]->(p)";

const CONTACT: &str = "MATCH (u:User {id: $user}) \
    MERGE (c:Contact {id: $id}) \
    SET c.phoneNumber = $phone, c.name = $name, c.relationshipType = $relationship, \
        c.botEnabled = $botEnabled, c.assignedPersona = $assigned \
    MERGE (u)-[:HAS_CONTACT]->(c)";

const KNOWS: &str = "MATCH (c:Contact {id: $contact}) \
    MERGE (p:Person {name: $name}) \
    SET p.occupation = $occupation, p.location = $location, p.notes = $notes \
    MERGE (c)-[:KNOWS]->(p)";

const WORKS_AT: &str = "MATCH (p:Person {name: $person}) \
    MERGE (co:Company {name: $name}) \
    SET co.industry = $industry \
    MERGE (p)-[:WORKS_AT]->(co)";

const MENTIONED: &str = "MATCH (c:Contact {id: $contact}) \
    MERGE (t:Topic {name: $name}) \
    SET t.category = $category \
    MERGE (c)-[m:MENTIONED]->(t) \
    SET m.times = $times, m.lastMentioned = $last";

/// Loads `file` into the graph (creating it if needed), idempotently.
pub async fn import(con: &mut Con, file: &GraphFile) -> Result<ImportSummary> {
    let user = &file.user;
    let mut summary = ImportSummary {
        user: user.id.clone(),
        ..ImportSummary::default()
    };
    let reply = Query::new(USER)
        .param("id", &user.id)
        .param("defaultPersona", &user.default_persona)
        .param("sleepStart", user.sleep_hours_start.as_ref())
        .param("sleepEnd", user.sleep_hours_end.as_ref())
        .write(con, &format!("cannot import user `{}`", user.id))
        .await?;
    summary.add(&reply);
    for p in &file.personas {
        let reply = Query::new(PERSONA)
            .param("user", &user.id)
            .param("id", &p.id)
            .param("name", &p.name)
            .param("styleGuide", &p.style.style_guide)
            .param("tone", &p.style.tone)
            .param("examples", p.style.example_messages.as_slice())
            .param("applicableTo", p.applicable_to.as_slice())
            .write(con, &format!("cannot import persona `{}`", p.id))
            .await?;
        summary.add(&reply);
        summary.personas.push(p.id.clone());
    }
    for entry in &file.contacts {
        import_contact(con, &user.id, entry, &mut summary).await?;
        summary.contacts.push(entry.contact.id.clone());
    }
    Ok(summary)
}

async fn import_contact(
    con: &mut Con,
    user: &str,
    entry: &ContactEntry,
    summary: &mut ImportSummary,
) -> Result<()> {
    let c = &entry.contact;
    let what = format!("cannot import contact `{}`", c.id);
    let reply = Query::new(CONTACT)
        .param("user", user)
        .param("id", &c.id)
        .param("phone", c.phone_number.as_ref())
        .param("name", c.name.as_ref())
        .param("relationship", &c.relationship_type)
        .param("botEnabled", c.bot_enabled)
        .param("assigned", c.assigned_persona.as_ref())
        .write(con, &what)
        .await?;
    summary.add(&reply);
    for k in &entry.knows {
        let reply = Query::new(KNOWS)
            .param("contact", &c.id)
            .param("name", &k.name)
            .param("occupation", k.occupation.as_ref())
            .param("location", k.location.as_ref())
            .param("notes", k.notes.as_ref())
            .write(con, &what)
            .await?;
        summary.add(&reply);
        summary.people += 1;
        if let Some(co) = &k.works_at {
            let reply = Query::new(WORKS_AT)
                .param("person", &k.name)
                .param("name", &co.name)
                .param("industry", co.industry.as_ref())
                .write(con, &what)
                .await?;
            summary.add(&reply);
        }
    }
    for m in &entry.mentioned {
        let reply = Query::new(MENTIONED)
            .param("contact", &c.id)
            .param("name", &m.topic)
            .param("category", m.category.as_ref())
            .param("times", m.times)
            .param("last", m.last_mentioned)
            .write(con, &what)
            .await?;
        summary.add(&reply);
        summary.mentions += 1;
    }
    Ok(())
}
