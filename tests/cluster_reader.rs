//! The worker's stream reader on a connection of its own to one node: on a
//! Cluster, one connection per namespace to the primary of its slot (not one to
//! every node), found again after `CLUSTER FAILOVER`, for the pool's blocking
//! readers and a single worker's read-ahead alike; and its `CLIENT UNBLOCK` at
//! the stop sent only to the server the read is blocked on: never to the new
//! primary after a Sentinel failover, nor to a server restarted at its address,
//! where the same client id is another program's connection.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::cluster::Cluster;
use common::sentinel::{Sentinel, role};
use common::{TestDir, eventually, incoming, nodes, streams};
use redis::aio::MultiplexedConnection;
use redis::{AsyncCommands, AsyncConnectionConfig};
use secondme::config::{Config, Overrides};
use secondme::connection::{self, Con};
use secondme::reply::persona_engine::PersonaEngine;
use secondme::schema;
use secondme::store::{self, namespaces, queue};
use secondme::worker::pool::{Pool, pool_worker_config};
use secondme::worker::{Worker, WorkerConfig, WorkerStatus};
use tokio::sync::watch;

const SECOND: Duration = Duration::from_secs(1);
/// Namespaces of the pool on the Cluster.
const NAMESPACES: usize = 12;
/// How long a message may take to be answered, a failover included.
const ANSWER: Duration = Duration::from_secs(30);

/// Runs `fut` with every name it builds in namespace `ns`.
async fn within<F: std::future::Future>(ns: &str, fut: F) -> F::Output {
    schema::in_namespace(Some(ns), fut).await
}

fn config(url: &str, dir: &Path, consumer: &str) -> Config {
    let file = dir.join("config.toml");
    std::fs::write(&file, "").expect("config file");
    Config::load(
        Some(&file),
        Overrides {
            redis_url: Some(url.to_owned()),
            consumer: Some(consumer.to_owned()),
            claim_idle: Some("1s".to_owned()),
            review_file: Some(dir.join(format!("review-{consumer}.jsonl"))),
            ..Overrides::default()
        },
    )
    .expect("config")
}

/// The normal clients of the node on `port` (`CLIENT LIST TYPE normal`), one
/// line each, without the connection asking.
async fn clients_of(port: u16) -> Vec<String> {
    let Ok(mut con) = nodes::connect(port).await else {
        return Vec::new();
    };
    let text: String = redis::cmd("CLIENT")
        .arg("LIST")
        .arg("TYPE")
        .arg("normal")
        .query_async(&mut con)
        .await
        .unwrap_or_default();
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.contains("cmd=client|list"))
        .map(str::to_owned)
        .collect()
}

/// Per live node: how many normal clients, and how many of them are stream
/// readers (named so by the program).
async fn census(cluster: &Cluster) -> BTreeMap<u16, (usize, usize)> {
    let mut per = BTreeMap::new();
    for port in cluster.live_ports() {
        let lines = clients_of(port).await;
        let readers = lines
            .iter()
            .filter(|l| l.contains(&format!("name={}", connection::READER_NAME_PREFIX)))
            .count();
        per.insert(port, (lines.len(), readers));
    }
    per
}

/// How many namespaces of `names` each primary serves (by their queue's slot),
/// as the cluster's slot map says now.
async fn readers_expected(cluster: &Cluster, names: &[String]) -> BTreeMap<u16, usize> {
    let mut expected: BTreeMap<u16, usize> =
        cluster.live_ports().into_iter().map(|p| (p, 0)).collect();
    for ns in names {
        let key = within(ns, async { schema::queue_messages().to_owned() }).await;
        let slot = cluster.key_slot(&key).await;
        *expected
            .entry(cluster.node_for_slot(slot).await)
            .or_default() += 1;
    }
    expected
}

/// Enables contact `alice` in every namespace of `names` and registers them.
async fn prepare(con: &mut Con, names: &[String]) {
    for ns in names {
        within(ns, async {
            let _: () = con.set(schema::state_marker(), "1").await.expect("marker");
            store::optin::set_enabled(con, &["alice".to_owned()], true)
                .await
                .expect("enable");
        })
        .await;
        namespaces::add(con, ns).await.expect("register");
    }
}

/// Writes message `id` in namespace `ns` as a gateway does.
async fn send(con: &mut Con, ns: &str, id: &str) {
    let _: String = within(ns, async {
        queue::xadd(&incoming(id, "alice", "are you there?"), false)
            .query_async(con)
            .await
    })
    .await
    .expect("xadd");
}

/// Whether every namespace answered message `id` (sent to each) exactly once.
async fn all_answered_once(con: &Con, names: &[String], id: &str) -> bool {
    eventually(ANSWER, || {
        let mut con = con.clone();
        async move {
            for ns in names {
                let per = within(ns, streams::replies_per_message(&mut con)).await;
                if per.get(id) != Some(&1) {
                    return None;
                }
            }
            Some(())
        }
    })
    .await
    .is_some()
}

/// A pool's readers: `readers` per node is `expected`, and their total settled.
async fn wait_readers(cluster: &Cluster, expected: &BTreeMap<u16, usize>) -> bool {
    eventually(20 * SECOND, || async {
        let seen: BTreeMap<u16, usize> = census(cluster)
            .await
            .into_iter()
            .map(|(port, (_, readers))| (port, readers))
            .collect();
        (seen == *expected).then_some(())
    })
    .await
    .is_some()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pools_readers_take_one_connection_each_on_their_slots_primary_and_follow_a_failover() {
    let cluster = Cluster::start().await;
    let url = cluster.url();
    let client = connection::open_client(&url).expect("client");
    let mut con = connection::manager(&client, None).await.expect("connect");
    let names: Vec<String> = (0..NAMESPACES).map(|i| format!("r{i}")).collect();
    prepare(&mut con, &names).await;
    let expected = readers_expected(&cluster, &names).await;
    let nodes_count = cluster.live_ports().len();
    let before: usize = census(&cluster).await.values().map(|(all, _)| all).sum();

    let dir = TestDir::new("cluster-reader");
    let config = config(&url, &dir, "pool-a");
    let pool_client = connection::open_client(&url).expect("client");
    let pool_con = connection::manager(&pool_client, None)
        .await
        .expect("connect");
    let pool = Pool::new(
        pool_client,
        pool_con,
        pool_worker_config(&config),
        |_, _| Ok(PersonaEngine::default()),
    );
    let mut serving = pool.serving();
    let (stop, stop_rx) = watch::channel(false);
    let task = tokio::spawn(pool.run(stop_rx));
    let every: BTreeSet<String> = names.iter().cloned().collect();
    tokio::time::timeout(10 * SECOND, serving.wait_for(|s| *s == every))
        .await
        .expect("the pool serves every namespace")
        .expect("serving");

    // One reader per namespace, each on the primary serving its slot.
    assert!(
        wait_readers(&cluster, &expected).await,
        "readers per node {:?}, expected {expected:?}",
        census(&cluster).await
    );
    let after: usize = census(&cluster).await.values().map(|(all, _)| all).sum();
    let added = after - before;
    // The pool's shared cluster connection (up to two per node: redis-rs keeps
    // one for commands and may keep one for its topology checks) and a reader
    // per namespace; a cluster connection per reader would be N x nodes.
    let bound = NAMESPACES + 2 * nodes_count;
    eprintln!(
        "a pool of {NAMESPACES} namespaces on {nodes_count} nodes opened {added} connections \
         (bound {bound}; a cluster connection per reader would open at least {})",
        NAMESPACES * nodes_count
    );
    assert!(
        (NAMESPACES..=bound).contains(&added),
        "{added} connections for {NAMESPACES} namespaces"
    );
    for ns in &names {
        send(&mut con, ns, "before").await;
    }
    assert!(
        all_answered_once(&con, &names, "before").await,
        "answered before the failover"
    );

    // The replica of the first namespace's primary takes its slots over.
    let first = within(&names[0], async { schema::queue_messages().to_owned() }).await;
    let slot = cluster.key_slot(&first).await;
    let demoted = cluster.node_for_slot(slot).await;
    let promoted = cluster.failover_replica_of(slot).await;
    for ns in &names {
        send(&mut con, ns, "after").await;
    }
    assert!(
        all_answered_once(&con, &names, "after").await,
        "answered after the failover"
    );
    let expected = readers_expected(&cluster, &names).await;
    assert_eq!(expected.get(&demoted), Some(&0), "{expected:?}");
    assert!(
        expected.get(&promoted).is_some_and(|n| *n > 0),
        "{expected:?}"
    );
    assert!(
        wait_readers(&cluster, &expected).await,
        "after the failover, readers per node {:?}, expected {expected:?}",
        census(&cluster).await
    );

    let _ = stop.send(true);
    let totals = tokio::time::timeout(20 * SECOND, task)
        .await
        .expect("the pool stops in time")
        .expect("join");
    assert_eq!(totals.len(), NAMESPACES);
}

/// Ports of the live nodes where a client's last command was `XREADGROUP`.
async fn xreadgroup_clients(cluster: &Cluster) -> BTreeMap<u16, usize> {
    let mut per = BTreeMap::new();
    for port in cluster.live_ports() {
        let n = clients_of(port)
            .await
            .iter()
            .filter(|l| l.contains("cmd=xreadgroup"))
            .count();
        if n > 0 {
            per.insert(port, n);
        }
    }
    per
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workers_read_ahead_reads_its_slots_primary_and_follows_a_failover() {
    let cluster = Cluster::start().await;
    let url = cluster.url();
    let client = connection::open_client(&url).expect("client");
    let mut con = connection::manager(&client, None).await.expect("connect");
    let ns = "solo".to_owned();
    prepare(&mut con, std::slice::from_ref(&ns)).await;
    let key = within(&ns, async { schema::queue_messages().to_owned() }).await;
    let slot = cluster.key_slot(&key).await;
    let primary = cluster.node_for_slot(slot).await;

    let dir = TestDir::new("cluster-read-ahead");
    let cfg = WorkerConfig::from_config(&config(&url, &dir, "solo-w"));
    assert!(cfg.read_ahead_bytes > 0, "the worker reads ahead");
    let (stop, stop_rx) = watch::channel(false);
    let worker_client = client.clone();
    let task = tokio::spawn(async move {
        within(&ns, async move {
            let worker = Worker::connect(worker_client, PersonaEngine::default(), cfg).await?;
            worker.run(stop_rx).await
        })
        .await
    });
    let names = ["solo".to_owned()];
    send(&mut con, "solo", "before").await;
    assert!(all_answered_once(&con, &names, "before").await);
    let on_primary = eventually(10 * SECOND, || async {
        let per = xreadgroup_clients(&cluster).await;
        (per.keys().copied().collect::<Vec<_>>() == [primary]).then_some(())
    })
    .await;
    assert!(
        on_primary.is_some(),
        "the reader reads on {primary} only: {:?}",
        xreadgroup_clients(&cluster).await
    );

    let promoted = cluster.failover_replica_of(slot).await;
    send(&mut con, "solo", "after").await;
    assert!(
        all_answered_once(&con, &names, "after").await,
        "answered after the failover"
    );
    let moved = eventually(10 * SECOND, || async {
        let per = xreadgroup_clients(&cluster).await;
        (per.keys().copied().collect::<Vec<_>>() == [promoted]).then_some(())
    })
    .await;
    assert!(
        moved.is_some(),
        "the reader moved to {promoted}: {:?}",
        xreadgroup_clients(&cluster).await
    );

    let _ = stop.send(true);
    let status: WorkerStatus = tokio::time::timeout(20 * SECOND, task)
        .await
        .expect("the worker stops in time")
        .expect("join")
        .expect("the worker ran");
    assert!(status.answered >= 2, "{status:?}");
}

/// The client id of the connection on `port` blocked in `XREADGROUP`.
async fn blocked_reader_id(port: u16) -> Option<i64> {
    clients_of(port)
        .await
        .iter()
        .find(|l| l.contains("cmd=xreadgroup") && l.contains("flags=b"))
        .and_then(|l| field(l, "id")?.parse().ok())
}

/// The value of `name` in one `CLIENT LIST` line.
fn field<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    line.split(' ')
        .find_map(|f| f.strip_prefix(name)?.strip_prefix('='))
}

/// A connection to the server on `port` whose replies may take a minute (a
/// `BLPOP` that stays blocked).
async fn patient(port: u16) -> MultiplexedConnection {
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(SECOND))
        .set_response_timeout(Some(60 * SECOND));
    redis::Client::open(nodes::url(port))
        .expect("client")
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .expect("connect")
}

/// Opens and closes `n` connections on `port`, so its next client ids are higher.
async fn spend_ids(port: u16, n: usize) {
    for _ in 0..n {
        let _ = nodes::connect(port).await.expect("connect");
    }
}

/// A client on `port` with client id `id`, blocked in `BLPOP key 0`: connections
/// are opened until one gets that id (ids rise by one per connection). Its
/// `BLPOP`'s reply, once something ends it.
async fn plant_blocked(port: u16, id: i64, key: &str) -> tokio::task::JoinHandle<Option<String>> {
    let mut kept = None;
    for _ in 0..10_000 {
        let mut con = patient(port).await;
        let got: i64 = redis::cmd("CLIENT")
            .arg("ID")
            .query_async(&mut con)
            .await
            .expect("CLIENT ID");
        assert!(
            got <= id,
            "id {id} was taken on {port} before the test could take it: inconclusive"
        );
        if got == id {
            kept = Some(con);
            break;
        }
    }
    let mut con = kept.expect("a connection with the reader's id");
    let key = key.to_owned();
    let task = tokio::spawn(async move {
        let popped: Option<(String, String)> = con.blpop(&key, 0.0).await.expect("BLPOP");
        popped.map(|(_, v)| v)
    });
    let blocked = eventually(5 * SECOND, || async {
        clients_of(port)
            .await
            .iter()
            .any(|l| field(l, "id") == Some(&id.to_string()) && l.contains("flags=b"))
            .then_some(())
    })
    .await;
    assert!(blocked.is_some(), "client {id} blocked on {port}");
    task
}

/// The primary the sentinels of `deployment` all name, once it is not `old`
/// and says it is a primary.
async fn new_primary(deployment: &Sentinel, old: u16) -> Option<u16> {
    eventually(30 * SECOND, || async {
        let mut named = BTreeSet::new();
        for port in deployment.sentinel_ports() {
            let mut con = nodes::connect(port).await.ok()?;
            let (_, primary): (String, u16) = redis::cmd("SENTINEL")
                .arg("GET-MASTER-ADDR-BY-NAME")
                .arg(deployment.name())
                .query_async(&mut con)
                .await
                .ok()?;
            named.insert(primary);
        }
        let first = *named.first()?;
        (named.len() == 1 && first != old && role(first).await.as_deref() == Some("master"))
            .then_some(first)
    })
    .await
}

/// Stops (`SIGSTOP`) the server on `port`: its connections stay open, unanswered.
async fn freeze(port: u16) {
    let info = nodes::info(port, "server").await.expect("INFO server");
    let pid = nodes::field(&info, "process_id").expect("process_id");
    let status = Command::new("kill")
        .args(["-STOP", pid])
        .status()
        .expect("kill -STOP");
    assert!(status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_sentinel_failover_the_stop_never_unblocks_the_readers_id_on_the_new_primary() {
    let deployment = Sentinel::start("unblock-moved").await;
    let url = deployment.url();
    let client = connection::open_client(&url).expect("client");
    let mut con = connection::manager(&client, None).await.expect("connect");
    let _: () = con.set(schema::state_marker(), "1").await.expect("marker");
    store::optin::set_enabled(&mut con, &["alice".to_owned()], true)
        .await
        .expect("enable");
    let old = deployment.primary_port().await;
    // The reader's id on the old primary is then above any the new one has given.
    spend_ids(old, 400).await;

    // A worker reading one batch at a time, each read blocked up to 30 s.
    let dir = TestDir::new("unblock-moved");
    let cfg = WorkerConfig {
        read_ahead_bytes: 0,
        block: 30 * SECOND,
        ..WorkerConfig::from_config(&config(&url, &dir, "w1"))
    };
    let worker = Worker::connect(client.clone(), PersonaEngine::default(), cfg)
        .await
        .expect("worker connects");
    let (stop, stop_rx) = watch::channel(false);
    let task = tokio::spawn(worker.run(stop_rx));
    let _: String = queue::xadd(&incoming("m1", "alice", "hi"), false)
        .query_async(&mut con)
        .await
        .expect("xadd");
    let answered =
        eventually(ANSWER, || {
            let mut con = con.clone();
            async move {
                (streams::replies_per_message(&mut con).await.get("m1") == Some(&1)).then_some(())
            }
        })
        .await;
    assert!(answered.is_some(), "answered before the failover");
    let reader_id = eventually(10 * SECOND, || blocked_reader_id(old))
        .await
        .expect("the worker's read blocked on the primary");
    deployment.wait_replicas_synced().await;

    // The primary stops answering (its connections stay open, the read blocked
    // in it); the sentinels promote a replica and every connection follows.
    freeze(old).await;
    let new = new_primary(&deployment, old)
        .await
        .expect("the sentinels promote a replica");
    let followed = eventually(20 * SECOND, || {
        let mut con = con.clone();
        async move {
            let info: String = redis::cmd("INFO")
                .arg("server")
                .query_async(&mut con)
                .await
                .ok()?;
            (nodes::field(&info, "tcp_port") == Some(&new.to_string())).then_some(())
        }
    })
    .await;
    assert!(followed.is_some(), "the shared connection moved to {new}");

    // Another program's connection on the new primary holds the reader's id.
    let planted = plant_blocked(new, reader_id, "someone-elses-list").await;
    let _ = stop.send(true);
    tokio::time::timeout(20 * SECOND, task)
        .await
        .expect("the worker stops in time")
        .expect("join")
        .expect("the worker ran");
    tokio::time::sleep(SECOND / 2).await;
    assert!(
        !planted.is_finished(),
        "the stop unblocked client {reader_id} on the new primary {new}"
    );
    let mut other = nodes::connect(new).await.expect("connect");
    let _: i64 = other
        .rpush("someone-elses-list", "still waiting")
        .await
        .expect("RPUSH");
    let popped = tokio::time::timeout(5 * SECOND, planted)
        .await
        .expect("the BLPOP ends")
        .expect("join");
    assert_eq!(popped.as_deref(), Some("still waiting"));
}

/// A `redis-server` on a port the test chooses, killed on drop.
struct Server(Child);

impl Server {
    /// Starts one on `port` (its files in `dir`) and waits until it answers as itself.
    async fn start(port: u16, dir: &Path) -> Self {
        std::fs::create_dir_all(dir).expect("server dir");
        let child = Command::new(nodes::server_binary())
            .args(nodes::server_args(port, dir))
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server");
        let pid = child.id().to_string();
        let server = Self(child);
        let ready = eventually(10 * SECOND, || async {
            let info = nodes::info(port, "server").await?;
            (nodes::field(&info, "process_id") == Some(pid.as_str())).then_some(())
        })
        .await;
        assert!(ready.is_some(), "redis-server on {port} did not start");
        server
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unblock_ends_the_readers_own_read_and_spares_a_server_restarted_at_its_address() {
    let port = nodes::free_port(false);
    let dir = TestDir::new("unblock-restart");
    let first = Server::start(port, &dir.join("first")).await;
    spend_ids(port, 50).await;
    let client = connection::open_client(&nodes::url(port)).expect("client");
    let mut con = connection::manager(&client, None).await.expect("connect");
    let stream = schema::queue_messages();
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
    let reader = connection::blocking_connection(&node, 30 * SECOND)
        .await
        .expect("a reader");
    let id = reader.client_id();

    // Its own read, blocked on its own server, ends at once.
    let blocked = {
        let mut reader = reader.clone();
        let opts = redis::streams::StreamReadOptions::default()
            .group("g", "c")
            .block(30_000);
        tokio::spawn(async move {
            let read: redis::RedisResult<Option<redis::streams::StreamReadReply>> =
                reader.xread_options(&[stream], &[">"], &opts).await;
            read
        })
    };
    let waiting = eventually(5 * SECOND, || blocked_reader_id(port)).await;
    assert_eq!(waiting, Some(id), "the reader's read blocks under its id");
    assert!(
        reader.unblock().await.expect("CLIENT UNBLOCK"),
        "it was blocked"
    );
    let read = tokio::time::timeout(5 * SECOND, blocked)
        .await
        .expect("the read ends")
        .expect("join");
    assert!(read.expect("an empty read").is_none());
    assert!(
        !reader.unblock().await.expect("CLIENT UNBLOCK"),
        "nothing is blocked any more"
    );

    // The server restarts at the same address; another program's connection
    // there gets the reader's id and blocks.
    drop(first);
    let _second = Server::start(port, &dir.join("second")).await;
    let planted = plant_blocked(port, id, "someone-elses-list").await;
    assert!(
        !reader.unblock().await.expect("asked the restarted server"),
        "not the reader's connection: nothing unblocked"
    );
    tokio::time::sleep(SECOND / 2).await;
    assert!(
        !planted.is_finished(),
        "client {id} of the restarted server was unblocked"
    );
    let mut other = nodes::connect(port).await.expect("connect");
    let _: i64 = other
        .rpush("someone-elses-list", "still waiting")
        .await
        .expect("RPUSH");
    let popped = tokio::time::timeout(5 * SECOND, planted)
        .await
        .expect("the BLPOP ends")
        .expect("join");
    assert_eq!(popped.as_deref(), Some("still waiting"));
}
