//! Which persona answers a contact, its style and what the graph knows about the
//! contact, for the worker: graph first (FalkorDB), the seed's
//! `CACHE:persona:{id}` in front of it, the shipped personas when the graph is
//! absent or down. The graph's resolution of every contact is read at once and
//! kept for a minute, so a flood of messages from new contacts costs no query per
//! message; the context of a contact the graph knows is read once a minute.

use std::collections::HashMap;
use std::sync::Arc;

use crate::connection::Con;
use anyhow::Result;
use redis::AsyncCommands;

use crate::conversation::ContactContext;
use crate::graph::{self, GraphError, ResolvedGraph};
use crate::schema::{self, PersonaCache};
use crate::sleep::{KnownHours, SleepHours};
use crate::store::{self, persona};

/// How long this process trusts what it learned, ms.
const LOCAL_TTL_MS: i64 = 60_000;

/// A value and when it was learned.
type Stamped<T> = (i64, T);

/// What the reply engine gets for one contact.
#[derive(Debug, Clone)]
pub struct ContactPersona {
    /// Persona id.
    pub persona_id: String,
    /// Its style, shared with the resolver's memory so a message costs no copy.
    pub style: Arc<PersonaCache>,
    /// What the graph knows about the contact, if anything.
    pub context: Option<ContactContext>,
}

/// The resolver with its local memory.
#[derive(Debug)]
pub struct Personas {
    default_persona: String,
    /// The configured account owner: only this `User` of the graph counts.
    user_id: String,
    graph: Option<bool>,
    resolved: Option<Stamped<ResolvedGraph>>,
    contexts: HashMap<String, Stamped<Option<ContactContext>>>,
    styles: HashMap<String, Stamped<Arc<PersonaCache>>>,
    /// The graph user's sleep hours as of the last refresh that could read
    /// them; `None` until one could.
    sleep: Option<Option<SleepHours>>,
}

impl Personas {
    /// A resolver for the graph user `user_id` whose fallback persona is `default_persona`.
    pub fn new(default_persona: &str, user_id: &str) -> Self {
        Self {
            default_persona: default_persona.to_owned(),
            user_id: user_id.to_owned(),
            graph: None,
            resolved: None,
            contexts: HashMap::new(),
            styles: HashMap::new(),
            sleep: None,
        }
    }

    /// Forgets whether the graph is there (after a reconnect) and what it said.
    pub fn reset(&mut self) {
        self.graph = None;
        self.resolved = None;
        self.contexts.clear();
        self.styles.clear();
    }

    async fn graph_available(&mut self, con: &mut Con) -> bool {
        self.graph_state(con).await == Some(true)
    }

    /// Whether the server has FalkorDB: known once it answered or was found
    /// missing; `None` after another error (a timeout, a failover), asked
    /// again at the next look rather than taken for "no graph".
    async fn graph_state(&mut self, con: &mut Con) -> Option<bool> {
        if let Some(known) = self.graph {
            return Some(known);
        }
        match graph::require(con).await {
            Ok(()) => self.graph = Some(true),
            Err(GraphError::NoModule(_)) => {
                tracing::warn!(
                    "FalkorDB is not available on this Redis: replies use the shipped personas ({})",
                    self.default_persona
                );
                self.graph = Some(false);
            }
            Err(e) => tracing::debug!("cannot tell whether FalkorDB is there: {e}"),
        }
        self.graph
    }

    /// The persona, style and context for `contact_id`.
    pub async fn for_contact(&mut self, con: &mut Con, contact_id: &str) -> Result<ContactPersona> {
        let (persona_id, context) = self.resolve(con, contact_id).await;
        let style = self.style(con, &persona_id).await?;
        Ok(ContactPersona {
            persona_id,
            style,
            context,
        })
    }

    async fn resolve(
        &mut self,
        con: &mut Con,
        contact_id: &str,
    ) -> (String, Option<ContactContext>) {
        if !self.refresh(con).await {
            return (self.default_persona.clone(), None);
        }
        let now = store::now_ms();
        let Some((_, all)) = &self.resolved else {
            return (self.default_persona.clone(), None);
        };
        let Some(found) = all.by_contact.get(contact_id) else {
            // A contact the graph does not know: the user's default, no context.
            let persona = all
                .default
                .clone()
                .unwrap_or_else(|| self.default_persona.clone());
            return (persona, None);
        };
        let persona = found.persona_id.clone();
        let context = match self.contexts.get(contact_id) {
            Some((at, c)) if now - at < LOCAL_TTL_MS => c.clone(),
            _ => {
                let c = graph::contact_context(con, &self.user_id, contact_id)
                    .await
                    .unwrap_or_else(|e| {
                        self.note_graph_error(&e);
                        None
                    });
                self.contexts
                    .insert(contact_id.to_owned(), (now, c.clone()));
                c
            }
        };
        (persona, context)
    }

    /// Re-reads the graph's resolution when it is over a minute old; false when
    /// there is no graph.
    async fn refresh(&mut self, con: &mut Con) -> bool {
        if !self.graph_available(con).await {
            return false;
        }
        let now = store::now_ms();
        let fresh = matches!(&self.resolved, Some((at, _)) if now - at < LOCAL_TTL_MS);
        if !fresh {
            let all = match graph::resolve_all(con, &self.user_id).await {
                Ok(all) => {
                    self.sleep = Some(parse_sleep(&all));
                    all
                }
                // Keeps the last sleep hours: a graph hiccup must not wake the twin.
                Err(e) => {
                    self.note_graph_error(&e);
                    ResolvedGraph::default()
                }
            };
            self.resolved = Some((now, all));
            self.contexts.clear();
        }
        true
    }

    /// The sleep hours the graph's `User` holds (none when invalid, or without
    /// a graph); unknown while the graph could not be read since the start.
    pub async fn sleep_hours(&mut self, con: &mut Con) -> KnownHours {
        match self.graph_state(con).await {
            Some(false) => return KnownHours::Known(None),
            Some(true) => {
                self.refresh(con).await;
            }
            // Not known whether there is a graph: the hours last read, if any.
            None => {}
        }
        self.sleep.map_or(KnownHours::Unknown, KnownHours::Known)
    }

    fn note_graph_error(&mut self, e: &GraphError) {
        tracing::warn!("persona graph: {e}; using the shipped personas for now");
        if matches!(e, GraphError::NoModule(_)) {
            self.graph = Some(false);
        }
    }

    /// The style of `id`: local copy, else `CACHE:persona:{id}`, else rebuilt from
    /// the graph (or the shipped personas) with the seed's 30 minute TTL.
    async fn style(&mut self, con: &mut Con, id: &str) -> Result<Arc<PersonaCache>> {
        let now = store::now_ms();
        if let Some((at, style)) = self.styles.get(id)
            && now - at < LOCAL_TTL_MS
        {
            return Ok(Arc::clone(style));
        }
        let key = schema::persona_cache_key(id);
        let cached: Option<String> = con.get(&key).await?;
        let parsed = cached.and_then(|raw| serde_json::from_str::<PersonaCache>(&raw).ok());
        let style = match parsed {
            Some(style) => style,
            None => {
                let from_graph = if self.graph_available(con).await {
                    graph::persona_style(con, id)
                        .await
                        .inspect_err(|e| self.note_graph_error(e))
                        .ok()
                } else {
                    None
                };
                match from_graph {
                    Some(style) => {
                        persona::store(con, id, &style).await?;
                        style
                    }
                    None => persona::cached(con, id).await?,
                }
            }
        };
        let style = Arc::new(style);
        self.styles.insert(id.to_owned(), (now, Arc::clone(&style)));
        Ok(style)
    }
}

/// The user's sleep hours from a resolution; an invalid value is logged (once per
/// refresh, so once a minute) and ignored.
fn parse_sleep(all: &ResolvedGraph) -> Option<SleepHours> {
    let (start, end) = all.sleep_hours.as_ref()?;
    SleepHours::between(start, end)
        .inspect_err(|e| tracing::warn!("the graph's sleep hours are ignored: {e}"))
        .ok()
}
