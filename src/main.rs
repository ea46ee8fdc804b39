//! The `secondme` command line: the TUI by default, the worker, and one-shot
//! commands; each lives under `cli/`.

mod cli;

use clap::Parser;
use secondme::config::Config;

fn main() -> std::process::ExitCode {
    let cli = cli::Cli::parse();
    let result = Config::load(cli.config.as_deref(), cli.settings)
        .and_then(|config| cli::run(cli.command, config, !cli.no_worker));
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
