//! `secondme` with no subcommand: the control room, with the WhatsApp gateway
//! beside it when the settings ask for it.

use anyhow::Result;
use secondme::config::Config;
use secondme::{connection, monitor};
use tokio::sync::watch;

use super::common::init_file_log;
use super::gateway::spawn_beside_control_room;

/// Logs to the log file and opens the control room; with `gateway = "whatsapp"`
/// the gateway runs beside it and is stopped when the operator quits.
pub(super) async fn run(config: &Config, with_worker: bool) -> Result<()> {
    let _log = init_file_log(config)?;
    if !config.gateway_whatsapp {
        return open(config, with_worker).await;
    }
    let (stop_tx, stop_rx) = watch::channel(false);
    let gateway = spawn_beside_control_room(config, stop_rx);
    let result = open(config, with_worker).await;
    let _ = stop_tx.send(true);
    let _ = tokio::time::timeout(std::time::Duration::from_secs(12), gateway).await;
    result
}

/// The control room on the configured Redis until the operator quits; the
/// caller has set up the log.
pub(super) async fn open(config: &Config, with_worker: bool) -> Result<()> {
    tracing::info!(
        "control room on {}",
        connection::redact_url(&config.redis_url)
    );
    monitor::run(
        config,
        monitor::MonitorOptions {
            worker: with_worker,
        },
    )
    .await
}
