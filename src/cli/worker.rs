//! `secondme worker`: the worker headless, for systemd.

use anyhow::Result;
use secondme::config::Config;
use secondme::reply::engine::Engine;
use secondme::{connection, store};
use tokio::sync::watch;

use super::common::{init_stderr_log, interrupt_term_or_hangup};

/// Runs the worker until SIGINT/SIGTERM/SIGHUP, then drains and logs what it did.
pub(super) async fn run(config: Config) -> Result<()> {
    init_stderr_log();
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        interrupt_term_or_hangup().await;
        tracing::info!("stop requested; draining");
        let _ = stop_tx.send(true);
    });
    let engine = Engine::from_config(config.llm.as_ref(), &config.learn)?;
    if let Some(llm) = engine.llm() {
        let con = connection::lazy_manager(&connection::client_for(&config)?, None)?;
        tokio::spawn(store::usage::keep_accounts(con, llm, stop_rx.clone()));
    }
    let status = secondme::worker::run_worker(&config, engine, stop_rx).await?;
    tracing::info!(
        "handled {} entries: {} answered, {} skipped, {} dead-lettered, {} to review",
        status.entries,
        status.answered,
        status.skipped,
        status.dead_lettered,
        status.reviewed
    );
    Ok(())
}
