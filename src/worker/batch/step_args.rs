//! The arguments of the server-side steps a batch calls (decide, commit,
//! dead-letter): their KEYS and ARGV in the order the functions library reads
//! them, and the parse of each step's reply. Every key a step touches is in its
//! KEYS: the contacts' keys, the `SENT:` of the person's own messages and the
//! `HANDLED:` hours too ([`crate::store::functions::keys`]).

use crate::connection::Con;
use anyhow::{Context, Result};

use super::Written;
use crate::schema::drafts::{self as draft_keys, ReplyMode};
use crate::schema::{self, Direction, MessageEvent, QueueMessage};
use crate::sleep::SleepMode;
use crate::store::functions::keys::ContactSlots;
use crate::store::functions::{Call, Step};
use crate::worker::WorkerConfig;
use crate::worker::parsed_entry::ParsedEntry;
use crate::worker::verdict::{Committed, ScriptReply, Verdict};

/// The message as the event the decide step publishes and keeps in the history,
/// with its media's mark once understood.
fn event_json(g: &ParsedEntry) -> String {
    let m: QueueMessage = g.message();
    let ev = MessageEvent {
        message_id: m.message_id,
        contact_id: m.contact_id,
        content: m.content,
        bot_sent: false,
        timestamp: m.timestamp,
        from_me: m.from_me,
        media: g.media_mark().cloned(),
    };
    serde_json::to_string(&ev).unwrap_or_default()
}

/// The entry's kind as the decide step reads it: the owner's own message, another
/// outgoing one, or an incoming one.
fn kind(g: &ParsedEntry) -> &'static str {
    match (g.direction(), g.is_from_me()) {
        (Direction::Outgoing, true) => "me",
        (Direction::Outgoing, false) => "out",
        // Media the twin could not understand: decided like any incoming message,
        // but never answered (`skip:unreadable`) and counted for the operator.
        (Direction::Incoming, _) if g.is_unread() => "unread",
        (Direction::Incoming, _) => "in",
    }
}

/// What the steps that may keep a reply as a draft need: the `reply_mode`
/// setting (for contacts without a mode) and a draft's lifetime.
#[derive(Debug, Clone, Copy)]
pub(in crate::worker) struct Drafting {
    /// The `reply_mode` setting.
    pub(in crate::worker) setting: ReplyMode,
    /// How long a draft waits, ms.
    pub(in crate::worker) ttl_ms: i64,
}

impl Drafting {
    /// The drafting settings of a worker.
    pub(in crate::worker) fn of(cfg: &WorkerConfig) -> Self {
        Self {
            setting: cfg.reply_mode,
            ttl_ms: cfg.draft_ttl_ms,
        }
    }

    /// Adds the draft keys, after the step's own keys.
    fn add_keys(call: &mut Call) {
        call.key(draft_keys::modes_key())
            .key(draft_keys::drafts_key())
            .key(draft_keys::regenerate_key());
    }

    /// Adds the drafting arguments, after the step's own arguments.
    fn add_args(self, call: &mut Call) {
        call.arg(self.setting.as_str())
            .arg(self.ttl_ms)
            .arg(draft_keys::channel_drafts());
    }
}

/// Decides `entries` with the decide step, each with its reply when an instant
/// engine wrote one before the decision.
pub(super) async fn decide(
    con: &mut Con,
    cfg: &WorkerConfig,
    entries: &[(&ParsedEntry, Option<Written>)],
    asleep: bool,
) -> Result<ScriptReply<Verdict>> {
    let mut inv = Call::new(Step::Decide);
    inv.key(schema::pause_all())
        .key(schema::optin_contacts())
        .key(schema::state_marker())
        .key(schema::queue_messages())
        .key(schema::contacts_activity())
        .key(schema::stats())
        .key(schema::queue_responses());
    Drafting::add_keys(&mut inv);
    inv.arg(&cfg.group)
        .arg(cfg.takeover_ms)
        .arg(schema::RATE_LIMIT_MAX)
        .arg(schema::RATE_LIMIT_WINDOW_S)
        .arg(schema::RATE_LIMIT_PAUSE_MS)
        .arg(schema::HANDLED_BUCKET_MS)
        .arg(schema::HISTORY_LEN)
        .arg(schema::channel_pause())
        .arg(schema::channel_messages())
        .arg(schema::QUEUE_RESPONSES_CAP)
        .arg(if asleep { "1" } else { "0" })
        .arg(schema::HISTORY_TTL_ENABLED_MS)
        .arg(schema::HISTORY_TTL_OTHER_MS)
        .arg(schema::CONTACTS_ACTIVITY_CAP)
        .arg(if cfg.rate_counted_elsewhere { "1" } else { "0" });
    Drafting::of(cfg).add_args(&mut inv);
    inv.key(schema::unanswered())
        .key(schema::deferred())
        .arg(cfg.sleep_mode.as_str())
        .key(schema::pause_meta_key(schema::PAUSE_ALL_CONTACT))
        .key(schema::unheard())
        .handled_keys(crate::store::now_ms());
    let mut slots = ContactSlots::default();
    for (g, reply) in entries {
        let keys_at = slots.at(&mut inv, g.contact_id());
        let kind = kind(g);
        let sent_at = if kind == "me" {
            inv.key_at(&schema::sent_key(g.message_id()))
        } else {
            0
        };
        inv.arg(g.stream_id())
            .arg(g.message_id())
            .arg(g.contact_id())
            .arg(kind)
            .arg(g.timestamp())
            .arg(event_json(g));
        match reply {
            Some(w) => inv
                .arg(&w.reply_id)
                .arg(&w.content)
                .arg(&w.persona)
                .arg(w.delay_ms)
                .arg(&w.event),
            None => inv.arg("").arg("").arg("").arg("").arg(""),
        };
        inv.arg(keys_at).arg(sent_at);
    }
    let raw: Vec<String> = inv
        .invoke(con)
        .await
        .context("the batch decision script failed")?;
    ScriptReply::parse(raw, entries.len(), Verdict::parse)
}

/// Commits `written` replies with the commit step (`secondme_commit_*`).
pub(in crate::worker) async fn commit(
    con: &mut Con,
    group: &str,
    drafting: Drafting,
    sleep_mode: SleepMode,
    written: &[(&ParsedEntry, Written)],
    asleep: bool,
) -> Result<ScriptReply<Committed>> {
    if written.is_empty() {
        return Ok(ScriptReply {
            items: Vec::new(),
            warnings: Vec::new(),
        });
    }
    let mut inv = Call::new(Step::Commit);
    inv.key(schema::pause_all())
        .key(schema::optin_contacts())
        .key(schema::queue_messages())
        .key(schema::queue_responses())
        .key(schema::stats());
    Drafting::add_keys(&mut inv);
    inv.arg(group)
        .arg(schema::HANDLED_BUCKET_MS)
        .arg(schema::HISTORY_LEN)
        .arg(schema::QUEUE_RESPONSES_CAP)
        .arg(schema::channel_messages())
        .arg(if asleep { "1" } else { "0" })
        .arg(schema::HISTORY_TTL_ENABLED_MS);
    drafting.add_args(&mut inv);
    inv.key(schema::unanswered())
        .key(schema::deferred())
        .arg(sleep_mode.as_str())
        .handled_keys(crate::store::now_ms());
    let mut slots = ContactSlots::default();
    for (g, w) in written {
        let keys_at = slots.at(&mut inv, &w.contact_id);
        inv.arg(&w.stream_id)
            .arg(&w.message_id)
            .arg(&w.contact_id)
            .arg(&w.reply_id)
            .arg(&w.content)
            .arg(&w.persona)
            .arg(w.delay_ms)
            .arg(&w.event)
            .arg(event_json(g))
            .arg(keys_at);
    }
    let raw: Vec<String> = inv
        .invoke(con)
        .await
        .context("the reply commit script failed")?;
    ScriptReply::parse(raw, written.len(), Committed::parse)
}
