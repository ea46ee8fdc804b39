//! Connections to Redis: one shared reconnecting connection ([`Con`]) for commands
//! and pub/sub, and a dedicated connection for blocking stream reads
//! ([`ReadCon`]), on one server, on the primary Redis Sentinel names (found again
//! after a failover), or on a Redis Cluster.

mod cluster;
mod reader;
mod sentinel;
mod server_info;
mod url;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster_async::ClusterConnection;
use redis::io::tcp::TcpSettings;
use redis::{
    Cmd, ConnectionInfo, FromRedisValue, IntoConnectionInfo, Pipeline, ProtocolVersion, PushInfo,
    RedisFuture, RedisResult, TlsCertificates, ToRedisArgs, Value,
};
use tokio::sync::mpsc::UnboundedSender;

use crate::config::Config;
use sentinel::{Resolver, SentinelCon};
use url::Target;

pub use reader::{READER_NAME_PREFIX, ReadCon, StreamNode, blocking_connection, unique_name};
pub use sentinel::PrimaryWatch;
pub use server_info::{
    describe_error, explain_noperm, is_noperm, server_version, supports_acked_trim,
};
pub use url::{Topology, cannot_reach, redact_url, scrub};

/// Response timeout for ordinary commands.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(3);
/// Connect timeout for every connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// What a command says on a Cluster when it has no namespace.
const CLUSTER_NEEDS_NAMESPACE: &str =
    "on a Redis Cluster every key of a person must share a slot: set --namespace";

/// Installs the TLS crypto provider once per process (needed for `rediss://`).
fn install_tls_provider() {
    // A second install returns Err, which only means it is already there.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Where connections go: one server, the primary the sentinels name, or a
/// Cluster. Opens no connection itself; cheap to clone.
#[derive(Clone)]
pub struct Client(Kind);

#[derive(Clone)]
enum Kind {
    Single(Arc<redis::Client>),
    Sentinel(Resolver),
    Cluster(Arc<cluster::Clients>),
}

impl From<redis::Client> for Client {
    fn from(client: redis::Client) -> Self {
        Self(Kind::Single(Arc::new(client)))
    }
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self.0 {
            Kind::Single(_) => "Client(single)",
            Kind::Sentinel(_) => "Client(sentinel)",
            Kind::Cluster(_) => "Client(cluster)",
        })
    }
}

impl Client {
    /// True when this client reaches a Redis Cluster.
    pub fn is_cluster(&self) -> bool {
        matches!(self.0, Kind::Cluster(_))
    }

    /// A pub/sub connection of its own (`SUBSCRIBE` and wait for messages): on the
    /// server, on the primary the sentinels name now, or on the first seed node of
    /// a Cluster that answers (any node delivers what any node publishes).
    pub async fn get_async_pubsub(&self) -> RedisResult<redis::aio::PubSub> {
        match &self.0 {
            Kind::Single(client) => client.get_async_pubsub().await,
            Kind::Sentinel(resolver) => resolver.primary().await?.get_async_pubsub().await,
            Kind::Cluster(clients) => {
                let mut last = None;
                for seed in &clients.seeds {
                    match seed.get_async_pubsub().await {
                        Ok(pubsub) => return Ok(pubsub),
                        Err(e) => last = Some(e),
                    }
                }
                Err(last.unwrap_or_else(|| {
                    redis::RedisError::from((
                        redis::ErrorKind::InvalidClientConfig,
                        "the Cluster URL names no node",
                    ))
                }))
            }
        }
    }
}

/// Opens a client for `url` (`redis://`, `rediss://`, `unix://`, `redis+unix://`,
/// `redis-sentinel://`, `rediss-sentinel://`, `redis-cluster://`,
/// `rediss-cluster://`) speaking RESP3 with TCP_NODELAY.
pub fn open_client(url: &str) -> Result<Client> {
    open_client_trusting(url, None)
}

/// The topology the configured Redis URL names.
pub fn topology(config: &Config) -> Topology {
    url::topology_of(&config.redis_url)
}

/// The client a command uses: its Redis URL, and for `rediss` URLs the CA file of a
/// private certificate authority when `tls_ca_file` is set. On a Cluster, the
/// command must have a namespace, so that all of one person's keys share a slot.
pub fn client_for(config: &Config) -> Result<Client> {
    if topology(config).is_cluster() && config.namespace.is_none() {
        bail!(CLUSTER_NEEDS_NAMESPACE);
    }
    client_for_any_namespace(config)
}

/// [`client_for`] without the namespace check: for what serves or lists many
/// namespaces (each key it touches carries its own, or is the registry of them).
pub fn client_for_any_namespace(config: &Config) -> Result<Client> {
    open_client_trusting(&config.redis_url, config.tls_ca_file.as_deref())
}

/// [`open_client`] that verifies a TLS server against the PEM certificates in
/// `ca_file` instead of the public roots.
pub fn open_client_trusting(url: &str, ca_file: Option<&Path>) -> Result<Client> {
    install_tls_provider();
    url::remember_secrets(url);
    let shown = redact_url(url);
    let target = url::parse(url).with_context(|| format!("invalid Redis URL {shown}"))?;
    let certs = match ca_file {
        None => None,
        Some(_) if !url::is_tls(url) => bail!(
            "tls_ca_file is set but {shown} is not a rediss:// URL \
             (nor rediss-sentinel:// or rediss-cluster://)"
        ),
        Some(ca_file) => {
            let pem = std::fs::read(ca_file)
                .with_context(|| format!("cannot read tls_ca_file {}", ca_file.display()))?;
            Some(TlsCertificates {
                client_tls: None,
                root_cert: Some(pem),
            })
        }
    };
    let kind = match target {
        Target::Single => {
            let info = url
                .into_connection_info()
                .with_context(|| format!("invalid Redis URL {shown}"))?;
            single_client(info, certs).map(|c| Kind::Single(Arc::new(c)))
        }
        Target::Sentinel(target) => Resolver::new(target, certs).map(Kind::Sentinel),
        Target::Cluster(target) => {
            cluster::clients(target, certs).map(|c| Kind::Cluster(Arc::new(c)))
        }
    };
    kind.map(Client)
        .with_context(|| format!("cannot use Redis URL {shown}"))
}

/// A client speaking RESP3 with TCP_NODELAY to the server `info` names.
fn single_client(
    info: ConnectionInfo,
    certs: Option<TlsCertificates>,
) -> RedisResult<redis::Client> {
    let redis = info
        .redis_settings()
        .clone()
        .set_protocol(ProtocolVersion::RESP3);
    let info = info
        .set_redis_settings(redis)
        .set_tcp_settings(TcpSettings::default().set_nodelay(true));
    match certs {
        None => redis::Client::open(info),
        Some(certs) => redis::Client::build_with_tls(info, certs),
    }
}

/// The connection every command and subscription goes through: a reconnecting
/// manager on one server, the same on the primary Sentinel names (moved to the
/// new primary after a failover), or a Cluster connection. Cheap to clone: clones
/// share it.
#[derive(Clone)]
pub struct Con {
    shared: Shared,
    /// Where it connects, for a connection of its own to the same place.
    client: Client,
}

#[derive(Clone)]
enum Shared {
    Single(ConnectionManager),
    Sentinel(SentinelCon),
    Cluster(ClusterConnection),
}

impl std::fmt::Debug for Con {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self.shared {
            Shared::Single(_) => "Con(single)",
            Shared::Sentinel(_) => "Con(sentinel)",
            Shared::Cluster(_) => "Con(cluster)",
        })
    }
}

impl Con {
    /// A connection of its own to the same place, opened at its first command:
    /// for a writer whose `WAIT`s must hold up nobody else.
    pub fn own(&self) -> Result<Con> {
        lazy_manager(&self.client, None)
    }

    /// Subscribes to `channels`; messages go to the `push` sender the connection
    /// was made with, and the subscriptions come back after a reconnect, a
    /// Sentinel failover or a Cluster's slot moves.
    pub async fn subscribe(&mut self, channels: impl ToRedisArgs) -> RedisResult<()> {
        match &mut self.shared {
            Shared::Single(con) => con.subscribe(channels).await,
            Shared::Sentinel(con) => con.subscribe(channels).await,
            Shared::Cluster(con) => con.subscribe(channels).await,
        }
    }

    /// Sends a keyless command about `key` (`WAIT`, `CLUSTER SLOTS`) where `key`
    /// lives: on a Cluster, the primary of its slot.
    pub async fn query_at_key<T: FromRedisValue>(
        &mut self,
        cmd: &Cmd,
        key: &str,
    ) -> RedisResult<T> {
        if let Shared::Cluster(con) = &mut self.shared {
            return cluster::query_at_key(con, cmd, key).await;
        }
        cmd.query_async(self).await
    }

    /// Sends `pipe` of keyless commands about `key` (`WAIT` and `CLIENT INFO`)
    /// on one server connection where `key` lives: on a Cluster, the primary of
    /// its slot.
    pub async fn query_pipeline_at_key<T: FromRedisValue>(
        &mut self,
        pipe: &Pipeline,
        key: &str,
    ) -> RedisResult<T> {
        if let Shared::Cluster(con) = &mut self.shared {
            return cluster::pipeline_at_key(con, pipe, key).await;
        }
        pipe.query_async(self).await
    }
}

impl ConnectionLike for Con {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match &mut self.shared {
            Shared::Single(con) => con.req_packed_command(cmd),
            Shared::Sentinel(con) => con.req_packed_command(cmd),
            Shared::Cluster(con) => con.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match &mut self.shared {
            Shared::Single(con) => con.req_packed_commands(pipeline, offset, count),
            Shared::Sentinel(con) => con.req_packed_commands(pipeline, offset, count),
            Shared::Cluster(con) => con.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match &self.shared {
            Shared::Single(con) => con.get_db(),
            Shared::Sentinel(con) => con.get_db(),
            Shared::Cluster(con) => con.get_db(),
        }
    }
}

/// The reconnecting connection every command goes through.
///
/// `push` receives pub/sub messages; subscriptions come back after a reconnect.
pub async fn manager(client: &Client, push: Option<UnboundedSender<PushInfo>>) -> Result<Con> {
    let shared = match &client.0 {
        Kind::Single(client) => {
            ConnectionManager::new_with_config((**client).clone(), manager_config(push))
                .await
                .map(Shared::Single)
        }
        Kind::Sentinel(resolver) => SentinelCon::connect(resolver.clone(), push)
            .await
            .map(Shared::Sentinel),
        Kind::Cluster(clients) => clients
            .cluster
            .get_async_connection_with_config(cluster::config(
                COMMAND_TIMEOUT,
                CONNECT_TIMEOUT,
                push,
            ))
            .await
            .map(Shared::Cluster),
    };
    shared
        .map(|shared| Con {
            shared,
            client: client.clone(),
        })
        .context(connect_failed(client))
}

/// Like [`manager`], but connects on first use: for programs that must start
/// (and show that Redis is down) while Redis is away.
pub fn lazy_manager(client: &Client, push: Option<UnboundedSender<PushInfo>>) -> Result<Con> {
    let shared = match &client.0 {
        Kind::Single(client) => Shared::Single(
            ConnectionManager::new_lazy_with_config((**client).clone(), manager_config(push))
                .context("cannot set up the Redis connection")?,
        ),
        Kind::Sentinel(resolver) => Shared::Sentinel(SentinelCon::lazy(resolver.clone(), push)),
        Kind::Cluster(clients) => {
            Shared::Cluster(clients.cluster.get_pending_async_connection_with_config(
                cluster::config(COMMAND_TIMEOUT, CONNECT_TIMEOUT, push),
            ))
        }
    };
    Ok(Con {
        shared,
        client: client.clone(),
    })
}

fn connect_failed(client: &Client) -> &'static str {
    match client.0 {
        Kind::Single(_) => "cannot connect to Redis",
        Kind::Sentinel(_) => "cannot connect to the Redis primary the sentinels name",
        Kind::Cluster(_) => "cannot connect to the Redis Cluster",
    }
}

fn manager_config(push: Option<UnboundedSender<PushInfo>>) -> ConnectionManagerConfig {
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
