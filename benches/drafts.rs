//! Approving drafts (issue 21): the time from the approval to the reply on
//! `QUEUE:responses`, as a reader of that stream (the gateway) sees it, over
//! 1,000 approvals, with 1,000 drafts waiting when the first is approved.
//!
//! The real worker (in this process, the persona engine, every contact in draft
//! mode) writes one draft for each of 1,000 contacts on a private redis-server;
//! then the drafts are approved one after the other, as the control room's `a`
//! does, while a task blocks on `XREAD` of `QUEUE:responses` and notes when each
//! reply arrives. Prints p50/p99/max of that time and of the approval's own
//! round trip; fails when p99 reaches 50 ms.
//!
//! Run with `cargo bench --bench drafts`.

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use redis::AsyncCommands;
use redis::aio::MultiplexedConnection;
use redis::streams::{StreamReadOptions, StreamReadReply};
use secondme::config::{Config, Settings, SleepSetting};
use secondme::connection::Con;
use secondme::reply::persona_engine::PersonaEngine;
use secondme::schema::{self, Direction, QueueMessage};
use secondme::store::drafts::{self, Decision};
use secondme::store::{self, queue};
use secondme::worker::{Worker, WorkerConfig};
use tokio::sync::watch;

const DRAFTS: usize = 1_000;
const GOAL_P99: Duration = Duration::from_millis(50);

fn main() -> Result<()> {
    common::on_two_threads(run())
}

async fn run() -> Result<()> {
    let server = secondme::server::RedisServer::start_default().context("start redis-server")?;
    let dir = std::env::temp_dir().join(format!("secondme-drafts-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let result = approvals(&server.url(), &dir).await;
    let _ = std::fs::remove_dir_all(&dir);
    result
}

async fn approvals(url: &str, dir: &std::path::Path) -> Result<()> {
    let client = secondme::connection::open_client(url)?;
    let mut con = secondme::connection::manager(&client, None).await?;
    let contacts: Vec<String> = (0..DRAFTS).map(|i| format!("c{i:04}")).collect();
    let _: () = redis::pipe()
        .set(schema::state_marker(), 1)
        .sadd(schema::optin_contacts(), &contacts)
        .query_async(&mut con)
        .await?;

    let (stop, stop_rx) = watch::channel(false);
    let worker = Worker::connect(
        client.clone(),
        PersonaEngine::default(),
        worker_config(url, dir)?,
    )
    .await?;
    let task = tokio::spawn(worker.run(stop_rx));
    let written = Instant::now();
    send(&mut con, &contacts).await?;
    wait_for_drafts(&mut con).await?;
    println!(
        "{DRAFTS} drafts written by the worker in {:.2} s",
        written.elapsed().as_secs_f64()
    );
    let _ = stop.send(true);
    tokio::time::timeout(Duration::from_secs(20), task)
        .await
        .context("the worker did not stop in 20 s")???;

    let waiting = drafts::list(&mut con).await?;
    let arrived = watch_responses(url).await?;
    let mut to_stream = Vec::with_capacity(waiting.len());
    let mut round_trips = Vec::with_capacity(waiting.len());
    for d in &waiting {
        let reply_id = format!("bot_{}", d.in_reply_to);
        let start = Instant::now();
        let decided = drafts::approve(&mut con, &d.draft_id, None).await?;
        round_trips.push(start.elapsed());
        if decided != Decision::Done {
            bail!("draft {} was not approved: {decided:?}", d.draft_id);
        }
        to_stream.push(arrival(&arrived, &reply_id).await? - start);
    }
    let sent: usize = con.xlen(schema::queue_responses()).await?;
    if sent != DRAFTS {
        bail!("{sent} replies on QUEUE:responses for {DRAFTS} approvals");
    }
    let p99 = report("approval to the reply on QUEUE:responses", &mut to_stream);
    report("the approval's round trip", &mut round_trips);
    if p99 >= GOAL_P99 {
        bail!("p99 {p99:?} is not under {GOAL_P99:?}");
    }
    Ok(())
}

fn worker_config(url: &str, dir: &std::path::Path) -> Result<WorkerConfig> {
    let config = Config::resolve(Settings {
        redis_url: Some(url.to_owned()),
        consumer: Some("bench-drafts".to_owned()),
        review_file: Some(dir.join("review.jsonl")),
        reply_mode: Some("draft".to_owned()),
        ..Default::default()
    })?;
    let mut cfg = WorkerConfig::from_config(&config);
    cfg.sleep_hours = SleepSetting::Off;
    Ok(cfg)
}

/// One message from each contact, in one pipeline.
async fn send(con: &mut Con, contacts: &[String]) -> Result<()> {
    let now = store::now_ms();
    let mut pipe = redis::pipe();
    for c in contacts {
        let m = QueueMessage {
            message_id: format!("m-{c}"),
            contact_id: c.clone(),
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

async fn wait_for_drafts(con: &mut Con) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let n: usize = con.zcard(schema::drafts::drafts_key()).await?;
        if n == DRAFTS {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("only {n} of {DRAFTS} drafts after 60 s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

type Arrivals = Arc<Mutex<HashMap<String, Instant>>>;

/// Notes when each entry of `QUEUE:responses` arrives, by its `replyId`, on a
/// connection of its own that blocks on `XREAD` as a gateway's reader does.
async fn watch_responses(url: &str) -> Result<Arrivals> {
    let client = redis::Client::open(url)?;
    let mut reader: MultiplexedConnection = client.get_multiplexed_async_connection().await?;
    let seen: Arrivals = Arc::default();
    let out = Arc::clone(&seen);
    tokio::spawn(async move {
        let mut last = "$".to_owned();
        let opts = StreamReadOptions::default().block(1000).count(100);
        loop {
            let read: redis::RedisResult<Option<StreamReadReply>> = reader
                .xread_options(&[schema::queue_responses()], &[&last], &opts)
                .await;
            let Ok(Some(reply)) = read else { continue };
            let at = Instant::now();
            for entry in reply.keys.into_iter().flat_map(|k| k.ids) {
                last = entry.id.clone();
                let id: Option<String> = entry.get(schema::response_fields::REPLY_ID);
                if let (Some(id), Ok(mut s)) = (id, out.lock()) {
                    s.insert(id, at);
                }
            }
        }
    });
    // The reader's first XREAD must be waiting before the first approval.
    tokio::time::sleep(Duration::from_millis(200)).await;
    Ok(seen)
}

async fn arrival(arrived: &Arrivals, reply_id: &str) -> Result<Instant> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let at = arrived.lock().ok().and_then(|s| s.get(reply_id).copied());
        if let Some(at) = at {
            return Ok(at);
        }
        if Instant::now() > deadline {
            bail!("reply {reply_id} never reached QUEUE:responses");
        }
        tokio::time::sleep(Duration::from_micros(200)).await;
    }
}

/// Prints p50, p99 and the maximum of `times`; returns p99.
fn report(what: &str, times: &mut [Duration]) -> Duration {
    times.sort_unstable();
    let at = |q: f64| times[((times.len() as f64 * q).ceil() as usize).clamp(1, times.len()) - 1];
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let (p50, p99, max) = (at(0.50), at(0.99), times[times.len() - 1]);
    println!(
        "{what}, {} approvals: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        times.len(),
        ms(p50),
        ms(p99),
        ms(max)
    );
    p99
}
