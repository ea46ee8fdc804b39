//! Keeping the queue whole: the consumer group, pending entries of this and of
//! dead consumers, delivery counts, and trimming that never drops unprocessed work.

use std::collections::{HashMap, HashSet};

use crate::connection::Con;
use anyhow::{Context, Result};
use redis::streams::{
    StreamAutoClaimOptions, StreamId, StreamPendingCountReply, StreamReadOptions,
};
use redis::{AsyncCommands, RedisError, Value};

use super::WorkerConfig;
use super::batch::Triaged;
use super::entries::{Claimed, RangeEntries, ReadEntries};
use crate::schema;

/// Creates the worker group (and the stream) if missing.
pub async fn ensure_group(con: &mut Con, group: &str) -> Result<()> {
    let created: redis::RedisResult<()> = con
        .xgroup_create_mkstream(schema::queue_messages(), group, "0")
        .await;
    match created {
        Ok(()) => {
            tracing::info!(
                "created consumer group {group} on {}",
                schema::queue_messages()
            );
            Ok(())
        }
        Err(e) if e.code() == Some("BUSYGROUP") => Ok(()),
        Err(e) => Err(e).context("cannot create the consumer group"),
    }
}

/// Turns `NOGROUP` (Redis restarted empty) into an error the retry loop recovers from.
pub fn explain_nogroup(e: RedisError) -> anyhow::Error {
    if e.code() == Some("NOGROUP") {
        anyhow::anyhow!("the consumer group is gone (Redis lost its data?); recreating it")
    } else {
        anyhow::Error::new(e).context("reading QUEUE:messages failed")
    }
}

/// Up to a batch of this consumer's pending entries after `cursor`.
pub async fn read_own_pending(
    con: &mut Con,
    cfg: &WorkerConfig,
    cursor: &str,
) -> Result<Vec<StreamId>> {
    let opts = StreamReadOptions::default()
        .group(&cfg.group, &cfg.consumer)
        .count(cfg.batch_size);
    let ReadEntries(entries) = con
        .xread_options(&[schema::queue_messages()], &[cursor], &opts)
        .await
        .map_err(explain_nogroup)?;
    Ok(entries)
}

/// Up to a batch of this consumer's pending entries after `cursor` ("0": from the
/// start), read without delivering them again (`XPENDING`, then `XRANGE` of each),
/// so the read does not count towards `max_deliveries`. For the re-read after a
/// failure of the server or of a key every entry shares, which is no entry's fault.
/// An entry deleted meanwhile comes back without fields, as `XREADGROUP` gives it.
pub async fn peek_own_pending(
    con: &mut Con,
    cfg: &WorkerConfig,
    cursor: &str,
) -> Result<Vec<StreamId>> {
    let start = if cursor == "0" {
        "-".to_owned()
    } else {
        format!("({cursor}")
    };
    let pending: StreamPendingCountReply = con
        .xpending_consumer_count(
            schema::queue_messages(),
            &cfg.group,
            &start,
            "+",
            cfg.batch_size,
            &cfg.consumer,
        )
        .await
        .map_err(explain_nogroup)?;
    if pending.ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut pipe = redis::pipe();
    for p in &pending.ids {
        pipe.cmd("XRANGE")
            .arg(schema::queue_messages())
            .arg(&p.id)
            .arg(&p.id);
    }
    let ranges: Vec<RangeEntries> = pipe
        .query_async(con)
        .await
        .context("cannot read pending entries (XRANGE)")?;
    Ok(pending
        .ids
        .iter()
        .zip(ranges)
        .map(|(p, RangeEntries(found))| {
            found.into_iter().next().unwrap_or_else(|| StreamId {
                id: p.id.clone(),
                ..StreamId::default()
            })
        })
        .collect())
}

/// Claims up to a batch of entries idle longer than `claim_idle` from any consumer.
pub async fn claim(con: &mut Con, cfg: &WorkerConfig) -> Result<Vec<StreamId>> {
    let opts = StreamAutoClaimOptions::default().count(cfg.batch_size);
    let reply: Claimed = con
        .xautoclaim_options(
            schema::queue_messages(),
            &cfg.group,
            &cfg.consumer,
            cfg.claim_idle.as_millis() as u64,
            "0-0",
            opts,
        )
        .await
        .map_err(explain_nogroup)?;
    if !reply.deleted.is_empty() {
        tracing::warn!(
            "{} pending entries were deleted from the stream before anyone handled them: {:?}",
            reply.deleted.len(),
            reply.deleted
        );
    }
    Ok(reply.entries)
}

/// Entries of `entries` delivered more than `max_deliveries` times, with their counts.
pub async fn over_delivered(
    con: &mut Con,
    cfg: &WorkerConfig,
    entries: &[StreamId],
) -> Result<HashMap<String, u64>> {
    let (Some(first), Some(last)) = (entries.first(), entries.last()) else {
        return Ok(HashMap::new());
    };
    let reply: StreamPendingCountReply = con
        .xpending_count(
            schema::queue_messages(),
            &cfg.group,
            &first.id,
            &last.id,
            entries.len().max(1) * 4,
        )
        .await
        .context("cannot read delivery counts (XPENDING)")?;
    Ok(reply
        .ids
        .into_iter()
        .filter(|p| p.times_delivered as u64 > cfg.max_deliveries)
        .map(|p| (p.id, p.times_delivered as u64))
        .collect())
}

/// Keeps `QUEUE:messages` near its cap of 1000 without removing unacknowledged entries.
///
/// With `ACKED` (Redis 8.2+) the server knows which entries every group acked.
/// Otherwise the oldest entry any group still needs is computed from `XINFO GROUPS`
/// and `XPENDING`, and only entries before it are removed (`MINID`).
pub async fn trim(con: &mut Con, acked: bool) -> Result<()> {
    let len: usize = con
        .xlen(schema::queue_messages())
        .await
        .context("cannot read the queue length")?;
    if len <= schema::QUEUE_MESSAGES_CAP {
        return Ok(());
    }
    if acked {
        let _: i64 = redis::cmd("XTRIM")
            .arg(schema::queue_messages())
            .arg("MAXLEN")
            .arg("~")
            .arg(schema::QUEUE_MESSAGES_CAP)
            .arg("ACKED")
            .query_async(con)
            .await
            .context("XTRIM ACKED failed")?;
        return Ok(());
    }
    let Some(min_needed) = oldest_needed(con).await? else {
        return Ok(());
    };
    let _: i64 = redis::cmd("XTRIM")
        .arg(schema::queue_messages())
        .arg("MINID")
        .arg(&min_needed)
        .query_async(con)
        .await
        .context("XTRIM MINID failed")?;
    Ok(())
}

/// The smallest id any group still needs: its oldest pending entry, or the entry
/// after its last delivered one. `None` when there is no group (trim nothing).
async fn oldest_needed(con: &mut Con) -> Result<Option<String>> {
    let groups: Vec<HashMap<String, Value>> = redis::cmd("XINFO")
        .arg("GROUPS")
        .arg(schema::queue_messages())
        .query_async(con)
        .await
        .context("XINFO GROUPS failed")?;
    let mut needed: Option<(u64, u64)> = None;
    for g in groups {
        let name: String = field(&g, "name").unwrap_or_default();
        let last: String = field(&g, "last-delivered-id").unwrap_or_else(|| "0-0".into());
        let pending: u64 = field(&g, "pending").unwrap_or(0);
        let candidate = if pending > 0 {
            let summary: Value = redis::cmd("XPENDING")
                .arg(schema::queue_messages())
                .arg(&name)
                .query_async(con)
                .await
                .context("XPENDING failed")?;
            smallest_pending(&summary).and_then(|id| parse_id(&id))
        } else {
            parse_id(&last).map(|(ms, seq)| (ms, seq + 1))
        };
        let Some(c) = candidate else {
            return Ok(None);
        };
        needed = Some(needed.map_or(c, |n| n.min(c)));
    }
    Ok(needed.map(|(ms, seq)| format!("{ms}-{seq}")))
}

fn field<T: redis::FromRedisValue>(map: &HashMap<String, Value>, name: &str) -> Option<T> {
    map.get(name)
        .and_then(|v| redis::from_redis_value_ref(v).ok())
}

fn smallest_pending(summary: &Value) -> Option<String> {
    match summary {
        Value::Array(items) => items
            .get(1)
            .and_then(|v| redis::from_redis_value_ref::<String>(v).ok()),
        _ => None,
    }
}

/// A stream id's two numbers, for ordering and arithmetic (`"10-2"` sorts
/// before `"9-0"` as text); `None` for anything but `ms-seq`.
pub(super) fn parse_id(id: &str) -> Option<(u64, u64)> {
    let (ms, seq) = id.split_once('-')?;
    Some((ms.parse().ok()?, seq.parse().ok()?))
}

/// Keeps only the entries of `batch` still pending for this consumer: the others
/// were finished by an earlier, interrupted attempt.
pub(super) async fn retain_pending(
    con: &mut Con,
    cfg: &WorkerConfig,
    batch: &mut Triaged,
) -> Result<()> {
    let keys: Vec<(u64, u64, &str)> = batch
        .stream_ids()
        .filter_map(|id| parse_id(id).map(|(ms, seq)| (ms, seq, id)))
        .collect();
    let (Some(first), Some(last)) = (keys.iter().min(), keys.iter().max()) else {
        return Ok(());
    };
    // Other entries of this consumer can lie in the same range; leave room for them.
    let count = batch.len() * 2 + 100;
    let reply: StreamPendingCountReply = con
        .xpending_consumer_count(
            schema::queue_messages(),
            &cfg.group,
            first.2,
            last.2,
            count,
            &cfg.consumer,
        )
        .await
        .context("cannot list pending entries (XPENDING)")?;
    let pending: HashSet<String> = reply.ids.into_iter().map(|p| p.id).collect();
    batch.retain(|id| pending.contains(id));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::parse_id;

    #[test]
    fn stream_ids_order_by_their_numbers_not_their_text() {
        assert_eq!(parse_id("10-2"), Some((10, 2)));
        assert!(
            parse_id("9-0") < parse_id("10-2"),
            "text order would say otherwise"
        );
        for bad in ["", "10", "10-", "-2", "a-1", "1-2-3", "$"] {
            assert_eq!(parse_id(bad), None, "{bad:?}");
        }
    }
}
