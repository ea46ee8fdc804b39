//! The stream reader's connection of its own: one plain connection to the node
//! that serves the queue (the server, the primary the sentinels name, or on a
//! Cluster the primary of the queue's slot, which all of a person's keys share),
//! found again at every reconnect, so a failover or a slot move is followed by
//! the worker reopening its reader after the fault.
//!
//! A blocked read is ended with `CLIENT UNBLOCK` sent to that same node, never
//! through the shared connection: after a failover that reaches another server,
//! where the reader's client id may belong to someone else's connection.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, Result};
use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::{
    AsyncConnectionConfig, Cmd, ConnectionInfo, Pipeline, RedisFuture, RedisResult, Value,
};

use super::{COMMAND_TIMEOUT, CONNECT_TIMEOUT, Client, Con, Kind, PrimaryWatch, cluster};

/// What every reader connection's name (`CLIENT SETNAME`) starts with.
pub const READER_NAME_PREFIX: &str = "secondme-reader-";

/// The node a stream reader of its own connects to, and whether it stopped being
/// the primary (on Sentinel) since.
#[derive(Clone)]
pub struct StreamNode {
    info: ConnectionInfo,
    watch: Option<PrimaryWatch>,
}

impl StreamNode {
    /// Its address and login.
    pub fn info(&self) -> &ConnectionInfo {
        &self.info
    }

    /// On Sentinel, what tells when the node stops being the primary.
    pub fn watch(&self) -> Option<PrimaryWatch> {
        self.watch.clone()
    }
}

impl Client {
    /// Where a stream reader of `key` connects: the server, the primary the
    /// sentinels name now, or on a Cluster the primary serving `key`'s slot as
    /// the cluster says now (asked through `con`). Asked at every call, so a
    /// reader opened again after a failover or a slot move finds the new node.
    pub async fn stream_node(&self, con: &mut Con, key: &str) -> Result<StreamNode> {
        match &self.0 {
            Kind::Single(client) => Ok(StreamNode {
                info: client.get_connection_info().clone(),
                watch: None,
            }),
            Kind::Sentinel(resolver) => {
                let primary = resolver
                    .primary()
                    .await
                    .context("cannot find the primary through the sentinels")?;
                let info = primary.get_connection_info().clone();
                Ok(StreamNode {
                    watch: Some(resolver.watch_from(info.addr().clone())),
                    info,
                })
            }
            Kind::Cluster(clients) => {
                let (host, port) = cluster::primary_of(con, key)
                    .await
                    .context("cannot find the Cluster node serving the queue")?;
                Ok(StreamNode {
                    info: clients.node_info(host, port)?,
                    watch: None,
                })
            }
        }
    }
}

/// A connection of its own for `XREADGROUP ... BLOCK` on one node, whose timeout
/// outlasts the block, so a blocked read never holds up other commands. Cheap to
/// clone: clones share it.
#[derive(Clone)]
pub struct ReadCon {
    con: MultiplexedConnection,
    /// The node it is connected to, for the unblock.
    node: ConnectionInfo,
    /// Its client id there.
    id: i64,
    /// Its name there, unique, so the unblock can tell it from another
    /// connection holding the same id.
    name: String,
    /// On Sentinel: whether the node stopped being the primary.
    watch: Option<PrimaryWatch>,
}

impl ReadCon {
    /// Its client id on its node (`CLIENT ID`).
    pub fn client_id(&self) -> i64 {
        self.id
    }

    /// Ends the command blocked on this connection (`CLIENT UNBLOCK`), on its
    /// own node and no other: through a short connection to the same address,
    /// once `CLIENT LIST` there shows this connection (its id under its unique
    /// name), so a server restarted there, whose ids start again, is sent
    /// nothing. True when a blocked command ended; false when none was blocked
    /// or the connection is no longer on that server.
    pub async fn unblock(&self) -> RedisResult<bool> {
        let config = AsyncConnectionConfig::new()
            .set_response_timeout(Some(COMMAND_TIMEOUT))
            .set_connection_timeout(Some(CONNECT_TIMEOUT));
        let mut con = redis::Client::open(self.node.clone())?
            .get_multiplexed_async_connection_with_config(&config)
            .await?;
        let listed: String = redis::cmd("CLIENT")
            .arg("LIST")
            .arg("ID")
            .arg(self.id)
            .query_async(&mut con)
            .await?;
        if !lists_name(&listed, &self.name) {
            return Ok(false);
        }
        let ended: i64 = redis::cmd("CLIENT")
            .arg("UNBLOCK")
            .arg(self.id)
            .query_async(&mut con)
            .await?;
        Ok(ended == 1)
    }

    /// On Sentinel, refuses to send once the node is no longer the primary, so
    /// the reader opens a connection to the new one instead of reading the old.
    fn moved(&self) -> Option<redis::RedisError> {
        self.watch.as_ref().filter(|w| w.moved()).map(|_| {
            redis::RedisError::from((
                redis::ErrorKind::Io,
                "the primary moved: the stream reader connects again",
            ))
        })
    }
}

impl ConnectionLike for ReadCon {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        if let Some(e) = self.moved() {
            return Box::pin(std::future::ready(Err(e)));
        }
        self.con.req_packed_command(cmd)
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        if let Some(e) = self.moved() {
            return Box::pin(std::future::ready(Err(e)));
        }
        self.con.req_packed_commands(pipeline, offset, count)
    }

    fn get_db(&self) -> i64 {
        self.con.get_db()
    }
}

/// A connection of its own to `node` for `XREADGROUP ... BLOCK`, whose timeout
/// outlasts `block`; named uniquely (`CLIENT SETNAME`) for its unblock.
pub async fn blocking_connection(node: &StreamNode, block: Duration) -> Result<ReadCon> {
    let config = AsyncConnectionConfig::new()
        .set_response_timeout(Some(block + COMMAND_TIMEOUT))
        .set_connection_timeout(Some(CONNECT_TIMEOUT));
    let opened = async {
        let mut con = redis::Client::open(node.info.clone())?
            .get_multiplexed_async_connection_with_config(&config)
            .await?;
        let name = unique_name(READER_NAME_PREFIX);
        let (id,): (i64,) = redis::pipe()
            .cmd("CLIENT")
            .arg("SETNAME")
            .arg(&name)
            .ignore()
            .cmd("CLIENT")
            .arg("ID")
            .query_async(&mut con)
            .await?;
        RedisResult::Ok((con, id, name))
    };
    let (con, id, name) = opened
        .await
        .context("cannot open the stream-reading connection to Redis")?;
    Ok(ReadCon {
        con,
        node: node.info.clone(),
        id,
        name,
        watch: node.watch.clone(),
    })
}

/// A name no other connection has: `prefix`, the process id and a random
/// number (std's hasher keys are random per process; the counter tells two
/// connections of one process apart).
pub fn unique_name(prefix: &str) -> String {
    use std::hash::{BuildHasher, Hasher};
    static NAMED: AtomicU64 = AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(NAMED.fetch_add(1, Ordering::Relaxed));
    format!("{prefix}{}-{:016x}", std::process::id(), h.finish())
}

/// Whether a `CLIENT LIST` text holds a connection named `name`.
fn lists_name(listed: &str, name: &str) -> bool {
    listed.lines().any(|line| {
        line.split(' ')
            .any(|field| field.strip_prefix("name=") == Some(name))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reader_names_differ_and_are_found_only_whole() {
        let (a, b) = (
            unique_name(READER_NAME_PREFIX),
            unique_name(READER_NAME_PREFIX),
        );
        assert_ne!(a, b);
        assert!(a.starts_with(READER_NAME_PREFIX) && !a.contains(' '), "{a}");
        let listed = format!("id=7 addr=127.0.0.1:5 laddr=x fd=8 name={a} age=0 flags=b\n");
        assert!(lists_name(&listed, &a));
        assert!(!lists_name(&listed, &b));
        assert!(
            !lists_name(&listed, &a[..a.len() - 1]),
            "a prefix is not the name"
        );
        assert!(!lists_name("", &a));
    }
}
