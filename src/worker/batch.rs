//! One batch through the pipeline: parse -> dead-letter the bad -> decide ->
//! write replies -> commit. Three round trips whatever the batch size.
//!
//! A failure that belongs to one entry stays with it: the scripts give such an
//! entry a `fail:` verdict (it is dead-lettered with the reason), and a script that
//! fails as a whole for a reason that may lie in one entry is run again on each
//! half of the batch until the entry at fault is alone.

use std::collections::HashMap;
use std::ops::Range;

use anyhow::{Context, Result};
use redis::aio::ConnectionManager;
use redis::streams::StreamId;

use super::parsed_entry::ParsedEntry as Good;
use super::personas::ContactPersona;
use super::verdict::{Committed, ScriptReply, Verdict};
use super::{Worker, WorkerConfig};
use crate::entry;
use crate::reply::{ReplyEngine, ReplyRequest};
use crate::schema::{self, Direction, MessageEvent, QueueMessage};
use crate::store;
use crate::store::functions::{Call, Step};

/// An entry that will not be answered, with the reason and its raw fields.
#[derive(Debug, Clone)]
pub struct DeadLetter {
    /// Stream id of the entry.
    pub stream_id: String,
    /// Why.
    pub reason: String,
    /// The entry's fields as text.
    pub fields: Vec<(String, String)>,
}

/// What happened to a batch.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct BatchOutcome {
    /// Entries looked at.
    pub entries: usize,
    /// Replies written.
    pub answered: usize,
    /// Entries decided without a reply (paused, not enabled, duplicates ...).
    pub skipped: usize,
    /// Entries sent to the dead-letter stream.
    pub dead_lettered: usize,
    /// Entries left pending because writing their reply failed.
    pub failed: usize,
}

/// Entries read from the queue, split into parsed ones and ones to dead-letter.
#[derive(Default)]
pub(super) struct Triaged {
    good: Vec<Good>,
    bad: Vec<DeadLetter>,
}

impl Triaged {
    /// How many entries.
    pub(super) fn len(&self) -> usize {
        self.good.len() + self.bad.len()
    }

    /// Splits into batches of at most `size` parsed entries; the dead letters go
    /// with the first.
    pub(super) fn into_chunks(self, size: usize) -> Vec<Triaged> {
        let size = size.max(1);
        let mut chunks = Vec::with_capacity(self.good.len() / size + 1);
        let mut bad = self.bad;
        let mut good = self.good.into_iter().peekable();
        while good.peek().is_some() || !bad.is_empty() {
            chunks.push(Triaged {
                good: good.by_ref().take(size).collect(),
                bad: std::mem::take(&mut bad),
            });
        }
        chunks
    }

    /// Keeps only the entries whose stream id `keep` accepts.
    pub(super) fn retain(&mut self, keep: impl Fn(&str) -> bool) {
        self.good.retain(|g| keep(g.stream_id()));
        self.bad.retain(|d| keep(&d.stream_id));
    }

    /// Stream ids of every entry.
    pub(super) fn stream_ids(&self) -> impl Iterator<Item = &str> {
        let good = self.good.iter().map(Good::stream_id);
        good.chain(self.bad.iter().map(|d| d.stream_id.as_str()))
    }

    /// Every entry as a dead letter: the parsed ones with `reason`, the others
    /// with their own.
    #[cfg(test)]
    pub(super) fn as_dead_letters(&self, reason: &str) -> Vec<DeadLetter> {
        let mut letters = self.bad.clone();
        letters.extend(self.good.iter().map(|g| DeadLetter {
            stream_id: g.stream_id().to_owned(),
            reason: format!("entry {}: {reason}", g.stream_id()),
            fields: message_fields(&g.message()),
        }));
        letters
    }

    /// Parsed entries to decide (again).
    pub(super) fn from_good(good: Vec<Good>) -> Self {
        Self {
            good,
            bad: Vec::new(),
        }
    }

    /// Moves `other`'s entries after these.
    pub(super) fn append(&mut self, mut other: Triaged) {
        self.good.append(&mut other.good);
        self.bad.append(&mut other.bad);
    }

    /// Approximate memory held, in bytes, for the read-ahead budget.
    pub(super) fn size_bytes(&self) -> usize {
        let good: usize = self.good.iter().map(Good::size_bytes).sum();
        let bad: usize = self
            .bad
            .iter()
            .map(|d| {
                std::mem::size_of::<DeadLetter>()
                    + d.stream_id.len()
                    + d.reason.len()
                    + d.fields
                        .iter()
                        .map(|(k, v)| 48 + k.len() + v.len())
                        .sum::<usize>()
            })
            .sum();
        good + bad
    }

    /// Stream ids and fields of every entry, for the review file.
    pub(super) fn review_lines(&self) -> impl Iterator<Item = (&str, Vec<(String, String)>)> {
        let good = self
            .good
            .iter()
            .map(|g| (g.stream_id(), message_fields(&g.message())));
        let bad = self
            .bad
            .iter()
            .map(|d| (d.stream_id.as_str(), d.fields.clone()));
        good.chain(bad)
    }
}

/// Splits entries into parsed ones and dead letters; `too_many` holds entries
/// delivered more often than allowed. Age is checked later, when the entry is
/// decided, because entries read ahead wait before that.
pub(super) fn triage(entries: &[StreamId], too_many: &HashMap<String, u64>) -> Triaged {
    let mut out = Triaged {
        good: Vec::with_capacity(entries.len()),
        bad: Vec::new(),
    };
    for e in entries {
        let dead = |reason: String| DeadLetter {
            stream_id: e.id.clone(),
            reason,
            fields: entry::raw_fields(&e.map),
        };
        if let Some(n) = too_many.get(&e.id) {
            out.bad.push(dead(format!(
                "entry {}: delivered {n} times without being handled",
                e.id
            )));
            continue;
        }
        match entry::check_map(&e.id, &e.map) {
            Ok(checked) => out.good.push(Good::new(&e.id, &checked)),
            Err(err) => out.bad.push(dead(err.to_string())),
        }
    }
    out
}

/// An entry of a reply walked in place: its id and its fields as bytes (none for
/// an entry deleted while pending).
pub(super) struct RawEntry<'a> {
    /// Stream id.
    pub id: &'a str,
    /// Field names and values, in the entry's order.
    pub fields: Vec<(&'a [u8], &'a [u8])>,
}

/// [`triage`] for entries of a reply walked in place (new entries: none has been
/// delivered before).
pub(super) fn triage_raw(entries: &[RawEntry<'_>]) -> Triaged {
    let mut out = Triaged {
        good: Vec::with_capacity(entries.len()),
        bad: Vec::new(),
    };
    for e in entries {
        match entry::check_pairs(e.id, &e.fields) {
            Ok(checked) => out.good.push(Good::new(e.id, &checked)),
            Err(err) => out.bad.push(DeadLetter {
                stream_id: e.id.to_owned(),
                reason: err.to_string(),
                fields: entry::raw_pair_fields(&e.fields),
            }),
        }
    }
    out
}

/// A parsed message's fields as text, for the dead-letter stream and the review file.
fn message_fields(m: &QueueMessage) -> Vec<(String, String)> {
    m.fields()
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
}

/// Moves incoming messages older than the seed's limit from `batch.good` to its
/// dead letters.
fn set_aside_expired(batch: &mut Triaged, now: i64) {
    let (fresh, expired): (Vec<Good>, Vec<Good>) =
        std::mem::take(&mut batch.good).into_iter().partition(|g| {
            let age = now - g.timestamp();
            g.direction() != Direction::Incoming || age <= schema::QUEUE_ENTRY_MAX_AGE_MS
        });
    batch.good = fresh;
    batch.bad.extend(expired.into_iter().map(|g| DeadLetter {
        reason: format!(
            "entry {}: expired, {} s old (limit {} s), not answered",
            g.stream_id(),
            (now - g.timestamp()) / 1000,
            schema::QUEUE_ENTRY_MAX_AGE_MS / 1000
        ),
        fields: message_fields(&g.message()),
        stream_id: g.stream_id().to_owned(),
    }));
}

/// Moves entries to `QUEUE:deadletter` and acknowledges them, in one step of the
/// functions library: an entry is acknowledged only with its dead letter written,
/// and a foreign `QUEUE:deadletter` fails the step (nothing acknowledged).
pub async fn dead_letter(
    con: &mut ConnectionManager,
    group: &str,
    letters: &[DeadLetter],
) -> Result<()> {
    dead_letter_from(con, schema::QUEUE_MESSAGES, group, letters).await
}

/// [`dead_letter`] for entries of `source` read in `group` (the WhatsApp gateway's
/// replies from `QUEUE:responses`): the same step, the same dead-letter format.
pub async fn dead_letter_from(
    con: &mut ConnectionManager,
    source: &str,
    group: &str,
    letters: &[DeadLetter],
) -> Result<()> {
    if letters.is_empty() {
        return Ok(());
    }
    let mut call = Call::new(Step::DeadLetter);
    call.key(schema::QUEUE_DEADLETTER)
        .key(source)
        .key(schema::STATS)
        .arg(group)
        .arg(schema::QUEUE_DEADLETTER_CAP)
        .arg(store::now_ms())
        .arg(schema::deadletter_fields::SOURCE_ID)
        .arg(schema::deadletter_fields::REASON)
        .arg(schema::deadletter_fields::AT);
    for l in letters {
        call.arg(&l.stream_id).arg(&l.reason).arg(l.fields.len());
        for (k, v) in &l.fields {
            call.arg(k).arg(v);
        }
    }
    let warnings: Vec<String> = call
        .invoke(con)
        .await
        .context("cannot write to QUEUE:deadletter")?;
    for l in letters {
        tracing::warn!("dead-lettered: {}", l.reason);
    }
    for w in warnings {
        tracing::warn!("a best-effort write failed (the twin goes on): {w}");
    }
    Ok(())
}

fn event_json(m: QueueMessage) -> String {
    let ev = MessageEvent {
        message_id: m.message_id,
        contact_id: m.contact_id,
        content: m.content,
        bot_sent: false,
        timestamp: m.timestamp,
        from_me: m.from_me,
    };
    serde_json::to_string(&ev).unwrap_or_default()
}

fn kind(g: &Good) -> &'static str {
    match (g.direction(), g.is_from_me()) {
        (Direction::Outgoing, true) => "me",
        (Direction::Outgoing, false) => "out",
        (Direction::Incoming, _) => "in",
    }
}

async fn decide(
    con: &mut ConnectionManager,
    cfg: &WorkerConfig,
    entries: &[(&Good, Option<Written>)],
    asleep: bool,
) -> Result<ScriptReply<Verdict>> {
    let mut inv = Call::new(Step::Decide);
    inv.key(schema::PAUSE_ALL)
        .key(schema::OPTIN_CONTACTS)
        .key(schema::STATE_MARKER)
        .key(schema::QUEUE_MESSAGES)
        .key(schema::CONTACTS_ACTIVITY)
        .key(schema::STATS)
        .key(schema::QUEUE_RESPONSES)
        .arg(&cfg.group)
        .arg(cfg.takeover_ms)
        .arg(schema::RATE_LIMIT_MAX)
        .arg(schema::RATE_LIMIT_WINDOW_S)
        .arg(schema::RATE_LIMIT_PAUSE_MS)
        .arg(schema::HANDLED_BUCKET_MS)
        .arg(schema::HISTORY_LEN)
        .arg(schema::CHANNEL_PAUSE)
        .arg(schema::CHANNEL_MESSAGES)
        .arg(schema::QUEUE_RESPONSES_CAP)
        .arg(if asleep { "1" } else { "0" })
        .arg(schema::HISTORY_TTL_ENABLED_MS)
        .arg(schema::HISTORY_TTL_OTHER_MS)
        .arg(schema::CONTACTS_ACTIVITY_CAP)
        .arg(if cfg.rate_counted_elsewhere { "1" } else { "0" });
    for (g, reply) in entries {
        inv.arg(g.stream_id())
            .arg(g.message_id())
            .arg(g.contact_id())
            .arg(kind(g))
            .arg(g.timestamp())
            .arg(event_json(g.message()));
        match reply {
            Some(w) => inv
                .arg(&w.reply_id)
                .arg(&w.content)
                .arg(&w.persona)
                .arg(w.delay_ms)
                .arg(&w.event),
            None => inv.arg("").arg("").arg("").arg("").arg(""),
        };
    }
    let raw: Vec<String> = inv
        .invoke(con)
        .await
        .context("the batch decision script failed")?;
    ScriptReply::parse(raw, entries.len(), Verdict::parse)
}

/// Server error codes that say something about the server or a key every entry
/// shares, never about one entry: running the batch in halves cannot help.
const GLOBAL_ERROR_CODES: [&str; 19] = [
    "SERVER_FAULT",
    "MISCONF",
    "NOREPLICAS",
    "NOAUTH",
    "WRONGPASS",
    "EXECABORT",
    "OOM",
    "BUSY",
    "LOADING",
    "READONLY",
    "NOPERM",
    "MASTERDOWN",
    "TRYAGAIN",
    "CLUSTERDOWN",
    "MOVED",
    "ASK",
    "CROSSSLOT",
    "NOSCRIPT",
    "SHARED_KEY",
];

/// Whether a failed script may have failed because of one of its entries: Redis
/// answered with an error that names no global cause. Connection errors and the
/// worker's own errors are not.
pub(super) fn may_be_one_entrys_fault(e: &anyhow::Error) -> bool {
    let Some(err) = e
        .chain()
        .find_map(|c| c.downcast_ref::<redis::RedisError>())
    else {
        return false;
    };
    // An ACL that does not reach a key comes as a plain ERR from inside a step
    // ("ACL failure in script" on 8.x, "can't access at least one of the keys" on 7.x).
    let acl = err
        .detail()
        .is_some_and(|d| d.contains("ACL failure") || d.contains("can't access"));
    err.code()
        .is_some_and(|code| !GLOBAL_ERROR_CODES.contains(&code) && !acl)
}

/// Runs a step on a batch and, when it fails for a reason that may lie in one
/// entry, on each half, down to single entries, whose failure becomes their own
/// result. Ranges come in the entries' order, so a contact's messages keep theirs.
/// Other failures end the run: what finished is in Redis, the rest still pending.
struct Isolation<R> {
    out: Vec<Option<R>>,
    warnings: Vec<String>,
    todo: Vec<Range<usize>>,
}

impl<R> Isolation<R> {
    fn new(len: usize) -> Self {
        Self {
            out: std::iter::repeat_with(|| None).take(len).collect(),
            warnings: Vec::new(),
            todo: (len > 0).then_some(0..len).into_iter().collect(),
        }
    }

    /// The next range of entries to run the step on.
    fn next(&mut self) -> Option<Range<usize>> {
        self.todo.pop()
    }

    /// Takes the step's answer for `range`; `alone` makes the result of a single
    /// entry the step failed on.
    fn settle(
        &mut self,
        range: Range<usize>,
        reply: Result<ScriptReply<R>>,
        alone: impl FnOnce(anyhow::Error) -> R,
    ) -> Result<()> {
        match reply {
            Ok(reply) => {
                self.warnings.extend(reply.warnings);
                for (slot, r) in self.out[range].iter_mut().zip(reply.items) {
                    *slot = Some(r);
                }
            }
            Err(e) if !may_be_one_entrys_fault(&e) => return Err(e),
            Err(e) if range.len() == 1 => {
                tracing::warn!("a step failed on one entry alone: {e:#}");
                self.out[range.start] = Some(alone(e));
            }
            Err(e) => {
                tracing::warn!(
                    "a step failed on {} entries; trying each half: {e:#}",
                    range.len()
                );
                let mid = range.start + range.len() / 2;
                self.todo.push(mid..range.end);
                self.todo.push(range.start..mid);
            }
        }
        Ok(())
    }

    /// Every entry's result, in order, and the warnings.
    fn finish(self) -> ScriptReply<R> {
        ScriptReply {
            items: self.out.into_iter().flatten().collect(),
            warnings: self.warnings,
        }
    }
}

/// The reason a dead letter gives for an entry whose own keys stopped a step.
fn failed_reason(stream_id: &str, why: &str) -> String {
    format!("entry {stream_id}: {why}; not answered")
}

/// A reply written by the engine, ready for the commit step.
pub(super) struct Written {
    stream_id: String,
    message_id: String,
    contact_id: String,
    reply_id: String,
    content: String,
    persona: String,
    delay_ms: u64,
    event: String,
}

impl<E: ReplyEngine> Worker<E> {
    /// Runs one batch of parsed entries through the pipeline. Dead letters leave
    /// `batch` once written, so a retry does not write them twice. Entries whose
    /// reply could not be written stay pending and come back through the claim
    /// loop; on an error, every entry not yet acknowledged is still pending in Redis.
    pub(super) async fn process_triaged(&mut self, batch: &mut Triaged) -> Result<BatchOutcome> {
        let mut outcome = BatchOutcome {
            entries: batch.len(),
            ..BatchOutcome::default()
        };
        set_aside_expired(batch, store::now_ms());
        dead_letter(&mut self.con, &self.cfg.group, &batch.bad).await?;
        outcome.dead_lettered = batch.bad.len();
        batch.bad.clear();
        let good: Vec<&Good> = batch.good.iter().collect();
        if good.is_empty() {
            return Ok(outcome);
        }
        // An engine that answers instantly writes its replies before the decision, so
        // decision and reply are one atomic step; others write only what was decided.
        let mut replies: Vec<Option<Written>> = Vec::with_capacity(good.len());
        for &g in &good {
            let wanted = self.engine.instant() && kind(g) == "in";
            replies.push(if wanted {
                self.write_reply(g).await.ok()
            } else {
                None
            });
        }
        let asleep = self.asleep().await;
        let pairs: Vec<(&Good, Option<Written>)> = good.into_iter().zip(replies).collect();
        let mut iso = Isolation::new(pairs.len());
        while let Some(range) = iso.next() {
            let reply = decide(&mut self.con, &self.cfg, &pairs[range.clone()], asleep).await;
            iso.settle(range, reply, |e| Verdict::Failed(format!("{e:#}")))?;
        }
        let decided = iso.finish();
        self.warn_once(&decided.warnings);
        let mut failed = Vec::new();
        let mut to_write = Vec::new();
        for ((g, _), v) in pairs.iter().zip(decided.items) {
            match v {
                Verdict::Sent => outcome.answered += 1,
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
            dead_letter(&mut self.con, &self.cfg.group, &failed).await?;
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
                &written[range.clone()],
                asleep,
            );
            iso.settle(range, reply.await, |e| Committed::Failed(format!("{e:#}")))?;
        }
        let committed = iso.finish();
        self.warn_once(&committed.warnings);
        for ((g, _), c) in written.iter().zip(committed.items) {
            match c {
                Committed::Sent => outcome.answered += 1,
                Committed::Failed(why) => failed.push(dead_letter_of(g, &why)),
                Committed::Duplicate | Committed::Withheld => outcome.skipped += 1,
            }
        }
        dead_letter(&mut self.con, &self.cfg.group, &failed).await?;
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

    async fn write_reply(&mut self, g: &Good) -> Result<Written> {
        let persona = self
            .personas
            .for_contact(&mut self.con, g.contact_id())
            .await?;
        generate(&*self.engine, &mut self.con, g, &persona).await
    }

    /// Hands entries to answer to the scheduler (slow engines), each with its
    /// contact's persona. An entry whose persona cannot be read stays pending for a
    /// retry, as one whose reply cannot be written.
    async fn schedule(&mut self, to_write: &[&Good], outcome: &mut BatchOutcome) -> Result<()> {
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
/// as it stands now (a burst's earlier messages included).
pub(super) async fn generate<E: ReplyEngine>(
    engine: &E,
    con: &mut ConnectionManager,
    g: &Good,
    persona: &ContactPersona,
) -> Result<Written> {
    let message = g.message();
    let wanted = engine.history_len();
    let history = store::history::recent(con, g.contact_id(), wanted).await?;
    let reply = engine
        .reply(&ReplyRequest {
            message: &message,
            persona_id: &persona.persona_id,
            persona: &persona.style,
            context: persona.context.as_ref(),
            history: &history,
        })
        .await
        .context("the reply engine failed")?;
    let persona_id = persona.persona_id.clone();
    let reply_id = format!("bot_{}", g.message_id());
    let event = serde_json::to_string(&MessageEvent {
        message_id: reply_id.clone(),
        contact_id: g.contact_id().to_owned(),
        content: reply.content.clone(),
        bot_sent: true,
        timestamp: store::now_ms(),
        from_me: false,
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

/// Commits `written` replies with the commit step (`secondme_commit_*`).
pub(super) async fn commit(
    con: &mut ConnectionManager,
    group: &str,
    written: &[(&Good, Written)],
    asleep: bool,
) -> Result<ScriptReply<Committed>> {
    if written.is_empty() {
        return Ok(ScriptReply {
            items: Vec::new(),
            warnings: Vec::new(),
        });
    }
    let mut inv = Call::new(Step::Commit);
    inv.key(schema::PAUSE_ALL)
        .key(schema::OPTIN_CONTACTS)
        .key(schema::QUEUE_MESSAGES)
        .key(schema::QUEUE_RESPONSES)
        .key(schema::STATS)
        .arg(group)
        .arg(schema::HANDLED_BUCKET_MS)
        .arg(schema::HISTORY_LEN)
        .arg(schema::QUEUE_RESPONSES_CAP)
        .arg(schema::CHANNEL_MESSAGES)
        .arg(if asleep { "1" } else { "0" })
        .arg(schema::HISTORY_TTL_ENABLED_MS);
    for (_, w) in written {
        inv.arg(&w.stream_id)
            .arg(&w.message_id)
            .arg(&w.contact_id)
            .arg(&w.reply_id)
            .arg(&w.content)
            .arg(&w.persona)
            .arg(w.delay_ms)
            .arg(&w.event);
    }
    let raw: Vec<String> = inv
        .invoke(con)
        .await
        .context("the reply commit script failed")?;
    ScriptReply::parse(raw, written.len(), Committed::parse)
}

/// A parsed entry as a dead letter, with why its step failed.
pub(super) fn dead_letter_of(g: &Good, why: &str) -> DeadLetter {
    DeadLetter {
        stream_id: g.stream_id().to_owned(),
        reason: failed_reason(g.stream_id(), why),
        fields: message_fields(&g.message()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use redis::Value;

    fn entry(id: &str, fields: &[(&str, &str)]) -> StreamId {
        StreamId {
            id: id.to_owned(),
            map: fields
                .iter()
                .map(|(k, v)| ((*k).to_owned(), Value::BulkString(v.as_bytes().to_vec())))
                .collect(),
            ..StreamId::default()
        }
    }

    fn good(id: &str) -> StreamId {
        entry(
            id,
            &[
                ("messageId", id),
                ("contactId", "c"),
                ("content", "hi"),
                ("timestamp", "1"),
                ("direction", "incoming"),
                ("fromMe", "false"),
            ],
        )
    }

    fn ids(t: &Triaged) -> Vec<&str> {
        t.good.iter().map(Good::stream_id).collect()
    }

    fn server_error(code: &str) -> anyhow::Error {
        anyhow::Error::new(redis::make_extension_error(code.into(), Some("x".into())))
            .context("the batch decision script failed")
    }

    /// Runs an isolation over `n` entries where the step fails whenever its range
    /// holds one of `poisoned`, with `code`; returns the results and the ranges tried.
    fn isolate(
        n: usize,
        poisoned: &[usize],
        code: &str,
    ) -> (Result<Vec<String>>, Vec<Range<usize>>) {
        let mut iso = Isolation::new(n);
        let mut tried = Vec::new();
        while let Some(range) = iso.next() {
            tried.push(range.clone());
            let reply = if poisoned.iter().any(|p| range.contains(p)) {
                Err(server_error(code))
            } else {
                Ok(ScriptReply {
                    items: range.clone().map(|i| format!("ok {i}")).collect(),
                    warnings: Vec::new(),
                })
            };
            if let Err(e) = iso.settle(range, reply, |_| "alone".to_owned()) {
                return (Err(e), tried);
            }
        }
        (Ok(iso.finish().items), tried)
    }

    #[test]
    fn a_failing_batch_is_halved_until_the_entry_at_fault_is_alone() {
        let (items, tried) = isolate(8, &[5], "ERR");
        let items = items.expect("no global error");
        assert_eq!(items.len(), 8);
        assert_eq!(items[5], "alone");
        assert!(
            items
                .iter()
                .enumerate()
                .all(|(i, r)| i == 5 || *r == format!("ok {i}"))
        );
        // 0..8 fails, 0..4 passes, 4..8 fails, 4..6 fails, 4..5 passes, 5..6 alone, 6..8 passes.
        assert_eq!(tried, [0..8, 0..4, 4..8, 4..6, 4..5, 5..6, 6..8]);
    }

    #[test]
    fn a_failure_of_the_server_is_never_split_nor_pinned_on_an_entry() {
        for code in ["OOM", "NOPERM", "READONLY", "SHARED_KEY"] {
            let (items, tried) = isolate(8, &[5], code);
            assert!(items.is_err(), "{code}");
            assert_eq!(tried.len(), 1, "{code}: {tried:?}");
            assert_eq!(tried[0], 0..8, "{code}");
        }
        let io = anyhow::Error::new(redis::RedisError::from(std::io::Error::other("reset")));
        assert!(!may_be_one_entrys_fault(&io));
        assert!(may_be_one_entrys_fault(&server_error("WRONGTYPE")));
    }

    #[test]
    fn chunks_keep_the_order_and_carry_the_dead_letters_once() {
        let entries = [good("1-0"), entry("2-0", &[]), good("3-0"), good("4-0")];
        let chunks = triage(&entries, &HashMap::new()).into_chunks(2);
        assert_eq!(chunks.len(), 2);
        assert_eq!(ids(&chunks[0]), ["1-0", "3-0"]);
        assert_eq!(ids(&chunks[1]), ["4-0"]);
        assert_eq!(chunks[0].bad.len(), 1, "{:?}", chunks[0].bad);
        assert!(chunks[1].bad.is_empty());
    }

    #[test]
    fn a_batch_of_only_dead_letters_is_one_chunk() {
        let chunks = triage(&[entry("1-0", &[])], &HashMap::new()).into_chunks(8);
        assert_eq!(chunks.len(), 1);
        assert_eq!(chunks[0].len(), 1);
    }

    #[test]
    fn appended_batches_and_review_lines_keep_every_entry() {
        let mut a = triage(&[good("1-0")], &HashMap::new());
        a.append(triage(
            &[good("2-0"), entry("3-0", &[("x", "y")])],
            &HashMap::new(),
        ));
        let lines: Vec<_> = a.review_lines().collect();
        let streams: Vec<&str> = lines.iter().map(|(id, _)| *id).collect();
        assert_eq!(streams, ["1-0", "2-0", "3-0"]);
        assert!(
            lines[0]
                .1
                .contains(&("messageId".to_owned(), "1-0".to_owned()))
        );
        assert!(a.size_bytes() >= 2 * std::mem::size_of::<Good>());
    }
}
