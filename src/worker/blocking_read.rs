//! New entries read one batch at a time, each read blocking up to the block time
//! on a connection of its own (redis-rs's shared connection would time out behind
//! it). Used when nothing is read ahead: a slow engine (an LLM) must not hold
//! entries it has not decided, where they could age past the 5-minute limit.

use std::collections::HashMap;
use std::time::Duration;

use crate::connection::{Client, Con, ReadCon};
use anyhow::Result;
use redis::aio::ConnectionLike;
use redis::streams::{StreamId, StreamReadOptions};

use super::WorkerConfig;
use super::batch::{Triaged, triage};
use super::entries::ReadEntries;
use super::recovery;
use super::sources::Source;
use crate::connection;
use crate::schema;

/// The blocking reader of new entries.
pub(super) struct BlockingReader {
    client: Client,
    opts: StreamReadOptions,
    block: Duration,
    /// The connection, once opened.
    reader: Option<ReadCon>,
    current: Triaged,
}

impl BlockingReader {
    /// A reader for `cfg`'s group and consumer; it connects on its first read.
    pub(super) fn new(client: Client, cfg: &WorkerConfig) -> Self {
        let opts = StreamReadOptions::default()
            .group(&cfg.group, &cfg.consumer)
            .count(cfg.batch_size)
            .block(cfg.block.as_millis() as usize);
        Self {
            client,
            opts,
            block: cfg.block,
            reader: None,
            current: Triaged::default(),
        }
    }

    /// Drops the connection after a fault; the next read opens another.
    pub(super) fn close(&mut self) {
        self.reader = None;
    }

    /// Ends a read left blocked by the stop, so Redis cannot hand this consumer
    /// new entries after the drain has looked at its pending list. The unblock
    /// goes to the node the read is blocked on, never through the shared
    /// connection: after a failover that reaches another server, where the id
    /// may be someone else's.
    pub(super) async fn stop(&mut self) {
        let Some(reader) = self.reader.take() else {
            return;
        };
        match reader.unblock().await {
            Ok(_) => {}
            // CLIENT UNBLOCK (and CLIENT LIST, to find the reader by name) are admin
            // commands a least-privilege user lacks: the read then ends by itself
            // within its block time, and whatever it was handed meanwhile is
            // pending for this consumer, where the drain finds it.
            Err(e) if connection::is_noperm(&e) => {
                tracing::info!(
                    "no permission for CLIENT LIST and CLIENT UNBLOCK: waiting {} ms for the stream read to end",
                    self.block.as_millis()
                );
                tokio::time::sleep(self.block + Duration::from_millis(100)).await;
            }
            // The node cannot be reached (dead, frozen, failed over): its read
            // hands out nothing the drain could miss while it stays so; what it
            // held is pending for this consumer, where a restart's recovery or
            // another worker's claim finds it.
            Err(e) if e.is_io_error() || e.is_timeout() || e.is_connection_refusal() => {
                tracing::warn!(
                    "could not reach the stream reader's node to unblock it: {}",
                    connection::scrub(&e.to_string())
                );
            }
            // The node answered but refused (no room for a connection): the read
            // may still be blocked there, so it is waited out as without
            // permission, and the drain does not look at a pending list that may grow.
            Err(e) => {
                tracing::warn!(
                    "could not unblock the stream reader on its node ({}): waiting {} ms for its read to end",
                    connection::scrub(&e.to_string()),
                    self.block.as_millis()
                );
                tokio::time::sleep(self.block + Duration::from_millis(100)).await;
            }
        }
    }
}

impl Source for BlockingReader {
    async fn fill(&mut self, con: &mut Con) -> Result<bool> {
        let reader = open(&self.client, con, self.block, &mut self.reader).await?;
        let entries = read_new(reader, &self.opts).await?;
        self.current = triage(&entries, &HashMap::new());
        Ok(self.current.len() > 0)
    }

    fn batch(&mut self) -> Option<&mut Triaged> {
        Some(&mut self.current)
    }

    fn report(&mut self, _done: bool) {
        // Whatever is not settled is pending for this consumer: the claim loop or
        // the next recovery brings it back.
        self.current = Triaged::default();
    }
}

/// The reader's connection, opened on the node serving the queue (asked through
/// `con` on a Cluster) if `slot` holds none.
async fn open<'a>(
    client: &Client,
    con: &mut Con,
    block: Duration,
    slot: &'a mut Option<ReadCon>,
) -> Result<&'a mut ReadCon> {
    if slot.is_none() {
        let node = client.stream_node(con, schema::queue_messages()).await?;
        *slot = Some(connection::blocking_connection(&node, block).await?);
    }
    match slot {
        Some(r) => Ok(r),
        None => anyhow::bail!("the stream reader's connection is gone"),
    }
}

/// New entries for this consumer (`>`), waiting as long as `opts` says.
pub(super) async fn read_new(
    reader: &mut (impl ConnectionLike + Send + Sync),
    opts: &StreamReadOptions,
) -> Result<Vec<StreamId>> {
    let ReadEntries(entries) =
        redis::AsyncCommands::xread_options(reader, &[schema::queue_messages()], &[">"], opts)
            .await
            .map_err(recovery::explain_nogroup)?;
    Ok(entries)
}
