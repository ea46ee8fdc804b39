//! The atomic server-side steps as one Redis Functions library
//! (`assets/lua/secondme.lua`, then `assets/lua/operator.lua`): loaded with
//! `FUNCTION LOAD REPLACE` by the worker at start and by any caller that finds
//! it missing, and called with `FCALL`.
//!
//! The library gets a prelude generated here from [`crate::schema`], so its key
//! prefixes have one source, and a name and function names carrying a hash of its
//! whole text: two SecondMe versions sharing one Redis each load and call their
//! own library instead of replacing each other's.

use std::sync::LazyLock;

use redis::aio::ConnectionLike;
use redis::{FromRedisValue, RedisError, RedisResult, ToRedisArgs};

use crate::schema;

// One library: the operator's steps use the worker's helpers, so they follow them.
const BODY: &str = concat!(
    include_str!("../../assets/lua/secondme.lua"),
    include_str!("../../assets/lua/operator.lua")
);

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
        ("pause", schema::pause_prefix()),
        ("pause_meta", schema::pause_meta_prefix()),
        ("counter", schema::counter_prefix()),
        ("counter_suffix", schema::Names::COUNTER_SUFFIX),
        ("handled", schema::handled_prefix()),
        ("sent", schema::sent_prefix()),
        ("history", schema::history_prefix()),
        ("own_history", schema::own_history_prefix()),
        ("all", schema::PAUSE_ALL_CONTACT),
        ("draft", schema::drafts::draft_prefix()),
        ("draft_id", schema::drafts::DRAFT_ID_PREFIX),
        ("mode_default", schema::drafts::DEFAULT_MODE_FIELD),
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
    /// The operator's decisions on drafts, the workers' sweep of them, and the
    /// operator's own words.
    Draft,
}

impl Step {
    fn name(self) -> String {
        let step = match self {
            Self::Decide => "decide",
            Self::Commit => "commit",
            Self::Control => "control",
            Self::Supersede => "supersede",
            Self::DeadLetter => "dead_letter",
            Self::Draft => "draft",
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

    #[test]
    fn the_prelude_carries_the_schemas_prefixes_and_the_name_its_version() {
        let text = &LIBRARY.text;
        assert!(text.starts_with(&format!("#!lua name=secondme_{}\n", LIBRARY.version)));
        assert!(text.contains("pause = 'PAUSE:'"));
        assert!(text.contains("counter_suffix = ':msgs'"));
        assert!(text.contains("own_history = 'SECONDME:history:'"));
        assert!(text.contains("pause_all_meta = 'PAUSEMETA:ALL'"));
        assert!(text.contains("draft = 'DRAFT:'"));
        assert!(text.contains("mode_default = '*'"));
        assert!(text.contains("redis.register_function('secondme_draft_'"));
        assert_eq!(LIBRARY.version.len(), 16);
        assert!(Step::Decide.name().ends_with(&LIBRARY.version));
    }
}
