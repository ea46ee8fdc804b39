//! The atomic server-side steps as one Redis Functions library
//! (`assets/lua/secondme.lua`, then `assets/lua/operator.lua`): loaded with
//! `FUNCTION LOAD REPLACE` by the worker at start and by any caller that finds
//! it missing, and called with `FCALL`.
//!
//! The library gets a prelude generated here (the few constants it needs that
//! are not key names, and `contact_keys`, which reads a contact's keys from
//! `KEYS` in the order [`keys`] adds them), and a name and function names carrying a hash of its whole text:
//! two SecondMe versions sharing one Redis each load and call their own library
//! instead of replacing each other's. The library builds no key name: every key
//! a step touches comes in `KEYS`, built in Rust ([`keys`], [`crate::schema`]),
//! so the library's text is the same in every namespace.

use std::sync::OnceLock;

use redis::aio::ConnectionLike;
use redis::{FromRedisValue, RedisError, RedisResult, ToRedisArgs};

use crate::schema;

pub mod keys;

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

/// The library of this build: one for every namespace, since no key name is
/// in it (every key comes in `KEYS`).
pub fn library() -> &'static Library {
    static LIBRARY: OnceLock<Library> = OnceLock::new();
    LIBRARY.get_or_init(build)
}

/// The library from the prelude and the body.
fn build() -> Library {
    let code = format!("{}{BODY}", prelude());
    let version = format!("{:016x}", crate::stable_hash::fnv1a64(code.as_bytes()));
    let text = format!("#!lua name=secondme_{version}\nlocal VERSION = '{version}'\n{code}");
    Library { version, text }
}

/// A Lua string literal: every byte but plain printable ASCII is escaped.
fn lua_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for b in s.bytes() {
        if b.is_ascii_graphic() && b != b'\'' && b != b'\\' {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("\\{b:03}"));
        }
    }
    out.push('\'');
    out
}

/// The constants of the library that are not key names (`K`), and
/// `contact_keys(KEYS, at)`: the table of a contact's keys, which the caller put
/// from `KEYS[at]` on in the order of [`keys::ContactKey::ALL`]. One table
/// constructor per contact, as a batch of 128 entries needs up to 128.
fn prelude() -> String {
    let fields = [
        ("all", schema::PAUSE_ALL_CONTACT),
        ("draft_id", schema::drafts::DRAFT_ID_PREFIX),
        ("mode_default", schema::drafts::DEFAULT_MODE_FIELD),
    ];
    let mut out = String::from("local K = {\n");
    for (name, value) in fields {
        out.push_str(&format!("  {name} = {},\n", lua_str(value)));
    }
    out.push_str("}\nlocal function contact_keys(KEYS, at)\n  local b = tonumber(at)\n  return {");
    for (i, k) in keys::ContactKey::ALL.iter().enumerate() {
        out.push_str(&format!(" {} = KEYS[b + {i}],", k.field()));
    }
    out.push_str(" }\nend\n");
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
        format!("secondme_{step}_{}", library().version)
    }
}

/// Loads (or reloads) this build's library.
pub async fn load<C: ConnectionLike + Send>(con: &mut C) -> RedisResult<()> {
    redis::cmd("FUNCTION")
        .arg("LOAD")
        .arg("REPLACE")
        .arg(&library().text)
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
///
/// Keys and arguments are each kept in one buffer ([`redis::Cmd`] as a list of
/// arguments), not one allocation each: a batch's decide step carries thousands.
#[derive(Debug, Clone)]
pub struct Call {
    step: Step,
    keys: redis::Cmd,
    args: redis::Cmd,
}

impl Call {
    /// A call of `step` with no keys or arguments yet.
    pub fn new(step: Step) -> Self {
        Self {
            step,
            keys: redis::Cmd::new(),
            args: redis::Cmd::new(),
        }
    }

    /// Adds a key.
    pub fn key(&mut self, key: impl ToRedisArgs) -> &mut Self {
        self.keys.arg(key);
        self
    }

    /// Adds an argument.
    pub fn arg(&mut self, arg: impl ToRedisArgs) -> &mut Self {
        self.args.arg(arg);
        self
    }

    /// How many keys the call has so far.
    fn key_count(&self) -> usize {
        self.keys.args_iter().len()
    }

    fn cmd(&self) -> redis::Cmd {
        let mut cmd = redis::cmd("FCALL");
        cmd.arg(self.step.name()).arg(self.key_count());
        for a in self.keys.args_iter().chain(self.args.args_iter()) {
            if let redis::Arg::Simple(bytes) = a {
                cmd.arg(bytes);
            }
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
    use std::collections::BTreeSet;

    use super::*;

    #[test]
    fn the_prelude_carries_the_constants_and_the_name_its_version() {
        let text = &library().text;
        assert!(text.starts_with(&format!("#!lua name=secondme_{}\n", library().version)));
        assert!(text.contains("all = 'ALL'"));
        assert!(text.contains("draft_id = 'draft_'"));
        assert!(text.contains("mode_default = '*'"));
        assert!(text.contains(
            "return { pause = KEYS[b + 0], pause_meta = KEYS[b + 1], counter = KEYS[b + 2], \
             history = KEYS[b + 3], own_history = KEYS[b + 4], draft = KEYS[b + 5], }"
        ));
        assert!(text.contains("redis.register_function('secondme_draft_'"));
        assert_eq!(library().version.len(), 16);
        assert!(Step::Decide.name().ends_with(&library().version));
    }

    /// The string literals of Lua source, comments left out.
    fn lua_literals(code: &str) -> Vec<String> {
        let mut out = Vec::new();
        for line in code.lines() {
            let mut chars = line.chars();
            let mut prev = ' ';
            while let Some(c) = chars.next() {
                if c == '-' && prev == '-' {
                    break;
                }
                prev = c;
                if c != '\'' && c != '"' {
                    continue;
                }
                let mut lit = String::new();
                while let Some(d) = chars.next() {
                    match d {
                        '\\' => lit.extend(chars.next()),
                        d if d == c => break,
                        d => lit.push(d),
                    }
                }
                out.push(lit);
                prev = ' ';
            }
        }
        out
    }

    /// Every `K.{field}` the Lua source reads.
    fn k_fields(code: &str) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        let bytes = code.as_bytes();
        for (i, _) in code.match_indices("K.") {
            let starts_a_name =
                i == 0 || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_');
            if starts_a_name {
                let field: String = code[i + 2..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                out.insert(field);
            }
        }
        out
    }

    #[test]
    fn the_library_spells_no_key_name_and_reads_only_constants_that_are_not_keys() {
        let names: Vec<String> = vec![
            schema::pause_prefix().into(),
            schema::pause_meta_prefix().into(),
            schema::counter_prefix().into(),
            schema::handled_prefix().into(),
            schema::sent_prefix().into(),
            schema::history_prefix().into(),
            schema::own_history_prefix().into(),
            schema::drafts::draft_prefix().into(),
            schema::drafts::drafts_key().into(),
            schema::drafts::modes_key().into(),
            schema::queue_messages().into(),
            schema::queue_responses().into(),
            schema::queue_deadletter().into(),
            schema::optin_contacts().into(),
            schema::contacts_activity().into(),
            schema::state_marker().into(),
            schema::stats().into(),
            schema::unanswered().into(),
            schema::unheard().into(),
            schema::deferred().into(),
        ];
        let literals = lua_literals(&library().text);
        assert!(
            literals.iter().any(|l| l == "draftId"),
            "the scan reads literals"
        );
        for l in &literals {
            for n in &names {
                assert!(!l.contains(n.as_str()), "the library spells {n:?} in {l:?}");
            }
        }
        let allowed: BTreeSet<String> =
            ["all", "draft_id", "mode_default"].map(String::from).into();
        assert_eq!(k_fields(BODY), allowed, "K holds no key prefix any more");
        assert_eq!(
            k_fields("x = K.pause .. c; y = OK.no"),
            BTreeSet::from(["pause".to_owned()])
        );
        assert_eq!(lua_literals("a('x\\'y', \"z\") -- 'not'"), ["x'y", "z"]);
    }

    #[test]
    fn a_lua_string_escapes_every_byte_a_namespace_may_bring() {
        assert_eq!(lua_str("{alice}:PAUSE:"), "'{alice}:PAUSE:'");
        assert_eq!(lua_str("{o'b\\ x}:"), "'{o\\039b\\092\\032x}:'");
        assert_eq!(lua_str("é"), "'\\195\\169'");
    }

    #[tokio::test]
    async fn every_namespace_calls_the_same_library_which_holds_no_key_name() {
        let plain = schema::in_namespace(None, async { library() }).await;
        let alice = schema::in_namespace(Some("alice"), async { library() }).await;
        let bob =
            schema::in_namespace(Some("bob"), async { (library(), Step::Decide.name()) }).await;
        assert!(!alice.text.contains("{alice}"));
        assert_eq!(plain.text, alice.text);
        assert_eq!(alice.version, bob.0.version);
        assert!(bob.1.ends_with(&plain.version));
    }
}
