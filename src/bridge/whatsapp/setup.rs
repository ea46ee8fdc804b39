//! Builds the real gateway from the configuration: what `secondme gateway`,
//! `login`, `logout` and the control room share.

use crate::connection::Con;
use anyhow::{Context, Result};
use tokio::sync::{mpsc, watch};

use super::client::WhatsAppConnector;
use super::contact::{ContactHasher, KEY_LABEL, Person};
use super::gateway::{self, Exit, GatewayOptions, WhatsAppGateway};
use super::inbox::{Directory, Inbox};
use super::link::{Connector, Link, LinkEvent};
use super::mapping::MapOptions;
use super::status::{self, GatewayStatus, State};
use crate::config::Config;
use crate::connection;
use crate::seal::SessionKey;
use crate::store::{now_ms, session};

/// The session key (env or key file), as every program sharing `SESSION:` uses it.
pub fn session_key(config: &Config) -> Result<SessionKey> {
    let env = std::env::var("SECONDME_SESSION_KEY").ok();
    SessionKey::load(env.as_deref(), &config.key_file).context("cannot load the session key")
}

fn connector(config: &Config, key: &SessionKey, phone: Option<&str>) -> Result<WhatsAppConnector> {
    let hasher = ContactHasher::new(key.subkey(KEY_LABEL));
    let c = WhatsAppConnector::new(
        config.whatsapp_dir.clone(),
        hasher,
        MapOptions {
            groups: config.groups,
        },
    );
    // A test's closed port or a relay instead of WhatsApp (see ENDPOINT_ENV).
    let c = match std::env::var(super::client::ENDPOINT_ENV) {
        Ok(url) if !url.is_empty() => c.with_endpoint(url),
        _ => c,
    };
    Ok(match phone {
        None => c,
        Some(text) => match Person::from_phone_text(text) {
            Some(Person::Phone(digits)) => c.with_phone(digits),
            _ => anyhow::bail!(
                "--phone must be a phone number with its country code, e.g. +15551234567"
            ),
        },
    })
}

/// Runs the gateway on `con` until `stop`, replaced, or (with `until_connected`) logged in.
pub async fn run(
    config: &Config,
    con: Con,
    stop: watch::Receiver<bool>,
    phone: Option<&str>,
    until_connected: bool,
    tap: Option<mpsc::UnboundedSender<LinkEvent>>,
) -> Result<Exit> {
    let key = session_key(config)?;
    let connector = connector(config, &key, phone)?;
    let mut probe = con.clone();
    let version = connection::server_version(&mut probe).await?;
    let directory = Directory::open(config.whatsapp_dir.join(super::client::CONTACTS_FILE))?;
    let inbox = Inbox::new(
        con.clone(),
        connection::supports_acked_trim(version),
        directory,
    )
    .with_media_limit(config.media.max_bytes);
    let opts = GatewayOptions {
        user_id: config.user_id.clone(),
        key,
        send_per_minute: config.send_per_minute,
        typing_refresh: std::time::Duration::from_secs(10),
        send_attempts: gateway::DEFAULT_SEND_ATTEMPTS,
        send_retry: gateway::DEFAULT_SEND_RETRY,
        refresh: status::REFRESH,
        until_connected,
        consumer: super::sender::consumer_name(&config.user_id),
        replicas_to_wait: config.replicas_to_wait,
        lease_ttl: super::lease::TTL,
    };
    let mut gateway = WhatsAppGateway::new(connector, con, inbox, opts);
    if let Some(tap) = tap {
        gateway = gateway.with_tap(tap);
    }
    gateway.run(stop).await
}

/// Unlinks the device (when WhatsApp can be reached within `wait`) and deletes
/// its store and `SESSION:{userId}`; says whether the phone was told.
pub async fn logout(config: &Config, mut con: Con, wait: std::time::Duration) -> Result<bool> {
    let key = session_key(config)?;
    let connector = connector(config, &key, None)?;
    let mut told = false;
    if connector.has_store() {
        let directory = Directory::open(config.whatsapp_dir.join(super::client::CONTACTS_FILE))?;
        let inbox = Inbox::new(con.clone(), false, directory);
        let (tx, mut rx) = mpsc::channel(64);
        let link = connector.connect(inbox, tx).await?;
        let connected = tokio::time::timeout(wait, async {
            while let Some(event) = rx.recv().await {
                match event {
                    LinkEvent::Connected { .. } => return true,
                    LinkEvent::LoggedOut { .. } | LinkEvent::Qr { .. } => return false,
                    _ => {}
                }
            }
            false
        })
        .await
        .unwrap_or(false);
        if connected {
            link.logout().await;
            told = true;
        }
        link.shutdown().await;
    }
    connector
        .remove_store()
        .with_context(|| format!("cannot delete {}", config.whatsapp_dir.display()))?;
    session::remove(&mut con, &config.user_id).await?;
    let out =
        GatewayStatus::new(State::LoggedOut, now_ms()).detail("logged out with `secondme logout`");
    status::publish(&mut con, &config.user_id, &out).await?;
    Ok(told)
}
