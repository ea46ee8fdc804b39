//! The switches: `pause`, `resume`, `kill`, `enable` and `disable`.

use anyhow::{Context, Result};
use secondme::config::Config;
use secondme::duration::parse_duration;
use secondme::graph;
use secondme::schema::PauseReason;
use secondme::store::{self, control, optin};

use super::common::connect;
use super::output::{format_clock, format_ms};

/// `secondme pause CONTACT --for DURATION`.
pub(super) async fn pause(config: &Config, contact: &str, duration: &str) -> Result<()> {
    store::ensure_contact_id(contact)?;
    let d = parse_duration(duration).with_context(|| format!("invalid --for {duration:?}"))?;
    let ms = i64::try_from(d.as_millis()).context("pause too long")?;
    let expires = control::pause(
        &mut connect(config).await?,
        contact,
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

/// `secondme resume CONTACT`.
pub(super) async fn resume(config: &Config, contact: &str) -> Result<()> {
    store::ensure_contact_id(contact)?;
    let was = control::resume(&mut connect(config).await?, contact).await?;
    println!(
        "{contact}: {}",
        if was { "resumed" } else { "was not paused" }
    );
    Ok(())
}

/// `secondme kill on|off`.
pub(super) async fn kill(config: &Config, on: bool) -> Result<()> {
    control::kill_switch(&mut connect(config).await?, on).await?;
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

/// `secondme enable CONTACT...`.
pub(super) async fn enable(config: &Config, contacts: &[String]) -> Result<()> {
    set_enabled(config, contacts, true).await
}

/// `secondme disable CONTACT...`.
pub(super) async fn disable(config: &Config, contacts: &[String]) -> Result<()> {
    set_enabled(config, contacts, false).await
}

async fn set_enabled(config: &Config, contacts: &[String], enabled: bool) -> Result<()> {
    for id in contacts {
        store::ensure_contact_id(id)?;
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
