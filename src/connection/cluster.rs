//! Redis Cluster through redis-rs's cluster client: it follows `MOVED`/`ASK`,
//! learns the slots again after a failover, routes each command by its key, and
//! sends `FUNCTION LOAD` to every primary. Pub/sub goes through it too (a message
//! published on any node reaches the subscribers of every node). A stream reader
//! connects to one node only: the primary of its slot, looked up here.

use std::time::Duration;

use redis::cluster::{ClusterClient, ClusterClientBuilder, ClusterConfig};
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr};
use redis::io::tcp::TcpSettings;
use redis::{
    Client, Cmd, ConnectionAddr, ConnectionInfo, ErrorKind, FromRedisValue, ProtocolVersion,
    PushInfo, RedisError, RedisResult, TlsCertificates, Value,
};
use tokio::sync::mpsc::UnboundedSender;

use super::Con;
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

impl Clients {
    /// How to reach the node at `host:port` as the seed nodes are reached: the
    /// same login, protocol, TLS and certificates.
    pub(super) fn node_info(&self, host: String, port: u16) -> RedisResult<ConnectionInfo> {
        let seed = self
            .seeds
            .first()
            .ok_or_else(|| {
                RedisError::from((
                    ErrorKind::InvalidClientConfig,
                    "the Cluster URL names no node",
                ))
            })?
            .get_connection_info();
        let addr = match seed.addr() {
            ConnectionAddr::TcpTls {
                insecure,
                tls_params,
                ..
            } => ConnectionAddr::TcpTls {
                host,
                port,
                insecure: *insecure,
                tls_params: tls_params.clone(),
            },
            _ => ConnectionAddr::Tcp(host, port),
        };
        Ok(seed.clone().set_addr(addr))
    }
}

/// Where the primary serving `key`'s slot listens, as the cluster says now:
/// `CLUSTER KEYSLOT`, then `CLUSTER SLOTS` of the node `con` routes `key` to.
pub(super) async fn primary_of(con: &mut Con, key: &str) -> RedisResult<(String, u16)> {
    let mut keyslot = redis::cmd("CLUSTER");
    keyslot.arg("KEYSLOT").arg(key);
    let slot: u16 = con.query_at_key(&keyslot, key).await?;
    let mut slots = redis::cmd("CLUSTER");
    slots.arg("SLOTS");
    let map: Value = con.query_at_key(&slots, key).await?;
    primary_in(map, slot).ok_or_else(|| {
        RedisError::from((
            ErrorKind::ClusterConnectionNotFound,
            "CLUSTER SLOTS names no reachable primary for the slot",
            slot.to_string(),
        ))
    })
}

/// The primary's host and port for `slot` in a `CLUSTER SLOTS` reply
/// (`[[start, end, [host, port, id, ...], replicas...], ...]`); `None` when no
/// range holds it or its host is unknown (`?`, empty).
fn primary_in(map: Value, slot: u16) -> Option<(String, u16)> {
    let ranges: Vec<Vec<Value>> = redis::from_redis_value(map).ok()?;
    ranges.into_iter().find_map(|range| {
        let mut parts = range.into_iter();
        let start: u16 = redis::from_redis_value(parts.next()?).ok()?;
        let end: u16 = redis::from_redis_value(parts.next()?).ok()?;
        if !(start..=end).contains(&slot) {
            return None;
        }
        let node: Vec<Value> = redis::from_redis_value(parts.next()?).ok()?;
        let mut fields = node.into_iter();
        let host: String = redis::from_redis_value(fields.next()?).ok()?;
        let port: u16 = redis::from_redis_value(fields.next()?).ok()?;
        (!host.is_empty() && host != "?").then_some((host, port))
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

/// Sends `pipe` on the connection to the primary serving `key`'s slot.
pub(super) async fn pipeline_at_key<T: FromRedisValue>(
    con: &mut ClusterConnection,
    pipe: &redis::Pipeline,
    key: &str,
) -> RedisResult<T> {
    let route = SingleNodeRoutingInfo::SpecificNode(Route::with_key(key, SlotAddr::Master));
    let values = con
        .route_pipeline(pipe.clone(), 0, pipe.len(), route)
        .await?;
    Ok(redis::from_redis_value(redis::Value::Array(values))?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(host: &str, port: i64) -> Value {
        Value::Array(vec![
            Value::BulkString(host.into()),
            Value::Int(port),
            Value::BulkString("0123abcd".into()),
            Value::Map(Vec::new()),
        ])
    }

    fn range(start: i64, end: i64, nodes: Vec<Value>) -> Value {
        let mut parts = vec![Value::Int(start), Value::Int(end)];
        parts.extend(nodes);
        Value::Array(parts)
    }

    #[test]
    fn the_primary_of_a_slot_is_the_first_node_of_its_range() {
        let map = Value::Array(vec![
            range(
                0,
                5460,
                vec![node("10.0.0.1", 7000), node("10.0.0.4", 7003)],
            ),
            range(5461, 10922, vec![node("10.0.0.2", 7001)]),
            range(10923, 16383, vec![node("?", 7002), node("10.0.0.6", 7005)]),
        ]);
        assert_eq!(
            primary_in(map.clone(), 0),
            Some(("10.0.0.1".to_owned(), 7000))
        );
        assert_eq!(
            primary_in(map.clone(), 5461),
            Some(("10.0.0.2".to_owned(), 7001))
        );
        assert_eq!(primary_in(map.clone(), 16383), None, "an unknown host");
        assert_eq!(primary_in(Value::Array(Vec::new()), 0), None);
        assert_eq!(primary_in(Value::Int(1), 0), None);
    }
}
