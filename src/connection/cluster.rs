//! Redis Cluster through redis-rs's cluster client: it follows `MOVED`/`ASK`,
//! learns the slots again after a failover, routes each command by its key, and
//! sends `FUNCTION LOAD` to every primary. Pub/sub goes through it too (a message
//! published on any node reaches the subscribers of every node).

use std::time::Duration;

use redis::cluster::{ClusterClient, ClusterClientBuilder, ClusterConfig};
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr};
use redis::io::tcp::TcpSettings;
use redis::{Client, Cmd, FromRedisValue, ProtocolVersion, PushInfo, RedisResult, TlsCertificates};
use tokio::sync::mpsc::UnboundedSender;

use super::url::ClusterTarget;

/// The cluster client and a client per seed node (for a pub/sub connection of its own).
pub(super) struct Clients {
    pub cluster: ClusterClient,
    pub seeds: Vec<Client>,
}

/// Clients for `target`; `certs` (a private CA) verifies the nodes of a
/// `rediss-cluster://` URL.
pub(super) fn clients(
    target: ClusterTarget,
    certs: Option<TlsCertificates>,
) -> RedisResult<Clients> {
    let seeds = target
        .nodes
        .iter()
        .map(|node| match &certs {
            Some(certs) => Client::build_with_tls(node.clone(), certs.clone()),
            None => Client::open(node.clone()),
        })
        .collect::<RedisResult<_>>()?;
    let mut builder = ClusterClientBuilder::new(target.nodes)
        .use_protocol(ProtocolVersion::RESP3)
        .tcp_settings(TcpSettings::default().set_nodelay(true));
    if let Some(certs) = certs {
        builder = builder.certs(certs);
    }
    Ok(Clients {
        cluster: builder.build()?,
        seeds,
    })
}

/// Settings of a cluster connection: its timeouts, and where pub/sub messages go
/// (subscriptions come back after reconnects and slot moves).
pub(super) fn config(
    response: Duration,
    connect: Duration,
    push: Option<UnboundedSender<PushInfo>>,
) -> ClusterConfig {
    let config = ClusterConfig::new()
        .set_response_timeout(response)
        .set_connection_timeout(connect);
    match push {
        Some(tx) => config.set_push_sender(tx),
        None => config,
    }
}

/// Where a keyless command about `key` goes: the primary serving its slot.
fn at_key(key: &str) -> RoutingInfo {
    RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(Route::with_key(
        key,
        SlotAddr::Master,
    )))
}

/// Sends `cmd` to the primary serving `key`'s slot.
pub(super) async fn query_at_key<T: FromRedisValue>(
    con: &mut ClusterConnection,
    cmd: &Cmd,
    key: &str,
) -> RedisResult<T> {
    let value = con.route_command(cmd.clone(), at_key(key)).await?;
    Ok(redis::from_redis_value(value.extract_error()?)?)
}
