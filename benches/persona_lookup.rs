//! Persona lookup latency: resolving a contact's persona and reading its style
//! from the FalkorDB graph, against reading `CACHE:persona:{id}`.
//!
//! Run with `cargo bench --bench persona_lookup`. It starts a private
//! redis-server with FalkorDB, imports `assets/graph.json`, and times 1000
//! lookups of each kind over the demo contacts (after a warm-up).

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use secondme::graph::{self, GraphFile};
use secondme::server::RedisServer;
use secondme::{connection, store};

const LOOKUPS: usize = 1000;
const WARM_UP: usize = 50;
/// Budgets from issue 4.
const BUDGET_CACHE_P95_MS: f64 = 5.0;
const BUDGET_GRAPH_P95_MS: f64 = 50.0;

fn main() -> Result<()> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?
        .block_on(run())
}

async fn run() -> Result<()> {
    let server = RedisServer::start_default()?;
    if !server.has_falkordb() {
        bail!("this redis-server has no falkordb.so beside it: run scripts/setup.sh");
    }
    let client = connection::open_client(&server.url())?;
    let mut con = connection::manager(&client, None).await?;
    let file = GraphFile::shipped().map_err(anyhow::Error::msg)?;
    graph::import(&mut con, &file).await?;
    let contacts: Vec<String> = file.contacts.iter().map(|c| c.contact.id.clone()).collect();
    let personas: Vec<String> = file.personas.iter().map(|p| p.id.clone()).collect();

    let mut graph_times = Vec::with_capacity(LOOKUPS);
    for i in 0..WARM_UP + LOOKUPS {
        let contact = &contacts[i % contacts.len()];
        let started = Instant::now();
        let resolution = graph::resolve_persona(&mut con, contact, &file.user.id).await?;
        let style = graph::persona_style(&mut con, &resolution.persona_id).await?;
        let took = started.elapsed();
        std::hint::black_box(style);
        if i >= WARM_UP {
            graph_times.push(took);
        }
    }

    let mut cache_times = Vec::with_capacity(LOOKUPS);
    for i in 0..WARM_UP + LOOKUPS {
        let persona = &personas[i % personas.len()];
        let started = Instant::now();
        let style = store::persona::cached(&mut con, persona).await?;
        let took = started.elapsed();
        std::hint::black_box(style);
        if i >= WARM_UP {
            cache_times.push(took);
        }
    }

    println!(
        "persona lookup, {LOOKUPS} lookups each over {} contacts (private redis-server, Unix socket)",
        contacts.len()
    );
    let graph_p95 = report(
        "graph  resolve_persona + persona_style",
        &mut graph_times,
        BUDGET_GRAPH_P95_MS,
    );
    let cache_p95 = report(
        "cache  store::persona::cached        ",
        &mut cache_times,
        BUDGET_CACHE_P95_MS,
    );
    if graph_p95 > BUDGET_GRAPH_P95_MS || cache_p95 > BUDGET_CACHE_P95_MS {
        bail!("over budget");
    }
    Ok(())
}

/// Prints p50/p95/max against the p95 budget; returns p95 in ms.
fn report(name: &str, times: &mut [Duration], budget_ms: f64) -> f64 {
    times.sort();
    let ms = |q: f64| {
        let i = ((times.len() as f64 * q).ceil() as usize).clamp(1, times.len()) - 1;
        times[i].as_secs_f64() * 1000.0
    };
    let (p50, p95, max) = (ms(0.50), ms(0.95), ms(1.0));
    println!(
        "{name}  p50 {p50:7.3} ms  p95 {p95:7.3} ms  max {max:7.3} ms  (budget p95 < {budget_ms} ms: {})",
        if p95 < budget_ms { "ok" } else { "OVER" }
    );
    p95
}
