//! Streams and consumer groups as the tests read them: a stream's entries as
//! field maps, the replies per message, what a group holds pending, and waiting
//! for a stream to fill.

use std::collections::HashMap;
use std::time::Duration;

use redis::AsyncCommands;
use secondme::connection::Con;
use secondme::schema;

/// Entries of stream `key`, oldest first, each as its fields by name (a value
/// that is not text reads as empty).
pub async fn entries(con: &mut Con, key: &str) -> Vec<HashMap<String, String>> {
    let reply: redis::streams::StreamRangeReply = con.xrange_all(key).await.expect("xrange");
    reply
        .ids
        .into_iter()
        .map(|e| {
            e.map
                .into_iter()
                .map(|(k, v)| (k, redis::from_redis_value::<String>(v).unwrap_or_default()))
                .collect()
        })
        .collect()
}

/// How many entries of `QUEUE:responses` answer each message (by `inReplyTo`).
pub async fn replies_per_message(con: &mut Con) -> HashMap<String, usize> {
    let mut per = HashMap::new();
    for r in entries(con, schema::queue_responses()).await {
        let to = r
            .get(schema::response_fields::IN_REPLY_TO)
            .cloned()
            .unwrap_or_default();
        *per.entry(to).or_insert(0) += 1;
    }
    per
}

/// How many entries `group` has delivered on `stream` and not acknowledged
/// (`XPENDING`'s count); none before a reader has created the group.
pub async fn pending(con: &mut Con, stream: &str, group: &str) -> u64 {
    let reply: redis::RedisResult<redis::streams::StreamPendingReply> =
        con.xpending(stream, group).await;
    match reply {
        Ok(reply) => reply.count() as u64,
        Err(e) if e.code() == Some("NOGROUP") => 0,
        Err(e) => panic!("XPENDING {stream} {group}: {e}"),
    }
}

/// [`pending`] of the workers' group on `QUEUE:messages`.
pub async fn workers_pending(con: &mut Con) -> u64 {
    pending(con, schema::queue_messages(), schema::WORKER_GROUP).await
}

/// Whether stream `key` holds at least `n` entries within `within`.
pub async fn holds_at_least(con: &Con, key: &str, n: usize, within: Duration) -> bool {
    super::eventually(within, || {
        let mut con = con.clone();
        async move {
            let len: usize = con.xlen(key).await.ok()?;
            (len >= n).then_some(())
        }
    })
    .await
    .is_some()
}
