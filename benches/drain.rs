//! Drain throughput against a baseline in the same run: how fast the real worker
//! answers a backlog of 30,000 queued messages, next to a consumer that does the
//! seed's reference operations one round trip at a time (read, check pause, count,
//! reply, delete). Both run on their own fresh private redis-server.
//!
//! Run with `cargo bench --bench drain`. Three rounds; medians and the ratio.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use redis::AsyncCommands;
use redis::aio::MultiplexedConnection;
use secondme::schema::{self, Direction, QueueMessage};
use secondme::server::RedisServer;
use secondme::store::queue;

const BACKLOG: u64 = 30_000;
const ROUNDS: usize = 3;

fn main() -> Result<()> {
    // One thread: the baseline's round trips are not slowed by hops between threads.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("tokio runtime")?;
    runtime.block_on(run())
}

async fn run() -> Result<()> {
    let mut ours = Vec::new();
    let mut seed = Vec::new();
    for _ in 0..ROUNDS {
        seed.push(round(false).await?);
        ours.push(round(true).await?);
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (o, s) = (median(&mut ours), median(&mut seed));
    println!("drain of {BACKLOG} queued messages, {ROUNDS} rounds (median msg/s)");
    println!("seed reference consumer (one round trip per operation)  {s:9.0}");
    println!("secondme worker (batched, one atomic step per batch)    {o:9.0}");
    println!(
        "ratio                                                   {:9.1}x",
        o / s
    );
    Ok(())
}

/// One fresh server, a backlog, and the time to answer all of it.
async fn round(worker: bool) -> Result<f64> {
    let server = RedisServer::start_default().context("start redis-server")?;
    let client = redis::Client::open(server.url())?;
    let mut con = client.get_multiplexed_async_connection().await?;
    prefill(&mut con).await?;
    let started = Instant::now();
    if worker {
        drain_with_worker(&server.url(), &mut con).await?;
    } else {
        drain_seed_style(&mut con).await?;
    }
    Ok(BACKLOG as f64 / started.elapsed().as_secs_f64())
}

async fn prefill(con: &mut MultiplexedConnection) -> Result<()> {
    let ids: Vec<String> = (0..BACKLOG).map(|i| format!("c{i}")).collect();
    let _: () = redis::pipe()
        .set(schema::state_marker(), 1)
        .sadd(schema::optin_contacts(), &ids)
        .query_async(con)
        .await?;
    let now = secondme::store::now_ms();
    for chunk in (0..BACKLOG).collect::<Vec<_>>().chunks(1000) {
        let mut pipe = redis::pipe();
        for i in chunk {
            let m = QueueMessage {
                message_id: format!("m{i}"),
                contact_id: format!("c{i}"),
                content: "are we still on for tonight?".into(),
                timestamp: now,
                direction: Direction::Incoming,
                from_me: false,
            };
            pipe.add_command(queue::xadd(&m, false)).ignore();
        }
        let _: () = pipe.query_async(con).await?;
    }
    Ok(())
}

async fn drain_with_worker(url: &str, con: &mut MultiplexedConnection) -> Result<()> {
    let dir = std::env::temp_dir().join(format!("secondme-drain-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("config.toml"), "")?;
    let mut child = Command::new(env!("CARGO_BIN_EXE_secondme"))
        .arg("--config")
        .arg(dir.join("config.toml"))
        .arg("--redis-url")
        .arg(url)
        .arg("--review-file")
        .arg(dir.join("review.jsonl"))
        .arg("worker")
        .env("SECONDME_LOG", "error")
        .env_remove("SECONDME_REDIS_URL")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("start the worker")?;
    let deadline = Instant::now() + Duration::from_secs(120);
    let result = loop {
        let answered: Option<u64> = con.hget(schema::stats(), "answered").await?;
        if answered.unwrap_or(0) >= BACKLOG {
            break Ok(());
        }
        if Instant::now() > deadline {
            break Err(anyhow::anyhow!(
                "the worker did not drain the backlog in 120 s"
            ));
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    };
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
    result
}

/// The seed's `consumeMessages`, `isPaused` and `checkRateLimit`, one call per
/// round trip, plus a reply publish: reading from the start instead of `$` so it
/// sees the backlog at all.
async fn drain_seed_style(con: &mut MultiplexedConnection) -> Result<()> {
    let mut done = 0u64;
    let mut last = "0".to_owned();
    while done < BACKLOG {
        let reply: Option<redis::streams::StreamReadReply> = con
            .xread_options(
                &[schema::queue_messages()],
                &[last.as_str()],
                &redis::streams::StreamReadOptions::default().count(100),
            )
            .await?;
        let entries: Vec<_> = reply
            .map(|r| r.keys)
            .unwrap_or_default()
            .into_iter()
            .flat_map(|k| k.ids)
            .collect();
        if entries.is_empty() {
            bail!("the backlog ended early at {done}");
        }
        for e in entries {
            last = e.id.clone();
            let contact: String = e.get("contactId").unwrap_or_default();
            let global: bool = con.exists(schema::pause_all()).await?;
            let paused: Option<String> = con.get(schema::pause_key(&contact)).await?;
            let key = schema::counter_key(&contact);
            let count: i64 = con.incr(&key, 1).await?;
            if count == 1 {
                let _: () = con.expire(&key, 60).await?;
            }
            if !global && paused.is_none() {
                let _: i64 = con.publish(schema::channel_messages(), "{}").await?;
            }
            let _: i64 = con.xdel(schema::queue_messages(), &[&e.id]).await?;
            done += 1;
        }
    }
    Ok(())
}
