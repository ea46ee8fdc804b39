//! A Redis Cluster for tests: three primaries with a replica each, formed by the
//! harness itself (slots split in three with `CLUSTER ADDSLOTSRANGE`, `CLUSTER
//! MEET`, `CLUSTER REPLICATE`) from the suite's own `redis-server`, on TCP ports
//! whose bus ports (+10,000) are free too; every process is killed on drop.
//! [`Cluster::start_tls`] starts the same over TLS only (clients, replication and
//! the cluster bus). The harness speaks plain redis-rs to each node, never the
//! product's connection.

use std::collections::BTreeSet;
use std::time::Duration;

use redis::Value;

use super::nodes::{self, Node, Scratch, Tls, Transport};

/// Primaries, each with one replica.
const PRIMARIES: usize = 3;
/// Hash slots of a cluster.
const SLOTS: u16 = 16_384;
/// A node unreachable this long is suspected failing.
const NODE_TIMEOUT_MS: u64 = 1000;
/// How long forming the cluster or settling after a change may take.
const SETTLE: Duration = Duration::from_secs(20);

/// One range of slots as a node reports it (`CLUSTER SLOTS`): its primary's port
/// and the ports of its replicas that are not failing, sorted.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Shard {
    /// First slot.
    pub start: u16,
    /// Last slot (included).
    pub end: u16,
    /// Port of the primary serving it.
    pub primary: u16,
    /// Ports of its replicas.
    pub replicas: Vec<u16>,
}

/// A running cluster.
pub struct Cluster {
    /// Every node, alive or killed: the first [`PRIMARIES`] started as primaries.
    nodes: Vec<Node>,
    transport: Transport,
    // Last, so the processes are killed before their directory goes.
    _dir: Scratch,
}

impl Cluster {
    /// Starts six nodes, forms the cluster and waits until it is `ok` and every
    /// node agrees on who serves which slots.
    pub async fn start() -> Self {
        Self::start_on(Transport::Plain).await
    }

    /// [`Cluster::start`] over TLS only, with the server and certificates of `tls`.
    pub async fn start_tls(tls: &Tls) -> Self {
        Self::start_on(Transport::Tls(tls.clone())).await
    }

    async fn start_on(transport: Transport) -> Self {
        let dir = Scratch::new("cluster");
        let mut started = Vec::new();
        for i in 0..PRIMARIES * 2 {
            let dir = dir.join(&format!("node{i}"));
            started.push(Node::start_on(&transport, dir, true, cluster_args).await);
        }
        let cluster = Self {
            nodes: started,
            transport,
            _dir: dir,
        };
        cluster.form().await;
        cluster
    }

    async fn form(&self) {
        let ports: Vec<u16> = self.nodes.iter().map(Node::port).collect();
        let mut ids = Vec::new();
        for (i, port) in ports.iter().enumerate() {
            let mut con = nodes::connect(*port).await.expect("connect to a node");
            let id: String = query(&mut con, &["CLUSTER", "MYID"]).await;
            // Distinct epochs up front, so no collision has to be resolved later.
            let epoch = (i + 1).to_string();
            let _: () = query(&mut con, &["CLUSTER", "SET-CONFIG-EPOCH", &epoch]).await;
            ids.push(id);
        }
        for (i, (start, end)) in slot_ranges().into_iter().enumerate() {
            let mut con = nodes::connect(ports[i]).await.expect("connect to a node");
            let (start, end) = (start.to_string(), end.to_string());
            let _: () = query(&mut con, &["CLUSTER", "ADDSLOTSRANGE", &start, &end]).await;
        }
        let mut first = nodes::connect(ports[0]).await.expect("connect to a node");
        for port in &ports[1..] {
            let port = port.to_string();
            let _: () = query(&mut first, &["CLUSTER", "MEET", "127.0.0.1", &port]).await;
        }
        self.wait_all_known(ports.len()).await;
        for (replica, primary_id) in ports[PRIMARIES..].iter().zip(&ids) {
            let mut con = nodes::connect(*replica).await.expect("connect to a node");
            let _: () = query(&mut con, &["CLUSTER", "REPLICATE", primary_id]).await;
        }
        self.wait_ok().await;
    }

    /// Waits until every node knows `count` nodes, none still in handshake.
    async fn wait_all_known(&self, count: usize) {
        let known = nodes::poll(SETTLE, || async {
            for port in self.live_ports() {
                let mut con = nodes::connect(port).await.ok()?;
                let text: String = redis::cmd("CLUSTER")
                    .arg("NODES")
                    .query_async(&mut con)
                    .await
                    .ok()?;
                let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
                if lines.len() != count || lines.iter().any(|l| l.contains("handshake")) {
                    return None;
                }
            }
            Some(())
        })
        .await;
        assert!(known.is_some(), "the nodes did not meet within {SETTLE:?}");
    }

    /// `redis-cluster://127.0.0.1:p1,127.0.0.1:p2,...` over the live nodes
    /// (`rediss-cluster://` over TLS).
    pub fn url(&self) -> String {
        let hosts: Vec<String> = self
            .live_ports()
            .into_iter()
            .map(|p| format!("127.0.0.1:{p}"))
            .collect();
        format!("{}://{}", self.transport.scheme("cluster"), hosts.join(","))
    }

    /// Ports of the nodes still alive.
    pub fn live_ports(&self) -> Vec<u16> {
        self.nodes
            .iter()
            .filter(|n| n.is_alive())
            .map(Node::port)
            .collect()
    }

    /// Waits until every live node says `cluster_state:ok`, all report the same
    /// slot map covering every slot with every live node in it, and each replica's
    /// link to its primary is up.
    pub async fn wait_ok(&self) {
        let settled = nodes::poll(SETTLE, || self.settled_map()).await;
        assert!(
            settled.is_some(),
            "the cluster did not settle within {SETTLE:?}: {:?}",
            self.maps().await
        );
    }

    /// The slot map all live nodes agree on, when the cluster is settled.
    async fn settled_map(&self) -> Option<Vec<Shard>> {
        let live = self.live_ports();
        let mut agreed: Option<Vec<Shard>> = None;
        for port in &live {
            let info = cluster_info(*port).await?;
            if nodes::field(&info, "cluster_state") != Some("ok") {
                return None;
            }
            let map = slot_map(*port).await?;
            if agreed.as_ref().is_some_and(|a| *a != map) {
                return None;
            }
            agreed = Some(map);
        }
        let map = agreed?;
        let covered: usize = map.iter().map(|s| usize::from(s.end - s.start) + 1).sum();
        let in_map: BTreeSet<u16> = map
            .iter()
            .flat_map(|s| std::iter::once(s.primary).chain(s.replicas.iter().copied()))
            .collect();
        if covered != usize::from(SLOTS) || in_map != live.iter().copied().collect() {
            return None;
        }
        for replica in map.iter().flat_map(|s| &s.replicas) {
            let info = nodes::info(*replica, "replication").await?;
            if nodes::field(&info, "master_link_status") != Some("up") {
                return None;
            }
        }
        Some(map)
    }

    /// Each live node's slot map (for a failure message).
    async fn maps(&self) -> Vec<(u16, Option<Vec<Shard>>)> {
        let mut out = Vec::new();
        for port in self.live_ports() {
            out.push((port, slot_map(port).await));
        }
        out
    }

    /// The slot map of the first live node that answers.
    pub async fn map(&self) -> Vec<Shard> {
        nodes::poll(SETTLE, || async {
            for port in self.live_ports() {
                if let Some(map) = slot_map(port).await {
                    return Some(map);
                }
            }
            None
        })
        .await
        .expect("a node reports the slot map")
    }

    /// The shard holding `slot`.
    pub async fn shard_of(&self, slot: u16) -> Shard {
        self.map()
            .await
            .into_iter()
            .find(|s| (s.start..=s.end).contains(&slot))
            .unwrap_or_else(|| panic!("no node serves slot {slot}"))
    }

    /// Port of the primary serving `slot`.
    pub async fn node_for_slot(&self, slot: u16) -> u16 {
        self.shard_of(slot).await.primary
    }

    /// Port of a replica of the primary serving `slot`.
    pub async fn replica_of(&self, slot: u16) -> u16 {
        let shard = self.shard_of(slot).await;
        *shard
            .replicas
            .first()
            .unwrap_or_else(|| panic!("slot {slot} has no replica: {shard:?}"))
    }

    /// The slot of `key`, as the cluster computes it (`CLUSTER KEYSLOT`).
    pub async fn key_slot(&self, key: &str) -> u16 {
        let port = *self.live_ports().first().expect("a live node");
        let mut con = nodes::connect(port).await.expect("connect to a node");
        query(&mut con, &["CLUSTER", "KEYSLOT", key]).await
    }

    /// Kills the primary serving `slot` with SIGKILL; returns its port.
    pub async fn kill_primary_of(&mut self, slot: u16) -> u16 {
        let port = self.node_for_slot(slot).await;
        self.nodes
            .iter_mut()
            .find(|n| n.port() == port)
            .expect("the primary is one of the harness's nodes")
            .kill();
        port
    }

    /// Has the replica of the primary serving `slot` take its place (`CLUSTER
    /// FAILOVER`, coordinated with the primary) and waits until every node agrees;
    /// returns the new primary's port.
    pub async fn failover_replica_of(&self, slot: u16) -> u16 {
        let replica = self.replica_of(slot).await;
        let mut con = nodes::connect(replica)
            .await
            .expect("connect to the replica");
        let _: () = query(&mut con, &["CLUSTER", "FAILOVER"]).await;
        let promoted = nodes::poll(SETTLE, || async {
            let map = self.settled_map().await?;
            map.iter()
                .any(|s| (s.start..=s.end).contains(&slot) && s.primary == replica)
                .then_some(())
        })
        .await;
        assert!(
            promoted.is_some(),
            "the replica on {replica} did not take slot {slot} over within {SETTLE:?}"
        );
        replica
    }
}

/// The arguments of a cluster node on `port` (bus port `port` + 10,000).
fn cluster_args(port: u16, dir: &std::path::Path) -> Vec<String> {
    let mut args = nodes::server_args(port, dir);
    let conf = dir.join("nodes.conf").display().to_string();
    let timeout = NODE_TIMEOUT_MS.to_string();
    args.extend(
        [
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            &conf,
            "--cluster-node-timeout",
            &timeout,
            // One replica per primary stays where the harness put it.
            "--cluster-allow-replica-migration",
            "no",
        ]
        .into_iter()
        .map(str::to_owned),
    );
    args
}

/// The three ranges of slots the primaries serve, first to last.
fn slot_ranges() -> Vec<(u16, u16)> {
    let per = SLOTS / PRIMARIES as u16;
    (0..PRIMARIES as u16)
        .map(|i| {
            let end = if usize::from(i) + 1 == PRIMARIES {
                SLOTS - 1
            } else {
                (i + 1) * per - 1
            };
            (i * per, end)
        })
        .collect()
}

/// Runs `args` on `con`, failing the test with the command when Redis refuses it.
async fn query<T: redis::FromRedisValue>(
    con: &mut redis::aio::MultiplexedConnection,
    args: &[&str],
) -> T {
    let mut cmd = redis::cmd(args[0]);
    for a in &args[1..] {
        cmd.arg(*a);
    }
    cmd.query_async(con)
        .await
        .unwrap_or_else(|e| panic!("{args:?}: {e}"))
}

/// `CLUSTER INFO` of the node on `port`.
async fn cluster_info(port: u16) -> Option<String> {
    let mut con = nodes::connect(port).await.ok()?;
    redis::cmd("CLUSTER")
        .arg("INFO")
        .query_async(&mut con)
        .await
        .ok()
}

/// `CLUSTER SLOTS` of the node on `port`, sorted by first slot.
pub async fn slot_map(port: u16) -> Option<Vec<Shard>> {
    let mut con = nodes::connect(port).await.ok()?;
    let reply: Vec<Vec<Value>> = redis::cmd("CLUSTER")
        .arg("SLOTS")
        .query_async(&mut con)
        .await
        .ok()?;
    let mut map = Vec::new();
    for range in reply {
        let mut parts = range.into_iter();
        let start: u16 = redis::from_redis_value(parts.next()?).ok()?;
        let end: u16 = redis::from_redis_value(parts.next()?).ok()?;
        let mut ports = parts.map(node_port);
        let primary = ports.next()??;
        let mut replicas = ports.collect::<Option<Vec<u16>>>()?;
        replicas.sort_unstable();
        map.push(Shard {
            start,
            end,
            primary,
            replicas,
        });
    }
    map.sort();
    Some(map)
}

/// The port of one node entry of `CLUSTER SLOTS` (`[ip, port, id, ...]`).
fn node_port(entry: Value) -> Option<u16> {
    let fields: Vec<Value> = redis::from_redis_value(entry).ok()?;
    redis::from_redis_value(fields.into_iter().nth(1)?).ok()
}
