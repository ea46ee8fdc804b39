//! The kill switch through the real binary on a Redis the twin never used: the
//! operator's first `kill off` holds, and `status` says why the switch is on.

mod common;

use std::process::Output;
use std::time::Duration;

use common::{Harness, TestDir, eventually, handled, incoming};
use redis::AsyncCommands;
use secondme::reply::persona_engine::PersonaEngine;
use secondme::schema;
use secondme::worker;
use tokio::sync::watch;

/// Runs `secondme ARGS --redis-url URL` with private config and state directories.
fn secondme(url: &str, dir: &TestDir, args: &[&str]) -> Output {
    let out = common::run_cli(url, dir, args);
    assert!(
        out.status.success(),
        "secondme {args:?}: {:?}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `status --json`'s kill switch fields.
fn json_kill(url: &str, dir: &TestDir) -> (serde_json::Value, serde_json::Value) {
    let out = secondme(url, dir, &["status", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("status JSON");
    (v["killSwitch"].clone(), v["killReason"].clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_off_on_a_new_redis_holds_and_status_says_why_the_switch_is_on() {
    let mut h = Harness::start().await;
    let dir = TestDir::new("kill-cli");
    let url = h.server.url();
    secondme(&url, &dir, &["enable", "alice"]);
    secondme(&url, &dir, &["kill", "off"]);
    let marker: Option<String> = h.con.get(schema::state_marker()).await.expect("get");
    assert!(marker.is_some(), "kill off marks the state as known");

    // The first message after it is answered; the switch stays off.
    let config = h.config("w1");
    let (stop_tx, stop_rx) = watch::channel(false);
    let worker = tokio::spawn(async move {
        worker::run_worker(&config, PersonaEngine::default(), stop_rx).await
    });
    h.send(&incoming("first", "alice", "hello there")).await;
    let state = eventually(Duration::from_secs(10), || {
        let mut con = h.con.clone();
        async move { handled(&mut con, "first").await.filter(|s| s != "seen") }
    })
    .await;
    assert_eq!(state.as_deref(), Some("answered"));
    let kill: bool = h.con.exists(schema::pause_all()).await.expect("exists");
    assert!(
        !kill,
        "PAUSE:ALL stays absent after the operator's kill off"
    );
    assert!(stdout(&secondme(&url, &dir, &["status"])).contains("kill switch  off"));

    // A later restart without persistence: the lost-state rule still holds, and
    // status says that is why the switch is on.
    let _: () = redis::cmd("FLUSHALL")
        .query_async(&mut h.con)
        .await
        .expect("flush");
    secondme(&url, &dir, &["enable", "alice"]);
    h.send(&incoming("after-loss", "alice", "still there?"))
        .await;
    let state = eventually(Duration::from_secs(10), || {
        let mut con = h.con.clone();
        async move { handled(&mut con, "after-loss").await }
    })
    .await;
    assert_eq!(state.as_deref(), Some("skip:kill_switch"));
    let text = stdout(&secondme(&url, &dir, &["status"]));
    assert!(text.contains("kill switch  ON since"), "{text}");
    assert!(text.contains("state_lost"), "status says why: {text}");
    let (at, reason) = json_kill(&url, &dir);
    assert!(at.is_i64(), "{at}");
    assert_eq!(reason, "state_lost");

    // Off, then on again by the operator: the reason follows.
    secondme(&url, &dir, &["kill", "off"]);
    secondme(&url, &dir, &["kill", "on"]);
    let text = stdout(&secondme(&url, &dir, &["status"]));
    assert!(text.contains("by the operator (manual)"), "{text}");
    assert_eq!(json_kill(&url, &dir).1, "manual");
    secondme(&url, &dir, &["kill", "off"]);
    let (at, reason) = json_kill(&url, &dir);
    assert!(at.is_null() && reason.is_null(), "{at} {reason}");
    let meta: bool = h.con.exists("PAUSEMETA:ALL").await.expect("exists");
    assert!(!meta, "the reason goes with the switch");

    let _ = stop_tx.send(true);
    worker.await.expect("join").expect("worker");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_says_what_the_gateway_says_of_itself() {
    let mut h = Harness::start().await;
    let dir = TestDir::new("status-gateway");
    let url = h.server.url();
    let gateway_line = |text: &str| {
        text.lines()
            .find(|l| l.starts_with("gateway "))
            .map(str::to_owned)
            .unwrap_or_else(|| panic!("no gateway line in:\n{text}"))
    };
    let json_gateway = |dir: &TestDir| {
        let out = secondme(&url, dir, &["status", "--json"]);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("status JSON");
        v["gateway"].clone()
    };

    let line = gateway_line(&stdout(&secondme(&url, &dir, &["status"])));
    assert!(line.contains("none running"), "{line}");
    assert_eq!(json_gateway(&dir), serde_json::Value::Null);

    // The gateway runs but WhatsApp is out of reach: the same words as the status bar.
    let now = secondme::store::now_ms();
    let state =
        serde_json::json!({"state": "no_network", "since": now - 5_000, "nextTry": now + 20_000});
    let _: () = h
        .con
        .set_ex("GATEWAY:user-1", state.to_string(), 90)
        .await
        .expect("set");
    let text = stdout(&secondme(&url, &dir, &["status"]));
    let line = gateway_line(&text);
    assert!(line.contains("no network (since"), "{line}");
    assert!(
        text.contains("not logged in"),
        "the session line stays: {text}"
    );
    let value = json_gateway(&dir);
    assert_eq!(value["state"], "no_network", "{value}");
    assert!(
        value["line"]
            .as_str()
            .is_some_and(|l| l.starts_with("no network")),
        "{value}"
    );

    // Another program's value of another type is reported, and the rest still printed.
    let _: () = h.con.del("GATEWAY:user-1").await.expect("del");
    let _: () = h
        .con
        .hset("GATEWAY:user-1", "state", "up")
        .await
        .expect("hset");
    let text = stdout(&secondme(&url, &dir, &["status"]));
    assert!(gateway_line(&text).contains("unreadable"), "{text}");
    assert!(text.contains("kill switch"), "{text}");
    assert!(json_gateway(&dir)["error"].is_string());
}
