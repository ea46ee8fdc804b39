//! One batch through the pipeline: parse -> dead-letter the bad -> decide ->
//! write replies -> commit. Three round trips whatever the batch size.
//!
//! A failure that belongs to one entry stays with it: the scripts give such an
//! entry a `fail:` verdict (it is dead-lettered with the reason), and a script that
//! fails as a whole for a reason that may lie in one entry is run again on each
//! half of the batch until the entry at fault is alone (see `isolation`).
//! Entries are sorted before the step in `triage`; the steps' arguments are
//! built in `step_args`.

mod isolation;
mod step_args;
mod triage;

use crate::connection::Con;
use anyhow::{Context, Result};

use super::Worker;
use super::learned::LearnedCache;
use super::parsed_entry::ParsedEntry;
use super::personas::ContactPersona;
use super::request;
use super::verdict::{Committed, Verdict};
use crate::reply::ReplyEngine;
use crate::schema::{Direction, MessageEvent};
use crate::store;
use crate::store::deadletter;
use isolation::Isolation;
use step_args::decide;
use triage::set_aside_expired;

pub(super) use isolation::may_be_one_entrys_fault;
pub(super) use step_args::{Drafting, commit};
pub(super) use triage::{RawEntry, Triaged, dead_letter_of, triage, triage_raw};

/// What happened to a batch.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct BatchOutcome {
    /// Entries looked at.
    pub entries: usize,
    /// Replies written.
    pub answered: usize,
    /// Replies kept as drafts for the operator (draft mode).
    pub drafted: usize,
    /// Entries decided without a reply (paused, not enabled, duplicates ...).
    pub skipped: usize,
    /// Entries sent to the dead-letter stream.
    pub dead_lettered: usize,
    /// Entries left pending because writing their reply failed.
    pub failed: usize,
    /// Times its writes were not confirmed on `replicas_to_wait` replicas in time.
    pub unreplicated: usize,
}

/// A reply written by the engine, ready for the commit step (or, written
/// again for a draft, for the drafts' keeper).
pub(super) struct Written {
    stream_id: String,
    message_id: String,
    contact_id: String,
    pub(super) reply_id: String,
    pub(super) content: String,
    pub(super) persona: String,
    delay_ms: u64,
    event: String,
}

impl<E: ReplyEngine> Worker<E> {
    /// Runs one batch through the pipeline ([`Self::steps`]); with
    /// `replicas_to_wait`, its outcome counts once that many replicas hold what
    /// the steps wrote (a replica that does not is counted in `unreplicated`).
    pub(super) async fn process_triaged(&mut self, batch: &mut Triaged) -> Result<BatchOutcome> {
        let mark = self.begin_confirming().await;
        let mut outcome = self.steps(batch).await?;
        if !self.replicated(&mark, "a batch").await {
            outcome.unreplicated += 1;
        }
        Ok(outcome)
    }

    /// Runs one batch of parsed entries through the pipeline. Dead letters leave
    /// `batch` once written, so a retry does not write them twice. Entries whose
    /// reply could not be written stay pending and come back through the claim
    /// loop; on an error, every entry not yet acknowledged is still pending in Redis.
    async fn steps(&mut self, batch: &mut Triaged) -> Result<BatchOutcome> {
        let mut outcome = BatchOutcome {
            entries: batch.len(),
            ..BatchOutcome::default()
        };
        set_aside_expired(batch, store::now_ms());
        deadletter::from_queue(&mut self.con, &self.cfg.group, &batch.bad).await?;
        outcome.dead_lettered = batch.bad.len();
        batch.bad.clear();
        outcome.failed += self.understand(&mut batch.good).await;
        let good: Vec<&ParsedEntry> = batch.good.iter().collect();
        if good.is_empty() {
            return Ok(outcome);
        }
        // An engine that answers instantly writes its replies before the decision, so
        // decision and reply are one atomic step; others write only what was decided.
        let mut replies: Vec<Option<Written>> = Vec::with_capacity(good.len());
        for &g in &good {
            let wanted =
                self.engine.instant() && g.direction() == Direction::Incoming && !g.is_unread();
            replies.push(if wanted {
                self.write_reply(g).await.ok()
            } else {
                None
            });
        }
        let asleep = self.asleep().await;
        let pairs: Vec<(&ParsedEntry, Option<Written>)> = good.into_iter().zip(replies).collect();
        let mut iso = Isolation::new(pairs.len());
        while let Some(range) = iso.next() {
            let reply = decide(&mut self.con, &self.cfg, &pairs[range.clone()], asleep).await;
            iso.settle(range, reply, |e| Verdict::Failed(format!("{e:#}")))?;
        }
        let decided = iso.finish();
        self.warn_once(&decided.warnings);
        let live: Vec<(&ParsedEntry, &Verdict)> = pairs
            .iter()
            .zip(&decided.items)
            .map(|((g, _), v)| (*g, v))
            .collect();
        self.learned.learn_live(&mut self.con, &live).await;
        let mut failed = Vec::new();
        let mut to_write = Vec::new();
        self.forget_media(
            pairs
                .iter()
                .zip(&decided.items)
                .filter(|(_, v)| !matches!(v, Verdict::Answer | Verdict::Failed(_)))
                .map(|((g, _), _)| *g),
        )
        .await;
        for ((g, _), v) in pairs.iter().zip(decided.items) {
            match v {
                Verdict::Sent => outcome.answered += 1,
                Verdict::Drafted => outcome.drafted += 1,
                Verdict::Answer => to_write.push(*g),
                Verdict::Failed(why) => failed.push(dead_letter_of(g, &why)),
                other => {
                    tracing::debug!("{} ({}): {other}", g.message_id(), g.contact_id());
                    outcome.skipped += 1;
                }
            }
        }
        if self.scheduler.is_some() {
            // A slow engine writes beside the read loop; its jobs commit themselves.
            self.schedule(&to_write, &mut outcome).await?;
            deadletter::from_queue(&mut self.con, &self.cfg.group, &failed).await?;
            outcome.dead_lettered += failed.len();
            return Ok(outcome);
        }
        let mut written = Vec::with_capacity(to_write.len());
        for g in to_write {
            match self.write_reply(g).await {
                Ok(w) => written.push((g, w)),
                Err(e) => {
                    outcome.failed += 1;
                    tracing::error!(
                        "no reply to {} (entry {}), left pending for a retry: {e:#}",
                        g.message_id(),
                        g.stream_id()
                    );
                }
            }
        }
        // Writing the replies may have taken the batch into the sleep hours.
        let asleep = !written.is_empty() && self.asleep().await;
        let mut iso = Isolation::new(written.len());
        while let Some(range) = iso.next() {
            let reply = commit(
                &mut self.con,
                &self.cfg.group,
                Drafting::of(&self.cfg),
                self.cfg.sleep_mode,
                &written[range.clone()],
                asleep,
            );
            iso.settle(range, reply.await, |e| Committed::Failed(format!("{e:#}")))?;
        }
        let committed = iso.finish();
        self.warn_once(&committed.warnings);
        self.forget_media(
            written
                .iter()
                .zip(&committed.items)
                .filter(|(_, c)| !matches!(c, Committed::Failed(_)))
                .map(|((g, _), _)| *g),
        )
        .await;
        for ((g, _), c) in written.iter().zip(committed.items) {
            match c {
                Committed::Sent => outcome.answered += 1,
                Committed::Drafted => outcome.drafted += 1,
                Committed::Failed(why) => failed.push(dead_letter_of(g, &why)),
                Committed::Duplicate | Committed::Withheld => outcome.skipped += 1,
            }
        }
        deadletter::from_queue(&mut self.con, &self.cfg.group, &failed).await?;
        outcome.dead_lettered += failed.len();
        Ok(outcome)
    }

    /// Logs each best-effort write that failed, once per distinct text until the
    /// text changes, so a foreign key does not fill the log with one line a batch.
    pub(super) fn warn_once(&mut self, warnings: &[String]) {
        for w in warnings {
            if self.last_warning.as_deref() != Some(w) {
                tracing::warn!("a best-effort write failed (the twin goes on): {w}");
                self.last_warning = Some(w.clone());
            }
        }
    }

    async fn write_reply(&mut self, g: &ParsedEntry) -> Result<Written> {
        let persona = self
            .personas
            .for_contact(&mut self.con, g.contact_id())
            .await?;
        generate(&*self.engine, &mut self.con, g, &persona, &self.learned).await
    }

    /// Hands entries to answer to the scheduler (slow engines), each with its
    /// contact's persona. An entry whose persona cannot be read stays pending for a
    /// retry, as one whose reply cannot be written.
    async fn schedule(
        &mut self,
        to_write: &[&ParsedEntry],
        outcome: &mut BatchOutcome,
    ) -> Result<()> {
        let mut jobs = Vec::with_capacity(to_write.len());
        for &g in to_write {
            match self
                .personas
                .for_contact(&mut self.con, g.contact_id())
                .await
            {
                Ok(persona) => jobs.push((g.clone(), persona)),
                Err(e) => {
                    outcome.failed += 1;
                    tracing::error!(
                        "no reply to {} (entry {}), left pending for a retry: {e:#}",
                        g.message_id(),
                        g.stream_id()
                    );
                }
            }
        }
        let Some(scheduler) = self.scheduler.as_ref() else {
            return Ok(());
        };
        let submitted = scheduler.submit(jobs).await?;
        outcome.skipped += submitted.superseded;
        if submitted.left > 0 {
            tracing::info!(
                "{} entries to answer left pending: the worker is stopping",
                submitted.left
            );
        }
        Ok(())
    }
}

/// Asks `engine` for the reply to `g` in `persona`'s style, with the conversation
/// as it stands now (a burst's earlier messages included) and what was learned
/// from the person's chats with this contact.
pub(super) async fn generate<E: ReplyEngine>(
    engine: &E,
    con: &mut Con,
    g: &ParsedEntry,
    persona: &ContactPersona,
    learning: &LearnedCache,
) -> Result<Written> {
    let mut message = g.message();
    // What was said or shown is what the twin answers, marked as a voice note or photo.
    if let Some(mark) = g.media_mark() {
        message.content = crate::schema::media::prompt_text(&message.content, mark);
    }
    let wanted = request::history_wanted(engine, con, learning, g.contact_id()).await;
    let history = store::history::recent(con, g.contact_id(), wanted).await?;
    let reply = request::ask(engine, con, learning, persona, &message, &history).await?;
    learning.handed_out(g.contact_id(), &reply.content);
    let persona_id = persona.persona_id.clone();
    let reply_id = format!("bot_{}", g.message_id());
    let event = serde_json::to_string(&MessageEvent {
        message_id: reply_id.clone(),
        contact_id: g.contact_id().to_owned(),
        content: reply.content.clone(),
        bot_sent: true,
        timestamp: store::now_ms(),
        from_me: false,
        media: None,
    })
    .context("cannot encode the reply event")?;
    Ok(Written {
        stream_id: g.stream_id().to_owned(),
        message_id: g.message_id().to_owned(),
        contact_id: g.contact_id().to_owned(),
        reply_id,
        content: reply.content,
        persona: persona_id,
        delay_ms: reply.delay_ms,
        event,
    })
}
