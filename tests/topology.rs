//! Redis's distributed forms, as the harness starts them from the suite's own
//! `redis-server`: Sentinel (a primary, two replicas, three sentinels) and a
//! Cluster (three primaries with a replica each). First that the topologies form
//! and fail over at the Redis level, spoken to with plain redis-rs; then workers
//! reaching Redis through the sentinels, with the primary killed mid-run.

mod common;

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use common::cluster::Cluster;
use common::nodes;
use common::sentinel::{self, Sentinel};
use common::{TestDir, incoming};
use redis::aio::MultiplexedConnection;
use secondme::config::{Config, Overrides};
use secondme::reply::persona_engine::PersonaEngine;
use secondme::schema;
use secondme::store::queue;
use secondme::worker;
use tokio::sync::watch;

/// A key of the tests' own, outside the project's names.
const PROBE: &str = "topology:probe";
/// Longest a promotion may take: sentinels see the primary down after 1 s, agree,
/// elect a leader and promote (a failed election is retried after 6 s).
const PROMOTION: Duration = Duration::from_secs(15);

async fn connect(port: u16) -> MultiplexedConnection {
    nodes::connect(port)
        .await
        .unwrap_or_else(|e| panic!("connect to 127.0.0.1:{port}: {e}"))
}

async fn get(port: u16, key: &str) -> Option<String> {
    let mut con = connect(port).await;
    redis::cmd("GET")
        .arg(key)
        .query_async(&mut con)
        .await
        .expect("GET")
}

/// `SET key value` then `WAIT replicas 2000` on one connection: how many replicas
/// acknowledged it.
async fn set_and_wait(
    con: &mut MultiplexedConnection,
    key: &str,
    value: &str,
    replicas: usize,
) -> i64 {
    let ((), acked): ((), i64) = redis::pipe()
        .cmd("SET")
        .arg(key)
        .arg(value)
        .cmd("WAIT")
        .arg(replicas)
        .arg(2000)
        .query_async(con)
        .await
        .expect("SET and WAIT");
    acked
}

#[tokio::test]
async fn sentinel_replicates_and_promotes_a_replica_when_the_primary_is_killed() {
    let mut topo = Sentinel::start("repl").await;
    let primary = topo.primary_port().await;
    let replicas = topo.replica_ports().await;
    assert_eq!(replicas.len(), 2, "{replicas:?}");
    assert_eq!(sentinel::role(primary).await.as_deref(), Some("master"));
    for r in &replicas {
        assert_eq!(sentinel::role(*r).await.as_deref(), Some("slave"), "{r}");
    }
    assert!(
        topo.url().starts_with("redis-sentinel://127.0.0.1:") && topo.url().ends_with("#repl"),
        "{}",
        topo.url()
    );

    let mut con = connect(primary).await;
    assert_eq!(set_and_wait(&mut con, PROBE, "before", 2).await, 2);
    for r in &replicas {
        assert_eq!(
            get(*r, PROBE).await.as_deref(),
            Some("before"),
            "replica {r}"
        );
        let mut replica = connect(*r).await;
        let refused: redis::RedisResult<()> = redis::cmd("SET")
            .arg(PROBE)
            .arg("x")
            .query_async(&mut replica)
            .await;
        let code = refused.expect_err("a replica refuses writes");
        assert_eq!(code.code(), Some("READONLY"), "{code}");
    }

    let killed_at = Instant::now();
    assert_eq!(topo.kill_primary().await, primary);
    let promoted = topo
        .wait_for_new_primary(PROMOTION)
        .await
        .expect("the sentinels promote a replica");
    eprintln!("promoted after {:.1} s", killed_at.elapsed().as_secs_f64());
    assert!(replicas.contains(&promoted), "{promoted} of {replicas:?}");
    assert_eq!(get(promoted, PROBE).await.as_deref(), Some("before"));

    // The other replica follows the new primary.
    topo.wait_replicas_synced().await;
    let mut con = connect(promoted).await;
    assert_eq!(set_and_wait(&mut con, PROBE, "after", 1).await, 1);
    let other = replicas
        .iter()
        .find(|r| **r != promoted)
        .expect("two replicas");
    assert_eq!(get(*other, PROBE).await.as_deref(), Some("after"));
    assert_eq!(sentinel::role(*other).await.as_deref(), Some("slave"));
}

/// The seed's names behind the hash tag of namespace `alice`.
fn alice_keys() -> Vec<String> {
    [
        schema::queue_messages(),
        schema::queue_responses(),
        schema::queue_deadletter(),
        schema::optin_contacts(),
        schema::state_marker(),
        schema::stats(),
    ]
    .into_iter()
    .chain(schema::channels())
    .map(|name| format!("{{alice}}:{name}"))
    .collect()
}

#[tokio::test]
async fn a_cluster_forms_and_keeps_a_namespace_on_one_node() {
    let cluster = Cluster::start().await;
    let map = cluster.map().await;
    assert_eq!(map.len(), 3, "{map:?}");
    assert_eq!(map.iter().map(|s| s.end - s.start + 1).sum::<u16>(), 16_384);
    let mut every = BTreeSet::new();
    for shard in &map {
        assert_eq!(shard.replicas.len(), 1, "{shard:?}");
        every.insert(shard.primary);
        every.extend(&shard.replicas);
    }
    assert_eq!(every.len(), 6, "six distinct nodes: {map:?}");
    let url = cluster.url();
    assert!(url.starts_with("redis-cluster://127.0.0.1:"), "{url}");
    assert_eq!(url.matches(',').count(), 5, "{url}");

    let keys = alice_keys();
    let slot = cluster.key_slot(&keys[0]).await;
    for k in &keys {
        assert_eq!(cluster.key_slot(k).await, slot, "{k}");
    }
    // Without the tag the same names spread over the nodes: the tag is what holds them.
    let mut owners = BTreeSet::new();
    for k in &keys {
        let plain = k.trim_start_matches("{alice}:");
        owners.insert(cluster.node_for_slot(cluster.key_slot(plain).await).await);
    }
    assert!(
        owners.len() > 1,
        "the seed's names all on one node: {owners:?}"
    );

    // One transaction over every key of the namespace runs on the owner.
    let owner = cluster.node_for_slot(slot).await;
    let mut con = connect(owner).await;
    let mut multi = redis::pipe();
    multi.atomic();
    for k in &keys {
        multi.cmd("SET").arg(k).arg("1").ignore();
    }
    let () = multi
        .query_async(&mut con)
        .await
        .expect("MULTI on one slot");
    let acked: i64 = redis::cmd("WAIT")
        .arg(1)
        .arg(2000)
        .query_async(&mut con)
        .await
        .expect("WAIT");
    assert_eq!(acked, 1);
    let mut mixed = redis::cmd("MSET");
    mixed.arg(&keys[0]).arg("1").arg("{bob}:x").arg("1");
    let refused: redis::RedisResult<()> = mixed.query_async(&mut con).await;
    let err = refused.expect_err("two slots in one command");
    assert_eq!(err.code(), Some("CROSSSLOT"), "{err}");

    // Another primary sends the client to the owner.
    let other = map
        .iter()
        .map(|s| s.primary)
        .find(|p| *p != owner)
        .expect("3 primaries");
    let mut elsewhere = connect(other).await;
    let moved: redis::RedisResult<Option<String>> = redis::cmd("GET")
        .arg(&keys[0])
        .query_async(&mut elsewhere)
        .await;
    let err = moved.expect_err("not this node's slot");
    assert_eq!(err.code(), Some("MOVED"), "{err}");
    assert!(
        err.to_string().ends_with(&format!(" 127.0.0.1:{owner}")),
        "sent to the owner: {err}"
    );

    // The owner's replica holds them (read with READONLY).
    let replica = cluster.replica_of(slot).await;
    let mut con = connect(replica).await;
    let (_, value): ((), Option<String>) = redis::pipe()
        .cmd("READONLY")
        .cmd("GET")
        .arg(&keys[0])
        .query_async(&mut con)
        .await
        .expect("READONLY GET");
    assert_eq!(value.as_deref(), Some("1"));
}

/// `XADD key * n value` then `WAIT 1 2000` on the node at `port`: replicas that acknowledged.
async fn append_and_wait(port: u16, key: &str, value: &str) -> i64 {
    let mut con = connect(port).await;
    let (_, acked): (String, i64) = redis::pipe()
        .cmd("XADD")
        .arg(key)
        .arg("*")
        .arg("n")
        .arg(value)
        .cmd("WAIT")
        .arg(1)
        .arg(2000)
        .query_async(&mut con)
        .await
        .expect("XADD and WAIT");
    acked
}

async fn xlen(port: u16, key: &str) -> usize {
    let mut con = connect(port).await;
    redis::cmd("XLEN")
        .arg(key)
        .query_async(&mut con)
        .await
        .expect("XLEN")
}

#[tokio::test]
async fn a_cluster_promotes_a_replica_by_command_and_when_its_primary_is_killed() {
    let mut cluster = Cluster::start().await;
    let key = format!("{{alice}}:{}", schema::queue_messages());
    let slot = cluster.key_slot(&key).await;
    let before = cluster.map().await;
    let first = cluster.shard_of(slot).await;
    assert_eq!(append_and_wait(first.primary, &key, "1").await, 1);

    let promoted = cluster.failover_replica_of(slot).await;
    assert_eq!(Some(&promoted), first.replicas.first());
    let second = cluster.shard_of(slot).await;
    assert_eq!(second.primary, promoted);
    assert_eq!(
        second.replicas,
        vec![first.primary],
        "the old primary follows"
    );
    assert_eq!(
        sentinel::role(first.primary).await.as_deref(),
        Some("slave")
    );
    assert_eq!(xlen(promoted, &key).await, 1);
    assert_eq!(append_and_wait(promoted, &key, "2").await, 1);

    let killed_at = Instant::now();
    assert_eq!(cluster.kill_primary_of(slot).await, promoted);
    cluster.wait_ok().await;
    eprintln!(
        "cluster settled {:.1} s after the kill",
        killed_at.elapsed().as_secs_f64()
    );
    let third = cluster.shard_of(slot).await;
    assert_eq!(third.primary, first.primary, "its replica took over");
    assert!(third.replicas.is_empty(), "{third:?}");
    assert_eq!(
        xlen(first.primary, &key).await,
        2,
        "no confirmed write lost"
    );
    // The other shards did not move.
    let after = cluster.map().await;
    for shard in before.iter().filter(|s| s.start != first.start) {
        assert!(after.contains(shard), "{shard:?} moved: {after:?}");
    }
}

/// Contacts the writer cycles through.
const CONTACTS: usize = 20;
/// Messages written before the kill, while the failover runs, and after it.
const BEFORE_KILL: usize = 30;
const DURING: usize = 60;
const AFTER: usize = 20;
/// Time between two messages.
const PACE: Duration = Duration::from_millis(100);

/// Writes messages as a gateway with `replicas_to_wait = 1` does, to whichever
/// node the sentinels name, and keeps the ids whose write `WAIT` confirmed.
#[derive(Default)]
struct Writer {
    con: Option<MultiplexedConnection>,
    sent: Vec<String>,
    confirmed: Vec<String>,
}

impl Writer {
    /// Writes message `i` (`XADD`, then `WAIT 1 1000` on the same connection);
    /// true when a replica at least holds it. A failed write is not retried: it
    /// may or may not be in Redis, and only confirmed ones are promised.
    async fn write(&mut self, topo: &Sentinel, i: usize) -> bool {
        let id = format!("m{i}");
        let message = incoming(&id, &format!("c{}", i % CONTACTS), "are you there?");
        self.sent.push(id.clone());
        if self.con.is_none() {
            self.con = nodes::connect(topo.primary_port().await).await.ok();
        }
        let Some(con) = self.con.as_mut() else {
            return false;
        };
        let reply: redis::RedisResult<(String, i64)> = redis::pipe()
            .add_command(queue::xadd(&message, false))
            .cmd("WAIT")
            .arg(1)
            .arg(1000)
            .query_async(con)
            .await;
        match reply {
            Ok((_, acked)) if acked >= 1 => {
                self.confirmed.push(id);
                true
            }
            Ok(_) => false,
            Err(_) => {
                self.con = None;
                false
            }
        }
    }
}

/// Replies in `QUEUE:responses` on the node at `port`, counted per `inReplyTo`.
async fn replies_on(port: u16) -> Option<HashMap<String, usize>> {
    let mut con = nodes::connect(port).await.ok()?;
    let reply: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
        .arg(schema::queue_responses())
        .arg("-")
        .arg("+")
        .query_async(&mut con)
        .await
        .ok()?;
    let mut per = HashMap::new();
    for entry in reply.ids {
        let to: String = entry
            .get(schema::response_fields::IN_REPLY_TO)
            .unwrap_or_default();
        *per.entry(to).or_insert(0) += 1;
    }
    Some(per)
}

/// Entries the workers' group holds delivered and unacknowledged on the node at `port`.
async fn pending_on(port: u16) -> Option<u64> {
    let mut con = nodes::connect(port).await.ok()?;
    let reply: redis::streams::StreamPendingReply = redis::cmd("XPENDING")
        .arg(schema::queue_messages())
        .arg(schema::WORKER_GROUP)
        .query_async(&mut con)
        .await
        .ok()?;
    Some(reply.count() as u64)
}

/// The state marker set and every contact enabled, on the primary and both replicas.
async fn allow_contacts(topo: &Sentinel) {
    let contacts: Vec<String> = (0..CONTACTS).map(|i| format!("c{i}")).collect();
    let mut con = connect(topo.primary_port().await).await;
    let (acked,): (i64,) = redis::pipe()
        .cmd("SET")
        .arg(schema::state_marker())
        .arg("1")
        .ignore()
        .cmd("SADD")
        .arg(schema::optin_contacts())
        .arg(&contacts)
        .ignore()
        .cmd("WAIT")
        .arg(2)
        .arg(2000)
        .query_async(&mut con)
        .await
        .expect("enable the contacts");
    assert_eq!(acked, 2);
}

/// A worker's config: Redis through the sentinels, a test-speed claim time, and
/// its commits waiting for one replica.
fn worker_config(url: &str, consumer: &str, dir: &TestDir) -> Config {
    let file = dir.join("config.toml");
    std::fs::write(&file, "").expect("config file");
    Config::load(
        Some(&file),
        Overrides {
            redis_url: Some(url.to_owned()),
            consumer: Some(consumer.to_owned()),
            claim_idle: Some("1s".to_owned()),
            replicas_to_wait: Some(1),
            review_file: Some(dir.join(format!("review-{consumer}.jsonl"))),
            ..Overrides::default()
        },
    )
    .expect("config")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_on_sentinel_answer_every_confirmed_message_once_across_a_failover() {
    let mut topo = Sentinel::start("twin").await;
    allow_contacts(&topo).await;
    let dir = TestDir::new("sentinel-workers");
    let (stop, stop_rx) = watch::channel(false);
    let workers: Vec<_> = ["w1", "w2"]
        .into_iter()
        .map(|consumer| {
            let config = worker_config(&topo.url(), consumer, &dir);
            let stop = stop_rx.clone();
            tokio::spawn(async move {
                worker::run_worker(&config, PersonaEngine::default(), stop).await
            })
        })
        .collect();

    let mut writer = Writer::default();
    for i in 0..BEFORE_KILL {
        writer.write(&topo, i).await;
        tokio::time::sleep(PACE).await;
    }
    assert_eq!(
        writer.confirmed.len(),
        BEFORE_KILL,
        "every write before the kill is confirmed"
    );
    let killed = topo.kill_primary().await;
    let killed_at = Instant::now();
    for i in BEFORE_KILL..BEFORE_KILL + DURING {
        writer.write(&topo, i).await;
        tokio::time::sleep(PACE).await;
    }
    let promoted = topo
        .wait_for_new_primary(PROMOTION)
        .await
        .expect("the sentinels promote a replica");
    assert_ne!(promoted, killed);
    topo.wait_replicas_synced().await;
    let during = writer.confirmed.len() - BEFORE_KILL;
    for i in BEFORE_KILL + DURING..BEFORE_KILL + DURING + AFTER {
        assert!(
            writer.write(&topo, i).await,
            "message {i}, after the failover, is confirmed"
        );
        tokio::time::sleep(PACE / 2).await;
    }

    // Every confirmed message answered, and nothing left pending to be answered again.
    let confirmed = writer.confirmed.clone();
    let settled = nodes::poll(Duration::from_secs(20), || async {
        let per = replies_on(promoted).await?;
        let all = confirmed.iter().all(|id| per.contains_key(id));
        (all && pending_on(promoted).await? == 0).then_some(per)
    })
    .await;
    let per = match settled {
        Some(per) => per,
        None => {
            let per = replies_on(promoted).await.unwrap_or_default();
            let missing: Vec<&String> = confirmed
                .iter()
                .filter(|id| !per.contains_key(*id))
                .collect();
            let finished: Vec<bool> = workers.iter().map(|w| w.is_finished()).collect();
            panic!(
                "confirmed messages unanswered {:.1} s after the kill: {missing:?} \
                 (workers finished: {finished:?})",
                killed_at.elapsed().as_secs_f64()
            );
        }
    };
    eprintln!(
        "{} written, {} confirmed ({during} while the primary was down or new), {} replies",
        writer.sent.len(),
        confirmed.len(),
        per.values().sum::<usize>()
    );
    for id in &confirmed {
        assert_eq!(per.get(id), Some(&1), "{id} answered exactly once");
    }
    for (id, n) in &per {
        assert!(writer.sent.contains(id), "a reply to {id}, never written");
        assert_eq!(*n, 1, "{id} answered {n} times");
    }

    for w in &workers {
        assert!(!w.is_finished(), "a worker stopped during the failover");
    }
    let _ = stop.send(true);
    for w in workers {
        let status = tokio::time::timeout(Duration::from_secs(10), w)
            .await
            .expect("the worker stops in time")
            .expect("join")
            .expect("the worker ran without error");
        eprintln!("worker answered {}", status.answered);
    }
}
