//! `WAIT`: how many replicas acknowledged what a connection wrote. Redis
//! replicates asynchronously; a write confirmed here is on that many replicas
//! too, so a failover that promotes one of them keeps it. A `WAIT` covers every
//! write sent before it on the same server connection, so it goes on the
//! connection that wrote, and [`Confirmer`] makes sure it still is the same one.
//! Redis answers nothing else on that connection while it waits, so what shares
//! a [`Con`] with a writer that waits waits too: the worker and the gateway's
//! inbox and sender write on connections of their own.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use redis::{RedisError, RedisResult};

use crate::connection::{self, Con};

/// How long a `WAIT` waits for the replicas: below the shared connection's 3 s
/// response timeout, so a slow replica is a [`DurabilityError::TooFew`], not a
/// dropped connection.
pub const WAIT_TIMEOUT: Duration = Duration::from_secs(2);

/// Why a write cannot be said to be on the replicas.
#[derive(Debug, thiserror::Error)]
pub enum DurabilityError {
    /// Fewer replicas than wanted acknowledged the writes in time: they are on
    /// the primary, and a failover now could lose them.
    #[error(
        "only {acked} of {wanted} replicas acknowledged the write within {timeout_ms} ms (WAIT); it is on the primary only"
    )]
    TooFew {
        /// Replicas that acknowledged.
        acked: u32,
        /// Replicas wanted (`replicas_to_wait`).
        wanted: u32,
        /// How long it waited, ms.
        timeout_ms: u64,
    },
    /// The `WAIT` was answered on another server connection than the one the
    /// writes went on (a reconnect or a failover in between), or which one
    /// they went on is unknown: it says nothing about them.
    #[error(
        "the connection to Redis changed between the writes and their WAIT (a reconnect or a failover): they may be on the old primary only"
    )]
    Replaced,
    /// The `WAIT` itself failed (the connection, a replica-only node).
    #[error("cannot wait for the replicas (WAIT): {0}")]
    Redis(#[from] RedisError),
}

/// The connection a writer given `shared` writes and waits on: with `wanted`
/// replicas to wait for, one of its own to the same place (opened at its first
/// command, found again after a failover as `shared` is); without, `shared`.
pub fn own_connection(shared: &Con, wanted: u32) -> Con {
    if wanted == 0 {
        return shared.clone();
    }
    match shared.own() {
        Ok(own) => own,
        Err(e) => {
            tracing::warn!(
                "no connection of its own for a writer that waits for replicas ({e:#}): its WAITs hold up the shared one"
            );
            shared.clone()
        }
    }
}

/// Which server connection a connection's writes go on, so a `WAIT` is known to
/// cover them. A reconnecting connection (a lost link, a Sentinel switch, a
/// Cluster slot moved) may send the writes on one server connection and the
/// `WAIT` on the next, which wrote nothing and would confirm at once; so a
/// writer takes a [`Mark`] before its writes ([`Self::begin`]) and a `WAIT`
/// answered by another server connection than the marked one confirms nothing.
/// One per connection: its clones share what was last seen on it.
#[derive(Debug, Clone)]
pub struct Confirmer {
    seen: Arc<Mutex<Seen>>,
    /// Held while a `WAIT` is under way: a second one queued behind it on the
    /// connection would answer past the command timeout.
    waiting: Arc<tokio::sync::Mutex<()>>,
}

/// What a [`Confirmer`] knows of its connection.
#[derive(Debug)]
struct Seen {
    /// The server connection last seen (`CLIENT INFO`'s id, addresses and
    /// name); `None` while unknown.
    last: Option<String>,
    /// The name [`Confirmer::begin`] gives the connection: the same for every
    /// writer (two naming it at once agree), a new one once the connection was
    /// found changed, so no identity seen before comes back.
    name: String,
}

impl Default for Confirmer {
    fn default() -> Self {
        Self {
            seen: Arc::new(Mutex::new(Seen {
                last: None,
                name: connection::unique_name(WRITER_NAME_PREFIX),
            })),
            waiting: Arc::default(),
        }
    }
}

/// The name a writer's connection gets (a reconnect drops it), so a server
/// restarted behind a socket path, reissuing the same client ids, is told apart.
const WRITER_NAME_PREFIX: &str = "secondme-writer-";

/// The server connection seen before a writer's writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mark(Option<String>);

impl Mark {
    /// The mark of several writers' writes: theirs when they all marked the
    /// same server connection, else none (their `WAIT` then confirms nothing).
    pub fn common<'a>(marks: impl IntoIterator<Item = &'a Mark>) -> Mark {
        let mut marks = marks.into_iter();
        let Some(first) = marks.next() else {
            return Mark(None);
        };
        if marks.all(|m| m == first) {
            first.clone()
        } else {
            Mark(None)
        }
    }
}

impl Confirmer {
    /// The server connection `con` was last seen on, taken before the writes
    /// to confirm: it asks Redis (`CLIENT INFO`) only while that is unknown,
    /// and nothing when `wanted == 0`. A failure leaves it unknown: the
    /// writes' [`Self::confirm`] then confirms nothing.
    pub async fn begin(&self, con: &mut Con, routing_key: &str, wanted: u32) -> Mark {
        if wanted == 0 {
            return Mark(None);
        }
        if let Some(seen) = self.last() {
            return Mark(Some(seen));
        }
        let name = self.lock().name.clone();
        let mut pipe = redis::pipe();
        pipe.cmd("CLIENT").arg("SETNAME").arg(name);
        pipe.cmd("CLIENT").arg("INFO");
        let named: RedisResult<(redis::Value, String)> =
            con.query_pipeline_at_key(&pipe, routing_key).await;
        let text = match named {
            Ok((_, text)) => Ok(text),
            // A user without CLIENT SETNAME: the id and addresses alone.
            Err(_) => {
                let mut info = redis::cmd("CLIENT");
                info.arg("INFO");
                con.query_at_key::<String>(&info, routing_key).await
            }
        };
        let seen = text.ok().and_then(|t| identity(&t));
        self.lock().last.clone_from(&seen);
        Mark(seen)
    }

    /// Waits until `wanted` replicas acknowledged every write sent on `con`
    /// since `mark` was taken, at most `timeout`; the number that did.
    /// `wanted == 0` asks nothing of Redis. `routing_key` is a key the writes
    /// touched: on a Cluster the keyless `WAIT` goes to the primary serving
    /// that key's slot, where the writes went. The `WAIT` and the connection's
    /// identity travel in one pipeline, so both are answered by the same
    /// server connection.
    pub async fn confirm(
        &self,
        mark: &Mark,
        con: &mut Con,
        routing_key: &str,
        wanted: u32,
        timeout: Duration,
    ) -> Result<u32, DurabilityError> {
        if wanted == 0 {
            return Ok(0);
        }
        let timeout_ms = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
        // A keyed command first: on a Cluster, a node that no longer serves the
        // key (a slot moved or migrating, where the writes followed MOVED or
        // ASK) answers it with an error, and then nothing is confirmed.
        let mut pipe = redis::pipe();
        pipe.cmd("EXISTS").arg(routing_key);
        pipe.cmd("WAIT").arg(wanted).arg(timeout_ms);
        pipe.cmd("CLIENT").arg("INFO");
        let answer: RedisResult<(i64, i64, String)> = {
            let _one_at_a_time = self.waiting.lock().await;
            con.query_pipeline_at_key(&pipe, routing_key).await
        };
        let (_, acked, info) = answer.inspect_err(|_| self.forget())?;
        let now = identity(&info);
        // Unnamed, it is a connection made again since `begin` named it.
        if now.as_deref().is_some_and(|n| n.contains(" name=")) {
            self.lock().last.clone_from(&now);
        } else {
            self.forget();
        }
        if mark.0.is_none() || mark.0 != now {
            return Err(DurabilityError::Replaced);
        }
        let acked = u32::try_from(acked).unwrap_or(0);
        if acked < wanted {
            return Err(DurabilityError::TooFew {
                acked,
                wanted,
                timeout_ms,
            });
        }
        Ok(acked)
    }

    fn last(&self) -> Option<String> {
        self.lock().last.clone()
    }

    /// The connection may have changed: the next `begin` asks, under a new name.
    fn forget(&self) {
        let mut seen = self.lock();
        seen.last = None;
        seen.name = connection::unique_name(WRITER_NAME_PREFIX);
    }

    fn lock(&self) -> MutexGuard<'_, Seen> {
        // Plain data: a panic elsewhere while locked leaves it usable.
        self.seen.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A server connection's identity in `CLIENT INFO`'s answer: its id, which is
/// unique within one server process, with the client's and the server's
/// addresses, which tell servers apart, and its name when it has one, which
/// tells a restarted server's connections from the ones before.
fn identity(info: &str) -> Option<String> {
    let fields: Vec<&str> = info
        .split_whitespace()
        .filter(|f| {
            f.starts_with("id=")
                || f.starts_with("addr=")
                || f.starts_with("laddr=")
                || (f.starts_with("name=") && f.len() > "name=".len())
        })
        .collect();
    fields
        .iter()
        .any(|f| f.starts_with("id="))
        .then(|| fields.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writers_that_marked_different_connections_share_no_mark() {
        let a = Mark(Some("id=1 addr=a laddr=s".into()));
        let b = Mark(Some("id=2 addr=b laddr=s".into()));
        assert_eq!(Mark::common([&a, &a.clone()]), a);
        assert_eq!(Mark::common([&a, &b]), Mark(None));
        assert_eq!(Mark::common([]), Mark(None));
    }

    #[test]
    fn a_connection_is_known_by_its_id_and_both_addresses() {
        let info = "id=42 addr=10.0.0.5:51234 laddr=10.0.0.9:6379 fd=8 name= age=3 idle=0 flags=N db=0 sub=0 cmd=client|info";
        assert_eq!(
            identity(info).as_deref(),
            Some("id=42 addr=10.0.0.5:51234 laddr=10.0.0.9:6379")
        );
        let same_id_other_server = "id=42 addr=10.0.0.5:51234 laddr=10.0.0.10:6379 fd=8";
        assert_ne!(identity(info), identity(same_id_other_server));
        assert_eq!(identity("flags=N db=0"), None);
        // Behind a socket path both addresses are the path: the name tells a
        // restarted server's connection (same id, no name) from ours.
        let ours = "id=7 addr=/run/r.sock:0 laddr=/run/r.sock:0 fd=9 name=secondme-writer-1-ab";
        let restarted = "id=7 addr=/run/r.sock:0 laddr=/run/r.sock:0 fd=9 name=";
        assert_ne!(identity(ours), identity(restarted));
    }

    #[test]
    fn too_few_says_how_many_and_that_the_write_is_on_the_primary_only() {
        let e = DurabilityError::TooFew {
            acked: 0,
            wanted: 1,
            timeout_ms: 2000,
        };
        assert_eq!(
            e.to_string(),
            "only 0 of 1 replicas acknowledged the write within 2000 ms (WAIT); it is on the primary only"
        );
    }
}
