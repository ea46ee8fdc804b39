//! What the twin learned from the person's chats, for the worker: each learned
//! contact's chat indexed once and kept while `store::learned::version` says it
//! is unchanged, the overall profile and the learned contacts for a few seconds,
//! the last reply handed out per contact (a batch's replies reach the history
//! together), and live learning: the person's own messages and the contacts'
//! messages the worker decides go into the chats already learned.
//!
//! Live learning only grows a chat that `secondme learn` started: a contact
//! never learned (enabled or not) starts nothing when the person types to it,
//! and one `secondme forget` removed stays forgotten (`store::learned::add_live`
//! checks the learned set in the same step as it writes). Media is learned as
//! media, its caption kept: an entry naming it (`mediaType`), or the
//! placeholders of older gateways (`[photo]`, `[voice note 0:12]`...); a voice
//! note the twin heard is learned as the words said.
//!
//! Learning is never a condition of a reply: a failure reading or writing it
//! is logged (ids and counts, never text) and the twin goes on without it.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::connection::Con;
use anyhow::{Context, Result};

use super::parsed_entry::ParsedEntry;
use super::verdict::Verdict;
use crate::conversation::{HistoryTurn, Speaker};
use crate::learn::context::ChatModel;
use crate::learn::placeholder::gateway_media;
use crate::learn::{ChatLine, Exchange, LearnConfig, Learned, LineKind, StyleProfile};
use crate::schema::media::MediaKind;
use crate::schema::{Direction, QueueMessage};
use crate::store;
use crate::store::learned::{self, Version};

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
/// How long the last reply handed out to a contact keeps a past reply from
/// being handed out again, ms: longer than a batch takes to reach the history.
const LAST_SENT_MS: i64 = 10 * 60_000;
/// Contacts whose last reply is remembered at once.
const MAX_REMEMBERED: usize = 4_096;

/// A value and when it was read.
type Stamped<T> = (i64, T);

/// A chat's model at the version it was built from.
struct Cached {
    version: Version,
    model: Arc<ChatModel>,
    used: u64,
}

#[derive(Default)]
struct Inner {
    models: HashMap<String, Cached>,
    tick: u64,
    overall: Option<Stamped<Option<Arc<StyleProfile>>>>,
    contacts: Option<Stamped<Arc<HashSet<String>>>>,
    /// The last reply handed out to each contact, and when.
    sent: HashMap<String, Stamped<String>>,
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
    async fn contacts(&self, con: &mut Con) -> Result<Arc<HashSet<String>>> {
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
        inner.sent.retain(|c, _| set.contains(c));
        inner.contacts = Some((now, Arc::clone(&set)));
        Ok(set)
    }

    /// The overall profile, as of a few seconds ago; `None` when there is
    /// none or it cannot be read (another program's key: warned once), since
    /// each contact's own learned data serves without it.
    async fn overall(&self, con: &mut Con) -> Result<Option<Arc<StyleProfile>>> {
        static WARNED: AtomicBool = AtomicBool::new(false);
        let now = store::now_ms();
        if let Some((at, p)) = &self.inner().overall
            && now - at < LOCAL_TTL_MS
        {
            return Ok(p.clone());
        }
        let p = match learned::profile(con, None).await {
            Ok(p) => p.map(Arc::new),
            Err(e) if e.is::<learned::LearnedError>() => {
                if !WARNED.swap(true, Ordering::Relaxed) {
                    tracing::warn!("no overall profile: {}", safe_reason(&e));
                }
                None
            }
            Err(e) => return Err(e),
        };
        self.inner().overall = Some((now, p.clone()));
        Ok(p)
    }

    /// Remembers `content` as the reply just handed out to `contact_id`, so
    /// the next reply (maybe of the same batch, before this one reaches the
    /// history) does not reuse the same past reply.
    pub(super) fn handed_out(&self, contact_id: &str, content: &str) {
        let mut inner = self.inner();
        if inner.sent.len() >= MAX_REMEMBERED && !inner.sent.contains_key(contact_id) {
            inner.sent.clear();
        }
        let entry = (store::now_ms(), content.trim().to_owned());
        inner.sent.insert(contact_id.to_owned(), entry);
    }

    /// The reply handed out to `contact_id` within the last minutes.
    fn last_sent(&self, contact_id: &str) -> Option<String> {
        let now = store::now_ms();
        self.inner()
            .sent
            .get(contact_id)
            .filter(|(at, _)| now - at < LAST_SENT_MS)
            .map(|(_, text)| text.clone())
    }

    /// The contact's chat model, rebuilt when its version moved; `None` when
    /// nothing is learned for it.
    async fn model(&self, con: &mut Con, contact_id: &str) -> Result<Option<Arc<ChatModel>>> {
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
    pub(super) async fn may_have_examples(&self, con: &mut Con, contact_id: &str) -> bool {
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
        con: &mut Con,
        contact_id: &str,
        query: &str,
    ) -> Option<Learned> {
        match self.learned(con, contact_id, query).await {
            Ok(l) => {
                if self.inner().failing.remove(contact_id) {
                    tracing::info!("what was learned for {contact_id} reads again");
                }
                Some(l).filter(|l| {
                    l.profile.is_some() || !l.examples.is_empty() || !l.other_chats.is_empty()
                })
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

    async fn learned(&self, con: &mut Con, contact_id: &str, query: &str) -> Result<Learned> {
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
                ..Learned::default()
            },
        };
        if self.cfg.style_from_other_chats && l.examples.len() < k {
            let room = k - l.examples.len();
            l.other_chats = self.others(con, contact_id, &contacts, query, room).await?;
        }
        l.last_sent = self.last_sent(contact_id);
        Ok(l)
    }

    /// The person's replies in other learned chats most like `query`, without
    /// what those contacts wrote: style examples only.
    async fn others(
        &self,
        con: &mut Con,
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
    /// the phone) and the contacts' messages, in the chats already learned.
    /// Never the twin's replies. Best effort: failures are logged.
    pub(super) async fn learn_live(&self, con: &mut Con, decided: &[(&ParsedEntry, &Verdict)]) {
        // A contact not learned as of a few seconds ago costs no round trip:
        // the read loop serves every contact, and most have nothing learned. The
        // set only filters; the add itself checks the set again atomically, so a
        // forgotten chat stays forgotten.
        let learned = match self.contacts(con).await {
            Ok(set) => set,
            Err(e) => {
                tracing::warn!(
                    "cannot read the learned contacts (live learning skipped): {}",
                    safe_reason(&e)
                );
                return;
            }
        };
        let mut added = 0;
        for (g, v) in decided {
            let c = g.contact_id();
            if !learned.contains(c) {
                continue;
            }
            let Some(line) = live_side(g, v).and_then(|me| live_line(g, me)) else {
                continue;
            };
            match learned::add_live(con, c, &line, self.cfg.max_messages).await {
                Ok(a) => added += a.map_or(0, |a| a.added),
                Err(e) => tracing::warn!(
                    "cannot learn live from {c}'s chat (the twin goes on): {}",
                    safe_reason(&e)
                ),
            }
        }
        if added > 0 {
            tracing::debug!("learned {added} live messages");
        }
    }
}

/// The chat line of a live message: a gateway placeholder as media (its
/// caption kept), else its text; `None` for an empty message.
fn live_line(g: &ParsedEntry, me: bool) -> Option<ChatLine> {
    let text = g.message().content;
    // A voice note heard is the words said; any other media is media, its
    // caption kept (the text of an entry naming media is its caption).
    let heard = g
        .media_mark()
        .is_some_and(|m| m.kind == MediaKind::Voice && !m.unread);
    let (kind, text) = match gateway_media(text.trim()) {
        _ if g.media().is_some() && !heard => (LineKind::Media, text.trim().to_owned()),
        Some(caption) => (LineKind::Media, caption.to_owned()),
        None if text.trim().is_empty() => return None,
        None => (LineKind::Text, text),
    };
    Some(ChatLine {
        ts: g.timestamp(),
        me,
        kind,
        text,
    })
}

/// Which side of a learned chat a decided entry is: the person's (true), the
/// contact's (false), or none (an echo of the twin's reply, a duplicate, a
/// failure).
fn live_side(g: &ParsedEntry, v: &Verdict) -> Option<bool> {
    match (g.direction(), g.is_from_me(), v) {
        (Direction::Outgoing, true, Verdict::Takeover) => Some(true),
        (
            Direction::Incoming,
            _,
            Verdict::Sent | Verdict::Drafted | Verdict::Answer | Verdict::Skipped(_),
        ) => Some(false),
        _ => None,
    }
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
