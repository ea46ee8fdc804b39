//! Draft mode (issue 21) against a real redis-server and the real worker: a
//! reply of a contact in draft mode waits as a draft (its hash, index and
//! channel payload exactly), one draft per burst (both engines), a duplicate
//! delivery, the kill switch and pauses, and where a contact's mode comes
//! from; the operator's decisions and own words are in `decisions`.

#[path = "../common/mod.rs"]
mod common;
mod decisions;
mod foreign;
#[path = "../common/logs.rs"]
mod logs;
mod night;

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::worker::Running;
use common::{Harness, collect, eventually, handled, incoming, streams};
use redis::AsyncCommands;
use secondme::config::{Config, Overrides, SleepSetting};
use secondme::connection::Con;
use secondme::reply::persona_engine::PersonaEngine;
use secondme::reply::{Reply, ReplyEngine, ReplyRequest};
use secondme::schema::drafts::{self as keys, DraftEvent};
use secondme::schema::{self, PauseReason, QueueMessage};
use secondme::store::drafts::{self, ReplyMode};
use secondme::store::{self, control, queue};
use secondme::worker::WorkerConfig;
use tokio::sync::mpsc;

const SECOND: Duration = Duration::from_secs(1);
const ALICE: &str = "alice";

/// An engine that numbers its replies, so a draft written again differs, and
/// asks for a long typing delay, which an approved draft must not keep.
#[derive(Clone, Default)]
struct Numbered {
    calls: Arc<AtomicUsize>,
    /// Calls that have written their reply.
    done: Arc<AtomicUsize>,
    instant: bool,
    delay: Duration,
}

impl Numbered {
    fn instant() -> Self {
        Self {
            instant: true,
            ..Self::default()
        }
    }

    /// A language model's pace: written beside the read loop, committed by the commit step.
    fn slow(delay: Duration) -> Self {
        Self {
            delay,
            ..Self::default()
        }
    }
}

impl ReplyEngine for Numbered {
    async fn reply(&self, request: &ReplyRequest<'_>) -> anyhow::Result<Reply> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        tokio::time::sleep(self.delay).await;
        self.done.fetch_add(1, Ordering::SeqCst);
        Ok(Reply {
            content: format!("reply {n} to {}", request.message.content),
            delay_ms: 4_321,
        })
    }

    fn instant(&self) -> bool {
        self.instant
    }
}

/// The settings a test gives on top of the harness's.
fn settings(h: &Harness, consumer: &str, reply_mode: Option<&str>, ttl: Option<&str>) -> Config {
    Config::resolve(Overrides {
        redis_url: Some(h.server.url()),
        consumer: Some(consumer.into()),
        claim_idle: Some("1s".into()),
        review_file: Some(h.dir.join(format!("review-{consumer}.jsonl"))),
        reply_mode: reply_mode.map(str::to_owned),
        draft_ttl: ttl.map(str::to_owned),
        ..Overrides::default()
    })
    .expect("config")
}

fn worker_config(c: &Config) -> WorkerConfig {
    let mut cfg = WorkerConfig::from_config(c);
    cfg.sleep_hours = SleepSetting::Off;
    cfg.block = Duration::from_millis(200);
    cfg.claim_every = Duration::from_millis(200);
    cfg.burst_quiet = Duration::from_millis(300);
    cfg
}

async fn start<E: ReplyEngine>(h: &Harness, engine: E, cfg: WorkerConfig) -> Running {
    Running::start(&h.server.url(), engine, cfg).await
}

/// A worker with the test engine, every contact in draft mode by the setting.
async fn drafting_worker(h: &Harness, engine: Numbered) -> Running {
    let c = settings(h, "w-drafts", Some("draft"), None);
    start(h, engine, worker_config(&c)).await
}

/// Writes `m` as a gateway does; returns its stream id.
async fn send(h: &mut Harness, m: &QueueMessage) -> String {
    queue::xadd(m, h.acked)
        .query_async(&mut h.con)
        .await
        .expect("xadd")
}

/// Subscribes to `events:drafts` (and `events:pause`, `events:messages`).
async fn subscribe(h: &Harness) -> mpsc::UnboundedReceiver<(String, String)> {
    h.subscribe_to(&[
        keys::channel_drafts(),
        schema::channel_pause(),
        schema::channel_messages(),
    ])
    .await
}

async fn draft_hash(con: &mut Con, contact: &str) -> HashMap<String, String> {
    con.hgetall(keys::draft_key(contact))
        .await
        .expect("hgetall")
}

/// Waits until `contact`'s draft answers `message_id`; returns its hash.
async fn draft_for(h: &Harness, contact: &str, message_id: &str) -> HashMap<String, String> {
    let want = keys::draft_id(message_id);
    eventually(10 * SECOND, || {
        let mut con = h.con.clone();
        let want = want.clone();
        async move {
            let d = draft_hash(&mut con, contact).await;
            (d.get("draftId") == Some(&want)).then_some(d)
        }
    })
    .await
    .unwrap_or_else(|| panic!("no draft answering {message_id}"))
}

async fn responses(h: &mut Harness) -> Vec<HashMap<String, String>> {
    streams::entries(&mut h.con, schema::queue_responses()).await
}

async fn drafts_index(con: &mut Con) -> Vec<(String, i64)> {
    con.zrange_withscores(keys::drafts_key(), 0, -1)
        .await
        .expect("zrange")
}

/// The history of `contact`, newest first, as JSON.
async fn history(con: &mut Con, contact: &str) -> Vec<serde_json::Value> {
    let raw: Vec<String> = con
        .lrange(schema::history_key(contact), 0, -1)
        .await
        .expect("lrange");
    raw.iter()
        .map(|r| serde_json::from_str(r).expect("history is JSON"))
        .collect()
}

fn draft_events(got: &[serde_json::Value]) -> Vec<DraftEvent> {
    got.iter()
        .map(|v| serde_json::from_value(v.clone()).expect("a draft event"))
        .collect()
}

/// Waits until the workers have acknowledged every entry they were given.
async fn until_settled(h: &Harness) {
    let settled = eventually(10 * SECOND, || {
        let mut con = h.con.clone();
        async move {
            let info: redis::streams::StreamInfoGroupsReply =
                con.xinfo_groups(schema::queue_messages()).await.ok()?;
            let g = info.groups.first()?;
            let len: usize = con.xlen(schema::queue_messages()).await.ok()?;
            (g.pending == 0 && g.entries_read == Some(len)).then_some(())
        }
    })
    .await;
    assert!(settled.is_some(), "the worker did not take every entry");
}

#[tokio::test]
async fn draft_mode_makes_a_draft_with_the_documented_fields_not_a_response() {
    let mut h = Harness::start().await;
    h.allow(&[ALICE]).await;
    drafts::set_mode(&mut h.con, &[ALICE.to_owned()], ReplyMode::Draft)
        .await
        .expect("mode");
    let mut events = subscribe(&h).await;
    let c = settings(&h, "w1", None, Some("2h"));
    let w = start(&h, PersonaEngine::default(), worker_config(&c)).await;
    let before = store::now_ms();
    let sid = send(
        &mut h,
        &incoming("m1", ALICE, "are we still on for dinner?"),
    )
    .await;
    let d = draft_for(&h, ALICE, "m1").await;

    let names: BTreeSet<&str> = d.keys().map(String::as_str).collect();
    let want: BTreeSet<&str> = [
        "draftId",
        "contactId",
        "content",
        "inReplyTo",
        "createdAt",
        "expiresAt",
        "persona",
        "streamId",
        "replyId",
    ]
    .into();
    assert_eq!(names, want);
    assert_eq!(d["contactId"], ALICE);
    assert_eq!(d["inReplyTo"], "m1");
    assert_eq!(d["streamId"], sid);
    assert_eq!(d["replyId"], "bot_m1");
    assert_eq!(d["persona"], "casual");
    assert!(!d["content"].trim().is_empty());
    let created: i64 = d["createdAt"].parse().expect("ms");
    let expires: i64 = d["expiresAt"].parse().expect("ms");
    assert!((before - 1000..store::now_ms() + 1000).contains(&created));
    assert_eq!(expires - created, 2 * 3600 * 1000, "draft_ttl 2h");
    assert_eq!(
        drafts_index(&mut h.con).await,
        [(ALICE.to_owned(), expires)]
    );

    let got = collect(&mut events, keys::channel_drafts(), SECOND / 2).await;
    assert_eq!(got.len(), 1, "{got:?}");
    let payload = got[0].as_object().expect("object");
    let fields: BTreeSet<&str> = payload.keys().map(String::as_str).collect();
    assert_eq!(fields, ["at", "contactId", "draftId", "type"].into());
    assert_eq!(got[0]["type"], "created");
    assert_eq!(got[0]["draftId"], "draft_m1");
    assert_eq!(got[0]["contactId"], ALICE);
    assert_eq!(got[0]["at"], created);

    assert!(responses(&mut h).await.is_empty(), "nothing is sent");
    assert_eq!(handled(&mut h.con, "m1").await.as_deref(), Some("drafted"));
    assert_eq!(
        streams::workers_pending(&mut h.con).await,
        0,
        "acknowledged"
    );
    let listed = drafts::list(&mut h.con).await.expect("list");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].draft_id, "draft_m1");
    assert_eq!(listed[0].content, d["content"]);
    assert_eq!(
        (listed[0].created_at, listed[0].expires_at),
        (created, expires)
    );
    let status = w.stop().await;
    assert_eq!((status.drafted, status.answered), (1, 0));
}

#[tokio::test]
async fn a_burst_leaves_one_draft_answering_its_last_message() {
    let mut h = Harness::start().await;
    h.allow(&[ALICE]).await;
    let mut events = subscribe(&h).await;
    let w = drafting_worker(&h, Numbered::instant()).await;
    send(&mut h, &incoming("m1", ALICE, "hey")).await;
    draft_for(&h, ALICE, "m1").await;
    send(&mut h, &incoming("m2", ALICE, "are you free tonight?")).await;
    let d = draft_for(&h, ALICE, "m2").await;
    assert_eq!(d["content"], "reply 2 to are you free tonight?");
    assert_eq!(drafts_index(&mut h.con).await.len(), 1);
    let got = draft_events(&collect(&mut events, keys::channel_drafts(), SECOND / 2).await);
    let kinds: Vec<(&str, &str)> = got
        .iter()
        .map(|e| (e.kind.as_str(), e.draft_id.as_str()))
        .collect();
    assert_eq!(kinds, [("created", "draft_m1"), ("replaced", "draft_m2")]);
    assert_eq!(handled(&mut h.con, "m1").await.as_deref(), Some("drafted"));
    assert!(responses(&mut h).await.is_empty());
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_engine_drafts_through_the_commit_step_once_per_burst() {
    let mut h = Harness::start().await;
    h.allow(&[ALICE]).await;
    let mut events = subscribe(&h).await;
    let engine = Numbered::slow(Duration::from_millis(200));
    let w = drafting_worker(&h, engine.clone()).await;
    send(&mut h, &incoming("m1", ALICE, "hey")).await;
    send(&mut h, &incoming("m2", ALICE, "dinner at 8?")).await;
    let d = draft_for(&h, ALICE, "m2").await;
    assert_eq!(d["content"], "reply 1 to dinner at 8?");
    let got = draft_events(&collect(&mut events, keys::channel_drafts(), SECOND).await);
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].kind, "created");
    assert_eq!(engine.calls.load(Ordering::SeqCst), 1);
    assert_eq!(
        handled(&mut h.con, "m1").await.as_deref(),
        Some("superseded")
    );
    assert_eq!(handled(&mut h.con, "m2").await.as_deref(), Some("drafted"));
    assert!(responses(&mut h).await.is_empty());
    w.stop().await;
}

#[tokio::test]
async fn a_duplicate_delivery_makes_no_second_draft_nor_a_send() {
    let mut h = Harness::start().await;
    h.allow(&[ALICE]).await;
    let engine = Numbered::instant();
    let w = drafting_worker(&h, engine.clone()).await;
    let m = incoming("m1", ALICE, "hi!");
    send(&mut h, &m).await;
    let first = draft_for(&h, ALICE, "m1").await;
    let mut events = subscribe(&h).await;
    send(&mut h, &m).await;
    until_settled(&h).await;
    assert_eq!(draft_hash(&mut h.con, ALICE).await, first, "untouched");
    drafts::discard(&mut h.con, "draft_m1")
        .await
        .expect("discard");
    send(&mut h, &m).await;
    until_settled(&h).await;
    assert!(drafts_index(&mut h.con).await.is_empty(), "no second draft");
    assert!(responses(&mut h).await.is_empty());
    let got = draft_events(&collect(&mut events, keys::channel_drafts(), SECOND / 2).await);
    let kinds: Vec<&str> = got.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds, ["discarded"]);
    w.stop().await;
}

#[tokio::test]
async fn the_kill_switch_and_a_pause_stop_drafting() {
    let mut h = Harness::start().await;
    h.allow(&[ALICE, "bob"]).await;
    let w = drafting_worker(&h, Numbered::instant()).await;
    control::kill_switch(&mut h.con, true).await.expect("kill");
    send(&mut h, &incoming("m1", ALICE, "hello?")).await;
    control::pause(&mut h.con, "bob", 60_000, PauseReason::Manual)
        .await
        .expect("pause");
    send(&mut h, &incoming("m2", "bob", "hello?")).await;
    until_settled(&h).await;
    assert_eq!(
        handled(&mut h.con, "m1").await.as_deref(),
        Some("skip:kill_switch")
    );
    assert!(drafts_index(&mut h.con).await.is_empty());
    control::kill_switch(&mut h.con, false).await.expect("off");
    send(&mut h, &incoming("m3", "bob", "still there?")).await;
    until_settled(&h).await;
    assert_eq!(
        handled(&mut h.con, "m3").await.as_deref(),
        Some("skip:paused")
    );
    assert!(drafts_index(&mut h.con).await.is_empty());
    assert!(responses(&mut h).await.is_empty());
    w.stop().await;
}

#[tokio::test]
async fn a_contacts_mode_beats_the_star_which_beats_the_setting() {
    let mut h = Harness::start().await;
    h.allow(&[ALICE, "bob"]).await;
    let w = drafting_worker(&h, Numbered::instant()).await;
    // The setting says draft; nothing stored.
    send(&mut h, &incoming("m1", ALICE, "one")).await;
    draft_for(&h, ALICE, "m1").await;
    // `mode auto --all` overrides the setting for every contact without a mode.
    drafts::set_default_mode(&mut h.con, ReplyMode::Auto)
        .await
        .expect("default");
    send(&mut h, &incoming("m2", "bob", "two")).await;
    until_settled(&h).await;
    assert_eq!(handled(&mut h.con, "m2").await.as_deref(), Some("answered"));
    // A contact's own mode beats the default.
    drafts::set_mode(&mut h.con, &["bob".to_owned()], ReplyMode::Draft)
        .await
        .expect("mode");
    send(&mut h, &incoming("m3", "bob", "three")).await;
    draft_for(&h, "bob", "m3").await;
    let sent = responses(&mut h).await;
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0]["inReplyTo"], "m2");
    let modes = drafts::modes(&mut h.con).await.expect("modes");
    assert_eq!(modes.get("*"), Some(&ReplyMode::Auto));
    assert_eq!(modes.get("bob"), Some(&ReplyMode::Draft));
    assert_eq!(
        drafts::mode_for(&modes, ALICE, ReplyMode::Draft),
        ReplyMode::Auto
    );
    assert!(
        drafts::set_mode(&mut h.con, &["*".to_owned()], ReplyMode::Auto)
            .await
            .is_err()
    );
    w.stop().await;
}

#[tokio::test]
async fn without_a_setting_contacts_are_answered_as_today() {
    let mut h = Harness::start().await;
    h.allow(&[ALICE]).await;
    let c = settings(&h, "w-auto", None, None);
    assert_eq!(c.reply_mode, ReplyMode::Auto);
    assert_eq!(c.draft_ttl, Duration::from_secs(24 * 3600));
    let w = start(&h, Numbered::instant(), worker_config(&c)).await;
    send(&mut h, &incoming("m1", ALICE, "hi")).await;
    until_settled(&h).await;
    assert_eq!(responses(&mut h).await.len(), 1);
    assert!(drafts_index(&mut h.con).await.is_empty());
    assert!(
        Config::resolve(Overrides {
            reply_mode: Some("maybe".into()),
            ..Overrides::default()
        })
        .is_err()
    );
    w.stop().await;
}
