//! Reading, publishing and counting subscribers on one node of a deployment by
//! its port, and waiting for a pub/sub message on a push receiver: what the
//! Sentinel and Cluster tests check where a message went.

use std::time::Duration;

use redis::{AsyncCommands, PushInfo, PushKind};
use tokio::sync::mpsc;

use super::nodes;

/// The string at `key` on the node on `port`, read there.
pub async fn get_at(port: u16, key: &str) -> Option<String> {
    let mut node = nodes::connect(port).await.ok()?;
    node.get(key).await.ok()
}

/// Publishes `payload` on `channel` at the node on `port`.
pub async fn publish_at(port: u16, channel: &str, payload: &str) {
    let mut node = nodes::connect(port).await.expect("connect to a node");
    let _: u64 = node.publish(channel, payload).await.expect("PUBLISH");
}

/// Subscribers of `channel` on the node on `port` (`PUBSUB NUMSUB`).
pub async fn subscribers_at(port: u16, channel: &str) -> Option<u64> {
    let mut node = nodes::connect(port).await.ok()?;
    let (_, count): (String, u64) = redis::cmd("PUBSUB")
        .arg("NUMSUB")
        .arg(channel)
        .query_async(&mut node)
        .await
        .ok()?;
    Some(count)
}

/// The payload of the next pub/sub message on `channel` within `wait`.
pub async fn next_message(
    rx: &mut mpsc::UnboundedReceiver<PushInfo>,
    channel: &str,
    wait: Duration,
) -> Option<String> {
    let deadline = tokio::time::Instant::now() + wait;
    while let Ok(Some(push)) = tokio::time::timeout_at(deadline, rx.recv()).await {
        if push.kind != PushKind::Message {
            continue;
        }
        let mut data = push.data.into_iter();
        let (Some(ch), Some(payload)) = (data.next(), data.next()) else {
            continue;
        };
        let ch: String = redis::from_redis_value(ch).ok()?;
        if ch == channel {
            return redis::from_redis_value(payload).ok();
        }
    }
    None
}
