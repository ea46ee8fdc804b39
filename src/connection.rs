//! Connections to Redis: one shared reconnecting manager for commands and
//! pub/sub, and a dedicated connection for blocking stream reads.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use redis::aio::{ConnectionManager, ConnectionManagerConfig, MultiplexedConnection};
use redis::io::tcp::TcpSettings;
use redis::{AsyncConnectionConfig, Client, IntoConnectionInfo, ProtocolVersion, TlsCertificates};

use crate::config::Config;

/// Response timeout for ordinary commands.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(3);
/// Connect timeout for every connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// Installs the TLS crypto provider once per process (needed for `rediss://`).
fn install_tls_provider() {
    // A second install returns Err, which only means it is already there.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Opens a client for `url` (`redis://`, `rediss://`, `unix://`, `redis+unix://`)
/// speaking RESP3 with TCP_NODELAY.
pub fn open_client(url: &str) -> Result<Client> {
    open_client_trusting(url, None)
}

/// The client a command uses: its Redis URL, and for `rediss://` the CA file of a
/// private certificate authority when `tls_ca_file` is set.
pub fn client_for(config: &Config) -> Result<Client> {
    open_client_trusting(&config.redis_url, config.tls_ca_file.as_deref())
}

/// [`open_client`] that verifies a `rediss://` server against the PEM certificates
/// in `ca_file` instead of the public roots.
pub fn open_client_trusting(url: &str, ca_file: Option<&Path>) -> Result<Client> {
    install_tls_provider();
    let info = url
        .into_connection_info()
        .with_context(|| format!("invalid Redis URL {}", redact_url(url)))?;
    let redis = info
        .redis_settings()
        .clone()
        .set_protocol(ProtocolVersion::RESP3);
    let info = info
        .set_redis_settings(redis)
        .set_tcp_settings(TcpSettings::default().set_nodelay(true));
    let Some(ca_file) = ca_file else {
        return Client::open(info)
            .with_context(|| format!("cannot use Redis URL {}", redact_url(url)));
    };
    if !url.starts_with("rediss://") {
        bail!(
            "tls_ca_file is set but {} is not a rediss:// URL",
            redact_url(url)
        );
    }
    let pem = std::fs::read(ca_file)
        .with_context(|| format!("cannot read tls_ca_file {}", ca_file.display()))?;
    let certs = TlsCertificates {
        client_tls: None,
        root_cert: Some(pem),
    };
    Client::build_with_tls(info, certs).with_context(|| {
        format!(
            "cannot use Redis URL {} with the CA in {}",
            redact_url(url),
            ca_file.display()
        )
    })
}

/// Hides the password of a URL so it can be logged or shown.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    match rest.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{scheme}://{user}:***@{host}")
        }
        None => url.to_owned(),
    }
}

/// The reconnecting connection every command goes through.
///
/// `push` receives pub/sub messages; subscriptions come back after a reconnect.
pub async fn manager(
    client: &Client,
    push: Option<tokio::sync::mpsc::UnboundedSender<redis::PushInfo>>,
) -> Result<ConnectionManager> {
    ConnectionManager::new_with_config(client.clone(), manager_config(push))
        .await
        .context("cannot connect to Redis")
}

/// Like [`manager`], but connects on first use: for programs that must start
/// (and show that Redis is down) while Redis is away.
pub fn lazy_manager(
    client: &Client,
    push: Option<tokio::sync::mpsc::UnboundedSender<redis::PushInfo>>,
) -> Result<ConnectionManager> {
    ConnectionManager::new_lazy_with_config(client.clone(), manager_config(push))
        .context("cannot set up the Redis connection")
}

fn manager_config(
    push: Option<tokio::sync::mpsc::UnboundedSender<redis::PushInfo>>,
) -> ConnectionManagerConfig {
    let mut config = ConnectionManagerConfig::new()
        .set_response_timeout(Some(COMMAND_TIMEOUT))
        .set_connection_timeout(Some(CONNECT_TIMEOUT))
        .set_min_delay(Duration::from_millis(100))
        .set_max_delay(Duration::from_secs(2))
        .set_number_of_retries(2);
    if let Some(tx) = push {
        config = config.set_push_sender(tx).set_automatic_resubscription();
    }
    config
}

/// A connection of its own for `XREADGROUP ... BLOCK`, whose timeout outlasts the block.
pub async fn blocking_connection(
    client: &Client,
    block: Duration,
) -> Result<MultiplexedConnection> {
    let config = AsyncConnectionConfig::new()
        .set_response_timeout(Some(block + COMMAND_TIMEOUT))
        .set_connection_timeout(Some(CONNECT_TIMEOUT));
    client
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .context("cannot open the stream-reading connection to Redis")
}

/// Major and minor version of the server, from `INFO server`.
pub async fn server_version<C: redis::aio::ConnectionLike + Send>(
    con: &mut C,
) -> Result<(u32, u32)> {
    let info: String = redis::cmd("INFO")
        .arg("server")
        .query_async(con)
        .await
        .context("INFO server failed")?;
    parse_version(&info).context("INFO server has no readable redis_version")
}

fn parse_version(info: &str) -> Option<(u32, u32)> {
    let line = info
        .lines()
        .find_map(|l| l.strip_prefix("redis_version:"))?;
    let mut parts = line.trim().split('.');
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

/// True when the server trims streams with `ACKED` (Redis 8.2 and later).
pub fn supports_acked_trim(version: (u32, u32)) -> bool {
    version >= (8, 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_and_acked() {
        let info = "# Server\r\nredis_version:8.2.3\r\nredis_mode:standalone\r\n";
        assert_eq!(parse_version(info), Some((8, 2)));
        assert!(supports_acked_trim((8, 2)));
        assert!(!supports_acked_trim((7, 0)));
    }

    #[test]
    fn redacts_passwords() {
        assert_eq!(
            redact_url("redis://bob:s3cret@host:6379/0"),
            "redis://bob:***@host:6379/0"
        );
        assert_eq!(redact_url("unix:///tmp/r.sock"), "unix:///tmp/r.sock");
    }
}
