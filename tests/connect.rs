//! Reaching Redis the ways operators do, on a real redis-server over TCP:
//! `rediss://` with a certificate signed by a private CA made for the test with the
//! openssl command, and an ACL user with a password and a database other than 0.
//! The worker's stream reader speaks the protocol itself over plain TCP and through
//! redis-rs over TLS, so both are run end to end. FalkorDB's build of Redis has no
//! TLS, so this uses the TLS server and certificates of tests/common/tls.rs.

mod common;

use secondme::connection::Con;
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{TestDir, eventually, incoming, tls};
use redis::AsyncCommands;
use secondme::config::{Config, Overrides};
use secondme::reply::persona_engine::PersonaEngine;
use secondme::store::{self, queue};
use secondme::{connection, schema, worker};
use tokio::sync::watch;

/// A redis-server on a TCP port, killed on drop (and then its directory removed).
struct TcpServer {
    child: Child,
    dir: TestDir,
    port: u16,
}

impl Drop for TcpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_tls_server(name: &str) -> TcpServer {
    let dir = TestDir::new(&format!("tls-{name}"));
    tls::make_certificates(&dir);
    start_server(dir, |port| {
        vec![
            "--port".into(),
            "0".into(),
            "--tls-port".into(),
            port.to_string(),
            "--tls-cert-file".into(),
            tls::CERT.into(),
            "--tls-key-file".into(),
            tls::KEY.into(),
            "--tls-ca-cert-file".into(),
            tls::CA.into(),
            "--tls-auth-clients".into(),
            "no".into(),
        ]
    })
}

/// Starts the server in `dir` on a free port with the arguments `args` gives for it.
fn start_server(dir: TestDir, args: impl FnOnce(u16) -> Vec<String>) -> TcpServer {
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let child = Command::new(tls::tls_capable_server())
        .args(args(port))
        .args(["--save", "", "--appendonly", "no", "--bind", "127.0.0.1"])
        .current_dir(&dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start redis-server");
    let server = TcpServer { child, dir, port };
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "the TLS server did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    server
}

fn config(url: &str, ca: Option<&Path>, dir: &Path) -> anyhow::Result<Config> {
    let file = dir.join("config.toml");
    std::fs::write(&file, "").expect("config file");
    Config::load(
        Some(&file),
        Overrides {
            redis_url: Some(url.to_owned()),
            tls_ca_file: ca.map(Path::to_path_buf),
            ..Overrides::default()
        },
    )
}

#[tokio::test]
async fn rediss_with_a_private_ca_works_and_an_unknown_ca_is_refused() {
    let server = start_tls_server("ca");
    let url = format!("rediss://localhost:{}", server.port);
    let ca = server.dir.join(tls::CA);

    let trusted = config(&url, Some(&ca), &server.dir).expect("config");
    let client = connection::client_for(&trusted).expect("client");
    let mut con = connection::manager(&client, None)
        .await
        .expect("TLS connection verified against the private CA");
    let _: () = con.set("tls-check", "over TLS").await.expect("set");
    let back: String = con.get("tls-check").await.expect("get");
    assert_eq!(back, "over TLS");

    // The public roots do not know this CA: the connection must fail, not fall back.
    let untrusted = connection::open_client(&url).expect("client");
    let refused = connection::manager(&untrusted, None)
        .await
        .expect_err("a certificate from an unknown CA is refused");
    let text = format!("{refused:#}").to_lowercase();
    assert!(
        text.contains("certificate") || text.contains("issuer"),
        "the error says why: {text}"
    );

    // A CA file only makes sense for rediss://.
    let plain = config(
        &format!("redis://localhost:{}", server.port),
        Some(&ca),
        &server.dir,
    )
    .expect("config");
    let err = connection::client_for(&plain).expect_err("redis:// with a CA file");
    assert!(
        format!("{err:#}").contains("not a rediss:// URL"),
        "{err:#}"
    );
}

/// Runs a worker on `config` until it has answered one message written to the
/// database `con` is on.
async fn worker_answers_one_message(config: Config, con: &mut Con) {
    let _: () = con.set(schema::state_marker(), "1").await.expect("marker");
    store::optin::set_enabled(con, &["alice".to_owned()], true)
        .await
        .expect("enable");
    let (stop_tx, stop_rx) = watch::channel(false);
    let running = tokio::spawn(async move {
        worker::run_worker(&config, PersonaEngine::default(), stop_rx).await
    });
    let _: String = queue::xadd(&incoming("m1", "alice", "are you there?"), false)
        .query_async(con)
        .await
        .expect("xadd");
    let answered = eventually(Duration::from_secs(10), || {
        let mut con = con.clone();
        async move {
            let n: usize = con.xlen(schema::queue_responses()).await.ok()?;
            (n == 1).then_some(())
        }
    })
    .await;
    let _ = stop_tx.send(true);
    let status = running.await.expect("join").expect("the worker ran");
    assert!(answered.is_some(), "the message is answered: {status:?}");
    assert_eq!(status.answered, 1, "{status:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_over_tls_reads_and_answers() {
    let server = start_tls_server("worker");
    let ca = server.dir.join(tls::CA);
    let config = config(
        &format!("rediss://localhost:{}", server.port),
        Some(&ca),
        &server.dir,
    )
    .expect("config");
    let client = connection::client_for(&config).expect("client");
    let mut con = connection::manager(&client, None).await.expect("connect");
    worker_answers_one_message(config, &mut con).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_acl_user_a_password_and_a_database_reach_every_connection() {
    let server = start_server(TestDir::new("acl"), |port| {
        ["--port", &port.to_string(), "--user", "default", "off"]
            .into_iter()
            .chain(["--user", "twin", "on", ">s3cret", "~*", "&*", "+@all"])
            .map(str::to_owned)
            .collect()
    });
    let url = format!("redis://twin:s3cret@127.0.0.1:{}/3", server.port);
    let config = config(&url, None, &server.dir).expect("config");
    let client = connection::client_for(&config).expect("client");
    let mut con = connection::manager(&client, None).await.expect("connect");
    // The stream reader logs in and selects the database itself: without either, it
    // could not read the stream written here, and nothing would be answered.
    worker_answers_one_message(config, &mut con).await;

    let anonymous =
        connection::open_client(&format!("redis://127.0.0.1:{}", server.port)).expect("client");
    let refused = connection::manager(&anonymous, None).await;
    assert!(refused.is_err(), "the default user is off");
    let db0 = connection::open_client(&format!("redis://twin:s3cret@127.0.0.1:{}", server.port))
        .expect("client");
    let mut db0 = connection::manager(&db0, None).await.expect("connect");
    let in_db0: usize = db0.xlen(schema::queue_responses()).await.expect("xlen");
    assert_eq!(in_db0, 0, "the reply went to database 3, not 0");
}

/// Runs `secondme ARGS --redis-url URL` with private config and state directories.
fn secondme_cli(url: &str, dir: &Path, args: &[&str]) -> std::process::Output {
    common::run_cli(url, dir, args)
}

/// Runs `secondme worker` until a line of its log contains `needle`; returns that line.
fn worker_log_line(url: &str, dir: &Path, needle: &str) -> Option<String> {
    use std::io::BufRead;
    let mut child = Command::new(env!("CARGO_BIN_EXE_secondme"))
        .args(["worker", "--redis-url", url])
        .env("XDG_CONFIG_HOME", dir.join("config"))
        .env("XDG_STATE_HOME", dir.join("state"))
        .env("NO_COLOR", "1")
        .env_remove("SECONDME_CONFIG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the worker");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut found = None;
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match rx.recv_timeout(left) {
            Ok(line) if line.contains(needle) => {
                found = Some(line);
                break;
            }
            Ok(_) => {}
            Err(_) => break,
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_the_worker_and_the_control_room_warn_when_redis_may_evict_keys() {
    let server = start_server(TestDir::new("evict"), |port| {
        [
            "--port",
            &port.to_string(),
            "--maxmemory-policy",
            "allkeys-lru",
        ]
        .into_iter()
        .map(str::to_owned)
        .collect()
    });
    let url = format!("redis://127.0.0.1:{}", server.port);

    let out = secondme_cli(&url, &server.dir, &["status"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let shown = String::from_utf8_lossy(&out.stdout);
    let warning = shown
        .lines()
        .find(|l| l.starts_with("WARNING"))
        .unwrap_or_else(|| panic!("no warning in:\n{shown}"));
    for part in [
        "allkeys-lru",
        "OPTIN:contacts",
        "CONFIG SET maxmemory-policy noeviction",
        "redis.conf",
    ] {
        assert!(warning.contains(part), "{part:?} missing: {warning}");
    }

    let out = secondme_cli(&url, &server.dir, &["status", "--json"]);
    let value: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(value["eviction"]["policy"], "allkeys-lru", "{value}");
    assert_eq!(value["eviction"]["safe"], false);

    let line = worker_log_line(&url, &server.dir, "maxmemory-policy");
    let line = line.expect("the worker's start-up log warns");
    assert!(
        line.contains("WARN") && line.contains("allkeys-lru"),
        "{line}"
    );

    let mut screen = common::pty::Screen::start_with(&url, 40, 160, &["--no-worker"]);
    screen.wait_for("maxmemory-policy is allkeys-lru");
    // And it stays under the status bar, with the fix, until the policy is fixed.
    screen.wait_for("maxmemory-policy allkeys-lru): CONFIG SET maxmemory-policy noeviction");
    screen.stop();

    // The safe setting: nothing to warn about, and JSON says so.
    let safe = start_server(TestDir::new("noevict"), |port| {
        vec!["--port".to_owned(), port.to_string()]
    });
    let safe_url = format!("redis://127.0.0.1:{}", safe.port);
    let out = secondme_cli(&safe_url, &safe.dir, &["status"]);
    assert!(!String::from_utf8_lossy(&out.stdout).contains("WARNING"));
    let out = secondme_cli(&safe_url, &safe.dir, &["status", "--json"]);
    let value: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(value["eviction"]["safe"], true, "{value}");
}

/// The ACLs of docs/redis-schema.md ("ACL users"), as `--user` arguments.
const WORKER_ACL: &[&str] = &["~*", "&*", "+@all", "-@dangerous", "-@admin"];
const MONITOR_ACL: &[&str] = &[
    "%R~*",
    "&*",
    "-@all",
    "+@read",
    "+@connection",
    "+time",
    "+ping",
    "+pubsub|numsub",
    "+subscribe",
    "+unsubscribe",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn least_privilege_users_run_the_worker_and_status_and_a_missing_right_is_named() {
    let server = start_server(TestDir::new("acl-least"), |port| {
        let mut args: Vec<String> = ["--port", &port.to_string(), "--user", "default", "off"]
            .into_iter()
            .map(str::to_owned)
            .collect();
        let mut user = |name: &str, pass: &str, rules: &[&str]| {
            args.extend(["--user".to_owned(), name.to_owned(), "on".to_owned()]);
            args.push(format!(">{pass}"));
            args.extend(rules.iter().map(|r| (*r).to_owned()));
        };
        user("worker", "w-pass", WORKER_ACL);
        user("monitor", "m-pass", MONITOR_ACL);
        let mut no_groups = WORKER_ACL.to_vec();
        no_groups.push("-xgroup");
        user("nogroups", "n-pass", &no_groups);
        args
    });
    let worker_url = format!("redis://worker:w-pass@127.0.0.1:{}", server.port);
    let config = config(&worker_url, None, &server.dir).expect("config");
    let client = connection::client_for(&config).expect("client");
    let mut con = connection::manager(&client, None).await.expect("connect");
    // Refused to this user (so the test means something), yet the worker answers.
    let info: redis::RedisResult<String> = redis::cmd("INFO").query_async(&mut con).await;
    assert!(info.is_err(), "INFO is @dangerous");
    worker_answers_one_message(config, &mut con).await;

    for (user, url) in [
        ("worker", worker_url.clone()),
        (
            "monitor",
            format!("redis://monitor:m-pass@127.0.0.1:{}", server.port),
        ),
    ] {
        let out = secondme_cli(&url, &server.dir, &["status"]);
        let (shown, err) = (
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
        );
        assert!(out.status.success(), "status as {user}: {err}");
        assert!(shown.contains("enabled      alice"), "as {user}: {shown}");
        // It cannot read the policy: it says so, and claims nothing.
        assert!(
            shown.contains("maxmemory-policy unknown"),
            "as {user}: {shown}"
        );
    }

    // A user without a right the worker needs: the state says which, plainly.
    let url = format!("redis://nogroups:n-pass@127.0.0.1:{}", server.port);
    let limited = self::config(&url, None, &server.dir).expect("config");
    let client = connection::client_for(&limited).expect("client");
    let con = connection::manager(&client, None).await.expect("connect");
    let w = worker::Worker::with_connection(
        client,
        con,
        PersonaEngine::default(),
        worker::WorkerConfig::from_config(&limited),
    );
    let mut status = w.status();
    let (stop_tx, stop_rx) = watch::channel(false);
    let running = tokio::spawn(w.run(stop_rx));
    let error = eventually(Duration::from_secs(10), || {
        let state = status.borrow_and_update().state.clone();
        async move {
            match state {
                worker::WorkerState::Disconnected { error } => Some(error),
                _ => None,
            }
        }
    })
    .await
    .expect("the worker reports the failure");
    assert!(
        error.contains("missing Redis permission") && error.to_lowercase().contains("noperm"),
        "{error}"
    );
    assert!(error.contains("docs/redis-schema.md"), "{error}");
    let _ = stop_tx.send(true);
    let _ = running.await;
}
