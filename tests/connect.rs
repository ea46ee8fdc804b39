//! Reaching Redis the ways operators do, on a real redis-server over TCP:
//! `rediss://` with a certificate signed by a private CA made for the test with the
//! openssl command, and an ACL user with a password and a database other than 0.
//! The worker's stream reader speaks the protocol itself over plain TCP and through
//! redis-rs over TLS, so both are run end to end. FalkorDB's build of Redis has no
//! TLS, so this uses Debian's (installed by scripts/setup.sh), or the server in
//! `SECONDME_TLS_REDIS_SERVER`.

mod common;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{TestDir, eventually, incoming};
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

fn tls_capable_server() -> PathBuf {
    let path = std::env::var_os("SECONDME_TLS_REDIS_SERVER")
        .filter(|p| !p.is_empty())
        .map_or_else(|| PathBuf::from("/usr/bin/redis-server"), PathBuf::from);
    assert!(
        path.is_file(),
        "{} is missing: run scripts/setup.sh (Debian's redis-server has TLS), \
         or set SECONDME_TLS_REDIS_SERVER",
        path.display()
    );
    path
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl (run scripts/setup.sh)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA, and a certificate for localhost signed by it.
fn make_certificates(dir: &Path) {
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    openssl(
        dir,
        &[
            &[
                "req", "-x509", "-days", "1", "-keyout", "ca.key", "-out", "ca.crt",
            ][..],
            &ec,
            &[
                "-subj",
                "/CN=SecondMe test CA",
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
            ],
        ]
        .concat(),
    );
    openssl(
        dir,
        &[
            &["req", "-keyout", "server.key", "-out", "server.csr"][..],
            &ec,
            &["-subj", "/CN=localhost"],
        ]
        .concat(),
    );
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n\
         keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n",
    )
    .expect("extensions");
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "1",
            "-out",
            "server.crt",
            "-extfile",
            "server.ext",
        ],
    );
}

fn start_tls_server(name: &str) -> TcpServer {
    let dir = TestDir::new(&format!("tls-{name}"));
    make_certificates(&dir);
    start_server(dir, |port| {
        vec![
            "--port".into(),
            "0".into(),
            "--tls-port".into(),
            port.to_string(),
            "--tls-cert-file".into(),
            "server.crt".into(),
            "--tls-key-file".into(),
            "server.key".into(),
            "--tls-ca-cert-file".into(),
            "ca.crt".into(),
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
    let child = Command::new(tls_capable_server())
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
    let ca = server.dir.join("ca.crt");

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
async fn worker_answers_one_message(config: Config, con: &mut redis::aio::ConnectionManager) {
    let _: () = con.set(schema::STATE_MARKER, "1").await.expect("marker");
    store::optin::set_enabled(con, &["alice".to_owned()], true)
        .await
        .expect("enable");
    let (stop_tx, stop_rx) = watch::channel(false);
    let running =
        tokio::spawn(async move { worker::run_worker(&config, PersonaEngine, stop_rx).await });
    let _: String = queue::xadd(&incoming("m1", "alice", "are you there?"), false)
        .query_async(con)
        .await
        .expect("xadd");
    let answered = eventually(Duration::from_secs(10), || {
        let mut con = con.clone();
        async move {
            let n: usize = con.xlen(schema::QUEUE_RESPONSES).await.ok()?;
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
    let ca = server.dir.join("ca.crt");
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
    let in_db0: usize = db0.xlen(schema::QUEUE_RESPONSES).await.expect("xlen");
    assert_eq!(in_db0, 0, "the reply went to database 3, not 0");
}
