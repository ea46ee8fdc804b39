//! Connecting through Redis Sentinel and to a Redis Cluster with the product's own
//! connection (`secondme::connection`), on real deployments the harness starts
//! from the suite's `redis-server` (tests/common/{sentinel,cluster}.rs): commands
//! and pub/sub through the sentinels, the same connection writing to the new
//! primary after a failover (forced, and a SIGKILL), a worker answering across
//! it, and on a Cluster the keys of one namespace's slot, a function loaded on
//! every primary and called, pub/sub from every node, and a blocking read.

mod common;

use common::node_pubsub::{get_at, next_message, publish_at, subscribers_at};
use std::time::{Duration, Instant};

use common::cluster::Cluster;
use common::sentinel::Sentinel;
use common::{TestDir, incoming, nodes};
use redis::{AsyncCommands, Value};
use secondme::config::{Config, Overrides};
use secondme::connection::{self, Con};
use secondme::reply::persona_engine::PersonaEngine;
use secondme::schema;
use secondme::store::{self, queue};
use secondme::worker;
use tokio::sync::{mpsc, watch};

/// Longest a failover may take, from the harness's 1 s down-after to a new
/// primary that every sentinel names.
const FAILOVER: Duration = Duration::from_secs(30);

/// The port of the node `con` is on, as that node says (`INFO server`).
async fn port_of(con: &mut Con) -> Option<u16> {
    let info: String = redis::cmd("INFO")
        .arg("server")
        .query_async(con)
        .await
        .ok()?;
    nodes::field(&info, "tcp_port")?.parse().ok()
}

/// Writes through `con` every 20 ms until a write succeeds on a node other than
/// the one on `old`; returns how long that took and how many writes failed.
async fn write_until_moved(con: &mut Con, old: u16) -> (Duration, usize) {
    let start = Instant::now();
    let mut failed = 0;
    loop {
        assert!(
            start.elapsed() < FAILOVER,
            "no write succeeded on a new primary within {FAILOVER:?} ({failed} failed)"
        );
        let written: redis::RedisResult<()> = con.set("after-kill", "written").await;
        match written {
            Ok(()) if port_of(con).await.is_some_and(|p| p != old) => {
                return (start.elapsed(), failed);
            }
            Ok(()) => {}
            Err(_) => failed += 1,
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Writes through `con` every 20 ms until a write succeeds on the node on `port`;
/// returns how long that took and how many writes failed meanwhile.
async fn write_until_on(con: &mut Con, port: u16, key: &str) -> (Duration, usize) {
    let start = Instant::now();
    let mut failed = 0;
    for i in 0usize.. {
        assert!(
            start.elapsed() < FAILOVER,
            "the connection did not reach the node on {port} within {FAILOVER:?} ({failed} writes failed)"
        );
        let value = format!("w{i}");
        let written: redis::RedisResult<()> = con.set(key, &value).await;
        if written.is_err() {
            failed += 1;
        } else if get_at(port, key).await.as_deref() == Some(value.as_str()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    (start.elapsed(), failed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_sentinel_commands_and_pubsub_follow_a_forced_failover() {
    let deployment = Sentinel::start("twin-forced").await;
    let client = connection::open_client(&deployment.url()).expect("client");
    let (tx, mut pushes) = mpsc::unbounded_channel();
    let mut con = connection::manager(&client, Some(tx))
        .await
        .expect("connect through the sentinels");

    let old = deployment.primary_port().await;
    assert_eq!(port_of(&mut con).await, Some(old), "on the primary");
    let _: () = con.set("greeting", "hello").await.expect("SET");
    assert_eq!(get_at(old, "greeting").await.as_deref(), Some("hello"));

    con.subscribe(&["topology-events"])
        .await
        .expect("SUBSCRIBE");
    publish_at(old, "topology-events", "one").await;
    assert_eq!(
        next_message(&mut pushes, "topology-events", Duration::from_secs(5))
            .await
            .as_deref(),
        Some("one")
    );

    let started = Instant::now();
    let sentinel = deployment.sentinel_ports()[0];
    let mut admin = nodes::connect(sentinel).await.expect("a sentinel");
    let _: () = redis::cmd("SENTINEL")
        .arg("FAILOVER")
        .arg(deployment.name())
        .query_async(&mut admin)
        .await
        .expect("SENTINEL FAILOVER");
    let new = nodes::poll(FAILOVER, || async {
        let named = deployment.primary_port().await;
        (named != old).then_some(named)
    })
    .await
    .expect("the sentinels name a new primary");

    // The same connection, not restarted, writes to the new primary.
    let (took, failed) = write_until_on(&mut con, new, "greeting").await;
    eprintln!(
        "forced failover: writes on the new primary {:?} after SENTINEL FAILOVER \
         ({took:?} after the sentinels named it; {failed} writes failed)",
        started.elapsed()
    );
    assert_eq!(port_of(&mut con).await, Some(new));
    // Told by the sentinels' announcement, not by the demoted primary seconds later.
    assert!(
        took < Duration::from_secs(1),
        "{took:?} after the sentinels named it"
    );

    // The subscription moved with it: the new primary counts it, and delivers.
    let moved = nodes::poll(Duration::from_secs(10), || async {
        (subscribers_at(new, "topology-events").await? >= 1).then_some(())
    })
    .await;
    assert!(moved.is_some(), "subscribed again on the new primary");
    publish_at(new, "topology-events", "two").await;
    assert_eq!(
        next_message(&mut pushes, "topology-events", Duration::from_secs(5))
            .await
            .as_deref(),
        Some("two")
    );
}

/// A config for a worker on `url` in `dir`.
fn config(url: &str, dir: &TestDir, namespace: Option<&str>) -> Config {
    let file = dir.join("config.toml");
    std::fs::write(&file, "").expect("config file");
    Config::load(
        Some(&file),
        Overrides {
            redis_url: Some(url.to_owned()),
            consumer: Some("w1".into()),
            review_file: Some(dir.join("review.jsonl")),
            namespace: namespace.map(str::to_owned),
            ..Overrides::default()
        },
    )
    .expect("config")
}

/// Writes `id` from alice as a gateway does and waits until it is answered.
async fn answered(con: &mut Con, id: &str) -> bool {
    let _: String = queue::xadd(&incoming(id, "alice", "are you there?"), false)
        .query_async(con)
        .await
        .expect("xadd");
    common::eventually(Duration::from_secs(20), || {
        let mut con = con.clone();
        async move {
            let replies: Vec<redis::streams::StreamId> = con
                .xrange_all::<_, redis::streams::StreamRangeReply>(schema::queue_responses())
                .await
                .ok()?
                .ids;
            replies
                .iter()
                .any(|r| r.get::<String>("inReplyTo").as_deref() == Some(id))
                .then_some(())
        }
    })
    .await
    .is_some()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_sentinel_a_killed_primary_is_replaced_without_a_restart() {
    let mut deployment = Sentinel::start("twin-killed").await;
    let dir = TestDir::new("sentinel-kill");
    let config = config(&deployment.url(), &dir, None);
    let client = connection::client_for(&config).expect("client");
    let mut con = connection::manager(&client, None).await.expect("connect");
    let _: () = con.set(schema::state_marker(), "1").await.expect("marker");
    store::optin::set_enabled(&mut con, &["alice".to_owned()], true)
        .await
        .expect("enable");

    // A worker whose stream reader (the raw one: plain TCP) reads the primary.
    let (stop_tx, stop_rx) = watch::channel(false);
    let running = tokio::spawn({
        let config = config.clone();
        async move { worker::run_worker(&config, PersonaEngine::default(), stop_rx).await }
    });
    assert!(
        answered(&mut con, "before").await,
        "answered before the kill"
    );
    let node = client
        .stream_node(&mut con, schema::queue_messages())
        .await
        .expect("the primary");
    let reader = connection::blocking_connection(&node, Duration::from_secs(1))
        .await
        .expect("a reader");
    deployment.wait_replicas_synced().await;

    let killed = deployment.kill_primary().await;
    let killed_at = Instant::now();
    // Writes from the moment of the kill: the gap is what a program sees.
    let (gap, failed) = write_until_moved(&mut con, killed).await;
    let new = deployment
        .wait_for_new_primary(FAILOVER)
        .await
        .expect("the sentinels promote a replica");
    eprintln!(
        "SIGKILL of the primary: the same connection wrote on the new primary {gap:?} \
         after the kill ({failed} writes failed meanwhile; the harness saw every \
         sentinel agree {:?} after it)",
        killed_at.elapsed()
    );
    assert_eq!(get_at(new, "after-kill").await.as_deref(), Some("written"));
    assert_eq!(port_of(&mut con).await, Some(new));

    // A reader opened on the old primary refuses to go on; a new one reads the new.
    let mut stale = reader;
    let refused: redis::RedisResult<Value> = redis::cmd("PING").query_async(&mut stale).await;
    assert!(refused.is_err(), "the old primary's reader stops");
    let node = client
        .stream_node(&mut con, schema::queue_messages())
        .await
        .expect("the primary");
    assert!(matches!(node.info().addr(), redis::ConnectionAddr::Tcp(_, p) if *p == new));

    // The worker, never restarted, answers a message written after the failover.
    assert!(answered(&mut con, "after").await, "answered after the kill");
    let _ = stop_tx.send(true);
    let status = running.await.expect("join").expect("the worker ran");
    assert!(status.answered >= 2, "{status:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_cluster_one_namespace_slot_takes_commands_functions_pubsub_and_blocking_reads() {
    let cluster = Cluster::start().await;
    let client = connection::open_client(&cluster.url()).expect("client");
    assert!(client.is_cluster());
    let (tx, mut pushes) = mpsc::unbounded_channel();
    let mut con = connection::manager(&client, Some(tx))
        .await
        .expect("connect to the cluster");

    // Keys of one hash tag share a slot: a transaction over two of them runs.
    let (a, b) = ("{alice}:one", "{alice}:two");
    let (x, y): (i64, i64) = redis::pipe()
        .atomic()
        .incr(a, 1)
        .incr(b, 2)
        .query_async(&mut con)
        .await
        .expect("MULTI/EXEC in one slot");
    assert_eq!((x, y), (1, 2));
    let slot = cluster.key_slot(a).await;
    let owner = cluster.node_for_slot(slot).await;
    assert_eq!(get_at(owner, a).await.as_deref(), Some("1"));

    // FUNCTION LOAD reaches every primary; FCALL runs where the key lives.
    secondme::store::functions::load(&mut con)
        .await
        .expect("FUNCTION LOAD");
    let test_lib = "#!lua name=topology_test\n\
        redis.register_function('topology_double', function(keys, args) \
        return redis.call('INCRBY', keys[1], redis.call('GET', keys[1])) end)";
    let _: String = redis::cmd("FUNCTION")
        .arg("LOAD")
        .arg("REPLACE")
        .arg(test_lib)
        .query_async(&mut con)
        .await
        .expect("FUNCTION LOAD of a test library");
    let library = format!("secondme_{}", secondme::store::functions::library().version);
    for shard in cluster.map().await {
        let mut node = nodes::connect(shard.primary).await.expect("a primary");
        for name in [library.as_str(), "topology_test"] {
            let listed: Vec<Value> = redis::cmd("FUNCTION")
                .arg("LIST")
                .arg("LIBRARYNAME")
                .arg(name)
                .query_async(&mut node)
                .await
                .expect("FUNCTION LIST");
            assert_eq!(listed.len(), 1, "{name} on the primary {}", shard.primary);
        }
    }
    let doubled: i64 = redis::cmd("FCALL")
        .arg("topology_double")
        .arg(1)
        .arg(b)
        .query_async(&mut con)
        .await
        .expect("FCALL");
    assert_eq!(doubled, 4);

    // A message published on any node reaches the subscription.
    con.subscribe(&["{alice}:events"]).await.expect("SUBSCRIBE");
    for (i, port) in cluster.live_ports().into_iter().enumerate() {
        let payload = format!("from-{i}");
        publish_at(port, "{alice}:events", &payload).await;
        assert_eq!(
            next_message(&mut pushes, "{alice}:events", Duration::from_secs(5))
                .await
                .as_deref(),
            Some(payload.as_str()),
            "published on {port}"
        );
    }

    // A blocking read on a connection of its own to the node serving the stream,
    // ended by CLIENT UNBLOCK sent to that node.
    let stream = "{alice}:stream";
    let _: () = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(stream)
        .arg("g")
        .arg("$")
        .arg("MKSTREAM")
        .query_async(&mut con)
        .await
        .expect("XGROUP CREATE");
    let node = client.stream_node(&mut con, stream).await.expect("a node");
    assert!(
        matches!(node.info().addr(), redis::ConnectionAddr::Tcp(_, p) if *p == owner),
        "the reader goes to the primary of the stream's slot"
    );
    let mut reader = connection::blocking_connection(&node, Duration::from_secs(30))
        .await
        .expect("a reader");
    let unblocker = reader.clone();
    let opts = redis::streams::StreamReadOptions::default()
        .group("g", "c")
        .block(30_000);
    let blocked = tokio::spawn(async move {
        let started = Instant::now();
        let read: redis::RedisResult<Option<redis::streams::StreamReadReply>> =
            reader.xread_options(&[stream], &[">"], &opts).await;
        (read, started.elapsed())
    });
    let shared_ok: String = con
        .get(a)
        .await
        .expect("the shared connection is not blocked");
    assert_eq!(shared_ok, "1");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let unblocked = unblocker.unblock().await.expect("CLIENT UNBLOCK");
    assert!(unblocked, "the reader was blocked on the stream's node");
    let (read, waited) = blocked.await.expect("join");
    assert!(read.expect("the read ends").is_none());
    assert!(waited < Duration::from_secs(10), "{waited:?}");

    // A replica takes the slot over; the same connection follows.
    let promoted = cluster.failover_replica_of(slot).await;
    let _: i64 = con.incr(a, 1).await.expect("INCR after the failover");
    assert_eq!(get_at(promoted, a).await.as_deref(), Some("2"));
}

#[test]
fn on_a_cluster_a_command_without_a_namespace_says_one_is_needed() {
    let dir = TestDir::new("cluster-namespace");
    let url = "redis-cluster://u:s3cret-pw@127.0.0.1:7000,127.0.0.1:7001";
    let err = connection::client_for(&config(url, &dir, None)).expect_err("no namespace");
    let text = format!("{err:#}");
    assert!(text.contains("set --namespace"), "{text}");
    assert!(!text.contains("s3cret"), "{text}");
    assert!(connection::topology(&config(url, &dir, None)).is_cluster());
    connection::client_for(&config(url, &dir, Some("alice"))).expect("with a namespace");

    let bad = "redis-sentinel://u:s3cret-pw@127.0.0.1:26379";
    let err = connection::client_for(&config(bad, &dir, None)).expect_err("no primary name");
    let text = format!("{err:#}");
    assert!(text.contains("#primary-name"), "{text}");
    assert!(!text.contains("s3cret"), "{text}");
    assert!(
        text.contains("redis-sentinel://u:***@127.0.0.1:26379"),
        "{text}"
    );
}

#[test]
fn a_ca_file_needs_the_tls_form_of_sentinel_and_cluster_urls() {
    let dir = TestDir::new("topology-ca");
    let ca = dir.join("ca.crt");
    std::fs::write(&ca, "not read: the URL is refused first").expect("ca file");
    for url in [
        "redis-sentinel://127.0.0.1:1#p",
        "redis-cluster://127.0.0.1:1",
    ] {
        let err = connection::open_client_trusting(url, Some(&ca)).expect_err(url);
        assert!(
            format!("{err:#}").contains("not a rediss:// URL"),
            "{err:#}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_cluster_the_eviction_policy_of_every_primary_is_read() {
    let cluster = Cluster::start().await;
    let client = connection::open_client(&cluster.url()).expect("client");
    let mut con = connection::manager(&client, None)
        .await
        .expect("connect to the cluster");
    let check = store::eviction::check(&mut con).await.expect("checked");
    assert_eq!(check.policy.as_deref(), Some("noeviction"), "{check:?}");
    assert!(check.safe && check.warning.is_none());
    // One primary that may evict is enough for the warning.
    let primary = cluster.map().await[0].primary;
    let mut node = nodes::connect(primary).await.expect("node");
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory-policy")
        .arg("allkeys-lru")
        .query_async(&mut node)
        .await
        .expect("CONFIG SET");
    let check = store::eviction::check(&mut con).await.expect("checked");
    assert_eq!(check.policy.as_deref(), Some("allkeys-lru"), "{check:?}");
    assert!(!check.safe);
    assert!(check.warning.is_some_and(|w| w.contains("allkeys-lru")));
}

/// `CLUSTER MYID` of the node at `port`.
async fn node_id(port: u16) -> String {
    let mut node = nodes::connect(port).await.expect("node");
    redis::cmd("CLUSTER")
        .arg("MYID")
        .query_async(&mut node)
        .await
        .expect("CLUSTER MYID")
}

/// `CLUSTER SETSLOT slot <state> <node>` on the node at `port`.
async fn set_slot(port: u16, slot: u16, state: &str, node: &str) {
    let mut con = nodes::connect(port).await.expect("node");
    let _: () = redis::cmd("CLUSTER")
        .arg("SETSLOT")
        .arg(slot)
        .arg(state)
        .arg(node)
        .query_async(&mut con)
        .await
        .expect("CLUSTER SETSLOT");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_that_followed_an_ask_to_another_node_is_not_confirmed_by_the_old_one() {
    use secondme::store::durability::{Confirmer, WAIT_TIMEOUT};
    let cluster = Cluster::start().await;
    let client = connection::open_client(&cluster.url()).expect("client");
    let mut con = connection::manager(&client, None)
        .await
        .expect("connect to the cluster");
    let key = "{ask}:QUEUE:messages";
    let add = |n: u32| {
        let mut xadd = redis::cmd("XADD");
        xadd.arg(key).arg("*").arg("n").arg(n);
        xadd
    };
    let _: String = add(0).query_async(&mut con).await.expect("XADD");
    let slot = cluster.key_slot(key).await;
    let source = cluster.node_for_slot(slot).await;
    let target = cluster
        .map()
        .await
        .into_iter()
        .map(|s| s.primary)
        .find(|p| *p != source)
        .expect("another primary");
    let confirmer = Confirmer::default();
    let mark = confirmer.begin(&mut con, key, 1).await;
    confirmer
        .confirm(&mark, &mut con, key, 1, WAIT_TIMEOUT)
        .await
        .expect("confirmed where the key is");

    // The slot migrates: the key moves to the target, the slot still the source's.
    let mark = confirmer.begin(&mut con, key, 1).await;
    let (source_id, target_id) = (node_id(source).await, node_id(target).await);
    set_slot(target, slot, "IMPORTING", &source_id).await;
    set_slot(source, slot, "MIGRATING", &target_id).await;
    let mut at_source = nodes::connect(source).await.expect("node");
    let _: String = redis::cmd("MIGRATE")
        .arg("127.0.0.1")
        .arg(target)
        .arg(key)
        .arg(0)
        .arg(5000)
        .query_async(&mut at_source)
        .await
        .expect("MIGRATE");
    // The source answers ASK: the write lands on the target.
    let _: String = add(1).query_async(&mut con).await.expect("XADD after ASK");
    let left: redis::RedisResult<i64> = redis::cmd("EXISTS")
        .arg(key)
        .query_async(&mut at_source)
        .await;
    assert!(
        left.as_ref().is_err_and(|e| e.to_string().contains("Ask")),
        "the key is on the target now: {left:?}"
    );
    let refused = confirmer
        .confirm(&mark, &mut con, key, 1, WAIT_TIMEOUT)
        .await;
    assert!(
        refused.is_err(),
        "a WAIT on the source says nothing of a write on the target: {refused:?}"
    );
}
