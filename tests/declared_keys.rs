//! Every key a server-side step touches is one its caller declared in `KEYS`
//! (issue 22): Redis Cluster routes and checks a call by its declared keys, and
//! ACL key patterns are checked against them, so a key built inside a step
//! would escape both.
//!
//! Redis itself cannot tell a declared key from one a step builds (outside a
//! Cluster, and inside one when both hash to the same slot), so this test reads
//! what the server did: `MONITOR` shows every script call with its `KEYS` and
//! then each command the script ran (client `lua`). Each command's keys, as the
//! server itself finds them (`COMMAND GETKEYS`), must be among its call's
//! declared keys. The workload goes through every step and every operation of
//! the library: the worker's decisions (a lost state, a reply, the person's own
//! message, a pause, a draft, the rate limit, a voice note nobody could hear, a
//! dead letter), its commits and
//! superseded messages with a slower engine, the drafts' decisions, expiry and
//! rewriting, the operator's own words, pauses and the kill switch.
//!
//! The `HANDLED:` hours are passed too, four around the caller's clock, and the
//! step picks the server's: a clock an hour or more off fails the step.

mod common;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::worker::Running;
use common::{Harness, eventually, handled, incoming, typed_by_person};
use futures_util::StreamExt;
use redis::AsyncCommands;
use secondme::config::SleepSetting;
use secondme::reply::persona_engine::PersonaEngine;
use secondme::reply::{Reply, ReplyEngine, ReplyRequest};
use secondme::schema::drafts::{self as keys, fields};
use secondme::schema::{self, Direction, PauseReason, QueueMessage};
use secondme::store::drafts::{self, Decision, ReplyMode};
use secondme::store::functions::{Call, Step};
use secondme::store::{control, optin};
use secondme::worker::WorkerConfig;

const SECOND: Duration = Duration::from_secs(1);

/// A language model's pace: its replies go through the commit step, and a quick
/// burst of one contact gets one reply (the older messages superseded).
struct Slow;

impl ReplyEngine for Slow {
    async fn reply(&self, request: &ReplyRequest<'_>) -> anyhow::Result<Reply> {
        tokio::time::sleep(Duration::from_millis(200)).await;
        Ok(Reply {
            content: format!("re: {}", request.message.content),
            delay_ms: 0,
        })
    }

    fn instant(&self) -> bool {
        false
    }
}

/// Every line `MONITOR` shows, in order.
#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<String>>>);

impl Log {
    async fn start(h: &Harness) -> Self {
        let client = redis::Client::open(h.server.url()).expect("client");
        let monitor = client.get_async_monitor().await.expect("MONITOR");
        let log = Self::default();
        let lines = log.0.clone();
        tokio::spawn(async move {
            let mut stream = monitor.into_on_message::<String>();
            while let Some(line) = stream.next().await {
                lines.lock().expect("log").push(line);
            }
        });
        log
    }

    /// Every line up to a marker sent last, so nothing the workload did is missing.
    async fn until_now(&self, h: &Harness) -> Vec<String> {
        let marker = "declared-keys-end-of-workload";
        let mut con = h.con.clone();
        let _: String = redis::cmd("ECHO")
            .arg(marker)
            .query_async(&mut con)
            .await
            .expect("ECHO");
        let lines = self.0.clone();
        eventually(10 * SECOND, || {
            let lines = lines.clone();
            async move {
                let lines = lines.lock().expect("log");
                lines
                    .iter()
                    .position(|l| l.contains(marker))
                    .map(|end| lines[..end].to_vec())
            }
        })
        .await
        .expect("the monitor shows the marker")
    }
}

/// One command `MONITOR` showed: whether a script ran it, and its arguments.
#[derive(Debug)]
struct Shown {
    by_script: bool,
    args: Vec<Vec<u8>>,
}

/// `1700000000.000000 [0 127.0.0.1:5000] "FCALL" "name" ...`, `[0 lua]` for a
/// script's command; arguments quoted as Redis quotes them (`\"`, `\\`, `\n`,
/// `\r`, `\t`, `\a`, `\b`, `\xHH`).
fn parse(line: &str) -> Shown {
    let (head, rest) = line.split_once("] ").expect("a monitor line");
    let by_script = head.ends_with(" lua");
    let mut args = Vec::new();
    let mut bytes = rest.bytes();
    while let Some(b) = bytes.next() {
        if b != b'"' {
            continue;
        }
        let mut arg = Vec::new();
        while let Some(c) = bytes.next() {
            match c {
                b'"' => break,
                b'\\' => match bytes.next().expect("an escape") {
                    b'n' => arg.push(b'\n'),
                    b'r' => arg.push(b'\r'),
                    b't' => arg.push(b'\t'),
                    b'a' => arg.push(7),
                    b'b' => arg.push(8),
                    b'x' => {
                        let hex = [bytes.next().expect("hex"), bytes.next().expect("hex")];
                        let hex = std::str::from_utf8(&hex).expect("hex");
                        arg.push(u8::from_str_radix(hex, 16).expect("hex"));
                    }
                    other => arg.push(other),
                },
                other => arg.push(other),
            }
        }
        args.push(arg);
    }
    Shown { by_script, args }
}

/// A script call (`FCALL`, `EVALSHA`, `EVAL`) and the commands it ran.
#[derive(Debug)]
struct ScriptCall {
    name: String,
    declared: BTreeSet<Vec<u8>>,
    first_arg: String,
    ran: Vec<Vec<Vec<u8>>>,
}

fn is_script_call(args: &[Vec<u8>]) -> bool {
    let name = String::from_utf8_lossy(&args[0]).to_ascii_uppercase();
    [
        "FCALL",
        "FCALL_RO",
        "EVAL",
        "EVALSHA",
        "EVAL_RO",
        "EVALSHA_RO",
    ]
    .contains(&name.as_str())
}

/// The script calls with the commands each ran: a script runs whole, and the
/// monitor shows its call, then its commands (Redis 7.0 to 8.2 alike).
fn script_calls(lines: &[String]) -> Vec<ScriptCall> {
    let shown: Vec<Shown> = lines.iter().map(|l| parse(l)).collect();
    let is_call = |s: &Shown| !s.by_script && !s.args.is_empty() && is_script_call(&s.args);
    let mut calls = Vec::new();
    for (i, s) in shown.iter().enumerate() {
        if !is_call(s) {
            continue;
        }
        let numkeys: usize = String::from_utf8_lossy(&s.args[2])
            .parse()
            .expect("numkeys");
        let ran: Vec<Vec<Vec<u8>>> = shown[i + 1..]
            .iter()
            .take_while(|n| n.by_script)
            .map(|n| n.args.clone())
            .collect();
        calls.push(ScriptCall {
            name: String::from_utf8_lossy(&s.args[1]).into_owned(),
            declared: s.args[3..3 + numkeys].iter().cloned().collect(),
            first_arg: s
                .args
                .get(3 + numkeys)
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .unwrap_or_default(),
            ran,
        });
    }
    let ran: usize = calls.iter().map(|c| c.ran.len()).sum();
    let by_scripts = shown.iter().filter(|s| s.by_script).count();
    assert_eq!(
        ran, by_scripts,
        "every command a script ran belongs to one call"
    );
    calls
}

/// The keys of `command`, as the server finds them.
async fn keys_of(con: &mut secondme::connection::Con, command: &[Vec<u8>]) -> Vec<Vec<u8>> {
    let mut cmd = redis::cmd("COMMAND");
    cmd.arg("GETKEYS");
    for a in command {
        cmd.arg(a.as_slice());
    }
    match cmd.query_async::<Vec<Vec<u8>>>(con).await {
        Ok(keys) => keys,
        Err(e) if e.to_string().contains("no key arguments") => Vec::new(),
        Err(e) => panic!(
            "COMMAND GETKEYS {}: {e}",
            String::from_utf8_lossy(&command[0])
        ),
    }
}

fn message(id: &str, contact: &str, direction: Direction, from_me: bool) -> QueueMessage {
    QueueMessage {
        message_id: id.into(),
        contact_id: contact.into(),
        content: "a \"quoted\" line\nand ☕".into(),
        timestamp: secondme::store::now_ms(),
        direction,
        from_me,
    }
}

fn worker_config(h: &Harness, consumer: &str) -> WorkerConfig {
    let mut cfg = WorkerConfig::from_config(&h.config(consumer));
    cfg.sleep_hours = SleepSetting::Off;
    cfg.block = Duration::from_millis(200);
    cfg.claim_every = Duration::from_millis(200);
    cfg.burst_quiet = Duration::from_millis(300);
    cfg
}

/// How `id` was handled once decided for good (not `seen`, waiting for its reply).
async fn handled_soon(h: &Harness, id: &str) -> String {
    eventually(10 * SECOND, || {
        let mut con = h.con.clone();
        async move { handled(&mut con, id).await.filter(|s| s != "seen") }
    })
    .await
    .unwrap_or_else(|| panic!("{id} not handled"))
}

async fn draft_id_soon(h: &Harness, contact: &str, want: &str) {
    let found = eventually(10 * SECOND, || {
        let mut con = h.con.clone();
        async move {
            let id: Option<String> = con
                .hget(keys::draft_key(contact), fields::DRAFT_ID)
                .await
                .ok()?;
            (id.as_deref() == Some(want)).then_some(())
        }
    })
    .await;
    assert!(found.is_some(), "no draft {want} for {contact}");
}

/// The worker with an instant engine: every branch of the decide step, the
/// dead-letter step, and the drafts' steps the operator and the worker call.
async fn instant_engine_workload(h: &mut Harness) {
    // No state marker yet: the first batch finds the state lost (PAUSEMETA:ALL).
    let w = Running::start(
        &h.server.url(),
        PersonaEngine::default(),
        worker_config(h, "w-instant"),
    )
    .await;
    h.send(&incoming("lost", "c1", "hi")).await;
    assert_eq!(handled_soon(h, "lost").await, "skip:kill_switch");
    control::kill_switch(&mut h.con, false)
        .await
        .expect("kill off");
    let contacts: Vec<String> = ["c1", "c2", "c3", "c4", "c5"].map(String::from).into();
    optin::set_enabled(&mut h.con, &contacts, true)
        .await
        .expect("enable");
    drafts::set_mode(&mut h.con, &["c3".to_owned()], ReplyMode::Draft)
        .await
        .expect("mode");

    h.send(&incoming("m1", "c1", "are we on?")).await;
    h.send(&typed_by_person("m2", "c2", "I'll answer this one"))
        .await;
    h.send(&incoming("m3", "c2", "ok?")).await;
    h.send(&message("m4", "c5", Direction::Outgoing, false))
        .await;
    h.send(&incoming("m5", "c3", "lend me a pen?")).await;
    for i in 0..12 {
        h.send(&incoming(&format!("r{i}"), "c4", "spam")).await;
    }
    h.send_raw(&[("payload", b"not json".as_slice())]).await;
    // A voice note nobody can hear (no transcription endpoint, its bytes gone):
    // counted in SECONDME:unheard.
    let ts = secondme::store::now_ms().to_string();
    h.send_raw(&[
        ("messageId", b"v1".as_slice()),
        ("contactId", b"c5"),
        ("content", b""),
        ("timestamp", ts.as_bytes()),
        ("direction", b"incoming"),
        ("fromMe", b"false"),
        ("mediaType", b"audio/ogg"),
    ])
    .await;
    assert_eq!(handled_soon(h, "m1").await, "answered");
    assert_eq!(handled_soon(h, "m2").await, "takeover");
    assert_eq!(handled_soon(h, "m3").await, "skip:paused");
    assert_eq!(handled_soon(h, "m4").await, "recorded");
    assert_eq!(handled_soon(h, "r10").await, "skip:rate_limit");
    assert_eq!(handled_soon(h, "v1").await, "skip:unreadable");
    let unheard: Option<u64> = h.con.hget(schema::unheard(), "c5").await.expect("HGET");
    assert_eq!(unheard, Some(1), "the step counted it");
    draft_id_soon(h, "c3", "draft_m5").await;
    let dead = eventually(10 * SECOND, || {
        let mut h_con = h.con.clone();
        async move {
            let n: usize = h_con.xlen(schema::queue_deadletter()).await.ok()?;
            (n > 0).then_some(())
        }
    })
    .await;
    assert!(dead.is_some(), "the malformed entry is dead-lettered");

    let decided = drafts::regenerate(&mut h.con, "draft_m5")
        .await
        .expect("regenerate");
    assert_eq!(decided, Decision::Done);
    let taken = eventually(10 * SECOND, || {
        let mut con = h.con.clone();
        async move {
            let n: usize = con.hlen(keys::regenerate_key()).await.ok()?;
            (n == 0).then_some(())
        }
    })
    .await;
    assert!(taken.is_some(), "the request to write it again is taken");
    tokio::time::sleep(SECOND).await;
    assert_eq!(
        drafts::approve(&mut h.con, "draft_m5", Some("yes, here"))
            .await
            .expect("approve"),
        Decision::Done
    );
    h.send(&incoming("m6", "c3", "and a ruler?")).await;
    draft_id_soon(h, "c3", "draft_m6").await;
    assert_eq!(
        drafts::discard(&mut h.con, "draft_m6")
            .await
            .expect("discard"),
        Decision::Done
    );
    // A draft past its time, for the worker's expiry.
    let _: () = redis::pipe()
        .hset_multiple(
            keys::draft_key("c5"),
            &[
                (fields::DRAFT_ID, "draft_old"),
                (fields::CONTACT_ID, "c5"),
                (fields::EXPIRES_AT, "1"),
            ],
        )
        .zadd(keys::drafts_key(), "c5", 1)
        .query_async(&mut h.con)
        .await
        .expect("an old draft");
    let expired = eventually(10 * SECOND, || {
        let mut con = h.con.clone();
        async move {
            let n: usize = con.zcard(keys::drafts_key()).await.ok()?;
            (n == 0).then_some(())
        }
    })
    .await;
    assert!(expired.is_some(), "the old draft expires");
    w.stop().await;
}

/// The worker with a slower engine: the commit and supersede steps.
async fn slow_engine_workload(h: &mut Harness) {
    let w = Running::start(&h.server.url(), Slow, worker_config(h, "w-slow")).await;
    h.send(&incoming("s1", "c1", "one")).await;
    h.send(&incoming("s2", "c1", "two")).await;
    h.send(&incoming("s3", "c3", "three")).await;
    assert_eq!(handled_soon(h, "s2").await, "answered");
    assert_eq!(handled_soon(h, "s1").await, "superseded");
    assert_eq!(handled_soon(h, "s3").await, "drafted");
    w.stop().await;
}

/// The operator's controls and own words.
async fn operator_workload(h: &mut Harness) {
    control::pause(&mut h.con, "c6", 60_000, PauseReason::Manual)
        .await
        .expect("pause");
    assert!(control::resume(&mut h.con, "c6").await.expect("resume"));
    control::kill_switch(&mut h.con, true)
        .await
        .expect("kill on");
    control::kill_switch(&mut h.con, false)
        .await
        .expect("kill off");
    drafts::send_as_owner(&mut h.con, "c7", "on my way")
        .await
        .expect("own words");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_key_a_step_touches_is_one_its_caller_declared() {
    let mut h = Harness::start().await;
    let log = Log::start(&h).await;
    instant_engine_workload(&mut h).await;
    slow_engine_workload(&mut h).await;
    operator_workload(&mut h).await;
    let calls = script_calls(&log.until_now(&h).await);

    let mut seen = BTreeSet::new();
    let mut touched = 0;
    let mut con = h.con.clone();
    for call in &calls {
        let step = call
            .name
            .strip_prefix("secondme_")
            .and_then(|s| s.rsplit_once('_'))
            .map_or("a script", |(step, _version)| step);
        match step {
            "control" | "draft" => seen.insert(format!("{step} {}", call.first_arg)),
            other => seen.insert(other.to_owned()),
        };
        for command in &call.ran {
            for key in keys_of(&mut con, command).await {
                touched += 1;
                assert!(
                    call.declared.contains(&key),
                    "{} ran {} on {:?}, which its caller did not pass in KEYS",
                    call.name,
                    String::from_utf8_lossy(&command[0]),
                    String::from_utf8_lossy(&key)
                );
            }
        }
    }
    let want: BTreeSet<String> = [
        "decide",
        "commit",
        "supersede",
        "dead_letter",
        "control pause",
        "control resume",
        "control kill_on",
        "control kill_off",
        "draft approve",
        "draft discard",
        "draft regenerate",
        "draft take",
        "draft rewrite",
        "draft expire",
        "draft own",
    ]
    .map(String::from)
    .into();
    let missing: Vec<&String> = want.difference(&seen).collect();
    assert!(missing.is_empty(), "steps not exercised: {missing:?}");
    assert!(touched > 200, "the check saw the steps' keys ({touched})");
}

/// The supersede step for one message, its `HANDLED:` hours from a clock `off_ms` away.
async fn supersede_with_clock_off(
    h: &mut Harness,
    message_id: &str,
    off_ms: i64,
) -> redis::RedisResult<Vec<String>> {
    let mut call = Call::new(Step::Supersede);
    call.key(schema::queue_messages())
        .key(schema::stats())
        .arg(schema::WORKER_GROUP)
        .arg(schema::HANDLED_BUCKET_MS)
        .handled_keys(secondme::store::now_ms() + off_ms)
        .arg("1-1")
        .arg(message_id);
    call.invoke(&mut h.con).await
}

#[tokio::test]
async fn the_handled_hours_follow_the_servers_clock_and_a_clock_hours_off_fails_the_step() {
    let mut h = Harness::start().await;
    let _: () = h
        .con
        .xgroup_create_mkstream(schema::queue_messages(), schema::WORKER_GROUP, "$")
        .await
        .expect("group");
    let half_hour = schema::HANDLED_BUCKET_MS / 2;
    for (id, off) in [("now", 0), ("behind", -half_hour), ("ahead", half_hour)] {
        let got = supersede_with_clock_off(&mut h, id, off)
            .await
            .expect("step");
        assert_eq!(got, ["superseded"]);
        // Read in the server's hour and the one before, as the steps do.
        assert_eq!(handled(&mut h.con, id).await.as_deref(), Some("superseded"));
    }
    for off in [
        -2 * schema::HANDLED_BUCKET_MS,
        2 * schema::HANDLED_BUCKET_MS,
    ] {
        let e = supersede_with_clock_off(&mut h, "far", off)
            .await
            .expect_err("clocks two hours apart");
        assert_eq!(e.code(), Some("SERVER_FAULT"), "{e}");
        assert!(e.to_string().contains("differ by an hour or more"), "{e}");
    }
    assert_eq!(handled(&mut h.con, "far").await, None, "nothing written");
}
