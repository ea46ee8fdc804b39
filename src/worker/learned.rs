//! What the twin learned from the person's chats, for the worker: each learned
//! contact's chat indexed once and kept while `store::learned::version` says it
//! is unchanged, the overall profile and the learned contacts for a few seconds,
//! and live learning: the person's own messages and the contacts' messages the
//! worker decides go into the learned chats.
//!
//! Learning is never a condition of a reply: a failure reading or writing it
//! is logged (ids and counts, never text) and the twin goes on without it.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};

use anyhow::{Context, Result};
use redis::aio::ConnectionManager;

use super::parsed_entry::ParsedEntry;
use super::verdict::Verdict;
use crate::conversation::{HistoryTurn, Speaker};
use crate::learn::context::ChatModel;
use crate::learn::{ChatLine, Exchange, LearnConfig, Learned, LineKind, StyleProfile};
use crate::schema::{self, Direction, QueueMessage};
use crate::store::{self, learned};

/// How long this process trusts the learned contacts and the overall profile, ms.
const LOCAL_TTL_MS: i64 = 5_000;
/// Chats kept indexed at once; the least recently used goes first.
const MAX_MODELS: usize = 32;
/// Other chats searched for style examples, when the settings allow it.
const MAX_OTHER_CHATS: usize = 16;
/// History turns read when examples may come, so an engine can tell a past
/// reply from the one it sent last and a burst is searched as one.
pub(super) const LEARNED_HISTORY: usize = 6;
/// A contact's earlier messages within this much of the one answered count as
/// one burst with it.
const BURST_WINDOW_MS: i64 = 5 * 60_000;
/// Messages of a burst searched together, the latest.
const BURST_MAX: usize = 5;
/// The contact's messages before the person's first live line in a chat not
/// yet learned, taken from the history so the first exchange forms.
const BACKFILL: usize = 10;

/// A value and when it was read.
type Stamped<T> = (i64, T);

/// A chat's model at the version it was built from.
struct Cached {
    version: u64,
    model: Arc<ChatModel>,
    used: u64,
}

#[derive(Default)]
struct Inner {
    models: HashMap<String, Cached>,
    tick: u64,
    overall: Option<Stamped<Option<Arc<StyleProfile>>>>,
    contacts: Option<Stamped<Arc<HashSet<String>>>>,
    /// Contacts whose learned data failed to read, logged once until it reads again.
    failing: HashSet<String>,
}

/// The worker's memory of what was learned, shared by its read loop and the
/// jobs of a slow engine.
pub(super) struct LearnedCache {
    cfg: LearnConfig,
    inner: Mutex<Inner>,
}

impl LearnedCache {
    /// An empty cache for the `[learn]` settings.
    pub(super) fn new(cfg: LearnConfig) -> Self {
        Self {
            cfg,
            inner: Mutex::new(Inner::default()),
        }
    }

    fn inner(&self) -> MutexGuard<'_, Inner> {
        // Plain data behind the lock: a panic elsewhere leaves nothing half-done.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The contacts with learned data, as of a few seconds ago.
    async fn contacts(&self, con: &mut ConnectionManager) -> Result<Arc<HashSet<String>>> {
        let now = store::now_ms();
        if let Some((at, set)) = &self.inner().contacts
            && now - at < LOCAL_TTL_MS
        {
            return Ok(Arc::clone(set));
        }
        let set: Arc<HashSet<String>> =
            Arc::new(learned::contacts(con).await?.into_iter().collect());
        let mut inner = self.inner();
        // A forgotten chat leaves this process's memory too.
        inner.models.retain(|c, _| set.contains(c));
        inner.contacts = Some((now, Arc::clone(&set)));
        Ok(set)
    }

    /// The overall profile, as of a few seconds ago.
    async fn overall(&self, con: &mut ConnectionManager) -> Result<Option<Arc<StyleProfile>>> {
        let now = store::now_ms();
        if let Some((at, p)) = &self.inner().overall
            && now - at < LOCAL_TTL_MS
        {
            return Ok(p.clone());
        }
        let p = learned::profile(con, None).await?.map(Arc::new);
        self.inner().overall = Some((now, p.clone()));
        Ok(p)
    }

    /// The contact's chat model, rebuilt when its version moved; `None` when
    /// nothing is learned for it.
    async fn model(
        &self,
        con: &mut ConnectionManager,
        contact_id: &str,
    ) -> Result<Option<Arc<ChatModel>>> {
        let Some(version) = learned::version(con, contact_id).await? else {
            self.inner().models.remove(contact_id);
            return Ok(None);
        };
        {
            let mut inner = self.inner();
            inner.tick += 1;
            let tick = inner.tick;
            if let Some(c) = inner.models.get_mut(contact_id)
                && c.version == version
            {
                c.used = tick;
                return Ok(Some(Arc::clone(&c.model)));
            }
        }
        let lines = learned::lines(con, contact_id).await?;
        // Indexing a long chat is CPU work: off the runtime's threads.
        let model = tokio::task::spawn_blocking(move || ChatModel::new(&lines))
            .await
            .context("indexing a learned chat failed")?;
        let model = Arc::new(model);
        let mut inner = self.inner();
        inner.tick += 1;
        let used = inner.tick;
        if inner.models.len() >= MAX_MODELS
            && !inner.models.contains_key(contact_id)
            && let Some(oldest) = inner
                .models
                .iter()
                .min_by_key(|(_, c)| c.used)
                .map(|(k, _)| k.clone())
        {
            inner.models.remove(&oldest);
        }
        inner.models.insert(
            contact_id.to_owned(),
            Cached {
                version,
                model: Arc::clone(&model),
                used,
            },
        );
        Ok(Some(model))
    }

    /// Whether a reply to `contact_id` may get past exchanges as examples.
    pub(super) async fn may_have_examples(
        &self,
        con: &mut ConnectionManager,
        contact_id: &str,
    ) -> bool {
        match self.contacts(con).await {
            Ok(set) => {
                set.contains(contact_id) || (self.cfg.style_from_other_chats && !set.is_empty())
            }
            Err(_) => false,
        }
    }

    /// What bears on answering `query` (the contact's latest message, or burst)
    /// from `contact_id`; `None` when nothing was learned or it cannot be read
    /// (logged, without text): the reply goes on without it.
    pub(super) async fn for_reply(
        &self,
        con: &mut ConnectionManager,
        contact_id: &str,
        query: &str,
    ) -> Option<Learned> {
        match self.learned(con, contact_id, query).await {
            Ok(l) => {
                if self.inner().failing.remove(contact_id) {
                    tracing::info!("what was learned for {contact_id} reads again");
                }
                Some(l).filter(|l| l.profile.is_some() || !l.examples.is_empty())
            }
            Err(e) => {
                if self.inner().failing.insert(contact_id.to_owned()) {
                    tracing::warn!(
                        "cannot read what was learned for {contact_id}; its replies go without it: {}",
                        safe_reason(&e)
                    );
                }
                None
            }
        }
    }

    async fn learned(
        &self,
        con: &mut ConnectionManager,
        contact_id: &str,
        query: &str,
    ) -> Result<Learned> {
        let k = self.cfg.examples;
        let overall = self.overall(con).await?;
        let contacts = self.contacts(con).await?;
        let model = if contacts.contains(contact_id) {
            self.model(con, contact_id).await?
        } else {
            None
        };
        let mut l = match model {
            Some(m) => m.learned_for(query, k, overall.as_deref()),
            None => Learned {
                profile: overall.as_deref().cloned(),
                from_contact: false,
                examples: Vec::new(),
            },
        };
        if self.cfg.style_from_other_chats && l.examples.len() < k {
            let room = k - l.examples.len();
            let others = self.others(con, contact_id, &contacts, query, room).await?;
            l.examples.extend(others);
        }
        Ok(l)
    }

    /// The person's replies in other learned chats most like `query`, without
    /// what those contacts wrote: style examples only.
    async fn others(
        &self,
        con: &mut ConnectionManager,
        contact_id: &str,
        contacts: &HashSet<String>,
        query: &str,
        n: usize,
    ) -> Result<Vec<(Exchange, f32)>> {
        let mut ids: Vec<&String> = contacts.iter().filter(|c| *c != contact_id).collect();
        ids.sort();
        let mut found = Vec::new();
        for id in ids.into_iter().take(MAX_OTHER_CHATS) {
            if let Some(m) = self.model(con, id).await? {
                found.extend(m.examples(query, n).into_iter().map(|(e, sim)| {
                    let mine = Exchange {
                        them: String::new(),
                        ..e
                    };
                    (mine, sim)
                }));
            }
        }
        found.sort_by(|a, b| b.1.total_cmp(&a.1));
        found.truncate(n);
        Ok(found)
    }

    /// Learns what the worker just decided: the person's own messages (typed on
    /// the phone) to contacts learned or enabled, and the messages of learned
    /// contacts. Never the twin's replies. Best effort: failures are logged.
    pub(super) async fn learn_live(
        &self,
        con: &mut ConnectionManager,
        decided: &[(&ParsedEntry, &Verdict)],
    ) {
        if let Err(e) = self.try_learn_live(con, decided).await {
            tracing::warn!(
                "live learning skipped for this batch (the twin goes on): {}",
                safe_reason(&e)
            );
        }
    }

    async fn try_learn_live(
        &self,
        con: &mut ConnectionManager,
        decided: &[(&ParsedEntry, &Verdict)],
    ) -> Result<()> {
        let wanted: Vec<(&ParsedEntry, bool)> = decided
            .iter()
            .filter_map(|(g, v)| live_side(g, v).map(|me| (*g, me)))
            .collect();
        if wanted.is_empty() {
            return Ok(());
        }
        let learned_set = self.contacts(con).await?;
        let owners_elsewhere: Vec<&str> = wanted
            .iter()
            .filter(|(g, me)| *me && !learned_set.contains(g.contact_id()))
            .map(|(g, _)| g.contact_id())
            .collect();
        let enabled = enabled(con, &owners_elsewhere).await?;
        let mut by_contact: Vec<(String, Vec<ChatLine>)> = Vec::new();
        for (g, me) in wanted {
            let c = g.contact_id();
            let is_learned = learned_set.contains(c);
            let eligible = is_learned || (me && enabled.contains(c));
            if !eligible {
                continue;
            }
            let text = g.message().content;
            if text.trim().is_empty() {
                continue;
            }
            let mut lines = Vec::new();
            if !is_learned && !by_contact.iter().any(|(k, _)| k == c) {
                lines = backfill(con, c, g.message_id()).await?;
            }
            lines.push(ChatLine {
                ts: g.timestamp(),
                me,
                kind: LineKind::Text,
                text,
            });
            match by_contact.iter_mut().find(|(k, _)| k == c) {
                Some((_, l)) => l.extend(lines),
                None => by_contact.push((c.to_owned(), lines)),
            }
        }
        for (contact, lines) in by_contact {
            self.add(con, &contact, &lines).await;
        }
        Ok(())
    }

    /// Adds `lines` to the contact's learned chat as live ones, one at a time.
    async fn add(&self, con: &mut ConnectionManager, contact_id: &str, lines: &[ChatLine]) {
        let mut added = 0;
        for line in lines {
            match learned::add_live(con, contact_id, line, self.cfg.max_messages).await {
                Ok(a) => added += a.added,
                Err(e) => {
                    tracing::warn!(
                        "cannot learn live from {contact_id}'s chat (the twin goes on): {}",
                        safe_reason(&e)
                    );
                    return;
                }
            }
        }
        tracing::debug!("learned {added} live messages of {contact_id}");
        let mut inner = self.inner();
        if let Some((_, set)) = &mut inner.contacts
            && !set.contains(contact_id)
        {
            Arc::make_mut(set).insert(contact_id.to_owned());
        }
    }
}

/// Which side of a learned chat a decided entry is: the person's (true), the
/// contact's (false), or none (an echo of the twin's reply, a duplicate, a
/// failure).
fn live_side(g: &ParsedEntry, v: &Verdict) -> Option<bool> {
    match (g.direction(), g.is_from_me(), v) {
        (Direction::Outgoing, true, Verdict::Takeover) => Some(true),
        (Direction::Incoming, _, Verdict::Sent | Verdict::Answer | Verdict::Skipped(_)) => {
            Some(false)
        }
        _ => None,
    }
}

/// Of `contacts`, those enabled (`OPTIN:contacts`).
async fn enabled(con: &mut ConnectionManager, contacts: &[&str]) -> Result<HashSet<String>> {
    if contacts.is_empty() {
        return Ok(HashSet::new());
    }
    let mut cmd = redis::cmd("SMISMEMBER");
    cmd.arg(schema::optin_contacts()).arg(contacts);
    let member: Vec<bool> = cmd
        .query_async(con)
        .await
        .context("cannot read which contacts are enabled")?;
    Ok(contacts
        .iter()
        .zip(member)
        .filter(|(_, m)| *m)
        .map(|(c, _)| (*c).to_owned())
        .collect())
}

/// The contact's messages just before the person's `message_id` in the
/// history (after the last reply of the person or the twin), as chat lines.
async fn backfill(
    con: &mut ConnectionManager,
    contact_id: &str,
    message_id: &str,
) -> Result<Vec<ChatLine>> {
    let history = store::history::recent(con, contact_id, BACKFILL + 1).await?;
    let before = history
        .iter()
        .position(|h| h.message_id == message_id)
        .unwrap_or(history.len());
    let run: Vec<&HistoryTurn> = history[..before]
        .iter()
        .rev()
        .take_while(|h| h.speaker == Speaker::Contact)
        .collect();
    Ok(run
        .into_iter()
        .rev()
        .filter(|h| !h.text.trim().is_empty())
        .map(|h| ChatLine {
            ts: h.timestamp,
            me: false,
            kind: LineKind::Text,
            text: h.text.clone(),
        })
        .collect())
}

/// What to search the past exchanges for: the message with the contact's
/// messages just before it (a burst, after the last reply), oldest first.
pub(super) fn burst_query(history: &[HistoryTurn], message: &QueueMessage) -> String {
    let earlier: Vec<&str> = history
        .iter()
        .filter(|h| h.message_id != message.message_id)
        .rev()
        .take_while(|h| {
            h.speaker == Speaker::Contact && message.timestamp - h.timestamp <= BURST_WINDOW_MS
        })
        .take(BURST_MAX - 1)
        .map(|h| h.text.as_str())
        .collect();
    let mut parts: Vec<&str> = earlier.into_iter().rev().collect();
    parts.push(&message.content);
    parts.join("\n")
}

/// An error's text fit for the log: a chain holding a JSON error may quote the
/// data it failed on (a person's message), so only its outer context then.
fn safe_reason(e: &anyhow::Error) -> String {
    if e.chain().any(|c| c.is::<serde_json::Error>()) {
        format!("{e}")
    } else {
        crate::connection::describe_error(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn turn(id: &str, speaker: Speaker, text: &str, timestamp: i64) -> HistoryTurn {
        HistoryTurn {
            message_id: id.into(),
            speaker,
            text: text.into(),
            timestamp,
        }
    }

    fn message(id: &str, text: &str, timestamp: i64) -> QueueMessage {
        QueueMessage {
            message_id: id.into(),
            contact_id: "c".into(),
            content: text.into(),
            timestamp,
            direction: Direction::Incoming,
            from_me: false,
        }
    }

    #[test]
    fn a_burst_is_searched_as_one_after_the_last_reply_and_within_minutes() {
        let min = 60_000;
        let history = [
            turn("a", Speaker::Contact, "old topic", 0),
            turn("b", Speaker::Twin, "sure", min),
            turn("c", Speaker::Contact, "too old", 2 * min),
            turn("d", Speaker::Contact, "barbecue", 20 * min),
            turn("e", Speaker::Contact, "saturday?", 21 * min),
            turn("m", Speaker::Contact, "bring tongs", 22 * min),
        ];
        let m = message("m", "bring tongs", 22 * min);
        assert_eq!(
            burst_query(&history, &m),
            "barbecue\nsaturday?\nbring tongs"
        );
        assert_eq!(burst_query(&[], &m), "bring tongs");
        let after_reply = [turn("x", Speaker::Owner, "ok", 21 * min)];
        assert_eq!(burst_query(&after_reply, &m), "bring tongs");
    }

    #[test]
    fn a_json_error_is_logged_without_the_data_it_quotes() {
        let bad = serde_json::from_str::<u32>("\"my secret message\"")
            .map_err(anyhow::Error::from)
            .context("LEARN:style:c is not SecondMe's");
        let e = bad.expect_err("not a number");
        assert!(format!("{e:#}").contains("secret"));
        assert_eq!(safe_reason(&e), "LEARN:style:c is not SecondMe's");
    }
}
