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
    let marker: Option<String> = h.con.get(schema::STATE_MARKER).await.expect("get");
    assert!(marker.is_some(), "kill off marks the state as known");

    // The first message after it is answered; the switch stays off.
    let config = h.config("w1");
    let (stop_tx, stop_rx) = watch::channel(false);
    let worker =
        tokio::spawn(async move { worker::run_worker(&config, PersonaEngine, stop_rx).await });
    h.send(&incoming("first", "alice", "hello there")).await;
    let state = eventually(Duration::from_secs(10), || {
        let mut con = h.con.clone();
        async move { handled(&mut con, "first").await.filter(|s| s != "seen") }
    })
    .await;
    assert_eq!(state.as_deref(), Some("answered"));
    let kill: bool = h.con.exists(schema::PAUSE_ALL).await.expect("exists");
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
