//! The atomic server-side steps as one Redis Functions library
//! (`assets/lua/secondme.lua`): loaded with `FUNCTION LOAD REPLACE` by the worker
//! at start and by any caller that finds it missing, and called with `FCALL`.
//!
//! The library gets a prelude generated here from [`crate::schema`], so its key
//! prefixes have one source, and a name and function names carrying a hash of its
//! whole text: two SecondMe versions sharing one Redis each load and call their
//! own library instead of replacing each other's.

use std::sync::LazyLock;

use redis::aio::ConnectionLike;
use redis::{FromRedisValue, RedisError, RedisResult, ToRedisArgs};

use crate::schema;

const BODY: &str = include_str!("../../assets/lua/secondme.lua");

/// The library as loaded: its version (a hash of its text) and its source.
#[derive(Debug)]
pub struct Library {
    /// Hex FNV-1a hash of the prelude and the body.
    pub version: String,
    /// `#!lua name=secondme_{version}`, the prelude, the body.
    pub text: String,
}

/// The library of this build.
pub static LIBRARY: LazyLock<Library> = LazyLock::new(|| {
    let code = format!("{}{BODY}", prelude());
    let version = format!("{:016x}", crate::stable_hash::fnv1a64(code.as_bytes()));
    let text = format!("#!lua name=secondme_{version}\nlocal VERSION = '{version}'\n{code}");
    Library { version, text }
});

/// A Lua string literal of a key name from the schema (plain ASCII, no quotes).
fn lua_str(s: &str) -> String {
    debug_assert!(
        s.bytes()
            .all(|b| b.is_ascii_graphic() && b != b'\'' && b != b'\\')
    );
    format!("'{s}'")
}

/// The key prefixes and fixed names the library builds keys from.
fn prelude() -> String {
    let fields = [
        ("pause", schema::PAUSE_PREFIX),
        ("pause_meta", schema::PAUSE_META_PREFIX),
        ("counter", schema::COUNTER_PREFIX),
        ("counter_suffix", schema::COUNTER_SUFFIX),
        ("handled", schema::HANDLED_PREFIX),
        ("sent", schema::SENT_PREFIX),
        ("history", schema::HISTORY_PREFIX),
        ("own_history", schema::OWN_HISTORY_PREFIX),
        ("all", schema::PAUSE_ALL_CONTACT),
    ];
    let mut out = String::from("local K = {\n");
    for (name, value) in fields {
        out.push_str(&format!("  {name} = {},\n", lua_str(value)));
    }
    let all_meta = schema::pause_meta_key(schema::PAUSE_ALL_CONTACT);
    out.push_str(&format!("  pause_all_meta = {},\n}}\n", lua_str(&all_meta)));
    out
}

/// One of the library's functions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// The worker's batch decision.
    Decide,
    /// The worker's commit of replies written after the decision.
    Commit,
    /// The operator's pause, resume and kill switch.
    Control,
    /// The worker's record of messages a newer one of the same contact answers.
    Supersede,
    /// Moving entries to the dead-letter stream with their acknowledgement.
    DeadLetter,
}

impl Step {
    fn name(self) -> String {
        let step = match self {
            Self::Decide => "decide",
            Self::Commit => "commit",
            Self::Control => "control",
            Self::Supersede => "supersede",
            Self::DeadLetter => "dead_letter",
        };
        format!("secondme_{step}_{}", LIBRARY.version)
    }
}

/// Loads (or reloads) this build's library.
pub async fn load<C: ConnectionLike + Send>(con: &mut C) -> RedisResult<()> {
    redis::cmd("FUNCTION")
        .arg("LOAD")
        .arg("REPLACE")
        .arg(&LIBRARY.text)
        .query_async::<String>(con)
        .await
        .map(drop)
}

/// Deletes the libraries other SecondMe builds left (`secondme_{hash}` but
/// not this build's); returns their names. Only at a worker's start: a build
/// still running elsewhere loads its own again at its next call, and two
/// builds that both prune at start do not delete each other in a loop.
pub async fn prune_others<C: ConnectionLike + Send>(con: &mut C) -> RedisResult<Vec<String>> {
    let listed: redis::Value = redis::cmd("FUNCTION")
        .arg("LIST")
        .arg("LIBRARYNAME")
        .arg("secondme_*")
        .query_async(&mut *con)
        .await?;
    let ours = format!("secondme_{}", LIBRARY.version);
    let others: Vec<String> = library_names(&listed)
        .into_iter()
        .filter(|n| *n != ours && is_build_library(n))
        .collect();
    for name in &others {
        delete_library(&mut *con, name).await?;
    }
    Ok(others)
}

/// Deletes one library; false when it was gone already (another worker
/// starting at the same time pruned it first).
async fn delete_library<C: ConnectionLike + Send>(con: &mut C, name: &str) -> RedisResult<bool> {
    let deleted: RedisResult<()> = redis::cmd("FUNCTION")
        .arg("DELETE")
        .arg(name)
        .query_async(con)
        .await;
    match deleted {
        Ok(()) => Ok(true),
        Err(e) if e.detail().is_some_and(|d| d.contains("Library not found")) => Ok(false),
        Err(e) => Err(e),
    }
}

/// `secondme_` and 16 hex digits: a name this code gives, never a library of
/// another program that happens to start with `secondme_`.
fn is_build_library(name: &str) -> bool {
    name.strip_prefix("secondme_")
        .is_some_and(|h| h.len() == 16 && h.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// The `library_name` of each entry of a `FUNCTION LIST` reply (RESP2 pairs
/// or RESP3 maps).
fn library_names(listed: &redis::Value) -> Vec<String> {
    let redis::Value::Array(libraries) = listed else {
        return Vec::new();
    };
    libraries
        .iter()
        .filter_map(|library| {
            let pairs: Vec<(&redis::Value, &redis::Value)> = match library {
                redis::Value::Map(m) => m.iter().map(|(k, v)| (k, v)).collect(),
                redis::Value::Array(a) => a.chunks_exact(2).map(|p| (&p[0], &p[1])).collect(),
                _ => return None,
            };
            pairs.into_iter().find_map(|(k, v)| {
                let key: String = redis::from_redis_value_ref(k).ok()?;
                (key == "library_name")
                    .then(|| redis::from_redis_value_ref(v).ok())
                    .flatten()
            })
        })
        .collect()
}

/// Whether Redis does not know the function called: a restart without
/// persistence, a `FUNCTION FLUSH`, or a first call.
fn is_missing_function(e: &RedisError) -> bool {
    e.code() == Some("ERR") && e.detail().is_some_and(|d| d.contains("Function not found"))
}

/// One call of a step: its keys and arguments, sent with `FCALL`.
#[derive(Debug, Clone)]
pub struct Call {
    step: Step,
    keys: Vec<Vec<u8>>,
    args: Vec<Vec<u8>>,
}

impl Call {
    /// A call of `step` with no keys or arguments yet.
    pub fn new(step: Step) -> Self {
        Self {
            step,
            keys: Vec::new(),
            args: Vec::new(),
        }
    }

    /// Adds a key.
    pub fn key(&mut self, key: impl ToRedisArgs) -> &mut Self {
        key.write_redis_args(&mut self.keys);
        self
    }

    /// Adds an argument.
    pub fn arg(&mut self, arg: impl ToRedisArgs) -> &mut Self {
        arg.write_redis_args(&mut self.args);
        self
    }

    fn cmd(&self) -> redis::Cmd {
        let mut cmd = redis::cmd("FCALL");
        cmd.arg(self.step.name()).arg(self.keys.len());
        for k in &self.keys {
            cmd.arg(k.as_slice());
        }
        for a in &self.args {
            cmd.arg(a.as_slice());
        }
        cmd
    }

    /// Calls the function in one round trip; when Redis does not have the library,
    /// loads it and calls again.
    pub async fn invoke<T: FromRedisValue, C: ConnectionLike + Send>(
        &self,
        con: &mut C,
    ) -> RedisResult<T> {
        match self.cmd().query_async(&mut *con).await {
            Err(e) if is_missing_function(&e) => {
                load(&mut *con).await?;
                self.cmd().query_async(con).await
            }
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::{RedisServer, find_binary};

    #[tokio::test]
    async fn a_library_already_gone_is_no_error_but_other_failures_are() {
        let server = RedisServer::start(find_binary().expect("a redis-server"), false)
            .expect("start redis-server");
        let client = crate::connection::open_client(&server.url()).expect("client");
        let mut con = crate::connection::manager(&client, None)
            .await
            .expect("connect");
        load(&mut con).await.expect("load");
        let name = format!("secondme_{}", LIBRARY.version);
        assert!(matches!(delete_library(&mut con, &name).await, Ok(true)));
        assert!(matches!(delete_library(&mut con, &name).await, Ok(false)));
        let _: () = redis::cmd("ACL")
            .arg("SETUSER")
            .arg("default")
            .arg("-function")
            .query_async(&mut con)
            .await
            .expect("ACL SETUSER");
        assert!(delete_library(&mut con, &name).await.is_err());
    }

    #[test]
    fn the_body_spells_no_key_prefix_of_its_own() {
        let prefixes = [
            schema::PAUSE_PREFIX,
            schema::PAUSE_META_PREFIX,
            schema::COUNTER_PREFIX,
            schema::COUNTER_SUFFIX,
            schema::HANDLED_PREFIX,
            schema::SENT_PREFIX,
            schema::HISTORY_PREFIX,
            "CONTACTS:",
            "OPTIN:",
            "QUEUE:",
            "SECONDME:",
        ];
        for p in prefixes {
            for quoted in [format!("'{p}"), format!("\"{p}")] {
                assert!(!BODY.contains(&quoted), "the Lua body spells {quoted}");
            }
        }
    }

    #[test]
    fn the_prelude_carries_the_schemas_prefixes_and_the_name_its_version() {
        let text = &LIBRARY.text;
        assert!(text.starts_with(&format!("#!lua name=secondme_{}\n", LIBRARY.version)));
        assert!(text.contains("pause = 'PAUSE:'"));
        assert!(text.contains("counter_suffix = ':msgs'"));
        assert!(text.contains("own_history = 'SECONDME:history:'"));
        assert!(text.contains("pause_all_meta = 'PAUSEMETA:ALL'"));
        assert_eq!(LIBRARY.version.len(), 16);
        assert!(Step::Decide.name().ends_with(&LIBRARY.version));
    }
}
