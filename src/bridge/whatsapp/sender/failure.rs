//! A reply that cannot go now. A failed send is tried again with the same
//! WhatsApp id after a growing wait, then dead-lettered; a claim lost to
//! another gateway sends nothing; a reply that can never go (no address, too
//! old, not a reply) is dead-lettered at once.

use anyhow::{Context, Result};
use redis::AsyncCommands;

use super::delivery::{SENDING, SENT_REPLY_TTL_S};
use super::{Delivered, Reply, Sender};
use crate::bridge::whatsapp::link::{Link, LinkError};
use crate::bridge::whatsapp::pacing;
use crate::schema;
use crate::store::deadletter::{self, DeadLetter};

/// A reply's failed send attempts so far (`SENDFAIL:{replyId}`).
#[derive(Debug, Default)]
pub(super) struct Failures {
    /// Failed sends counted so far.
    pub(super) attempts: u32,
    /// The WhatsApp id the failed attempts used; a retry sends with it again.
    pub(super) wa_id: Option<String>,
    /// The last failure's error.
    pub(super) error: Option<String>,
}

impl<L: Link> Sender<L> {
    /// The claim was someone else's: never a second message. A sent reply is
    /// acknowledged; one being sent under another WhatsApp id stays pending (if
    /// its sender dies, the next try reads that id from `SENDFAIL:` and sends
    /// with it), unless our id came from `SENDFAIL:` already (`reused`): then
    /// the claim and the failures disagree (an older gateway overwrote the id)
    /// and no id is known to be safe, so it is dead-lettered. The marks the
    /// lost claim wrote for our id go, unless the winner sends under that id too
    /// (it read it from `SENDFAIL:`): its echo needs the `SENT:` mark.
    pub(super) async fn lost_claim(
        &mut self,
        reply: &Reply,
        previous: &str,
        message_id: &str,
        reused: bool,
    ) -> Result<Delivered> {
        let being_sent = previous.starts_with(SENDING);
        let mut cleanup = redis::pipe();
        if previous.trim_start_matches(SENDING) != message_id {
            cleanup.del(schema::sent_key(message_id)).ignore();
        }
        if !being_sent {
            // Sent: its failures were deleted then; HSETNX made them anew.
            cleanup.del(schema::send_fail_key(&reply.reply_id)).ignore();
        }
        let _: redis::RedisResult<()> = cleanup.exec_async(&mut self.con).await;
        if being_sent && reused {
            let why = format!(
                "reply {}: claimed under another WhatsApp id than its failures name; WhatsApp may have taken it",
                reply.reply_id
            );
            return self.give_up(reply, why).await;
        }
        if being_sent {
            return Ok(Delivered::Retry(self.opts.send_retry));
        }
        self.ack(reply).await?;
        Ok(Delivered::Done)
    }

    /// A send that returned an error. The error is ambiguous: WhatsApp may have
    /// taken the message before it (a lost acknowledgement, a timeout). We choose
    /// to try again, and soundly: the claim stays `sending:` (only a success turns
    /// it into the id, and then nothing sends the reply again); and every retry
    /// reuses the failed attempt's WhatsApp id, under which WhatsApp and the phone
    /// key the message (chat, sender, id), so a copy that did arrive is the same
    /// message, not a second one, and its `SENT:` mark still names it. After
    /// `send_attempts` counted failures the reply is dead-lettered and its claim
    /// dropped (it may have reached the contact once; the reason says so). A
    /// failure while the connection is down is not counted: the reply waits for
    /// the reconnect.
    pub(super) async fn failed_send(
        &mut self,
        reply: &Reply,
        wa_id: &str,
        error: &LinkError,
    ) -> Result<Delivered> {
        let error = without_numbers(&error.to_string());
        let counted = i64::from(*self.connected.borrow());
        let key = schema::send_fail_key(&reply.reply_id);
        let (attempts,): (u32,) = redis::pipe()
            .atomic()
            .hincr(&key, "attempts", counted)
            .hset(&key, "waId", wa_id)
            .ignore()
            .hset(&key, "error", &error)
            .ignore()
            .expire(&key, SENT_REPLY_TTL_S as i64)
            .ignore()
            .query_async(&mut self.con)
            .await
            .context("cannot record a failed send")?;
        if attempts >= self.opts.send_attempts {
            return self.abandon(reply, attempts, &error).await;
        }
        let wait = pacing::retry_wait(self.opts.send_retry, attempts);
        tracing::warn!(
            "whatsapp gateway: reply {} not sent ({error}); failure {attempts} of {}, next try in {wait:?}",
            reply.reply_id,
            self.opts.send_attempts
        );
        Ok(Delivered::Retry(wait))
    }

    /// Dead-letters a reply out of attempts and drops its claim and failures;
    /// when the dead letter fails they stay, and so does the reply, for later.
    pub(super) async fn abandon(
        &mut self,
        reply: &Reply,
        attempts: u32,
        error: &str,
    ) -> Result<Delivered> {
        let why = format!(
            "reply {}: sending failed {attempts} times (last error: {error}); WhatsApp may have taken one attempt",
            reply.reply_id
        );
        let done = self.give_up(reply, why).await?;
        let keys = [
            schema::send_fail_key(&reply.reply_id),
            schema::sent_reply_key(&reply.reply_id),
        ];
        if matches!(done, Delivered::Done) {
            let _: redis::RedisResult<i64> = self.con.del(&keys).await;
        } else {
            // Still waiting for its dead letter: the claim and the count must
            // outlive the wait, or once they expired the next try would take a
            // fresh claim and send the old reply again.
            let mut renew = redis::pipe();
            for key in &keys {
                renew.expire(key, SENT_REPLY_TTL_S as i64).ignore();
            }
            renew
                .exec_async(&mut self.con)
                .await
                .context("cannot keep a reply's claim while it waits")?;
        }
        Ok(done)
    }

    /// Dead-letters a reply that cannot go. When that fails (the functions
    /// library not loaded, which this gateway's ACL user may not do: the worker
    /// loads it at its start) the reply stays pending and is tried again later,
    /// without holding back the others.
    pub(super) async fn give_up(&mut self, reply: &Reply, why: String) -> Result<Delivered> {
        match self.dead_letter(reply, why).await {
            Ok(()) => Ok(Delivered::Done),
            Err(e) => {
                let wait = pacing::retry_wait(self.opts.send_retry, self.opts.send_attempts);
                tracing::warn!(
                    "whatsapp gateway: reply {} kept pending, next try in {wait:?}: {e:#}",
                    reply.stream_id
                );
                Ok(Delivered::Retry(wait))
            }
        }
    }

    /// The failed sends `SENDFAIL:{replyId}` records.
    pub(super) async fn failures(&mut self, reply_id: &str) -> Result<Failures> {
        let (attempts, wa_id, error): (Option<u32>, Option<String>, Option<String>) =
            redis::cmd("HMGET")
                .arg(schema::send_fail_key(reply_id))
                .arg("attempts")
                .arg("waId")
                .arg("error")
                .query_async(&mut self.con)
                .await
                .context("cannot read a reply's failed sends")?;
        Ok(Failures {
            attempts: attempts.unwrap_or(0),
            wa_id: wa_id.filter(|id| !id.is_empty()),
            error,
        })
    }

    /// Moves the reply to `QUEUE:deadletter` and acknowledges it, in the worker's
    /// format and step.
    async fn dead_letter(&mut self, reply: &Reply, reason: String) -> Result<()> {
        let letter = DeadLetter {
            stream_id: reply.stream_id.clone(),
            reason,
            fields: reply.fields.clone(),
        };
        deadletter::write(
            &mut self.con,
            schema::queue_responses(),
            schema::GATEWAY_GROUP,
            &[letter],
        )
        .await
    }
}

/// The library's error text with long digit runs (phone numbers in addresses)
/// replaced, for the log and the dead-letter stream.
fn without_numbers(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut digits = String::new();
    for c in text.chars().chain(std::iter::once('\0')) {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        if digits.len() >= 7 {
            out.push_str("[number]");
        } else {
            out.push_str(&digits);
        }
        digits.clear();
        if c != '\0' {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_texts_lose_phone_numbers_but_keep_short_figures() {
        assert_eq!(
            without_numbers("send to 15550001111@s.whatsapp.net failed: 408 after 20s"),
            "send to [number]@s.whatsapp.net failed: 408 after 20s"
        );
        assert_eq!(without_numbers("code 1234567"), "code [number]");
        assert_eq!(without_numbers(""), "");
    }
}
