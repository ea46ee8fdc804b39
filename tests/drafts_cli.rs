//! The operator in the loop through the real binary and a real redis-server:
//! `mode` stored per contact and as the default, `drafts` listing a draft a
//! real worker wrote, `approve` (as written, edited, twice), `discard`, `send`
//! (the operator's own words, taking over) and `ask` (the worker's reply,
//! previewed, nothing written).

mod common;

use std::collections::{BTreeSet, HashMap};
use std::process::Output;
use std::time::Duration;

use common::{Harness, eventually, incoming, run_cli};
use redis::AsyncCommands;
use secondme::reply::engine::Engine;
use secondme::schema::{self, drafts as keys, response_fields};
use secondme::worker;
use serde_json::Value;
use tokio::sync::watch;

/// Runs `secondme ARGS` against the harness's server.
fn cli(h: &Harness, args: &[&str]) -> Output {
    run_cli(&h.server.url(), &h.dir, args)
}

/// Runs `secondme ARGS`, which must succeed; its stdout.
fn ok(h: &Harness, args: &[&str]) -> String {
    let out = cli(h, args);
    assert!(
        out.status.success(),
        "secondme {args:?}: {:?}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs `secondme ARGS`, which must fail with status 1; its stderr.
fn fails(h: &Harness, args: &[&str]) -> String {
    let out = cli(h, args);
    assert_eq!(out.status.code(), Some(1), "secondme {args:?} must fail");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A worker with the engine `secondme` builds from the settings; stopped by
/// sending `true`.
fn start_worker(h: &Harness) -> (watch::Sender<bool>, tokio::task::JoinHandle<()>) {
    let config = h.config("w1");
    let (stop, stop_rx) = watch::channel(false);
    let task = tokio::spawn(async move {
        let engine = Engine::from_config(config.llm.as_ref(), &config.learn).expect("engine");
        worker::run_worker(&config, engine, stop_rx)
            .await
            .expect("worker");
    });
    (stop, task)
}

/// Waits until `contact` has a waiting draft; its hash.
async fn wait_draft(h: &Harness, contact: &str) -> HashMap<String, String> {
    let con = h.con.clone();
    let key = keys::draft_key(contact);
    eventually(Duration::from_secs(10), || {
        let mut con = con.clone();
        let key = key.clone();
        async move {
            let d: HashMap<String, String> = con.hgetall(&key).await.ok()?;
            (!d.is_empty()).then_some(d)
        }
    })
    .await
    .expect("the worker writes a draft")
}

/// Waits until `QUEUE:responses` holds `n` entries.
async fn wait_responses(h: &mut Harness, n: usize) -> Vec<HashMap<String, String>> {
    let con = h.con.clone();
    eventually(Duration::from_secs(10), || {
        let mut con = con.clone();
        async move {
            let len: usize = con.xlen(schema::queue_responses()).await.ok()?;
            (len >= n).then_some(())
        }
    })
    .await
    .expect("the replies are queued");
    h.responses().await
}

async fn xlen(h: &mut Harness, key: &str) -> usize {
    h.con.xlen(key).await.expect("XLEN")
}

async fn llen(h: &mut Harness, key: &str) -> usize {
    h.con.llen(key).await.expect("LLEN")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mode_is_stored_per_contact_and_as_the_default() {
    let mut h = Harness::start().await;
    let out = ok(&h, &["mode", "draft", "alice", "bob"]);
    assert!(out.contains("draft mode for 2 contact(s)"), "{out}");
    ok(&h, &["mode", "auto", "bob"]);
    ok(&h, &["mode", "draft", "--all"]);
    let modes: HashMap<String, String> = h.con.hgetall(keys::modes_key()).await.expect("HGETALL");
    let want: HashMap<String, String> = [("alice", "draft"), ("bob", "auto"), ("*", "draft")]
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .into();
    assert_eq!(modes, want);

    ok(&h, &["mode", "auto", "--all"]);
    let default: Option<String> = h
        .con
        .hget(keys::modes_key(), keys::DEFAULT_MODE_FIELD)
        .await
        .expect("HGET");
    assert_eq!(default.as_deref(), Some("auto"));

    // Neither contacts nor --all, both, a mode that is none, a bad contact id.
    for args in [
        &["mode", "draft"][..],
        &["mode", "draft", "--all", "alice"],
        &["mode", "sometimes", "alice"],
    ] {
        let out = cli(&h, args);
        assert!(!out.status.success(), "secondme {args:?} is refused");
    }
    fails(&h, &["mode", "draft", "bad id"]);
    let after: HashMap<String, String> = h.con.hgetall(keys::modes_key()).await.expect("HGETALL");
    assert_eq!(after.len(), 3, "nothing else stored: {after:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drafts_lists_the_worker_s_draft_which_approve_sends_once() {
    let mut h = Harness::start().await;
    h.allow(&["alice"]).await;
    ok(&h, &["mode", "draft", "alice"]);
    let (stop, worker) = start_worker(&h);
    h.send(&incoming("m1", "alice", "are we still on for dinner?"))
        .await;
    let stored = wait_draft(&h, "alice").await;
    let _ = stop.send(true);
    let _ = worker.await;
    assert_eq!(
        xlen(&mut h, schema::queue_responses()).await,
        0,
        "a draft, not a reply"
    );

    let json: Value = serde_json::from_str(&ok(&h, &["drafts", "--json"])).expect("JSON");
    let list = json.as_array().expect("an array");
    assert_eq!(list.len(), 1, "{json}");
    let d = list[0].as_object().expect("an object");
    let fields: BTreeSet<&str> = d.keys().map(String::as_str).collect();
    assert_eq!(
        fields,
        BTreeSet::from([
            "draftId",
            "contactId",
            "content",
            "inReplyTo",
            "createdAt",
            "expiresAt"
        ])
    );
    assert_eq!(d["draftId"], "draft_m1");
    assert_eq!(d["contactId"], "alice");
    assert_eq!(d["inReplyTo"], "m1");
    let content = d["content"].as_str().expect("text").to_owned();
    assert!(!content.is_empty());
    assert_eq!(Some(&content), stored.get("content"), "the stored draft");
    let created = d["createdAt"].as_i64().expect("ms");
    let expires = d["expiresAt"].as_i64().expect("ms");
    assert_eq!(expires - created, 24 * 3_600_000, "the default draft_ttl");

    let table = ok(&h, &["drafts"]);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 3, "{table}");
    for column in ["DRAFT", "CONTACT", "AGE", "EXPIRES IN"] {
        assert!(lines[0].contains(column), "{table}");
    }
    assert!(
        lines[1].starts_with("draft_m1") && lines[1].contains("alice"),
        "{table}"
    );
    assert!(
        lines[1].contains("23h59m") || lines[1].contains("1d00h"),
        "expires in a day: {table}"
    );
    assert_eq!(lines[2], format!("  {content}"));

    let out = ok(&h, &["approve", "draft_m1"]);
    assert!(out.contains("approved"), "{out}");
    let replies = wait_responses(&mut h, 1).await;
    assert_eq!(replies.len(), 1);
    assert_eq!(replies[0][response_fields::CONTENT], content);
    assert_eq!(replies[0][response_fields::CONTACT_ID], "alice");
    assert_eq!(replies[0][response_fields::IN_REPLY_TO], "m1");
    assert_eq!(
        replies[0][response_fields::APPROVED],
        "true",
        "the gateway sends it even while the contact is paused"
    );

    let err = fails(&h, &["approve", "draft_m1"]);
    assert!(err.contains("draft draft_m1 is gone"), "{err}");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        xlen(&mut h, schema::queue_responses()).await,
        1,
        "sent once"
    );
    assert_eq!(ok(&h, &["drafts", "--json"]).trim(), "[]");
    assert_eq!(ok(&h, &["drafts"]).trim(), "no drafts waiting");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edited_draft_goes_out_as_edited_and_a_discarded_one_never() {
    let mut h = Harness::start().await;
    h.allow(&["alice", "bob"]).await;
    ok(&h, &["mode", "draft", "--all"]);
    let (stop, worker) = start_worker(&h);
    h.send(&incoming("m1", "alice", "dinner at 8?")).await;
    h.send(&incoming("b1", "bob", "can you call me?")).await;
    wait_draft(&h, "alice").await;
    wait_draft(&h, "bob").await;
    let _ = stop.send(true);
    let _ = worker.await;

    fails(&h, &["approve", "draft_m1", "--text", "  "]);
    ok(
        &h,
        &["approve", "draft_m1", "--text", "yes! see you at 8 🍝"],
    );
    let replies = wait_responses(&mut h, 1).await;
    assert_eq!(replies[0][response_fields::CONTENT], "yes! see you at 8 🍝");
    assert_eq!(replies[0][response_fields::CONTACT_ID], "alice");

    let out = ok(&h, &["discard", "draft_b1"]);
    assert!(out.contains("discarded"), "{out}");
    let exists: bool = h.con.exists(keys::draft_key("bob")).await.expect("EXISTS");
    assert!(!exists, "the draft is gone");
    let err = fails(&h, &["discard", "draft_b1"]);
    assert!(err.contains("is gone"), "{err}");
    fails(&h, &["approve", "draft_b1"]);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        xlen(&mut h, schema::queue_responses()).await,
        1,
        "only alice's"
    );
    assert_eq!(ok(&h, &["drafts", "--json"]).trim(), "[]");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_queues_the_owner_s_words_to_a_contact_not_enabled_and_takes_over() {
    let mut h = Harness::start().await;
    h.allow(&[]).await;
    let out = cli(&h, &["send", "carol", "on my way"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let reply_id = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert!(!reply_id.is_empty());

    let replies = h.responses().await;
    assert_eq!(replies.len(), 1, "{replies:?}");
    let r = &replies[0];
    assert_eq!(r[response_fields::REPLY_ID], reply_id, "the printed id");
    assert_eq!(r[response_fields::CONTACT_ID], "carol");
    assert_eq!(r[response_fields::CONTENT], "on my way");
    assert_eq!(r[response_fields::FROM_OWNER], "true");
    assert_eq!(r[response_fields::DELAY_MS], "0");

    let pause: Option<i64> = h.con.get(schema::pause_key("carol")).await.expect("GET");
    let reason: Option<String> = h
        .con
        .get(schema::pause_meta_key("carol"))
        .await
        .expect("GET");
    assert_eq!(reason.as_deref(), Some("takeover"));
    let left = pause.expect("the twin steps back") - secondme::store::now_ms();
    assert!(
        (59 * 60_000..=60 * 60_000).contains(&left),
        "the default takeover pause: {left} ms"
    );

    fails(&h, &["send", "carol", " "]);
    fails(&h, &["send", "bad id", "hi"]);
    assert_eq!(xlen(&mut h, schema::queue_responses()).await, 1);

    ok(&h, &["send", "erin", "later!", "--takeover", "2h"]);
    let pause: Option<i64> = h.con.get(schema::pause_key("erin")).await.expect("GET");
    let left = pause.expect("paused") - secondme::store::now_ms();
    assert!(
        (119 * 60_000..=120 * 60_000).contains(&left),
        "the takeover setting: {left} ms"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ask_prints_the_worker_s_reply_to_the_last_message_and_writes_nothing() {
    let mut h = Harness::start().await;
    h.allow(&["bob"]).await;
    let (stop, worker) = start_worker(&h);
    h.send(&incoming("b1", "bob", "hey, how are you?")).await;
    wait_responses(&mut h, 1).await;
    h.send(&incoming("b2", "bob", "what are you doing saturday?"))
        .await;
    let replies = wait_responses(&mut h, 2).await;
    let _ = stop.send(true);
    let _ = worker.await;
    let sent = replies
        .iter()
        .find(|r| r[response_fields::IN_REPLY_TO] == "b2")
        .expect("the reply to b2")[response_fields::CONTENT]
        .clone();

    let history = schema::history_key("bob");
    let before = (
        xlen(&mut h, schema::queue_responses()).await,
        llen(&mut h, &history).await,
        xlen(&mut h, schema::queue_messages()).await,
    );
    assert_eq!(before.1, 4, "two messages and two replies");

    let out = ok(&h, &["ask", "bob"]);
    assert_eq!(out, format!("{sent}\n"), "what the worker answered to b2");
    let asked = ok(&h, &["ask", "bob", "are you coming to the party?"]);
    assert!(!asked.trim().is_empty(), "a reply to the text");

    let after = (
        xlen(&mut h, schema::queue_responses()).await,
        llen(&mut h, &history).await,
        xlen(&mut h, schema::queue_messages()).await,
    );
    assert_eq!(before, after, "nothing written");

    let err = fails(&h, &["ask", "dave"]);
    assert!(err.contains("no message of dave"), "{err}");
    let to_text = ok(&h, &["ask", "dave", "hello?"]);
    assert!(
        !to_text.trim().is_empty(),
        "a contact never met gets a reply to a text"
    );
    let dave: usize = llen(&mut h, &schema::history_key("dave")).await;
    assert_eq!(dave, 0);
}
