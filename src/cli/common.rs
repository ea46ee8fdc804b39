//! What several subcommands share: the Redis connection, logging, and waiting
//! for a stop signal.

use anyhow::{Context, Result};
use secondme::config::Config;
use secondme::connection::Con;
use secondme::{connection, graph};

/// Connects to the configured Redis, with an error that says how to point at it.
pub(super) async fn connect(config: &Config) -> Result<Con> {
    connect_with(config, connection::client_for(config)?).await
}

/// Connects to Redis outside every namespace (the registry of namespaces),
/// which a Cluster allows without `--namespace`.
pub(super) async fn connect_any_namespace(config: &Config) -> Result<Con> {
    connect_with(config, connection::client_for_any_namespace(config)?).await
}

async fn connect_with(config: &Config, client: connection::Client) -> Result<Con> {
    connection::manager(&client, None).await.with_context(|| {
        format!(
            "Redis at {} is not reachable: start it, or point SECONDME_REDIS_URL / --redis-url at it",
            connection::redact_url(&config.redis_url)
        )
    })
}

/// Connects and checks that the server has FalkorDB, for the graph commands.
pub(super) async fn connect_graph(config: &Config) -> Result<Con> {
    let mut con = connect(config).await?;
    graph::require(&mut con).await?;
    Ok(con)
}

/// Logs to stderr, for the headless subcommands (journald under systemd).
pub(super) fn init_stderr_log() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("SECONDME_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// Logs to the log file: the control room owns the screen.
pub(super) fn init_file_log(
    config: &Config,
) -> Result<tracing_appender::non_blocking::WorkerGuard> {
    let path = &config.log_file;
    // 0600: the log names contacts and may quote errors about private data.
    let file = secondme::private_file::open_append(path)
        .with_context(|| format!("cannot open the log file {}", path.display()))?;
    let (writer, guard) = tracing_appender::non_blocking(file);
    let filter = tracing_subscriber::EnvFilter::try_from_env("SECONDME_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(false)
        .with_writer(writer)
        .try_init();
    Ok(guard)
}

/// Resolves on the first SIGINT (Ctrl-C), SIGTERM or SIGHUP: what asks the
/// headless worker and gateway to drain and stop.
pub(super) async fn interrupt_term_or_hangup() {
    use tokio::signal::unix::{SignalKind, signal};
    // A signal whose handler cannot be installed is never waited for, so the
    // others still stop the worker.
    async fn recv_or_never(kind: SignalKind) {
        match signal(kind) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    }
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = recv_or_never(SignalKind::terminate()) => {}
        () = recv_or_never(SignalKind::hangup()) => {}
    }
}
