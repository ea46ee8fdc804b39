//! What the ends of the scheduler's jobs do in the worker's loop: counts, dead
//! letters of commits that failed on their entry, refused replies left to the
//! operator, and entries handed back to be decided again.

use anyhow::Result;

use super::Done;
use crate::reply::ReplyEngine;
use crate::schema;
use crate::store;
use crate::store::durability::Mark;
use crate::worker::Worker;
use crate::worker::batch::{self, BatchOutcome};
use crate::worker::parsed_entry::ParsedEntry;
use crate::worker::verdict::Committed;

impl<E: ReplyEngine> Worker<E> {
    /// Takes what the scheduler's jobs did since the last call: counts and dead
    /// letters (a commit that failed on the entry's own keys); returns the entries
    /// to decide again (cancelled by a pause, or expired while waiting).
    pub(in crate::worker) async fn finish_jobs(&mut self) -> Result<Vec<ParsedEntry>> {
        let Some(scheduler) = self.scheduler.as_mut() else {
            return Ok(Vec::new());
        };
        let done = scheduler.take_done();
        if done.is_empty() {
            return Ok(Vec::new());
        }
        // Before the loop's own writes here (media deleted, pauses, dead
        // letters); the jobs marked theirs before their commits.
        let own = self.begin_confirming().await;
        let mut outcome = BatchOutcome::default();
        let mut failed = Vec::new();
        let mut recheck = Vec::new();
        self.forget_media(done.iter().filter_map(|d| match d {
            Done::Committed { entry, result, .. } if !matches!(result, Committed::Failed(_)) => {
                Some(entry)
            }
            _ => None,
        }))
        .await;
        let mark = Mark::common(
            std::iter::once(&own).chain(done.iter().filter_map(|d| match d {
                Done::Committed { mark, .. } => Some(mark),
                _ => None,
            })),
        );
        for d in done {
            match d {
                Done::Committed {
                    entry,
                    result,
                    warnings,
                    ..
                } => {
                    self.warn_once(&warnings);
                    match result {
                        Committed::Sent => outcome.answered += 1,
                        Committed::Drafted => outcome.drafted += 1,
                        Committed::Duplicate | Committed::Withheld => outcome.skipped += 1,
                        Committed::Failed(why) => failed.push(batch::dead_letter_of(&entry, &why)),
                    }
                }
                Done::Failed { entry, error } => {
                    outcome.failed += 1;
                    tracing::error!(
                        "no reply to {} (entry {}), left pending for a retry: {error:#}",
                        entry.message_id(),
                        entry.stream_id()
                    );
                }
                Done::Refused { entry, why } => {
                    self.leave_to_the_operator(&entry, why).await;
                    failed.push(batch::dead_letter_of(
                        &entry,
                        &format!("reply refused: {why}"),
                    ));
                }
                Done::Recheck(entry) => recheck.push(entry),
            }
        }
        store::deadletter::from_queue(&mut self.con, &self.cfg.group, &failed).await?;
        outcome.dead_lettered = failed.len();
        // The jobs committed on this connection too (a clone of it): one WAIT
        // covers them, if it is still the server connection each job marked.
        if !self
            .replicated(&mark, "replies written by the scheduler")
            .await
        {
            outcome.unreplicated += 1;
        }
        self.count(&outcome);
        Ok(recheck)
    }

    /// Pauses the contact of a refused reply (reason `refused`, the default pause
    /// length), before its dead letter: were the letter written and the pause not,
    /// the contact's next message would be one more call for the same risk. A
    /// pause that lasts longer already (the operator's, a takeover made while the
    /// model wrote) is kept as it is. A failed pause is said in the log; the
    /// letter is still written.
    async fn leave_to_the_operator(&mut self, entry: &ParsedEntry, why: &str) {
        let contact = entry.contact_id();
        tracing::warn!(
            "the model's reply to {} (entry {}) was refused ({why}); nothing sent, {contact} paused for the operator",
            entry.message_id(),
            entry.stream_id()
        );
        let left: redis::RedisResult<i64> = redis::cmd("PTTL")
            .arg(schema::pause_key(contact))
            .query_async(&mut self.con)
            .await;
        // -1: paused until resumed; -2: not paused.
        if let Ok(ms) = left
            && (ms == -1 || ms >= schema::DEFAULT_PAUSE_MS)
        {
            return;
        }
        let paused = store::control::pause(
            &mut self.con,
            contact,
            schema::DEFAULT_PAUSE_MS,
            schema::PauseReason::Refused,
        )
        .await;
        if let Err(e) = paused {
            tracing::error!("could not pause {contact} after a refused reply: {e:#}");
        }
    }

    /// Stops the scheduler: generations in flight are cancelled and their entries
    /// stay pending, for the drain and the review file. Returns the entries to
    /// decide again.
    pub(in crate::worker) async fn stop_jobs(&mut self) -> Vec<ParsedEntry> {
        if let Some(s) = self.scheduler.as_mut() {
            s.stop().await;
        }
        self.finish_jobs().await.unwrap_or_else(|e| {
            tracing::warn!("could not finish what the replies being written left: {e:#}");
            Vec::new()
        })
    }
}
