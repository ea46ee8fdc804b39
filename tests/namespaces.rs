//! Namespaces through the real binary: a worker, the switches and `status` with
//! `--namespace N` keep to the keys and channels behind `{N}:` (a Redis user
//! allowed only those is refused nothing), two namespaces share one Redis
//! without touching each other's keys, and `secondme namespace` keeps the registry.

mod common;

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use common::{Harness, TestDir, eventually, incoming, streams};
use redis::AsyncCommands;
use secondme::connection::Con;
use secondme::schema;

/// The registry's key, outside every namespace (docs/redis-schema.md).
const REGISTRY: &str = "SECONDME:namespaces";

/// Runs `secondme ARGS --redis-url URL` with private config and state
/// directories and no namespace from the environment.
fn cli(url: &str, dir: &Path, args: &[&str]) -> Output {
    cli_with(url, dir, args, &[])
}

/// [`cli`] with extra environment variables.
fn cli_with(url: &str, dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_secondme"));
    command
        .args(args)
        .arg("--redis-url")
        .arg(url)
        .env("XDG_CONFIG_HOME", dir.join("config"))
        .env("XDG_STATE_HOME", dir.join("state"))
        .env("NO_COLOR", "1")
        .env_remove("SECONDME_CONFIG")
        .env_remove("SECONDME_NAMESPACE");
    for (k, v) in env {
        command.env(k, v);
    }
    command.output().expect("run secondme")
}

/// [`cli`], which must succeed; its standard output.
fn ok(url: &str, dir: &Path, args: &[&str]) -> String {
    let out = cli(url, dir, args);
    assert!(
        out.status.success(),
        "secondme {args:?}: {:?}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// [`cli`], which must fail; its standard error.
fn refused(url: &str, dir: &Path, args: &[&str]) -> String {
    let out = cli(url, dir, args);
    assert!(!out.status.success(), "secondme {args:?} succeeded");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Every key in the Redis, by `SCAN`.
async fn all_keys(con: &mut Con) -> BTreeSet<String> {
    let mut keys = BTreeSet::new();
    let mut cursor = 0u64;
    loop {
        let (next, page): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("COUNT")
            .arg(1000)
            .query_async(con)
            .await
            .expect("SCAN");
        keys.extend(page);
        if next == 0 {
            return keys;
        }
        cursor = next;
    }
}

/// A Redis user `name` (password `name`) that may use every command but only
/// the keys and channels behind `{namespace}:`; the ACL log is emptied.
async fn namespace_user(con: &mut Con, name: &str, namespace: &str) {
    let _: () = redis::cmd("ACL")
        .arg("SETUSER")
        .arg(name)
        .arg("on")
        .arg(format!(">{name}"))
        .arg(format!("~{{{namespace}}}:*"))
        .arg(format!("&{{{namespace}}}:*"))
        .arg("+@all")
        .query_async(con)
        .await
        .expect("ACL SETUSER");
    let _: () = redis::cmd("ACL")
        .arg("LOG")
        .arg("RESET")
        .query_async(con)
        .await
        .expect("ACL LOG RESET");
}

/// What Redis refused since the last reset, as text.
async fn acl_refusals(con: &mut Con) -> Vec<String> {
    let log: Vec<redis::Value> = redis::cmd("ACL")
        .arg("LOG")
        .query_async(con)
        .await
        .expect("ACL LOG");
    log.iter().map(|entry| format!("{entry:?}")).collect()
}

/// The Harness's URL logged in as `user` (password the same).
fn url_as(h: &Harness, user: &str) -> String {
    format!("{}?user={user}&pass={user}", h.server.url())
}

/// Starts `secondme --namespace NAMESPACE worker` as consumer `consumer`.
fn start_worker(url: &str, dir: &Path, namespace: &str, consumer: &str) -> Child {
    let log = std::fs::File::create(dir.join(format!("{consumer}.log"))).expect("log");
    Command::new(env!("CARGO_BIN_EXE_secondme"))
        .args(["--namespace", namespace, "--redis-url", url])
        .args([
            "--consumer",
            consumer,
            "--claim-idle",
            "1s",
            "--review-file",
        ])
        .arg(dir.join(format!("review-{consumer}.jsonl")))
        .arg("worker")
        .env("XDG_CONFIG_HOME", dir.join("config"))
        .env("XDG_STATE_HOME", dir.join("state"))
        .env("NO_COLOR", "1")
        .env_remove("SECONDME_CONFIG")
        .env_remove("SECONDME_NAMESPACE")
        .env_remove("SECONDME_LLM_URL")
        .env_remove("SECONDME_REDIS_URL")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(log))
        .spawn()
        .expect("start secondme worker")
}

/// Stops a worker with SIGTERM and waits for it to drain and exit.
async fn stop_worker(mut child: Child, dir: &Path, consumer: &str) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let exited = eventually(Duration::from_secs(15), || {
        let status = child.try_wait().ok().flatten();
        async move { status }
    })
    .await;
    let log = std::fs::read_to_string(dir.join(format!("{consumer}.log"))).unwrap_or_default();
    assert!(
        exited.is_some_and(|s| s.success()),
        "the worker stops cleanly:\n{log}"
    );
}

/// The entries of stream `key` once it holds `n` of them (within 20 s).
async fn wait_entries(con: &Con, key: &str, n: usize) -> Vec<HashMap<String, String>> {
    eventually(Duration::from_secs(20), || {
        let mut con = con.clone();
        async move {
            let found = streams::entries(&mut con, key).await;
            (found.len() >= n).then_some(found)
        }
    })
    .await
    .unwrap_or_else(|| panic!("{key} holds {n} entries in time"))
}

/// Every (channel, payload) published within `wait`.
async fn drain(
    rx: &mut tokio::sync::mpsc::UnboundedReceiver<(String, String)>,
    wait: Duration,
) -> Vec<(String, serde_json::Value)> {
    let deadline = tokio::time::Instant::now() + wait;
    let mut out = Vec::new();
    while let Ok(Some((channel, payload))) = tokio::time::timeout_at(deadline, rx.recv()).await {
        out.push((
            channel,
            serde_json::from_str(&payload).expect("a JSON payload"),
        ));
    }
    out
}

/// The payloads of `channel` among `published`.
fn on<'a>(
    published: &'a [(String, serde_json::Value)],
    channel: &str,
) -> Vec<&'a serde_json::Value> {
    published
        .iter()
        .filter(|(c, _)| c == channel)
        .map(|(_, p)| p)
        .collect()
}

/// Lets the twin answer `contact` in `namespace`, through the CLI.
fn allow(url: &str, dir: &Path, namespace: &str, contact: &str) {
    ok(url, dir, &["--namespace", namespace, "enable", contact]);
    ok(url, dir, &["--namespace", namespace, "kill", "off"]);
}

/// A worker with `--namespace alice`, as a Redis user allowed only alice's keys
/// and channels, answers a message written to `{alice}:QUEUE:messages` in
/// `{alice}:QUEUE:responses`, publishes on alice's channels only, and leaves no
/// key outside `{alice}:`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_namespaced_worker_answers_in_its_namespace_and_touches_nothing_else() {
    let mut h = Harness::start().await;
    let dir = TestDir::new("ns-worker");
    let url = h.server.url();
    allow(&url, &dir, "alice", "c1");
    namespace_user(&mut h.con, "alice", "alice").await;
    let mut events = h
        .subscribe_to(&["{alice}:events:messages", "events:messages"])
        .await;
    let queue = schema::in_namespace(Some("alice"), async { schema::queue_messages() }).await;
    assert_eq!(queue, "{alice}:QUEUE:messages");
    schema::in_namespace(
        Some("alice"),
        h.send(&incoming("m1", "c1", "are we still on for tonight?")),
    )
    .await;

    let worker = start_worker(&url_as(&h, "alice"), &dir, "alice", "w-alice");
    let replies = wait_entries(&h.con, "{alice}:QUEUE:responses", 1).await;
    assert_eq!(replies.len(), 1);
    assert_eq!(replies[0]["inReplyTo"], "m1");
    assert_eq!(replies[0]["contactId"], "c1");
    let published = drain(&mut events, Duration::from_secs(1)).await;
    stop_worker(worker, &dir, "w-alice").await;

    let ids: Vec<&serde_json::Value> = on(&published, "{alice}:events:messages")
        .into_iter()
        .map(|p| &p["messageId"])
        .collect();
    assert!(ids.contains(&&serde_json::json!("m1")), "{published:?}");
    assert!(ids.len() >= 2, "the message and the reply: {published:?}");
    assert!(
        on(&published, "events:messages").is_empty(),
        "{published:?}"
    );
    assert_eq!(acl_refusals(&mut h.con).await, Vec::<String>::new());
    let keys = all_keys(&mut h.con).await;
    let outside: Vec<&String> = keys.iter().filter(|k| !k.starts_with("{alice}:")).collect();
    assert!(outside.is_empty(), "keys outside {{alice}}: {outside:?}");
    for key in [
        "{alice}:QUEUE:messages",
        "{alice}:QUEUE:responses",
        "{alice}:HISTORY:c1",
        "{alice}:OPTIN:contacts",
        "{alice}:SECONDME:state",
    ] {
        assert!(keys.contains(key), "{key} in {keys:?}");
    }
}

/// Two workers, alice's and bob's, on one Redis, each answer their own
/// person's message from a contact of the same id, each in its own stream;
/// every key is one of theirs, and both call the one function library.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_namespaces_on_one_redis_keep_to_their_own_keys() {
    let mut h = Harness::start().await;
    let dir = TestDir::new("ns-two");
    let url = h.server.url();
    for ns in ["alice", "bob"] {
        allow(&url, &dir, ns, "c1");
    }
    schema::in_namespace(
        Some("alice"),
        h.send(&incoming("m-alice", "c1", "lunch tomorrow?")),
    )
    .await;
    schema::in_namespace(
        Some("bob"),
        h.send(&incoming("m-bob", "c1", "did you see the match?")),
    )
    .await;
    namespace_user(&mut h.con, "bob", "bob").await;
    let _: () = redis::cmd("FUNCTION")
        .arg("FLUSH")
        .query_async(&mut h.con)
        .await
        .expect("FUNCTION FLUSH");

    let alice = start_worker(&url, &dir, "alice", "w-alice");
    let bob = start_worker(&url_as(&h, "bob"), &dir, "bob", "w-bob");
    let to_alice = wait_entries(&h.con, "{alice}:QUEUE:responses", 1).await;
    let to_bob = wait_entries(&h.con, "{bob}:QUEUE:responses", 1).await;
    stop_worker(alice, &dir, "w-alice").await;
    stop_worker(bob, &dir, "w-bob").await;

    let in_reply_to = |replies: &[HashMap<String, String>]| -> Vec<String> {
        replies.iter().map(|r| r["inReplyTo"].clone()).collect()
    };
    assert_eq!(in_reply_to(&to_alice), ["m-alice"]);
    assert_eq!(in_reply_to(&to_bob), ["m-bob"]);
    assert_eq!(acl_refusals(&mut h.con).await, Vec::<String>::new());
    for (ns, consumer) in [("alice", "w-alice"), ("bob", "w-bob")] {
        let reply: redis::streams::StreamInfoConsumersReply = h
            .con
            .xinfo_consumers(format!("{{{ns}}}:QUEUE:messages"), schema::WORKER_GROUP)
            .await
            .expect("XINFO CONSUMERS");
        let names: Vec<String> = reply.consumers.into_iter().map(|c| c.name).collect();
        assert_eq!(
            names,
            [consumer],
            "{ns}'s stream is read by its worker only"
        );
    }
    let keys = all_keys(&mut h.con).await;
    let stray: Vec<&String> = keys
        .iter()
        .filter(|k| !k.starts_with("{alice}:") && !k.starts_with("{bob}:"))
        .collect();
    assert!(stray.is_empty(), "{stray:?}");
    for ns in ["alice", "bob"] {
        assert!(keys.contains(&format!("{{{ns}}}:HISTORY:c1")), "{keys:?}");
    }
    let libraries: Vec<redis::Value> = redis::cmd("FUNCTION")
        .arg("LIST")
        .query_async(&mut h.con)
        .await
        .expect("FUNCTION LIST");
    assert_eq!(
        libraries.len(),
        1,
        "one library serves every namespace: it holds no key name"
    );
}

/// `secondme namespace add|list|remove`: the registry outside every namespace,
/// names checked, `remove` deleting no data, a foreign key refused clearly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_namespace_registry_round_trips_through_the_cli() {
    let mut h = Harness::start().await;
    let dir = TestDir::new("ns-registry");
    let url = h.server.url();
    assert_eq!(
        ok(&url, &dir, &["namespace", "list"]),
        "no namespace registered\n"
    );
    let added = ok(&url, &dir, &["namespace", "add", "bob", "alice"]);
    assert_eq!(added, "namespace bob added\nnamespace alice added\n");
    let again = ok(&url, &dir, &["namespace", "add", "alice"]);
    assert_eq!(again, "namespace alice was already registered\n");
    let mut members: Vec<String> = h.con.smembers(REGISTRY).await.expect("SMEMBERS");
    members.sort();
    assert_eq!(members, ["alice", "bob"]);
    // The registry is the same whatever namespace the command runs in.
    let listed = ok(
        &url,
        &dir,
        &["--namespace", "carol", "namespace", "list", "--json"],
    );
    let listed: Vec<String> = serde_json::from_str(&listed).expect("a JSON array");
    assert_eq!(listed, ["alice", "bob"]);
    assert_eq!(ok(&url, &dir, &["namespace", "list"]), "alice\nbob\n");

    for bad in ["a:b", "{x}", "", "a b", "a*"] {
        let error = refused(&url, &dir, &["namespace", "add", "ok", bad]);
        assert!(error.contains("invalid namespace"), "{bad:?}: {error}");
    }
    let error = refused(&url, &dir, &["namespace", "remove", "{x}"]);
    assert!(error.contains("invalid namespace"), "{error}");
    let count: usize = h.con.scard(REGISTRY).await.expect("SCARD");
    assert_eq!(
        count, 2,
        "a refused name changes nothing, nor the good one before it"
    );

    let _: () = h
        .con
        .set("{alice}:SECONDME:state", "1")
        .await
        .expect("alice's data");
    let removed = ok(&url, &dir, &["namespace", "remove", "alice", "dave"]);
    assert_eq!(
        removed,
        "namespace alice removed (its keys stay in Redis)\nnamespace dave was not registered\n"
    );
    assert_eq!(ok(&url, &dir, &["namespace", "list"]), "bob\n");
    let kept: bool = h
        .con
        .exists("{alice}:SECONDME:state")
        .await
        .expect("EXISTS");
    assert!(kept, "remove deletes none of the namespace's keys");
    let help = ok(&url, &dir, &["namespace", "remove", "--help"]);
    assert!(help.contains("deletes no data"), "{help}");

    // A member another program wrote that is no namespace is not listed.
    let _: () = h.con.sadd(REGISTRY, "{evil}").await.expect("SADD");
    assert_eq!(ok(&url, &dir, &["namespace", "list"]), "bob\n");

    let _: () = h.con.del(REGISTRY).await.expect("DEL");
    let _: () = h.con.set(REGISTRY, "not a set").await.expect("SET");
    for args in [&["namespace", "list"][..], &["namespace", "add", "erin"]] {
        let error = refused(&url, &dir, args);
        assert!(
            error.contains("SECONDME:namespaces is a string, not a set of namespaces"),
            "{args:?}: {error}"
        );
    }
    let keys = all_keys(&mut h.con).await;
    assert_eq!(
        keys,
        BTreeSet::from([REGISTRY.to_owned(), "{alice}:SECONDME:state".to_owned()])
    );
}

/// The switches and `status` with a namespace, from the flag, the environment
/// or the config file, touch only its keys and channels: as a Redis user
/// allowed nothing else they are refused nothing, and `status` without the
/// namespace does not see them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_switches_and_status_keep_to_their_namespace() {
    let mut h = Harness::start().await;
    let dir = TestDir::new("ns-cli");
    namespace_user(&mut h.con, "alice", "alice").await;
    let url = url_as(&h, "alice");
    let mut events = h
        .subscribe_to(&["{alice}:events:pause", "events:pause"])
        .await;

    let paused = ok(
        &url,
        &dir,
        &["--namespace", "alice", "pause", "c1", "--for", "10m"],
    );
    assert!(paused.starts_with("paused c1 for 10m"), "{paused}");
    let by_env = cli_with(
        &url,
        &dir,
        &["kill", "on"],
        &[("SECONDME_NAMESPACE", "alice")],
    );
    assert!(by_env.status.success(), "{by_env:?}");
    let config = dir.join("ns.toml");
    std::fs::write(&config, "namespace = \"alice\"\n").expect("config");
    let config = config.to_str().expect("a UTF-8 path");
    ok(&url, &dir, &["--config", config, "enable", "c2"]);
    let status = ok(&url, &dir, &["--namespace", "alice", "status", "--json"]);
    let status: serde_json::Value = serde_json::from_str(&status).expect("status JSON");
    assert_eq!(status["paused"][0]["contactId"], "c1", "{status}");
    assert!(status["killSwitch"].is_i64(), "{status}");
    assert_eq!(status["enabled"], serde_json::json!(["c2"]));
    assert_eq!(acl_refusals(&mut h.con).await, Vec::<String>::new());

    let published = drain(&mut events, Duration::from_millis(500)).await;
    let contacts: Vec<&serde_json::Value> =
        published.iter().map(|(_, p)| &p["contactId"]).collect();
    assert_eq!(contacts, ["c1", "ALL"], "{published:?}");
    assert_eq!(
        on(&published, "{alice}:events:pause").len(),
        2,
        "{published:?}"
    );

    let ttl: i64 = h.con.pttl("{alice}:PAUSE:c1").await.expect("PTTL");
    assert!(
        (9 * 60_000..=10 * 60_000).contains(&ttl),
        "{{alice}}:PAUSE:c1 lives 10 minutes, not {ttl} ms"
    );
    let keys = all_keys(&mut h.con).await;
    assert!(keys.iter().all(|k| k.starts_with("{alice}:")), "{keys:?}");
    for key in [
        "{alice}:PAUSE:c1",
        "{alice}:PAUSEMETA:c1",
        "{alice}:PAUSE:ALL",
        "{alice}:OPTIN:contacts",
    ] {
        assert!(keys.contains(key), "{key} in {keys:?}");
    }

    // Without the namespace, the same Redis holds nothing of it.
    let plain = ok(&h.server.url(), &dir, &["status", "--json"]);
    let plain: serde_json::Value = serde_json::from_str(&plain).expect("status JSON");
    assert_eq!(plain["paused"], serde_json::json!([]));
    assert!(plain["killSwitch"].is_null());
    assert_eq!(plain["enabled"], serde_json::json!([]));

    let error = refused(
        &h.server.url(),
        &dir,
        &["--namespace", "a:b", "pause", "c1"],
    );
    assert!(error.contains("namespace"), "{error}");
    assert_eq!(
        all_keys(&mut h.con).await,
        keys,
        "a refused namespace writes nothing"
    );
}

/// A namespace with a quote and letters beyond ASCII: the operator's step
/// writes and removes exactly that namespace's keys.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_namespace_with_a_quote_and_accents_runs_the_operators_step() {
    let mut h = Harness::start().await;
    let dir = TestDir::new("ns-quote");
    let url = h.server.url();
    for ns in ["o'brien", "josé"] {
        ok(
            &url,
            &dir,
            &["--namespace", ns, "pause", "c1", "--for", "5m"],
        );
        ok(&url, &dir, &["--namespace", ns, "resume", "c1"]);
        ok(&url, &dir, &["--namespace", ns, "pause", "c2"]);
    }
    let keys = all_keys(&mut h.con).await;
    for ns in ["o'brien", "josé"] {
        for key in [
            format!("{{{ns}}}:PAUSE:c2"),
            format!("{{{ns}}}:PAUSEMETA:c2"),
        ] {
            assert!(keys.contains(&key), "{key} in {keys:?}");
        }
        assert!(!keys.contains(&format!("{{{ns}}}:PAUSE:c1")), "{keys:?}");
    }
    assert!(
        keys.iter()
            .all(|k| k.starts_with("{o'brien}:") || k.starts_with("{josé}:"))
    );
}
