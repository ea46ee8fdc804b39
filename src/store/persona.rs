//! Personas: the shipped set in `assets/personas.json` and the Redis cache
//! `CACHE:persona:{personaId}` (30 minute TTL) in front of them.

use std::sync::LazyLock;

use crate::connection::Con;
use anyhow::{Context, Result};
use redis::AsyncCommands;
use serde::Deserialize;

use crate::schema::{self, PersonaCache};

/// A persona as shipped: the cached fields plus its id, name and relationship types.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Persona {
    /// Stable id (`professional`, `casual`, `family` ...).
    pub id: String,
    /// Display name.
    pub name: String,
    /// Relationship types it fits.
    #[serde(default)]
    pub applicable_to: Vec<String>,
    /// What the cache holds.
    #[serde(flatten)]
    pub style: PersonaCache,
}

#[derive(Deserialize)]
struct PersonaFile {
    personas: Vec<Persona>,
}

/// The personas shipped in `assets/personas.json`.
pub fn shipped() -> &'static [Persona] {
    static SHIPPED: LazyLock<Vec<Persona>> = LazyLock::new(|| {
        serde_json::from_str::<PersonaFile>(include_str!("../../assets/personas.json"))
            .map(|f| f.personas)
            .unwrap_or_default()
    });
    &SHIPPED
}

/// The shipped persona `id`, if there is one.
pub fn shipped_by_id(id: &str) -> Option<&'static Persona> {
    shipped().iter().find(|p| p.id == id)
}

/// Reads `CACHE:persona:{id}`; on a miss (or unreadable JSON) rebuilds it from
/// the shipped personas with the seed's TTL.
pub async fn cached(con: &mut Con, id: &str) -> Result<PersonaCache> {
    let key = schema::persona_cache_key(id);
    let raw: Option<String> = con
        .get(&key)
        .await
        .with_context(|| format!("cannot read {key}"))?;
    if let Some(raw) = raw {
        match serde_json::from_str::<PersonaCache>(&raw) {
            Ok(p) => return Ok(p),
            Err(e) => tracing::warn!("{key} holds unreadable JSON ({e}); rebuilding it"),
        }
    }
    let persona = shipped_by_id(id)
        .with_context(|| format!("no persona `{id}` (shipped: {})", shipped_ids()))?;
    store(con, id, &persona.style).await?;
    Ok(persona.style.clone())
}

/// Writes a persona to its cache key with the 30 minute TTL.
pub async fn store(con: &mut Con, id: &str, style: &PersonaCache) -> Result<()> {
    let key = schema::persona_cache_key(id);
    let json = serde_json::to_string(style).context("cannot encode persona")?;
    let _: () = con
        .set_ex(&key, json, schema::PERSONA_CACHE_TTL_S as u64)
        .await
        .with_context(|| format!("cannot write {key}"))?;
    Ok(())
}

fn shipped_ids() -> String {
    shipped()
        .iter()
        .map(|p| p.id.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_personas_parse() {
        let ids: Vec<&str> = shipped().iter().map(|p| p.id.as_str()).collect();
        assert!(ids.contains(&"casual"), "{ids:?}");
        assert!(ids.contains(&"professional"));
        assert!(ids.contains(&"family"));
        assert!(
            shipped()
                .iter()
                .all(|p| !p.style.example_messages.is_empty())
        );
    }
}
