//! Pick-up latency of a pool of workers (`secondme worker --all-namespaces`):
//! 500 registered namespaces on one private redis-server, one pool serving them
//! all, a few busy namespaces receiving messages at a steady rate while the
//! others are idle. Prints how long the pool takes to serve them all, what it
//! costs Redis when nothing happens (commands a second from `INFO
//! commandstats`, connections from `INFO clients`, CPU), and the latency from
//! a gateway's `XADD` to `{N}:QUEUE:messages` to the reply on
//! `{N}:QUEUE:responses` (p50/p99).
//!
//! Run with `cargo bench --bench pickup` (about a minute).

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use redis::aio::MultiplexedConnection;
use redis::streams::{StreamReadOptions, StreamReadReply};
use secondme::config::{Config, Overrides};
use secondme::connection;
use secondme::reply::persona_engine::PersonaEngine;
use secondme::schema;
use secondme::server::{GraphModule, RedisServer, find_binary};
use secondme::store::{namespaces, now_ms, queue};
use secondme::worker::pool::{Pool, pool_worker_config};
use secondme::worker::{WorkerConfig, WorkerStatus};
use tokio::sync::watch;

/// Namespaces registered.
const NAMESPACES: usize = 500;
/// Namespaces receiving messages.
const BUSY: usize = 5;
/// Messages a second to each busy namespace.
const RATE_EACH: u64 = 4;
/// Messages to each busy namespace in all.
const PER_BUSY: usize = 80;
/// Contacts enabled in each busy namespace; each writes far below the rate limit.
const CONTACTS: usize = 100;
/// How long the idle cost is measured.
const IDLE_WINDOW: Duration = Duration::from_secs(10);

fn main() -> Result<()> {
    common::on_two_threads(run())
}

/// Runs `fut` with its names in namespace `ns`.
async fn within<F: std::future::Future>(ns: &str, fut: F) -> F::Output {
    schema::in_namespace(Some(ns), fut).await
}

fn name(i: usize) -> String {
    format!("n{i:03}")
}

async fn run() -> Result<()> {
    let server = RedisServer::start(find_binary()?, GraphModule::Without)?;
    let url = server.url();
    let mut raw = redis::Client::open(url.as_str())?
        .get_multiplexed_async_connection()
        .await?;
    let names: Vec<String> = (0..NAMESPACES).map(name).collect();
    {
        // Closed before anything is counted.
        let mut con = connection::manager(&connection::open_client(&url)?, None).await?;
        setup(&mut con, &mut raw, &names).await?;
    }

    let dir = std::env::temp_dir().join(format!("secondme-pickup-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let file = dir.join("config.toml");
    std::fs::write(&file, "")?;
    let config = Config::load(
        Some(&file),
        Overrides {
            redis_url: Some(url.clone()),
            consumer: Some("pool-bench".to_owned()),
            review_file: Some(dir.join("review.jsonl")),
            ..Overrides::default()
        },
    )?;
    let tuned = Serving::start(&url, pool_worker_config(&config), &names, &mut raw).await?;
    let idle = idle_cost(&mut raw).await?;
    let latencies = busy_run(&url, &names[..BUSY]).await?;
    let start_secs = tuned.start_secs;
    let stop_secs = tuned.stop().await?;
    // The same pool with an ordinary worker's settings, for comparison.
    let plain = Serving::start(&url, WorkerConfig::from_config(&config), &names, &mut raw).await?;
    let plain_idle = idle_cost(&mut raw).await?;
    plain.stop().await?;
    let _ = std::fs::remove_dir_all(&dir);

    println!(
        "pool of one process, {NAMESPACES} registered namespaces on one redis-server (Unix socket)"
    );
    println!("serving all of them (every reader blocked)     {start_secs:8.2} s");
    println!(
        "connections to Redis                          {:8}",
        idle.connections
    );
    println!(
        "idle commands/s, all namespaces               {:8.0}",
        idle.commands_per_sec
    );
    println!(
        "idle commands/s per namespace                 {:8.2}",
        idle.commands_per_sec / NAMESPACES as f64
    );
    println!(
        "idle CPU: redis-server {:5.1} %, pool process {:5.1} %",
        idle.redis_cpu * 100.0,
        idle.pool_cpu * 100.0
    );
    println!("idle commands by name (per s): {}", idle.top);
    if let Some(mb) = common::memory_mb(std::process::id(), "VmRSS:") {
        println!("pool process resident memory                 {mb:8.1} MB");
    }
    println!(
        "the same pool with a single worker's settings (read-ahead, chores every second): \
         {:.0} idle commands/s, {:.2} per namespace, {} connections, redis-server CPU {:.1} %",
        plain_idle.commands_per_sec,
        plain_idle.commands_per_sec / NAMESPACES as f64,
        plain_idle.connections,
        plain_idle.redis_cpu * 100.0
    );
    report_latency(&latencies);
    println!("stopping all {NAMESPACES} workers                  {stop_secs:8.2} s");
    Ok(())
}

/// A pool running in this process, serving every namespace.
struct Serving {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<BTreeMap<String, WorkerStatus>>,
    start_secs: f64,
}

impl Serving {
    /// Starts a pool of workers with `cfg` and waits until each namespace's
    /// reader is blocked in Redis.
    async fn start(
        url: &str,
        cfg: WorkerConfig,
        names: &[String],
        raw: &mut MultiplexedConnection,
    ) -> Result<Self> {
        let client = connection::open_client(url)?;
        let con = connection::manager(&client, None).await?;
        let pool = Pool::new(client, con, cfg, |_, _| Ok(PersonaEngine::default()));
        let mut serving = pool.serving();
        let (stop, stop_rx) = watch::channel(false);
        let started = Instant::now();
        let task = tokio::spawn(pool.run(stop_rx));
        let all: BTreeSet<String> = names.iter().cloned().collect();
        serving.wait_for(|s| *s == all).await?;
        wait_blocked(raw, names.len()).await?;
        Ok(Self {
            stop,
            task,
            start_secs: started.elapsed().as_secs_f64(),
        })
    }

    /// Stops it; how long every worker took to stop.
    async fn stop(self) -> Result<f64> {
        let _ = self.stop.send(true);
        let stopped = Instant::now();
        tokio::time::timeout(Duration::from_secs(60), self.task).await??;
        Ok(stopped.elapsed().as_secs_f64())
    }
}

/// Registers every namespace, lets the twin answer in each, and enables the
/// busy ones' contacts.
async fn setup(
    con: &mut connection::Con,
    raw: &mut MultiplexedConnection,
    names: &[String],
) -> Result<()> {
    let contacts: Vec<String> = (0..CONTACTS).map(|i| format!("c{i}")).collect();
    let mut pipe = redis::pipe();
    for ns in names {
        within(ns, async {
            pipe.set(schema::state_marker(), "1")
                .ignore()
                .sadd(schema::optin_contacts(), &contacts)
                .ignore();
        })
        .await;
    }
    let () = pipe.query_async(raw).await?;
    for ns in names {
        namespaces::add(con, ns).await?;
    }
    Ok(())
}

/// Waits until `n` clients are blocked (one stream reader per namespace).
async fn wait_blocked(raw: &mut MultiplexedConnection, n: usize) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let info: String = redis::cmd("INFO").arg("clients").query_async(raw).await?;
        if field(&info, "blocked_clients").is_some_and(|b| b >= n as f64) {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("{n} readers not blocked within a minute: {info}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A number field of an `INFO` reply.
fn field(info: &str, name: &str) -> Option<f64> {
    info.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
        .and_then(|v| v.trim().parse().ok())
}

/// What the pool costs while no message comes.
struct Idle {
    connections: u64,
    commands_per_sec: f64,
    redis_cpu: f64,
    pool_cpu: f64,
    top: String,
}

/// Calls per command over the idle window, from `INFO commandstats` (this
/// measurement's own `INFO` and `CONFIG` calls left out).
async fn idle_cost(raw: &mut MultiplexedConnection) -> Result<Idle> {
    // Past the start's bursts: every worker's first chores and claims.
    tokio::time::sleep(Duration::from_secs(12)).await;
    let () = redis::cmd("CONFIG")
        .arg("RESETSTAT")
        .query_async(raw)
        .await?;
    let cpu_before: String = redis::cmd("INFO").arg("cpu").query_async(raw).await?;
    let ours_before = common::cpu_secs(std::process::id()).unwrap_or(0.0);
    tokio::time::sleep(IDLE_WINDOW).await;
    let stats: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(raw)
        .await?;
    let cpu_after: String = redis::cmd("INFO").arg("cpu").query_async(raw).await?;
    let ours_after = common::cpu_secs(std::process::id()).unwrap_or(0.0);
    let clients: String = redis::cmd("INFO").arg("clients").query_async(raw).await?;
    let window = IDLE_WINDOW.as_secs_f64();
    let mut calls: Vec<(String, f64)> = stats
        .lines()
        .filter_map(|l| {
            let (cmd, rest) = l.strip_prefix("cmdstat_")?.split_once(':')?;
            let n: f64 = rest
                .strip_prefix("calls=")?
                .split(',')
                .next()?
                .parse()
                .ok()?;
            (!cmd.starts_with("info") && !cmd.starts_with("config")).then(|| (cmd.to_owned(), n))
        })
        .collect();
    calls.sort_by(|a, b| b.1.total_cmp(&a.1));
    let total: f64 = calls.iter().map(|(_, n)| n).sum();
    let cpu = |info: &str| {
        field(info, "used_cpu_sys").unwrap_or(0.0) + field(info, "used_cpu_user").unwrap_or(0.0)
    };
    let top = calls
        .iter()
        .map(|(c, n)| format!("{c} {:.1}", n / window))
        .collect::<Vec<_>>()
        .join(", ");
    Ok(Idle {
        // Less this measurement's own connection.
        connections: field(&clients, "connected_clients").unwrap_or(1.0) as u64 - 1,
        commands_per_sec: total / window,
        redis_cpu: (cpu(&cpu_after) - cpu(&cpu_before)) / window,
        pool_cpu: (ours_after - ours_before) / window,
        top,
    })
}

/// Messages to each of `busy` at [`RATE_EACH`] a second, [`PER_BUSY`] each; the
/// time from each `XADD` to its reply on the namespace's `QUEUE:responses`.
async fn busy_run(url: &str, busy: &[String]) -> Result<Vec<Duration>> {
    let client = redis::Client::open(url)?;
    let mut writer = client.get_multiplexed_async_connection().await?;
    let mut reader = client.get_multiplexed_async_connection().await?;
    let responses: Vec<String> = {
        let mut keys = Vec::new();
        for ns in busy {
            keys.push(within(ns, async { schema::queue_responses().to_owned() }).await);
        }
        keys
    };
    let sent_at: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let expected = busy.len() * PER_BUSY;
    let watcher = {
        let sent_at = Arc::clone(&sent_at);
        let keys = responses.clone();
        tokio::spawn(async move { watch_replies(&mut reader, &keys, &sent_at, expected).await })
    };
    let every = Duration::from_millis(1000 / RATE_EACH / busy.len() as u64);
    let mut tick = tokio::time::interval(every);
    for i in 0..expected {
        tick.tick().await;
        let ns = &busy[i % busy.len()];
        let round = i / busy.len();
        let message = schema::QueueMessage {
            message_id: format!("{ns}-m{i}"),
            contact_id: format!("c{}", round % CONTACTS),
            content: "are you free later?".to_owned(),
            timestamp: now_ms(),
            direction: schema::Direction::Incoming,
            from_me: false,
        };
        let xadd = within(ns, async { queue::xadd(&message, false) }).await;
        sent_at
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(message.message_id.clone(), Instant::now());
        let _: String = xadd.query_async(&mut writer).await?;
    }
    tokio::time::timeout(Duration::from_secs(30), watcher)
        .await
        .context("replies did not all come within 30 s")??
}

/// Reads the replies as they arrive (`XREAD BLOCK`) until `expected` came.
async fn watch_replies(
    con: &mut MultiplexedConnection,
    keys: &[String],
    sent_at: &Mutex<HashMap<String, Instant>>,
    expected: usize,
) -> Result<Vec<Duration>> {
    let mut last: Vec<String> = vec!["0-0".to_owned(); keys.len()];
    let mut latencies = Vec::with_capacity(expected);
    let opts = StreamReadOptions::default().block(1000).count(100);
    while latencies.len() < expected {
        let reply: Option<StreamReadReply> =
            redis::AsyncCommands::xread_options(con, keys, &last, &opts).await?;
        let now = Instant::now();
        for stream in reply.map(|r| r.keys).unwrap_or_default() {
            let Some(k) = keys.iter().position(|k| *k == stream.key) else {
                continue;
            };
            for entry in stream.ids {
                last[k] = entry.id.clone();
                let to: String = entry
                    .get(schema::response_fields::IN_REPLY_TO)
                    .unwrap_or_default();
                let at = sent_at
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .get(&to)
                    .copied();
                if let Some(at) = at {
                    latencies.push(now.duration_since(at));
                }
            }
        }
    }
    Ok(latencies)
}

fn report_latency(latencies: &[Duration]) {
    let mut ms: Vec<f64> = latencies.iter().map(|d| d.as_secs_f64() * 1000.0).collect();
    ms.sort_by(f64::total_cmp);
    let at = |q: f64| ms[((ms.len() as f64 - 1.0) * q).round() as usize];
    println!(
        "pick-up latency, XADD to the reply on {{N}}:QUEUE:responses, {} messages to {BUSY} busy namespaces \
         ({} a second each) while {} idle:",
        ms.len(),
        RATE_EACH,
        NAMESPACES - BUSY
    );
    println!(
        "  p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        at(0.5),
        at(0.99),
        at(1.0)
    );
}
