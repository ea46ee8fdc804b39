//! Failover gap on Sentinel: seconds from the SIGKILL of the primary to the first
//! write through the project's own connection (`secondme::connection`, given the
//! `redis-sentinel://` URL) that the new primary holds; beside it, when the
//! sentinels agreed on the new primary. The test harness's deployment (a primary,
//! two replicas, three sentinels with `down-after-milliseconds 1000`), fresh for
//! each round.
//!
//! Run with `cargo bench --bench failover`. Five rounds; medians.

mod common;
#[allow(dead_code)]
#[path = "../tests/common/nodes.rs"]
mod nodes;
#[allow(dead_code)]
#[path = "../tests/common/sentinel.rs"]
mod sentinel;

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use secondme::connection::{self, Con};
use secondme::schema::{self, Direction, QueueMessage};
use secondme::store::queue;
use sentinel::Sentinel;

const ROUNDS: usize = 5;
/// A round whose writes still fail this long after the kill is a failure.
const GIVE_UP: Duration = Duration::from_secs(60);
/// Time between two write attempts while the primary is away.
const RETRY: Duration = Duration::from_millis(10);

fn main() -> Result<()> {
    common::on_two_threads(run())
}

async fn run() -> Result<()> {
    let (mut gaps, mut promotions) = (Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        let (gap, promoted) = one_round(round).await?;
        println!(
            "round {round}: sentinels agreed after {promoted:5.2} s, first write after {gap:5.2} s"
        );
        gaps.push(gap);
        promotions.push(promoted);
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    println!("failover on Sentinel, {ROUNDS} rounds (median seconds from SIGKILL of the primary)");
    println!(
        "sentinels agree on the new primary            {:6.2}",
        median(&mut promotions)
    );
    println!(
        "first write through connection::Con lands     {:6.2}",
        median(&mut gaps)
    );
    Ok(())
}

/// One fresh deployment: kills its primary, then writes through the project's
/// connection until a write succeeds; (gap, promotion) in seconds.
async fn one_round(round: usize) -> Result<(f64, f64)> {
    let mut topo = Sentinel::start(&format!("bench{round}")).await;
    let client = connection::open_client(&topo.url())?;
    let mut con = connection::manager(&client, None).await?;
    write(&mut con, "before")
        .await
        .context("a write before the kill")?;

    let killed_at = Instant::now();
    let killed = topo.kill_primary().await;
    let (landed, promoted) = tokio::join!(first_write(&mut con, killed_at), async {
        let port = topo.wait_for_new_primary(GIVE_UP).await;
        port.map(|p| (p, killed_at.elapsed().as_secs_f64()))
    });
    let (id, gap) = landed?;
    let (promoted, promotion) = promoted.context("the sentinels promoted no replica")?;
    if promoted == killed {
        bail!("the killed primary is still named");
    }
    if !holds(promoted, &id).await {
        bail!("entry {id} is not on the new primary (port {promoted})");
    }
    Ok((gap, promotion))
}

/// Writes until one write succeeds; its entry id and the seconds since `killed_at`.
async fn first_write(con: &mut Con, killed_at: Instant) -> Result<(String, f64)> {
    loop {
        if let Ok(id) = write(con, "after").await {
            return Ok((id, killed_at.elapsed().as_secs_f64()));
        }
        if killed_at.elapsed() > GIVE_UP {
            bail!("no write succeeded within {GIVE_UP:?} of the kill");
        }
        tokio::time::sleep(RETRY).await;
    }
}

/// Appends a message as a gateway does; the entry's id.
async fn write(con: &mut Con, id: &str) -> Result<String> {
    let message = QueueMessage {
        message_id: id.to_owned(),
        contact_id: "bench".to_owned(),
        content: "ping".to_owned(),
        timestamp: secondme::store::now_ms(),
        direction: Direction::Incoming,
        from_me: false,
    };
    Ok(queue::xadd(&message, false).query_async(con).await?)
}

/// Whether the node on `port` holds entry `id` of `QUEUE:messages`.
async fn holds(port: u16, id: &str) -> bool {
    let Ok(mut con) = nodes::connect(port).await else {
        return false;
    };
    let found: redis::RedisResult<redis::streams::StreamRangeReply> = redis::cmd("XRANGE")
        .arg(schema::queue_messages())
        .arg(id)
        .arg(id)
        .query_async(&mut con)
        .await;
    found.is_ok_and(|r| r.ids.len() == 1)
}
