//! The worker: a consumer in the group on `QUEUE:messages`. Its loop takes a batch
//! from the next source that has one (new entries, its own and dead consumers'
//! pending entries, entries handed back; see `sources`), decides and answers it
//! (see [`batch`]) and reports back to the source; it survives Redis going away
//! (see [`recovery`]) and drains on stop.

pub mod batch;
mod blocking_read;
mod deferred;
mod drafts;
pub mod entries;
mod learned;
mod parsed_entry;
mod pending;
pub mod personas;
pub mod pool;
pub mod preview;
mod raw_read;
mod read_ahead;
pub mod recovery;
mod replicas;
mod request;
pub mod review;
mod scheduler;
mod sources;
mod understand;
pub mod verdict;

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::connection::Client;
use crate::connection::Con;
use anyhow::{Context, Result};
use tokio::sync::watch;

use crate::config::{Config, SleepSetting};
use crate::connection;
use crate::learn::LearnConfig;
use crate::reply::ReplyEngine;
use crate::schema;
use crate::schema::drafts::ReplyMode;
use crate::sleep::KnownHours;
use crate::store::durability::Confirmer;
use blocking_read::BlockingReader;
use learned::LearnedCache;
use pending::{Claims, OwnPending};
use read_ahead::ReadAhead;
use scheduler::Scheduler;
use sources::{Fresh, NewEntries, Sources};

pub use batch::BatchOutcome;

/// Tuning of one worker.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Consumer group.
    pub group: String,
    /// This consumer's name.
    pub consumer: String,
    /// Entries decided per batch.
    pub batch_size: usize,
    /// Memory for entries read ahead of the decisions (instant engines); 0 reads
    /// one batch at a time.
    pub read_ahead_bytes: usize,
    /// How long one read blocks.
    pub block: Duration,
    /// Takeover pause, ms.
    pub takeover_ms: i64,
    /// Deliveries before an entry is dead-lettered.
    pub max_deliveries: u64,
    /// Idle time after which another consumer's pending entry is claimed.
    pub claim_idle: Duration,
    /// How often to look for such entries.
    pub claim_every: Duration,
    /// Persona for every contact until the graph assigns one.
    pub default_persona: String,
    /// The account owner: the graph's `User` whose personas and sleep hours apply.
    pub user_id: String,
    /// Where entries left unprocessed at stop are written.
    pub review_file: std::path::PathBuf,
    /// Sleep hours: from the graph, off, or a fixed window.
    pub sleep_hours: SleepSetting,
    /// What the sleep hours do to a message: skip it, or defer it to their end.
    pub sleep_mode: crate::sleep::SleepMode,
    /// Another program counts `COUNTER:{contactId}:msgs`: the decision only reads it.
    pub rate_counted_elsewhere: bool,
    /// Replies a slow engine writes at once.
    pub max_generations: usize,
    /// Quiet time after a contact's message before a slow engine replies, so a
    /// burst gets one reply.
    pub burst_quiet: Duration,
    /// Learning from the person's chats: examples per reply, the chat cap, and
    /// whether other chats may lend style examples.
    pub learn: LearnConfig,
    /// The reply mode of contacts without one (`SECONDME:modes` `*` overrides it).
    pub reply_mode: ReplyMode,
    /// How long a draft waits for the operator before it expires unsent, ms.
    pub draft_ttl_ms: i64,
    /// Replicas that must acknowledge a batch's writes (`WAIT`) before its
    /// outcome counts; 0 waits for none.
    pub replicas_to_wait: u32,
    /// How often the chores of a worker with nothing to do run: trimming the
    /// queue and looking at the messages deferred to the end of the sleep hours;
    /// the drafts' keeper looks twice as often. A pool serving many namespaces
    /// sets it longer, so idle namespaces cost Redis little.
    pub chores_every: Duration,
    /// Reading voice notes and photos: the transcription endpoint and the size limit.
    pub media: crate::media::config::MediaConfig,
}

impl WorkerConfig {
    /// The worker settings of a resolved [`Config`].
    pub fn from_config(c: &Config) -> Self {
        Self {
            group: schema::WORKER_GROUP.to_owned(),
            consumer: c.consumer.clone(),
            batch_size: c.batch_size,
            read_ahead_bytes: c.read_ahead_bytes,
            block: Duration::from_secs(2),
            takeover_ms: i64::try_from(c.takeover.as_millis()).unwrap_or(i64::MAX),
            max_deliveries: c.max_deliveries,
            claim_idle: c.claim_idle,
            claim_every: c.claim_idle.min(Duration::from_secs(5)),
            default_persona: c.default_persona.clone(),
            user_id: c.user_id.clone(),
            review_file: c.review_file.clone(),
            sleep_hours: c.sleep_hours,
            sleep_mode: c.sleep_mode,
            rate_counted_elsewhere: c.rate_counted_elsewhere,
            max_generations: c.max_generations,
            burst_quiet: c.burst_quiet,
            learn: c.learn.clone(),
            reply_mode: c.reply_mode,
            draft_ttl_ms: i64::try_from(c.draft_ttl.as_millis()).unwrap_or(i64::MAX),
            replicas_to_wait: c.replicas_to_wait,
            chores_every: Duration::from_secs(1),
            media: c.media.clone(),
        }
    }
}

/// What the worker is doing, for the TUI and the log.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum WorkerState {
    /// Connecting for the first time.
    #[default]
    Starting,
    /// Reading and answering.
    Running,
    /// Redis is unreachable; retrying.
    Disconnected {
        /// The last error.
        error: String,
    },
    /// Stopping: finishing what was delivered.
    Draining,
    /// Stopped.
    Stopped,
}

/// Running totals of this worker.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WorkerStatus {
    /// Current state.
    pub state: WorkerState,
    /// Entries handled.
    pub entries: u64,
    /// Replies written.
    pub answered: u64,
    /// Replies kept as drafts for the operator.
    pub drafted: u64,
    /// Entries skipped.
    pub skipped: u64,
    /// Entries dead-lettered.
    pub dead_lettered: u64,
    /// Entries written to the review file at stop.
    pub reviewed: u64,
    /// Times the worker's writes were not confirmed on `replicas_to_wait`
    /// replicas in time (done on the primary only).
    pub unreplicated: u64,
    /// The sleep hours the worker is in right now, if it is.
    pub asleep: Option<crate::sleep::SleepHours>,
    /// While draining: entries this consumer had to finish when the drain began.
    pub drain_pending: u64,
    /// `entries` when the drain began, so that [`WorkerStatus::left`] can count down.
    pub drain_start_entries: u64,
}

impl WorkerStatus {
    /// Entries still to finish while draining (0 in any other state).
    pub fn left(&self) -> u64 {
        if self.state != WorkerState::Draining {
            return 0;
        }
        let done = self.entries.saturating_sub(self.drain_start_entries);
        self.drain_pending.saturating_sub(done)
    }
}

/// A worker bound to one Redis.
pub struct Worker<E> {
    client: Client,
    con: Con,
    engine: Arc<E>,
    /// Writes a slow engine's replies beside the read loop (none for an instant engine).
    scheduler: Option<Scheduler<E>>,
    cfg: WorkerConfig,
    acked_trim: bool,
    personas: personas::Personas,
    /// What was learned from the person's chats, shared with the scheduler's jobs.
    learned: Arc<LearnedCache>,
    status: watch::Sender<WorkerStatus>,
    /// The last best-effort failure logged, so a lasting one is logged once.
    last_warning: Option<String>,
    /// Tells the waker of the night's deferred messages where now stands
    /// against the sleep hours.
    dawn: deferred::Dawn,
    /// The transcription endpoint's client; `None` leaves voice notes to the operator.
    transcriber: Option<crate::media::stt::Transcriber>,
    /// Which server connection `con` was last seen on, for the `WAIT`s of the
    /// loop, the keeper and the waker (which write on `con` too).
    confirmer: Confirmer,
}

impl<E: ReplyEngine> Worker<E> {
    /// Connects to Redis and prepares the group; fails if Redis cannot be reached.
    pub async fn connect(client: Client, engine: E, cfg: WorkerConfig) -> Result<Self> {
        let con = connection::manager(&client, None).await?;
        Ok(Self::with_connection(client, con, engine, cfg))
    }

    /// A worker that shares an existing connection manager; with
    /// `replicas_to_wait`, it writes and waits on a connection of its own.
    pub fn with_connection(client: Client, con: Con, engine: E, cfg: WorkerConfig) -> Self {
        let shared = con;
        let con = crate::store::durability::own_connection(&shared, cfg.replicas_to_wait);
        let confirmer = Confirmer::default();
        let (status, _) = watch::channel(WorkerStatus::default());
        let personas = personas::Personas::new(&cfg.default_persona, &cfg.user_id);
        let engine = Arc::new(engine);
        let learned = Arc::new(LearnedCache::new(cfg.learn.clone()));
        let transcriber = cfg.media.stt.as_ref().and_then(|stt| {
            crate::media::stt::Transcriber::new(stt)
                .map_err(|e| {
                    tracing::error!(
                        "voice notes are left to the operator: the transcription endpoint cannot be used: {e}"
                    );
                })
                .ok()
        });
        let scheduler = (!engine.instant()).then(|| {
            let learned = Arc::clone(&learned);
            Scheduler::new(
                Arc::clone(&engine),
                (con.clone(), shared, confirmer.clone()),
                &cfg,
                status.subscribe(),
                learned,
            )
        });
        Self {
            client,
            con,
            engine,
            scheduler,
            cfg,
            acked_trim: false,
            personas,
            learned,
            status,
            last_warning: None,
            dawn: deferred::Dawn::default(),
            transcriber,
            confirmer,
        }
    }

    /// A receiver that follows the worker's status.
    pub fn status(&self) -> watch::Receiver<WorkerStatus> {
        self.status.subscribe()
    }

    fn set_state(&self, state: WorkerState) {
        self.status.send_modify(|s| s.state = state);
    }

    fn count(&self, o: &BatchOutcome) {
        count_into(&self.status, o);
    }

    /// Runs until `stop` turns true, then drains; returns the final totals.
    pub async fn run(mut self, mut stop: watch::Receiver<bool>) -> Result<WorkerStatus> {
        let mut backoff = Duration::from_millis(200);
        let mut sources = self.sources();
        let mut ready = false;
        let mut last_trim = Instant::now();
        if let Some(s) = self.scheduler.as_mut() {
            s.start();
        }
        let keeper = drafts::spawn(self.keeper());
        let waker = deferred::spawn(self.waker());
        while !*stop.borrow() {
            let step = async {
                if !ready {
                    self.start_reading(&mut sources).await?;
                    ready = true;
                }
                self.next_batch(&mut sources).await?;
                self.housekeeping(&mut sources, &mut last_trim).await
            };
            let result = tokio::select! {
                r = step => r,
                _ = stop.changed() => break,
            };
            match result {
                Ok(()) => {
                    if backoff > Duration::from_millis(200) {
                        tracing::info!("Redis is reachable again; the worker goes on");
                    }
                    backoff = Duration::from_millis(200);
                }
                Err(e) => {
                    let error = connection::describe_error(&e);
                    tracing::warn!("worker: {error}; retrying in {} ms", backoff.as_millis());
                    self.set_state(WorkerState::Disconnected { error });
                    sources.fault().await;
                    ready = false;
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = stop.changed() => break,
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
        drop(keeper);
        drop(waker);
        sources.stop().await;
        sources.recheck(self.stop_jobs().await);
        self.drain(sources).await
    }

    /// The worker's sources of batches: new entries read ahead for an instant
    /// engine with a read-ahead budget, one blocking read at a time otherwise.
    fn sources(&self) -> Sources {
        let fresh = if self.engine.instant() && self.cfg.read_ahead_bytes > 0 {
            Fresh::Ahead(ReadAhead::new(self.client.clone(), &self.cfg))
        } else {
            Fresh::Blocking(BlockingReader::new(self.client.clone(), &self.cfg))
        };
        Sources::new(fresh, OwnPending::new(&self.cfg), Claims::new(&self.cfg))
    }

    /// Prepares Redis, finishes what was read before, then lets new entries in.
    async fn start_reading(&mut self, sources: &mut Sources) -> Result<()> {
        self.prepare().await?;
        self.recover(sources).await?;
        sources.run();
        self.set_state(WorkerState::Running);
        Ok(())
    }

    /// Handles one batch of the running worker; while a slow engine's scheduler is
    /// full, new entries stay in the stream (backpressure) until a job ends.
    async fn next_batch(&mut self, sources: &mut Sources) -> Result<()> {
        let new = if self.scheduler.as_ref().is_some_and(Scheduler::full) {
            NewEntries::Hold
        } else {
            NewEntries::Take
        };
        if !self.step(sources, new).await? && new == NewEntries::Hold {
            self.wait_for_room().await;
        }
        Ok(())
    }

    /// Between batches: what the scheduler's jobs finished (entries to decide
    /// again go back to the sources), the sleep hours, and trimming the queue.
    async fn housekeeping(&mut self, sources: &mut Sources, last_trim: &mut Instant) -> Result<()> {
        sources.recheck(self.finish_jobs().await?);
        // Also when no message comes, so the status (and the waker) follow the clock.
        self.asleep().await;
        if last_trim.elapsed() >= self.cfg.chores_every {
            *last_trim = Instant::now();
            recovery::trim(&mut self.con, self.acked_trim).await?;
        }
        Ok(())
    }

    /// Takes the next batch from `sources`, runs it through the pipeline and
    /// reports how it went; false when no source had one.
    async fn step(&mut self, sources: &mut Sources, new: NewEntries) -> Result<bool> {
        let Some(pulled) = sources.next(&mut self.con, new).await? else {
            return Ok(false);
        };
        let from = pulled.from;
        let result = self.process_triaged(pulled.batch).await;
        let outcome = sources.report(from, result)?;
        self.count(&outcome);
        Ok(true)
    }

    /// Finishes what was read before a fault or the stop: entries handed back,
    /// those read ahead, then this consumer's pending entries.
    async fn recover(&mut self, sources: &mut Sources) -> Result<()> {
        sources.recover();
        while self.step(sources, NewEntries::Hold).await? {}
        Ok(())
    }

    /// Waits up to the block time for a slow engine's job to end.
    async fn wait_for_room(&self) {
        if let Some(s) = self.scheduler.as_ref() {
            s.wait_for_room(self.cfg.block).await;
        }
    }

    /// Whether now is in the sleep hours; tells the log and the status when that
    /// changes, and the waker each time (it wakes the night's messages only once
    /// the sleep hours are known to be over).
    async fn asleep(&mut self) -> bool {
        let hours = match self.cfg.sleep_hours {
            SleepSetting::Off => KnownHours::Known(None),
            SleepSetting::Window(w) => KnownHours::Known(Some(w)),
            SleepSetting::FromGraph => self.personas.sleep_hours(&mut self.con).await,
        };
        let now = hours.at(crate::store::now_ms());
        self.dawn.tell(now);
        let asleep = now.asleep();
        if asleep != self.status.borrow().asleep {
            match asleep {
                Some(w) => tracing::info!(
                    "sleep hours {w}: no automated replies until {}",
                    w.end_text()
                ),
                None => tracing::info!("sleep hours over: the twin answers again"),
            }
            self.status.send_modify(|s| s.asleep = asleep);
        }
        asleep.is_some()
    }

    /// Creates the group, loads the functions and learns the server's version.
    async fn prepare(&mut self) -> Result<()> {
        recovery::ensure_group(&mut self.con, &self.cfg.group).await?;
        // Loaded at every (re)start, so a Redis that lost it, or holds another
        // version's, gets this build's before the first batch.
        crate::store::functions::load(&mut self.con)
            .await
            .context("cannot load SecondMe's functions into Redis (FUNCTION LOAD)")?;
        let version = connection::server_version(&mut self.con).await?;
        self.acked_trim = connection::supports_acked_trim(version);
        self.personas.reset();
        tracing::info!(
            "worker {} on Redis {}.{} ({} trimming)",
            self.cfg.consumer,
            version.0,
            version.1,
            if self.acked_trim { "ACKED" } else { "MINID" }
        );
        // Said at every start: a policy that evicts can lose the opt-in set.
        match crate::store::eviction::check(&mut self.con).await {
            Ok(c) if c.policy.is_some() => {
                if let Some(w) = c.warning {
                    tracing::warn!("{w}");
                }
            }
            Ok(c) => tracing::info!("{}", c.warning.unwrap_or_default()),
            Err(e) => tracing::info!(
                "cannot read maxmemory-policy: {}",
                connection::scrub(&e.to_string())
            ),
        }
        // What other programs sharing this Redis write, and how it is read.
        for line in crate::store::dialects::detect(&mut self.con, &self.cfg.user_id).await {
            tracing::info!("reading: {line}");
        }
        if self.cfg.rate_counted_elsewhere {
            tracing::info!(
                "rate counters are counted by another program (rate_counted_elsewhere): only read"
            );
        }
        Ok(())
    }

    /// Stops reading, finishes what was delivered, and writes what is left to review.
    async fn drain(mut self, mut sources: Sources) -> Result<WorkerStatus> {
        // What is left is this consumer's pending list (entries read ahead are in it
        // too). Without an answer from Redis the count shows 0; the drain goes on.
        let pending = match own_pending_count(&mut self.con, &self.cfg).await {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!("cannot count pending entries: {e:#}");
                0
            }
        };
        self.status.send_modify(|s| {
            s.drain_pending = pending;
            s.drain_start_entries = s.entries;
            s.state = WorkerState::Draining;
        });
        tracing::info!(
            "worker {} draining: {pending} entries left",
            self.cfg.consumer
        );
        let deadline = Duration::from_secs(10);
        match tokio::time::timeout(deadline, self.recover(&mut sources)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!("drain could not finish: {e:#}"),
            Err(_) => tracing::warn!("drain took longer than {} s", deadline.as_secs()),
        }
        let mut left = sources.take_read_ahead();
        let reviewed = async {
            let mut n = review::write_read_ahead(&mut self.con, &self.cfg, &mut left).await?;
            n += review::write_leftovers(&mut self.con, &self.cfg).await?;
            anyhow::Ok(n)
        };
        match reviewed.await {
            Ok(n) => {
                if n > 0 {
                    tracing::warn!(
                        "{n} unprocessed entries written to {} for review",
                        self.cfg.review_file.display()
                    );
                }
                self.status.send_modify(|s| s.reviewed += n);
            }
            Err(e) => tracing::error!(
                "could not write unprocessed entries to review (they stay pending in Redis): {e:#}"
            ),
        }
        self.set_state(WorkerState::Stopped);
        let status = self.status.borrow().clone();
        tracing::info!("worker stopped: {status:?}");
        Ok(status)
    }
}

/// Connects and runs a worker for `config` with the given engine until `stop`.
pub async fn run_worker<E: ReplyEngine>(
    config: &Config,
    engine: E,
    stop: watch::Receiver<bool>,
) -> Result<WorkerStatus> {
    let client = connection::client_for(config)?;
    let con = connection::manager(&client, None)
        .await
        .with_context(|| connection::cannot_reach(&config.redis_url))?;
    Worker::with_connection(client, con, engine, WorkerConfig::from_config(config))
        .run(stop)
        .await
}

/// Adds `o` to the worker's totals in `status` (its loop's batches, its
/// waker's nights).
fn count_into(status: &watch::Sender<WorkerStatus>, o: &BatchOutcome) {
    status.send_modify(|s| {
        s.entries += o.entries as u64;
        s.answered += o.answered as u64;
        s.drafted += o.drafted as u64;
        s.skipped += o.skipped as u64;
        s.dead_lettered += o.dead_lettered as u64;
        s.unreplicated += o.unreplicated as u64;
    });
}

/// How many entries are pending for this consumer (`XPENDING` summary).
async fn own_pending_count(con: &mut Con, cfg: &WorkerConfig) -> Result<u64> {
    let reply: redis::streams::StreamPendingReply = redis::cmd("XPENDING")
        .arg(schema::queue_messages())
        .arg(cfg.group.as_str())
        .query_async(con)
        .await
        .map_err(recovery::explain_nogroup)?;
    Ok(match reply {
        redis::streams::StreamPendingReply::Data(d) => d
            .consumers
            .iter()
            .find(|c| c.name == cfg.consumer)
            .map_or(0, |c| c.pending as u64),
        _ => 0,
    })
}
