//! What each subcommand does: the edges where errors become messages.

use anyhow::{Context, Result};
use redis::aio::ConnectionManager;
use secondme::bridge::Gateway;
use secondme::bridge::simulator::{Script, Simulator};
use secondme::config::{Config, SleepSetting, parse_duration};
use secondme::graph::{self, GraphFile};
use secondme::reply::engine::Engine;
use secondme::schema::PauseReason;
use secondme::seal::SessionKey;
use secondme::store::{control, optin, session, snapshot};
use secondme::{connection, monitor, schema, store, worker};
use tokio::sync::watch;

use crate::{Command, ContactAction, PersonaAction};

/// Runs one command on a fresh tokio runtime.
pub fn run(command: Option<Command>, config: Config, with_worker: bool) -> Result<()> {
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
        None => {
            let _log = init_file_log(&config)?;
            if !config.gateway_whatsapp {
                return control_room(&config, with_worker).await;
            }
            let (stop_tx, stop_rx) = watch::channel(false);
            let gateway = crate::whatsapp::spawn_beside_control_room(&config, stop_rx);
            let result = control_room(&config, with_worker).await;
            let _ = stop_tx.send(true);
            let _ = tokio::time::timeout(std::time::Duration::from_secs(12), gateway).await;
            result
        }
        Some(Command::Worker) => run_worker(config).await,
        Some(Command::Demo) => demo(config).await,
        Some(Command::Gateway) => crate::whatsapp::gateway(config).await,
        Some(Command::Login { phone }) => crate::whatsapp::login(config, phone.as_deref()).await,
        Some(Command::Logout) => crate::whatsapp::logout(config).await,
        Some(Command::Pause { contact, duration }) => {
            secondme::store::ensure_contact_id(&contact)?;
            let d =
                parse_duration(&duration).with_context(|| format!("invalid --for {duration:?}"))?;
            let ms = i64::try_from(d.as_millis()).context("pause too long")?;
            let expires = control::pause(
                &mut connect(&config).await?,
                &contact,
                ms,
                PauseReason::Manual,
            )
            .await?;
            println!(
                "paused {contact} for {} (until {})",
                format_ms(ms),
                format_clock(expires)
            );
            Ok(())
        }
        Some(Command::Resume { contact }) => {
            secondme::store::ensure_contact_id(&contact)?;
            let was = control::resume(&mut connect(&config).await?, &contact).await?;
            println!(
                "{contact}: {}",
                if was { "resumed" } else { "was not paused" }
            );
            Ok(())
        }
        Some(Command::Kill { state }) => {
            let on = state == "on";
            control::kill_switch(&mut connect(&config).await?, on).await?;
            println!(
                "kill switch {}",
                if on {
                    "ON: the twin answers nobody"
                } else {
                    "off: the twin answers enabled contacts"
                }
            );
            Ok(())
        }
        Some(Command::Enable { contacts }) => set_enabled(&config, &contacts, true).await,
        Some(Command::Disable { contacts }) => set_enabled(&config, &contacts, false).await,
        Some(Command::Status { json }) => status(&config, json).await,
        Some(Command::Persona {
            action: PersonaAction::Import { file },
        }) => persona_import(&config, &file).await,
        Some(Command::Persona {
            action: PersonaAction::List,
        }) => persona_list(&config).await,
        Some(Command::Contact {
            action: ContactAction::List,
        }) => contact_list(&config).await,
    }
}

pub(crate) async fn connect(config: &Config) -> Result<ConnectionManager> {
    let client = connection::client_for(config)?;
    connection::manager(&client, None).await.with_context(|| {
        format!(
            "Redis at {} is not reachable: start it, or point SECONDME_REDIS_URL / --redis-url at it",
            connection::redact_url(&config.redis_url)
        )
    })
}

async fn set_enabled(config: &Config, contacts: &[String], enabled: bool) -> Result<()> {
    for id in contacts {
        secondme::store::ensure_contact_id(id)?;
    }
    let mut con = connect(config).await?;
    let changed = optin::set_enabled(&mut con, contacts, enabled).await?;
    println!(
        "{} {} contact(s) ({} changed)",
        if enabled { "enabled" } else { "disabled" },
        contacts.len(),
        changed
    );
    // The opt-in set is what the worker obeys; the graph only mirrors it, so a
    // graph failure is reported but does not fail the command.
    if graph::available(&mut con).await {
        for id in contacts {
            match graph::set_bot_enabled(&mut con, id, enabled).await {
                Ok(true) => {}
                Ok(false) => println!("{id}: not in the graph (botEnabled not mirrored)"),
                Err(e) => eprintln!("secondme: {id}: {e}"),
            }
        }
    }
    Ok(())
}

/// Connects and checks that the server has FalkorDB, for the graph commands.
async fn connect_graph(config: &Config) -> Result<ConnectionManager> {
    let mut con = connect(config).await?;
    graph::require(&mut con).await?;
    Ok(con)
}

async fn persona_import(config: &Config, path: &std::path::Path) -> Result<()> {
    let file = GraphFile::load(path)?;
    let mut con = connect_graph(config).await?;
    let s = graph::import(&mut con, &file).await?;
    println!(
        "imported {} into the graph `{}`",
        path.display(),
        graph::GRAPH
    );
    println!(
        "  user      {} (default persona {})",
        printable(&s.user),
        printable(&file.user.default_persona)
    );
    println!("  personas  {}", printable(&list_or_none(&s.personas)));
    println!("  contacts  {}", printable(&list_or_none(&s.contacts)));
    println!(
        "  knows     {} person link(s), {} topic mention(s)",
        s.people, s.mentions
    );
    println!(
        "  changes   {} node(s) and {} relationship(s) created, {} propert{} set{}",
        s.nodes_created,
        s.relationships_created,
        s.properties_set,
        if s.properties_set == 1 { "y" } else { "ies" },
        if s.nodes_created == 0 && s.relationships_created == 0 {
            " (the graph already held every node and relationship)"
        } else {
            ""
        }
    );
    Ok(())
}

async fn persona_list(config: &Config) -> Result<()> {
    let mut con = connect_graph(config).await?;
    let personas = graph::personas(&mut con).await?;
    if personas.is_empty() {
        println!(
            "no personas in the graph `{}`: load some with `secondme persona import FILE`",
            graph::GRAPH
        );
        return Ok(());
    }
    let default = graph::user(&mut con, &config.user_id)
        .await?
        .map(|u| u.default_persona);
    let rows: Vec<Vec<String>> = personas
        .iter()
        .map(|p| {
            let mut id = p.id.clone();
            if default.as_deref() == Some(p.id.as_str()) {
                id.push_str(" *");
            }
            vec![
                id,
                p.name.clone(),
                p.style.tone.clone(),
                p.style.example_messages.len().to_string(),
                list_or_none(&p.applicable_to),
            ]
        })
        .collect();
    print_table(
        &["ID", "NAME", "TONE", "EXAMPLES", "FOR RELATIONSHIPS"],
        &rows,
    );
    if default.is_some() {
        println!("* the user's default persona");
    }
    Ok(())
}

async fn contact_list(config: &Config) -> Result<()> {
    let mut con = connect_graph(config).await?;
    let contacts = graph::contacts(&mut con).await?;
    if contacts.is_empty() {
        println!(
            "no contacts in the graph `{}`: load some with `secondme persona import FILE`",
            graph::GRAPH
        );
        return Ok(());
    }
    let enabled: std::collections::HashSet<String> =
        optin::enabled(&mut con).await?.into_iter().collect();
    // Every contact's persona in one query rather than one round trip per contact.
    let resolved = graph::resolve_all(&mut con, &config.user_id).await?;
    let mut rows = Vec::with_capacity(contacts.len());
    for c in &contacts {
        let persona = match resolved.by_contact.get(&c.id) {
            Some(r) => format!("{} ({})", r.persona_id, r.rule),
            None => format!("none ({})", graph::GraphError::NoUser),
        };
        // The worker obeys the opt-in set; show the graph's value only when it disagrees.
        let on = enabled.contains(&c.id);
        let mut bot = if on { "on" } else { "off" }.to_owned();
        if on != c.bot_enabled {
            bot.push_str(if c.bot_enabled {
                " (graph: on)"
            } else {
                " (graph: off)"
            });
        }
        rows.push(vec![
            c.id.clone(),
            c.name.clone().unwrap_or_else(|| "-".into()),
            c.relationship_type.clone(),
            persona,
            bot,
        ]);
    }
    print_table(
        &["ID", "NAME", "RELATIONSHIP", "PERSONA (RULE)", "BOT"],
        &rows,
    );
    Ok(())
}

/// Prints left-aligned columns; cells are made printable first because names
/// come from imported files and must not drive the terminal.
fn print_table(header: &[&str], rows: &[Vec<String>]) {
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| r.iter().map(|c| printable(c)).collect())
        .collect();
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let last = cells.len().saturating_sub(1);
        let text: Vec<String> = cells
            .iter()
            .enumerate()
            .map(|(i, c)| {
                if i == last {
                    (*c).to_owned()
                } else {
                    format!("{c:<w$}", w = widths[i])
                }
            })
            .collect();
        println!("{}", text.join("  "));
    };
    line(header.to_vec());
    for row in &rows {
        line(row.iter().map(String::as_str).collect());
    }
}

/// Longest string from outside shown in one cell or line of the CLI's output.
const MAX_SHOWN: usize = 200;

/// Text from outside (Redis, imported files) made safe for the terminal with the
/// control room's sanitiser: whole escape sequences, C0/C1 controls and bidi
/// controls removed, one line, capped.
fn printable(s: &str) -> String {
    secondme_ui::sanitize::clean(s, MAX_SHOWN)
}

/// Every string of a snapshot read from Redis, made printable.
fn printable_snapshot(mut snap: snapshot::Snapshot) -> snapshot::Snapshot {
    if let Some(reason) = &mut snap.kill_reason {
        reason.clean_other(printable);
    }
    for p in &mut snap.paused {
        p.contact_id = printable(&p.contact_id);
        p.reason.clean_other(printable);
    }
    for c in &mut snap.counters {
        c.contact_id = printable(&c.contact_id);
    }
    for id in &mut snap.enabled {
        *id = printable(id);
    }
    for (id, _) in &mut snap.contacts {
        *id = printable(id);
    }
    for (channel, _) in &mut snap.subscribers {
        *channel = printable(channel);
    }
    snap.stats = snap
        .stats
        .into_iter()
        .map(|(k, v)| (printable(&k), v))
        .collect();
    snap
}

/// JSON with every character a terminal could act on written as a `\uXXXX`
/// escape: serde_json leaves C1 controls, DEL and bidi/format characters raw. The
/// data is unchanged for a JSON reader.
fn terminal_safe_json(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        let risky = matches!(c, '\u{7f}'..='\u{9f}' | '\u{200b}'..='\u{200f}' | '\u{2028}'..='\u{202e}' | '\u{2060}'..='\u{2069}' | '\u{feff}')
            || (c.is_control() && c != '\n');
        if risky {
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{unit:04x}"));
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Logs to the log file: the control room owns the screen.
fn init_file_log(config: &Config) -> Result<tracing_appender::non_blocking::WorkerGuard> {
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

async fn control_room(config: &Config, with_worker: bool) -> Result<()> {
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

/// Starts a private Redis, seeds it, runs the simulated gateway and the control
/// room with its worker; stops everything it started on the way out.
async fn demo(mut config: Config) -> Result<()> {
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
    let _: () = redis::AsyncCommands::set(&mut con, schema::STATE_MARKER, store::now_ms())
        .await
        .context("cannot seed the demo")?;
    optin::set_enabled(&mut con, &script.enabled, true).await?;
    seed_graph(&mut con).await;
    let simulator = Simulator::new(
        con,
        &config.user_id,
        script,
        connection::supports_acked_trim(version),
    );
    let (stop_tx, stop_rx) = watch::channel(false);
    let gateway = tokio::spawn(simulator.run(stop_rx));
    let result = control_room(&config, true).await;
    let _ = stop_tx.send(true);
    let _ = gateway.await;
    drop(server);
    result
}

/// Loads the shipped graph when the demo's Redis has FalkorDB; without it the
/// demo still runs, on the shipped personas.
async fn seed_graph(con: &mut ConnectionManager) {
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
            graph::GRAPH,
            s.personas.len(),
            s.contacts.len()
        ),
        Err(e) => {
            tracing::warn!("cannot seed the graph ({e}); personas come from assets/personas.json")
        }
    }
}

pub(crate) fn init_stderr_log() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("SECONDME_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

async fn run_worker(config: Config) -> Result<()> {
    init_stderr_log();
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        interrupt_term_or_hangup().await;
        tracing::info!("stop requested; draining");
        let _ = stop_tx.send(true);
    });
    let engine = Engine::from_config(config.llm.as_ref())?;
    if let Some(llm) = engine.llm() {
        let con = connection::lazy_manager(&connection::client_for(&config)?, None)?;
        tokio::spawn(store::usage::keep_accounts(con, llm, stop_rx.clone()));
    }
    let status = worker::run_worker(&config, engine, stop_rx).await?;
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

/// Resolves on the first SIGINT (Ctrl-C), SIGTERM or SIGHUP: what asks the
/// headless worker to drain and stop.
pub(crate) async fn interrupt_term_or_hangup() {
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

/// Whether the stored session token opens with this machine's key. Never shows
/// the key or the token; never creates a key file.
async fn token_state(con: &mut ConnectionManager, config: &Config) -> String {
    let env_key = std::env::var("SECONDME_SESSION_KEY").ok();
    if env_key.is_none() && !config.key_file.exists() {
        return format!(
            "no key here (set SECONDME_SESSION_KEY or create {})",
            config.key_file.display()
        );
    }
    let key = match SessionKey::load(env_key.as_deref(), &config.key_file) {
        Ok(k) => k,
        Err(e) => return format!("key unusable: {e}"),
    };
    match session::open_token(con, &config.user_id, &key).await {
        Ok(Some(_)) => "sealed, opens with this key".into(),
        Ok(None) => "none".into(),
        Err(e) => format!("{e:#}"),
    }
}

async fn status(config: &Config, json: bool) -> Result<()> {
    let mut con = connect(config).await?;
    let snap = snapshot::read(&mut con, &config.user_id).await?;
    let token = match snap.session {
        Some(_) => Some(token_state(&mut con, config).await),
        None => None,
    };
    // Not knowing the policy (Redis went away meanwhile) is reported as null, not guessed.
    let eviction = store::eviction::check(&mut con).await.ok();
    let dialects = store::dialects::detect(&mut con, &config.user_id).await;
    if json {
        let mut value = serde_json::to_value(&snap).context("cannot encode status")?;
        if let Some(obj) = value.as_object_mut() {
            obj.insert("token".into(), serde_json::json!(token));
            obj.insert("eviction".into(), serde_json::json!(eviction));
            obj.insert("dialects".into(), serde_json::json!(dialects));
        }
        let text = serde_json::to_string_pretty(&value).context("cannot encode status")?;
        println!("{}", terminal_safe_json(&text));
        return Ok(());
    }
    // Every string below came from Redis, where any program may have written it.
    let snap = printable_snapshot(snap);
    let token = token.map(|t| printable(&t));
    if let Some(warning) = eviction.as_ref().and_then(|e| e.warning.as_deref()) {
        // Our own sentence around a policy name from Redis: cleaned, but not cut.
        println!(
            "WARNING      {}",
            secondme_ui::sanitize::clean(warning, 1_000)
        );
    }
    let now = snap.now;
    match snap.session {
        Some(s) => println!(
            "session      logged in since {}, expires in {}; token {}",
            format_clock(s.connected_at),
            format_ms(s.expires_at - now),
            token.as_deref().unwrap_or("none")
        ),
        None => match &snap.gateway_session {
            Some(g) => println!(
                "session      {} (another gateway's, {}){}",
                printable(&g.state),
                secondme::schema::dialect::SESSION_INFO,
                if g.needs_refresh {
                    "; needs a new login"
                } else {
                    ""
                }
            ),
            None => println!("session      not logged in (scan the QR code in the TUI)"),
        },
    }
    match snap.kill_switch {
        Some(at) => println!(
            "kill switch  ON since {} (twin answers nobody): {}",
            format_clock(at),
            kill_reason_text(snap.kill_reason.as_ref().unwrap_or(&PauseReason::Unknown))
        ),
        None => println!("kill switch  off"),
    }
    println!(
        "queue        {} / {} entries, {} pending, {} dead letters, {} responses",
        snap.queue_len,
        secondme::schema::QUEUE_MESSAGES_CAP,
        snap.pending,
        snap.dead_letters,
        snap.responses
    );
    let subs: Vec<String> = snap
        .subscribers
        .iter()
        .map(|(c, n)| format!("{c}={n}"))
        .collect();
    println!("subscribers  {}", subs.join(" "));
    println!("enabled      {}", list_or_none(&snap.enabled));
    if snap.paused.is_empty() {
        println!("paused       none");
    }
    for p in &snap.paused {
        let how_long = if p.until_resumed {
            "until resumed".to_owned()
        } else {
            format!("for {}", format_ms(p.remaining_ms))
        };
        println!("paused       {} {how_long} ({})", p.contact_id, p.reason);
    }
    for c in &snap.counters {
        println!(
            "rate         {} {}/{} (window ends in {})",
            c.contact_id,
            c.count,
            secondme::schema::RATE_LIMIT_MAX,
            format_ms(c.remaining_ms)
        );
    }
    let mut stats: Vec<_> = snap.stats.iter().collect();
    stats.sort();
    let stats: Vec<String> = stats.iter().map(|(k, v)| format!("{k}={v}")).collect();
    println!("worker       {}", list_or_none(&stats));
    for line in &dialects {
        println!("reading      {}", printable(line));
    }
    for key in &snap.odd_keys {
        println!("unreadable   {}", printable(key));
    }
    Ok(())
}

/// Why the kill switch is on, said for the operator, with what to do about it.
fn kill_reason_text(reason: &PauseReason) -> String {
    match reason {
        PauseReason::Manual => "switched on by the operator (manual)".into(),
        PauseReason::StateLost => "Redis lost SecondMe's state (state_lost: a restart without \
                         persistence?); check the opt-ins, then `secondme kill off`"
            .into(),
        PauseReason::Unknown => "reason unknown (set by another program)".into(),
        other => format!("reason {}", printable(other.as_str())),
    }
}

fn list_or_none(items: &[String]) -> String {
    if items.is_empty() {
        "none".into()
    } else {
        items.join(", ")
    }
}

/// A span of `ms` as the control room shows it (`2d03h`, `1h05m`, `4m`, `9s`),
/// whole seconds rounded up like its countdowns.
fn format_ms(ms: i64) -> String {
    secondme_ui::format::coarse_duration(secondme_ui::format::remaining_secs(ms, 0))
}

/// `HH:MM:SS` UTC of a ms timestamp.
fn format_clock(ms: i64) -> String {
    format!("{} UTC", secondme_ui::format::clock_hms(ms, 0))
}
