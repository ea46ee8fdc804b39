//! `WAIT`: how many replicas acknowledged what a connection wrote. Redis
//! replicates asynchronously; a write confirmed here is on that many replicas
//! too, so a failover that promotes one of them keeps it. A `WAIT` covers every
//! write sent before it on the same connection, so it goes on the connection
//! that wrote; Redis answers nothing else on that connection while it waits, so
//! what shares a [`Con`] with a writer that waits waits too (the worker writes
//! on one of its own, see `worker::replicas`).

use std::time::Duration;

use redis::RedisError;

use crate::connection::Con;

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
    /// The `WAIT` itself failed (the connection, a replica-only node).
    #[error("cannot wait for the replicas (WAIT): {0}")]
    Redis(#[from] RedisError),
}

/// Waits until `wanted` replicas acknowledged every write sent before on `con`,
/// at most `timeout`; the number that did. `wanted == 0` asks nothing of Redis.
/// `routing_key` is a key the writes touched: on a Cluster the keyless `WAIT`
/// goes to the primary serving that key's slot, where the writes went.
pub async fn wait_replicas(
    con: &mut Con,
    routing_key: &str,
    wanted: u32,
    timeout: Duration,
) -> Result<u32, DurabilityError> {
    if wanted == 0 {
        return Ok(0);
    }
    let timeout_ms = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
    let mut cmd = redis::cmd("WAIT");
    cmd.arg(wanted).arg(timeout_ms);
    let acked: i64 = con.query_at_key(&cmd, routing_key).await?;
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

#[cfg(test)]
mod tests {
    use super::*;

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
