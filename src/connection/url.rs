//! Redis URLs: the topology a URL names, the Sentinel and Cluster forms parsed
//! into redis-rs connection settings, and the hiding of credentials wherever a URL
//! or a password could be shown.
//!
//! redis-rs reads the one-server forms (`redis://`, `rediss://`, `unix://`,
//! `redis+unix://`) itself; the forms with several hosts are read here:
//! `redis-sentinel://[user:pass@]host:port[,host:port...][/db]#primary-name` and
//! `redis-cluster://[user:pass@]host:port[,host:port...]`, with `rediss-` for TLS.

use redis::io::tcp::TcpSettings;
use redis::{ConnectionAddr, ConnectionInfo, IntoConnectionInfo, ProtocolVersion};
use redis::{RedisConnectionInfo, TlsMode};

/// Port of a sentinel when the URL gives none.
const SENTINEL_PORT: u16 = 26379;
/// Port of a cluster node when the URL gives none.
const NODE_PORT: u16 = 6379;

/// Which kind of deployment a Redis URL points at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Topology {
    /// One server (`redis://`, `rediss://`, `unix://`, `redis+unix://`).
    Single,
    /// The primary that Redis Sentinel names (`redis-sentinel://`, `rediss-sentinel://`).
    Sentinel {
        /// The name the sentinels know the primary by (the URL's `#fragment`).
        primary: String,
        /// How many sentinels the URL lists.
        sentinels: usize,
    },
    /// A Redis Cluster (`redis-cluster://`, `rediss-cluster://`).
    Cluster {
        /// How many seed nodes the URL lists.
        seeds: usize,
    },
}

impl Topology {
    /// True for a Redis Cluster, where every key of one person must share a slot.
    pub fn is_cluster(&self) -> bool {
        matches!(self, Self::Cluster { .. })
    }
}

/// What a URL asks to connect to, as redis-rs settings.
#[derive(Debug)]
pub(super) enum Target {
    /// One server: redis-rs reads the URL itself.
    Single,
    /// The primary the sentinels name.
    Sentinel(SentinelTarget),
    /// A Redis Cluster.
    Cluster(ClusterTarget),
}

/// A `redis-sentinel://` URL, read.
#[derive(Debug)]
pub(super) struct SentinelTarget {
    /// Where the sentinels listen (TLS addresses for `rediss-sentinel://`).
    pub sentinels: Vec<ConnectionAddr>,
    /// The name the sentinels know the primary by.
    pub primary: String,
    /// Database, user, password and protocol for the primary.
    pub redis: RedisConnectionInfo,
    /// Whether the sentinels and the nodes speak TLS.
    pub tls: bool,
}

/// A `redis-cluster://` URL, read.
#[derive(Debug)]
pub(super) struct ClusterTarget {
    /// The seed nodes, each with the user, password and protocol to log in with.
    pub nodes: Vec<ConnectionInfo>,
}

/// What is wrong with a Sentinel or Cluster URL; never quotes a credential.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(super) enum UrlError {
    /// Nothing between `://` (or `@`) and the path.
    #[error("names no host")]
    NoHost,
    /// `h1:1,,h2:2` or `:6379`.
    #[error("has an empty host in its list")]
    EmptyHost,
    /// `[::1` without `]`.
    #[error("has an IPv6 address without its closing ']'")]
    OpenBracket,
    /// A port that is not 1..=65535.
    #[error("gives {host} the port {port:?}, not a number from 1 to 65535")]
    BadPort { host: String, port: String },
    /// A path that is not a database number.
    #[error("has the path {0:?} where a database number goes")]
    BadDatabase(String),
    /// `/3` on a Cluster.
    #[error("selects a database, but a Redis Cluster has only database 0")]
    ClusterDatabase,
    /// No `#primary-name` on a Sentinel URL.
    #[error("names no primary: end it with #primary-name (the name the sentinels know it by)")]
    NoPrimary,
    /// A `#fragment` on a Cluster URL.
    #[error("has a #fragment, which a redis-cluster:// URL does not take")]
    ClusterFragment,
    /// A `?query` on a Sentinel or Cluster URL.
    #[error("has a ?query, which Sentinel and Cluster URLs do not take")]
    Query,
    /// `secret@host`: a lone word may be a user or a password.
    #[error("has credentials that are not written user:password@ or :password@")]
    Credentials,
    /// redis-rs refused the settings read.
    #[error("cannot be used: {0}")]
    Rejected(String),
}

/// The scheme family of a URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scheme {
    Single,
    Sentinel { tls: bool },
    Cluster { tls: bool },
}

fn scheme_of(url: &str) -> Scheme {
    let scheme = url.split_once("://").map_or("", |(s, _)| s);
    let is = |name: &str| scheme.eq_ignore_ascii_case(name);
    match () {
        () if is("redis-sentinel") => Scheme::Sentinel { tls: false },
        () if is("rediss-sentinel") => Scheme::Sentinel { tls: true },
        () if is("redis-cluster") => Scheme::Cluster { tls: false },
        () if is("rediss-cluster") => Scheme::Cluster { tls: true },
        () => Scheme::Single,
    }
}

/// True when `url` asks for TLS (`rediss://`, `rediss-sentinel://`, `rediss-cluster://`).
pub(super) fn is_tls(url: &str) -> bool {
    match scheme_of(url) {
        Scheme::Sentinel { tls } | Scheme::Cluster { tls } => tls,
        Scheme::Single => url
            .split_once("://")
            .is_some_and(|(s, _)| s.eq_ignore_ascii_case("rediss")),
    }
}

/// The topology `url` names. A malformed Sentinel or Cluster URL still says which
/// it is (with no primary name or seeds): connecting reports what is wrong.
pub(super) fn topology_of(url: &str) -> Topology {
    match parse(url) {
        Ok(Target::Single) => Topology::Single,
        Ok(Target::Sentinel(t)) => Topology::Sentinel {
            primary: t.primary,
            sentinels: t.sentinels.len(),
        },
        Ok(Target::Cluster(t)) => Topology::Cluster {
            seeds: t.nodes.len(),
        },
        Err(_) => match scheme_of(url) {
            Scheme::Single => Topology::Single,
            Scheme::Sentinel { .. } => Topology::Sentinel {
                primary: String::new(),
                sentinels: 0,
            },
            Scheme::Cluster { .. } => Topology::Cluster { seeds: 0 },
        },
    }
}

/// Reads a Sentinel or Cluster URL; a one-server URL is left to redis-rs.
pub(super) fn parse(url: &str) -> Result<Target, UrlError> {
    let scheme = scheme_of(url);
    let Some((_, rest)) = url.split_once("://") else {
        return Ok(Target::Single);
    };
    match scheme {
        Scheme::Single => Ok(Target::Single),
        Scheme::Sentinel { tls } => sentinel_target(rest, tls).map(Target::Sentinel),
        Scheme::Cluster { tls } => cluster_target(rest, tls).map(Target::Cluster),
    }
}

fn sentinel_target(rest: &str, tls: bool) -> Result<SentinelTarget, UrlError> {
    let parts = Parts::split(rest, SENTINEL_PORT)?;
    let primary = parts
        .fragment
        .map(percent_decode)
        .filter(|name| !name.is_empty())
        .ok_or(UrlError::NoPrimary)?;
    let redis = parts.redis_settings().set_db(parts.db.unwrap_or(0));
    let sentinels = parts
        .hosts
        .into_iter()
        .map(|(host, port)| address(host, port, tls))
        .collect();
    Ok(SentinelTarget {
        sentinels,
        primary,
        redis,
        tls,
    })
}

fn cluster_target(rest: &str, tls: bool) -> Result<ClusterTarget, UrlError> {
    let parts = Parts::split(rest, NODE_PORT)?;
    if parts.fragment.is_some() {
        return Err(UrlError::ClusterFragment);
    }
    if parts.db.is_some_and(|db| db != 0) {
        return Err(UrlError::ClusterDatabase);
    }
    let redis = parts.redis_settings();
    let nodes = parts
        .hosts
        .into_iter()
        .map(|(host, port)| {
            address(host, port, tls)
                .into_connection_info()
                .map(|info| {
                    info.set_redis_settings(redis.clone())
                        .set_tcp_settings(TcpSettings::default().set_nodelay(true))
                })
                .map_err(|e| UrlError::Rejected(e.to_string()))
        })
        .collect::<Result<_, _>>()?;
    Ok(ClusterTarget { nodes })
}

/// A TCP address, with TLS verified against the roots (or the configured CA).
fn address(host: String, port: u16, tls: bool) -> ConnectionAddr {
    if tls {
        ConnectionAddr::TcpTls {
            host,
            port,
            insecure: false,
            tls_params: None,
        }
    } else {
        ConnectionAddr::Tcp(host, port)
    }
}

/// The TLS mode of a `rediss-` URL.
pub(super) fn tls_mode(tls: bool) -> Option<TlsMode> {
    tls.then_some(TlsMode::Secure)
}

/// The pieces of `[user:pass@]host[:port][,host[:port]...][/db][#fragment]`.
struct Parts<'a> {
    username: Option<String>,
    password: Option<String>,
    hosts: Vec<(String, u16)>,
    db: Option<i64>,
    fragment: Option<&'a str>,
}

impl<'a> Parts<'a> {
    fn split(rest: &'a str, default_port: u16) -> Result<Self, UrlError> {
        // A password may hold '@', '/' or '#': the hosts start after the last '@'.
        let (userinfo, after) = match rest.rfind('@') {
            Some(at) => (Some(&rest[..at]), &rest[at + 1..]),
            None => (None, rest),
        };
        let (before_fragment, fragment) = match after.split_once('#') {
            Some((b, f)) => (b, Some(f)),
            None => (after, None),
        };
        if before_fragment.contains('?') {
            return Err(UrlError::Query);
        }
        let (hosts, path) = before_fragment
            .split_once('/')
            .unwrap_or((before_fragment, ""));
        if hosts.is_empty() {
            return Err(UrlError::NoHost);
        }
        let hosts = hosts
            .split(',')
            .map(|h| host_port(h, default_port))
            .collect::<Result<Vec<_>, _>>()?;
        let db = match path {
            "" => None,
            p => Some(
                p.parse::<i64>()
                    .ok()
                    .filter(|db| *db >= 0)
                    .ok_or_else(|| UrlError::BadDatabase(p.to_owned()))?,
            ),
        };
        let (username, password) = match userinfo {
            None => (None, None),
            Some(info) => {
                let (user, pass) = info.split_once(':').ok_or(UrlError::Credentials)?;
                let user = Some(percent_decode(user)).filter(|u| !u.is_empty());
                let pass = Some(percent_decode(pass)).filter(|p| !p.is_empty());
                (user, pass)
            }
        };
        Ok(Self {
            username,
            password,
            hosts,
            db,
            fragment,
        })
    }

    /// User, password and RESP3 for the Redis nodes (not the sentinels).
    fn redis_settings(&self) -> RedisConnectionInfo {
        let mut redis = RedisConnectionInfo::default().set_protocol(ProtocolVersion::RESP3);
        if let Some(user) = &self.username {
            redis = redis.set_username(user);
        }
        if let Some(pass) = &self.password {
            redis = redis.set_password(pass);
        }
        redis
    }
}

/// `host`, `host:port`, `[v6]` or `[v6]:port`.
fn host_port(text: &str, default_port: u16) -> Result<(String, u16), UrlError> {
    let (host, port) = if let Some(v6) = text.strip_prefix('[') {
        let (host, after) = v6.split_once(']').ok_or(UrlError::OpenBracket)?;
        (host, after.strip_prefix(':'))
    } else {
        match text.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (text, None),
        }
    };
    if host.is_empty() {
        return Err(UrlError::EmptyHost);
    }
    let port = match port {
        None => default_port,
        Some(p) => p
            .parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| UrlError::BadPort {
                host: host.to_owned(),
                port: p.to_owned(),
            })?,
    };
    Ok((host.to_owned(), port))
}

/// Query parameters of a Redis URL whose values are safe to show; every other
/// value (`pass`, `password`, a token...) is hidden, so a credential under a
/// name nobody listed here is still not printed.
const SHOWN_PARAMS: &[&str] = &["db", "protocol", "user", "username", "insecure"];

/// What a program says when it cannot connect to `url` (shown redacted): start
/// Redis or point at it, and for a TLS URL, where a certificate error comes from.
pub fn cannot_reach(url: &str) -> String {
    let tls = if is_tls(url) {
        " (a certificate error: tls_ca_file must name the CA that signed the servers' certificates)"
    } else {
        ""
    };
    format!(
        "cannot reach Redis at {}; start it or set SECONDME_REDIS_URL{tls}",
        redact_url(url)
    )
}

/// Hides every credential of a Redis URL (`user:pass@`, `:pass@`, `pass@`,
/// `?pass=`, `?password=` and any other query value that is not known to be
/// harmless) so it can be logged or shown. The hosts of a Sentinel or Cluster URL
/// and the primary's name (`#fragment`) stay.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        // Not a URL at all: nothing tells which part could be a secret.
        return "<unparsable URL hidden>".to_owned();
    };
    let Some(end) = authority_end(rest) else {
        return format!("{scheme}://<credentials and address hidden>");
    };
    let (authority, tail) = rest.split_at(end);
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
                    Some((name, _)) if !shown_param(name) => format!("{name}=***"),
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

fn shown_param(name: &str) -> bool {
    SHOWN_PARAMS.contains(&name.to_ascii_lowercase().as_str())
}

/// Where the authority (`[userinfo@]host[:port][,host[:port]...]`) of `rest` (a
/// URL after `://`) ends. A password may hold '/' (base64 ones do): when there is
/// an '@', the hosts start after the last one, and the authority ends at the first
/// '/', '?' or '#' after it; else at the first of them. `None` when an '@' comes
/// after a '?' or '#': a password holding one, or a query or fragment holding an
/// '@', cannot be told apart, so nothing of it may be shown.
fn authority_end(rest: &str) -> Option<usize> {
    let query = rest.find(['?', '#']).unwrap_or(rest.len());
    let host_from = match rest.rfind('@') {
        Some(at) if at > query => return None,
        Some(at) => at + 1,
        None => 0,
    };
    Some(
        rest[host_from..]
            .find(['/', '?', '#'])
            .map_or(rest.len(), |end| host_from + end),
    )
}

/// The secret parts of a Redis URL, as written and percent-decoded, so text that
/// may echo them (an error of the Redis client) can be scrubbed.
fn url_secrets(url: &str) -> Vec<String> {
    let mut found = Vec::new();
    let Some((_, rest)) = url.split_once("://") else {
        found.push(url.to_owned());
        return found;
    };
    let end = match authority_end(rest) {
        Some(end) => end,
        None => {
            // Both readings: everything after the scheme, and the password the
            // last '@' would end.
            found.push(rest.to_owned());
            rest.find(['?', '#']).unwrap_or(rest.len())
        }
    };
    let userinfo = match authority_end(rest) {
        Some(_) => rest[..end].rsplit_once('@').map(|(u, _)| u),
        None => rest.rsplit_once('@').map(|(u, _)| u),
    };
    if let Some(userinfo) = userinfo {
        found.push(match userinfo.split_once(':') {
            Some((_, pass)) => pass.to_owned(),
            None => userinfo.to_owned(),
        });
    }
    if let Some((_, query)) = rest[end..].split('#').next().unwrap_or("").split_once('?') {
        for pair in query.split('&') {
            if let Some((name, value)) = pair.split_once('=')
                && !shown_param(name)
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
pub(super) fn remember_secrets(url: &str) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unreachable_tls_url_points_at_the_ca_and_hides_the_password() {
        let tls = cannot_reach("rediss-sentinel://u:hunter2@h:26379#main");
        assert!(tls.contains("tls_ca_file"), "{tls}");
        assert!(!tls.contains("hunter2"), "{tls}");
        let plain = cannot_reach("redis://h:6379");
        assert_eq!(
            plain,
            "cannot reach Redis at redis://h:6379; start it or set SECONDME_REDIS_URL"
        );
    }

    fn sentinel(url: &str) -> SentinelTarget {
        match parse(url) {
            Ok(Target::Sentinel(t)) => t,
            other => panic!("{url}: {other:?}"),
        }
    }

    fn cluster(url: &str) -> ClusterTarget {
        match parse(url) {
            Ok(Target::Cluster(t)) => t,
            other => panic!("{url}: {other:?}"),
        }
    }

    fn tcp(host: &str, port: u16) -> ConnectionAddr {
        ConnectionAddr::Tcp(host.into(), port)
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
            // Nor a '/' (base64 passwords hold them), nor a '#' or '?'.
            (
                "redis://default:s3cr/etpw@127.0.0.1:6391/2",
                "redis://default:***@127.0.0.1:6391/2",
            ),
            ("redis://s3c/r3t@host", "redis://***@host"),
            // A '#' or '?' before the last '@', or an '@' in a query: which part is
            // the password cannot be told, so the whole address is hidden.
            (
                "redis://u:s3c#ret@host/1",
                "redis://<credentials and address hidden>",
            ),
            (
                "redis://u:s3c?ret@host",
                "redis://<credentials and address hidden>",
            ),
            (
                "unix:///tmp/r.sock?user=bob@corp&pass=s3cret",
                "unix://<credentials and address hidden>",
            ),
            ("unix:///tmp/r.sock", "unix:///tmp/r.sock"),
            ("not a url s3cret", "<unparsable URL hidden>"),
        ];
        for (url, shown) in cases {
            let redacted = redact_url(url);
            assert_eq!(redacted, shown, "{url}");
            assert!(!redacted.contains("s3c"), "{redacted}");
        }
    }

    #[test]
    fn redacts_sentinel_and_cluster_urls_keeping_hosts_and_the_primary_name() {
        let cases = [
            (
                "redis-sentinel://twin:s3cret@10.0.0.1:26379,10.0.0.2:26380,s3:26381/2#mymaster",
                "redis-sentinel://twin:***@10.0.0.1:26379,10.0.0.2:26380,s3:26381/2#mymaster",
            ),
            (
                "rediss-sentinel://:s3cr/et@a:1,b:2#prim-1",
                "rediss-sentinel://:***@a:1,b:2#prim-1",
            ),
            (
                "redis-cluster://u:s3cret@n1:7000,n2:7001,n3:7002",
                "redis-cluster://u:***@n1:7000,n2:7001,n3:7002",
            ),
            (
                "rediss-cluster://u:s3c@ret@n1:7000,[::1]:7001",
                "rediss-cluster://u:***@n1:7000,[::1]:7001",
            ),
            (
                "redis-sentinel://h1:1,h2:2#mymaster",
                "redis-sentinel://h1:1,h2:2#mymaster",
            ),
        ];
        for (url, shown) in cases {
            let redacted = redact_url(url);
            assert_eq!(redacted, shown, "{url}");
            assert!(!redacted.contains("s3c"), "{redacted}");
        }
    }

    #[test]
    fn reads_a_sentinel_url_with_several_hosts_a_database_and_the_primary_name() {
        let t =
            sentinel("redis-sentinel://twin:p%40ss@10.0.0.1:26379,s2,[::1]:26380/3#my%20primary");
        assert_eq!(
            t.sentinels,
            [
                tcp("10.0.0.1", 26379),
                tcp("s2", SENTINEL_PORT),
                tcp("::1", 26380)
            ]
        );
        assert_eq!(t.primary, "my primary");
        assert_eq!(t.redis.db(), 3);
        assert_eq!(t.redis.username(), Some("twin"));
        assert_eq!(t.redis.password(), Some("p@ss"));
        assert_eq!(t.redis.protocol(), ProtocolVersion::RESP3);
        assert!(!t.tls);

        let t = sentinel("rediss-sentinel://:s3cret@h:5000#p");
        assert!(t.tls);
        assert_eq!(t.redis.username(), None);
        assert_eq!(t.redis.password(), Some("s3cret"));
        assert_eq!(t.redis.db(), 0);
        assert!(matches!(
            &t.sentinels[..],
            [ConnectionAddr::TcpTls { host, port: 5000, insecure: false, .. }] if host == "h"
        ));
    }

    #[test]
    fn reads_a_cluster_url_into_one_connection_per_seed() {
        let t = cluster("redis-cluster://u:s3cret@n1:7000,n2:7001,n3");
        let addrs: Vec<_> = t.nodes.iter().map(|n| n.addr().clone()).collect();
        assert_eq!(
            addrs,
            [tcp("n1", 7000), tcp("n2", 7001), tcp("n3", NODE_PORT)]
        );
        for node in &t.nodes {
            assert_eq!(node.redis_settings().password(), Some("s3cret"));
            assert_eq!(node.redis_settings().username(), Some("u"));
            assert_eq!(node.redis_settings().protocol(), ProtocolVersion::RESP3);
        }
        let t = cluster("rediss-cluster://n1:7000/0");
        assert!(matches!(
            t.nodes[0].addr(),
            ConnectionAddr::TcpTls { port: 7000, .. }
        ));
    }

    #[test]
    fn says_what_is_wrong_without_the_password() {
        let cases = [
            ("redis-sentinel://u:s3cret@h1:1,h2:2", UrlError::NoPrimary),
            ("redis-sentinel://u:s3cret@h1:1#", UrlError::NoPrimary),
            ("redis-sentinel://u:s3cret@#p", UrlError::NoHost),
            ("redis-sentinel://h1:1,,h2:2#p", UrlError::EmptyHost),
            (
                "redis-sentinel://u:s3cret@h1:99999#p",
                UrlError::BadPort {
                    host: "h1".into(),
                    port: "99999".into(),
                },
            ),
            (
                "redis-sentinel://h1:1/x#p",
                UrlError::BadDatabase("x".into()),
            ),
            ("redis-sentinel://s3cret@h1:1#p", UrlError::Credentials),
            ("redis-sentinel://h1:1?db=2#p", UrlError::Query),
            ("redis-cluster://u:s3cret@n1:1/2", UrlError::ClusterDatabase),
            ("redis-cluster://n1:1#x", UrlError::ClusterFragment),
            ("redis-cluster://[::1:7000", UrlError::OpenBracket),
        ];
        for (url, expected) in cases {
            let err = parse(url).expect_err(url);
            assert_eq!(err, expected, "{url}");
            assert!(!err.to_string().contains("s3cret"), "{err}");
        }
    }

    #[test]
    fn topology_follows_the_scheme() {
        assert_eq!(topology_of("redis://h:1/0"), Topology::Single);
        assert_eq!(topology_of("unix:///tmp/r.sock"), Topology::Single);
        assert_eq!(
            topology_of("redis-sentinel://a:1,b:2,c:3#mymaster"),
            Topology::Sentinel {
                primary: "mymaster".into(),
                sentinels: 3
            }
        );
        let cluster = topology_of("REDISS-CLUSTER://a:1,b:2");
        assert_eq!(cluster, Topology::Cluster { seeds: 2 });
        assert!(cluster.is_cluster());
        assert!(topology_of("redis-cluster://a:0").is_cluster());
        assert!(!topology_of("redis-sentinel://a:1#p").is_cluster());
        assert!(is_tls("rediss-sentinel://a:1#p"));
        assert!(is_tls("rediss://a"));
        assert!(!is_tls("redis-cluster://a:1"));
    }

    #[test]
    fn scrub_hides_secrets_of_opened_urls_even_percent_encoded() {
        remember_secrets("unix:///tmp/x.sock?pass=p%40ss-w0rd-xyz&db=1");
        let text = scrub("AUTH failed for p@ss-w0rd-xyz (raw p%40ss-w0rd-xyz), db 1");
        assert!(!text.contains("w0rd"), "{text}");
        assert!(text.contains("db 1"), "{text}");
        remember_secrets("redis-cluster://u:cl%2Fuster-pw@n1:7000,n2:7001");
        let text = scrub("NOAUTH cl/uster-pw refused");
        assert!(!text.contains("uster-pw"), "{text}");
        remember_secrets("redis://u:am#biguous-pw@host/1");
        let text = scrub("WRONGPASS am#biguous-pw");
        assert!(!text.contains("biguous"), "{text}");
    }
}
