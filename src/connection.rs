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
    remember_secrets(url);
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

/// Query parameters of a Redis URL whose values are safe to show; every other
/// value (`pass`, `password`, a token...) is hidden, so a credential under a
/// name nobody listed here is still not printed.
const SHOWN_PARAMS: &[&str] = &["db", "protocol", "user", "username", "insecure"];

/// Hides every credential of a Redis URL (`user:pass@`, `:pass@`, `pass@`,
/// `?pass=`, `?password=` and any other query value that is not known to be
/// harmless) so it can be logged or shown.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        // Not a URL at all: nothing tells which part could be a secret.
        return "<unparsable URL hidden>".to_owned();
    };
    let (authority, tail) = rest.split_at(authority_end(rest));
    let authority = match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{user}:***@{host}"),
            // `redis://secret@host`: a lone userinfo may be a password.
            None => format!("***@{host}"),
        },
        None => authority.to_owned(),
    };
    let (before_fragment, fragment) = match tail.split_once('#') {
        Some((t, f)) => (t, Some(f)),
        None => (tail, None),
    };
    let mut out = format!("{scheme}://{authority}");
    match before_fragment.split_once('?') {
        Some((path, query)) => {
            out.push_str(path);
            out.push('?');
            let pairs: Vec<String> = query
                .split('&')
                .map(|pair| match pair.split_once('=') {
                    Some((name, _))
                        if !SHOWN_PARAMS.contains(&name.to_ascii_lowercase().as_str()) =>
                    {
                        format!("{name}=***")
                    }
                    _ => pair.to_owned(),
                })
                .collect();
            out.push_str(&pairs.join("&"));
        }
        None => out.push_str(before_fragment),
    }
    if let Some(f) = fragment {
        out.push('#');
        out.push_str(f);
    }
    out
}

/// Where the authority (`[userinfo@]host[:port]`) of `rest` (a URL after `://`)
/// ends. A password may hold '/' (base64 ones do): when there is an '@' before the
/// query, the host starts after the last one, and the authority ends at the first
/// '/' after it; else at the first '/', '?' or '#'.
fn authority_end(rest: &str) -> usize {
    let query = rest.find(['?', '#']).unwrap_or(rest.len());
    let host_from = rest[..query].rfind('@').map_or(0, |at| at + 1);
    rest[host_from..query]
        .find('/')
        .map_or(query, |slash| host_from + slash)
}

/// The secret parts of a Redis URL, as written and percent-decoded, so text that
/// may echo them (an error of the Redis client) can be scrubbed.
fn url_secrets(url: &str) -> Vec<String> {
    let mut found = Vec::new();
    let Some((_, rest)) = url.split_once("://") else {
        found.push(url.to_owned());
        return found;
    };
    if let Some((userinfo, _)) = rest[..authority_end(rest)].rsplit_once('@') {
        found.push(match userinfo.split_once(':') {
            Some((_, pass)) => pass.to_owned(),
            None => userinfo.to_owned(),
        });
    }
    if let Some((_, query)) = rest.split('#').next().unwrap_or("").split_once('?') {
        for pair in query.split('&') {
            if let Some((name, value)) = pair.split_once('=')
                && !SHOWN_PARAMS.contains(&name.to_ascii_lowercase().as_str())
            {
                found.push(value.to_owned());
            }
        }
    }
    let decoded: Vec<String> = found.iter().map(|s| percent_decode(s)).collect();
    found.extend(decoded);
    // A one-letter "secret" would scrub half of every message; such a password
    // protects nothing anyway.
    found.retain(|s| s.chars().count() >= 3);
    found.sort_by_key(|s| std::cmp::Reverse(s.len()));
    found.dedup();
    found
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (
            bytes[i],
            bytes.get(i + 1).copied(),
            bytes.get(i + 2).copied(),
        ) {
            (b'%', Some(h), Some(l)) if hex(h).is_some() && hex(l).is_some() => {
                let v = hex(h).unwrap_or(0) * 16 + hex(l).unwrap_or(0);
                out.push(v as u8);
                i += 3;
            }
            (b'+', _, _) => {
                out.push(b' ');
                i += 1;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Secrets of every Redis URL this process opened a client for.
static SECRETS: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

/// Remembers the credentials of `url` so [`scrub`] hides them wherever they appear.
fn remember_secrets(url: &str) {
    let mut secrets = SECRETS
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    for s in url_secrets(url) {
        if !secrets.contains(&s) {
            secrets.push(s);
        }
    }
    secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
}

/// Replaces every credential of a Redis URL this process uses with `***`: for
/// error text and log lines that may quote a URL or a password (the Redis client's
/// own errors among them).
pub fn scrub(text: &str) -> String {
    let secrets = SECRETS
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let mut out = text.to_owned();
    for s in secrets.iter() {
        if out.contains(s.as_str()) {
            out = out.replace(s.as_str(), "***");
        }
    }
    out
}

/// The connection every command and subscription goes through: today a
/// reconnecting manager on one Redis address.
pub type Con = ConnectionManager;

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

/// Major and minor version of the server, from the `HELLO` reply (any user may
/// send it), else from `INFO server` (an `@dangerous` command an ACL user may lack).
pub async fn server_version<C: redis::aio::ConnectionLike + Send>(
    con: &mut C,
) -> Result<(u32, u32)> {
    // HELLO without a protocol version only reports; it changes nothing on the connection.
    let hello = redis::cmd("HELLO");
    let reply: redis::RedisResult<redis::Value> = hello.query_async(&mut *con).await;
    if let Some(version) = reply.ok().and_then(hello_version) {
        return Ok(version);
    }
    let mut info = redis::cmd("INFO");
    info.arg("server");
    let info: redis::RedisResult<String> = info.query_async(&mut *con).await;
    let info = match info {
        Ok(text) => text,
        Err(e) => anyhow::bail!(
            "cannot learn the Redis version (HELLO and INFO server both failed): {}",
            explain_noperm(&e, "INFO server")
        ),
    };
    parse_version(&info).context("INFO server has no readable redis_version")
}

/// An error's text, with what to do when it is a missing ACL permission (`NOPERM`).
pub fn explain_noperm(e: &redis::RedisError, command: &str) -> String {
    let text = scrub(&e.to_string());
    if is_noperm(e) {
        format!(
            "{text}: the Redis user lacks permission for {command}; grant it (see \"ACL users\" in docs/redis-schema.md)"
        )
    } else {
        text
    }
}

/// An error chain as one line for the log and the screen: credentials scrubbed,
/// and a missing ACL permission (`NOPERM`) said plainly with where to look.
pub fn describe_error(e: &anyhow::Error) -> String {
    let text = scrub(&format!("{e:#}"));
    // redis-rs shows the code as `NoPerm`; the server as `NOPERM`.
    if text.to_ascii_lowercase().contains("noperm") {
        format!(
            "missing Redis permission: {text} (the ACL a worker needs is in \"ACL users\" of docs/redis-schema.md)"
        )
    } else {
        text
    }
}

/// True when Redis refused a command for lack of an ACL permission.
pub fn is_noperm(e: &redis::RedisError) -> bool {
    e.code() == Some("NOPERM") || e.to_string().to_ascii_lowercase().contains("noperm")
}

/// The `version` field of a `HELLO` reply (a map in RESP3, pairs in RESP2).
fn hello_version(reply: redis::Value) -> Option<(u32, u32)> {
    let fields: std::collections::HashMap<String, redis::Value> =
        redis::from_redis_value(reply).ok()?;
    let text: String = redis::from_redis_value(fields.get("version")?.clone()).ok()?;
    parse_version_text(&text)
}

fn parse_version_text(text: &str) -> Option<(u32, u32)> {
    let mut parts = text.trim().split('.');
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

fn parse_version(info: &str) -> Option<(u32, u32)> {
    info.lines()
        .find_map(|l| l.strip_prefix("redis_version:"))
        .and_then(parse_version_text)
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
    fn redacts_every_form_of_credential() {
        let cases = [
            (
                "redis://bob:s3cret@host:6379/0",
                "redis://bob:***@host:6379/0",
            ),
            ("redis://:s3cret@host", "redis://:***@host"),
            (
                "rediss://s3cret@host:6380/#insecure",
                "rediss://***@host:6380/#insecure",
            ),
            (
                "unix:///tmp/r.sock?pass=s3cret&db=2",
                "unix:///tmp/r.sock?pass=***&db=2",
            ),
            (
                "redis+unix:///tmp/r.sock?user=bob&password=s3cret",
                "redis+unix:///tmp/r.sock?user=bob&password=***",
            ),
            (
                "unix:///tmp/r.sock?PASS=s3cret&token=s3cret",
                "unix:///tmp/r.sock?PASS=***&token=***",
            ),
            // An '@' inside the password must not leave part of it behind.
            ("redis://u:a@b:s3cret@host/1", "redis://u:***@host/1"),
            // Nor a '/' (base64 passwords hold them).
            (
                "redis://default:s3cr/etpw@127.0.0.1:6391/2",
                "redis://default:***@127.0.0.1:6391/2",
            ),
            ("redis://s3c/r3t@host", "redis://***@host"),
            ("unix:///tmp/r.sock", "unix:///tmp/r.sock"),
            ("not a url s3cret", "<unparsable URL hidden>"),
        ];
        for (url, shown) in cases {
            let redacted = redact_url(url);
            assert_eq!(redacted, shown, "{url}");
            assert!(!redacted.contains("s3cret"), "{redacted}");
        }
    }

    #[test]
    fn scrub_hides_secrets_of_opened_urls_even_percent_encoded() {
        remember_secrets("unix:///tmp/x.sock?pass=p%40ss-w0rd-xyz&db=1");
        let text = scrub("AUTH failed for p@ss-w0rd-xyz (raw p%40ss-w0rd-xyz), db 1");
        assert!(!text.contains("w0rd"), "{text}");
        assert!(text.contains("db 1"), "{text}");
    }
}
