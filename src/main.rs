//! The `secondme` command line: the TUI by default, the worker, and one-shot commands.

mod commands;

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use secondme::config::{Config, Overrides};

/// SecondMe: your AI twin on WhatsApp, run and watched from the terminal.
// Every `env` argument has `hide_env_values`: `--help` must not print
// SECONDME_REDIS_URL, which may hold a password.
#[derive(Debug, Parser)]
#[command(name = "secondme", version, about)]
struct Cli {
    /// Redis URL: redis://[user:password@]host:port[/db], rediss://..., unix:///path/to.sock
    #[arg(
        long,
        global = true,
        env = "SECONDME_REDIS_URL",
        hide_env_values = true
    )]
    redis_url: Option<String>,
    /// Config file (default: $XDG_CONFIG_HOME/secondme/config.toml).
    #[arg(long, global = true, env = "SECONDME_CONFIG", hide_env_values = true)]
    config: Option<PathBuf>,
    /// The WhatsApp account owner's id (SESSION:{userId}).
    #[arg(long, global = true, env = "SECONDME_USER_ID", hide_env_values = true)]
    user_id: Option<String>,
    /// This worker's consumer name in the group.
    #[arg(long, global = true, env = "SECONDME_CONSUMER", hide_env_values = true)]
    consumer: Option<String>,
    /// How long the twin stays quiet after you type to a contact (e.g. 60m).
    #[arg(long, global = true, env = "SECONDME_TAKEOVER", hide_env_values = true)]
    takeover: Option<String>,
    /// Log file.
    #[arg(long, global = true, env = "SECONDME_LOG_FILE", hide_env_values = true)]
    log_file: Option<PathBuf>,
    /// Where unprocessed entries go when the worker stops (JSON lines).
    #[arg(
        long,
        global = true,
        env = "SECONDME_REVIEW_FILE",
        hide_env_values = true
    )]
    review_file: Option<PathBuf>,
    /// Idle time after which a dead worker's pending entries are claimed (e.g. 30s).
    #[arg(
        long,
        global = true,
        env = "SECONDME_CLAIM_IDLE",
        hide_env_values = true
    )]
    claim_idle: Option<String>,
    /// Daily window without automated replies, local time (e.g. 23:00-07:00), or "off".
    #[arg(
        long,
        global = true,
        env = "SECONDME_SLEEP_HOURS",
        hide_env_values = true
    )]
    sleep_hours: Option<String>,
    /// PEM file of the CA that signed a rediss:// server's certificate (private CA).
    #[arg(
        long,
        global = true,
        env = "SECONDME_TLS_CA_FILE",
        hide_env_values = true
    )]
    tls_ca_file: Option<PathBuf>,
    /// Open the control room as a pure monitor, without the embedded worker.
    #[arg(long)]
    no_worker: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the worker headless (for systemd); stops gracefully on SIGINT/SIGTERM.
    Worker,
    /// The whole system on a private Redis with simulated WhatsApp traffic.
    Demo,
    /// Pause the twin for a contact.
    Pause {
        /// Contact id.
        contact: String,
        /// How long: 15m, 1h, 2h30m, 1d (default 60m).
        #[arg(long = "for", default_value = "60m")]
        duration: String,
    },
    /// Resume the twin for a contact.
    Resume {
        /// Contact id.
        contact: String,
    },
    /// The global kill switch: `on` stops every reply, `off` lets the twin answer again.
    Kill {
        /// on or off.
        #[arg(value_parser = ["on", "off"])]
        state: String,
    },
    /// Let the twin answer these contacts.
    Enable {
        /// Contact ids.
        #[arg(required = true)]
        contacts: Vec<String>,
    },
    /// Stop the twin answering these contacts.
    Disable {
        /// Contact ids.
        #[arg(required = true)]
        contacts: Vec<String>,
    },
    /// Show the state: session, kill switch, pauses, counters, queue, subscribers.
    Status {
        /// Print JSON for scripts.
        #[arg(long)]
        json: bool,
    },
    /// Personas in the FalkorDB graph.
    Persona {
        #[command(subcommand)]
        action: PersonaAction,
    },
    /// Contacts in the FalkorDB graph.
    Contact {
        #[command(subcommand)]
        action: ContactAction,
    },
}

#[derive(Debug, Subcommand)]
enum PersonaAction {
    /// Load a graph file (user, personas, contacts) into the graph; importing again updates in place.
    Import {
        /// JSON graph file (see assets/graph.json).
        file: PathBuf,
    },
    /// List the personas in the graph.
    List,
}

#[derive(Debug, Subcommand)]
enum ContactAction {
    /// List the contacts with the persona that answers each of them and why.
    List,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let overrides = Overrides {
        redis_url: cli.redis_url.clone(),
        user_id: cli.user_id.clone(),
        consumer: cli.consumer.clone(),
        takeover: cli.takeover.clone(),
        log_file: cli.log_file.clone(),
        review_file: cli.review_file.clone(),
        claim_idle: cli.claim_idle.clone(),
        sleep_hours: cli.sleep_hours.clone(),
        tls_ca_file: cli.tls_ca_file.clone(),
    };
    let result = Config::load(cli.config.as_deref(), overrides)
        .and_then(|config| commands::run(cli.command, config, !cli.no_worker));
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // An error of the Redis client may quote the URL's password.
            eprintln!(
                "secondme: {}",
                secondme::connection::scrub(&format!("{e:#}"))
            );
            std::process::ExitCode::FAILURE
        }
    }
}
