//! Redis Sentinel: the primary is found through the sentinels (see
//! [`resolver`]), and found again after a failover, without a restart.
//!
//! Commands go through a redis-rs `ConnectionManager` on the primary. When the
//! primary changes, a manager on the new one takes its place:
//! - when the sentinels announce a new primary, before the next command, and at
//!   once for a connection that only listens (pub/sub);
//! - a reply `READONLY` means the node was demoted and did not run the command, so
//!   the sentinels are asked again and the command is sent once more to the new
//!   primary;
//! - a refused connection sent nothing: the same, when the sentinels name another
//!   node;
//! - a connection lost or timed out may have run the command: its error is
//!   returned as it is (nothing is sent twice) and the primary is looked for in
//!   the background, as it is when a subscribed connection reports a disconnection.
//!
//! Subscriptions are remembered here and made again on every new primary; the
//! manager itself makes them again after a plain reconnect. Once they are made on
//! a new primary, the push receiver gets a `Disconnection`, as after a plain
//! reconnect: what was published while they moved was lost to it, and it may
//! read again what it watches.

mod resolver;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use redis::aio::{ConnectionLike, ConnectionManager};
use redis::{
    Cmd, ConnectionAddr, ErrorKind, Pipeline, PushInfo, PushKind, RedisError, RedisFuture,
    RedisResult, ServerErrorKind, ToRedisArgs, Value,
};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};
use tokio::sync::watch;

pub use resolver::PrimaryWatch;
pub(super) use resolver::Resolver;

/// Shortest gap between two questions to the sentinels, so a burst of failing
/// commands asks them a few times a second, not once per command.
const MIN_RESOLVE_GAP: Duration = Duration::from_millis(100);
/// Pause between two searches of the background recovery.
const RECOVER_PAUSE: Duration = Duration::from_millis(250);
/// How long the background recovery keeps looking; the next fault starts another.
const RECOVER_FOR: Duration = Duration::from_secs(120);
/// How often a quiet follower checks that its connection is still used.
const FOLLOW_CHECK: Duration = Duration::from_secs(5);

/// The primary's connection, as the sentinels named it last. Cheap to clone:
/// every clone shares the one connection.
#[derive(Clone)]
pub(super) struct SentinelCon(Arc<Shared>);

struct Shared {
    resolver: Resolver,
    /// Where every manager sends its pushes.
    push: Option<UnboundedSender<PushInfo>>,
    /// The caller's push receiver, told of every move to a new primary.
    moves: Option<UnboundedSender<PushInfo>>,
    state: Mutex<State>,
    /// Held while the sentinels are asked; holds when they were asked last.
    switching: tokio::sync::Mutex<Option<Instant>>,
    recovering: AtomicBool,
}

#[derive(Default)]
struct State {
    node: Option<Node>,
    /// Every channel subscribed to, to subscribe again on a new primary.
    channels: BTreeSet<Vec<u8>>,
}

/// One primary and the manager on it.
#[derive(Clone)]
struct Node {
    /// Counts the primaries this connection has moved to.
    generation: u64,
    addr: ConnectionAddr,
    manager: ConnectionManager,
}

impl SentinelCon {
    /// A connection that asks the sentinels on first use; pub/sub messages go
    /// to `push`.
    pub(super) fn lazy(resolver: Resolver, push: Option<UnboundedSender<PushInfo>>) -> Self {
        // The managers' pushes pass through here, so a disconnection of a
        // subscribed connection that sends no commands still finds the new primary.
        let (inner, forwarded) = match &push {
            Some(outer) => {
                let (tx, rx) = unbounded_channel();
                (Some(tx), Some((rx, outer.clone())))
            }
            None => (None, None),
        };
        let shared = Arc::new(Shared {
            resolver,
            push: inner,
            moves: push,
            state: Mutex::new(State::default()),
            switching: tokio::sync::Mutex::new(None),
            recovering: AtomicBool::new(false),
        });
        if let Some((rx, outer)) = forwarded {
            tokio::spawn(forward(rx, outer, Arc::downgrade(&shared)));
        }
        let named = shared.resolver.subscribe();
        tokio::spawn(follow(named, Arc::downgrade(&shared)));
        Self(shared)
    }

    /// A connection to the primary the sentinels name now.
    pub(super) async fn connect(
        resolver: Resolver,
        push: Option<UnboundedSender<PushInfo>>,
    ) -> RedisResult<Self> {
        let con = Self::lazy(resolver, push);
        con.node().await?;
        Ok(con)
    }

    /// Subscribes to `channels`, here and on every primary that follows.
    pub(super) async fn subscribe(&self, channels: impl ToRedisArgs) -> RedisResult<()> {
        let names = channels.to_redis_args();
        // Remembered first: a move to a new primary from now on subscribes them there.
        let added: Vec<Vec<u8>> = {
            let mut state = self.state();
            names
                .iter()
                .filter(|n| state.channels.insert(n.to_vec()))
                .cloned()
                .collect()
        };
        let subscribed = match self.node().await {
            Ok(node) => node.manager.clone().subscribe(&names).await,
            Err(e) => Err(e),
        };
        if subscribed.is_err() {
            let mut state = self.state();
            for name in &added {
                state.channels.remove(name);
            }
        }
        subscribed
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.0
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn current(&self) -> Option<Node> {
        self.state().node.clone()
    }

    /// The current primary's node, asking the sentinels if there is none yet.
    async fn node(&self) -> RedisResult<Node> {
        match self.current() {
            Some(node) => Ok(node),
            None => Box::pin(self.switch(None)).await,
        }
    }

    /// Asks the sentinels for the primary and moves to it, unless the connection
    /// already moved past `seen` (the generation the caller found wanting).
    async fn switch(&self, seen: Option<u64>) -> RedisResult<Node> {
        let mut asked = self.0.switching.lock().await;
        let current = self.current();
        if let Some(node) = &current
            && Some(node.generation) != seen
        {
            return Ok(node.clone());
        }
        if let Some(at) = *asked {
            let since = at.elapsed();
            if since < MIN_RESOLVE_GAP {
                tokio::time::sleep(MIN_RESOLVE_GAP - since).await;
            }
        }
        *asked = Some(Instant::now());
        let client = self.0.resolver.primary().await?;
        let addr = client.get_connection_info().addr().clone();
        if let Some(node) = current.as_ref().filter(|n| n.addr == addr) {
            return Ok(node.clone());
        }
        let mut manager =
            ConnectionManager::new_with_config(client, super::manager_config(self.0.push.clone()))
                .await?;
        let channels: Vec<Vec<u8>> = self.state().channels.iter().cloned().collect();
        if !channels.is_empty() {
            manager.subscribe(&channels).await?;
        }
        let node = Node {
            generation: current.as_ref().map_or(1, |n| n.generation + 1),
            addr,
            manager,
        };
        if current.is_some() {
            tracing::warn!(
                "Sentinel: primary {} is now {}",
                self.0.resolver.primary_name(),
                shown(&node.addr)
            );
        }
        self.state().node = Some(node.clone());
        if current.is_some() {
            self.tell_moved();
        }
        Ok(node)
    }

    /// Tells the push receiver that the connection moved, as a reconnect tells
    /// it: sent once the subscriptions are made on the new primary and commands
    /// go there, so what it reads again then misses nothing.
    fn tell_moved(&self) {
        if let Some(moves) = &self.0.moves {
            // A receiver gone has nothing left to read again.
            let _ = moves.send(PushInfo {
                kind: PushKind::Disconnection,
                data: Vec::new(),
            });
        }
    }

    /// True when the sentinels last named a primary other than `node`.
    fn named_elsewhere(&self, node: &Node) -> bool {
        let named = self.0.resolver.named();
        named.as_ref().is_some_and(|addr| *addr != node.addr)
    }

    /// Looks for the primary in the background until it answers, unless a search
    /// is under way already.
    fn recover_in_background(&self) {
        if self.0.recovering.swap(true, Ordering::AcqRel) {
            return;
        }
        tokio::spawn(recover(Arc::downgrade(&self.0)));
    }

    /// Sends `request`; on `READONLY` or a refused connection, once more to the
    /// primary the sentinels name now.
    async fn execute<R: Request>(&self, request: R) -> RedisResult<R::Reply> {
        let mut node = self.node().await?;
        if self.named_elsewhere(&node) {
            // The sentinels named a new primary: move before sending, not after a
            // write lands on the demoted one.
            if let Ok(next) = Box::pin(self.switch(Some(node.generation))).await {
                node = next;
            }
        }
        let reply = request.send(&mut node.manager.clone()).await;
        let retry = match &reply {
            Ok(reply) => R::read_only(reply),
            Err(e) if is_read_only(e) || e.is_connection_refusal() => true,
            Err(e) if is_connection_fault(e) => {
                self.recover_in_background();
                false
            }
            Err(_) => false,
        };
        if !retry {
            return reply;
        }
        match self.switch(Some(node.generation)).await {
            Ok(next) if next.generation != node.generation => {
                request.send(&mut next.manager.clone()).await
            }
            Ok(_) => {
                self.recover_in_background();
                reply
            }
            Err(e) => {
                tracing::warn!(
                    "Sentinel: cannot find primary {}: {}",
                    self.0.resolver.primary_name(),
                    super::scrub(&e.to_string())
                );
                self.recover_in_background();
                reply
            }
        }
    }
}

/// Forwards the managers' pushes to the caller's channel; a disconnection sets
/// off the search for the primary.
async fn forward(
    mut rx: UnboundedReceiver<PushInfo>,
    outer: UnboundedSender<PushInfo>,
    shared: Weak<Shared>,
) {
    while let Some(push) = rx.recv().await {
        if push.kind == PushKind::Disconnection
            && let Some(shared) = shared.upgrade()
        {
            SentinelCon(shared).recover_in_background();
        }
        if outer.send(push).is_err() {
            return;
        }
    }
}

/// Moves to the primary the sentinels name as soon as anyone learns of it, so a
/// connection that only listens (pub/sub) moves too.
async fn follow(mut named: watch::Receiver<Option<ConnectionAddr>>, shared: Weak<Shared>) {
    loop {
        match tokio::time::timeout(FOLLOW_CHECK, named.changed()).await {
            Ok(Ok(())) => {
                let Some(shared) = shared.upgrade() else {
                    return;
                };
                let con = SentinelCon(shared);
                if con.current().is_some_and(|node| con.named_elsewhere(&node)) {
                    con.recover_in_background();
                }
            }
            Ok(Err(_)) => return,
            Err(_) if shared.strong_count() == 0 => return,
            Err(_) => {}
        }
    }
}

/// Asks the sentinels until the primary they name answers a `PING`.
async fn recover(shared: Weak<Shared>) {
    let until = Instant::now() + RECOVER_FOR;
    loop {
        let Some(shared) = shared.upgrade() else {
            return;
        };
        let con = SentinelCon(shared);
        let seen = con.current().map(|n| n.generation);
        let answered = match con.switch(seen).await {
            Ok(node) => ping(node.manager).await,
            Err(_) => false,
        };
        if answered || Instant::now() >= until {
            con.0.recovering.store(false, Ordering::Release);
            return;
        }
        drop(con);
        tokio::time::sleep(RECOVER_PAUSE).await;
    }
}

async fn ping(mut manager: ConnectionManager) -> bool {
    redis::cmd("PING")
        .query_async::<Value>(&mut manager)
        .await
        .is_ok()
}

/// `host:port` of a node, for the log.
fn shown(addr: &ConnectionAddr) -> String {
    match addr {
        ConnectionAddr::Tcp(host, port) | ConnectionAddr::TcpTls { host, port, .. } => {
            format!("{host}:{port}")
        }
        other => format!("{other:?}"),
    }
}

/// True when the server refused a write as a replica: the command did not run
/// (in a transaction, a queued command refused so; the whole was discarded).
fn is_read_only(e: &RedisError) -> bool {
    e.kind() == ErrorKind::Server(ServerErrorKind::ReadOnly)
        || e.clone().into_server_errors().is_some_and(|errors| {
            errors
                .iter()
                .any(|(_, error)| error.kind() == Some(ServerErrorKind::ReadOnly))
        })
}

fn is_read_only_value(value: &Value) -> bool {
    matches!(value, Value::ServerError(e) if e.kind() == Some(ServerErrorKind::ReadOnly))
}

/// A fault of the connection rather than an answer of the server.
fn is_connection_fault(e: &RedisError) -> bool {
    e.is_io_error() || e.is_connection_dropped() || e.is_timeout() || e.is_unrecoverable_error()
}

/// A command or a pipeline, sent the same way to whichever primary.
trait Request {
    type Reply;
    fn send<'a>(&'a self, manager: &'a mut ConnectionManager) -> RedisFuture<'a, Self::Reply>;
    /// True when the server refused as a replica (so nothing ran).
    fn read_only(reply: &Self::Reply) -> bool;
}

struct One<'a>(&'a Cmd);

impl Request for One<'_> {
    type Reply = Value;
    fn send<'a>(&'a self, manager: &'a mut ConnectionManager) -> RedisFuture<'a, Value> {
        manager.req_packed_command(self.0)
    }
    fn read_only(reply: &Value) -> bool {
        is_read_only_value(reply)
    }
}

struct Many<'a> {
    pipeline: &'a Pipeline,
    offset: usize,
    count: usize,
}

impl Request for Many<'_> {
    type Reply = Vec<Value>;
    fn send<'a>(&'a self, manager: &'a mut ConnectionManager) -> RedisFuture<'a, Vec<Value>> {
        manager.req_packed_commands(self.pipeline, self.offset, self.count)
    }
    // On a replica every write of a pipeline is refused and only reads ran, so
    // sending it all again runs nothing twice.
    fn read_only(reply: &Vec<Value>) -> bool {
        reply.iter().any(is_read_only_value)
    }
}

impl ConnectionLike for SentinelCon {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        Box::pin(self.execute(One(cmd)))
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        Box::pin(self.execute(Many {
            pipeline,
            offset,
            count,
        }))
    }

    fn get_db(&self) -> i64 {
        self.0.resolver.db()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(resp: &[u8]) -> Value {
        redis::parse_redis_value(resp).expect("a RESP reply")
    }

    #[test]
    fn a_read_only_refusal_is_told_from_other_replies_and_errors() {
        let refused = reply(b"-READONLY You can't write against a read only replica.\r\n");
        let other = reply(b"-ERR wrong number of arguments\r\n");
        assert!(One::read_only(&refused));
        assert!(!One::read_only(&other));
        assert!(!One::read_only(&reply(b"+OK\r\n")));

        // A pipeline on a replica: its reads ran, its writes were refused.
        assert!(Many::read_only(&vec![reply(b":1\r\n"), refused.clone()]));
        assert!(!Many::read_only(&vec![reply(b":1\r\n"), other.clone()]));

        let as_error = refused.extract_error().expect_err("an error");
        assert!(is_read_only(&as_error));
        assert!(!is_connection_fault(&as_error));
        assert!(!is_read_only(&other.extract_error().expect_err("an error")));
    }

    #[test]
    fn a_lost_connection_is_a_connection_fault() {
        let lost = RedisError::from(std::io::Error::from(std::io::ErrorKind::ConnectionReset));
        assert!(is_connection_fault(&lost));
        assert!(!is_read_only(&lost));
        let refused = RedisError::from(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        assert!(refused.is_connection_refusal());
    }
}
