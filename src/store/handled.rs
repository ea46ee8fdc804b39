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
    // The scripts bucket by the server's clock; so does this.
    let (secs, micros): (i64, i64) = redis::cmd("TIME")
        .query_async(con)
        .await
        .context("cannot read the server's time")?;
    let bucket = schema::handled_bucket(secs * 1000 + micros / 1000);
    let (now, before): (Option<String>, Option<String>) = redis::pipe()
        .hget(schema::handled_key(bucket), message_id)
        .hget(schema::handled_key(bucket - 1), message_id)
        .query_async(con)
        .await
        .with_context(|| format!("cannot read how {message_id} was handled"))?;
    Ok(match (now, before) {
        (Some(a), _) if a != "seen" => Some(a),
        (_, Some(b)) if b != "seen" => Some(b),
        (a, b) => a.or(b),
    })
}
