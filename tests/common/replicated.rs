//! A primary and one replica on TCP ports, from the suite's `redis-server`, for
//! `WAIT` (`replicas_to_wait`): the replica can be stopped with SIGSTOP (a
//! replica that does not acknowledge) and resumed. Needs only `nodes.rs` beside
//! it, so a benchmark can include both by path.

use std::time::Duration;

use super::nodes::{self, Node, Scratch};

/// How long the replica may take to finish its first sync.
const SYNC_TIMEOUT: Duration = Duration::from_secs(10);

/// A primary with one replica in sync.
pub struct Replicated {
    /// The primary (`--port`), where every program writes.
    pub primary: Node,
    /// Its replica (`--replicaof` the primary).
    pub replica: Node,
    /// The replica's process, to stop and resume.
    pub process: ReplicaProcess,
    _scratch: Scratch,
}

/// The replica's process: stopped with SIGSTOP it holds its connection and
/// acknowledges nothing, as a replica too slow to keep up.
#[derive(Debug, Clone, Copy)]
pub struct ReplicaProcess(libc::pid_t);

impl ReplicaProcess {
    /// Stops it (SIGSTOP).
    pub fn pause(self) {
        signal(self.0, libc::SIGSTOP);
    }

    /// Lets it go on (SIGCONT).
    pub fn resume(self) {
        signal(self.0, libc::SIGCONT);
    }
}

impl Replicated {
    /// Starts both and waits until the replica is online at the primary.
    pub async fn start() -> Self {
        let scratch = Scratch::new("replicated");
        let binary = nodes::server_binary();
        let primary =
            Node::start(&binary, scratch.join("primary"), false, nodes::server_args).await;
        let of = primary.port().to_string();
        let replica = Node::start(&binary, scratch.join("replica"), false, |port, dir| {
            let mut args = nodes::server_args(port, dir);
            args.extend(["--replicaof".to_owned(), "127.0.0.1".to_owned(), of.clone()]);
            args
        })
        .await;
        let info = nodes::info(replica.port(), "server").await;
        let pid = info
            .as_deref()
            .and_then(|i| nodes::field(i, "process_id"))
            .and_then(|p| p.parse().ok())
            .expect("the replica's process id");
        let both = Self {
            primary,
            replica,
            process: ReplicaProcess(pid),
            _scratch: scratch,
        };
        let port = both.primary.port();
        let online = nodes::poll(SYNC_TIMEOUT, || async move {
            let info = nodes::info(port, "replication").await?;
            info.contains("state=online").then_some(())
        })
        .await;
        assert!(
            online.is_some(),
            "the replica did not sync:\n{}",
            both.replica.log()
        );
        both
    }

    /// `redis://` URL of the primary.
    pub fn url(&self) -> String {
        nodes::url(self.primary.port())
    }

    /// `calls` of `WAIT` in the primary's `INFO commandstats` (0 when none was sent).
    pub async fn waits_on_primary(&self) -> u64 {
        let info = nodes::info(self.primary.port(), "commandstats")
            .await
            .expect("INFO commandstats");
        nodes::field(&info, "cmdstat_wait")
            .and_then(|stats| stats.split(',').next())
            .and_then(|calls| calls.strip_prefix("calls="))
            .map_or(0, |n| n.parse().expect("a count"))
    }
}

impl Drop for Replicated {
    fn drop(&mut self) {
        // A stopped process is killed all the same; resumed, it also flushes its log.
        self.process.resume();
    }
}

fn signal(pid: libc::pid_t, sig: libc::c_int) {
    // SAFETY: kill(2) with a pid this test started and a standard signal.
    let done = unsafe { libc::kill(pid, sig) };
    assert_eq!(done, 0, "kill({pid}, {sig})");
}
