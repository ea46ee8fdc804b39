//! Which node is the primary: asked of the sentinels through redis-rs's
//! `SentinelClient` (which also checks that the node it names says it is a
//! primary), and told by them: a listener on each sentinel's `+switch-master`
//! channel learns of a failover the moment the sentinel that ran it announces it.
//!
//! The address a `+switch-master` announced is asked first afterwards, while it
//! says it is a primary: just after a failover the sentinels disagree for a second
//! or two (the others learn it from the leader), and a demoted primary goes on
//! calling itself one until it is told, seconds later, so the first sentinel
//! asked could still send every connection back to it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use futures_util::StreamExt;
use redis::io::tcp::TcpSettings;
use redis::sentinel::{SentinelClient, SentinelClientBuilder, SentinelServerType};
use redis::{
    AsyncConnectionConfig, Client, ConnectionAddr, ConnectionInfo, ErrorKind, IntoConnectionInfo,
    RedisConnectionInfo, RedisError, RedisResult, TlsCertificates, Value,
};
use tokio::sync::watch;

use crate::connection::url::{SentinelTarget, tls_mode};

/// Longest wait for the sentinels to name a primary (and for it to confirm).
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest wait for an announced primary to say it is one.
const CHECK_TIMEOUT: Duration = Duration::from_secs(1);
/// The sentinels' channel announcing a new primary:
/// `<name> <old-ip> <old-port> <new-ip> <new-port>`.
const SWITCH_MASTER: &str = "+switch-master";
/// How often a quiet listener checks that someone still uses what it watches.
const LISTEN_CHECK: Duration = Duration::from_secs(5);
/// Pause before a lost listener to a sentinel connects again.
const LISTEN_RETRY: Duration = Duration::from_secs(1);

/// Asks the sentinels which node is the primary. Cheap to clone.
#[derive(Clone)]
pub(in crate::connection) struct Resolver(Arc<Inner>);

struct Inner {
    sentinel: tokio::sync::Mutex<SentinelClient>,
    primary: String,
    /// A client per sentinel, for the listeners.
    sentinels: Vec<Client>,
    /// How to reach and log in to a node of the primary's group.
    node: NodeLogin,
    /// The primary a `+switch-master` announced last.
    announced: Mutex<Option<ConnectionAddr>>,
    /// The primary named last, to whoever asked.
    named: watch::Sender<Option<ConnectionAddr>>,
    /// Whether the listeners run.
    listening: AtomicBool,
}

/// The login and TLS settings of the primary and its replicas.
struct NodeLogin {
    redis: RedisConnectionInfo,
    tls: bool,
    certs: Option<TlsCertificates>,
}

impl NodeLogin {
    /// A client for the node at `host:port`.
    fn client(&self, host: String, port: u16) -> RedisResult<Client> {
        let addr = if self.tls {
            ConnectionAddr::TcpTls {
                host,
                port,
                insecure: false,
                tls_params: None,
            }
        } else {
            ConnectionAddr::Tcp(host, port)
        };
        let info = addr
            .into_connection_info()?
            .set_redis_settings(self.redis.clone())
            .set_tcp_settings(TcpSettings::default().set_nodelay(true));
        open(info, &self.certs)
    }
}

fn open(info: ConnectionInfo, certs: &Option<TlsCertificates>) -> RedisResult<Client> {
    match certs {
        Some(certs) => Client::build_with_tls(info, certs.clone()),
        None => Client::open(info),
    }
}

impl Resolver {
    /// A resolver for `target`; `certs` (a private CA) verifies the sentinels and
    /// the nodes of a `rediss-sentinel://` URL.
    pub(in crate::connection) fn new(
        target: SentinelTarget,
        certs: Option<TlsCertificates>,
    ) -> RedisResult<Self> {
        let redis = &target.redis;
        let nodelay = TcpSettings::default().set_nodelay(true);
        let sentinels = target
            .sentinels
            .iter()
            .map(|addr| {
                let info = addr
                    .clone()
                    .into_connection_info()?
                    .set_tcp_settings(nodelay.clone());
                open(info, &certs)
            })
            .collect::<RedisResult<_>>()?;
        let mut builder = SentinelClientBuilder::new(
            target.sentinels,
            &target.primary,
            SentinelServerType::Master,
        )?
        .set_client_to_redis_db(redis.db())
        .set_client_to_redis_protocol(redis.protocol())
        .set_client_to_redis_tcp_settings(nodelay.clone())
        .set_client_to_sentinel_tcp_settings(nodelay);
        if let Some(user) = redis.username() {
            builder = builder.set_client_to_redis_username(user);
        }
        if let Some(password) = redis.password() {
            builder = builder.set_client_to_redis_password(password);
        }
        if let Some(mode) = tls_mode(target.tls) {
            builder = builder
                .set_client_to_redis_tls_mode(mode)
                .set_client_to_sentinel_tls_mode(mode);
            if let Some(certs) = &certs {
                builder = builder
                    .set_client_to_redis_certificates(certs.clone())
                    .set_client_to_sentinel_certificates(certs.clone());
            }
        }
        Ok(Self(Arc::new(Inner {
            sentinel: tokio::sync::Mutex::new(builder.build()?),
            primary: target.primary,
            sentinels,
            node: NodeLogin {
                redis: target.redis,
                tls: target.tls,
                certs,
            },
            announced: Mutex::new(None),
            named: watch::Sender::new(None),
            listening: AtomicBool::new(false),
        })))
    }

    /// A client for the primary now. The first call starts listening to the
    /// sentinels' announcements.
    pub(in crate::connection) async fn primary(&self) -> RedisResult<Client> {
        if !self.0.listening.swap(true, Ordering::AcqRel) {
            for sentinel in &self.0.sentinels {
                tokio::spawn(listen(sentinel.clone(), Arc::downgrade(&self.0)));
            }
        }
        self.look_up().await
    }

    /// The announced primary while it says it is one, else the one the sentinels
    /// name; recorded for every connection of this client.
    async fn look_up(&self) -> RedisResult<Client> {
        let found = match self.announced_primary().await {
            Some(client) => client,
            None => self.ask_sentinels().await?,
        };
        let addr = found.get_connection_info().addr().clone();
        self.0.named.send_if_modified(|named| {
            let moved = named.as_ref() != Some(&addr);
            if moved {
                *named = Some(addr);
            }
            moved
        });
        Ok(found)
    }

    async fn announced_primary(&self) -> Option<Client> {
        let announced = self
            .0
            .announced
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone();
        let (host, port) = match announced? {
            ConnectionAddr::Tcp(host, port) | ConnectionAddr::TcpTls { host, port, .. } => {
                (host, port)
            }
            _ => return None,
        };
        let client = self.0.node.client(host, port).ok()?;
        if says_primary(&client).await {
            return Some(client);
        }
        // Demoted or gone since: the sentinels know better now.
        *self
            .0
            .announced
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = None;
        None
    }

    async fn ask_sentinels(&self) -> RedisResult<Client> {
        let mut sentinel = self.0.sentinel.lock().await;
        // Boxed: the lookup is a deep future, and every caller's would hold it inline.
        let lookup = Box::pin(sentinel.async_get_client());
        match tokio::time::timeout(RESOLVE_TIMEOUT, lookup).await {
            Ok(found) => found,
            Err(_) => Err(RedisError::from((
                ErrorKind::Io,
                "the sentinels did not name a reachable primary in time",
            ))),
        }
    }

    /// Records a `+switch-master` payload if it is about this primary.
    fn announce(&self, payload: &str) -> bool {
        let fields: Vec<&str> = payload.split(' ').collect();
        let [name, _, _, host, port] = fields[..] else {
            return false;
        };
        let Ok(port) = port.parse::<u16>() else {
            return false;
        };
        if name != self.0.primary {
            return false;
        }
        let addr = if self.0.node.tls {
            ConnectionAddr::TcpTls {
                host: host.to_owned(),
                port,
                insecure: false,
                tls_params: None,
            }
        } else {
            ConnectionAddr::Tcp(host.to_owned(), port)
        };
        *self
            .0
            .announced
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(addr);
        true
    }

    /// The primary named last (by any connection of this client), if any.
    pub(in crate::connection) fn named(&self) -> watch::Ref<'_, Option<ConnectionAddr>> {
        self.0.named.borrow()
    }

    /// Tells, from now on, when the primary named changes.
    pub(in crate::connection) fn subscribe(&self) -> watch::Receiver<Option<ConnectionAddr>> {
        self.0.named.subscribe()
    }

    /// Tells, from now on, whether a primary other than `addr` was named.
    pub(in crate::connection) fn watch_from(&self, addr: ConnectionAddr) -> PrimaryWatch {
        PrimaryWatch {
            named: self.subscribe(),
            addr,
        }
    }

    /// The name the sentinels know the primary by.
    pub(in crate::connection) fn primary_name(&self) -> &str {
        &self.0.primary
    }

    /// The database the primary's connections select.
    pub(in crate::connection) fn db(&self) -> i64 {
        self.0.node.redis.db()
    }
}

/// Whether the node a connection was opened on is still the primary named last
/// (to any connection of the same client).
#[derive(Clone)]
pub struct PrimaryWatch {
    named: watch::Receiver<Option<ConnectionAddr>>,
    addr: ConnectionAddr,
}

impl PrimaryWatch {
    /// True once another primary was named: the connection should be opened
    /// again (where it then goes, the sentinels say).
    pub fn moved(&self) -> bool {
        self.named
            .borrow()
            .as_ref()
            .is_some_and(|a| *a != self.addr)
    }
}

/// True when the node says it is a primary (`ROLE`).
async fn says_primary(client: &Client) -> bool {
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(CHECK_TIMEOUT))
        .set_response_timeout(Some(CHECK_TIMEOUT));
    let Ok(mut con) = client
        .get_multiplexed_async_connection_with_config(&config)
        .await
    else {
        return false;
    };
    let role: RedisResult<Vec<Value>> = redis::cmd("ROLE").query_async(&mut con).await;
    let first = role.ok().and_then(|r| r.into_iter().next());
    first.is_some_and(|v| redis::from_redis_value::<String>(v).is_ok_and(|r| r == "master"))
}

/// Listens to `+switch-master` on one sentinel, connecting again when the
/// connection is lost, until the resolver is dropped.
async fn listen(sentinel: Client, resolver: Weak<Inner>) {
    while resolver.strong_count() > 0 {
        listen_once(&sentinel, &resolver).await;
        tokio::time::sleep(LISTEN_RETRY).await;
    }
}

/// One subscription, until it is lost or the resolver is dropped.
async fn listen_once(sentinel: &Client, resolver: &Weak<Inner>) {
    let Ok(Ok(mut pubsub)) =
        tokio::time::timeout(RESOLVE_TIMEOUT, sentinel.get_async_pubsub()).await
    else {
        return;
    };
    if pubsub.subscribe(SWITCH_MASTER).await.is_err() {
        return;
    }
    let mut messages = pubsub.on_message();
    loop {
        match tokio::time::timeout(LISTEN_CHECK, messages.next()).await {
            Ok(Some(message)) => {
                let Some(inner) = resolver.upgrade() else {
                    return;
                };
                let resolver = Resolver(inner);
                let payload: String = message.get_payload().unwrap_or_default();
                if resolver.announce(&payload) {
                    // Records the new primary for every connection of this client.
                    let _ = resolver.look_up().await;
                }
            }
            Ok(None) => return,
            Err(_) if resolver.strong_count() == 0 => return,
            Err(_) => {}
        }
    }
}
