//! The cost of `WAIT` per message (`replicas_to_wait` 0 against 1), on a local
//! primary with one replica (the test harness's `Replicated`, fresh per round):
//! - the gateway's commit of one inbound message (`Inbox::commit`, what
//!   WhatsApp waits for before its acknowledgement), one at a time;
//! - the worker's latency, from the `XADD` of one message to its outcome
//!   counted, one message at a time (a batch of one: one `WAIT` each);
//! - the worker's throughput on a backlog (batches: one `WAIT` per batch).
//!
//! Run with `cargo bench --bench durability`. Five rounds; medians and ratios.

mod common;
#[allow(dead_code)]
#[path = "../tests/common/nodes.rs"]
mod nodes;
#[allow(dead_code)]
#[path = "../tests/common/replicated.rs"]
mod replicated;

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use replicated::Replicated;
use secondme::bridge::whatsapp::inbox::{Directory, Inbox};
use secondme::bridge::whatsapp::link::Inbound;
use secondme::config::{Config, Overrides, SleepSetting};
use secondme::connection::{self, Con};
use secondme::reply::persona_engine::PersonaEngine;
use secondme::schema::{self, Direction, QueueMessage};
use secondme::store::queue;
use secondme::worker::{Worker, WorkerConfig, WorkerState, WorkerStatus};
use tokio::sync::watch;

const ROUNDS: usize = 5;
/// Inbound commits timed one at a time.
const COMMITS: usize = 1_000;
/// Messages answered one at a time.
const SINGLES: usize = 300;
/// Messages in the backlog.
const BACKLOG: usize = 10_000;

/// One round's figures for one setting.
#[derive(Default, Clone, Copy)]
struct Figures {
    /// Median inbound commit, µs.
    commit_us: f64,
    /// Median worker latency per message, µs.
    latency_us: f64,
    /// Backlog drained, messages a second.
    per_second: f64,
}

/// One figure of a round.
type Pick = fn(&Figures) -> f64;

fn main() -> Result<()> {
    common::on_two_threads(run())
}

async fn run() -> Result<()> {
    let (mut without, mut with) = (Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        for (replicas, out) in [(0, &mut without), (1, &mut with)] {
            let f = one_round(replicas).await?;
            println!(
                "round {round}, replicas_to_wait = {replicas}: commit {:7.1} µs, worker latency {:7.1} µs, backlog {:7.0} msg/s",
                f.commit_us, f.latency_us, f.per_second
            );
            out.push(f);
        }
    }
    let median = |v: &[Figures], pick: Pick| {
        let mut xs: Vec<f64> = v.iter().map(pick).collect();
        xs.sort_by(f64::total_cmp);
        xs[xs.len() / 2]
    };
    println!("cost of WAIT per message, local primary + 1 replica, {ROUNDS} rounds (medians)");
    println!(
        "                                         replicas_to_wait=0  replicas_to_wait=1   ratio"
    );
    let rows: [(&str, Pick); 3] = [
        ("gateway commit of one message (µs)", |f| f.commit_us),
        ("worker, one message at a time (µs)", |f| f.latency_us),
        ("worker, backlog of 10,000 (msg/s)", |f| f.per_second),
    ];
    for (name, pick) in rows {
        let (a, b) = (median(&without, pick), median(&with, pick));
        println!("{name:<40} {a:>18.1} {b:>19.1} {:>7.2}x", b / a);
    }
    Ok(())
}

/// A fresh primary and replica: the three measures with `replicas` to wait.
async fn one_round(replicas: u32) -> Result<Figures> {
    let topo = Replicated::start().await;
    let client = connection::open_client(&topo.url())?;
    let mut con = connection::manager(&client, None).await?;
    let contacts: Vec<String> = (0..BACKLOG.max(SINGLES)).map(|i| format!("c{i}")).collect();
    let _: () = redis::pipe()
        .set(schema::state_marker(), 1)
        .ignore()
        .sadd(schema::optin_contacts(), &contacts)
        .ignore()
        .query_async(&mut con)
        .await?;
    let dir = std::env::temp_dir().join(format!(
        "secondme-bench-durability-{}-{replicas}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir)?;
    let commit_us = commits(&con, replicas, &dir).await?;
    let _: () = redis::cmd("DEL")
        .arg(schema::queue_messages())
        .query_async(&mut con)
        .await?;
    let (mut status, stop, task) = worker(&topo, replicas, &dir).await?;
    let latency_us = singles(&mut con, &mut status).await?;
    let per_second = backlog(&mut con, &mut status).await?;
    let _ = stop.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(15), task).await;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(Figures {
        commit_us,
        latency_us,
        per_second,
    })
}

/// Median time of one inbound commit, µs.
async fn commits(con: &Con, replicas: u32, dir: &std::path::Path) -> Result<f64> {
    let directory = Directory::open(dir.join("contacts.json"))?;
    let inbox = Inbox::new(con.clone(), false, directory).waiting_for(replicas);
    let mut times = Vec::with_capacity(COMMITS);
    for i in 0..COMMITS {
        // One contact: a new one would rewrite the contact directory's file (an fsync).
        let mut message = message(i, "g");
        message.contact_id = "c0".to_owned();
        let m = Inbound {
            message,
            address: "15550001111@s.whatsapp.net".to_owned(),
            push_name: None,
            media: None,
        };
        let started = Instant::now();
        inbox.commit(&[m]).await?;
        times.push(started.elapsed().as_secs_f64() * 1e6);
    }
    Ok(median(times))
}

fn message(i: usize, prefix: &str) -> QueueMessage {
    QueueMessage {
        message_id: format!("{prefix}{i}"),
        contact_id: format!("c{i}"),
        content: "are we still on for tonight?".into(),
        timestamp: secondme::store::now_ms(),
        direction: Direction::Incoming,
        from_me: false,
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

type Task = tokio::task::JoinHandle<Result<WorkerStatus>>;

/// The real worker (instant engine) on `topo`, running.
async fn worker(
    topo: &Replicated,
    replicas: u32,
    dir: &std::path::Path,
) -> Result<(watch::Receiver<WorkerStatus>, watch::Sender<bool>, Task)> {
    let file = dir.join("config.toml");
    std::fs::write(&file, "")?;
    let config = Config::load(
        Some(&file),
        Overrides {
            redis_url: Some(topo.url()),
            consumer: Some("w-bench".to_owned()),
            replicas_to_wait: Some(replicas),
            review_file: Some(dir.join("review.jsonl")),
            ..Overrides::default()
        },
    )?;
    let mut cfg = WorkerConfig::from_config(&config);
    cfg.sleep_hours = SleepSetting::Off;
    let client = connection::open_client(&topo.url())?;
    let w = Worker::connect(client, PersonaEngine::default(), cfg).await?;
    let mut status = w.status();
    let (stop, stop_rx) = watch::channel(false);
    let task = tokio::spawn(w.run(stop_rx));
    tokio::time::timeout(
        Duration::from_secs(10),
        status.wait_for(|s| s.state == WorkerState::Running),
    )
    .await
    .context("the worker did not start")??;
    Ok((status, stop, task))
}

/// Median time from the `XADD` of one message to its outcome counted, µs.
async fn singles(con: &mut Con, status: &mut watch::Receiver<WorkerStatus>) -> Result<f64> {
    let mut times = Vec::with_capacity(SINGLES);
    for i in 0..SINGLES {
        let before = status.borrow().entries;
        let started = Instant::now();
        let _: String = queue::xadd(&message(i, "s"), false)
            .query_async(con)
            .await?;
        tokio::time::timeout(
            Duration::from_secs(10),
            status.wait_for(|s| s.entries > before),
        )
        .await
        .context("no outcome in 10 s")??;
        times.push(started.elapsed().as_secs_f64() * 1e6);
    }
    check_replicated(status)?;
    Ok(median(times))
}

/// Messages answered a second, from a backlog written at once.
async fn backlog(con: &mut Con, status: &mut watch::Receiver<WorkerStatus>) -> Result<f64> {
    let before = status.borrow().entries;
    let started = Instant::now();
    for chunk in (0..BACKLOG).collect::<Vec<_>>().chunks(1000) {
        let mut pipe = redis::pipe();
        for &i in chunk {
            pipe.add_command(queue::xadd(&message(i, "b"), false))
                .ignore();
        }
        let _: () = pipe.query_async(con).await?;
    }
    let target = before + BACKLOG as u64;
    tokio::time::timeout(
        Duration::from_secs(120),
        status.wait_for(|s| s.entries >= target),
    )
    .await
    .context("the backlog was not drained in 120 s")??;
    check_replicated(status)?;
    Ok(BACKLOG as f64 / started.elapsed().as_secs_f64())
}

/// A measure with a WAIT that failed measured something else.
fn check_replicated(status: &watch::Receiver<WorkerStatus>) -> Result<()> {
    let s = status.borrow();
    if s.unreplicated > 0 {
        bail!(
            "{} outcomes were not confirmed on the replica",
            s.unreplicated
        );
    }
    Ok(())
}
