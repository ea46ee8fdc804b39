//! Where the worker's batches come from, behind one interface. Every source hands
//! out batches of parsed entries ([`Triaged`]) and hears back how each went, so the
//! worker's loop is always the same: pick the next source, take its batch, run it
//! through the pipeline, report.
//!
//! The sources: new entries (read ahead for an instant engine, one blocking read at
//! a time otherwise), this consumer's own pending entries (at every start and at
//! the stop), stale entries of other consumers (claimed now and then), and entries
//! a slow engine's scheduler hands back to be decided again.

use crate::connection::Con;
use anyhow::Result;

use super::batch::{BatchOutcome, Triaged};
use super::blocking_read::BlockingReader;
use super::parsed_entry::ParsedEntry;
use super::pending::{Claims, OwnPending};
use super::read_ahead::{Batch, ReadAhead};

/// One place batches come from. A batch handed out stays with its source until
/// it is reported, so a stop or an outage in the middle of it finds it again.
pub(super) trait Source {
    /// Gets the next batch ready, waiting as long as this source waits; false when
    /// it has none.
    async fn fill(&mut self, con: &mut Con) -> Result<bool>;
    /// The batch made ready.
    fn batch(&mut self) -> Option<&mut Triaged>;
    /// How that batch went: `done` when every entry in it was settled; otherwise
    /// what is not settled is still pending in Redis.
    fn report(&mut self, done: bool);
}

/// Which source a batch came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Origin {
    /// Entries a slow engine's scheduler handed back.
    Recheck,
    /// Entries read ahead before a fault or the stop.
    ReadAhead,
    /// This consumer's pending entries.
    OwnPending,
    /// Other consumers' stale entries.
    Claimed,
    /// New entries.
    Fresh,
}

/// Whether a pull may read new entries from the stream, or only take what was
/// read before (handed back, claimed, pending) while a slow engine is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum NewEntries {
    /// Read new entries when no other source has a batch.
    Take,
    /// Leave new entries in the stream (backpressure, recovery).
    Hold,
}

/// A batch handed out, and where it came from.
pub(super) struct Pulled<'a> {
    /// The source to report to.
    pub from: Origin,
    /// The entries.
    pub batch: &'a mut Triaged,
}

/// What the worker is doing with its sources.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Not reading: before the first start, after a fault, after the stop.
    Closed,
    /// Finishing what was read before: handed back, read ahead, own pending.
    Recovering,
    /// Reading new entries.
    Running,
}

/// New entries: read ahead or read one batch at a time.
pub(super) enum Fresh {
    /// An instant engine's read-ahead.
    Ahead(ReadAhead),
    /// A blocking read per batch (a slow engine, or no read-ahead budget).
    Blocking(BlockingReader),
}

/// Every source of one worker, and which one is due.
pub(super) struct Sources {
    phase: Phase,
    rechecks: Rechecks,
    own: OwnPending,
    claims: Claims,
    fresh: Fresh,
    /// A step failed since the last full recovery: own pending entries are re-read
    /// without counting a delivery.
    after_fault: bool,
}

impl Sources {
    /// Sources reading new entries through `fresh`.
    pub(super) fn new(fresh: Fresh, own: OwnPending, claims: Claims) -> Self {
        Self {
            phase: Phase::Closed,
            rechecks: Rechecks::default(),
            own,
            claims,
            fresh,
            after_fault: false,
        }
    }

    /// Begins finishing what was read before: entries handed back, then what was
    /// read ahead, then own pending entries. New entries wait until [`Self::run`].
    pub(super) fn recover(&mut self) {
        self.phase = Phase::Recovering;
        self.own.begin(self.after_fault);
    }

    /// Everything read before is finished: new entries may be read.
    pub(super) fn run(&mut self) {
        self.phase = Phase::Running;
        self.after_fault = false;
    }

    /// A step failed: stop reading; what was handed out is pending in Redis (read
    /// ahead: kept here too) and comes back with the next recovery.
    pub(super) async fn fault(&mut self) {
        self.phase = Phase::Closed;
        self.after_fault = true;
        self.rechecks = Rechecks::default();
        self.own.end();
        self.fresh.close().await;
    }

    /// Stops reading for good: what a read in flight was handed is pending for
    /// this consumer, where the drain's recovery finds it.
    pub(super) async fn stop(&mut self) {
        self.phase = Phase::Closed;
        self.fresh.stop().await;
    }

    /// Entries to decide again, first in line.
    pub(super) fn recheck(&mut self, entries: Vec<ParsedEntry>) {
        self.rechecks.push(entries);
    }

    /// The next batch: in the phase's order, the first source that has one. New
    /// entries are read only with [`NewEntries::Take`] (a slow engine's scheduler
    /// takes more).
    pub(super) async fn next(
        &mut self,
        con: &mut Con,
        new: NewEntries,
    ) -> Result<Option<Pulled<'_>>> {
        let Some(from) = self.fill(con, new).await? else {
            return Ok(None);
        };
        Ok(self.source_batch(from).map(|batch| Pulled { from, batch }))
    }

    /// Reports how the batch from `from` went, and gives back its outcome as the
    /// status counts it (entries handed back were counted when first read).
    pub(super) fn report(
        &mut self,
        from: Origin,
        result: Result<BatchOutcome>,
    ) -> Result<BatchOutcome> {
        let done = result.is_ok();
        match from {
            Origin::Recheck => self.rechecks.report(done),
            Origin::ReadAhead | Origin::Fresh => self.fresh.report(done),
            Origin::OwnPending => self.own.report(done),
            Origin::Claimed => self.claims.report(done),
        }
        let mut outcome = result?;
        if from == Origin::Recheck {
            outcome.entries = 0;
        }
        Ok(outcome)
    }

    /// Batches read ahead and not finished, for the review file.
    pub(super) fn take_read_ahead(&mut self) -> Vec<Batch> {
        match &mut self.fresh {
            Fresh::Ahead(a) => a.take_all(),
            Fresh::Blocking(_) => Vec::new(),
        }
    }

    async fn fill(&mut self, con: &mut Con, new: NewEntries) -> Result<Option<Origin>> {
        if self.rechecks.fill(con).await? {
            return Ok(Some(Origin::Recheck));
        }
        match self.phase {
            Phase::Closed => Ok(None),
            Phase::Recovering => {
                if self.fresh.fill_read(con).await? {
                    return Ok(Some(Origin::ReadAhead));
                }
                Ok(self.own.fill(con).await?.then_some(Origin::OwnPending))
            }
            Phase::Running => {
                if self.claims.fill(con).await? {
                    return Ok(Some(Origin::Claimed));
                }
                if new == NewEntries::Take && self.fresh.fill(con).await? {
                    return Ok(Some(Origin::Fresh));
                }
                Ok(None)
            }
        }
    }

    fn source_batch(&mut self, from: Origin) -> Option<&mut Triaged> {
        match from {
            Origin::Recheck => self.rechecks.batch(),
            Origin::ReadAhead | Origin::Fresh => self.fresh.batch(),
            Origin::OwnPending => self.own.batch(),
            Origin::Claimed => self.claims.batch(),
        }
    }
}

impl Fresh {
    /// Hands over what was read already, reading nothing more.
    async fn fill_read(&mut self, con: &mut Con) -> Result<bool> {
        match self {
            Fresh::Ahead(a) => a.fill_read(con).await,
            Fresh::Blocking(_) => Ok(false),
        }
    }

    /// Stops reading after a fault.
    async fn close(&mut self) {
        match self {
            Fresh::Ahead(a) => a.stop().await,
            Fresh::Blocking(b) => b.close(),
        }
    }

    /// Stops reading at the stop.
    async fn stop(&mut self) {
        match self {
            Fresh::Ahead(a) => a.stop().await,
            Fresh::Blocking(b) => b.stop().await,
        }
    }
}

impl Source for Fresh {
    async fn fill(&mut self, con: &mut Con) -> Result<bool> {
        match self {
            Fresh::Ahead(a) => a.fill(con).await,
            Fresh::Blocking(b) => b.fill(con).await,
        }
    }

    fn batch(&mut self) -> Option<&mut Triaged> {
        match self {
            Fresh::Ahead(a) => a.batch(),
            Fresh::Blocking(b) => b.batch(),
        }
    }

    fn report(&mut self, done: bool) {
        match self {
            Fresh::Ahead(a) => a.report(done),
            Fresh::Blocking(b) => b.report(done),
        }
    }
}

/// Entries a slow engine's scheduler handed back to be decided again (a pause
/// cancelled their generation, or they aged while waiting). They are pending in
/// Redis, so one that fails comes back with the next recovery.
#[derive(Default)]
struct Rechecks {
    waiting: Vec<ParsedEntry>,
    current: Triaged,
}

impl Rechecks {
    fn push(&mut self, entries: Vec<ParsedEntry>) {
        self.waiting.extend(entries);
    }
}

impl Source for Rechecks {
    async fn fill(&mut self, _con: &mut Con) -> Result<bool> {
        if self.waiting.is_empty() {
            return Ok(false);
        }
        self.current = Triaged::from_good(std::mem::take(&mut self.waiting));
        Ok(true)
    }

    fn batch(&mut self) -> Option<&mut Triaged> {
        Some(&mut self.current)
    }

    fn report(&mut self, _done: bool) {
        self.current = Triaged::default();
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::time::Duration;

    use redis::Value;

    use super::*;
    use crate::config::SleepSetting;
    use crate::schema;
    use crate::server::{GraphModule, RedisServer, find_binary};
    use crate::worker::{WorkerConfig, recovery};

    fn config(read_ahead_bytes: usize) -> WorkerConfig {
        WorkerConfig {
            group: schema::WORKER_GROUP.to_owned(),
            consumer: "w-sources".to_owned(),
            batch_size: 16,
            read_ahead_bytes,
            block: Duration::from_millis(100),
            takeover_ms: schema::DEFAULT_PAUSE_MS,
            max_deliveries: 5,
            claim_idle: Duration::from_secs(3600),
            claim_every: Duration::from_secs(3600),
            default_persona: "casual".to_owned(),
            user_id: "user-1".to_owned(),
            review_file: std::env::temp_dir().join("secondme-sources-review.jsonl"),
            sleep_hours: SleepSetting::Off,
            sleep_mode: crate::sleep::SleepMode::Skip,
            rate_counted_elsewhere: false,
            max_generations: 8,
            burst_quiet: Duration::from_millis(100),
            learn: crate::learn::LearnConfig::default(),
            reply_mode: crate::schema::drafts::ReplyMode::Auto,
            draft_ttl_ms: 24 * 3600 * 1000,
            replicas_to_wait: 0,
            chores_every: Duration::from_secs(1),
            media: crate::media::config::MediaConfig::default(),
        }
    }

    fn fields(id: &str) -> Vec<(&'static str, String)> {
        vec![
            ("messageId", format!("m{id}")),
            ("contactId", "c".to_owned()),
            ("content", "hi".to_owned()),
            ("timestamp", "1".to_owned()),
            ("direction", "incoming".to_owned()),
            ("fromMe", "false".to_owned()),
        ]
    }

    fn parsed(id: &str) -> ParsedEntry {
        let map: HashMap<String, Value> = fields(id)
            .into_iter()
            .map(|(k, v)| (k.to_owned(), Value::BulkString(v.into_bytes())))
            .collect();
        let checked = crate::entry::check_map(id, &map).expect("a valid entry");
        ParsedEntry::new(id, &checked)
    }

    /// A private redis-server with the group and the entries `ids` in the queue.
    async fn queue(ids: &[&str]) -> (RedisServer, crate::connection::Client, Con) {
        let server =
            RedisServer::start(find_binary().expect("a redis-server"), GraphModule::Without)
                .expect("start redis-server");
        let client = crate::connection::open_client(&server.url()).expect("client");
        let mut con = crate::connection::manager(&client, None)
            .await
            .expect("connect");
        recovery::ensure_group(&mut con, schema::WORKER_GROUP)
            .await
            .expect("group");
        for id in ids {
            let _: String = redis::cmd("XADD")
                .arg(schema::queue_messages())
                .arg(*id)
                .arg(fields(id))
                .query_async(&mut con)
                .await
                .expect("XADD");
        }
        (server, client, con)
    }

    /// Delivers up to `n` new entries to the test's consumer, as a read before a crash.
    async fn deliver(con: &mut Con, n: usize) {
        let _: Value = redis::cmd("XREADGROUP")
            .arg("GROUP")
            .arg(schema::WORKER_GROUP)
            .arg("w-sources")
            .arg("COUNT")
            .arg(n)
            .arg("STREAMS")
            .arg(schema::queue_messages())
            .arg(">")
            .query_async(con)
            .await
            .expect("XREADGROUP");
    }

    /// Where the next batch comes from and its stream ids.
    async fn next(
        s: &mut Sources,
        con: &mut Con,
        new: NewEntries,
    ) -> Option<(Origin, Vec<String>)> {
        let pulled = s.next(con, new).await.expect("a batch or none")?;
        let ids = pulled.batch.stream_ids().map(str::to_owned).collect();
        Some((pulled.from, ids))
    }

    fn some(from: Origin, ids: &[&str]) -> Option<(Origin, Vec<String>)> {
        Some((from, ids.iter().map(|i| (*i).to_owned()).collect()))
    }

    #[tokio::test]
    async fn sources_take_turns_in_order_and_a_failed_batch_comes_back() {
        let (_server, client, mut con) = queue(&["1-1", "2-1", "3-1"]).await;
        deliver(&mut con, 2).await;
        let cfg = config(0);
        let fresh = Fresh::Blocking(BlockingReader::new(client, &cfg));
        let mut s = Sources::new(fresh, OwnPending::new(&cfg), Claims::new(&cfg));
        assert_eq!(
            next(&mut s, &mut con, NewEntries::Take).await,
            None,
            "closed"
        );

        s.recheck(vec![parsed("9-9")]);
        s.recover();
        assert_eq!(
            next(&mut s, &mut con, NewEntries::Take).await,
            some(Origin::Recheck, &["9-9"])
        );
        let counted = BatchOutcome {
            entries: 1,
            answered: 1,
            ..BatchOutcome::default()
        };
        let again = s.report(Origin::Recheck, Ok(counted)).expect("done");
        assert_eq!(again.entries, 0, "counted when first read");
        assert_eq!(again.answered, 1);

        let own = some(Origin::OwnPending, &["1-1", "2-1"]);
        assert_eq!(next(&mut s, &mut con, NewEntries::Take).await, own);
        let failed = s.report(Origin::OwnPending, Err(anyhow::anyhow!("no server")));
        assert!(failed.is_err());
        assert_eq!(
            next(&mut s, &mut con, NewEntries::Take).await,
            own,
            "handed out again"
        );
        s.report(Origin::OwnPending, Ok(BatchOutcome::default()))
            .expect("done");
        assert_eq!(
            next(&mut s, &mut con, NewEntries::Take).await,
            None,
            "recovered"
        );

        s.run();
        assert_eq!(
            next(&mut s, &mut con, NewEntries::Hold).await,
            None,
            "no room"
        );
        assert_eq!(
            next(&mut s, &mut con, NewEntries::Take).await,
            some(Origin::Fresh, &["3-1"])
        );
    }

    #[tokio::test]
    async fn a_batch_read_ahead_that_failed_is_tried_again_without_what_it_finished() {
        let (_server, client, mut con) = queue(&["1-1", "2-1"]).await;
        let cfg = config(1 << 20);
        let fresh = Fresh::Ahead(ReadAhead::new(client, &cfg));
        let mut s = Sources::new(fresh, OwnPending::new(&cfg), Claims::new(&cfg));
        s.recover();
        assert_eq!(
            next(&mut s, &mut con, NewEntries::Take).await,
            None,
            "nothing read yet"
        );
        s.run();
        let mut read = None;
        for _ in 0..20 {
            read = next(&mut s, &mut con, NewEntries::Take).await;
            if read.is_some() {
                break;
            }
        }
        assert_eq!(read, some(Origin::Fresh, &["1-1", "2-1"]));
        // The attempt settled the first entry, then the server failed.
        let _: i64 = redis::cmd("XACK")
            .arg(schema::queue_messages())
            .arg(schema::WORKER_GROUP)
            .arg("1-1")
            .query_async(&mut con)
            .await
            .expect("XACK");
        assert!(
            s.report(Origin::Fresh, Err(anyhow::anyhow!("no server")))
                .is_err()
        );
        s.fault().await;
        s.recover();
        let again = next(&mut s, &mut con, NewEntries::Take).await;
        assert_eq!(again, some(Origin::ReadAhead, &["2-1"]));
        s.report(Origin::ReadAhead, Ok(BatchOutcome::default()))
            .expect("done");
        assert!(s.take_read_ahead().is_empty(), "finished batches leave");
    }
}
