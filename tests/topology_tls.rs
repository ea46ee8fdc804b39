//! `rediss-sentinel://` and `rediss-cluster://` end to end, on deployments that
//! speak TLS only (tests/common/{sentinel,cluster}.rs over the TLS server and the
//! private CA of tests/common/tls.rs; replication, the cluster bus and the
//! sentinels' links over TLS too), with `tls_ca_file` naming that CA: a worker
//! through the sentinels answers, and after `SENTINEL FAILOVER` its commands,
//! its stream reader and a subscription find the new primary over TLS; a
//! `secondme worker --namespace` on the Cluster answers across a replica's
//! promotion; and a CA that did not sign the nodes is refused, the error naming
//! the certificate and never the URL's password.

mod common;

use common::node_pubsub::{get_at, next_message, publish_at, subscribers_at};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::cluster::Cluster;
use common::nodes;
use common::sentinel::Sentinel;
use common::{TestDir, eventually, incoming, tls};
use redis::{AsyncCommands, Value};
use secondme::config::{Config, Overrides};
use secondme::connection::{self, Con};
use secondme::reply::persona_engine::PersonaEngine;
use secondme::schema;
use secondme::store::{self, queue};
use secondme::worker;
use tokio::sync::{mpsc, watch};

/// Longest a failover may take, from the command to a new primary named.
const FAILOVER: Duration = Duration::from_secs(30);
/// A password written into URLs, which no error or log may show.
const PASSWORD: &str = "tls-s3cret-pw";

/// A worker's config: `url`, the CA file `ca`, a test-speed claim time.
fn config(url: &str, ca: &Path, dir: &TestDir, namespace: Option<&str>) -> Config {
    let file = dir.join("config.toml");
    std::fs::write(&file, "").expect("config file");
    Config::load(
        Some(&file),
        Overrides {
            redis_url: Some(url.to_owned()),
            tls_ca_file: Some(ca.to_path_buf()),
            consumer: Some("w1".into()),
            claim_idle: Some("1s".into()),
            review_file: Some(dir.join("review.jsonl")),
            namespace: namespace.map(str::to_owned),
            ..Overrides::default()
        },
    )
    .expect("config")
}

/// The TLS port of the node `con` is on, as that node says (its plain port is 0).
async fn tls_port_of(con: &mut Con) -> Option<u16> {
    let (_, port): (String, String) = redis::cmd("CONFIG")
        .arg("GET")
        .arg("tls-port")
        .query_async(con)
        .await
        .ok()?;
    port.parse().ok()
}

/// Writes through `con` every 20 ms until a write lands on the node on `port`;
/// returns how long that took.
async fn write_until_on(con: &mut Con, port: u16, key: &str) -> Duration {
    let start = Instant::now();
    for i in 0usize.. {
        assert!(
            start.elapsed() < FAILOVER,
            "the connection did not reach the node on {port} within {FAILOVER:?}"
        );
        let value = format!("w{i}");
        let written: redis::RedisResult<()> = con.set(key, &value).await;
        if written.is_ok() && get_at(port, key).await.as_deref() == Some(value.as_str()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    start.elapsed()
}

/// The state marker set and alice enabled, in the namespace in effect.
async fn allow_alice(con: &mut Con) {
    let _: () = con.set(schema::state_marker(), "1").await.expect("marker");
    store::optin::set_enabled(con, &["alice".to_owned()], true)
        .await
        .expect("enable");
}

/// Writes `id` from alice as a gateway does (in the namespace in effect) and
/// waits until a reply to it is in `QUEUE:responses`.
async fn answered(con: &mut Con, id: &str) -> bool {
    let _: String = queue::xadd(&incoming(id, "alice", "are you there?"), false)
        .query_async(con)
        .await
        .expect("xadd");
    let responses = schema::queue_responses();
    eventually(Duration::from_secs(20), || {
        let mut con = con.clone();
        async move {
            let replies: redis::streams::StreamRangeReply = con.xrange_all(responses).await.ok()?;
            replies
                .ids
                .iter()
                .any(|r| {
                    r.get::<String>(schema::response_fields::IN_REPLY_TO)
                        .as_deref()
                        == Some(id)
                })
                .then_some(())
        }
    })
    .await
    .is_some()
}

/// The port of a stream reader's node, which must be a TLS address.
fn tls_node_port(node: &connection::StreamNode) -> u16 {
    match node.info().addr() {
        redis::ConnectionAddr::TcpTls { port, .. } => *port,
        other => panic!("the stream reader goes to a TLS address, not {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_tls_sentinels_a_worker_its_reader_and_pubsub_follow_a_failover() {
    let dir = TestDir::new("sentinel-tls");
    let tls = tls::deployment(&dir);
    let topo = Sentinel::start_tls("twin-tls", &tls).await;
    assert!(
        topo.url().starts_with("rediss-sentinel://"),
        "{}",
        topo.url()
    );
    let config = config(&topo.url(), &tls.ca, &dir, None);
    let client = connection::client_for(&config).expect("client");
    let (tx, mut pushes) = mpsc::unbounded_channel();
    let mut con = connection::manager(&client, Some(tx))
        .await
        .expect("connect through the TLS sentinels");
    let old = topo.primary_port().await;
    assert_eq!(tls_port_of(&mut con).await, Some(old), "on the primary");
    allow_alice(&mut con).await;

    let (stop_tx, stop_rx) = watch::channel(false);
    let running = tokio::spawn({
        let config = config.clone();
        async move { worker::run_worker(&config, PersonaEngine::default(), stop_rx).await }
    });
    assert!(answered(&mut con, "before").await, "answered over TLS");

    con.subscribe(&["tls-events"]).await.expect("SUBSCRIBE");
    publish_at(old, "tls-events", "one").await;
    assert_eq!(
        next_message(&mut pushes, "tls-events", Duration::from_secs(5))
            .await
            .as_deref(),
        Some("one")
    );
    let node = client
        .stream_node(&mut con, schema::queue_messages())
        .await
        .expect("the primary");
    assert_eq!(tls_node_port(&node), old);
    let mut reader = connection::blocking_connection(&node, Duration::from_secs(1))
        .await
        .expect("a reader over TLS");
    let pong: String = redis::cmd("PING")
        .query_async(&mut reader)
        .await
        .expect("PING");
    assert_eq!(pong, "PONG");
    topo.wait_replicas_synced().await;

    let mut admin = nodes::connect(topo.sentinel_ports()[0])
        .await
        .expect("a sentinel over TLS");
    let _: () = redis::cmd("SENTINEL")
        .arg("FAILOVER")
        .arg(topo.name())
        .query_async(&mut admin)
        .await
        .expect("SENTINEL FAILOVER");
    let new = nodes::poll(FAILOVER, || async {
        let named = topo.primary_port().await;
        (named != old).then_some(named)
    })
    .await
    .expect("the sentinels name a new primary");

    // The same connection, not restarted, writes to the new primary over TLS.
    let took = write_until_on(&mut con, new, "greeting").await;
    eprintln!("over TLS, writes reached the new primary {took:?} after it was named");
    assert_eq!(tls_port_of(&mut con).await, Some(new));
    // Told by the sentinels' announcement (a subscription to them over TLS), not
    // by the demoted primary seconds later.
    assert!(
        took < Duration::from_secs(1),
        "{took:?} after the sentinels named it"
    );

    // A reader opened on the old primary refuses to go on; a new one reads the new.
    let refused: redis::RedisResult<Value> = redis::cmd("PING").query_async(&mut reader).await;
    assert!(refused.is_err(), "the old primary's reader stops");
    let node = client
        .stream_node(&mut con, schema::queue_messages())
        .await
        .expect("the primary");
    assert_eq!(tls_node_port(&node), new);

    // The worker, never restarted, answers a message written after the failover.
    assert!(
        answered(&mut con, "after").await,
        "answered after the failover"
    );

    // The subscription moved with the connection.
    let moved = nodes::poll(Duration::from_secs(10), || async {
        (subscribers_at(new, "tls-events").await? >= 1).then_some(())
    })
    .await;
    assert!(moved.is_some(), "subscribed again on the new primary");
    publish_at(new, "tls-events", "two").await;
    assert_eq!(
        next_message(&mut pushes, "tls-events", Duration::from_secs(5))
            .await
            .as_deref(),
        Some("two")
    );

    let _ = stop_tx.send(true);
    let status = running.await.expect("join").expect("the worker ran");
    assert!(status.answered >= 2, "{status:?}");
}

/// `secondme ARGS` with private config and state directories under `dir`, its
/// standard error to `log`.
fn secondme(dir: &Path, args: &[&str], log: Stdio) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_secondme"));
    command
        .args(args)
        .env("XDG_CONFIG_HOME", dir.join("config"))
        .env("XDG_STATE_HOME", dir.join("state"))
        .env("NO_COLOR", "1")
        .env_remove("SECONDME_CONFIG")
        .env_remove("SECONDME_NAMESPACE")
        .env_remove("SECONDME_REDIS_URL")
        .env_remove("SECONDME_TLS_CA_FILE")
        .env_remove("SECONDME_LLM_URL")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log);
    command
}

/// The worker's arguments: `url`, the CA file `ca`, and `namespace` if any.
fn worker_args<'a>(url: &'a str, ca: &'a Path, namespace: Option<&'a str>) -> Vec<&'a str> {
    let ca = ca.to_str().expect("a UTF-8 path");
    let mut args = vec!["--redis-url", url, "--tls-ca-file", ca];
    if let Some(ns) = namespace {
        args.extend(["--namespace", ns]);
    }
    args.extend(["--consumer", "w1", "--claim-idle", "1s", "worker"]);
    args
}

/// Stops the worker with SIGTERM; its log, once it exited cleanly.
async fn stop_worker(mut child: Child, log: &Path) -> String {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let exited = eventually(Duration::from_secs(15), || {
        let status = child.try_wait().ok().flatten();
        async move { status }
    })
    .await;
    let text = std::fs::read_to_string(log).unwrap_or_default();
    assert!(
        exited.is_some_and(|s| s.success()),
        "the worker stops cleanly:\n{text}"
    );
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_tls_cluster_a_namespaced_worker_answers_across_a_promotion() {
    let dir = TestDir::new("cluster-tls");
    let tls = tls::deployment(&dir);
    let cluster = Cluster::start_tls(&tls).await;
    let url = cluster.url();
    assert!(url.starts_with("rediss-cluster://"), "{url}");
    let config = config(&url, &tls.ca, &dir, Some("alice"));
    let client = connection::client_for(&config).expect("client");
    let (tx, mut pushes) = mpsc::unbounded_channel();
    let mut con = connection::manager(&client, Some(tx))
        .await
        .expect("connect to the TLS cluster");

    let log = dir.join("worker.log");
    let worker = secondme(
        &dir,
        &worker_args(&url, &tls.ca, Some("alice")),
        Stdio::from(std::fs::File::create(&log).expect("log")),
    )
    .spawn()
    .expect("start secondme worker");
    let (stream, channel) = schema::in_namespace(Some("alice"), async {
        allow_alice(&mut con).await;
        assert!(answered(&mut con, "before").await, "answered over TLS");
        (schema::queue_messages(), schema::channel_messages())
    })
    .await;

    // A replica takes the namespace's slot over; the worker, not restarted, follows.
    let slot = cluster.key_slot(stream).await;
    let old = cluster.node_for_slot(slot).await;
    let promoted = cluster.failover_replica_of(slot).await;
    assert_ne!(promoted, old);
    schema::in_namespace(Some("alice"), async {
        assert!(
            answered(&mut con, "after").await,
            "answered after the promotion"
        );
    })
    .await;
    let on_promoted: usize = {
        let mut node = nodes::connect(promoted).await.expect("the new primary");
        node.xlen(schema::in_namespace(Some("alice"), async { schema::queue_responses() }).await)
            .await
            .expect("XLEN")
    };
    assert_eq!(on_promoted, 2, "both replies on the slot's new primary");
    // A stream reader goes to the slot's new primary, over TLS with the same CA.
    let node = client
        .stream_node(&mut con, stream)
        .await
        .expect("the slot's primary");
    assert_eq!(tls_node_port(&node), promoted);
    let mut reader = connection::blocking_connection(&node, Duration::from_secs(1))
        .await
        .expect("a reader over TLS");
    let pong: String = redis::cmd("PING")
        .query_async(&mut reader)
        .await
        .expect("PING");
    assert_eq!(pong, "PONG");

    // Pub/sub over TLS: a message published on any node reaches the subscription.
    con.subscribe(&[channel]).await.expect("SUBSCRIBE");
    for (i, port) in cluster.live_ports().into_iter().enumerate() {
        let payload = format!("from-{i}");
        publish_at(port, channel, &payload).await;
        assert_eq!(
            next_message(&mut pushes, channel, Duration::from_secs(5))
                .await
                .as_deref(),
            Some(payload.as_str()),
            "published on {port}"
        );
    }

    let text = stop_worker(worker, &log).await;
    assert!(text.contains("2 answered"), "{text}");
}

/// `url` with `twin:PASSWORD@` before its hosts.
fn with_password(url: &str) -> String {
    url.replacen("://", &format!("://twin:{PASSWORD}@"), 1)
}

/// Connecting with `config` (a CA that did not sign the nodes) fails; the
/// error, which never shows the password.
async fn refused_by_the_library(config: &Config) -> String {
    let client = connection::client_for(config).expect("client");
    let err = connection::manager(&client, None)
        .await
        .expect_err("a certificate from another CA is refused");
    let text = format!("{err:#}");
    assert!(!text.contains(PASSWORD), "{text}");
    text
}

/// `secondme worker` on `url` with the CA `ca` exits with an error; its standard error.
fn refused_by_the_worker(dir: &Path, url: &str, ca: &Path, namespace: Option<&str>) -> String {
    let out: Output = secondme(dir, &worker_args(url, ca, namespace), Stdio::piped())
        .output()
        .expect("run secondme worker");
    assert!(!out.status.success(), "the worker started with a wrong CA");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ca_that_did_not_sign_the_nodes_is_refused_naming_the_certificate_not_the_password() {
    let dir = TestDir::new("wrong-ca");
    let tls = tls::deployment(&dir);
    let stranger = TestDir::new("stranger-ca");
    tls::make_certificates(&stranger);
    let wrong = stranger.join(tls::CA);
    let (topo, cluster) = tokio::join!(
        Sentinel::start_tls("twin-ca", &tls),
        Cluster::start_tls(&tls)
    );

    for (url, namespace) in [(topo.url(), None), (cluster.url(), Some("alice"))] {
        // The right CA reaches the deployment: what fails below is the CA alone.
        let right = config(&url, &tls.ca, &dir, namespace);
        let client = connection::client_for(&right).expect("client");
        let mut con = connection::manager(&client, None)
            .await
            .unwrap_or_else(|e| panic!("{url} with its CA: {e:#}"));
        let pong: String = redis::cmd("PING")
            .query_async(&mut con)
            .await
            .expect("PING");
        assert_eq!(pong, "PONG");

        let url = with_password(&url);
        let text = refused_by_the_library(&config(&url, &wrong, &dir, namespace)).await;
        assert!(
            text.to_lowercase().contains("certificate"),
            "the error names the certificate: {text}"
        );
        let shown = refused_by_the_worker(&dir, &url, &wrong, namespace);
        eprintln!("library: {text}\nworker: {shown}");
        assert!(
            shown.to_lowercase().contains("certificate"),
            "the worker says why: {shown}"
        );
        assert!(!shown.contains(PASSWORD), "{shown}");
        assert!(
            shown.contains("twin:***@"),
            "the URL shown redacted: {shown}"
        );
    }
}
