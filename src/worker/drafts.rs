//! The drafts' keeper, a task beside the worker's loop (issue 21): twice per
//! chores period (`WorkerConfig::chores_every`, a second by default) it moves
//! the drafts not decided within `draft_ttl` to `QUEUE:deadletter` (never
//! sent), and writes again, one at a time, the drafts the operator asked for
//! (`R`, `regenerate`): a new reply to the contact's latest message, in the
//! place of the old draft, under the commit step's checks.

use std::sync::Arc;
use std::time::Duration;

use crate::connection::Con;
use anyhow::{Result, bail};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::batch;
use super::learned::LearnedCache;
use super::parsed_entry::ParsedEntry;
use super::personas::Personas;
use super::replicas;
use super::{Worker, WorkerStatus};
use crate::conversation::Speaker;
use crate::entry::CheckedEntry;
use crate::reply::ReplyEngine;
use crate::schema::{self, Direction};
use crate::store;
use crate::store::drafts::ForeignIndex;
use crate::store::drafts::sweep::{self, NewDraft, Regeneration, Rewritten};
use crate::store::durability::Confirmer;

/// Drafts expired per step.
const EXPIRE_BATCH: usize = 100;
/// Requests taken per look: each is a call of the engine.
const TAKE: usize = 8;

/// What the keeper works with: the worker's engine, what was learned, a
/// connection and a persona resolver of its own.
pub(super) struct Keeper<E> {
    engine: Arc<E>,
    con: Con,
    learned: Arc<LearnedCache>,
    personas: Personas,
    ttl_ms: i64,
    status: watch::Receiver<WorkerStatus>,
    replicas_to_wait: u32,
    /// Which connection a rewrite went on, for its `WAIT`.
    confirmer: Confirmer,
    /// How often it looks: twice per chores period of the worker.
    every: Duration,
    /// Whether a `DRAFTS` of another program's type was said in the log, so it
    /// is said once while it lasts.
    foreign_said: bool,
}

impl<E: ReplyEngine> Worker<E> {
    /// The keeper of this worker's drafts.
    pub(super) fn keeper(&self) -> Keeper<E> {
        Keeper {
            engine: Arc::clone(&self.engine),
            // The worker's own: each writer marks it before its writes.
            con: self.con.clone(),
            learned: Arc::clone(&self.learned),
            personas: Personas::new(&self.cfg.default_persona, &self.cfg.user_id),
            ttl_ms: self.cfg.draft_ttl_ms,
            status: self.status.subscribe(),
            replicas_to_wait: self.cfg.replicas_to_wait,
            confirmer: self.confirmer.clone(),
            every: self.cfg.chores_every / 2,
            foreign_said: false,
        }
    }
}

/// The keeper's task, ended when dropped: also when the worker's loop unwinds
/// from a panic or is dropped unfinished (a pool restarting it), so no keeper
/// outlives its worker.
pub(super) struct KeeperTask(JoinHandle<()>);

impl Drop for KeeperTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Runs `keeper` until the returned task is dropped.
pub(super) fn spawn<E: ReplyEngine>(mut keeper: Keeper<E>) -> KeeperTask {
    KeeperTask(crate::schema::spawn_here(async move {
        loop {
            tokio::time::sleep(keeper.every).await;
            match keeper.expire().await {
                Ok(()) => keeper.foreign_said = false,
                Err(e) => keeper.not_expired(&e),
            }
            if let Err(e) = keeper.regenerate().await {
                tracing::debug!("drafts not written again this time: {e:#}");
            }
        }
    }))
}

impl<E: ReplyEngine> Keeper<E> {
    /// Says why drafts were not expired: a `DRAFTS` another program gave its
    /// own type as a warning, once while it lasts (the operator has to act);
    /// anything else (Redis away a moment) for debugging.
    fn not_expired(&mut self, e: &anyhow::Error) {
        if e.downcast_ref::<ForeignIndex>().is_none() {
            tracing::debug!("drafts not expired this time: {e:#}");
        } else if !self.foreign_said {
            tracing::warn!("no draft expires (nor can be decided): {e:#}");
            self.foreign_said = true;
        }
    }

    /// Expires every draft past its time, a batch per step.
    async fn expire(&mut self) -> Result<()> {
        loop {
            let n = sweep::expire(&mut self.con, EXPIRE_BATCH).await?;
            if n > 0 {
                tracing::info!("{n} drafts expired unsent (QUEUE:deadletter, reason expired)");
            }
            if n < EXPIRE_BATCH {
                return Ok(());
            }
        }
    }

    /// Writes again the drafts asked for. A request that fails is dropped (the
    /// draft waits as it was, the operator may ask again): retrying by itself
    /// would call a paid engine again and again.
    async fn regenerate(&mut self) -> Result<()> {
        for r in sweep::take_regenerations(&mut self.con, TAKE).await? {
            match self.rewrite(&r).await {
                Ok(done) => tracing::info!("draft {} written again: {done:?}", r.draft_id),
                Err(e) => tracing::warn!("draft {} not written again: {e:#}", r.draft_id),
            }
        }
        Ok(())
    }

    async fn rewrite(&mut self, r: &Regeneration) -> Result<Rewritten> {
        let entry = self.latest_message(r).await?;
        let persona = self
            .personas
            .for_contact(&mut self.con, &r.contact_id)
            .await?;
        let engine = &*self.engine;
        let w = batch::generate(engine, &mut self.con, &entry, &persona, &self.learned).await?;
        let new = NewDraft {
            stream_id: entry.stream_id(),
            message_id: entry.message_id(),
            reply_id: &w.reply_id,
            content: &w.content,
            persona: &w.persona,
        };
        let asleep = self.status.borrow().asleep.is_some();
        let key = schema::queue_messages();
        let wanted = self.replicas_to_wait;
        let mark = self.confirmer.begin(&mut self.con, key, wanted).await;
        let done = sweep::rewrite(&mut self.con, r, &new, self.ttl_ms, asleep).await?;
        replicas::confirm(
            &self.confirmer,
            &mark,
            &mut self.con,
            self.replicas_to_wait,
            "a draft written again",
        )
        .await;
        Ok(done)
    }

    /// The contact's latest message as kept in its history, as the entry to answer.
    async fn latest_message(&mut self, r: &Regeneration) -> Result<ParsedEntry> {
        let history =
            store::history::recent(&mut self.con, &r.contact_id, schema::HISTORY_LEN).await?;
        let Some(last) = history.iter().rev().find(|t| t.speaker == Speaker::Contact) else {
            bail!("no message of the contact is kept to answer");
        };
        let checked = CheckedEntry {
            message_id: last.message_id.as_str().into(),
            contact_id: r.contact_id.as_str().into(),
            content: last.text.as_str().into(),
            timestamp: last.timestamp,
            direction: Direction::Incoming,
            from_me: false,
            media: None,
        };
        Ok(ParsedEntry::new(&r.stream_id, &checked))
    }
}
