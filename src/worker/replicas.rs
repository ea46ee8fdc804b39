//! The worker's writes confirmed on `replicas_to_wait` replicas (`WAIT`) before
//! their outcome counts. A confirmation that fails is said in the log and
//! counted: the steps stay done on the primary (their entries acknowledged, the
//! replies queued), so nothing is retried; a failover before the replicas catch
//! up could lose them.
//!
//! A `WAIT` covers only the writes of its own connection, and Redis answers
//! nothing else on that connection while it waits (up to `WAIT_TIMEOUT` when a
//! replica lags). So a worker that waits writes and waits on a connection of its
//! own: its `WAIT` holds up only that worker's loop, its slow engine's jobs, its
//! drafts' keeper and its waker (whose writes it covers), never the connection
//! it was given, which a pool shares between its namespaces and on which the
//! jobs' pause watch runs. Each of those writers marks the connection before
//! its writes ([`Confirmer::begin`]), so their `WAIT`s vouch for their own.

use crate::connection::Con;
use crate::reply::ReplyEngine;
use crate::schema;
use crate::store::durability::{Confirmer, Mark, WAIT_TIMEOUT};

use super::Worker;

impl<E: ReplyEngine> Worker<E> {
    /// Marks the server connection this worker's writes go on, before them.
    pub(super) async fn begin_confirming(&mut self) -> Mark {
        let key = schema::queue_messages();
        let wanted = self.cfg.replicas_to_wait;
        self.confirmer.begin(&mut self.con, key, wanted).await
    }

    /// Whether `replicas_to_wait` replicas hold everything this worker's
    /// connection wrote since `mark`; `what` names the writes for the log.
    pub(super) async fn replicated(&mut self, mark: &Mark, what: &str) -> bool {
        let wanted = self.cfg.replicas_to_wait;
        confirm(&self.confirmer, mark, &mut self.con, wanted, what).await
    }
}

/// Whether `wanted` replicas hold everything `con` wrote since `mark` was
/// taken; an error in the log naming `what` when they do not.
pub(super) async fn confirm(
    confirmer: &Confirmer,
    mark: &Mark,
    con: &mut Con,
    wanted: u32,
    what: &str,
) -> bool {
    // All of a person's keys share one slot: on a Cluster the WAIT goes where the queue is.
    let key = schema::queue_messages();
    match confirmer
        .confirm(mark, con, key, wanted, WAIT_TIMEOUT)
        .await
    {
        Ok(_) => true,
        Err(e) => {
            tracing::error!(
                "{what}: done on the primary but not confirmed on the replicas: {e}; a failover before they catch up could lose it"
            );
            false
        }
    }
}
