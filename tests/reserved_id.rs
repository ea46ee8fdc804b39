//! The contact id `ALL` is the kill switch's (`PAUSE:ALL`), and ids the queue
//! parser rejects are rejected everywhere: the command line and the control room
//! refuse them and leave Redis as it was.

mod common;

use std::process::Output;
use std::time::Duration;

use common::pty::Screen;
use common::{Harness, TestDir};
use redis::AsyncCommands;
use secondme::schema;

fn secondme(url: &str, dir: &TestDir, args: &[&str]) -> Output {
    common::run_cli(url, dir, args)
}

async fn kill_switch_and_optin(h: &mut Harness) -> (Option<String>, Option<i64>, Vec<String>) {
    let value: Option<String> = h.con.get(schema::pause_all()).await.expect("GET");
    let ttl: i64 = h.con.pttl(schema::pause_all()).await.expect("PTTL");
    let mut optin: Vec<String> = h
        .con
        .smembers(schema::optin_contacts())
        .await
        .expect("SMEMBERS");
    optin.sort();
    (value, Some(ttl), optin)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_command_line_refuses_all_and_ids_the_queue_would_reject() {
    let mut h = Harness::start().await;
    h.allow(&["alice"]).await;
    let _: () = h.con.set(schema::pause_all(), "1").await.expect("kill on");
    let before = kill_switch_and_optin(&mut h).await;
    let dir = TestDir::new("reserved-cli");
    let url = h.server.url();
    let long = "x".repeat(300);
    let bad = [
        "ALL",
        "*",
        "a b",
        "line\nbreak",
        "alice\u{202e}eve",
        "zero\u{200b}width",
        &long,
    ];
    for id in bad {
        for args in [
            vec!["resume", id],
            vec!["pause", id],
            vec!["enable", id],
            vec!["disable", "alice", id],
        ] {
            let out = secondme(&url, &dir, &args);
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(!out.status.success(), "{args:?} was accepted");
            assert!(err.contains("contact id"), "{args:?}: {err}");
            if id == "ALL" {
                assert!(err.contains("reserved for the kill switch"), "{err}");
            }
            if id == "*" {
                assert!(err.contains("reserved for the default reply mode"), "{err}");
            }
        }
    }
    assert_eq!(
        kill_switch_and_optin(&mut h).await,
        before,
        "Redis unchanged"
    );
    // The same commands with a good id still work.
    let out = secondme(&url, &dir, &["disable", "alice"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_control_room_refuses_to_resume_pause_or_enable_a_contact_named_all() {
    let mut h = Harness::start().await;
    // Another program put `ALL` among the opted-in contacts; the kill switch is on.
    h.allow(&[]).await;
    let _: () = h
        .con
        .sadd(schema::optin_contacts(), "ALL")
        .await
        .expect("SADD");
    let _: () = h.con.set(schema::pause_all(), "1").await.expect("kill on");
    let before = kill_switch_and_optin(&mut h).await;
    let mut screen = Screen::start_with(&h.server.url(), 30, 140, &["--no-worker"]);
    screen.wait_for("KILL SWITCH ON");
    screen.wait_for("ALL");
    screen.keys("r");
    screen.wait_for("reserved for the kill switch");
    screen.keys("e");
    tokio::time::sleep(Duration::from_millis(500)).await;
    screen.keys("p");
    screen.wait_for("15 minutes");
    screen.keys("\r");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let text = screen.text();
    assert!(
        text.matches("reserved for the kill switch").count() >= 2,
        "each refusal is said:\n{text}"
    );
    assert_eq!(
        kill_switch_and_optin(&mut h).await,
        before,
        "Redis unchanged"
    );
    screen.wait_for("KILL SWITCH ON");
    screen.keys("q");
    screen.wait_exit(Duration::from_secs(10), "q");
    screen.assert_terminal_restored("q");
}
