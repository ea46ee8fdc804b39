//! Replies a second of one worker on a Redis Cluster against a single Redis on
//! the same machine, same workload both ways: the real worker (the instant
//! template engine) in a namespace (which a Cluster requires) answering a
//! backlog of messages written to `{ns}:QUEUE:messages`, and beside it the
//! latency of one message at a time (from its `XADD` to its outcome counted).
//!
//! The Cluster is the test harness's (three primaries with a replica each,
//! `tests/common/cluster.rs`); the single Redis is one `redis-server` on TCP
//! (`tests/common/nodes.rs`), so both are reached the same way. Each round uses
//! a fresh namespace on each and a fresh worker; the rounds alternate which
//! goes first. Every message comes from its own contact: the rate limit (10
//! messages a minute per contact) would otherwise skip most of them, and the
//! measure is of replies.
//!
//! Run with `cargo bench --bench cluster_replies` (about a minute). Three
//! rounds; medians and the ratios.

#[allow(dead_code)]
#[path = "../tests/common/cluster.rs"]
mod cluster;
mod common;
#[allow(dead_code)]
#[path = "../tests/common/nodes.rs"]
mod nodes;

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use cluster::Cluster;
use nodes::{Node, Scratch};
use secondme::config::{Config, Overrides, SleepSetting};
use secondme::connection::{self, Con};
use secondme::reply::persona_engine::PersonaEngine;
use secondme::schema::{self, Direction, QueueMessage};
use secondme::store::{self, queue};
use secondme::worker::{Worker, WorkerConfig, WorkerState, WorkerStatus};
use tokio::sync::watch;

const ROUNDS: usize = 3;
/// Messages in the backlog, one contact each.
const BACKLOG: usize = 20_000;
/// Messages answered one at a time.
const SINGLES: usize = 300;
/// XADDs per pipeline while writing the backlog.
const CHUNK: usize = 1_000;

/// One round's figures on one topology.
#[derive(Clone, Copy)]
struct Figures {
    /// Backlog answered, replies a second.
    per_second: f64,
    /// One message at a time: median, µs.
    p50_us: f64,
    /// One message at a time: 99th percentile, µs.
    p99_us: f64,
}

fn main() -> Result<()> {
    common::on_two_threads(run())
}

async fn run() -> Result<()> {
    let scratch = Scratch::new("bench-single");
    let binary = nodes::server_binary();
    let single = Node::start(&binary, scratch.join("single"), false, nodes::server_args).await;
    let single_url = nodes::url(single.port());
    let cluster = Cluster::start().await;
    let cluster_url = cluster.url();

    let (mut on_single, mut on_cluster) = (Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        let ns = format!("bench{round}");
        let order = if round % 2 == 0 {
            [(&single_url, false), (&cluster_url, true)]
        } else {
            [(&cluster_url, true), (&single_url, false)]
        };
        for (url, is_cluster) in order {
            let f = schema::in_namespace(Some(&ns), one_round(url, &ns)).await?;
            println!(
                "round {round}, {:<7}: backlog {:8.0} replies/s, one at a time p50 {:7.1} µs p99 {:7.1} µs",
                if is_cluster { "cluster" } else { "single" },
                f.per_second,
                f.p50_us,
                f.p99_us
            );
            if is_cluster {
                on_cluster.push(f);
            } else {
                on_single.push(f);
            }
        }
    }
    report(&on_single, &on_cluster);
    Ok(())
}

/// One figure of a round.
type Pick = fn(&Figures) -> f64;

fn report(single: &[Figures], cluster: &[Figures]) {
    let median = |v: &[Figures], pick: Pick| {
        let mut xs: Vec<f64> = v.iter().map(pick).collect();
        xs.sort_by(f64::total_cmp);
        xs[xs.len() / 2]
    };
    println!();
    println!(
        "one worker (instant engine), namespace required by the Cluster, {ROUNDS} rounds (medians)"
    );
    println!(
        "                                          single Redis   Cluster (3x2)   cluster/single"
    );
    let rows: [(&str, Pick); 3] = [
        ("backlog of 20,000 (replies/s)", |f| f.per_second),
        ("one at a time, p50 (µs)", |f| f.p50_us),
        ("one at a time, p99 (µs)", |f| f.p99_us),
    ];
    for (name, pick) in rows {
        let (s, c) = (median(single, pick), median(cluster, pick));
        println!("{name:<40} {s:>14.1} {c:>15.1} {:>15.2}x", c / s);
    }
}

/// In the namespace in effect: the contacts enabled, a worker running, the
/// one-at-a-time latencies, then the backlog.
async fn one_round(url: &str, ns: &str) -> Result<Figures> {
    let client = connection::open_client(url)?;
    let mut con = connection::manager(&client, None).await?;
    enable_contacts(&mut con).await?;
    let dir = std::env::temp_dir().join(format!(
        "secondme-bench-cluster-{}-{ns}-{}",
        std::process::id(),
        client.is_cluster()
    ));
    std::fs::create_dir_all(&dir)?;
    let (mut status, stop, task) = worker(url, ns, &dir).await?;
    let (p50_us, p99_us) = singles(&mut con, &mut status).await?;
    let per_second = backlog(&mut con, &mut status).await?;
    let _ = stop.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(15), task).await;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(Figures {
        per_second,
        p50_us,
        p99_us,
    })
}

fn contact(i: usize) -> String {
    format!("c{i}")
}

async fn enable_contacts(con: &mut Con) -> Result<()> {
    let _: () = redis::cmd("SET")
        .arg(schema::state_marker())
        .arg(1)
        .query_async(con)
        .await?;
    let ids: Vec<String> = (0..BACKLOG.max(SINGLES)).map(contact).collect();
    for chunk in ids.chunks(CHUNK) {
        store::optin::set_enabled(con, chunk, true).await?;
    }
    Ok(())
}

fn message(i: usize, prefix: &str) -> QueueMessage {
    QueueMessage {
        message_id: format!("{prefix}{i}"),
        contact_id: contact(i),
        content: "are we still on for tonight?".into(),
        timestamp: store::now_ms(),
        direction: Direction::Incoming,
        from_me: false,
    }
}

type Task = tokio::task::JoinHandle<Result<WorkerStatus>>;

/// The real worker (instant engine) in namespace `ns` on `url`, running.
async fn worker(
    url: &str,
    ns: &str,
    dir: &std::path::Path,
) -> Result<(watch::Receiver<WorkerStatus>, watch::Sender<bool>, Task)> {
    let file = dir.join("config.toml");
    std::fs::write(&file, "")?;
    let config = Config::load(
        Some(&file),
        Overrides {
            redis_url: Some(url.to_owned()),
            namespace: Some(ns.to_owned()),
            consumer: Some("w-bench".to_owned()),
            review_file: Some(dir.join("review.jsonl")),
            ..Overrides::default()
        },
    )?;
    let mut cfg = WorkerConfig::from_config(&config);
    cfg.sleep_hours = SleepSetting::Off;
    // The namespace check a command makes before it connects (a Cluster needs one).
    let client = connection::client_for(&config)?;
    let w = Worker::connect(client, PersonaEngine::default(), cfg).await?;
    let mut status = w.status();
    let (stop, stop_rx) = watch::channel(false);
    let ns = ns.to_owned();
    let task = tokio::spawn(async move { schema::in_namespace(Some(&ns), w.run(stop_rx)).await });
    tokio::time::timeout(
        Duration::from_secs(10),
        status.wait_for(|s| s.state == WorkerState::Running),
    )
    .await
    .context("the worker did not start")??;
    Ok((status, stop, task))
}

/// Median and 99th percentile of the time from the `XADD` of one message to
/// its outcome counted, µs.
async fn singles(con: &mut Con, status: &mut watch::Receiver<WorkerStatus>) -> Result<(f64, f64)> {
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
    check_answered(status, SINGLES as u64)?;
    times.sort_by(f64::total_cmp);
    let at = |q: f64| times[((times.len() as f64 * q) as usize).min(times.len() - 1)];
    Ok((at(0.5), at(0.99)))
}

/// Replies a second, from the start of writing a backlog to its last outcome.
async fn backlog(con: &mut Con, status: &mut watch::Receiver<WorkerStatus>) -> Result<f64> {
    let before = status.borrow().entries;
    let started = Instant::now();
    for chunk in (0..BACKLOG).collect::<Vec<_>>().chunks(CHUNK) {
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
    let elapsed = started.elapsed().as_secs_f64();
    check_answered(status, (SINGLES + BACKLOG) as u64)?;
    Ok(BACKLOG as f64 / elapsed)
}

/// A figure of skips is not one of replies.
fn check_answered(status: &watch::Receiver<WorkerStatus>, wanted: u64) -> Result<()> {
    let s = status.borrow();
    if s.answered != wanted {
        bail!(
            "{} replies of {wanted} (skipped {}, dead-lettered {}): not a measure of replies",
            s.answered,
            s.skipped,
            s.dead_lettered
        );
    }
    Ok(())
}
