//! The worker with a slow engine: a fake language model that answers after 1 s,
//! behind the real worker (in this process) on a private redis-server.
//!
//! 1. 500 contacts send one message each: total time against 500 / concurrency
//!    seconds, and the worker's own time per reply (from the engine's return to the
//!    reply's event, published in the same atomic step as its `QUEUE:responses`
//!    entry) at p50/p99, which must stay under 5 ms at p99.
//! 2. The kill switch pressed with 32 generations in flight: how many replies got
//!    out (must be 0).
//! 3. The process's peak memory (VmHWM), which must stay under 50 MB.
//!
//! Run with `cargo bench --bench slow_engine`.

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use futures_util::StreamExt;
use redis::AsyncCommands;
use redis::aio::MultiplexedConnection;
use secondme::config::SleepSetting;
use secondme::reply::{Reply, ReplyEngine, ReplyRequest};
use secondme::schema::{self, Direction, QueueMessage};
use secondme::server::RedisServer;
use secondme::store::{self, queue};
use secondme::worker::{Worker, WorkerConfig, WorkerStatus};
use tokio::sync::watch;

const CONTACTS: usize = 500;
const CONCURRENCY: usize = 8;
const IN_FLIGHT_AT_KILL: usize = 32;
const MODEL_TIME: Duration = Duration::from_secs(1);

/// The fake model: answers after [`MODEL_TIME`] and notes when each call returned.
#[derive(Clone, Default)]
struct FakeModel {
    returned: Arc<Mutex<HashMap<String, Instant>>>,
    calls: Arc<AtomicUsize>,
}

impl ReplyEngine for FakeModel {
    async fn reply(&self, request: &ReplyRequest<'_>) -> anyhow::Result<Reply> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(MODEL_TIME).await;
        let id = request.message.message_id.clone();
        if let Ok(mut r) = self.returned.lock() {
            r.insert(id, Instant::now());
        }
        Ok(Reply {
            content: format!("re: {}", request.message.content),
            delay_ms: 0,
        })
    }
}

fn main() -> Result<()> {
    common::on_two_threads(run())
}

async fn run() -> Result<()> {
    let server = RedisServer::start_default().context("start redis-server")?;
    let dir = std::env::temp_dir().join(format!("secondme-slow-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let result = async {
        throughput(&server, &dir).await?;
        kill_switch(&server, &dir).await
    }
    .await;
    let _ = std::fs::remove_dir_all(&dir);
    result?;
    let pid = std::process::id();
    let cpu = common::cpu_secs(pid).unwrap_or(f64::NAN);
    println!("CPU time of the process (worker and bench, whole run): {cpu:.2} s");
    let hwm = common::memory_mb(pid, "VmHWM:").unwrap_or(f64::NAN);
    println!("peak memory of the process (worker and bench, VmHWM): {hwm:.1} MB (limit 50)");
    if hwm >= 50.0 {
        bail!("peak memory {hwm:.1} MB is over 50 MB");
    }
    Ok(())
}

fn worker_config(
    url: &str,
    dir: &std::path::Path,
    consumer: &str,
    permits: usize,
) -> Result<WorkerConfig> {
    let config = secondme::config::Config::resolve(secondme::config::Settings {
        redis_url: Some(url.to_owned()),
        consumer: Some(consumer.to_owned()),
        review_file: Some(dir.join(format!("review-{consumer}.jsonl"))),
        max_generations: Some(permits),
        ..Default::default()
    })?;
    let mut cfg = WorkerConfig::from_config(&config);
    cfg.sleep_hours = SleepSetting::Off;
    Ok(cfg)
}

struct Running {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<Result<WorkerStatus>>,
}

async fn start(url: &str, model: FakeModel, cfg: WorkerConfig) -> Result<Running> {
    let client = secondme::connection::open_client(url)?;
    let w = Worker::connect(client, model, cfg).await?;
    let (stop, stop_rx) = watch::channel(false);
    Ok(Running {
        stop,
        task: tokio::spawn(w.run(stop_rx)),
    })
}

impl Running {
    async fn stop(self) -> Result<WorkerStatus> {
        let _ = self.stop.send(true);
        tokio::time::timeout(Duration::from_secs(20), self.task)
            .await
            .context("the worker did not stop in 20 s")??
    }
}

/// Enables `contacts` and writes one message from each, in one pipeline.
async fn send(con: &mut MultiplexedConnection, prefix: &str, n: usize) -> Result<()> {
    let ids: Vec<String> = (0..n).map(|i| format!("{prefix}{i}")).collect();
    let _: () = redis::pipe()
        .set(schema::state_marker(), 1)
        .sadd(schema::optin_contacts(), &ids)
        .query_async(con)
        .await?;
    let now = store::now_ms();
    let mut pipe = redis::pipe();
    for id in &ids {
        let m = QueueMessage {
            message_id: format!("m-{id}"),
            contact_id: id.clone(),
            content: "are we still on for tonight?".into(),
            timestamp: now,
            direction: Direction::Incoming,
            from_me: false,
        };
        pipe.add_command(queue::xadd(&m, false)).ignore();
    }
    let _: () = pipe.query_async(con).await?;
    Ok(())
}

/// Collects when each reply event (`bot_sent`) arrives on `events:messages`.
async fn watch_replies(url: &str) -> Result<Arc<Mutex<HashMap<String, Instant>>>> {
    let client = redis::Client::open(url)?;
    let mut pubsub = client.get_async_pubsub().await?;
    pubsub.subscribe(schema::channel_messages()).await?;
    let seen = Arc::new(Mutex::new(HashMap::new()));
    let out = Arc::clone(&seen);
    tokio::spawn(async move {
        let mut stream = pubsub.into_on_message();
        while let Some(msg) = stream.next().await {
            let at = Instant::now();
            let payload: String = msg.get_payload().unwrap_or_default();
            let Ok(ev) = serde_json::from_str::<schema::MessageEvent>(&payload) else {
                continue;
            };
            if let (true, Some(mid)) = (ev.bot_sent, ev.message_id.strip_prefix("bot_"))
                && let Ok(mut s) = out.lock()
            {
                s.insert(mid.to_owned(), at);
            }
        }
    });
    Ok(seen)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(i).copied().unwrap_or(f64::NAN)
}

async fn throughput(server: &RedisServer, dir: &std::path::Path) -> Result<()> {
    let url = server.url();
    let client = redis::Client::open(url.as_str())?;
    let mut con = client.get_multiplexed_async_connection().await?;
    let events = watch_replies(&url).await?;
    let model = FakeModel::default();
    let cfg = worker_config(&url, dir, "bench-a", CONCURRENCY)?;
    let quiet = cfg.burst_quiet;
    let worker = start(&url, model.clone(), cfg).await?;
    let started = Instant::now();
    send(&mut con, "c", CONTACTS).await?;
    let deadline = started + Duration::from_secs(300);
    loop {
        let n: usize = con.xlen(schema::queue_responses()).await?;
        if n >= CONTACTS {
            break;
        }
        if Instant::now() > deadline {
            bail!("only {n} of {CONTACTS} answered in 300 s");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let total = started.elapsed();
    // The last events may still be on their way.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let status = worker.stop().await?;
    let returned = model.returned.lock().map(|r| r.clone()).unwrap_or_default();
    let arrived = events.lock().map(|e| e.clone()).unwrap_or_default();
    let mut overhead: Vec<f64> = returned
        .iter()
        .filter_map(|(mid, r)| {
            let a = arrived.get(mid)?;
            Some(a.saturating_duration_since(*r).as_secs_f64() * 1000.0)
        })
        .collect();
    overhead.sort_by(f64::total_cmp);
    let ideal = CONTACTS as f64 / CONCURRENCY as f64 * MODEL_TIME.as_secs_f64();
    println!(
        "{CONTACTS} contacts, one message each, model 1 s, {CONCURRENCY} generations at once, quiet window {} ms",
        quiet.as_millis()
    );
    println!(
        "all answered in {:.1} s (500/concurrency = {ideal:.1} s; {} replies, {} model calls)",
        total.as_secs_f64(),
        status.answered,
        model.calls.load(Ordering::SeqCst)
    );
    println!(
        "worker time per reply, model return -> reply committed and published: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms ({} measured; limit p99 < 5 ms)",
        percentile(&overhead, 0.5),
        percentile(&overhead, 0.99),
        overhead.last().copied().unwrap_or(f64::NAN),
        overhead.len()
    );
    if percentile(&overhead, 0.99) >= 5.0 {
        bail!("the worker's p99 per reply is over 5 ms");
    }
    Ok(())
}

async fn kill_switch(server: &RedisServer, dir: &std::path::Path) -> Result<()> {
    let url = server.url();
    let client = redis::Client::open(url.as_str())?;
    let mut con = client.get_multiplexed_async_connection().await?;
    let manager = secondme::connection::manager(&client.clone().into(), None).await?;
    let before: usize = con.xlen(schema::queue_responses()).await?;
    let model = FakeModel::default();
    let mut cfg = worker_config(&url, dir, "bench-k", IN_FLIGHT_AT_KILL)?;
    cfg.burst_quiet = Duration::ZERO;
    let worker = start(&url, model.clone(), cfg).await?;
    send(&mut con, "k", IN_FLIGHT_AT_KILL).await?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while model.calls.load(Ordering::SeqCst) < IN_FLIGHT_AT_KILL {
        if Instant::now() > deadline {
            bail!("the generations did not all start");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let in_flight = IN_FLIGHT_AT_KILL - model.returned.lock().map(|r| r.len()).unwrap_or(0);
    store::control::kill_switch(&mut manager.clone(), true).await?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after: usize = con.xlen(schema::queue_responses()).await?;
    let returned = model.returned.lock().map(|r| r.len()).unwrap_or(0);
    worker.stop().await?;
    let got_out = after - before;
    println!(
        "kill switch pressed with {in_flight} generations in flight: {got_out} replies got out (must be 0); {} calls cancelled before the model returned",
        IN_FLIGHT_AT_KILL - returned
    );
    if got_out > 0 {
        bail!("{got_out} replies got out after the kill switch");
    }
    Ok(())
}
