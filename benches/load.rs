//! Load benchmark of the real worker process: how many messages a second it
//! answers without loss, its latency at 5,000 msg/s, and its peak memory.
//!
//! Run with `cargo bench --bench load`. It starts a private redis-server and
//! `secondme worker`, writes entries the way the seed's gateway does
//! (`XADD ... MAXLEN ~ 1000`, which drops unread entries when the worker lags,
//! so loss is measurable) and counts the replies published on `events:messages`.
//! On Redis 8.2+ one more step writes at 50,000/s with `XADD ... ACKED MAXLEN ~ 1000`,
//! as SecondMe's own writers do, where a lagging worker means delay, not loss.
//! `BENCH_WORKER_CONFIG` (TOML, e.g. `batch_size = 256`) is handed to the worker
//! as its config file, to compare settings on the same machine.

mod common;

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use futures_util::StreamExt;
use redis::AsyncCommands;
use redis::aio::MultiplexedConnection;
use secondme::schema;
use secondme::server::RedisServer;

/// Rates of the loss table, msg/s.
const RATES: [u64; 7] = [5_000, 10_000, 15_000, 20_000, 50_000, 75_000, 100_000];
/// Sending time of each step.
const STEP: Duration = Duration::from_secs(3);
/// Longest wait for the worker to catch up after a step (the wait ends sooner when
/// replies stop coming for a second).
const DRAIN: Duration = Duration::from_secs(30);
/// Rate and longest catch-up of the extra step whose producer trims with `ACKED`.
const ACKED_RATE: u64 = 50_000;
const ACKED_DRAIN: Duration = Duration::from_secs(30);
/// Rate and length of a longer burst, beyond what the read-ahead holds by default:
/// where the 3 s steps end and sustained throughput begins.
const LONG_RATE: u64 = 50_000;
const LONG_STEP: Duration = Duration::from_secs(10);
/// How often the generator writes a pipelined batch.
const TICK: Duration = Duration::from_millis(2);
/// Distinct contacts; messages cycle through them so none passes the rate limit
/// (10 a minute) over the whole run (about 1.5M messages, at most 2M).
const CONTACTS: u64 = 200_000;
/// Messages of each floor run, and how many runs (median).
const FLOOR_MESSAGES: u64 = 50_000;
const FLOOR_RUNS: usize = 3;
/// Budget from issue 2.
const BUDGET_RATE: u64 = 50_000;
const BUDGET_P99_MS: f64 = 20.0;
const BUDGET_RSS_MB: f64 = 50.0;

/// Replies seen per step: count and latencies in microseconds.
#[derive(Default)]
struct Seen {
    answered: HashMap<u32, u64>,
    latencies_us: HashMap<u32, Vec<u64>>,
}

struct StepResult {
    rate: u64,
    sent: u64,
    send_secs: f64,
    answered: u64,
    p50_ms: f64,
    p99_ms: f64,
}

/// The worker child; killed when the bench ends.
struct WorkerChild(Child);

impl Drop for WorkerChild {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn main() -> Result<()> {
    // `cargo bench` passes `--bench`; there is nothing to filter.
    common::on_two_threads(run())
}

async fn run() -> Result<()> {
    let server = RedisServer::start_default().context("start redis-server")?;
    let client = redis::Client::open(server.url()).context("redis client")?;
    // Big pipelines at high rates outlast the default response timeout.
    let config =
        redis::AsyncConnectionConfig::new().set_response_timeout(Some(Duration::from_secs(30)));
    let mut con = client
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .context("connect")?;
    let info: String = redis::cmd("INFO")
        .arg("server")
        .query_async(&mut con)
        .await?;
    let version = info
        .lines()
        .find_map(|l| l.strip_prefix("redis_version:"))
        .unwrap_or("?")
        .trim()
        .to_owned();
    prepare(&mut con).await?;
    let floor_us = floor_us_per_message(&mut con).await?;

    let dir = std::env::temp_dir().join(format!("secondme-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let mut worker = spawn_worker(&server.url(), &dir)?;
    wait_for_consumer(&mut con, &mut worker).await?;

    let base = Instant::now();
    let seen = Arc::new(Mutex::new(Seen::default()));
    let subscriber = subscribe(&client, base, Arc::clone(&seen)).await?;

    println!();
    println!(
        "SecondMe load bench: {} cores, Redis {version}, worker pid {}",
        cores(),
        worker.0.id()
    );
    println!(
        "Redis floor (the contract's least work per message, in one script, no client I/O, \
         median of {FLOOR_RUNS}): {floor_us:.1} us/msg, at most {:.0} msg/s on one Redis core",
        1e6 / floor_us
    );
    println!(
        "each step: {} s of XADD MAXLEN ~ 1000 (pipelined every {} ms), then up to {} s for the \
         last replies; 'caught up' is the time from the last send to the last reply, \
         'answered/s' the replies over sending and catching up",
        STEP.as_secs(),
        TICK.as_millis(),
        DRAIN.as_secs()
    );
    println!();
    println!(
        "{:>10} {:>10} {:>10} {:>10} {:>9} {:>9} {:>9} {:>11} {:>11}",
        "target/s",
        "sent/s",
        "sent",
        "answered",
        "lost",
        "p50 ms",
        "p99 ms",
        "caught up",
        "answered/s"
    );
    let mut results = Vec::new();
    let mut next_id = 0u64;
    for (step, rate) in RATES.iter().enumerate() {
        let step = step as u32;
        let (sent, send_secs) =
            generate(&mut con, base, step, *rate, STEP, &mut next_id, false).await?;
        let waited = drain(&seen, step, sent, DRAIN).await.as_secs_f64();
        let r = summarize(&seen, step, *rate, sent, send_secs);
        let caught_up = if r.answered >= r.sent {
            format!("{waited:.1} s")
        } else {
            "never".to_owned()
        };
        println!(
            "{:>10} {:>10.0} {:>10} {:>10} {:>9} {:>9.2} {:>9.2} {:>11} {:>11.0}",
            r.rate,
            r.sent as f64 / r.send_secs,
            r.sent,
            r.answered,
            r.sent.saturating_sub(r.answered),
            r.p50_ms,
            r.p99_ms,
            caught_up,
            r.answered as f64 / (r.send_secs + waited)
        );
        results.push(r);
        if worker.0.try_wait()?.is_some() {
            bail!("the worker exited during the bench; see {}", dir.display());
        }
    }
    let long = {
        let step = RATES.len() as u32;
        let (sent, send_secs) = generate(
            &mut con,
            base,
            step,
            LONG_RATE,
            LONG_STEP,
            &mut next_id,
            false,
        )
        .await?;
        let waited = drain(&seen, step, sent, DRAIN).await.as_secs_f64();
        let r = summarize(&seen, step, LONG_RATE, sent, send_secs);
        (r, waited)
    };
    let acked = if version_at_least(&version, 8, 2) {
        let step = RATES.len() as u32 + 1;
        let (sent, send_secs) =
            generate(&mut con, base, step, ACKED_RATE, STEP, &mut next_id, true).await?;
        let waited = drain(&seen, step, sent, ACKED_DRAIN).await;
        Some((summarize(&seen, step, ACKED_RATE, sent, send_secs), waited))
    } else {
        None
    };
    subscriber.abort();

    let best = results
        .iter()
        .take_while(|r| r.answered >= r.sent)
        .map(|r| r.rate)
        .last();
    let at_5k = results.iter().find(|r| r.rate == 5_000);
    let hwm_mb = common::memory_mb(worker.0.id(), "VmHWM:");
    let stats: HashMap<String, i64> = con.hgetall(schema::stats()).await.unwrap_or_default();

    println!();
    match best {
        Some(rate) => println!("highest rate with no loss: {rate} msg/s"),
        None => println!("highest rate with no loss: none (loss already at 5,000 msg/s)"),
    }
    if let Some(r) = at_5k {
        println!(
            "latency at 5,000 msg/s: p50 {:.2} ms, p99 {:.2} ms",
            r.p50_ms, r.p99_ms
        );
    }
    let (r, waited) = &long;
    println!(
        "a {} s burst at {LONG_RATE}/s (past what the default read-ahead holds): sent {}, \
         answered {}, lost {}, {:.0} answered/s over sending and catching up",
        LONG_STEP.as_secs(),
        r.sent,
        r.answered,
        r.sent.saturating_sub(r.answered),
        r.answered as f64 / (r.send_secs + waited)
    );
    if let Some((r, waited)) = &acked {
        println!(
            "with XADD ACKED MAXLEN ~ 1000 at {ACKED_RATE}/s (Redis 8.2+): sent {}, answered {}, lost {}, \
             all answered {:.1} s after the last send, p99 {:.0} ms",
            r.sent,
            r.answered,
            r.sent.saturating_sub(r.answered),
            waited.as_secs_f64(),
            r.p99_ms
        );
    }
    match hwm_mb {
        Some(mb) => println!("worker peak resident memory (VmHWM): {mb:.1} MB"),
        None => println!("worker peak resident memory: unavailable"),
    }
    println!("worker counters (SECONDME:stats): {:?}", sorted(&stats));
    let info: String = redis::cmd("INFO").arg("all").query_async(&mut con).await?;
    let redis_cpu: f64 = ["used_cpu_user:", "used_cpu_sys:"]
        .iter()
        .filter_map(|k| info.lines().find_map(|l| l.strip_prefix(k)))
        .filter_map(|v| v.trim().parse::<f64>().ok())
        .sum();
    println!(
        "CPU seconds over {:.0} s: redis-server {redis_cpu:.1}, worker {:.1}, this bench (producer and subscriber) {:.1}",
        base.elapsed().as_secs_f64(),
        common::cpu_secs(worker.0.id()).unwrap_or(f64::NAN),
        common::cpu_secs(std::process::id()).unwrap_or(f64::NAN)
    );
    // One FCALL per batch is the whole decision: the calls against the answers
    // show the one-round-trip-per-batch property.
    let fcalls = info
        .lines()
        .find_map(|l| l.strip_prefix("cmdstat_fcall:calls="))
        .and_then(|v| v.split(',').next())
        .and_then(|v| v.parse::<u64>().ok());
    let answered = stats.get("answered").copied().unwrap_or(0);
    if let Some(calls) = fcalls.filter(|c| *c > 0) {
        println!(
            "decision round trips: {calls} FCALLs for {answered} answered messages ({:.1} messages per call)",
            answered as f64 / calls as f64
        );
    }
    for line in info.lines().filter(|l| {
        l.starts_with("cmdstat_fcall")
            || l.starts_with("cmdstat_xadd")
            || l.starts_with("cmdstat_xreadgroup")
            || l.starts_with("cmdstat_publish")
    }) {
        println!("  {line}");
    }
    println!();
    println!("budget                          target        measured   verdict");
    let rate_ok = best.is_some_and(|b| b >= BUDGET_RATE);
    println!(
        "no loss at                      >= {BUDGET_RATE}/s   {:>9}   {}",
        best.map_or("none".to_owned(), |b| format!("{b}/s")),
        verdict(rate_ok)
    );
    if let Some(r) = at_5k {
        println!(
            "p99 at 5,000/s                  < {BUDGET_P99_MS} ms      {:>9}   {}",
            format!("{:.2} ms", r.p99_ms),
            verdict(r.p99_ms < BUDGET_P99_MS)
        );
    }
    if let Some(mb) = hwm_mb {
        println!(
            "worker resident memory          < {BUDGET_RSS_MB} MB      {:>9}   {}",
            format!("{mb:.1} MB"),
            verdict(mb < BUDGET_RSS_MB)
        );
    }
    drop(worker);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

fn verdict(ok: bool) -> &'static str {
    if ok { "ok" } else { "SHORT" }
}

fn sorted(stats: &HashMap<String, i64>) -> Vec<(&str, i64)> {
    let mut v: Vec<(&str, i64)> = stats.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    v.sort();
    v
}

/// Median Redis time per message of `benches/floor.lua`, in microseconds, on keys
/// of its own (removed afterwards) before the worker starts.
async fn floor_us_per_message(con: &mut MultiplexedConnection) -> Result<f64> {
    let script = redis::Script::new(include_str!("floor.lua"));
    let mut runs = Vec::with_capacity(FLOOR_RUNS);
    for _ in 0..FLOOR_RUNS {
        let _: () = redis::pipe()
            .del(&["floor:stream", "floor:responses"])
            .cmd("XGROUP")
            .arg("CREATE")
            .arg("floor:stream")
            .arg("floor")
            .arg("$")
            .arg("MKSTREAM")
            .query_async(con)
            .await
            .context("floor: create the stream")?;
        let started = Instant::now();
        let n: u64 = script
            .key("floor:stream")
            .key("floor:responses")
            .arg(FLOOR_MESSAGES)
            .arg("floor")
            .arg("floor:events")
            .invoke_async(con)
            .await
            .context("floor script")?;
        runs.push(started.elapsed().as_secs_f64() * 1e6 / n.max(1) as f64);
    }
    let counters: Vec<String> = con.keys("floor:*").await?;
    for chunk in counters.chunks(10_000) {
        let _: () = con.del(chunk).await?;
    }
    runs.sort_by(f64::total_cmp);
    Ok(runs[runs.len() / 2])
}

fn version_at_least(version: &str, major: u32, minor: u32) -> bool {
    let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    let (a, b) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    (a, b) >= (major, minor)
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// The twin may answer: state marker, no kill switch, every bench contact enabled.
async fn prepare(con: &mut MultiplexedConnection) -> Result<()> {
    let _: () = con.set(schema::state_marker(), "bench").await?;
    let _: () = con.del(schema::pause_all()).await?;
    let ids: Vec<String> = (0..CONTACTS).map(contact).collect();
    for chunk in ids.chunks(10_000) {
        let _: () = con.sadd(schema::optin_contacts(), chunk).await?;
    }
    Ok(())
}

fn contact(i: u64) -> String {
    format!("c{i}")
}

/// The worker binary cargo built for this bench (release profile).
fn worker_binary() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_BIN_EXE_secondme"))
}

fn spawn_worker(url: &str, dir: &std::path::Path) -> Result<WorkerChild> {
    let config = dir.join("config.toml");
    std::fs::write(
        &config,
        std::env::var("BENCH_WORKER_CONFIG").unwrap_or_default(),
    )?;
    let log = std::fs::File::create(dir.join("worker.log"))?;
    let child = Command::new(worker_binary())
        .arg("--config")
        .arg(&config)
        .arg("--redis-url")
        .arg(url)
        .arg("--consumer")
        .arg("bench")
        .arg("--review-file")
        .arg(dir.join("review.jsonl"))
        .arg("worker")
        // Keep the developer's config and state out of the run.
        .env("XDG_CONFIG_HOME", dir)
        .env("XDG_STATE_HOME", dir)
        .env("SECONDME_LOG", "error")
        .env_remove("SECONDME_REDIS_URL")
        .env_remove("SECONDME_LOG_FILE")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(log))
        .spawn()
        .with_context(|| format!("cannot start {}", worker_binary().display()))?;
    Ok(WorkerChild(child))
}

async fn wait_for_consumer(
    con: &mut MultiplexedConnection,
    worker: &mut WorkerChild,
) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if worker.0.try_wait()?.is_some() {
            bail!("the worker exited at start");
        }
        let consumers: redis::RedisResult<redis::streams::StreamInfoConsumersReply> = con
            .xinfo_consumers(schema::queue_messages(), schema::WORKER_GROUP)
            .await;
        if consumers.is_ok_and(|c| !c.consumers.is_empty()) {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    bail!("the worker did not join the group within 10 s")
}

/// Subscribes to `events:messages` and records, per step, each twin reply and
/// its latency (the send time travels in the message id).
async fn subscribe(
    client: &redis::Client,
    base: Instant,
    seen: Arc<Mutex<Seen>>,
) -> Result<tokio::task::JoinHandle<()>> {
    let mut pubsub = client.get_async_pubsub().await?;
    pubsub.subscribe(schema::channel_messages()).await?;
    Ok(tokio::spawn(async move {
        let mut stream = pubsub.into_on_message();
        while let Some(msg) = stream.next().await {
            let now_us = base.elapsed().as_micros() as u64;
            let payload = msg.get_payload_bytes();
            // Half the traffic is the incoming messages themselves: skip them without
            // a full parse, so the harness takes less CPU from the system it measures.
            if !payload.windows(14).any(|w| w == b"\"botSent\":true") {
                continue;
            }
            let Ok(ev) = serde_json::from_slice::<schema::MessageEvent>(payload) else {
                continue;
            };
            if !ev.bot_sent {
                continue;
            }
            // Reply ids are `bot_{messageId}`, message ids `s{step}_{seq}_{sentUs}`.
            let Some((step, sent_us)) = parse_id(&ev.message_id) else {
                continue;
            };
            let mut s = seen.lock().unwrap_or_else(|e| e.into_inner());
            *s.answered.entry(step).or_default() += 1;
            s.latencies_us
                .entry(step)
                .or_default()
                .push(now_us.saturating_sub(sent_us));
        }
    }))
}

fn parse_id(reply_id: &str) -> Option<(u32, u64)> {
    let rest = reply_id.strip_prefix("bot_s")?;
    let mut parts = rest.split('_');
    let step = parts.next()?.parse().ok()?;
    let _seq = parts.next()?;
    let sent = parts.next()?.parse().ok()?;
    Some((step, sent))
}

/// Writes `rate` msg/s for `length`, pipelined every `TICK`; returns how many were
/// sent and how long sending took.
async fn generate(
    con: &mut MultiplexedConnection,
    base: Instant,
    step: u32,
    rate: u64,
    length: Duration,
    next_id: &mut u64,
    acked: bool,
) -> Result<(u64, f64)> {
    let start = Instant::now();
    let total = rate * length.as_secs();
    let mut sent = 0u64;
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    while sent < total {
        tick.tick().await;
        // Catch up to the schedule, so late ticks do not lower the rate.
        let due = ((start.elapsed().as_secs_f64() * rate as f64) as u64).min(total);
        if due <= sent {
            continue;
        }
        let sent_us = base.elapsed().as_micros() as u64;
        let now_ms = secondme::store::now_ms();
        let mut pipe = redis::pipe();
        for _ in sent..due {
            let seq = *next_id;
            *next_id += 1;
            let xadd = pipe.cmd("XADD").arg(schema::queue_messages());
            if acked {
                xadd.arg("ACKED");
            }
            xadd.arg("MAXLEN")
                .arg("~")
                .arg(schema::QUEUE_MESSAGES_CAP)
                .arg("*")
                .arg("messageId")
                .arg(format!("s{step}_{seq}_{sent_us}"))
                .arg("contactId")
                .arg(contact(seq % CONTACTS))
                .arg("content")
                .arg("are we still on for dinner tonight?")
                .arg("timestamp")
                .arg(now_ms)
                .arg("direction")
                .arg("incoming")
                .arg("fromMe")
                .arg("false")
                .ignore();
        }
        pipe.exec_async(con).await.context("XADD pipeline")?;
        sent = due;
    }
    Ok((sent, start.elapsed().as_secs_f64()))
}

/// Waits until every message of the step is answered, or answers stop coming
/// for a second, or `longest` passes; returns when the last reply was seen.
async fn drain(seen: &Arc<Mutex<Seen>>, step: u32, sent: u64, longest: Duration) -> Duration {
    let start = Instant::now();
    let deadline = start + longest;
    let mut last = 0;
    let mut last_change = start;
    while Instant::now() < deadline {
        let answered = answered(seen, step);
        if answered >= sent {
            return start.elapsed();
        }
        if answered != last {
            last = answered;
            last_change = Instant::now();
        } else if last_change.elapsed() > Duration::from_secs(1) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    last_change - start
}

fn answered(seen: &Arc<Mutex<Seen>>, step: u32) -> u64 {
    let s = seen.lock().unwrap_or_else(|e| e.into_inner());
    s.answered.get(&step).copied().unwrap_or(0)
}

fn summarize(
    seen: &Arc<Mutex<Seen>>,
    step: u32,
    rate: u64,
    sent: u64,
    send_secs: f64,
) -> StepResult {
    let mut s = seen.lock().unwrap_or_else(|e| e.into_inner());
    let answered = s.answered.get(&step).copied().unwrap_or(0);
    let lat = s.latencies_us.entry(step).or_default();
    lat.sort_unstable();
    StepResult {
        rate,
        sent,
        send_secs,
        answered,
        p50_ms: percentile(lat, 0.50),
        p99_ms: percentile(lat, 0.99),
    }
}

fn percentile(sorted_us: &[u64], q: f64) -> f64 {
    if sorted_us.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted_us.len() as f64 - 1.0) * q).round() as usize;
    sorted_us[i.min(sorted_us.len() - 1)] as f64 / 1000.0
}
