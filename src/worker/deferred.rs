//! The end of the sleep hours in `defer` mode: each contact's message kept in
//! `SECONDME:deferred` is answered (or drafted) through the commit step, with the
//! whole night in the history, so the contact gets one reply covering all of it.
//!
//! The replies are written by a task beside the worker's loop (the waker), one
//! at a time, so the loop goes on reading and deciding while a slow engine
//! writes them: the person's own message or a contact's newer one typed at
//! wake-up is decided at once, not after the night's replies. The waker looks
//! only while the loop knows the sleep hours to be over ([`Dawn`]): while they
//! are unknown (their graph not read yet) it may still be night.
//!
//! Each night is answered once: a worker claims a contact's night for a minute
//! (`SECONDME:deferred:claim:{contactId}`, `SET NX`), so workers waking together
//! share the nights instead of writing each one twice; the commit step ends the
//! deferral in the same atomic step as the reply, and sends nothing for a night
//! whose deferral a reply to a newer message or a takeover ended meanwhile.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::batch::{BatchOutcome, Drafting, commit, generate};
use super::learned::LearnedCache;
use super::parsed_entry::ParsedEntry;
use super::personas::Personas;
use super::replicas;
use super::verdict::Committed;
use super::{Worker, WorkerStatus};
use crate::connection::Con;
use crate::conversation::Speaker;
use crate::entry::CheckedEntry;
use crate::reply::ReplyEngine;
use crate::schema::deferred::Deferral;
use crate::schema::{self, Direction};
use crate::sleep::{SleepMode, SleepNow};
use crate::store::durability::{Confirmer, Mark};
use crate::store::{self, deferred};

/// How long a worker's claim on a contact's night lasts: another worker (or
/// this one) tries a night whose reply failed again after it. Longer than a
/// slow model's reply with its retries, so two workers never both write one.
const CLAIM: Duration = Duration::from_secs(300);

/// How the loop tells the waker where now stands against the sleep hours.
pub(super) struct Dawn {
    now: watch::Sender<SleepNow>,
    /// Whether the unknown sleep hours were said in the log, so they are said
    /// once while they stay unknown.
    said_unknown: bool,
}

impl Default for Dawn {
    fn default() -> Self {
        Self {
            now: watch::Sender::new(SleepNow::Unknown),
            said_unknown: false,
        }
    }
}

impl Dawn {
    /// Tells the waker where now stands; unknown sleep hours are said in the
    /// log when they become unknown.
    pub(super) fn tell(&mut self, now: SleepNow) {
        let unknown = now == SleepNow::Unknown;
        if unknown && !self.said_unknown {
            tracing::warn!(
                "the sleep hours are not known yet (the graph that holds them cannot be read): \
                 the messages kept for the end of the night wait until they are"
            );
        }
        self.said_unknown = unknown;
        self.now.send_if_modified(|was| {
            let changed = *was != now;
            *was = now;
            changed
        });
    }
}

/// What became of one contact's night.
enum Night {
    /// It was over before its reply was written (answered, taken over).
    Over,
    /// Its reply was written but is not committed: the night ended meanwhile,
    /// is left to the reply to a newer message, or the sleep hours began.
    Left,
    /// The commit step's result, and the connection marked before it.
    Committed(Mark, Option<Committed>),
}

/// What the waker works with: the worker's engine, what was learned, a
/// connection and a persona resolver of its own.
pub(super) struct Waker<E> {
    engine: Arc<E>,
    con: Con,
    learned: Arc<LearnedCache>,
    personas: Personas,
    group: String,
    consumer: String,
    drafting: Drafting,
    sleep_mode: SleepMode,
    dawn: watch::Receiver<SleepNow>,
    status: watch::Sender<WorkerStatus>,
    replicas_to_wait: u32,
    /// Which connection a reply went on, for its `WAIT`.
    confirmer: Confirmer,
    /// How often it looks: the worker's chores period.
    every: Duration,
}

impl<E: ReplyEngine> Worker<E> {
    /// The waker of this worker's deferred messages.
    pub(super) fn waker(&self) -> Waker<E> {
        Waker {
            engine: Arc::clone(&self.engine),
            // The worker's own: each writer marks it before its writes.
            con: self.con.clone(),
            learned: Arc::clone(&self.learned),
            personas: Personas::new(&self.cfg.default_persona, &self.cfg.user_id),
            group: self.cfg.group.clone(),
            consumer: self.cfg.consumer.clone(),
            drafting: Drafting::of(&self.cfg),
            sleep_mode: self.cfg.sleep_mode,
            dawn: self.dawn.now.subscribe(),
            status: self.status.clone(),
            replicas_to_wait: self.cfg.replicas_to_wait,
            confirmer: self.confirmer.clone(),
            every: self.cfg.chores_every,
        }
    }
}

/// The waker's task, ended when dropped (also when the worker's loop unwinds
/// or is dropped unfinished), so no waker outlives its worker. A reply it was
/// writing is then left: its night is still kept, for the next look.
pub(super) struct WakerTask(JoinHandle<()>);

impl Drop for WakerTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Runs `waker` until the returned task is dropped.
pub(super) fn spawn<E: ReplyEngine>(mut waker: Waker<E>) -> WakerTask {
    WakerTask(crate::schema::spawn_here(async move {
        loop {
            tokio::time::sleep(waker.every).await;
            if let Err(e) = waker.look().await {
                tracing::debug!("no deferred message answered this time: {e:#}");
            }
        }
    }))
}

impl<E: ReplyEngine> Waker<E> {
    /// Whether the sleep hours are known to be over.
    fn awake(&self) -> bool {
        *self.dawn.borrow() == SleepNow::Awake
    }

    /// Answers, one at a time, the deferred messages no other worker claimed.
    async fn look(&mut self) -> Result<()> {
        if !self.awake() {
            return Ok(());
        }
        for (contact, kept) in deferred::read(&mut self.con).await? {
            if !self.awake() {
                break;
            }
            let ms = u64::try_from(CLAIM.as_millis()).unwrap_or(u64::MAX);
            if !deferred::claim(&mut self.con, &contact, &self.consumer, ms).await? {
                continue;
            }
            match kept {
                Ok(d) => {
                    let outcome = self.answer(&d).await;
                    self.count(outcome);
                }
                Err(why) => {
                    tracing::warn!(
                        "the deferred message of {contact} cannot be read ({why}): dropped, counted as not answered"
                    );
                    deferred::drop_unreadable(&mut self.con, &contact).await?;
                }
            }
        }
        Ok(())
    }

    /// Adds one night's outcome to the worker's totals.
    fn count(&self, mut o: BatchOutcome) {
        o.entries = o.answered + o.drafted + o.skipped + o.failed;
        super::count_into(&self.status, &o);
    }

    /// Writes and commits the reply to one contact's night; what it did, counted.
    async fn answer(&mut self, d: &Deferral) -> BatchOutcome {
        let mut outcome = BatchOutcome::default();
        let contact = &d.message.contact_id;
        match self.write_and_commit(d).await {
            Ok(Night::Over) => {}
            Ok(Night::Left) => {}
            Ok(Night::Committed(mark, done)) => {
                match done {
                    Some(Committed::Sent) => outcome.answered += 1,
                    Some(Committed::Drafted) => outcome.drafted += 1,
                    Some(Committed::Duplicate | Committed::Withheld) | None => {
                        outcome.skipped += 1;
                    }
                    Some(Committed::Failed(why)) => {
                        outcome.failed += 1;
                        tracing::error!(
                            "the night of {contact} could not be answered, tried again later: {why}"
                        );
                    }
                }
                let (wanted, what) = (self.replicas_to_wait, "a deferred message answered");
                if !replicas::confirm(&self.confirmer, &mark, &mut self.con, wanted, what).await {
                    outcome.unreplicated += 1;
                }
            }
            Err(e) => {
                outcome.failed += 1;
                tracing::error!(
                    "no reply yet to the night of {contact} ({}), tried again later: {e:#}",
                    d.message.message_id
                );
            }
        }
        outcome
    }

    /// Writes the reply to `d`'s night and commits it while it is still due.
    async fn write_and_commit(&mut self, d: &Deferral) -> Result<Night> {
        let m = &d.message;
        // The list was read before the replies before this one were written:
        // a night over meanwhile, or left to a newer message, costs no call
        // of the engine.
        if !self.still_due(d).await? {
            return Ok(Night::Over);
        }
        let g = entry_of(d);
        let persona = self
            .personas
            .for_contact(&mut self.con, &m.contact_id)
            .await?;
        let w = generate(&*self.engine, &mut self.con, &g, &persona, &self.learned).await?;
        if !self.still_due(d).await? {
            return Ok(Night::Left);
        }
        let (key, wanted) = (schema::queue_messages(), self.replicas_to_wait);
        let mark = self.confirmer.begin(&mut self.con, key, wanted).await;
        let pair = [(&g, w)];
        let (drafting, mode) = (self.drafting, self.sleep_mode);
        let done = commit(&mut self.con, &self.group, drafting, mode, &pair, false).await?;
        Ok(Night::Committed(mark, done.items.into_iter().next()))
    }

    /// Whether the reply written to `d`'s night is still to be committed: the
    /// sleep hours are known to be over, the night is still kept (a reply to a
    /// newer message, or the person's own, ends it; the commit step checks that
    /// again atomically), and no newer message of the contact is answered or
    /// being answered (that reply has the night in view, and ends it).
    async fn still_due(&mut self, d: &Deferral) -> Result<bool> {
        let m = &d.message;
        if !self.awake() {
            tracing::debug!("the night of {} waits: the sleep hours began", m.contact_id);
            return Ok(false);
        }
        if !deferred::holds(&mut self.con, &m.contact_id, &m.message_id).await? {
            return Ok(false);
        }
        if answered_after(&mut self.con, &m.contact_id, &m.message_id).await? {
            tracing::info!(
                "the night of {} is left to the reply to its newer message",
                m.contact_id
            );
            return Ok(false);
        }
        Ok(true)
    }
}

/// The night's message as the entry to answer: understood in the night, so
/// what was said or shown is what the reply answers.
fn entry_of(d: &Deferral) -> ParsedEntry {
    let m = &d.message;
    let g = ParsedEntry::new(
        &d.stream_id,
        &CheckedEntry {
            message_id: Cow::Borrowed(&m.message_id),
            contact_id: Cow::Borrowed(&m.contact_id),
            content: Cow::Borrowed(&m.content),
            timestamp: m.timestamp,
            direction: Direction::Incoming,
            from_me: false,
            media: None,
        },
    );
    match &m.media {
        Some(mark) => g.understood(None, mark.clone()),
        None => g,
    }
}

/// Whether a message `contact` wrote after `message_id` (as its history orders
/// them) is answered, drafted or decided to be answered (`seen`, its reply
/// being written by a slow engine).
async fn answered_after(con: &mut Con, contact: &str, message_id: &str) -> Result<bool> {
    let history = store::history::recent(con, contact, schema::HISTORY_LEN).await?;
    let Some(at) = history.iter().rposition(|t| t.message_id == message_id) else {
        return Ok(false);
    };
    let newer: Vec<&str> = history[at + 1..]
        .iter()
        .filter(|t| t.speaker == Speaker::Contact)
        .map(|t| t.message_id.as_str())
        .collect();
    let states = store::handled::states(con, &newer).await?;
    Ok(states
        .iter()
        .flatten()
        .any(|s| matches!(s.as_str(), "seen" | "answered" | "drafted")))
}
