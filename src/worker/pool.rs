//! A pool of workers for many people: one [`Worker`] per namespace in the
//! registry (`SECONDME:namespaces`, see `store::namespaces`), each running inside
//! its namespace, all sharing one command connection (with `replicas_to_wait`,
//! each writes and waits on one of its own). The registry is read at
//! start and every [`REFRESH`]: a namespace added is served from then on, one
//! removed has its worker stopped (it drains as at any stop).
//!
//! Each namespace's worker keeps its own blocking `XREADGROUP` on its own
//! connection: a gateway's `XADD` to `{N}:QUEUE:messages` wakes it, so a gateway
//! does nothing more than write. Workers of any number of pools share the work
//! through each namespace's consumer group and claim each other's stale entries
//! as single workers do. A namespace whose worker fails (a panic, an engine that
//! cannot be made) is restarted with backoff; the others go on.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::marker::PhantomData;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use futures_util::FutureExt;
use tokio::sync::watch;
use tokio::task::{Id, JoinSet};
use tracing::Instrument;

use super::{Worker, WorkerConfig, WorkerStatus};
use crate::config::Config;
use crate::connection::{self, Client, Con};
use crate::reply::ReplyEngine;
use crate::schema;
use crate::store::namespaces;

/// How often the registry is read again.
pub const REFRESH: Duration = Duration::from_secs(2);
/// The chores period of a pool's workers (see [`WorkerConfig::chores_every`]):
/// a namespace with nothing to do costs Redis about 1.5 commands a second, not
/// 13 (benches/pickup.rs).
pub const POOL_CHORES_EVERY: Duration = Duration::from_secs(10);
/// First wait before a failed namespace's worker starts again; it doubles up to
/// [`MAX_BACKOFF`].
const MIN_BACKOFF: Duration = Duration::from_secs(1);
/// Longest wait before a failed namespace's worker starts again.
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// A worker that ran this long before failing starts again after [`MIN_BACKOFF`].
const HEALTHY: Duration = Duration::from_secs(60);

/// The worker settings of a pool's workers: those of `c`, with the chores every
/// [`POOL_CHORES_EVERY`] and one blocking read at a time (a read-ahead's short
/// reads would cost every idle namespace several commands a second).
pub fn pool_worker_config(c: &Config) -> WorkerConfig {
    WorkerConfig {
        read_ahead_bytes: 0,
        chores_every: POOL_CHORES_EVERY,
        ..WorkerConfig::from_config(c)
    }
}

/// `base` with the namespace before its extension (`review.jsonl` becomes
/// `review.alice.jsonl`), every byte but `A-Za-z0-9_-` written `%XX`, so no
/// namespace name reaches another directory or another namespace's file.
pub fn review_file_for(base: &Path, namespace: &str) -> PathBuf {
    let mut escaped = String::with_capacity(namespace.len());
    for b in namespace.bytes() {
        if b.is_ascii_alphanumeric() || b == b'_' || b == b'-' {
            escaped.push(char::from(b));
        } else {
            escaped.push_str(&format!("%{b:02X}"));
        }
    }
    let stem = base
        .file_stem()
        .map_or_else(|| "review".into(), |s| s.to_string_lossy());
    let name = match base.extension() {
        Some(ext) => format!("{stem}.{escaped}.{}", ext.to_string_lossy()),
        None => format!("{stem}.{escaped}"),
    };
    base.with_file_name(name)
}

/// What every namespace's worker is made of.
struct Shared<M> {
    client: Client,
    con: Con,
    cfg: WorkerConfig,
    make: M,
}

/// Serves every registered namespace until stopped.
pub struct Pool<E, M> {
    shared: Arc<Shared<M>>,
    serving: watch::Sender<BTreeSet<String>>,
    _engine: PhantomData<fn() -> E>,
}

impl<E, M> Pool<E, M>
where
    E: ReplyEngine,
    M: Fn(&Con, watch::Receiver<bool>) -> Result<E> + Send + Sync + 'static,
{
    /// A pool whose workers share `con` and take their settings from `cfg` (the
    /// review file gets the namespace in its name). `make` is called inside the
    /// namespace at every start of its worker, with the connection and a switch
    /// that turns true when that worker has stopped; what it spawns with
    /// `schema::spawn_here` stays in the namespace.
    pub fn new(client: Client, con: Con, cfg: WorkerConfig, make: M) -> Self {
        let (serving, _) = watch::channel(BTreeSet::new());
        Self {
            shared: Arc::new(Shared {
                client,
                con,
                cfg,
                make,
            }),
            serving,
            _engine: PhantomData,
        }
    }

    /// Follows the namespaces being served.
    pub fn serving(&self) -> watch::Receiver<BTreeSet<String>> {
        self.serving.subscribe()
    }

    /// Serves the registry until `stop` turns true, then stops every worker and
    /// waits for them; returns each namespace's final totals (of its last start).
    pub async fn run(self, mut stop: watch::Receiver<bool>) -> BTreeMap<String, WorkerStatus> {
        let mut con = self.shared.con.clone();
        let mut running = Running::default();
        let mut last_problem: Option<String> = None;
        let mut said_empty = false;
        while !*stop.borrow() {
            running.reap();
            match namespaces::list(&mut con).await {
                Ok(registered) => {
                    if last_problem.take().is_some() {
                        tracing::info!("the namespace registry is readable again");
                    }
                    self.follow(&registered, &mut running);
                    if registered.is_empty() && !said_empty {
                        tracing::info!(
                            "no namespace registered: waiting (`secondme namespace add NAME`)"
                        );
                    }
                    said_empty = registered.is_empty();
                }
                Err(e) => {
                    let problem = connection::scrub(&format!("{e:#}"));
                    if last_problem.as_ref() != Some(&problem) {
                        tracing::warn!(
                            "{problem}; serving the {} namespaces known",
                            running.served.len()
                        );
                        last_problem = Some(problem);
                    }
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(REFRESH) => {}
                _ = stop.changed() => {}
            }
        }
        let finished = running.stop_all().await;
        self.serving.send_replace(BTreeSet::new());
        finished
    }

    /// Starts a worker for each namespace registered and not served, and stops
    /// the one of each namespace served and no longer registered. A namespace
    /// whose previous worker is still stopping starts at a later look, so one
    /// consumer never runs twice in a namespace.
    fn follow(&self, registered: &[String], running: &mut Running) {
        let wanted: BTreeSet<&String> = registered.iter().collect();
        for (namespace, stop) in &running.served {
            if !wanted.contains(namespace) && !*stop.borrow() {
                tracing::info!(namespace = %namespace, "namespace unregistered: stopping its worker");
                let _ = stop.send(true);
            }
        }
        for namespace in wanted {
            if !running.served.contains_key(namespace) {
                running.start(&self.shared, namespace);
            }
        }
        let now = running.serving();
        self.serving.send_if_modified(|set| {
            let changed = *set != now;
            *set = now;
            changed
        });
    }
}

/// The namespaces' workers while the pool runs.
#[derive(Default)]
struct Running {
    /// Each namespace served, with the switch that stops its worker (on while
    /// it stops).
    served: HashMap<String, watch::Sender<bool>>,
    /// Each namespace's supervisor.
    tasks: JoinSet<(String, Option<WorkerStatus>)>,
    /// Whose supervisor each task is, to name one that ended abnormally.
    ids: HashMap<Id, String>,
    /// The totals of the workers that stopped.
    finished: BTreeMap<String, WorkerStatus>,
}

impl Running {
    /// Starts `namespace`'s supervisor.
    fn start<E, M>(&mut self, shared: &Arc<Shared<M>>, namespace: &str)
    where
        E: ReplyEngine,
        M: Fn(&Con, watch::Receiver<bool>) -> Result<E> + Send + Sync + 'static,
    {
        let (stop, stop_rx) = watch::channel(false);
        let shared = Arc::clone(shared);
        let name = namespace.to_owned();
        let span = tracing::info_span!("namespace", name = %name);
        let task = self.tasks.spawn(
            async move {
                let status =
                    schema::in_namespace(Some(&name), supervise(&shared, &name, stop_rx)).await;
                (name, status)
            }
            .instrument(span),
        );
        self.ids.insert(task.id(), namespace.to_owned());
        self.served.insert(namespace.to_owned(), stop);
    }

    /// Takes the namespaces whose worker ended (stopped after it was
    /// unregistered) out of those served, keeping their totals.
    fn reap(&mut self) {
        while let Some(joined) = self.tasks.try_join_next_with_id() {
            match joined {
                Ok((id, (namespace, status))) => {
                    self.ids.remove(&id);
                    self.served.remove(&namespace);
                    if let Some(status) = status {
                        self.finished.insert(namespace, status);
                    }
                }
                // Supervisors catch their worker's and engine's panics: this is
                // a bug of the supervisor itself. The namespace starts afresh
                // at the next look, if it is still registered.
                Err(e) => {
                    if let Some(namespace) = self.ids.remove(&e.id()) {
                        tracing::error!(namespace = %namespace, "its supervisor ended: {e}");
                        self.served.remove(&namespace);
                    }
                }
            }
        }
    }

    /// The namespaces served and not stopping.
    fn serving(&self) -> BTreeSet<String> {
        self.served
            .iter()
            .filter(|(_, stop)| !*stop.borrow())
            .map(|(n, _)| n.clone())
            .collect()
    }

    /// Stops every worker and waits for them; each one's final totals.
    async fn stop_all(mut self) -> BTreeMap<String, WorkerStatus> {
        tracing::info!("pool stopping: {} namespace workers", self.served.len());
        for stop in self.served.values() {
            let _ = stop.send(true);
        }
        while let Some(joined) = self.tasks.join_next().await {
            if let Ok((namespace, Some(status))) = joined {
                self.finished.insert(namespace, status);
            }
        }
        self.finished
    }
}

/// Runs the namespace's worker until `stop`, starting it again with backoff
/// whenever it ends by itself; the totals of its last start.
async fn supervise<E, M>(
    shared: &Shared<M>,
    namespace: &str,
    mut stop: watch::Receiver<bool>,
) -> Option<WorkerStatus>
where
    E: ReplyEngine,
    M: Fn(&Con, watch::Receiver<bool>) -> Result<E>,
{
    let mut cfg = shared.cfg.clone();
    cfg.review_file = review_file_for(&shared.cfg.review_file, namespace);
    let mut backoff = MIN_BACKOFF;
    loop {
        let started = Instant::now();
        let outcome = run_once(shared, &cfg, stop.clone()).await;
        if *stop.borrow() {
            return match outcome {
                Ok(status) => Some(status),
                Err(e) => {
                    tracing::warn!("the worker failed while stopping: {e:#}");
                    None
                }
            };
        }
        if started.elapsed() >= HEALTHY {
            backoff = MIN_BACKOFF;
        }
        let why = match outcome {
            Ok(_) => "ended by itself".to_owned(),
            Err(e) => format!("failed: {e:#}"),
        };
        tracing::warn!(
            "the worker {why}; starting it again in {} s",
            backoff.as_secs()
        );
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = stop.changed() => return None,
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// One start of the namespace's worker, to its end; a panic, the worker's or
/// the engine maker's, is an error.
async fn run_once<E, M>(
    shared: &Shared<M>,
    cfg: &WorkerConfig,
    stop: watch::Receiver<bool>,
) -> Result<WorkerStatus>
where
    E: ReplyEngine,
    M: Fn(&Con, watch::Receiver<bool>) -> Result<E>,
{
    let (ended, ended_rx) = watch::channel(false);
    let run = AssertUnwindSafe(async {
        let engine =
            (shared.make)(&shared.con, ended_rx).context("cannot make the reply engine")?;
        let worker = Worker::with_connection(
            shared.client.clone(),
            shared.con.clone(),
            engine,
            cfg.clone(),
        );
        // Boxed: the worker's future is deep, and a pool nests it further.
        Box::pin(worker.run(stop)).await
    })
    .catch_unwind()
    .await;
    let _ = ended.send(true);
    match run {
        Ok(result) => result,
        Err(panic) => Err(anyhow!("the worker panicked: {}", panic_text(&*panic))),
    }
}

/// The message a panic carried, when it is text.
fn panic_text(panic: &(dyn std::any::Any + Send)) -> &str {
    panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(no message)")
}

/// Connects and serves every registered namespace for `config` until `stop`;
/// `make` makes each namespace's engine (see [`Pool::new`]). Refuses a config
/// that names a namespace: a pool serves them all.
pub async fn run_pool<E, M>(
    config: &Config,
    make: M,
    stop: watch::Receiver<bool>,
) -> Result<BTreeMap<String, WorkerStatus>>
where
    E: ReplyEngine,
    M: Fn(&Con, watch::Receiver<bool>) -> Result<E> + Send + Sync + 'static,
{
    if let Some(namespace) = &config.namespace {
        bail!(
            "--all-namespaces serves every registered namespace; it cannot run with \
             namespace {namespace:?} set (--namespace, SECONDME_NAMESPACE or the config file)"
        );
    }
    let client = connection::client_for_any_namespace(config)?;
    let con = connection::manager(&client, None)
        .await
        .with_context(|| connection::cannot_reach(&config.redis_url))?;
    let pool = Pool::new(client, con, pool_worker_config(config), make);
    Ok(pool.run(stop).await)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_review_file_gets_the_namespace_escaped_before_its_extension() {
        let base = Path::new("/var/lib/secondme/review.jsonl");
        assert_eq!(
            review_file_for(base, "alice-2_b"),
            Path::new("/var/lib/secondme/review.alice-2_b.jsonl")
        );
        assert_eq!(
            review_file_for(base, "../x/y"),
            Path::new("/var/lib/secondme/review.%2E%2E%2Fx%2Fy.jsonl")
        );
        assert_eq!(
            review_file_for(Path::new("/tmp/review"), "é"),
            Path::new("/tmp/review.%C3%A9")
        );
    }

    #[test]
    fn a_panic_message_is_read_whether_static_or_formatted() {
        let fixed: Box<dyn std::any::Any + Send> = Box::new("boom");
        let formatted: Box<dyn std::any::Any + Send> = Box::new(String::from("at 3"));
        let other: Box<dyn std::any::Any + Send> = Box::new(7_u8);
        assert_eq!(panic_text(&*fixed), "boom");
        assert_eq!(panic_text(&*formatted), "at 3");
        assert_eq!(panic_text(&*other), "(no message)");
    }
}
