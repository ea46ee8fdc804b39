//! The graph file format (`assets/graph.json`): the user, their personas and
//! their contacts with who each contact knows and what they talk about.

use std::collections::HashSet;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::Persona;
use super::error::{GraphError, Result};

/// A whole graph to import.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GraphFile {
    /// The account owner.
    pub user: UserNode,
    /// Personas the user writes in (same fields as `assets/personas.json`).
    pub personas: Vec<Persona>,
    /// The user's contacts.
    #[serde(default)]
    pub contacts: Vec<ContactEntry>,
}

/// The `(:User)` node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UserNode {
    /// The account owner's id (`SESSION:{userId}`).
    pub id: String,
    /// Persona used when neither an assignment nor the relationship decides.
    pub default_persona: String,
    /// Start of the quiet window, `HH:MM`.
    #[serde(default)]
    pub sleep_hours_start: Option<String>,
    /// End of the quiet window, `HH:MM`.
    #[serde(default)]
    pub sleep_hours_end: Option<String>,
}

/// The `(:Contact)` node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContactNode {
    /// The contact id used in the queue and the state keys.
    pub id: String,
    /// Phone number, when known.
    #[serde(default)]
    pub phone_number: Option<String>,
    /// Display name, when known.
    #[serde(default)]
    pub name: Option<String>,
    /// `family`, `friend`, `colleague`, `unknown` ...
    pub relationship_type: String,
    /// Whether the user lets the twin answer this contact (opt-in: off by default).
    #[serde(default)]
    pub bot_enabled: bool,
    /// Persona that always answers this contact, overriding the relationship.
    #[serde(default)]
    pub assigned_persona: Option<String>,
}

/// A contact of the file with the edges that start from it.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContactEntry {
    /// The contact's own properties.
    #[serde(flatten)]
    pub contact: ContactNode,
    /// `(:Contact)-[:KNOWS]->(:Person)`.
    #[serde(default)]
    pub knows: Vec<KnownPerson>,
    /// `(:Contact)-[:MENTIONED]->(:Topic)`.
    #[serde(default)]
    pub mentioned: Vec<Mention>,
}

/// A `(:Person)` a contact knows; people are identified by name.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KnownPerson {
    /// Name (the person's identity in the graph).
    pub name: String,
    /// Job, when known.
    #[serde(default)]
    pub occupation: Option<String>,
    /// Where they live, when known.
    #[serde(default)]
    pub location: Option<String>,
    /// Free notes.
    #[serde(default)]
    pub notes: Option<String>,
    /// `(:Person)-[:WORKS_AT]->(:Company)`.
    #[serde(default)]
    pub works_at: Option<Company>,
}

/// A `(:Company)`, identified by name.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Company {
    /// Name (the company's identity in the graph).
    pub name: String,
    /// Industry, when known.
    #[serde(default)]
    pub industry: Option<String>,
}

/// A `[:MENTIONED]` edge to a `(:Topic)`, identified by name.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Mention {
    /// Topic name.
    pub topic: String,
    /// Topic category (`work`, `hobby` ...).
    #[serde(default)]
    pub category: Option<String>,
    /// How often the contact brought it up.
    #[serde(default = "one")]
    pub times: i64,
    /// When they last did, ms since the epoch.
    #[serde(default)]
    pub last_mentioned: Option<i64>,
}

fn one() -> i64 {
    1
}

impl GraphFile {
    /// Reads and validates a graph file.
    pub fn load(path: &Path) -> Result<Self> {
        let fail = |detail: String| GraphError::File {
            path: path.to_owned(),
            detail,
        };
        let text =
            std::fs::read_to_string(path).map_err(|e| fail(format!("cannot read it ({e})")))?;
        let file = Self::parse(&text).map_err(fail)?;
        Ok(file)
    }

    /// Parses and validates graph JSON.
    pub fn parse(json: &str) -> std::result::Result<Self, String> {
        let file: Self =
            serde_json::from_str(json).map_err(|e| format!("not a graph file ({e})"))?;
        file.validate()?;
        Ok(file)
    }

    /// The graph shipped with the demo (`assets/graph.json`).
    pub fn shipped() -> std::result::Result<Self, String> {
        Self::parse(include_str!("../../assets/graph.json"))
    }

    /// Checks what the graph relies on: unique ids and references that resolve,
    /// so that resolution never lands on a persona that does not exist.
    fn validate(&self) -> std::result::Result<(), String> {
        non_empty("user id", &self.user.id)?;
        for (what, hhmm) in [
            ("sleepHoursStart", &self.user.sleep_hours_start),
            ("sleepHoursEnd", &self.user.sleep_hours_end),
        ] {
            if let Some(t) = hhmm
                && !is_hhmm(t)
            {
                return Err(format!("user {what} {t:?} is not HH:MM"));
            }
        }
        let mut personas = HashSet::new();
        for p in &self.personas {
            non_empty("persona id", &p.id)?;
            if !personas.insert(p.id.as_str()) {
                return Err(format!("persona `{}` is listed twice", p.id));
            }
        }
        if !personas.contains(self.user.default_persona.as_str()) {
            return Err(format!(
                "the user's defaultPersona `{}` is not one of the personas",
                self.user.default_persona
            ));
        }
        let mut contacts = HashSet::new();
        for entry in &self.contacts {
            let c = &entry.contact;
            non_empty("contact id", &c.id)?;
            non_empty(
                &format!("relationshipType of `{}`", c.id),
                &c.relationship_type,
            )?;
            if !contacts.insert(c.id.as_str()) {
                return Err(format!("contact `{}` is listed twice", c.id));
            }
            if let Some(a) = &c.assigned_persona
                && !personas.contains(a.as_str())
            {
                return Err(format!(
                    "contact `{}` is assigned persona `{a}`, which is not one of the personas",
                    c.id
                ));
            }
            for k in &entry.knows {
                non_empty(&format!("name of a person `{}` knows", c.id), &k.name)?;
                if let Some(co) = &k.works_at {
                    non_empty(&format!("company of `{}`", k.name), &co.name)?;
                }
            }
            for m in &entry.mentioned {
                non_empty(&format!("topic `{}` mentioned", c.id), &m.topic)?;
                if m.times < 0 {
                    return Err(format!(
                        "topic `{}` of `{}` has negative times",
                        m.topic, c.id
                    ));
                }
            }
        }
        Ok(())
    }
}

fn non_empty(what: &str, value: &str) -> std::result::Result<(), String> {
    if value.trim().is_empty() {
        Err(format!("{what} is empty"))
    } else {
        Ok(())
    }
}

fn is_hhmm(t: &str) -> bool {
    let Some((h, m)) = t.split_once(':') else {
        return false;
    };
    h.len() == 2
        && m.len() == 2
        && h.parse::<u8>().is_ok_and(|h| h < 24)
        && m.parse::<u8>().is_ok_and(|m| m < 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_graph_is_valid_and_matches_the_shipped_personas() {
        let file = GraphFile::shipped().expect("assets/graph.json is valid");
        for p in crate::store::persona::shipped() {
            let g = file
                .personas
                .iter()
                .find(|g| g.id == p.id)
                .expect("every shipped persona is in the graph");
            assert_eq!(g.style, p.style, "{}", p.id);
            assert_eq!(g.applicable_to, p.applicable_to, "{}", p.id);
        }
        let ids: Vec<&str> = file
            .contacts
            .iter()
            .map(|c| c.contact.id.as_str())
            .collect();
        assert_eq!(ids, ["mom", "alex", "sam-work", "jo", "spam-bot"]);
    }

    #[test]
    fn dangling_references_are_refused() {
        let json = r#"{"user":{"id":"u","defaultPersona":"nope"},"personas":[]}"#;
        let err = GraphFile::parse(json).expect_err("dangling default");
        assert!(err.contains("defaultPersona"), "{err}");
        let json = r#"{"user":{"id":"u","defaultPersona":"a"},
            "personas":[{"id":"a","name":"A","styleGuide":"","tone":"","exampleMessages":[]}],
            "contacts":[{"id":"c","relationshipType":"friend","assignedPersona":"b"}]}"#;
        let err = GraphFile::parse(json).expect_err("dangling assignment");
        assert!(err.contains("assigned persona `b`"), "{err}");
    }

    #[test]
    fn sleep_hours_are_checked() {
        assert!(is_hhmm("23:00") && is_hhmm("07:30"));
        assert!(!is_hhmm("24:00") && !is_hhmm("7:00") && !is_hhmm("0700"));
    }
}
