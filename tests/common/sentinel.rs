//! A Sentinel deployment for tests: a primary, two replicas (`--replicaof`) and
//! three sentinels (quorum 2, a node down after 1 s), from the suite's own
//! `redis-server`, on TCP ports of the loopback; every process is killed on drop.
//! [`Sentinel::start_tls`] starts the same over TLS only (nodes, replication and
//! sentinels). The harness speaks plain redis-rs to each node, never the
//! product's connection.

use std::path::Path;
use std::time::Duration;

use super::nodes::{self, Node, Scratch, Tls, Transport};

/// A sentinel thinks a node is down after this long without an answer.
const DOWN_AFTER_MS: u64 = 1000;
/// A failover that has not finished by then is tried again (after twice as long).
const FAILOVER_TIMEOUT_MS: u64 = 3000;
/// Sentinels that must agree that the primary is down.
const QUORUM: usize = 2;
/// Replicas and sentinels of a deployment.
const REPLICAS: usize = 2;
const SENTINELS: usize = 3;
/// How long setting up or re-syncing may take before the test fails.
const SETTLE: Duration = Duration::from_secs(20);

/// A running Sentinel deployment.
pub struct Sentinel {
    name: String,
    /// The data nodes: the first primary, then its replicas (killed ones stay, dead).
    servers: Vec<Node>,
    sentinels: Vec<Node>,
    /// The port of the primary [`Sentinel::kill_primary`] killed last.
    killed: Option<u16>,
    transport: Transport,
    // Last, so the processes are killed before their directory goes.
    _dir: Scratch,
}

impl Sentinel {
    /// Starts a primary, its replicas and the sentinels monitoring it as `name`,
    /// and waits until every sentinel knows every replica and the other sentinels.
    pub async fn start(name: &str) -> Self {
        Self::start_on(name, Transport::Plain).await
    }

    /// [`Sentinel::start`] over TLS only, with the server and certificates of `tls`.
    pub async fn start_tls(name: &str, tls: &Tls) -> Self {
        Self::start_on(name, Transport::Tls(tls.clone())).await
    }

    async fn start_on(name: &str, transport: Transport) -> Self {
        let dir = Scratch::new("sentinel");
        let primary =
            Node::start_on(&transport, dir.join("primary"), false, nodes::server_args).await;
        let primary_port = primary.port();
        let mut servers = vec![primary];
        for i in 0..REPLICAS {
            let replica = Node::start_on(
                &transport,
                dir.join(&format!("replica{i}")),
                false,
                |port, d| {
                    let mut args = nodes::server_args(port, d);
                    args.extend(["--replicaof".into(), "127.0.0.1".into()]);
                    args.push(primary_port.to_string());
                    args
                },
            )
            .await;
            servers.push(replica);
        }
        let mut deployment = Self {
            name: name.to_owned(),
            servers,
            sentinels: Vec::new(),
            killed: None,
            transport,
            _dir: dir,
        };
        // Replicas already online are seen at a sentinel's first INFO; later ones
        // only at its next (10 s on), so they come first.
        deployment.wait_synced_to(primary_port).await;
        for i in 0..SENTINELS {
            let sentinel = Node::start_on(
                &deployment.transport,
                deployment._dir.join(&format!("sentinel{i}")),
                false,
                |port, d| sentinel_args(port, d, name, primary_port),
            )
            .await;
            deployment.sentinels.push(sentinel);
        }
        deployment.wait_sentinels_agree().await;
        deployment
    }

    /// `redis-sentinel://127.0.0.1:p1,127.0.0.1:p2,127.0.0.1:p3#name`
    /// (`rediss-sentinel://` over TLS).
    pub fn url(&self) -> String {
        let hosts: Vec<String> = self
            .sentinels
            .iter()
            .map(|s| format!("127.0.0.1:{}", s.port()))
            .collect();
        format!(
            "{}://{}#{}",
            self.transport.scheme("sentinel"),
            hosts.join(","),
            self.name
        )
    }

    /// The name the sentinels monitor the primary under.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Ports of the sentinels.
    pub fn sentinel_ports(&self) -> Vec<u16> {
        self.sentinels.iter().map(Node::port).collect()
    }

    /// Ports of the data nodes still alive (the primary among them).
    pub fn live_server_ports(&self) -> Vec<u16> {
        self.servers
            .iter()
            .filter(|s| s.is_alive())
            .map(Node::port)
            .collect()
    }

    /// The primary's port, as the first sentinel that answers names it
    /// (`SENTINEL GET-MASTER-ADDR-BY-NAME`).
    pub async fn primary_port(&self) -> u16 {
        nodes::poll(SETTLE, || async {
            for port in self.sentinel_ports() {
                if let Some(primary) = self.named_by(port).await {
                    return Some(primary);
                }
            }
            None
        })
        .await
        .expect("a sentinel names the primary")
    }

    /// Live data nodes other than the primary the sentinels name.
    pub async fn replica_ports(&self) -> Vec<u16> {
        let primary = self.primary_port().await;
        self.live_server_ports()
            .into_iter()
            .filter(|p| *p != primary)
            .collect()
    }

    /// The primary's port as the sentinel on `sentinel` names it.
    async fn named_by(&self, sentinel: u16) -> Option<u16> {
        let mut con = nodes::connect(sentinel).await.ok()?;
        let (_, port): (String, u16) = redis::cmd("SENTINEL")
            .arg("GET-MASTER-ADDR-BY-NAME")
            .arg(&self.name)
            .query_async(&mut con)
            .await
            .ok()?;
        Some(port)
    }

    /// Kills the primary with SIGKILL; returns its port.
    pub async fn kill_primary(&mut self) -> u16 {
        let port = self.primary_port().await;
        let node = self
            .servers
            .iter_mut()
            .find(|s| s.port() == port)
            .expect("the primary is one of the harness's servers");
        node.kill();
        self.killed = Some(port);
        port
    }

    /// Waits until every sentinel names the same primary, not the one killed
    /// last, and that node says it is a primary (`ROLE`); its port, or `None`
    /// after `timeout`.
    pub async fn wait_for_new_primary(&self, timeout: Duration) -> Option<u16> {
        let killed = self.killed.expect("kill_primary comes first");
        nodes::poll(timeout, || async {
            let mut named = Vec::new();
            for port in self.sentinel_ports() {
                named.push(self.named_by(port).await?);
            }
            let first = *named.first()?;
            let agreed = named.iter().all(|p| *p == first) && first != killed;
            (agreed && role(first).await.as_deref() == Some("master")).then_some(first)
        })
        .await
    }

    /// Waits until every live replica is online at the primary (full sync done).
    pub async fn wait_replicas_synced(&self) {
        let primary = self.primary_port().await;
        self.wait_synced_to(primary).await;
    }

    async fn wait_synced_to(&self, primary: u16) {
        let expected = self.live_server_ports().len() - 1;
        let synced = nodes::poll(SETTLE, || async {
            let info = nodes::info(primary, "replication").await?;
            (synced_replicas(&info) == expected).then_some(())
        })
        .await;
        assert!(
            synced.is_some(),
            "{expected} replicas did not sync to the primary on port {primary} within {SETTLE:?}"
        );
    }

    /// Waits until each sentinel sees the primary up with every live replica and
    /// the other sentinels (they find each other through the primary, every 2 s).
    async fn wait_sentinels_agree(&self) {
        let replicas = self.live_server_ports().len() - 1;
        let others = self.sentinels.len() - 1;
        let agreed = nodes::poll(SETTLE, || async {
            for port in self.sentinel_ports() {
                let state = self.state_at(port).await?;
                let number = |k: &str| state.get(k).and_then(|v| v.parse::<usize>().ok());
                let ok = state.get("flags").map(String::as_str) == Some("master")
                    && number("num-slaves") == Some(replicas)
                    && number("num-other-sentinels") == Some(others);
                if !ok {
                    return None;
                }
            }
            Some(())
        })
        .await;
        assert!(
            agreed.is_some(),
            "the sentinels did not find the {replicas} replicas and each other within {SETTLE:?}"
        );
    }

    /// `SENTINEL MASTER name` on the sentinel at `port`, as field to value.
    async fn state_at(&self, port: u16) -> Option<std::collections::HashMap<String, String>> {
        let mut con = nodes::connect(port).await.ok()?;
        let flat: Vec<String> = redis::cmd("SENTINEL")
            .arg("MASTER")
            .arg(&self.name)
            .query_async(&mut con)
            .await
            .ok()?;
        Some(
            flat.chunks(2)
                .filter_map(|pair| Some((pair.first()?.clone(), pair.get(1)?.clone())))
                .collect(),
        )
    }
}

/// The arguments of a sentinel on `port`: its config file (written into `dir`,
/// which the sentinel rewrites as it learns) and `--sentinel`.
fn sentinel_args(port: u16, dir: &Path, name: &str, primary: u16) -> Vec<String> {
    let conf = dir.join("sentinel.conf");
    let text = format!(
        "port {port}\nbind 127.0.0.1\ndir {dir}\n\
         sentinel monitor {name} 127.0.0.1 {primary} {QUORUM}\n\
         sentinel down-after-milliseconds {name} {DOWN_AFTER_MS}\n\
         sentinel failover-timeout {name} {FAILOVER_TIMEOUT_MS}\n\
         sentinel parallel-syncs {name} {REPLICAS}\n",
        dir = dir.display()
    );
    std::fs::write(&conf, text).expect("sentinel.conf");
    vec![conf.display().to_string(), "--sentinel".to_owned()]
}

/// Replicas of an `INFO replication` text that are online: their full sync is
/// done and they follow the primary's stream (tests confirm their own writes
/// with `WAIT`; sentinels publish every 2 s, so offsets never settle).
fn synced_replicas(info: &str) -> usize {
    info.lines()
        .filter(|l| l.starts_with("slave") && l.contains(":ip="))
        .filter(|l| l.contains("state=online"))
        .count()
}

/// The first element of `ROLE` on `port` (`master`, `slave`, `sentinel`).
pub async fn role(port: u16) -> Option<String> {
    let mut con = nodes::connect(port).await.ok()?;
    let reply: Vec<redis::Value> = redis::cmd("ROLE").query_async(&mut con).await.ok()?;
    redis::from_redis_value(reply.into_iter().next()?).ok()
}
