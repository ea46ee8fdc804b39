//! Redis servers on TCP ports, for the distributed topologies (Sentinel, Cluster):
//! ports checked free and handed out once per process, each server in its own
//! directory with its log, killed with SIGKILL when dropped; plain TCP, or TLS
//! only ([`Transport::Tls`]: certificate files made by the test, and a
//! `redis-server` built with TLS). Self-contained (no other test module), so a
//! benchmark can include it by path.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, ConnectionAddr, IntoConnectionInfo, TlsCertificates};

/// Plain node ports come from `12_000..22_000`; with a cluster's bus port (port +
/// `BUS_OFFSET`) every port stays below 32,768, where Linux starts handing out
/// the ephemeral ports of outgoing connections, and far below 55,000.
static PLAIN_PORTS: Ports = Ports::new(12_000, 22_000);
/// TLS node ports come from `33_000..43_000` (bus ports `43_000..53_000`): apart
/// from the plain ones and their bus ports, so a TLS test never races a plain
/// one for a port. They lie in Linux's ephemeral range: a port an outgoing
/// connection holds fails the check, and one taken between the check and the
/// start makes [`Node::start`] try another.
static TLS_PORTS: Ports = Ports::new(33_000, 43_000);
/// A cluster node's bus port is its port plus this.
pub const BUS_OFFSET: u16 = 10_000;
/// How long a server may take to accept connections.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// Tries of a fresh port when the one chosen was taken between the check and the start.
const START_TRIES: usize = 5;

/// A range of ports handed out in turn.
struct Ports {
    lowest: u16,
    highest: u16,
    /// The next port to try; `None` until the first one is chosen.
    next: Mutex<Option<u16>>,
}

impl Ports {
    const fn new(lowest: u16, highest: u16) -> Self {
        Self {
            lowest,
            highest,
            next: Mutex::new(None),
        }
    }

    /// A port of the range that nothing listens on (nor on its bus port, when
    /// `bus`), never handed out twice by this process.
    fn take(&self, bus: bool) -> u16 {
        let mut next = self.next.lock().unwrap_or_else(|p| p.into_inner());
        let span = self.highest - self.lowest;
        let mut port = next.unwrap_or_else(|| {
            let spread = std::process::id().wrapping_mul(1009) % u32::from(span);
            self.lowest + u16::try_from(spread).unwrap_or(0)
        });
        for _ in 0..span {
            let candidate = port;
            port = if port + 1 >= self.highest {
                self.lowest
            } else {
                port + 1
            };
            if bindable(candidate) && (!bus || bindable(candidate + BUS_OFFSET)) {
                *next = Some(port);
                return candidate;
            }
        }
        panic!(
            "no free TCP port between {} and {}",
            self.lowest, self.highest
        );
    }
}

/// A plain port that nothing listens on (nor on its bus port, when `bus`), never
/// handed out twice by this process (tests of one binary run in parallel).
/// Processes start at different points of the range, so two test binaries rarely meet.
pub fn free_port(bus: bool) -> u16 {
    PLAIN_PORTS.take(bus)
}

fn bindable(port: u16) -> bool {
    TcpListener::bind(("127.0.0.1", port)).is_ok()
}

/// The files of a TLS deployment: the `redis-server` built with TLS, the CA
/// that signed the nodes' certificate, and the certificate (for localhost and
/// 127.0.0.1) and key every node and sentinel serves.
#[derive(Debug, Clone)]
pub struct Tls {
    /// A `redis-server` that speaks TLS.
    pub server: PathBuf,
    /// The CA's certificate (PEM).
    pub ca: PathBuf,
    /// The nodes' certificate (PEM).
    pub cert: PathBuf,
    /// Its private key (PEM).
    pub key: PathBuf,
}

impl Tls {
    /// Options of a server speaking TLS only, on `port` (the plain port closed):
    /// clients need no certificate of their own, and replication, the cluster bus
    /// and a sentinel's links to the nodes go over TLS too.
    pub fn server_args(&self, port: u16) -> Vec<String> {
        let path = |p: &Path| p.display().to_string();
        [
            "--port".to_owned(),
            "0".to_owned(),
            "--tls-port".to_owned(),
            port.to_string(),
            "--tls-cert-file".to_owned(),
            path(&self.cert),
            "--tls-key-file".to_owned(),
            path(&self.key),
            "--tls-ca-cert-file".to_owned(),
            path(&self.ca),
            "--tls-auth-clients".to_owned(),
            "no".to_owned(),
            "--tls-replication".to_owned(),
            "yes".to_owned(),
            "--tls-cluster".to_owned(),
            "yes".to_owned(),
        ]
        .into()
    }
}

/// How the servers of a deployment are reached.
#[derive(Debug, Clone)]
pub enum Transport {
    /// Plain TCP, from the suite's own `redis-server`.
    Plain,
    /// TLS only, from the server and with the certificates given.
    Tls(Tls),
}

impl Transport {
    /// The URL scheme of a `kind` URL (`sentinel`, `cluster`) over this transport.
    pub fn scheme(&self, kind: &str) -> String {
        match self {
            Self::Plain => format!("redis-{kind}"),
            Self::Tls(_) => format!("rediss-{kind}"),
        }
    }
}

/// The CA certificate (PEM) of every TLS server this process started, by port:
/// what [`connect`] verifies it against.
static TLS_SERVERS: Mutex<BTreeMap<u16, Vec<u8>>> = Mutex::new(BTreeMap::new());

/// Records that the server on `port` speaks TLS with a certificate `ca` signed.
fn register_tls(port: u16, ca: &Path) {
    let pem = std::fs::read(ca).unwrap_or_else(|e| panic!("{}: {e}", ca.display()));
    // The crypto provider redis-rs's TLS needs; a second install is refused, harmlessly.
    let _ = rustls::crypto::ring::default_provider().install_default();
    TLS_SERVERS
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(port, pem);
}

/// The CA of the server on `port`, when it speaks TLS.
fn tls_ca(port: u16) -> Option<Vec<u8>> {
    TLS_SERVERS
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(&port)
        .cloned()
}

/// A directory for one topology's servers, removed with it.
pub struct Scratch(PathBuf);

static SCRATCH: AtomicUsize = AtomicUsize::new(0);

impl Scratch {
    /// A fresh, empty directory named after `label`, this process and a counter.
    pub fn new(label: &str) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "secondme-{label}-{}-{}",
            std::process::id(),
            SCRATCH.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("topology directory");
        Self(dir)
    }

    /// A path inside it.
    pub fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The `redis-server` the suite already uses (`SECONDME_REDIS_SERVER`, the
/// project's `.venv`, then `PATH`).
pub fn server_binary() -> PathBuf {
    secondme::server::find_binary()
        .expect("a redis-server (run scripts/setup.sh)")
        .server
}

/// Arguments every data node gets: its port on the loopback, its directory, no
/// persistence, a full sync that starts at once (diskless, no delay), and
/// replicas pinged every second.
pub fn server_args(port: u16, dir: &Path) -> Vec<String> {
    let port = port.to_string();
    let dir = dir.display().to_string();
    [
        "--port",
        &port,
        "--bind",
        "127.0.0.1",
        "--dir",
        &dir,
        "--save",
        "",
        "--appendonly",
        "no",
        "--daemonize",
        "no",
        "--repl-diskless-sync",
        "yes",
        "--repl-diskless-sync-delay",
        "0",
        // A fresh primary's replication offset only moves with its pings: a
        // replica at offset 0 is not listed by `CLUSTER SLOTS`, so ping each second.
        "--repl-ping-replica-period",
        "1",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect()
}

/// One running `redis-server` (data node or sentinel), killed on drop.
pub struct Node {
    port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

impl Node {
    /// Starts `binary` in `dir` with the arguments `args(port, dir)` gives for a
    /// free port (and bus port, when `bus`), and waits until it answers as itself;
    /// a port taken meanwhile by someone else means another port.
    pub async fn start(
        binary: &Path,
        dir: PathBuf,
        bus: bool,
        args: impl FnMut(u16, &Path) -> Vec<String>,
    ) -> Self {
        Self::launch(binary, None, dir, bus, args).await
    }

    /// [`Node::start`] over `transport`: the suite's own server, or the TLS one
    /// with the arguments `args` gives followed by [`Tls::server_args`].
    pub async fn start_on(
        transport: &Transport,
        dir: PathBuf,
        bus: bool,
        args: impl FnMut(u16, &Path) -> Vec<String>,
    ) -> Self {
        match transport {
            Transport::Plain => Self::launch(&server_binary(), None, dir, bus, args).await,
            Transport::Tls(tls) => Self::launch(&tls.server, Some(tls), dir, bus, args).await,
        }
    }

    async fn launch(
        binary: &Path,
        tls: Option<&Tls>,
        dir: PathBuf,
        bus: bool,
        mut args: impl FnMut(u16, &Path) -> Vec<String>,
    ) -> Self {
        std::fs::create_dir_all(&dir).expect("node directory");
        let mut last_log = String::new();
        for _ in 0..START_TRIES {
            let port = match tls {
                None => PLAIN_PORTS.take(bus),
                Some(tls) => {
                    let port = TLS_PORTS.take(bus);
                    register_tls(port, &tls.ca);
                    port
                }
            };
            let mut argv = args(port, &dir);
            // Later options win: the plain port `args` named is closed.
            if let Some(tls) = tls {
                argv.extend(tls.server_args(port));
            }
            let log = std::fs::File::create(dir.join("redis.log")).expect("node log");
            let child = Command::new(binary)
                .args(argv)
                .current_dir(&dir)
                .stdin(Stdio::null())
                .stdout(Stdio::from(log.try_clone().expect("node log")))
                .stderr(Stdio::from(log))
                .spawn()
                .expect("start redis-server");
            let mut node = Self {
                port,
                dir: dir.clone(),
                child: Some(child),
            };
            match node.wait_ready().await {
                Ok(()) => return node,
                Err(log) if log.contains("Address already in use") => last_log = log,
                Err(log) => panic!("redis-server on port {port} did not start:\n{log}"),
            }
        }
        panic!("redis-server found no free port in {START_TRIES} tries:\n{last_log}");
    }

    /// Waits until the server on `port` is this child (its `process_id`), or
    /// returns its log when it exits or does not answer in time.
    async fn wait_ready(&mut self) -> Result<(), String> {
        let pid = self.child.as_ref().map(Child::id);
        let deadline = Instant::now() + START_TIMEOUT;
        while Instant::now() < deadline {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(_)) = child.try_wait()
            {
                self.child = None;
                return Err(self.log());
            }
            let info = info(self.port, "server").await;
            let serving = info.as_deref().and_then(|i| field(i, "process_id"));
            if serving.is_some() && serving == pid.map(|p| p.to_string()).as_deref() {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.kill();
        Err(format!(
            "no answer within {START_TIMEOUT:?}\n{}",
            self.log()
        ))
    }

    /// Its TCP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// True until it is killed.
    pub fn is_alive(&self) -> bool {
        self.child.is_some()
    }

    /// Kills it with SIGKILL, as a crash would, and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// What it wrote to its log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("redis.log")).unwrap_or_default()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `redis://127.0.0.1:{port}`.
pub fn url(port: u16) -> String {
    format!("redis://127.0.0.1:{port}")
}

/// A connection to the server on `port` (over TLS, verified against its CA, when
/// it is a TLS server this process started), with short timeouts so a dead node
/// is an error, not a wait.
pub async fn connect(port: u16) -> redis::RedisResult<MultiplexedConnection> {
    let client = match tls_ca(port) {
        None => redis::Client::open(url(port))?,
        Some(ca) => {
            let addr = ConnectionAddr::TcpTls {
                host: "127.0.0.1".to_owned(),
                port,
                insecure: false,
                tls_params: None,
            };
            let certs = TlsCertificates {
                client_tls: None,
                root_cert: Some(ca),
            };
            redis::Client::build_with_tls(addr.into_connection_info()?, certs)?
        }
    };
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(1)))
        .set_response_timeout(Some(Duration::from_secs(3)));
    client
        .get_multiplexed_async_connection_with_config(&config)
        .await
}

/// `INFO section` of the server on `port`; `None` when it cannot be read.
pub async fn info(port: u16, section: &str) -> Option<String> {
    let mut con = connect(port).await.ok()?;
    redis::cmd("INFO")
        .arg(section)
        .query_async(&mut con)
        .await
        .ok()
}

/// The value of `name` in an `INFO` text.
pub fn field<'a>(info: &'a str, name: &str) -> Option<&'a str> {
    info.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
        .map(str::trim)
}

/// Polls `check` every 50 ms until it gives `Some`, or `None` after `timeout`.
pub async fn poll<T, F, Fut>(timeout: Duration, mut check: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return Some(v);
        }
        if Instant::now() > deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
