//! What the server is and why it refused: its version, and errors said plainly
//! (credentials scrubbed, a missing ACL permission named with where to look).

use anyhow::{Context, Result};

use super::url::scrub;

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
    let info: redis::RedisResult<redis::Value> = info.query_async(&mut *con).await;
    let info = match info {
        Ok(reply) => reply,
        Err(e) => anyhow::bail!(
            "cannot learn the Redis version (HELLO and INFO server both failed): {}",
            explain_noperm(&e, "INFO server")
        ),
    };
    info_version(info).context("INFO server has no readable redis_version")
}

/// The version an `INFO server` reply gives: one text, or on a Cluster one per
/// primary (a map of node to text), where the oldest counts.
fn info_version(reply: redis::Value) -> Option<(u32, u32)> {
    let texts: Vec<String> = match reply {
        redis::Value::Map(nodes) => nodes
            .into_iter()
            .map(|(_, text)| redis::from_redis_value(text).ok())
            .collect::<Option<_>>()?,
        one => vec![redis::from_redis_value(one).ok()?],
    };
    texts
        .iter()
        .map(|text| parse_version(text))
        .collect::<Option<Vec<_>>>()?
        .into_iter()
        .min()
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
    fn a_clusters_info_gives_the_oldest_version_of_its_nodes() {
        let text = |v: &str| redis::Value::BulkString(format!("redis_version:{v}\r\n").into());
        let node = |n: &str| redis::Value::BulkString(n.into());
        let reply = redis::Value::Map(vec![
            (node("a:1"), text("8.2.1")),
            (node("b:2"), text("7.4.0")),
        ]);
        assert_eq!(info_version(reply), Some((7, 4)));
        assert_eq!(info_version(text("8.2.0")), Some((8, 2)));
        assert_eq!(info_version(node("no version")), None);
    }

    #[test]
    fn version_and_acked() {
        let info = "# Server\r\nredis_version:8.2.3\r\nredis_mode:standalone\r\n";
        assert_eq!(parse_version(info), Some((8, 2)));
        assert!(supports_acked_trim((8, 2)));
        assert!(!supports_acked_trim((7, 0)));
    }
}
