//! The worker's writes confirmed on `replicas_to_wait` replicas (`WAIT`) before
//! their outcome counts. A confirmation that fails is said in the log and
//! counted: the steps stay done on the primary (their entries acknowledged, the
//! replies queued), so nothing is retried; a failover before the replicas catch
//! up could lose them.
//!
//! A `WAIT` covers only the writes of its own connection, and Redis answers
//! nothing else on that connection while it waits (up to `WAIT_TIMEOUT` when a
//! replica lags). So a worker that waits writes and waits on a connection of its
//! own: its `WAIT` holds up only that worker's commands (its loop, its slow
//! engine's jobs and its drafts' keeper, whose writes it covers), never those on
//! the connection it was given, which a pool shares between its namespaces.

use crate::connection::{self, Client, Con};
use crate::reply::ReplyEngine;
use crate::schema;
use crate::store::durability::{self, WAIT_TIMEOUT};

use super::Worker;

impl<E: ReplyEngine> Worker<E> {
    /// Whether `replicas_to_wait` replicas hold everything this worker's
    /// connection wrote so far; `what` names the writes for the log.
    pub(super) async fn replicated(&mut self, what: &str) -> bool {
        confirm(&mut self.con, self.cfg.replicas_to_wait, what).await
    }
}

/// The connection a worker given `shared` writes and waits on: with `wanted`
/// replicas to wait for, one of its own on `client` (opened at its first
/// command, found again after a failover as `shared` is); without, `shared`.
pub(super) fn own_connection(client: &Client, shared: Con, wanted: u32) -> Con {
    if wanted == 0 {
        return shared;
    }
    match connection::lazy_manager(client, None) {
        Ok(own) => own,
        Err(e) => {
            tracing::warn!(
                "no connection of its own for the worker ({e:#}): its WAITs hold up the shared one"
            );
            shared
        }
    }
}

/// Whether `wanted` replicas hold everything `con` wrote so far; an error in the
/// log naming `what` when they do not.
pub(super) async fn confirm(con: &mut Con, wanted: u32, what: &str) -> bool {
    // All of a person's keys share one slot: on a Cluster the WAIT goes where the queue is.
    let key = schema::queue_messages();
    match durability::wait_replicas(con, key, wanted, WAIT_TIMEOUT).await {
        Ok(_) => true,
        Err(e) => {
            tracing::error!(
                "{what}: done on the primary but not confirmed on the replicas: {e}; a failover before they catch up could lose it"
            );
            false
        }
    }
}
