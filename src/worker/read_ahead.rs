//! Reading ahead of the decisions. With an instant engine, a task reads new entries
//! while the worker decides earlier ones and hands them over in order. A burst
//! faster than the worker can decide then waits here, parsed, instead of in the
//! stream, where a gateway's `XADD ... MAXLEN ~ 1000` would trim it unread.
//!
//! What waits is bounded by a memory budget: when it is spent the task stops
//! reading until the worker catches up. Entries read ahead are pending in the
//! group like any delivered entry, so a crash leaves them to the usual recovery;
//! only those a gateway trimmed meanwhile exist nowhere else. So the task is never
//! cut off while it holds entries: asked to stop, it hands over everything it has
//! read, budget or not, and the worker decides or reviews it.
//!
//! As a source of the worker's batches (see [`super::sources`]) it hands out its
//! oldest batch, which leaves only once reported done.
//!
//! Over TCP and Unix sockets the task reads through [`super::raw_read`], which
//! walks each reply in place, on the node serving the queue when it connects (on
//! Sentinel the primary named then, on a Cluster the primary of the queue's
//! slot); over TLS it reads through redis-rs, on that same node.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Waker};
use std::time::Duration;

use crate::connection::{Client, Con, ReadCon};
use anyhow::Result;
use futures_util::future::{MaybeDone, maybe_done};
use redis::streams::{StreamId, StreamReadOptions};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, watch};
use tokio::task::JoinHandle;

use super::WorkerConfig;
use super::batch::{Triaged, triage};
use super::blocking_read::read_new;
use super::raw_read::{RawReader, ReadRequest};
use super::recovery;
use super::sources::Source;
use crate::connection;
use crate::schema;

/// Entries one read may take: more than a gateway's `MAXLEN ~ 1000` leaves unread,
/// so a read takes everything that arrived since the last one.
const READ_COUNT: usize = 2048;
/// Reads waiting in Redis at any time.
const READS_IN_FLIGHT: usize = 2;
/// How long one read waits for new entries: short, so a stop never waits long for
/// the reads in flight.
const READ_BLOCK: Duration = Duration::from_millis(100);
/// Longest wait for the task to hand over what it holds when asked to stop.
const STOP_WAIT: Duration = Duration::from_secs(3);

/// Per-entry cost the size estimate leaves out: the allocator's header and rounding
/// of the entry's one allocation.
const ENTRY_OVERHEAD_BYTES: usize = 24;

/// Entries read and parsed, with the share of the budget they hold until dropped
/// (none for what was handed over at a stop).
pub(super) struct Batch {
    /// The entries.
    pub entries: Triaged,
    room: Option<OwnedSemaphorePermit>,
    /// Failed attempts to decide it.
    attempts: u64,
}

/// What the reading task hands over.
enum Read {
    Batch(Batch),
    Failed(anyhow::Error),
}

/// The reading task, while it runs.
struct Reader {
    task: JoinHandle<()>,
    stop: watch::Sender<bool>,
}

/// Batches read ahead, oldest first, and the task that reads them.
pub(super) struct ReadAhead {
    client: Client,
    cfg: WorkerConfig,
    tx: mpsc::UnboundedSender<Read>,
    rx: mpsc::UnboundedReceiver<Read>,
    /// Free budget in KiB.
    room: Arc<Semaphore>,
    budget_kib: u32,
    /// Taken from the channel, in order; the front batch is the one being decided.
    queue: VecDeque<Read>,
    reader: Option<Reader>,
    /// Batches waiting are merged up to this many entries, so a backlog is decided
    /// in full batches rather than in the small reads that arrived one by one.
    merge_up_to: usize,
}

impl ReadAhead {
    /// An idle read-ahead that may hold about `cfg.read_ahead_bytes` of parsed
    /// entries and hands them over in batches of up to `cfg.batch_size` entries.
    pub(super) fn new(client: Client, cfg: &WorkerConfig) -> Self {
        let budget_kib = u32::try_from(cfg.read_ahead_bytes / 1024)
            .unwrap_or(u32::MAX)
            .clamp(1, Semaphore::MAX_PERMITS as u32);
        let (tx, rx) = mpsc::unbounded_channel();
        Self {
            client,
            cfg: cfg.clone(),
            tx,
            rx,
            room: Arc::new(Semaphore::new(budget_kib as usize)),
            budget_kib,
            queue: VecDeque::new(),
            reader: None,
            merge_up_to: cfg.batch_size,
        }
    }

    /// Whether the reading task runs.
    fn running(&self) -> bool {
        self.reader.is_some()
    }

    /// Opens a connection (to the node `con` names on a Cluster) and starts the
    /// reading task on it.
    async fn start(&mut self, con: &mut Con) -> Result<()> {
        self.stop().await;
        let source = Reads::open(&self.client, con, &self.cfg).await?;
        let (stop, stop_rx) = watch::channel(false);
        let task = schema::spawn_here(read_loop(
            source,
            self.cfg.batch_size,
            self.tx.clone(),
            Arc::clone(&self.room),
            self.budget_kib,
            stop_rx,
        ));
        self.reader = Some(Reader { task, stop });
        Ok(())
    }

    /// Stops the reading task once it has handed over everything it read, the
    /// replies of the reads in flight included; those stay here.
    pub(super) async fn stop(&mut self) {
        let Some(mut reader) = self.reader.take() else {
            return;
        };
        let _ = reader.stop.send(true);
        if tokio::time::timeout(STOP_WAIT, &mut reader.task)
            .await
            .is_err()
        {
            tracing::warn!(
                "the stream reader did not stop within {} s; what it held stays pending in Redis",
                STOP_WAIT.as_secs()
            );
            reader.task.abort();
        }
    }

    /// Waits up to the block time for the oldest unfinished batch. An error means
    /// the reading task failed or ended (after everything it read before).
    async fn next(&mut self) -> Result<bool> {
        if self.queue.is_empty() {
            match tokio::time::timeout(self.cfg.block, self.rx.recv()).await {
                Ok(Some(read)) => self.queue.push_back(read),
                Ok(None) | Err(_) => {
                    if self.reader.as_ref().is_some_and(|r| r.task.is_finished()) {
                        self.reader = None;
                        anyhow::bail!("the stream reader ended unexpectedly");
                    }
                    return Ok(false);
                }
            }
        }
        self.take_waiting();
        if matches!(self.queue.front(), Some(Read::Failed(_)))
            && let Some(Read::Failed(e)) = self.queue.pop_front()
        {
            self.reader = None;
            return Err(e);
        }
        Ok(self.front_batch().is_some())
    }

    /// Hands over the oldest unfinished batch already read, without waiting or
    /// starting to read: for the recovery after a fault and for the drain. Errors
    /// the task reported are dropped: the caller is recovering from them.
    pub(super) async fn fill_read(&mut self, con: &mut Con) -> Result<bool> {
        self.take_waiting();
        while matches!(self.queue.front(), Some(Read::Failed(_))) {
            self.queue.pop_front();
        }
        self.retain_if_retried(con).await
    }

    /// Before a batch is tried again, drops what the earlier attempt finished (no
    /// longer pending); false when there is no batch.
    async fn retain_if_retried(&mut self, con: &mut Con) -> Result<bool> {
        let Some(Read::Batch(b)) = self.queue.front_mut() else {
            return Ok(false);
        };
        if b.attempts > 0 {
            recovery::retain_pending(con, &self.cfg, &mut b.entries).await?;
        }
        Ok(true)
    }

    /// Takes every batch not finished yet.
    pub(super) fn take_all(&mut self) -> Vec<Batch> {
        self.take_waiting();
        self.queue
            .drain(..)
            .filter_map(|read| match read {
                Read::Batch(b) => Some(b),
                Read::Failed(_) => None,
            })
            .collect()
    }

    /// Moves what the channel holds into the queue, merging batches that follow
    /// one another into the one before, up to the merge size. A batch that already
    /// failed is not merged into: its attempts are its own.
    fn take_waiting(&mut self) {
        while let Ok(read) = self.rx.try_recv() {
            match (self.queue.back_mut(), read) {
                (Some(Read::Batch(last)), Read::Batch(next))
                    if last.attempts == 0
                        && last.entries.len() + next.entries.len() <= self.merge_up_to =>
                {
                    last.entries.append(next.entries);
                    match (&mut last.room, next.room) {
                        (Some(room), Some(more)) => room.merge(more),
                        (room @ None, more) => *room = more,
                        (Some(_), None) => {}
                    }
                }
                (_, read) => self.queue.push_back(read),
            }
        }
    }

    fn front_batch(&mut self) -> Option<&mut Triaged> {
        match self.queue.front_mut() {
            Some(Read::Batch(b)) => Some(&mut b.entries),
            _ => None,
        }
    }
}

/// The oldest batch is handed out and leaves only once reported done, so a stop
/// or an outage in the middle finds it again. A batch is never dead-lettered for
/// failing as a whole: a failure that lies in one entry ends as that entry's
/// verdict, so what is left is the server's or a shared key's fault, and the batch
/// waits, pending, until that is mended.
impl Source for ReadAhead {
    async fn fill(&mut self, con: &mut Con) -> Result<bool> {
        if !self.running() {
            self.start(con).await?;
        }
        Ok(self.next().await? && self.retain_if_retried(con).await?)
    }

    fn batch(&mut self) -> Option<&mut Triaged> {
        self.front_batch()
    }

    fn report(&mut self, done: bool) {
        if done {
            // Gives its budget back.
            self.queue.pop_front();
        } else if let Some(Read::Batch(b)) = self.queue.front_mut() {
            b.attempts += 1;
        }
    }
}

impl Drop for ReadAhead {
    fn drop(&mut self) {
        if let Some(reader) = self.reader.take() {
            reader.task.abort();
        }
    }
}

/// A read sent to Redis whose reply has not been taken yet.
type InFlight = Pin<Box<MaybeDone<Pin<Box<dyn Future<Output = Result<Vec<StreamId>>> + Send>>>>>;

/// Where the reads go.
enum Reads {
    /// TCP or a Unix socket, replies walked in place.
    Raw(RawReader),
    /// TLS, through redis-rs.
    Client {
        con: ReadCon,
        opts: Arc<StreamReadOptions>,
        in_flight: VecDeque<InFlight>,
    },
}

impl Reads {
    async fn open(client: &Client, con: &mut Con, cfg: &WorkerConfig) -> Result<Self> {
        // Reads are larger than the batches decided: a read waits in Redis behind a
        // decision or two, so it must take everything that arrived meanwhile.
        let read = ReadRequest {
            group: &cfg.group,
            consumer: &cfg.consumer,
            count: READ_COUNT,
            block: READ_BLOCK,
        };
        let node = client.stream_node(con, schema::queue_messages()).await?;
        if let Some(raw) = RawReader::connect(&node, &read).await? {
            return Ok(Self::Raw(raw));
        }
        let con = connection::blocking_connection(&node, READ_BLOCK).await?;
        let opts = StreamReadOptions::default()
            .group(&cfg.group, &cfg.consumer)
            .count(READ_COUNT)
            .block(READ_BLOCK.as_millis() as usize);
        Ok(Self::Client {
            con,
            opts: Arc::new(opts),
            in_flight: VecDeque::new(),
        })
    }

    /// Sends one more read.
    async fn send(&mut self) -> Result<()> {
        match self {
            Self::Raw(r) => r.send().await,
            Self::Client {
                con,
                opts,
                in_flight,
            } => {
                in_flight.push_back(send_read(con, opts));
                Ok(())
            }
        }
    }

    /// The entries of the oldest read in flight; `None` when none is.
    async fn next(&mut self) -> Option<Result<Triaged>> {
        match self {
            Self::Raw(r) => {
                if r.in_flight() == 0 {
                    return None;
                }
                Some(r.next().await)
            }
            Self::Client { in_flight, .. } => {
                let mut read = in_flight.pop_front()?;
                read.as_mut().await;
                let entries = read.as_mut().take_output()?;
                Some(entries.map(|e| triage(&e, &HashMap::new())))
            }
        }
    }
}

/// Sends a read now: polled once here, so requests reach the connection in the
/// order they are started, and Redis delivers entries in that order.
fn send_read(con: &ReadCon, opts: &Arc<StreamReadOptions>) -> InFlight {
    let mut con = con.clone();
    let opts = Arc::clone(opts);
    let read: Pin<Box<dyn Future<Output = Result<Vec<StreamId>>> + Send>> =
        Box::pin(async move { read_new(&mut con, &opts).await });
    let mut read = Box::pin(maybe_done(read));
    let _ = read.as_mut().poll(&mut Context::from_waker(Waker::noop()));
    read
}

async fn read_loop(
    mut source: Reads,
    batch_size: usize,
    tx: mpsc::UnboundedSender<Read>,
    room: Arc<Semaphore>,
    budget_kib: u32,
    mut stop: watch::Receiver<bool>,
) {
    // Reads queued in Redis while this task hands entries over: at high rates a
    // gateway trimming at MAXLEN ~ 1000 leaves a reader only milliseconds of slack,
    // and a reply goes out only once per turn of Redis's event loop.
    let mut failed = None;
    for _ in 0..READS_IN_FLIGHT {
        if let Err(e) = source.send().await {
            failed = Some(e);
            break;
        }
    }
    while let Some(read) = source.next().await {
        let entries = match read {
            Ok(entries) => entries,
            Err(e) => {
                // The reads still in flight may have delivered entries: take those the
                // connection can still bring (redis-rs's), but send no more.
                failed.get_or_insert(e);
                continue;
            }
        };
        if !*stop.borrow()
            && failed.is_none()
            && let Err(e) = source.send().await
        {
            failed = Some(e);
        }
        for entries in entries.into_chunks(batch_size) {
            let bytes = entries.size_bytes() + entries.len() * ENTRY_OVERHEAD_BYTES;
            let kib = u32::try_from(bytes / 1024 + 1)
                .unwrap_or(u32::MAX)
                .min(budget_kib);
            // Waits while the budget is spent, unless asked to stop: what was read
            // is handed over whatever the budget, never dropped.
            let room = tokio::select! {
                room = Arc::clone(&room).acquire_many_owned(kib) => room.ok(),
                _ = stop.wait_for(|s| *s) => None,
            };
            let batch = Batch {
                entries,
                room,
                attempts: 0,
            };
            if tx.send(Read::Batch(batch)).is_err() {
                return;
            }
        }
    }
    if let Some(e) = failed {
        let _ = tx.send(Read::Failed(e));
    }
}
