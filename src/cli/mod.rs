//! The binary's subcommands, one file per family, and the dispatch that picks one.
//!
//! The subcommand files take what they share from `common` (connecting, logging,
//! signals) and `output` (text for the terminal), and a subcommand that runs
//! another takes it from its sibling (`demo` opens the `control_room`, which runs
//! the `gateway` beside it); none imports from this dispatcher, so no import runs
//! back up to it.

mod args;
mod common;
mod contacts;
mod control;
mod control_room;
mod demo;
mod drafts;
mod eval;
mod gateway;
mod learn;
mod namespace;
mod output;
mod persona;
mod progress;
mod status;
mod worker;

use anyhow::{Context, Result};
use secondme::config::Config;

pub(crate) use args::Cli;
use args::{Command, ContactAction, PersonaAction};

/// Runs one command on a fresh tokio runtime, in the configured namespace.
pub(crate) fn run(command: Option<Command>, mut config: Config, with_worker: bool) -> Result<()> {
    secondme::monitor::terminal::install_panic_hook();
    // The demo's Redis is its own: the seed's names, whatever the settings say.
    if matches!(command, Some(Command::Demo)) {
        config.namespace = None;
    }
    // Before any key is built: every name below carries the namespace.
    secondme::schema::set_namespace(config.namespace.as_deref())?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let result = runtime.block_on(dispatch(command, config, with_worker));
    // Background tasks (subscriptions, pollers) must not hold the exit.
    runtime.shutdown_timeout(std::time::Duration::from_millis(200));
    result
}

async fn dispatch(command: Option<Command>, config: Config, with_worker: bool) -> Result<()> {
    match command {
        None => control_room::run(&config, with_worker).await,
        Some(Command::Worker { all_namespaces }) => worker::run(config, all_namespaces).await,
        Some(Command::Demo) => demo::run(config).await,
        Some(Command::Gateway) => gateway::run(config).await,
        Some(Command::Login { phone }) => gateway::login(config, phone.as_deref()).await,
        Some(Command::Logout) => gateway::logout(config).await,
        Some(Command::Pause { contact, duration }) => {
            control::pause(&config, &contact, &duration).await
        }
        Some(Command::Resume { contact }) => control::resume(&config, &contact).await,
        Some(Command::Kill { state }) => control::kill(&config, state == "on").await,
        Some(Command::Enable { contacts }) => control::enable(&config, &contacts).await,
        Some(Command::Disable { contacts }) => control::disable(&config, &contacts).await,
        Some(Command::Status { json }) => status::run(&config, json).await,
        Some(Command::Persona {
            action: PersonaAction::Import { file },
        }) => persona::import(&config, &file).await,
        Some(Command::Persona {
            action: PersonaAction::List,
        }) => persona::list(&config).await,
        Some(Command::Contact {
            action: ContactAction::List,
        }) => contacts::list(&config).await,
        Some(Command::Learn {
            files,
            me,
            contact,
            json,
        }) => {
            let args = learn::LearnArgs {
                files,
                me,
                contact,
                json,
            };
            learn::learn(&config, args).await
        }
        Some(Command::Style { contact, json }) => {
            learn::style(&config, contact.as_deref(), json).await
        }
        Some(Command::Forget { contact, yes }) => learn::forget(&config, &contact, yes).await,
        Some(Command::Eval {
            contact,
            holdout,
            json,
        }) => {
            let args = eval::EvalArgs {
                contact,
                holdout,
                json,
            };
            eval::run(&config, args).await
        }
        Some(Command::Mode {
            mode,
            contacts,
            all,
        }) => drafts::mode(&config, &mode, &contacts, all).await,
        Some(Command::Drafts { json }) => drafts::list(&config, json).await,
        Some(Command::Approve { draft, text }) => {
            drafts::approve(&config, &draft, text.as_deref()).await
        }
        Some(Command::Discard { draft }) => drafts::discard(&config, &draft).await,
        Some(Command::Send { contact, text }) => drafts::send(&config, &contact, &text).await,
        Some(Command::Namespace { action }) => namespace::run(&config, action).await,
        Some(Command::Ask { contact, text }) => {
            drafts::ask(&config, &contact, text.as_deref()).await
        }
    }
}
