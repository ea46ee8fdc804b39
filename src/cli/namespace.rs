//! `secondme namespace add|remove|list`: the registry of the namespaces a pool
//! of workers serves (`SECONDME:namespaces`, the same whatever `--namespace` says).

use anyhow::{Context, Result};
use clap::Subcommand;
use secondme::config::Config;
use secondme::schema;
use secondme::store::namespaces;

use super::common::connect_any_namespace;
use super::output::printable;
use super::status::terminal_safe_json;

/// What `secondme namespace` does to the registry.
#[derive(Debug, Subcommand)]
pub(crate) enum NamespaceAction {
    /// Register namespaces for a pool of workers to serve.
    Add {
        /// Namespace names: not empty, at most 64 bytes, without `{`, `}` or `:`.
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Unregister namespaces: no pool serves them any more, but their keys stay
    /// in Redis (this deletes no data).
    Remove {
        /// Namespace names.
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// The registered namespaces, one a line.
    List {
        /// A JSON array, for scripts.
        #[arg(long)]
        json: bool,
    },
}

/// Runs one action on the registry.
pub(super) async fn run(config: &Config, action: NamespaceAction) -> Result<()> {
    match action {
        NamespaceAction::Add { names } => change(config, &names, true).await,
        NamespaceAction::Remove { names } => change(config, &names, false).await,
        NamespaceAction::List { json } => list(config, json).await,
    }
}

/// Adds or removes each name, all of them checked before Redis is touched.
async fn change(config: &Config, names: &[String], add: bool) -> Result<()> {
    for name in names {
        schema::check_namespace(Some(name.clone()))
            .with_context(|| format!("invalid namespace {:?}", printable(name)))?;
    }
    let mut con = connect_any_namespace(config).await?;
    for name in names {
        let shown = printable(name);
        let outcome = if add {
            if namespaces::add(&mut con, name).await? {
                "added"
            } else {
                "was already registered"
            }
        } else if namespaces::remove(&mut con, name).await? {
            "removed (its keys stay in Redis)"
        } else {
            "was not registered"
        };
        println!("namespace {shown} {outcome}");
    }
    Ok(())
}

/// Prints the registered namespaces.
async fn list(config: &Config, json: bool) -> Result<()> {
    let registered = namespaces::list(&mut connect_any_namespace(config).await?).await?;
    if json {
        let text = serde_json::to_string(&registered).context("cannot encode the namespaces")?;
        println!("{}", terminal_safe_json(&text));
    } else if registered.is_empty() {
        println!("no namespace registered");
    } else {
        for name in &registered {
            println!("{}", printable(name));
        }
    }
    Ok(())
}
