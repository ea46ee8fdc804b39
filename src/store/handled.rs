//! How a message was handled (`HANDLED:{bucket}`), as the worker's scripts record it.

use anyhow::{Context, Result};
use redis::aio::ConnectionLike;

use crate::schema;

/// The recorded handling of `message_id` (`answered`, `skip:paused`, `seen` ...),
/// looking in this hour's and the last hour's bucket like the scripts do; `None`
/// when it was not handled within that window.
pub async fn state<C: ConnectionLike + Send>(
    con: &mut C,
    message_id: &str,
) -> Result<Option<String>> {
    Ok(states(con, &[message_id]).await?.pop().flatten())
}

/// [`state`] of each of `message_ids`, in their order: one `TIME`, then both
/// hours' hashes read in one round trip.
pub async fn states<C: ConnectionLike + Send>(
    con: &mut C,
    message_ids: &[&str],
) -> Result<Vec<Option<String>>> {
    if message_ids.is_empty() {
        return Ok(Vec::new());
    }
    // The scripts bucket by the server's clock; so does this.
    let (secs, micros): (i64, i64) = redis::cmd("TIME")
        .query_async(con)
        .await
        .context("cannot read the server's time")?;
    let bucket = schema::handled_bucket(secs * 1000 + micros / 1000);
    let (now, before): (Vec<Option<String>>, Vec<Option<String>>) = redis::pipe()
        .cmd("HMGET")
        .arg(schema::handled_key(bucket))
        .arg(message_ids)
        .cmd("HMGET")
        .arg(schema::handled_key(bucket - 1))
        .arg(message_ids)
        .query_async(con)
        .await
        .context("cannot read how the messages were handled")?;
    Ok(now
        .into_iter()
        .zip(before)
        .map(|(a, b)| later_of(a, b))
        .collect())
}

/// A final value in either hour wins over `seen`, as the scripts read it.
fn later_of(now: Option<String>, before: Option<String>) -> Option<String> {
    match (now, before) {
        (Some(a), _) if a != "seen" => Some(a),
        (_, Some(b)) if b != "seen" => Some(b),
        (a, b) => a.or(b),
    }
}
