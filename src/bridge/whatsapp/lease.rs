//! `GATEWAYLOCK:{userId}`: the lease that lets one gateway per account connect
//! to WhatsApp and send replies. Two gateways of one account (`secondme login`
//! while the service runs, a second host sharing the device store) would
//! otherwise hold one WhatsApp session twice (WhatsApp drops one of them), and
//! they share one consumer name and one pending list: both would send the same
//! retry. The one without the lease stands by and takes over when it is free.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::connection::Con;

use crate::schema;

/// How long the lease outlives its holder's last renewal by default: a crashed
/// gateway's account waits this long for another one to connect.
pub const TTL: Duration = Duration::from_secs(90);

/// A release leaves a lease with less than this left to expire on its own:
/// between our look and the delete it could pass to another gateway.
const RELEASE_MARGIN: Duration = Duration::from_secs(5);

/// How often a gateway without the lease tries to take it (and at most how
/// long between two checks of a held one).
pub const RETRY: Duration = Duration::from_secs(2);

/// One gateway's claim on the lease, by a value unique to it.
#[derive(Debug, Clone)]
pub struct Lease {
    key: String,
    owner: String,
    ttl: Duration,
}

impl Lease {
    /// The lease of `user_id`'s account for [`TTL`] (see [`Lease::with_ttl`]).
    pub fn new(user_id: &str) -> Self {
        Self::with_ttl(user_id, TTL)
    }

    /// The lease of `user_id`'s account, outliving its last renewal by `ttl`,
    /// held under a value no other gateway uses (process id, time, and a
    /// counter for several gateways in one process).
    pub fn with_ttl(user_id: &str, ttl: Duration) -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        Self {
            key: schema::gateway_lock_key(user_id),
            owner: format!("{}-{nanos:x}-{n}", std::process::id()),
            ttl,
        }
    }

    /// How often the holder renews it: three renewals fit in its TTL.
    pub fn renew_every(&self) -> Duration {
        self.ttl / 3
    }

    /// How often the holder checks whether a renewal is due.
    pub fn check_every(&self) -> Duration {
        RETRY.min(self.renew_every())
    }

    /// How long after its last renewal a lease is surely still ours: a failed
    /// check keeps it until then, well before the server could let it expire.
    pub fn surely_held(&self) -> Duration {
        self.ttl * 2 / 3
    }

    /// Takes the lease when free, renews it when ours; true when we hold it.
    ///
    /// `SET NX GET` takes a free lease and tells who holds a taken one; when it
    /// is ours, `PEXPIRE` renews it and a `GET` in the same transaction checks
    /// it still was. Scripts are refused to the gateway's ACL user, and WATCH
    /// needs a connection of its own (the shared one interleaves other tasks'
    /// transactions), so the check and the renewal are two round trips: should
    /// the lease expire between them (after missing [`TTL`] of renewals) and
    /// pass to another gateway, the renewal lengthens that gateway's fresh
    /// lease, harmlessly, and the `GET` tells us it isn't ours.
    pub async fn hold(&self, con: &mut Con) -> redis::RedisResult<bool> {
        let ttl_ms = u64::try_from(self.ttl.as_millis()).unwrap_or(u64::MAX);
        let holder: Option<String> = redis::cmd("SET")
            .arg(&self.key)
            .arg(&self.owner)
            .arg("NX")
            .arg("GET")
            .arg("PX")
            .arg(ttl_ms)
            .query_async(con)
            .await?;
        match holder {
            None => Ok(true),
            Some(h) if h == self.owner => {
                let (holder,): (Option<String>,) = redis::pipe()
                    .atomic()
                    .cmd("PEXPIRE")
                    .arg(&self.key)
                    .arg(ttl_ms)
                    .ignore()
                    .get(&self.key)
                    .query_async(con)
                    .await?;
                Ok(holder.as_deref() == Some(self.owner.as_str()))
            }
            Some(_) => Ok(false),
        }
    }

    /// Gives the lease up when ours (a clean stop), so another gateway takes
    /// over at once rather than after its TTL. One about to expire is left to
    /// expire: deleting it could delete the next holder's.
    pub async fn release(&self, con: &mut Con) -> redis::RedisResult<()> {
        let (holder, left_ms): (Option<String>, i64) = redis::pipe()
            .atomic()
            .get(&self.key)
            .pttl(&self.key)
            .query_async(con)
            .await?;
        let margin = RELEASE_MARGIN.min(self.ttl / 4);
        let margin_ms = i64::try_from(margin.as_millis()).unwrap_or(i64::MAX);
        if holder.as_deref() == Some(self.owner.as_str()) && left_ms > margin_ms {
            let _: i64 = redis::cmd("DEL").arg(&self.key).query_async(con).await?;
        }
        Ok(())
    }
}
