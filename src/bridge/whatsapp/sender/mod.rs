//! The reply sender: while the gateway is connected and holds the lease,
//! it reads `QUEUE:responses` in the gateway's group and sends each reply once.
//!
//! - `delivery`: one reply's way out: the pauses re-checked, "typing...", the
//!   claim, the send, its record and its echo;
//! - `failure`: a reply that cannot go now: a retry with the same WhatsApp id,
//!   or a dead letter.

mod delivery;
mod failure;

pub use delivery::too_old_to_claim;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use crate::connection::Con;
use crate::store::durability::Confirmer;
use anyhow::{Context, Result};
use redis::AsyncCommands;
use redis::streams::{StreamId, StreamReadOptions};
use tokio::sync::watch;

use super::gateway::GatewayOptions;
use super::inbox::Inbox;
use super::link::Link;
use super::pacing::{self, Budget};
use crate::schema::{self, response_fields};

/// The gateway's consumer name in [`schema::GATEWAY_GROUP`]: one per account
/// (two gateways of one account share it, and only the holder of the reply
/// lease, [`super::lease`], reads with it), the same after every restart, so
/// the replies it left pending are its own again.
pub fn consumer_name(user_id: &str) -> String {
    format!("gateway-{user_id}")
}

/// How long another consumer of [`schema::GATEWAY_GROUP`] must have been idle
/// before a starting gateway removes it (a live one reads every half second).
pub const IDLE_BEFORE_REMOVAL: Duration = Duration::from_secs(2);

/// How long a stop waits for a sent reply to be recorded (the control room
/// gives the whole gateway 12 s to stop).
const STOP_GRACE: Duration = Duration::from_secs(5);

/// How long a stop waits for a reply being typed to clear its "typing..." (the
/// typing looks at the lease every second, then asks Redis about the pauses).
const TYPING_GRACE: Duration = Duration::from_secs(3);

/// The sender's task, aborted when dropped too (the gateway's future dropped
/// mid-run must not leave a sender behind).
pub(super) struct SenderTask {
    task: tokio::task::JoinHandle<()>,
    /// Held by the sender from a send until it is recorded.
    recording: Arc<tokio::sync::Mutex<()>>,
    /// Held by the sender while it shows "typing...".
    typing: Arc<tokio::sync::Mutex<()>>,
}

impl SenderTask {
    /// Once the sender was told it may not send: lets a reply being typed
    /// clear its "typing..." (at most [`TYPING_GRACE`]) and a send in progress
    /// be recorded (at most [`STOP_GRACE`]: Redis may be gone), then aborts the
    /// task and waits until it is gone.
    pub(super) async fn stop(mut self) {
        let typing = Arc::clone(&self.typing);
        if tokio::time::timeout(TYPING_GRACE, typing.lock())
            .await
            .is_err()
        {
            tracing::debug!("whatsapp gateway: stopped while a reply showed \"typing...\"");
        }
        let recording = Arc::clone(&self.recording);
        let settled = tokio::time::timeout(STOP_GRACE, recording.lock()).await;
        if settled.is_err() {
            tracing::warn!(
                "whatsapp gateway: stopped while a sent reply was being recorded (Redis slow or gone): without its record it goes again after the restart, with the same WhatsApp id, and its echo may be missing from the history"
            );
        }
        self.task.abort();
        let _ = (&mut self.task).await;
    }
}

impl Drop for SenderTask {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts the sender of one connection: it serves while both `connected` and
/// `leased` say so, spending the gateway run's `budget`.
pub(super) fn spawn<L: Link>(
    con: Con,
    link: Arc<L>,
    inbox: Inbox,
    opts: GatewayOptions,
    (connected, leased): (watch::Receiver<bool>, watch::Receiver<bool>),
    budget: Arc<tokio::sync::Mutex<Budget>>,
) -> SenderTask {
    let recording = Arc::new(tokio::sync::Mutex::new(()));
    let typing = Arc::new(tokio::sync::Mutex::new(()));
    let sender = Sender {
        con,
        link,
        inbox,
        opts,
        connected,
        leased,
        deferred: HashMap::new(),
        confirmer: Confirmer::default(),
        recording: Arc::clone(&recording),
        typing: Arc::clone(&typing),
        budget,
    };
    SenderTask {
        task: tokio::spawn(sender.run()),
        recording,
        typing,
    }
}

struct Sender<L: Link> {
    con: Con,
    link: Arc<L>,
    inbox: Inbox,
    opts: GatewayOptions,
    connected: watch::Receiver<bool>,
    /// Whether this gateway holds the reply lease ([`super::lease`]).
    leased: watch::Receiver<bool>,
    /// Replies whose send failed, by stream id: not tried again before this time.
    deferred: HashMap<String, tokio::time::Instant>,
    /// Which server connection `con` was last seen on, for the claims' `WAIT`s.
    confirmer: Confirmer,
    /// Held from a send until it is recorded ([`SenderTask::stop`] waits for it).
    recording: Arc<tokio::sync::Mutex<()>>,
    /// Held while "typing..." shows ([`SenderTask::stop`] waits for it).
    typing: Arc<tokio::sync::Mutex<()>>,
    /// The gateway run's send budget.
    budget: Arc<tokio::sync::Mutex<Budget>>,
}

/// One reply from `QUEUE:responses`.
struct Reply {
    stream_id: String,
    reply_id: String,
    contact_id: String,
    content: String,
    delay: Duration,
    /// The operator's own words: sent as the person, without "typing...",
    /// whatever the pauses and the opt-in say.
    from_owner: bool,
    /// An approved draft: the operator decided, so it goes whatever the pauses
    /// and the opt-in say.
    approved: bool,
    /// The entry's fields, bounded, for a dead letter.
    fields: Vec<(String, String)>,
}

impl Reply {
    fn of(entry: &StreamId) -> Self {
        let get = |f: &str| entry.get::<String>(f).unwrap_or_default();
        let from_owner = get(response_fields::FROM_OWNER) == "true";
        Self {
            stream_id: entry.id.clone(),
            reply_id: get(response_fields::REPLY_ID),
            contact_id: get(response_fields::CONTACT_ID),
            content: get(response_fields::CONTENT),
            delay: if from_owner {
                Duration::ZERO
            } else {
                pacing::typing_delay(&get(response_fields::DELAY_MS))
            },
            from_owner,
            approved: get(response_fields::APPROVED) == "true",
            fields: crate::entry::raw_fields(&entry.map),
        }
    }
}

/// What became of one reply.
enum Delivered {
    /// Sent, withheld or dead-lettered: acknowledged.
    Done,
    /// Its send failed; it stays pending and is tried again after this wait.
    Retry(Duration),
}

impl<L: Link> Sender<L> {
    /// Reads `QUEUE:responses` in the gateway's group while connected and
    /// holding the lease, until the task is aborted.
    async fn run(mut self) {
        let mut leased = self.leased.clone();
        let mut connected = self.connected.clone();
        loop {
            // At once when both hold: the group is created at the stream's end
            // when it is missing, and a reply queued meanwhile would be skipped.
            if leased.wait_for(|held| *held).await.is_err()
                || connected.wait_for(|up| *up).await.is_err()
            {
                return;
            }
            if !self.serving() {
                continue;
            }
            if let Err(e) = self.serve().await {
                tracing::warn!("whatsapp gateway (sender): {e:#}; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }

    /// Own pending entries first (a restart loses none), then new ones; replies
    /// whose send failed are tried again when their wait is over, without
    /// holding back the others.
    async fn serve(&mut self) -> Result<()> {
        let created: redis::RedisResult<()> = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(schema::queue_responses())
            .arg(schema::GATEWAY_GROUP)
            .arg("$")
            .arg("MKSTREAM")
            .query_async(&mut self.con)
            .await;
        if let Err(e) = created
            && e.code() != Some("BUSYGROUP")
        {
            return Err(e).with_context(|| {
                format!(
                    "cannot create the gateway's group on {}",
                    schema::queue_responses()
                )
            });
        }
        self.take_over().await?;
        let mut scan = true;
        while self.serving() {
            let now = tokio::time::Instant::now();
            if scan || self.deferred.values().any(|at| *at <= now) {
                self.scan_pending().await?;
                scan = false;
            }
            // Short blocks: the shared connection's response timeout is 3 s.
            let entries = self.read(">", Some(200)).await?;
            if entries.is_empty() {
                tokio::time::sleep(Duration::from_millis(300)).await;
                continue;
            }
            for entry in entries {
                self.handle(&entry).await?;
            }
        }
        Ok(())
    }

    /// Connected and holding the reply lease.
    fn serving(&self) -> bool {
        *self.connected.borrow() && *self.leased.borrow()
    }

    /// Takes over the replies other consumers of the group left pending (this
    /// gateway under an older name, or another `consumer`), then removes those
    /// consumers once empty. Only the lease holder serves, so nobody else is
    /// sending them. A consumer is removed only when idle for
    /// [`IDLE_BEFORE_REMOVAL`] too: a live one reads every half second, and what
    /// it read between our look and the removal would be lost with it.
    async fn take_over(&mut self) -> Result<()> {
        let others = self.other_consumers().await?;
        if others.iter().any(|c| c.pending > 0) {
            let mut cursor = "0-0".to_owned();
            loop {
                let reply: Vec<redis::Value> = redis::cmd("XAUTOCLAIM")
                    .arg(schema::queue_responses())
                    .arg(schema::GATEWAY_GROUP)
                    .arg(&self.opts.consumer)
                    .arg(0)
                    .arg(&cursor)
                    .arg("COUNT")
                    .arg(100)
                    .arg("JUSTID")
                    .query_async(&mut self.con)
                    .await
                    .context("cannot take over the replies left pending")?;
                cursor = match reply.first() {
                    Some(next) => redis::from_redis_value_ref(next)?,
                    None => break,
                };
                if cursor == "0-0" {
                    break;
                }
            }
        }
        let idle = pacing::millis(IDLE_BEFORE_REMOVAL);
        for c in self.other_consumers().await? {
            if c.pending == 0 && i64::try_from(c.idle).unwrap_or(i64::MAX) >= idle {
                let _: i64 = redis::cmd("XGROUP")
                    .arg("DELCONSUMER")
                    .arg(schema::queue_responses())
                    .arg(schema::GATEWAY_GROUP)
                    .arg(&c.name)
                    .query_async(&mut self.con)
                    .await
                    .context("cannot remove an old consumer")?;
            }
        }
        Ok(())
    }

    /// The group's consumers but this gateway.
    async fn other_consumers(&mut self) -> Result<Vec<redis::streams::StreamInfoConsumer>> {
        let info: redis::streams::StreamInfoConsumersReply = self
            .con
            .xinfo_consumers(schema::queue_responses(), schema::GATEWAY_GROUP)
            .await
            .context("cannot list the gateway's consumers")?;
        Ok(info
            .consumers
            .into_iter()
            .filter(|c| c.name != self.opts.consumer)
            .collect())
    }

    /// Goes once through this consumer's pending replies, skipping those whose
    /// retry is not due yet. A deferred reply no longer pending (acknowledged
    /// elsewhere, its consumer removed, the group recreated) is forgotten.
    async fn scan_pending(&mut self) -> Result<()> {
        let mut cursor = "0".to_owned();
        let mut pending = HashSet::new();
        loop {
            let entries = self.read(&cursor, None).await?;
            let Some(last) = entries.last() else {
                self.deferred.retain(|id, _| pending.contains(id));
                return Ok(());
            };
            cursor = last.id.clone();
            for entry in entries {
                pending.insert(entry.id.clone());
                let now = tokio::time::Instant::now();
                if self.deferred.get(&entry.id).is_some_and(|at| *at > now) {
                    continue;
                }
                self.handle(&entry).await?;
            }
        }
    }

    /// Up to ten entries after `cursor` in this consumer's view of the group
    /// (`>`: new ones, waiting up to `block_ms`; an id: its own pending ones).
    async fn read(&mut self, cursor: &str, block_ms: Option<usize>) -> Result<Vec<StreamId>> {
        let mut opts = StreamReadOptions::default()
            .group(schema::GATEWAY_GROUP, &self.opts.consumer)
            .count(10);
        if let Some(ms) = block_ms {
            opts = opts.block(ms);
        }
        let reply: Option<redis::streams::StreamReadReply> = self
            .con
            .xread_options(&[schema::queue_responses()], &[cursor], &opts)
            .await
            .with_context(|| format!("cannot read {}", schema::queue_responses()))?;
        Ok(reply
            .map(|r| r.keys)
            .unwrap_or_default()
            .into_iter()
            .flat_map(|k| k.ids)
            .collect())
    }

    /// Sends, withholds or dead-letters one entry, or defers it.
    async fn handle(&mut self, entry: &StreamId) -> Result<()> {
        if !self.serving() {
            // The connection or the lease went mid-scan: nothing is typed, sent or
            // dead-lettered without them. The entry stays pending for the holder.
            let later = tokio::time::Instant::now() + self.opts.send_retry;
            self.deferred.insert(entry.id.clone(), later);
            return Ok(());
        }
        let reply = Reply::of(entry);
        let delivered = if entry.map.is_empty() {
            // Deleted from the stream while pending: nothing left to send.
            self.ack(&reply).await?;
            Delivered::Done
        } else if reply.reply_id.is_empty() || reply.contact_id.is_empty() {
            let why = format!(
                "entry {}: not a reply (no replyId or contactId)",
                reply.stream_id
            );
            self.give_up(&reply, why).await?
        } else {
            self.deliver(&reply).await?
        };
        match delivered {
            Delivered::Done => {
                self.deferred.remove(&reply.stream_id);
            }
            Delivered::Retry(wait) => {
                self.deferred
                    .insert(reply.stream_id, tokio::time::Instant::now() + wait);
            }
        }
        Ok(())
    }

    /// Whether `reply` may go now: the operator's own words and the drafts
    /// they approved always may (the person decided, as when typing on the
    /// phone); the twin's own replies when [`Self::allowed`].
    async fn may_send(&mut self, reply: &Reply) -> Result<bool> {
        if reply.from_owner || reply.approved {
            return Ok(true);
        }
        self.allowed(&reply.contact_id).await
    }

    /// Not killed, not paused, opted in.
    async fn allowed(&mut self, contact_id: &str) -> Result<bool> {
        let (all, paused, enabled): (bool, bool, bool) = redis::pipe()
            .exists(schema::pause_all())
            .exists(schema::pause_key(contact_id))
            .sismember(schema::optin_contacts(), contact_id)
            .query_async(&mut self.con)
            .await
            .context("cannot re-check the pauses")?;
        Ok(!all && !paused && enabled)
    }

    async fn ack(&mut self, reply: &Reply) -> Result<()> {
        let _: i64 = self
            .con
            .xack(
                schema::queue_responses(),
                schema::GATEWAY_GROUP,
                &[&reply.stream_id],
            )
            .await?;
        Ok(())
    }
}
