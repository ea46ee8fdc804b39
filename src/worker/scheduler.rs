//! Replies of a slow engine (a language model) written beside the read loop, not
//! inside it: at seconds a reply, a batch answered one by one would outlive the
//! claim time and the 5-minute age limit.
//!
//! The decide step stays the gate: only entries it gave the verdict `answer` come
//! here. Each becomes a job that waits a quiet window, takes one of the
//! `max_generations` permits, asks the engine, and commits its reply through the
//! commit step, whose re-check of the pauses stays the guarantee. A contact has
//! one job at a time: a newer message cancels the job of an older one that has not
//! begun committing (its entry is recorded `superseded` by the supersede step), so
//! one reply answers a burst. A poll of the pauses cancels jobs of contacts paused
//! meanwhile and hands their entries back to be decided again; the worker stops
//! reading while the scheduler holds its capacity. Entries held here stay pending
//! in the group and are claimed again by this consumer now and then, so no other
//! worker's claim loop takes them while their reply is written.

mod finished;

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::connection::Con;
use anyhow::{Context, Result};
use futures_util::FutureExt;
use tokio::sync::{Notify, Semaphore, mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use super::batch::{self, Written};
use super::learned::LearnedCache;
use super::parsed_entry::ParsedEntry;
use super::personas::ContactPersona;
use super::recovery::parse_id;
use super::verdict::{Committed, ScriptReply, UnknownVerdict};
use super::{WorkerConfig, WorkerStatus};
use crate::reply::ReplyEngine;
use crate::reply::llm::error::LlmError;
use crate::schema::{self, Direction};
use crate::store;
use crate::store::durability::{Confirmer, Mark};
use crate::store::functions::{Call, Step};

/// How often the pauses of contacts with a job are read while any job runs: the
/// kill switch must stop generations well within its 2 seconds.
const PAUSE_POLL: Duration = Duration::from_millis(200);
/// Longest wait, at stop, for jobs already committing.
const STOP_WAIT: Duration = Duration::from_secs(3);
/// Jobs held per generation permit before the worker stops reading: enough that
/// every permit finds a job past its quiet window.
const HELD_PER_PERMIT: usize = 4;

/// Where a job is; only a job not yet committing can be cancelled. Stored as
/// its `u8` in an atomic, so the order of the variants is the order of the steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
enum JobState {
    /// Queued behind a generation permit or the contact's quiet window.
    Waiting = 0,
    /// The engine is writing the reply.
    Generating = 1,
    /// The commit step runs: too late to cancel.
    Committing = 2,
    /// Cancelled (superseded, paused, stopping) before it committed.
    Cancelled = 3,
}

/// A job's state, shared between its task and whoever may cancel it.
#[derive(Debug, Default)]
struct Control(AtomicU8);

impl Control {
    /// Cancels the job unless it has begun committing; true when it did.
    fn cancel(&self) -> bool {
        self.0
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |s| {
                (s < JobState::Committing as u8).then_some(JobState::Cancelled as u8)
            })
            .is_ok()
    }

    /// Moves from `from` to `to`; false when the job was cancelled meanwhile.
    fn advance(&self, from: JobState, to: JobState) -> bool {
        self.0
            .compare_exchange(from as u8, to as u8, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
    }
}

/// A contact's job.
struct Slot {
    id: u64,
    entry: ParsedEntry,
    control: Arc<Control>,
    task: JoinHandle<()>,
    /// Ends when the task does: the contact's next job waits for it.
    finished: Option<oneshot::Receiver<()>>,
}

#[derive(Default)]
struct State {
    slots: HashMap<String, Slot>,
    next_id: u64,
    stopped: bool,
}

/// How a job ended, for the worker's loop.
pub(super) enum Done {
    /// The commit step ran: its result and warnings.
    Committed {
        /// The connection marked before the commit, for the `WAIT` covering it.
        mark: Mark,
        /// The entry answered.
        entry: ParsedEntry,
        /// What the step did.
        result: Committed,
        /// Best-effort writes that failed.
        warnings: Vec<String>,
    },
    /// The engine or Redis failed, or the job's task panicked: the entry stays
    /// pending for the claim loop, which dead-letters it after `max_deliveries`.
    Failed {
        /// The entry.
        entry: ParsedEntry,
        /// Why.
        error: anyhow::Error,
    },
    /// The engine refused what the model wrote (it leaked its instructions, said
    /// it is an AI, wrote to someone else): never sent, dead-lettered with the
    /// reason, and the contact paused for the operator. Another call would cost
    /// money for the same risk.
    Refused {
        /// The entry.
        entry: ParsedEntry,
        /// The cleaner's reason: a fixed text, never the model's words.
        why: &'static str,
    },
    /// Cancelled by a pause, or too old by the time a permit came: to be decided again.
    Recheck(ParsedEntry),
}

/// The cleaner's reason when `error` is a refused reply.
fn refusal(error: &anyhow::Error) -> Option<&'static str> {
    match error.downcast_ref::<LlmError>() {
        Some(LlmError::Refused(why)) => Some(why),
        _ => None,
    }
}

/// What the jobs share.
struct Shared<E> {
    engine: Arc<E>,
    /// Where the jobs write: the worker's own connection.
    con: Con,
    /// Where the pause watch reads and keeps the entries claimed: never behind
    /// a `WAIT` of the worker's (see `worker::replicas`).
    watch_con: Con,
    /// Marks `con` before each commit, for the worker's `WAIT` that covers it.
    confirmer: Confirmer,
    replicas_to_wait: u32,
    learned: Arc<LearnedCache>,
    group: String,
    /// Whether and for how long a reply becomes a draft (draft mode).
    drafting: batch::Drafting,
    sleep_mode: crate::sleep::SleepMode,
    consumer: String,
    quiet: Duration,
    keep_alive: Duration,
    permits: Semaphore,
    state: Mutex<State>,
    /// Signalled when a job ends, for a reader waiting for room.
    room: Notify,
    done: mpsc::UnboundedSender<Done>,
    status: watch::Receiver<WorkerStatus>,
}

impl<E> Shared<E> {
    fn state(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere while locked leaves plain data behind: go on with it.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Removes job `id`'s slot unless a newer job took it over.
    fn finish(&self, contact: &str, id: u64) {
        let mut st = self.state();
        if st.slots.get(contact).is_some_and(|s| s.id == id) {
            st.slots.remove(contact);
        }
        drop(st);
        self.room.notify_waiters();
    }

    /// Cancels the jobs of `contacts` that have not begun committing and hands
    /// their entries back to be decided again.
    fn cancel_for_recheck(&self, contacts: &[String]) {
        let mut st = self.state();
        for c in contacts {
            let cancelled = st.slots.get(c).is_some_and(|s| s.control.cancel());
            if cancelled && let Some(slot) = st.slots.remove(c) {
                slot.task.abort();
                tracing::info!(
                    "reply to {} cancelled: paused while it was written",
                    slot.entry.message_id()
                );
                let _ = self.done.send(Done::Recheck(slot.entry));
            }
        }
        drop(st);
        self.room.notify_waiters();
    }
}

/// The scheduler of one worker.
pub(super) struct Scheduler<E> {
    shared: Arc<Shared<E>>,
    done: mpsc::UnboundedReceiver<Done>,
    capacity: usize,
    watcher: Option<JoinHandle<()>>,
}

impl<E: ReplyEngine> Scheduler<E> {
    /// A scheduler for `engine` writing on the first of `cons` (marked by
    /// `confirmer`) and watching the pauses on the second, following the worker's `status` (for
    /// the sleep hours) and answering with what was `learned`; [`Self::start`]
    /// begins its pause watch.
    pub(super) fn new(
        engine: Arc<E>,
        (con, watch_con, confirmer): (Con, Con, Confirmer),
        cfg: &WorkerConfig,
        status: watch::Receiver<WorkerStatus>,
        learned: Arc<LearnedCache>,
    ) -> Self {
        let permits = cfg.max_generations.max(1);
        let (tx, rx) = mpsc::unbounded_channel();
        let shared = Shared {
            engine,
            con,
            watch_con,
            confirmer,
            replicas_to_wait: cfg.replicas_to_wait,
            learned,
            group: cfg.group.clone(),
            drafting: batch::Drafting::of(cfg),
            sleep_mode: cfg.sleep_mode,
            consumer: cfg.consumer.clone(),
            quiet: cfg.burst_quiet,
            // Well inside the claim time, so no claim loop sees a held entry idle.
            keep_alive: (cfg.claim_idle / 3).max(PAUSE_POLL),
            permits: Semaphore::new(permits),
            state: Mutex::new(State::default()),
            room: Notify::new(),
            done: tx,
            status,
        };
        Self {
            shared: Arc::new(shared),
            done: rx,
            capacity: permits * HELD_PER_PERMIT,
            watcher: None,
        }
    }

    /// Starts the pause watch and keep-alive task, once.
    pub(super) fn start(&mut self) {
        if self.watcher.is_none() {
            self.watcher = Some(crate::schema::spawn_here(watch_jobs(Arc::clone(
                &self.shared,
            ))));
        }
    }

    /// Whether the scheduler holds as many jobs as it takes: read nothing new.
    pub(super) fn full(&self) -> bool {
        self.shared.state().slots.len() >= self.capacity
    }

    /// Waits up to `wait` for a job to end.
    pub(super) async fn wait_for_room(&self, wait: Duration) {
        let notified = self.shared.room.notified();
        if !self.full() {
            return;
        }
        let _ = tokio::time::timeout(wait, notified).await;
    }

    /// Jobs ended since the last call.
    pub(super) fn take_done(&mut self) -> Vec<Done> {
        let mut out = Vec::new();
        while let Ok(d) = self.done.try_recv() {
            out.push(d);
        }
        out
    }

    /// Takes entries to answer, in stream order, each with its contact's persona.
    /// Entries a newer one of the same contact answers are recorded `superseded`
    /// (and acknowledged) here; returns how many, and the entries not taken
    /// because the scheduler stopped (they stay pending).
    pub(super) async fn submit(
        &self,
        jobs: Vec<(ParsedEntry, ContactPersona)>,
    ) -> Result<Submitted> {
        let mut superseded: Vec<Superseded> = Vec::new();
        let mut left = 0;
        {
            let mut st = self.shared.state();
            for (entry, persona) in jobs {
                if st.stopped {
                    left += 1;
                    continue;
                }
                if let Some(old) = self.place(&mut st, entry, persona) {
                    superseded.push(old);
                }
            }
        }
        let n = superseded
            .iter()
            .filter(|s| matches!(s, Superseded::Older(_)))
            .count();
        if !superseded.is_empty() {
            record_superseded(
                &mut self.shared.con.clone(),
                &self.shared.group,
                &superseded,
            )
            .await?;
        }
        Ok(Submitted {
            superseded: n,
            left,
        })
    }

    /// Gives `entry` its contact's job; returns the entry this makes superseded.
    fn place(
        &self,
        st: &mut State,
        entry: ParsedEntry,
        persona: ContactPersona,
    ) -> Option<Superseded> {
        let contact = entry.contact_id().to_owned();
        let mut wait = None;
        let mut superseded = None;
        if let Some(slot) = st.slots.get_mut(&contact) {
            if slot.entry.stream_id() == entry.stream_id() {
                // Delivered again (own pending re-read after an outage): it has its job.
                return None;
            }
            if slot.entry.message_id() == entry.message_id() {
                // The same message queued twice: its job answers it once.
                return Some(Superseded::Duplicate(entry));
            }
            if self.shared.quiet.is_zero() {
                // No quiet window: every message is answered on its own, in turn.
            } else if parse_id(entry.stream_id()) < parse_id(slot.entry.stream_id()) {
                // An older message came back (a claim): the job of the newer one answers it.
                return Some(Superseded::Older(entry));
            } else if slot.control.cancel() {
                slot.task.abort();
                superseded = Some(Superseded::Older(slot.entry.clone()));
            }
            // A job already committing finishes first: one at a time per contact.
            wait = slot.finished.take();
        }
        st.next_id += 1;
        let id = st.next_id;
        let control = Arc::new(Control::default());
        let (finished_tx, finished) = oneshot::channel();
        let job = Job {
            id,
            entry: entry.clone(),
            persona,
            control: Arc::clone(&control),
            wait,
            _finished: finished_tx,
        };
        let task = crate::schema::spawn_here(run_job(Arc::clone(&self.shared), job));
        st.slots.insert(
            contact,
            Slot {
                id,
                entry,
                control,
                task,
                finished: Some(finished),
            },
        );
        superseded
    }

    /// Cancels every job not yet committing (their entries stay pending, for the
    /// drain and the review file), waits for those committing, and takes no more.
    pub(super) async fn stop(&mut self) {
        let tasks: Vec<JoinHandle<()>> = {
            let mut st = self.shared.state();
            st.stopped = true;
            st.slots
                .drain()
                .map(|(_, slot)| {
                    if slot.control.cancel() {
                        slot.task.abort();
                    }
                    slot.task
                })
                .collect()
        };
        if let Some(w) = self.watcher.take() {
            w.abort();
        }
        let all = futures_util::future::join_all(tasks);
        if tokio::time::timeout(STOP_WAIT, all).await.is_err() {
            tracing::warn!(
                "replies being committed did not finish within {} s; their entries stay pending",
                STOP_WAIT.as_secs()
            );
        }
    }
}

impl<E> Drop for Scheduler<E> {
    fn drop(&mut self) {
        if let Some(w) = self.watcher.take() {
            w.abort();
        }
        for (_, slot) in self.shared.state().slots.drain() {
            slot.task.abort();
        }
    }
}

/// What [`Scheduler::submit`] did besides taking jobs.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) struct Submitted {
    /// Entries recorded `superseded`.
    pub superseded: usize,
    /// Entries not taken (the scheduler stopped); still pending.
    pub left: usize,
}

/// An entry another job answers.
enum Superseded {
    /// An older message of the contact: recorded `superseded`.
    Older(ParsedEntry),
    /// The same message queued again: only acknowledged.
    Duplicate(ParsedEntry),
}

/// What one job's task owns.
struct Job {
    id: u64,
    entry: ParsedEntry,
    persona: ContactPersona,
    control: Arc<Control>,
    /// The contact's previous job, which ends first.
    wait: Option<oneshot::Receiver<()>>,
    /// Dropped when the task ends (or is aborted), which releases the next job.
    _finished: oneshot::Sender<()>,
}

async fn run_job<E: ReplyEngine>(shared: Arc<Shared<E>>, mut job: Job) {
    if let Some(previous) = job.wait.take() {
        let _ = previous.await;
    }
    // The quiet window: a message of the same contact within it cancels this job.
    tokio::time::sleep(shared.quiet).await;
    // A panic (in the engine, say, on a model's odd answer) must free the slot like
    // any failure, or the contact's entry is kept claimed, never retried nor
    // dead-lettered, and its slot holds the scheduler's capacity for good. Nothing
    // the task shares is left half-changed by an unwind: the permit is released
    // by its drop, and the state's lock is not held across the work.
    let done = AssertUnwindSafe(generate_and_commit(&shared, &job))
        .catch_unwind()
        .await
        .unwrap_or_else(|_| {
            // Not the payload, which may quote the message; the panic hook reported where.
            Some(Done::Failed {
                entry: job.entry.clone(),
                error: anyhow::anyhow!("the reply's task panicked"),
            })
        });
    shared.finish(job.entry.contact_id(), job.id);
    if let Some(done) = done {
        let _ = shared.done.send(done);
    }
}

/// The job's work once its quiet window passed; `None` when it was cancelled.
async fn generate_and_commit<E: ReplyEngine>(shared: &Shared<E>, job: &Job) -> Option<Done> {
    let _permit = shared.permits.acquire().await.ok()?;
    let entry = &job.entry;
    if entry.direction() == Direction::Incoming
        && store::now_ms() - entry.timestamp() > schema::QUEUE_ENTRY_MAX_AGE_MS
    {
        // Deciding it again dead-letters it as expired.
        return Some(Done::Recheck(entry.clone()));
    }
    if !job.control.advance(JobState::Waiting, JobState::Generating) {
        return None;
    }
    let mut con = shared.con.clone();
    let generated = batch::generate(
        &*shared.engine,
        &mut con,
        entry,
        &job.persona,
        &shared.learned,
    )
    .await;
    let written = match generated {
        Ok(w) => w,
        Err(error) => {
            return Some(match refusal(&error) {
                Some(why) => Done::Refused {
                    entry: entry.clone(),
                    why,
                },
                None => Done::Failed {
                    entry: entry.clone(),
                    error,
                },
            });
        }
    };
    if !job
        .control
        .advance(JobState::Generating, JobState::Committing)
    {
        return None;
    }
    Some(commit_one(shared, entry, written).await)
}

/// Commits one reply; a failure that may lie in the entry becomes its result.
async fn commit_one<E>(shared: &Shared<E>, entry: &ParsedEntry, written: Written) -> Done {
    let asleep = shared.status.borrow().asleep.is_some();
    let mut con = shared.con.clone();
    let (key, wanted) = (schema::queue_messages(), shared.replicas_to_wait);
    let mark = shared.confirmer.begin(&mut con, key, wanted).await;
    let pair = [(entry, written)];
    match batch::commit(
        &mut con,
        &shared.group,
        shared.drafting,
        shared.sleep_mode,
        &pair,
        asleep,
    )
    .await
    {
        Ok(ScriptReply {
            mut items,
            warnings,
        }) => match items.pop() {
            Some(result) => Done::Committed {
                mark,
                entry: entry.clone(),
                result,
                warnings,
            },
            None => Done::Failed {
                entry: entry.clone(),
                error: anyhow::anyhow!("the commit step returned nothing"),
            },
        },
        Err(e) if batch::may_be_one_entrys_fault(&e) => Done::Committed {
            mark,
            entry: entry.clone(),
            result: Committed::Failed(format!("{e:#}")),
            warnings: Vec::new(),
        },
        Err(error) => Done::Failed {
            entry: entry.clone(),
            error,
        },
    }
}

/// Records `entries` superseded (the supersede step): marked and acknowledged.
async fn record_superseded(con: &mut Con, group: &str, entries: &[Superseded]) -> Result<()> {
    let mut call = Call::new(Step::Supersede);
    call.key(schema::queue_messages())
        .key(schema::stats())
        .arg(group)
        .arg(schema::HANDLED_BUCKET_MS)
        .handled_keys(store::now_ms());
    for s in entries {
        match s {
            Superseded::Older(e) => {
                call.arg(e.stream_id()).arg(e.message_id());
                tracing::debug!(
                    "{} ({}) superseded by a newer message",
                    e.message_id(),
                    e.contact_id()
                );
            }
            // No message id: acknowledged only, the message's own job records it.
            Superseded::Duplicate(e) => {
                call.arg(e.stream_id()).arg("");
            }
        }
    }
    let raw: Vec<String> = call
        .invoke(con)
        .await
        .context("the supersede step failed")?;
    let reply = ScriptReply::parse(raw, entries.len(), |s| match s {
        "superseded" | "duplicate" => Ok(()),
        other => Err(UnknownVerdict::new("supersede", other)),
    })?;
    for w in reply.warnings {
        tracing::warn!("a best-effort write failed (the twin goes on): {w}");
    }
    // A superseded message is handled: its voice note or photo is not needed
    // (the newer message's reply has it in the history).
    let handled = entries.iter().filter_map(|s| match s {
        Superseded::Older(e) if e.media().is_some() => Some(e.message_id()),
        _ => None,
    });
    if let Err(e) = store::media::forget(con, handled).await {
        tracing::warn!("cannot delete superseded media (it expires within the hour): {e}");
    }
    Ok(())
}

/// While jobs are held: cancels those of contacts paused meanwhile (the kill
/// switch, a pause, a disable), and keeps their entries claimed by this consumer.
async fn watch_jobs<E: ReplyEngine>(shared: Arc<Shared<E>>) {
    let mut con = shared.watch_con.clone();
    let mut last_keep_alive = Instant::now();
    loop {
        tokio::time::sleep(PAUSE_POLL).await;
        let (contacts, ids): (Vec<String>, Vec<String>) = {
            let st = shared.state();
            st.slots
                .iter()
                .map(|(c, s)| (c.clone(), s.entry.stream_id().to_owned()))
                .unzip()
        };
        if contacts.is_empty() {
            continue;
        }
        match paused_contacts(&mut con, &contacts).await {
            Ok(paused) if !paused.is_empty() => shared.cancel_for_recheck(&paused),
            Ok(_) => {}
            Err(e) => tracing::debug!("cannot read the pauses of contacts being answered: {e:#}"),
        }
        if last_keep_alive.elapsed() >= shared.keep_alive {
            last_keep_alive = Instant::now();
            if let Err(e) = keep_claimed(&mut con, &shared.group, &shared.consumer, &ids).await {
                tracing::debug!("cannot keep the entries being answered claimed: {e:#}");
            }
        }
    }
}

/// Of `contacts`, those the twin must not answer now: all of them under the kill
/// switch, else the paused and the not enabled.
async fn paused_contacts(con: &mut Con, contacts: &[String]) -> Result<Vec<String>> {
    let mut mget = redis::cmd("MGET");
    let mut member = redis::cmd("SMISMEMBER");
    member.arg(schema::optin_contacts());
    for c in contacts {
        mget.arg(schema::pause_key(c));
        member.arg(c);
    }
    let (killed, pauses, enabled): (bool, Vec<Option<String>>, Vec<bool>) = redis::pipe()
        .exists(schema::pause_all())
        .add_command(mget)
        .add_command(member)
        .query_async(con)
        .await?;
    let now = store::now_ms();
    Ok(contacts
        .iter()
        .zip(pauses.iter().zip(enabled))
        .filter(|(_, (pause, enabled))| {
            // A pause value that is not a number still pauses, as in the steps.
            let held = pause
                .as_deref()
                .is_some_and(|v| v.parse::<i64>().map_or(true, |until| until > now));
            killed || held || !enabled
        })
        .map(|(c, _)| c.clone())
        .collect())
}

/// Resets the idle time of entries this consumer holds (`XCLAIM ... JUSTID`, which
/// counts no delivery), so no claim loop takes an entry whose reply is being written.
pub(super) async fn keep_claimed(
    con: &mut Con,
    group: &str,
    consumer: &str,
    ids: &[String],
) -> Result<()> {
    let mut cmd = redis::cmd("XCLAIM");
    cmd.arg(schema::queue_messages())
        .arg(group)
        .arg(consumer)
        .arg(0)
        .arg(ids)
        .arg("JUSTID");
    let _: redis::Value = cmd.query_async(con).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_job_committing_cannot_be_cancelled_and_a_cancelled_one_cannot_commit() {
        let c = Control::default();
        assert!(c.advance(JobState::Waiting, JobState::Generating));
        assert!(c.advance(JobState::Generating, JobState::Committing));
        assert!(!c.cancel(), "committing is past cancelling");
        let c = Control::default();
        assert!(c.cancel());
        assert!(!c.advance(JobState::Waiting, JobState::Generating));
        let c = Control::default();
        assert!(c.advance(JobState::Waiting, JobState::Generating));
        assert!(c.cancel());
        assert!(!c.advance(JobState::Generating, JobState::Committing));
    }
}
