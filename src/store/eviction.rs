//! Whether the Redis may delete SecondMe's keys on its own: a `maxmemory-policy`
//! other than `noeviction` lets Redis evict `OPTIN:contacts` (replies to contacts
//! who never opted in), `HANDLED:*` (double replies) or `QUEUE:messages` (lost
//! messages) when memory runs out.

use redis::aio::ConnectionLike;
use serde::Serialize;

/// The only policy under which Redis never deletes a key to make room.
pub const SAFE_POLICY: &str = "noeviction";

/// What is known of the server's eviction policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EvictionCheck {
    /// `maxmemory-policy` as the server reports it; `None` when it could not be read.
    pub policy: Option<String>,
    /// True only when the policy was read and is `noeviction`.
    pub safe: bool,
    /// What is wrong and the fix, when the policy is not `noeviction`; why it is
    /// unknown, when it could not be read.
    pub warning: Option<String>,
}

impl EvictionCheck {
    fn from_policy(policy: &str) -> Self {
        let policy = policy.trim().to_owned();
        let safe = policy == SAFE_POLICY;
        let warning = (!safe).then(|| unsafe_warning(&policy));
        Self {
            policy: Some(policy),
            safe,
            warning,
        }
    }

    fn unknown(why: &str) -> Self {
        Self {
            policy: None,
            safe: false,
            warning: Some(format!(
                "maxmemory-policy unknown ({why}); it must be noeviction, or Redis may delete \
                 SecondMe's keys when memory runs out"
            )),
        }
    }
}

/// The warning for an eviction policy other than `noeviction`: what, why, the fix.
pub fn unsafe_warning(policy: &str) -> String {
    format!(
        "Redis maxmemory-policy is {policy}: when memory runs out Redis deletes keys, \
         OPTIN:contacts (replies to contacts who never opted in), HANDLED:* (double replies) \
         or the message stream (lost messages). Fix: redis-cli CONFIG SET maxmemory-policy \
         noeviction, and `maxmemory-policy noeviction` in redis.conf"
    )
}

/// Reads the policy from `INFO memory`, else from `CONFIG GET` (an admin
/// command); when the Redis user may run neither, says it is unknown. Other
/// failures (Redis unreachable) are errors: nothing is known, so nothing is said.
pub async fn check<C: ConnectionLike + Send>(con: &mut C) -> redis::RedisResult<EvictionCheck> {
    let mut info = redis::cmd("INFO");
    info.arg("memory");
    let reply: redis::RedisResult<redis::Value> = info.query_async(&mut *con).await;
    match reply {
        Ok(value) => {
            if let Some(policy) = least_safe(&node_infos(&value)) {
                return Ok(EvictionCheck::from_policy(&policy));
            }
        }
        Err(e) if crate::connection::is_noperm(&e) => {}
        Err(e) => return Err(e),
    }
    let mut config = redis::cmd("CONFIG");
    config.arg("GET").arg("maxmemory-policy");
    let reply: redis::RedisResult<std::collections::HashMap<String, String>> =
        config.query_async(&mut *con).await;
    match reply {
        Ok(map) => Ok(match map.get("maxmemory-policy") {
            Some(policy) => EvictionCheck::from_policy(policy),
            None => EvictionCheck::unknown("the server does not report it"),
        }),
        Err(e) if crate::connection::is_noperm(&e) => Ok(EvictionCheck::unknown(
            "this Redis user may not run INFO or CONFIG GET",
        )),
        Err(e) => Err(e),
    }
}

/// The `INFO` texts of a reply: one from a single server, one per primary from
/// a Cluster (a map of node to text).
fn node_infos(value: &redis::Value) -> Vec<String> {
    match value {
        redis::Value::Map(nodes) => nodes.iter().flat_map(|(_, v)| node_infos(v)).collect(),
        other => redis::from_redis_value_ref::<String>(other)
            .ok()
            .into_iter()
            .collect(),
    }
}

/// The policy to warn about among the nodes': the first that is not
/// `noeviction`, else `noeviction` when every node reports it, else none.
fn least_safe(infos: &[String]) -> Option<String> {
    let policies: Vec<&str> = infos.iter().filter_map(|i| parse_info(i)).collect();
    if policies.is_empty() || policies.len() < infos.len() {
        return None;
    }
    let unsafe_one = policies.iter().find(|p| **p != SAFE_POLICY);
    Some(unsafe_one.copied().unwrap_or(SAFE_POLICY).to_owned())
}

fn parse_info(info: &str) -> Option<&str> {
    info.lines()
        .find_map(|l| l.strip_prefix("maxmemory_policy:"))
        .map(str::trim)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_noeviction_is_safe() {
        let info = "# Memory\r\nused_memory:1\r\nmaxmemory_policy:allkeys-lru\r\n";
        let check = EvictionCheck::from_policy(parse_info(info).expect("policy"));
        assert!(!check.safe);
        let warning = check.warning.expect("warning");
        assert!(
            warning.contains("allkeys-lru")
                && warning.contains("CONFIG SET maxmemory-policy noeviction")
        );
        assert!(EvictionCheck::from_policy("noeviction").safe);
        assert!(!EvictionCheck::unknown("x").safe);
    }

    #[test]
    fn a_clusters_nodes_are_read_and_one_unsafe_node_is_enough() {
        let node = |policy: &str| {
            redis::Value::BulkString(format!("# Memory\r\nmaxmemory_policy:{policy}\r\n").into())
        };
        let addr = |a: &str| redis::Value::SimpleString(a.to_owned());
        let safe = redis::Value::Map(vec![
            (addr("127.0.0.1:7000"), node("noeviction")),
            (addr("127.0.0.1:7001"), node("noeviction")),
        ]);
        assert_eq!(
            least_safe(&node_infos(&safe)).as_deref(),
            Some("noeviction")
        );
        let one_bad = redis::Value::Map(vec![
            (addr("127.0.0.1:7000"), node("noeviction")),
            (addr("127.0.0.1:7001"), node("volatile-lru")),
        ]);
        assert_eq!(
            least_safe(&node_infos(&one_bad)).as_deref(),
            Some("volatile-lru")
        );
        // A node that says nothing leaves the answer unknown, not safe.
        let silent = redis::Value::Map(vec![
            (addr("127.0.0.1:7000"), node("noeviction")),
            (
                addr("127.0.0.1:7001"),
                redis::Value::BulkString(b"# Memory\r\n".to_vec()),
            ),
        ]);
        assert_eq!(least_safe(&node_infos(&silent)), None);
        assert_eq!(
            least_safe(&node_infos(&node("allkeys-lru"))).as_deref(),
            Some("allkeys-lru")
        );
    }
}
