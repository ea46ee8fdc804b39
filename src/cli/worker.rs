//! `secondme worker`: the worker headless, for systemd; with `--all-namespaces`,
//! a pool serving every registered namespace.

use anyhow::Result;
use secondme::config::Config;
use secondme::connection::Con;
use secondme::reply::engine::Engine;
use secondme::worker::WorkerStatus;
use secondme::{connection, schema, store};
use tokio::sync::watch;

use super::common::{init_stderr_log, interrupt_term_or_hangup};

/// Runs the worker (or the pool, with `all_namespaces`) until
/// SIGINT/SIGTERM/SIGHUP, then drains and logs what it did.
pub(super) async fn run(config: Config, all_namespaces: bool) -> Result<()> {
    init_stderr_log();
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        interrupt_term_or_hangup().await;
        tracing::info!("stop requested; draining");
        let _ = stop_tx.send(true);
    });
    if all_namespaces {
        return pool(&config, stop_rx).await;
    }
    let engine = Engine::from_config(config.llm.as_ref(), &config.learn)?;
    if let Some(llm) = engine.llm() {
        let con = connection::lazy_manager(&connection::client_for(&config)?, None)?;
        tokio::spawn(store::usage::keep_accounts(con, llm, stop_rx.clone()));
    }
    let status = secondme::worker::run_worker(&config, engine, stop_rx).await?;
    log_totals("", &status);
    Ok(())
}

/// Serves every registered namespace, each with an engine of its own whose
/// language-model figures are kept in that namespace.
async fn pool(config: &Config, stop: watch::Receiver<bool>) -> Result<()> {
    // Made once first, so a configuration it refuses stops the pool at start.
    Engine::from_config(config.llm.as_ref(), &config.learn)?;
    let llm = config.llm.clone();
    let learn = config.learn.clone();
    let make = move |con: &Con, ended: watch::Receiver<bool>| {
        let engine = Engine::from_config(llm.as_ref(), &learn)?;
        if let Some(figures) = engine.llm() {
            schema::spawn_here(store::usage::keep_accounts(con.clone(), figures, ended));
        }
        Ok(engine)
    };
    let finished = secondme::worker::pool::run_pool(config, make, stop).await?;
    let mut total = WorkerStatus::default();
    for status in finished.values() {
        total.entries += status.entries;
        total.answered += status.answered;
        total.skipped += status.skipped;
        total.dead_lettered += status.dead_lettered;
        total.reviewed += status.reviewed;
    }
    log_totals(&format!("{} namespaces: ", finished.len()), &total);
    Ok(())
}

fn log_totals(prefix: &str, status: &WorkerStatus) {
    tracing::info!(
        "{prefix}handled {} entries: {} answered, {} skipped, {} dead-lettered, {} to review",
        status.entries,
        status.answered,
        status.skipped,
        status.dead_lettered,
        status.reviewed
    );
}
