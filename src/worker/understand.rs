//! The understanding stage: before a batch is decided, each incoming voice note
//! is transcribed and each photo described, so the twin answers what was said
//! or shown as if it had been typed, and the history keeps it. Media the twin
//! cannot read (no transcription endpoint, a model that takes no images, a
//! permanent failure, bytes gone or too large) is marked `unread`: the decide
//! step then records it `skip:unreadable` and counts it for the operator,
//! never answering a placeholder. A transient failure leaves the entry
//! pending, to be tried again like a reply the model could not write.

use std::collections::HashSet;
use std::time::Duration;

use futures_util::future::join_all;

use super::Worker;
use super::parsed_entry::ParsedEntry;
use crate::media::UnderstandError;
use crate::media::stt::Transcriber;
use crate::reply::{ImageInput, ReplyEngine};
use crate::schema::media::{MediaKind, MediaMark};
use crate::schema::{self, Direction};
use crate::store;

/// Media understood at once: each holds its bytes (up to `media_max_mb`) while
/// its endpoint works, so this bounds the memory a batch of voice notes takes.
const AT_ONCE: usize = 4;

/// What became of one entry's media.
enum Outcome {
    /// Understood, or marked unread: the entry as it goes on to the decision.
    Decided(ParsedEntry),
    /// Not now (a transient failure): the entry stays pending; why.
    Later(String),
}

/// True when `g` carries media the twin reads and has not looked at yet.
fn wants_reading(g: &ParsedEntry) -> bool {
    g.direction() == Direction::Incoming
        && g.media_mark().is_none()
        && g.media().and_then(|m| m.kind()).is_some()
}

/// `g` marked as media not understood when it names media the twin never
/// reads (the person's own voice note): the conversation shows it for what it
/// is (`🎤 0:12`), not as an empty message.
fn unread_if_unmarked(g: ParsedEntry) -> ParsedEntry {
    let kind = g.media().and_then(|m| m.kind());
    match kind {
        Some(kind) if g.media_mark().is_none() && kind != MediaKind::Other => {
            let seconds = g.media().and_then(|m| m.seconds);
            g.understood(None, unread_mark(kind, seconds))
        }
        _ => g,
    }
}

/// Whether a pause's value holds at `now`, as the decide step reads it: an
/// expiry in ms still to come, or any value that is no number.
fn pause_holds(value: Option<&str>, now: i64) -> bool {
    value.is_some_and(|v| v.parse::<i64>().map_or(true, |expires| expires > now))
}

/// The mark of media that could not be read.
fn unread_mark(kind: MediaKind, seconds: Option<u32>) -> MediaMark {
    MediaMark {
        kind,
        seconds,
        gist: None,
        unread: true,
    }
}

/// What the twin may do with a batch's media now, read before any of it is:
/// media it would not answer anyway is never read nor sent to an endpoint.
struct Gate {
    /// The kill switch is on.
    killed: bool,
    /// Contacts in `OPTIN:contacts` and not paused.
    open: HashSet<String>,
    /// Messages handled for good already (a redelivery): nothing to read.
    handled: HashSet<String>,
}

impl Gate {
    fn lets_read(&self, g: &ParsedEntry) -> bool {
        !self.killed && self.open.contains(g.contact_id()) && !self.handled.contains(g.message_id())
    }
}

impl<E: ReplyEngine> Worker<E> {
    /// Understands the media of `entries` in place; returns how many were left
    /// pending for a later try (with the same contact's later entries, so its
    /// messages are answered in turn). Media-free entries pass untouched.
    pub(super) async fn understand(&mut self, entries: &mut Vec<ParsedEntry>) -> usize {
        if !entries.iter().any(wants_reading) {
            let all = std::mem::take(entries);
            entries.extend(all.into_iter().map(unread_if_unmarked));
            return 0;
        }
        let all = std::mem::take(entries);
        let gate = match self.gate(&all).await {
            Ok(gate) => gate,
            Err(e) => {
                // Redis failing here fails the batch's decision too: all stay pending.
                tracing::warn!("cannot read the pauses and opt-ins, media left pending: {e:#}");
                let later = all.iter().filter(|g| wants_reading(g)).count();
                entries.extend(all.into_iter().filter(|g| !wants_reading(g)));
                return later;
            }
        };
        let waiting: Vec<&ParsedEntry> = all
            .iter()
            .filter(|g| wants_reading(g) && gate.lets_read(g))
            .collect();
        let outcomes = self.read_all(&waiting).await;
        let mut read = outcomes.into_iter();
        let mut left: Vec<String> = Vec::new();
        let mut held: HashSet<String> = HashSet::new();
        for g in all {
            if held.contains(g.contact_id()) {
                // An earlier message of the contact waits for its media: this one
                // waits too, so the contact is answered in order.
                left.push(g.stream_id().to_owned());
                continue;
            }
            if !wants_reading(&g) {
                entries.push(unread_if_unmarked(g));
                continue;
            }
            if !gate.lets_read(&g) {
                // Not answered whatever it says (kill switch, not enabled, paused,
                // handled before): the decision gives the reason; nothing is read.
                let kind = g.media().and_then(|m| m.kind());
                let seconds = g.media().and_then(|m| m.seconds);
                entries.push(match kind {
                    Some(kind) => g.understood(None, unread_mark(kind, seconds)),
                    None => g,
                });
                continue;
            }
            match read.next() {
                Some(Outcome::Decided(understood)) => entries.push(understood),
                Some(Outcome::Later(why)) if self.expires_before_a_retry(&g) => {
                    tracing::warn!(
                        "the media of {} (entry {}) could not be read and the message expires before another try, left to the operator: {why}",
                        g.message_id(),
                        g.stream_id()
                    );
                    let kind = g.media().and_then(|m| m.kind()).unwrap_or(MediaKind::Voice);
                    let seconds = g.media().and_then(|m| m.seconds);
                    entries.push(g.understood(None, unread_mark(kind, seconds)));
                }
                Some(Outcome::Later(why)) => {
                    left.push(g.stream_id().to_owned());
                    held.insert(g.contact_id().to_owned());
                    tracing::warn!(
                        "the media of {} (entry {}) could not be read now, left pending for a retry: {why}",
                        g.message_id(),
                        g.stream_id()
                    );
                }
                None => entries.push(g),
            }
        }
        if !left.is_empty() {
            // Idle from the same moment, they are claimed again together and in
            // stream order, not the held ones first.
            let (group, consumer) = (&self.cfg.group, &self.cfg.consumer);
            if let Err(e) =
                super::scheduler::keep_claimed(&mut self.con, group, consumer, &left).await
            {
                tracing::debug!("cannot reset the idle time of entries left pending: {e:#}");
            }
        }
        left.len()
    }

    /// Reads the media of `waiting`, [`AT_ONCE`] at a time, in their order,
    /// keeping the entries claimed meanwhile: an endpoint slower than
    /// `claim_idle` must not let another worker claim them and read them again.
    async fn read_all(&mut self, waiting: &[&ParsedEntry]) -> Vec<Outcome> {
        if waiting.is_empty() {
            return Vec::new();
        }
        let ids: Vec<String> = waiting.iter().map(|g| g.stream_id().to_owned()).collect();
        let every = (self.cfg.claim_idle / 3).max(Duration::from_millis(100));
        let mut keeper = self.con.clone();
        let (group, consumer) = (self.cfg.group.clone(), self.cfg.consumer.clone());
        let keep_claimed = async move {
            loop {
                tokio::time::sleep(every).await;
                if let Err(e) =
                    super::scheduler::keep_claimed(&mut keeper, &group, &consumer, &ids).await
                {
                    tracing::debug!("cannot keep the entries being understood claimed: {e:#}");
                }
            }
        };
        let engine = &*self.engine;
        let transcriber = self.transcriber.as_ref();
        let max_bytes = self.cfg.media.max_bytes;
        let con = &self.con;
        let reading = async move {
            let mut outcomes = Vec::with_capacity(waiting.len());
            for group in waiting.chunks(AT_ONCE) {
                let mut reads = Vec::with_capacity(group.len());
                for &g in group {
                    reads.push(read_one(con.clone(), engine, transcriber, max_bytes, g));
                }
                outcomes.extend(join_all(reads).await);
            }
            outcomes
        };
        tokio::select! {
            outcomes = reading => outcomes,
            never = keep_claimed => match never {},
        }
    }

    /// True when `g`, left pending now, would expire before it is claimed again.
    fn expires_before_a_retry(&self, g: &ParsedEntry) -> bool {
        let retry_in = i64::try_from(self.cfg.claim_idle.as_millis()).unwrap_or(i64::MAX);
        let age = store::now_ms() - g.timestamp();
        age.saturating_add(retry_in.saturating_mul(2)) >= schema::QUEUE_ENTRY_MAX_AGE_MS
    }

    /// Reads, in one round trip, what decides whether a batch's media may be read:
    /// the kill switch, its contacts' opt-in and pauses, and whether its messages
    /// were handled for good before.
    async fn gate(&mut self, entries: &[ParsedEntry]) -> anyhow::Result<Gate> {
        let media: Vec<&ParsedEntry> = entries.iter().filter(|g| wants_reading(g)).collect();
        let mut contacts: Vec<&str> = media.iter().map(|g| g.contact_id()).collect();
        contacts.sort_unstable();
        contacts.dedup();
        let pauses: Vec<String> = contacts.iter().map(|c| schema::pause_key(c)).collect();
        let (killed, member, paused): (bool, Vec<bool>, Vec<Option<String>>) = redis::pipe()
            .exists(schema::pause_all())
            .cmd("SMISMEMBER")
            .arg(schema::optin_contacts())
            .arg(&contacts)
            .cmd("MGET")
            .arg(&pauses)
            .query_async(&mut self.con)
            .await?;
        let now = store::now_ms();
        let open = contacts
            .iter()
            .zip(member.iter().zip(&paused))
            .filter(|(_, (enabled, pause))| **enabled && !pause_holds(pause.as_deref(), now))
            .map(|(c, _)| (*c).to_owned())
            .collect();
        let ids: Vec<&str> = media.iter().map(|g| g.message_id()).collect();
        let states = store::handled::states(&mut self.con, &ids).await?;
        let handled = ids
            .into_iter()
            .zip(states)
            .filter(|(_, s)| s.as_deref().is_some_and(|s| s != "seen"))
            .map(|(id, _)| id.to_owned())
            .collect();
        Ok(Gate {
            killed,
            open,
            handled,
        })
    }

    /// Deletes the bytes of handled entries that came with media; a failure is
    /// logged once and left to the bytes' one-hour expiry.
    pub(super) async fn forget_media<'a>(
        &mut self,
        handled: impl IntoIterator<Item = &'a ParsedEntry>,
    ) {
        let ids: Vec<&str> = handled
            .into_iter()
            .filter(|g| g.media().is_some())
            .map(ParsedEntry::message_id)
            .collect();
        if ids.is_empty() {
            return;
        }
        if let Err(e) = store::media::forget(&mut self.con, ids).await {
            self.warn_once(&[format!(
                "cannot delete handled media (it expires within the hour): {e}"
            )]);
        }
    }
}

/// Reads and understands one entry's media.
async fn read_one<E: ReplyEngine>(
    mut con: crate::connection::Con,
    engine: &E,
    transcriber: Option<&Transcriber>,
    max_bytes: usize,
    g: &ParsedEntry,
) -> Outcome {
    let Some(source) = g.media().cloned() else {
        return Outcome::Decided(g.clone());
    };
    let Some(kind) = source.kind().filter(|k| *k != MediaKind::Other) else {
        return Outcome::Decided(g.clone());
    };
    let unread = |g: &ParsedEntry, why: &str| {
        tracing::info!(
            "the media of {} (entry {}) cannot be understood, left to the operator: {why}",
            g.message_id(),
            g.stream_id()
        );
        Outcome::Decided(g.understood(None, unread_mark(kind, source.seconds)))
    };
    let bytes = match store::media::read(&mut con, g.message_id(), max_bytes).await {
        Ok(Some(bytes)) => bytes,
        Ok(None) => return unread(g, "its bytes are gone, empty or over the size limit"),
        Err(e @ store::media::ReadError::Foreign { .. }) => return unread(g, &e.to_string()),
        Err(e) => return Outcome::Later(e.to_string()),
    };
    let result = match kind {
        MediaKind::Voice => match transcriber {
            None => Err(UnderstandError::Permanent(
                "no transcription endpoint is configured (stt_url)".into(),
            )),
            Some(t) => t.transcribe(bytes, &source.mime).await.map(|t| {
                let seconds = source.seconds.or_else(|| {
                    t.seconds
                        .map(|s| s.round().clamp(0.0, f64::from(u32::MAX)) as u32)
                });
                (
                    Some(t.text),
                    MediaMark {
                        kind,
                        seconds,
                        gist: None,
                        unread: false,
                    },
                )
            }),
        },
        MediaKind::Other => return Outcome::Decided(g.clone()),
        MediaKind::Photo if !engine.takes_images() => Err(UnderstandError::Permanent(
            "the reply engine takes no images ([llm] images)".into(),
        )),
        MediaKind::Photo => {
            let caption = g.message().content;
            let image = ImageInput {
                bytes: &bytes,
                mime: &source.mime,
                caption: &caption,
            };
            engine.describe_image(&image).await.map(|gist| {
                (
                    None,
                    MediaMark {
                        kind,
                        seconds: None,
                        gist: Some(gist),
                        unread: false,
                    },
                )
            })
        }
    };
    match result {
        Ok((text, mark)) => Outcome::Decided(g.understood(text.as_deref(), mark)),
        Err(UnderstandError::Permanent(why)) => unread(g, &why),
        Err(UnderstandError::Transient(why)) => Outcome::Later(why),
    }
}
