//! One reply's way out: the pauses re-checked, the send budget spent,
//! "typing..." for its delay, the claim (`SENTREPLY:`, `SENDFAIL:`'s WhatsApp
//! id, the `SENT:` mark) and, with `replicas_to_wait`, the claim confirmed on
//! the replicas, the send, then its record and its echo. The
//! operator's own words (`fromOwner`) skip the pauses and "typing...", an
//! approved draft (`approved`) the pauses: the person decided. Their echo is
//! the twin's kind (`SENT:`), so it is neither recorded twice nor taken for a
//! second takeover.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use redis::AsyncCommands;

use super::{Delivered, Reply, Sender};
use crate::bridge::whatsapp::link::Link;
use crate::schema::{self, Direction, QueueMessage};
use crate::store;
use crate::store::durability::{Mark, WAIT_TIMEOUT};

/// What `SENTREPLY:{replyId}` holds, before the id, while the reply is being sent.
pub(super) const SENDING: &str = "sending:";

/// How long `SENTREPLY:` is kept, s.
pub(super) const SENT_REPLY_TTL_S: u64 = 24 * 60 * 60;

/// The longest wait between tries to record a sent reply.
const RECORD_RETRY_MAX: Duration = Duration::from_secs(10);

/// Tries to add a sent reply's echo before it is given up (within
/// [`super::STOP_GRACE`] when Redis answers).
const ECHO_ATTEMPTS: u32 = 2;

/// How far apart the clocks of Redis and the gateway's host may be.
const CLOCK_MARGIN_S: i64 = 60 * 60;

/// Whether a reply entry is too old to claim: a claim lives [`SENT_REPLY_TTL_S`]
/// from when it was taken, so an unclaimed entry nearly that old may be one
/// whose claim expired after a send (a gateway down for a day), and claiming it
/// afresh would send it a second time under a new id. An hour is left for the
/// clocks of Redis (which stamped the id) and this host to differ.
pub fn too_old_to_claim(stream_id: &str, now_ms: i64) -> bool {
    let Some(created) = stream_id
        .split_once('-')
        .and_then(|(ms, _)| ms.parse::<i64>().ok())
    else {
        return false;
    };
    now_ms.saturating_sub(created) >= (SENT_REPLY_TTL_S as i64 - CLOCK_MARGIN_S) * 1000
}

impl<L: Link> Sender<L> {
    /// Sends one reply at most once: acknowledges it when sent or withheld,
    /// dead-letters it when it cannot go, and leaves it pending after a failed send.
    pub(super) async fn deliver(&mut self, reply: &Reply) -> Result<Delivered> {
        let claim: Option<String> = self
            .con
            .get(schema::sent_reply_key(&reply.reply_id))
            .await?;
        if claim.is_none() && too_old_to_claim(&reply.stream_id, store::now_ms()) {
            let why = format!(
                "reply {}: still unsent after a day; not sent so late (an earlier attempt's claim may have expired)",
                reply.reply_id
            );
            return self.give_up(reply, why).await;
        }
        let sent = claim.as_deref().is_some_and(|c| !c.starts_with(SENDING));
        if sent || !self.may_send(reply).await? {
            self.ack(reply).await?;
            return Ok(Delivered::Done);
        }
        let Some(address) = self.address(&reply.contact_id) else {
            let why = format!(
                "reply {}: no WhatsApp address is known for contact {} (no message of theirs reached this gateway)",
                reply.reply_id, reply.contact_id
            );
            return self.give_up(reply, why).await;
        };
        let failures = self.failures(&reply.reply_id).await?;
        if failures.attempts >= self.opts.send_attempts {
            // Out of attempts, its dead letter failed before: that goes again, no send.
            let error = failures.error.unwrap_or_default();
            return self.abandon(reply, failures.attempts, &error).await;
        }
        self.spend_budget().await;
        // A retry shows "typing..." only briefly: the contact saw the whole delay
        // once, also when the claim made then was not confirmed on the replicas.
        let delay = if failures.attempts == 0 && claim.is_none() {
            reply.delay
        } else {
            Duration::ZERO
        };
        // Held until the typing is cleared or the claim starts: a stop waits for it.
        let typing = Arc::clone(&self.typing);
        let typing = typing.lock().await;
        let typed = reply.from_owner || self.type_for(&address, reply, delay).await?;
        if !typed {
            self.link.paused(&address).await.ok();
            tracing::info!(
                "whatsapp gateway: reply {} withheld (paused while typing)",
                reply.reply_id
            );
            self.ack(reply).await?;
            return Ok(Delivered::Done);
        }
        if !self.serving() {
            // The lease or the connection went while this reply waited: its next
            // holder sends it.
            self.stop_typing(&address, reply).await;
            return Ok(Delivered::Retry(self.opts.send_retry));
        }
        drop(typing);
        let reused = failures.wa_id.is_some();
        let wa_id = failures.wa_id.unwrap_or_else(|| self.link.message_id());
        let message_id = crate::bridge::whatsapp::message_id(&reply.contact_id, &wa_id);
        let sending = format!("{SENDING}{message_id}");
        // SENT: before the send, so the echo is never taken for the person typing.
        // SENTREPLY: claims the reply as `sending:{messageId}` (ours when it already
        // says so: an earlier attempt with this WhatsApp id), and SENDFAIL: keeps
        // the WhatsApp id, so a send cut short by a crash goes again after the
        // restart with the same id (see `failed_send`). Once sent, SENTREPLY: is
        // the id. The id is written with HSETNX in the claim's transaction: when
        // the claim is won it is ours (or already the claim's), and a lost claim
        // never overwrites the winner's.
        let fail_key = schema::send_fail_key(&reply.reply_id);
        let sent_mark = schema::sent_key(&message_id);
        let wanted = self.opts.replicas_to_wait;
        let claim_key = schema::sent_reply_key(&reply.reply_id);
        let mark = self
            .confirmer
            .begin(&mut self.con, &claim_key, wanted)
            .await;
        let (previous, ()): (Option<String>, ()) = redis::pipe()
            .atomic()
            .hset_nx(&fail_key, "waId", &wa_id)
            .ignore()
            .cmd("SET")
            .arg(schema::sent_reply_key(&reply.reply_id))
            .arg(&sending)
            .arg("NX")
            .arg("GET")
            .arg("EX")
            .arg(SENT_REPLY_TTL_S)
            .expire(&fail_key, SENT_REPLY_TTL_S as i64)
            .ignore()
            .set_ex(&sent_mark, 1, schema::SENT_TTL_S as u64)
            .query_async(&mut self.con)
            .await?;
        if let Some(previous) = previous.filter(|p| *p != sending) {
            return self.lost_claim(reply, &previous, &message_id, reused).await;
        }
        if !self.claim_replicated(&mark, reply).await {
            self.stop_typing(&address, reply).await;
            return Ok(Delivered::Retry(self.opts.send_retry));
        }
        if let Err(e) = self.link.send_text(&address, &wa_id, &reply.content).await {
            self.stop_typing(&address, reply).await;
            return self.failed_send(reply, &wa_id, &e).await;
        }
        // From here to the echo nothing may stop this task: a stop waits for the
        // guard (bounded), so a clean stop never leaves a sent reply recorded as
        // `sending:`, to go again after the restart. (A stop during the send
        // itself does not wait: that send goes again with the same id.)
        let guard = Arc::clone(&self.recording);
        let recording = guard.lock().await;
        let echo = QueueMessage {
            message_id,
            contact_id: reply.contact_id.clone(),
            content: reply.content.clone(),
            timestamp: store::now_ms(),
            direction: Direction::Outgoing,
            from_me: true,
        };
        self.record_sent(&reply.reply_id, &echo.message_id).await;
        self.commit_echo(&echo).await;
        drop(recording);
        self.stop_typing(&address, reply).await;
        self.ack(reply).await?;
        Ok(Delivered::Done)
    }

    /// Whether the claim just won is on `replicas_to_wait` replicas: a failover
    /// that lost it would let the reply be claimed and sent again. When it is
    /// not, nothing is sent now; the claim stays ours (`sending:` with the
    /// WhatsApp id kept in `SENDFAIL:`), so the retry sends under the same id.
    async fn claim_replicated(&mut self, mark: &Mark, reply: &Reply) -> bool {
        let key = schema::sent_reply_key(&reply.reply_id);
        let wanted = self.opts.replicas_to_wait;
        match self
            .confirmer
            .confirm(mark, &mut self.con, &key, wanted, WAIT_TIMEOUT)
            .await
        {
            Ok(_) => true,
            Err(e) => {
                tracing::warn!(
                    "whatsapp gateway: reply {} not sent yet, its claim is not on the replicas: {e}; trying again in {:?}",
                    reply.reply_id,
                    self.opts.send_retry
                );
                false
            }
        }
    }

    /// Clears "typing..." after the twin's reply; the operator's words showed none.
    async fn stop_typing(&self, address: &str, reply: &Reply) {
        if !reply.from_owner {
            self.link.paused(address).await.ok();
        }
    }

    /// Waits until the send budget has a token, and takes it.
    async fn spend_budget(&self) {
        let mut told = false;
        loop {
            let wait = match self.budget.lock().await.try_take() {
                Ok(()) => return,
                Err(wait) => wait,
            };
            if !told {
                tracing::info!("whatsapp gateway: send budget spent; waiting {wait:?}");
                told = true;
            }
            tokio::time::sleep(wait).await;
        }
    }

    /// Shows "typing..." for `delay`, refreshed; false when a pause came
    /// meanwhile that holds for `reply` ([`Sender::may_send`]). It ends early
    /// when the lease or the connection goes (the caller then leaves the reply
    /// pending), so the next holder's "typing..." is not shown twice, nor
    /// cleared by ours.
    async fn type_for(&mut self, address: &str, reply: &Reply, delay: Duration) -> Result<bool> {
        let until = tokio::time::Instant::now() + delay;
        loop {
            if let Err(e) = self.link.composing(address).await {
                tracing::debug!("whatsapp gateway: typing: {e}");
            }
            let left = until.saturating_duration_since(tokio::time::Instant::now());
            let step = left.min(self.opts.typing_refresh);
            // Checked every second of the delay, and once more right before sending.
            let mut waited = Duration::ZERO;
            while waited < step {
                let tick = (step - waited).min(Duration::from_secs(1));
                tokio::time::sleep(tick).await;
                waited += tick;
                if !self.serving() {
                    return Ok(true);
                }
                if !self.may_send(reply).await? {
                    return Ok(false);
                }
            }
            if tokio::time::Instant::now() >= until {
                return self.may_send(reply).await;
            }
        }
    }

    /// Records a sent reply (`SENTREPLY:` = its message id, failures gone),
    /// trying again in place until Redis takes it: returning an error here would
    /// send the reply a second time on the next pass.
    async fn record_sent(&mut self, reply_id: &str, message_id: &str) {
        let mut wait = Duration::from_millis(250);
        loop {
            let recorded: redis::RedisResult<()> = redis::pipe()
                .atomic()
                .set_ex(
                    schema::sent_reply_key(reply_id),
                    message_id,
                    SENT_REPLY_TTL_S,
                )
                .ignore()
                .del(schema::send_fail_key(reply_id))
                .ignore()
                .exec_async(&mut self.con)
                .await;
            match recorded {
                Ok(()) => return,
                Err(e) => {
                    tracing::warn!(
                        "whatsapp gateway: reply {reply_id} was sent but cannot be recorded yet: {e}; trying again in {wait:?}"
                    );
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(RECORD_RETRY_MAX);
                }
            }
        }
    }

    /// Adds the sent reply's echo to `QUEUE:messages`, a few tries; an echo that
    /// still cannot be added is said in the log (the conversation's history will
    /// lack the twin's message), never a reason to send again.
    async fn commit_echo(&mut self, echo: &QueueMessage) {
        for attempt in 1..=ECHO_ATTEMPTS {
            match self.inbox.commit_echo(echo).await {
                Ok(()) => return,
                Err(e) if attempt == ECHO_ATTEMPTS => {
                    tracing::error!(
                        "whatsapp gateway: the echo of sent message {} is lost (the history lacks it): {e:#}",
                        echo.message_id
                    );
                }
                Err(e) => {
                    tracing::warn!(
                        "whatsapp gateway: echo of {}: {e:#}; trying again",
                        echo.message_id
                    );
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }

    /// The address of a contact; a contact another gateway of this account met
    /// first is looked up again in the shared directory file.
    fn address(&self, contact_id: &str) -> Option<String> {
        let directory = self.inbox.directory();
        directory.address(contact_id).or_else(|| {
            if let Err(e) = directory.reload() {
                tracing::warn!("whatsapp gateway: {e:#}");
            }
            directory.address(contact_id)
        })
    }
}
