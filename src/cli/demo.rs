//! `secondme demo`: the whole system on a private Redis with simulated traffic.

use anyhow::{Context, Result};
use secondme::bridge::Gateway;
use secondme::bridge::simulator::{Script, Simulator};
use secondme::config::{Config, SleepSetting};
use secondme::connection::Con;
use secondme::graph::{self, GraphFile};
use secondme::learn::export;
use secondme::store::drafts::{self, ReplyMode};
use secondme::store::{learned, optin};
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
    drafts::set_mode(&mut con, &[DRAFT_CONTACT.to_owned()], ReplyMode::Draft).await?;
    seed_graph(&mut con).await;
    learn_samples(&mut con, config.learn.max_messages).await;
    let evals = tokio::spawn(evaluate_samples(config.clone()));
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
    evals.abort();
    drop(server);
    result
}

/// The demo contact who starts in draft mode: the twin's replies to them wait
/// in the control room for the operator to approve, edit or discard.
const DRAFT_CONTACT: &str = "sam-work";

/// The demo's owner, as the sample exports name them.
const DEMO_OWNER: &str = "Robin";

/// The sample exports the demo learns from (written for the project, in two
/// phones' formats), each with the contact it is a chat with.
const SAMPLE_EXPORTS: [(&str, &str); 2] = [
    ("mom", include_str!("../../assets/demo-export-android.txt")),
    ("alex", include_str!("../../assets/demo-export-ios.txt")),
];

/// Learns the owner's style and past replies from the sample exports before
/// the traffic starts, so the twin answers as its owner writes. Adding the
/// same lines again changes nothing, so a restart learns nothing twice; a
/// failure leaves the demo running on its templates.
async fn learn_samples(con: &mut Con, cap: usize) {
    for (contact, text) in SAMPLE_EXPORTS {
        let lines = export::parse_text(text).into_chat_lines(DEMO_OWNER);
        match learned::add_lines(con, contact, &lines, cap).await {
            Ok(added) => tracing::info!(
                "demo: {contact}'s sample chat learned ({} messages, {} new)",
                added.total,
                added.added
            ),
            Err(e) => tracing::warn!("demo: cannot learn {contact}'s sample chat: {e:#}"),
        }
    }
}

/// Scores the twin on the sample chats (`secondme eval`'s figures, saved for the
/// control room's learned panel) behind the screen. Only with the offline engine:
/// a language model would spend tokens and minutes on it at every start.
async fn evaluate_samples(config: Config) {
    if config.llm.is_some() {
        tracing::info!("demo: no eval at start with a language model (run `secondme eval`)");
        return;
    }
    for (contact, _) in SAMPLE_EXPORTS {
        if let Err(e) = super::eval::save_quietly(&config, contact).await {
            tracing::warn!("demo: cannot score the twin on {contact}'s sample chat: {e:#}");
        }
    }
}

/// Loads the shipped graph when the demo's Redis has FalkorDB; without it the
/// demo still runs, on the shipped personas.
async fn seed_graph(con: &mut Con) {
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
