//! A private `redis-server` started for the demo and the tests: its own
//! directory and Unix socket, no persistence, stopped and cleaned up on drop.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// Where the project's setup script installs Redis 8.2 with FalkorDB (a virtualenv).
const VENV_BIN: &str = ".venv/redis";

/// Which server binary to run and with which module.
#[derive(Debug, Clone)]
pub struct ServerBinary {
    /// `redis-server`.
    pub server: PathBuf,
    /// `falkordb.so`, when found beside it.
    pub falkordb: Option<PathBuf>,
}

/// Finds `redis-server`: `SECONDME_REDIS_SERVER`, the project's `.venv` (in the
/// working directory or above the running executable, as `target/release/secondme`
/// sits in the checkout), then `PATH`. No path of the build machine is compiled in.
pub fn find_binary() -> Result<ServerBinary> {
    if let Some(p) = std::env::var_os("SECONDME_REDIS_SERVER").filter(|p| !p.is_empty()) {
        let server = PathBuf::from(p);
        if !server.is_file() {
            bail!(
                "SECONDME_REDIS_SERVER points to {}, which does not exist",
                server.display()
            );
        }
        return Ok(with_module(server));
    }
    if let Some(server) = project_venv_server() {
        return Ok(with_module(server));
    }
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let candidate = dir.join("redis-server");
            if candidate.is_file() {
                return Ok(with_module(candidate));
            }
        }
    }
    bail!(
        "no redis-server found: run `scripts/setup.sh` (installs Redis 8.2 with FalkorDB into .venv), \
         or set SECONDME_REDIS_SERVER to a redis-server binary"
    )
}

/// `.venv/redis/redis-server` in the working directory or in a folder above the
/// running executable (a test binary sits in `target/debug/deps`, three below).
fn project_venv_server() -> Option<PathBuf> {
    let cwd = std::env::current_dir().ok();
    let exe = std::env::current_exe().ok();
    let exe_dirs = exe.iter().flat_map(|e| e.ancestors().skip(1).take(4));
    cwd.iter()
        .map(PathBuf::as_path)
        .chain(exe_dirs)
        .map(|dir| dir.join(VENV_BIN).join("redis-server"))
        .find(|candidate| candidate.is_file())
}

fn with_module(server: PathBuf) -> ServerBinary {
    let falkordb = std::env::var_os("SECONDME_FALKORDB_MODULE")
        .map(PathBuf::from)
        .or_else(|| server.parent().map(|d| d.join("falkordb.so")))
        .filter(|p| p.is_file());
    ServerBinary { server, falkordb }
}

/// Whether a private server loads the FalkorDB module.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GraphModule {
    /// Load FalkorDB when it was found beside the server.
    WhenFound,
    /// Plain Redis.
    Without,
}

/// A running private server. Dropping it stops the process and removes its directory.
#[derive(Debug)]
pub struct RedisServer {
    binary: ServerBinary,
    dir: PathBuf,
    socket: PathBuf,
    graph: GraphModule,
    child: Option<Child>,
}

static SEQ: AtomicU32 = AtomicU32::new(0);

impl RedisServer {
    /// Starts a server, with the graph module or without.
    pub fn start(binary: ServerBinary, graph: GraphModule) -> Result<Self> {
        let dir = std::env::temp_dir().join(format!(
            "secondme-redis-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        restrict(&dir)?;
        let socket = dir.join("redis.sock");
        let mut server = Self {
            binary,
            dir,
            socket,
            graph,
            child: None,
        };
        server.spawn()?;
        Ok(server)
    }

    /// Starts the default binary, with FalkorDB when available.
    pub fn start_default() -> Result<Self> {
        Self::start(find_binary()?, GraphModule::WhenFound)
    }

    fn spawn(&mut self) -> Result<()> {
        let log = std::fs::File::create(self.dir.join("redis.log"))
            .context("cannot create the redis log file")?;
        let mut cmd = Command::new(&self.binary.server);
        cmd.arg("--port")
            .arg("0")
            .arg("--unixsocket")
            .arg(&self.socket)
            .arg("--unixsocketperm")
            .arg("700")
            .arg("--dir")
            .arg(&self.dir)
            .arg("--save")
            .arg("")
            .arg("--appendonly")
            .arg("no")
            .arg("--daemonize")
            .arg("no")
            .stdin(Stdio::null())
            .stdout(Stdio::from(
                log.try_clone().context("cannot share the log")?,
            ))
            .stderr(Stdio::from(log));
        if self.graph == GraphModule::WhenFound
            && let Some(module) = &self.binary.falkordb
        {
            cmd.arg("--loadmodule").arg(module);
        }
        let child = cmd
            .spawn()
            .with_context(|| format!("cannot start {}", self.binary.server.display()))?;
        self.child = Some(child);
        self.wait_ready()
    }

    fn wait_ready(&mut self) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                let log = std::fs::read_to_string(self.dir.join("redis.log")).unwrap_or_default();
                bail!("redis-server exited at start ({status}):\n{log}");
            }
            if std::os::unix::net::UnixStream::connect(&self.socket).is_ok() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        bail!(
            "redis-server did not open {} within 10 s",
            self.socket.display()
        )
    }

    /// The URL to connect to it.
    pub fn url(&self) -> String {
        format!("unix://{}", self.socket.display())
    }

    /// True when FalkorDB is loaded.
    pub fn has_falkordb(&self) -> bool {
        self.graph == GraphModule::WhenFound && self.binary.falkordb.is_some()
    }

    /// Kills the server hard (like a crash), keeping its address.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_file(&self.socket);
    }

    /// Starts it again on the same socket, empty (no persistence).
    pub fn restart(&mut self) -> Result<()> {
        self.kill();
        self.spawn()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn restrict(dir: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .with_context(|| format!("cannot restrict {}", dir.display()))
}
