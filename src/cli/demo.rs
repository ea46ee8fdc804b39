//! `secondme demo`: the whole system on a private Redis with simulated traffic.

use anyhow::{Context, Result};
use redis::aio::ConnectionManager;
use secondme::bridge::Gateway;
use secondme::bridge::simulator::{Script, Simulator};
use secondme::config::{Config, SleepSetting};
use secondme::graph::{self, GraphFile};
use secondme::store::optin;
use secondme::{connection, schema, store};
use tokio::sync::watch;

use super::common::{connect, init_file_log};
use super::control_room;

/// Starts a private Redis, seeds it, runs the simulated gateway and the control
/// room with its worker; stops everything it started on the way out.
pub(super) async fn run(mut config: Config) -> Result<()> {
    let server = secondme::server::RedisServer::start_default()?;
    config.redis_url = server.url();
    // The demo is there to show the twin answering at any hour: the example graph's
    // 23:00-07:00 sleep hours apply only when asked for (`--sleep-hours 23:00-07:00`).
    if config.sleep_hours == SleepSetting::FromGraph {
        config.sleep_hours = SleepSetting::Off;
    }
    let _log = init_file_log(&config)?;
    let script = Script::shipped()?;
    let mut con = connect(&config).await?;
    let version = connection::server_version(&mut con).await?;
    let _: () = redis::AsyncCommands::set(&mut con, schema::state_marker(), store::now_ms())
        .await
        .context("cannot seed the demo")?;
    optin::set_enabled(&mut con, &script.enabled, true).await?;
    seed_graph(&mut con).await;
    let simulator = Simulator::new(
        con,
        &config.user_id,
        script,
        connection::supports_acked_trim(version),
    );
    let (stop_tx, stop_rx) = watch::channel(false);
    let gateway = tokio::spawn(simulator.run(stop_rx));
    let result = control_room::open(&config, true).await;
    let _ = stop_tx.send(true);
    let _ = gateway.await;
    drop(server);
    result
}

/// Loads the shipped graph when the demo's Redis has FalkorDB; without it the
/// demo still runs, on the shipped personas.
async fn seed_graph(con: &mut ConnectionManager) {
    if !graph::available(con).await {
        tracing::info!(
            "this Redis has no FalkorDB module: personas come from assets/personas.json"
        );
        return;
    }
    let imported = match GraphFile::shipped() {
        Ok(file) => graph::import(con, &file).await.map_err(|e| e.to_string()),
        Err(e) => Err(format!("assets/graph.json: {e}")),
    };
    match imported {
        Ok(s) => tracing::info!(
            "graph `{}` seeded from assets/graph.json: {} personas, {} contacts",
            schema::graph(),
            s.personas.len(),
            s.contacts.len()
        ),
        Err(e) => {
            tracing::warn!("cannot seed the graph ({e}); personas come from assets/personas.json")
        }
    }
}
