//! `secondme status`: the state as text for a person or JSON for a script.

use anyhow::{Context, Result};
use secondme::bridge::whatsapp::status::{self, GatewayStatus};
use secondme::config::Config;
use secondme::connection::Con;
use secondme::schema::PauseReason;
use secondme::seal::SessionKey;
use secondme::store::{self, session, snapshot};

use super::common::connect;
use super::output::{format_clock, format_ms, list_or_none, printable};

/// `secondme status [--json]`: session, gateway, kill switch, queue, opt-ins,
/// pauses, rate counters and worker figures.
pub(super) async fn run(config: &Config, json: bool) -> Result<()> {
    let mut con = connect(config).await?;
    let snap = snapshot::read(&mut con, &config.user_id).await?;
    let token = match snap.session {
        Some(_) => Some(token_state(&mut con, config).await),
        None => None,
    };
    // Not knowing the policy (Redis went away meanwhile) is reported as null, not guessed.
    let eviction = store::eviction::check(&mut con).await.ok();
    let dialects = store::dialects::detect(&mut con, &config.user_id).await;
    let gateway = gateway_state(&mut con, &config.user_id).await;
    if json {
        let mut value = serde_json::to_value(&snap).context("cannot encode status")?;
        if let Some(obj) = value.as_object_mut() {
            obj.insert("token".into(), serde_json::json!(token));
            obj.insert("eviction".into(), serde_json::json!(eviction));
            obj.insert("dialects".into(), serde_json::json!(dialects));
            obj.insert("gateway".into(), gateway.to_json(snap.now));
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
                secondme::schema::dialect::session_info(),
                if g.needs_refresh {
                    "; needs a new login"
                } else {
                    ""
                }
            ),
            None => println!("session      not logged in (scan the QR code in the TUI)"),
        },
    }
    println!("gateway      {}", printable(&gateway.line(now)));
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

/// Whether the stored session token opens with this machine's key. Never shows
/// the key or the token; never creates a key file.
async fn token_state(con: &mut Con, config: &Config) -> String {
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

/// What `GATEWAY:{userId}` says of the WhatsApp gateway, as the control room's status bar reads it.
enum GatewayReport {
    /// No gateway refreshed the key in the last 90 s (none runs, or it died).
    Absent,
    /// The gateway's own state.
    State(GatewayStatus),
    /// The key holds something else (another program's value, or Redis failed).
    Unreadable(String),
}

impl GatewayReport {
    /// The line `status` prints after `gateway`.
    fn line(&self, now: i64) -> String {
        match self {
            Self::Absent => format!(
                "none running (no state written in the last {} s)",
                status::TTL_S
            ),
            Self::State(s) => s.line(now),
            Self::Unreadable(e) => format!("unreadable: {e}"),
        }
    }

    /// The `gateway` field of `status --json`: null, the stored state with its line, or the error.
    fn to_json(&self, now: i64) -> serde_json::Value {
        match self {
            Self::Absent => serde_json::Value::Null,
            Self::State(s) => {
                let mut value = serde_json::to_value(s).unwrap_or(serde_json::Value::Null);
                if let Some(obj) = value.as_object_mut() {
                    obj.insert("line".into(), serde_json::json!(s.line(now)));
                }
                value
            }
            Self::Unreadable(e) => serde_json::json!({ "error": e }),
        }
    }
}

/// Reads the gateway's state; a failed read or a foreign value is reported, never fatal.
async fn gateway_state(con: &mut Con, user_id: &str) -> GatewayReport {
    let key = secondme::schema::gateway_key(user_id);
    let raw: redis::RedisResult<Option<String>> = redis::AsyncCommands::get(con, &key).await;
    match raw {
        Ok(None) => GatewayReport::Absent,
        Ok(Some(text)) => match serde_json::from_str::<GatewayStatus>(&text) {
            Ok(s) => GatewayReport::State(s),
            Err(e) => GatewayReport::Unreadable(format!("{key}: {e}")),
        },
        Err(e) => GatewayReport::Unreadable(format!("{key}: {e}")),
    }
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
pub(super) fn terminal_safe_json(text: &str) -> String {
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
