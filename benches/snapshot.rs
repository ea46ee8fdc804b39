//! The control room's state read (`store::snapshot::read`) with 50 contacts, on an
//! otherwise empty Redis and with 100,000 unrelated keys (`SENT:*`, as a busy
//! gateway leaves them), against the keyspace scans it used to make.
//!
//! Run with `cargo bench --bench snapshot`. It starts a private redis-server and
//! prints the median and p95 of each.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use secondme::connection::Con;
use secondme::schema::{self, PauseReason};
use secondme::server::RedisServer;
use secondme::store::{control, optin, snapshot};
use secondme::{connection, store};

const CONTACTS: usize = 50;
const UNRELATED_KEYS: usize = 100_000;
const READS: usize = 200;
const WARM_UP: usize = 20;

fn main() -> Result<()> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?
        .block_on(run())
}

async fn run() -> Result<()> {
    let server = RedisServer::start_default()?;
    let client = connection::open_client(&server.url())?;
    let mut con = connection::manager(&client, None).await?;
    seed_contacts(&mut con).await?;

    let empty = time_snapshots(&mut con).await?;
    let empty_scan = time_scans(&mut con).await?;
    load_unrelated(&mut con).await?;
    let dbsize: u64 = redis::cmd("DBSIZE").query_async(&mut con).await?;
    let full = time_snapshots(&mut con).await?;
    let full_scan = time_scans(&mut con).await?;

    println!("snapshot of {CONTACTS} contacts ({READS} reads each)");
    print_row("snapshot, empty keyspace", &empty);
    print_row(&format!("snapshot, {dbsize} keys"), &full);
    print_row("old scans, empty keyspace", &empty_scan);
    print_row(&format!("old scans, {dbsize} keys"), &full_scan);
    println!(
        "snapshot cost ratio (100k keys / empty), median: {:.2}",
        median(&full).as_secs_f64() / median(&empty).as_secs_f64()
    );
    Ok(())
}

/// 50 contacts: enabled, active, every fifth paused, every third with a counter.
async fn seed_contacts(con: &mut Con) -> Result<()> {
    let ids: Vec<String> = (0..CONTACTS).map(|i| format!("contact-{i:03}")).collect();
    optin::set_enabled(con, &ids, true).await?;
    let now = store::now_ms();
    let mut pipe = redis::pipe();
    pipe.set(schema::state_marker(), now);
    for (i, id) in ids.iter().enumerate() {
        pipe.zadd(schema::contacts_activity(), id, now - i as i64 * 1000);
        if i % 3 == 0 {
            pipe.set_ex(schema::counter_key(id), i % 10, 60);
        }
    }
    let () = pipe.query_async(con).await?;
    for id in ids.iter().step_by(5) {
        control::pause(con, id, 3_600_000, PauseReason::Manual).await?;
    }
    Ok(())
}

/// 100,000 `SENT:{messageId}` keys with the gateway's one-hour TTL.
async fn load_unrelated(con: &mut Con) -> Result<()> {
    for chunk in (0..UNRELATED_KEYS).collect::<Vec<_>>().chunks(5_000) {
        let mut pipe = redis::pipe();
        for i in chunk {
            pipe.set_ex(schema::sent_key(&format!("wamid-{i:08}")), 1, 3600)
                .ignore();
        }
        let () = pipe.query_async(con).await?;
    }
    Ok(())
}

async fn time_snapshots(con: &mut Con) -> Result<Vec<Duration>> {
    let mut times = Vec::with_capacity(READS);
    for i in 0..WARM_UP + READS {
        let started = Instant::now();
        let snap = snapshot::read(con, "user-1").await?;
        let took = started.elapsed();
        assert_eq!(
            snap.paused.len(),
            CONTACTS / 5,
            "every fifth contact paused"
        );
        std::hint::black_box(snap);
        if i >= WARM_UP {
            times.push(took);
        }
    }
    Ok(times)
}

/// What each snapshot cost before: a `SCAN ... MATCH` of the whole keyspace for
/// `PAUSE:*` and one for `COUNTER:*:msgs` (without the reads that followed).
async fn time_scans(con: &mut Con) -> Result<Vec<Duration>> {
    let mut times = Vec::with_capacity(READS / 4);
    for i in 0..WARM_UP + READS / 4 {
        let started = Instant::now();
        for pattern in ["PAUSE:*", "COUNTER:*:msgs"] {
            let mut cursor = 0u64;
            loop {
                let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                    .arg(cursor)
                    .arg("MATCH")
                    .arg(pattern)
                    .arg("COUNT")
                    .arg(1000)
                    .query_async(con)
                    .await?;
                std::hint::black_box(keys);
                if next == 0 {
                    break;
                }
                cursor = next;
            }
        }
        if i >= WARM_UP {
            times.push(started.elapsed());
        }
    }
    Ok(times)
}

fn median(times: &[Duration]) -> Duration {
    percentile(times, 0.5)
}

fn percentile(times: &[Duration], p: f64) -> Duration {
    let mut sorted = times.to_vec();
    sorted.sort();
    let at = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(at).copied().unwrap_or_default()
}

fn print_row(label: &str, times: &[Duration]) {
    println!(
        "  {label:<32} median {:>8.3} ms   p95 {:>8.3} ms",
        median(times).as_secs_f64() * 1000.0,
        percentile(times, 0.95).as_secs_f64() * 1000.0
    );
}
