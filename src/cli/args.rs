//! The command line as clap reads it: global flags, settings and subcommands.

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use secondme::config::Settings;

/// SecondMe: your AI twin on WhatsApp, run and watched from the terminal.
#[derive(Debug, Parser)]
#[command(name = "secondme", version, about)]
pub(crate) struct Cli {
    /// Config file (default: $XDG_CONFIG_HOME/secondme/config.toml).
    // Not a setting: it says where the settings file is, so it cannot be in it.
    #[arg(long, global = true, env = "SECONDME_CONFIG", hide_env_values = true)]
    pub(crate) config: Option<PathBuf>,
    // Every setting, as a flag and a SECONDME_* variable: see `Settings`.
    #[command(flatten)]
    pub(crate) settings: Settings,
    /// Open the control room as a pure monitor, without the embedded worker.
    #[arg(long)]
    pub(crate) no_worker: bool,
    #[command(subcommand)]
    pub(crate) command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Run the worker headless (for systemd); stops gracefully on SIGINT/SIGTERM.
    Worker {
        /// Serve every namespace in the registry (`secondme namespace add`), one
        /// worker each, following the registry as it changes. Not with --namespace.
        #[arg(long, conflicts_with = "namespace")]
        all_namespaces: bool,
    },
    /// The whole system on a private Redis with simulated WhatsApp traffic.
    Demo,
    /// Run the WhatsApp gateway headless (for systemd); stops on SIGINT/SIGTERM.
    Gateway,
    /// Log into WhatsApp from this terminal: scan the QR code, or type a pair code.
    Login {
        /// Link by phone number instead (+COUNTRYNUMBER): shows an 8-character code.
        #[arg(long)]
        phone: Option<String>,
    },
    /// Unlink this device from WhatsApp and delete its keys.
    Logout,
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
    /// Learn how you write from WhatsApp chat exports (the .txt, or the .zip with media).
    Learn {
        /// Export files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Your name as the exports show it (default: owner_name in the config).
        #[arg(long)]
        me: Option<String>,
        /// The contact id to learn each chat as (default: the contact known by the other author's name).
        #[arg(long)]
        contact: Option<String>,
        /// One JSON object per file, for scripts.
        #[arg(long)]
        json: bool,
    },
    /// How you write, as learned: to one contact, or overall.
    Style {
        /// Contact id (default: overall).
        contact: Option<String>,
        /// Print JSON for scripts.
        #[arg(long)]
        json: bool,
    },
    /// Remove every trace of a contact's text from Redis (learned chat, history, queued messages).
    Forget {
        /// Contact id.
        contact: String,
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
    },
    /// How close the twin writes: holds out the owner's last replies to a contact,
    /// learns from the rest and compares the twin's replies (and a baseline's) with them.
    Eval {
        /// One contact (default: every learned contact, one after another).
        #[arg(long)]
        contact: Option<String>,
        /// The owner's last replies held out per contact.
        #[arg(long, default_value_t = secondme::learn::eval::DEFAULT_HOLDOUT)]
        holdout: usize,
        /// One JSON object per contact, for scripts.
        #[arg(long)]
        json: bool,
    },
    /// Whether the twin answers on its own (auto) or writes drafts for you to
    /// approve, edit or discard (draft).
    Mode {
        /// auto or draft.
        #[arg(value_parser = ["auto", "draft"])]
        mode: String,
        /// Contact ids.
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        contacts: Vec<String>,
        /// Set the default, for every contact without a mode of its own.
        #[arg(long)]
        all: bool,
    },
    /// The drafts waiting for your decision (`approve` sends one even while its
    /// contact is paused, `discard` drops it).
    Drafts {
        /// A JSON array, for scripts.
        #[arg(long)]
        json: bool,
    },
    /// Send a draft: your decision, so it goes out even while the contact is paused.
    Approve {
        /// Draft id (see `secondme drafts`).
        draft: String,
        /// Send this text instead of the draft's.
        #[arg(long)]
        text: Option<String>,
    },
    /// Drop a draft unsent.
    Discard {
        /// Draft id (see `secondme drafts`).
        draft: String,
    },
    /// Send your own words to a contact (enabled or not); the twin then steps back
    /// from that contact as when you type on the phone.
    Send {
        /// Contact id.
        contact: String,
        /// The message.
        text: String,
    },
    /// The registry of namespaces a pool of workers serves (`remove` deletes no data).
    Namespace {
        #[command(subcommand)]
        action: super::namespace::NamespaceAction,
    },
    /// Print what the twin would answer a contact now, sending nothing.
    Ask {
        /// Contact id.
        contact: String,
        /// Answer this as if the contact wrote it (default: the contact's last message).
        text: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum PersonaAction {
    /// Load a graph file (user, personas, contacts) into the graph; importing again updates in place.
    Import {
        /// JSON graph file (see assets/graph.json).
        file: PathBuf,
    },
    /// List the personas in the graph.
    List,
}

#[derive(Debug, Subcommand)]
pub(crate) enum ContactAction {
    /// List the contacts with the persona that answers each of them and why.
    List,
}
