//! End to end: the real binary in a pseudo-terminal against a real redis-server,
//! its screen read through a terminal emulator.

mod common;

use std::time::{Duration, Instant};

use base64::Engine;
use common::Harness;
use common::pty::Screen;
use redis::AsyncCommands;
use secondme::schema;
use secondme_ui::widgets::qr;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_control_room_shows_live_state_and_steers_the_twin() {
    let mut h = Harness::start().await;
    h.allow(&["alice"]).await;
    let mut screen = Screen::start(&h.server.url(), 30, 100);
    screen.wait_for("subscribed to events:pause");
    // A plain Redis: the operator is told replies use the shipped personas.
    screen.wait_for("FalkorDB not available");

    // A published message shows in the conversation, hostile bytes and all stripped.
    let _: i64 = h
        .con
        .publish(
            schema::channel_messages(),
            r#"{"messageId":"m1","contactId":"alice","content":"hello \u001b[2J\u001b]0;pwned\u0007there \u202eevil","botSent":false,"timestamp":1704931200000}"#,
        )
        .await
        .expect("publish");
    let text = screen.wait_for("hello there");
    assert!(!text.contains("pwned"), "{text}");
    assert!(!text.contains("[2J"), "{text}");

    // A bad payload is reported, not fatal.
    let _: i64 = h
        .con
        .publish(schema::channel_pause(), "{not json")
        .await
        .expect("publish");
    screen.wait_for("events:pause");

    // A malformed queue entry is dead-lettered by the embedded worker and the
    // event log says why.
    h.send_raw(&[
        ("messageId", b"junk-1"),
        ("contactId", b"alice"),
        ("content", b"x"),
        ("timestamp", b"soon"),
        ("direction", b"incoming"),
        ("fromMe", b"false"),
    ])
    .await;
    screen.wait_for("dead letter: entry");

    // p + Enter pauses the selected contact for 15 minutes.
    screen.wait_for("alice");
    screen.keys("p");
    screen.wait_for("15 minutes");
    screen.keys("\r");
    let mut ttl = -2i64;
    for _ in 0..100 {
        ttl = h.con.ttl("PAUSE:alice").await.expect("ttl");
        if ttl > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!((14 * 60..=15 * 60).contains(&ttl), "PAUSE:alice ttl {ttl}");
    screen.wait_for("manual");

    // K + y switches the kill switch on.
    screen.keys("K");
    screen.keys("y");
    let mut kill: Option<i64> = None;
    for _ in 0..100 {
        kill = h.con.get(schema::pause_all()).await.expect("get");
        if kill.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(kill.is_some(), "K y sets PAUSE:ALL");
    screen.wait_for("KILL SWITCH ON");
    // Each action is logged once, from its events:pause message (a beat later, so
    // a second line would have arrived).
    tokio::time::sleep(Duration::from_millis(300)).await;
    let text = screen.text();
    assert_eq!(text.matches("kill switch ON").count(), 1, "{text}");
    assert_eq!(text.matches("paused for 15m").count(), 1, "{text}");

    // Redis killed and restarted: the disconnected state, then recovery.
    h.server.kill();
    screen.wait_for("DISCONNECTED");
    h.server.restart().expect("restart");
    screen.wait_for("redis connected");
    // The subscriptions came back: a message published after the restart shows.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let _: Result<i64, _> = h
            .con
            .publish(
                schema::channel_messages(),
                r#"{"messageId":"m-after","contactId":"alice","content":"back after the restart","botSent":false,"timestamp":1704931300000}"#,
            )
            .await;
        if screen.text().contains("back after the restart") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no message after the restart:\n{}",
            screen.text()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // q leaves a clean terminal: alternate screen left, cursor shown.
    screen.keys("q");
    let status = screen.wait_exit(Duration::from_secs(15), "q");
    assert!(status.success(), "exit status {status:?}");
    screen.assert_terminal_restored("q");
}

fn qr_payload(code: &str, expires_in: u32) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(code);
    format!(r#"{{"qrCode":"{b64}","expiresIn":{expires_in}}}"#)
}

/// About as long as a real WhatsApp login code, which needs a 65x33 overlay.
fn long_login_code() -> String {
    format!(
        "2@{},{},{},{}",
        "A1b2C3d4E5f6G7h8I9j0".repeat(6),
        "k1L2m3N4o5P6q7R8s9T0u1V2w3X4y5Z6a7B8c9D0e1F=",
        "g2H3i4J5k6L7m8N9o0P1q2R3s4T5u6V7w8X9y0Z1a2B=",
        "c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8s9T0u1V2w3X="
    )
}

/// A control room started after the gateway published its code still shows it,
/// from `QR:{userId}`, with the time the code has left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_code_published_before_the_control_room_started_is_shown() {
    let mut h = Harness::start().await;
    let code = "2@stored-before-start,abc,def";
    let _: () = h
        .con
        .pset_ex(schema::qr_key("user-1"), qr_payload(code, 60), 45_000)
        .await
        .expect("store the code");
    let mut screen = Screen::start_with(&h.server.url(), 45, 120, &["--no-worker"]);
    let lines = qr::render_lines(code).expect("encodable");
    let text = screen.wait_for_block(&lines);
    // The key's time left (45 s), not the payload's 60 s.
    assert!(
        text.contains("expires in 4") || text.contains("expires in 3"),
        "the stored code's time left: {text}"
    );
    screen.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_published_login_code_shows_as_a_scannable_code() {
    let mut h = Harness::start().await;
    let mut screen = Screen::start_with(&h.server.url(), 45, 120, &["--no-worker"]);
    screen.wait_for("subscribed to events:");

    // A contact id full of escape sequences shows as plain text, sequences gone.
    let _: i64 = h
        .con
        .publish(
            schema::channel_messages(),
            r#"{"messageId":"h1","contactId":"mallory\u001b]0;pwned\u0007\u001b[31m\u001b[2J-x","content":"hi","botSent":false,"timestamp":1704931200000}"#,
        )
        .await
        .expect("publish");
    screen.wait_for("mallory-x");

    // No session key: the published code is drawn, module for module, with its countdown.
    let code = "2@test-payload,abc,def";
    let _: i64 = h
        .con
        .publish(schema::channel_qr(), qr_payload(code, 20))
        .await
        .expect("publish");
    let lines = qr::render_lines(code).expect("encodable");
    let text = screen.wait_for_block(&lines);
    assert!(text.contains("expires in"), "{text}");

    // A login code carrying escape sequences is encoded, never printed.
    let hostile = "2@\u{1b}]0;qrpwned\u{7}\u{1b}[2J,abc";
    let _: i64 = h
        .con
        .publish(schema::channel_qr(), qr_payload(hostile, 20))
        .await
        .expect("publish");
    let hostile_lines = qr::render_lines(hostile).expect("encodable");
    let text = screen.wait_for_block(&hostile_lines);
    screen.stop();
    let raw = screen.raw_text();
    for leak in ["pwned", "[31m", "[2J"] {
        assert!(!text.contains(leak), "{leak:?} on screen:\n{text}");
    }
    assert!(
        !raw.contains("pwned"),
        "escape payload reached the terminal"
    );
    assert!(
        !raw.contains("\u{1b}]0;"),
        "a title-setting sequence reached the terminal"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_code_too_big_for_the_terminal_asks_for_room() {
    let mut h = Harness::start().await;
    let mut screen = Screen::start_with(&h.server.url(), 24, 80, &["--no-worker"]);
    screen.wait_for("subscribed to events:");
    let code = long_login_code();
    let lines = qr::render_lines(&code).expect("encodable");
    assert!(lines.len() + 2 > 24, "the test code must not fit in 80x24");
    let _: i64 = h
        .con
        .publish(schema::channel_qr(), qr_payload(&code, 20))
        .await
        .expect("publish");
    let text = screen.wait_for("Enlarge the terminal");
    assert!(text.contains("expires in"), "{text}");
    // No part of a cut code: the finder-pattern rows are nowhere on screen.
    let rows = screen.rows();
    screen.stop();
    for line in &lines[2..4] {
        let line: String = line.trim().to_string();
        assert!(
            !rows
                .iter()
                .any(|r| r.iter().collect::<String>().contains(&line)),
            "part of the code was drawn:\n{text}"
        );
    }
}

/// A dropped SSH link (SIGHUP) or a `kill` (SIGTERM) leaves the terminal restored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_and_sigterm_restore_the_terminal() {
    let h = Harness::start().await;
    for signal in ["-HUP", "-TERM"] {
        let mut screen = Screen::start_with(&h.server.url(), 30, 100, &["--no-worker"]);
        screen.wait_for("subscribed to events:pause");
        let pid = screen.child.process_id().expect("pid");
        let status = std::process::Command::new("kill")
            .arg(signal)
            .arg(pid.to_string())
            .status()
            .expect("kill");
        assert!(status.success());
        screen.wait_exit(Duration::from_secs(10), signal);
        screen.assert_terminal_restored(signal);
    }
}

/// A 1 MB message and a payload with invalid UTF-8: shown capped and cleaned, and
/// the screen stays whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_and_invalid_payloads_keep_the_screen_whole() {
    let mut h = Harness::start().await;
    let screen = Screen::start_with(&h.server.url(), 30, 100, &["--no-worker"]);
    screen.wait_for("subscribed to events:pause");
    let huge = format!(
        r#"{{"messageId":"big","contactId":"alice","content":"huge {}","botSent":false,"timestamp":1704931200001}}"#,
        "x".repeat(1 << 20)
    );
    let _: i64 = h
        .con
        .publish(schema::channel_messages(), huge)
        .await
        .expect("publish");
    let mut invalid = br#"{"messageId":"bin","contactId":"alice","content":"bytes "#.to_vec();
    invalid.extend_from_slice(b"\xff\xfe\xc3 then text");
    invalid.extend_from_slice(br#"","botSent":false,"timestamp":1704931200002}"#);
    let _: i64 = h
        .con
        .publish(schema::channel_messages(), invalid)
        .await
        .expect("publish");
    // (vt100 drops U+FFFD from its screen, so look for the start of the line and
    // check what was written: valid UTF-8 carrying the replacement characters.)
    let text = screen.wait_for("alice: bytes");
    let raw = screen.raw.lock().expect("raw").clone();
    let written = String::from_utf8(raw).expect("the program writes valid UTF-8 only");
    assert!(
        written.contains('\u{fffd}'),
        "invalid bytes shown as replacement characters"
    );
    assert!(
        text.contains("xxx…"),
        "the 1 MB message is shown capped: {text}"
    );
    assert!(text.contains("q quit"), "key hints still on screen: {text}");
    assert!(text.contains("redis"), "status bar still on screen: {text}");
}

/// On start the conversation shows the stored history, not an empty pane.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_conversation_starts_with_the_stored_history() {
    let mut h = Harness::start().await;
    let _: () = redis::pipe()
        .zadd(schema::contacts_activity(), "carol", 1_704_931_200_000i64)
        .lpush(
            schema::history_key("carol"),
            r#"{"messageId":"h1","contactId":"carol","content":"from before the start","botSent":false,"timestamp":1704931100000}"#,
        )
        .lpush(
            schema::history_key("carol"),
            r#"{"messageId":"h2","contactId":"carol","content":"the twin answered then","botSent":true,"timestamp":1704931200000}"#,
        )
        .query_async(&mut h.con)
        .await
        .expect("seed history");
    let screen = Screen::start_with(&h.server.url(), 30, 100, &["--no-worker"]);
    let text = screen.wait_for("the twin answered then");
    assert!(text.contains("from before the start"), "{text}");
    assert!(text.contains("twin:"), "the twin is labelled: {text}");
}

/// SIGTERM or SIGHUP to the control room with its embedded worker (the default
/// mode) drains the worker and exits 0: no panic, the terminal restored, and the
/// entries the worker held written to the review file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signals_drain_the_embedded_worker_into_the_review_file() {
    for signal in ["-TERM", "-HUP"] {
        let mut h = Harness::start().await;
        h.allow(&["alice"]).await;
        for i in 0..3 {
            h.send(&common::incoming(&format!("sig-{i}"), "alice", "hi"))
                .await;
        }
        // The entries are delivered to the control room's consumer, so they are in
        // flight for it; then this Redis refuses it what it needs to start (creating
        // the group) and to answer (scripts), so they are still in flight at the
        // signal, whatever the timing.
        let consumer = "tui-drain";
        let _: () = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(schema::queue_messages())
            .arg(schema::WORKER_GROUP)
            .arg("0")
            .query_async(&mut h.con)
            .await
            .expect("group");
        let _: redis::Value = redis::cmd("XREADGROUP")
            .arg("GROUP")
            .arg(schema::WORKER_GROUP)
            .arg(consumer)
            .arg("COUNT")
            .arg(10)
            .arg("STREAMS")
            .arg(schema::queue_messages())
            .arg(">")
            .query_async(&mut h.con)
            .await
            .expect("deliver");
        let _: () = redis::cmd("ACL")
            .arg("SETUSER")
            .arg("default")
            .arg("-@scripting")
            .arg("-xgroup|create")
            .query_async(&mut h.con)
            .await
            .expect("acl");
        let review = h.dir.join("review.jsonl");
        let log = h.dir.join("secondme.log");
        let (review_arg, log_arg) = (review.display().to_string(), log.display().to_string());
        let mut screen = Screen::start_with(
            &h.server.url(),
            30,
            100,
            &[
                "--consumer",
                consumer,
                "--review-file",
                &review_arg,
                "--log-file",
                &log_arg,
            ],
        );
        screen.wait_for("subscribed to events:pause");
        let pid = screen.child.process_id().expect("pid");
        let status = std::process::Command::new("kill")
            .arg(signal)
            .arg(pid.to_string())
            .status()
            .expect("kill");
        assert!(status.success());
        let status = screen.wait_exit(Duration::from_secs(20), signal);
        let logged = std::fs::read_to_string(&log).unwrap_or_default();
        let raw = screen.raw_text();
        assert!(
            status.success(),
            "{signal}: exit status {status:?}\nlog:\n{logged}\noutput tail:\n{}",
            &raw[raw.len().saturating_sub(600)..]
        );
        screen.assert_terminal_restored(signal);
        assert!(!raw.contains("panicked"), "{signal}: a panic was printed");
        assert!(!logged.contains("panic"), "{signal}: log:\n{logged}");
        assert!(
            logged.contains("draining: 3 entries left"),
            "{signal}: the drain counts what is left:\n{logged}"
        );
        let lines: Vec<serde_json::Value> = std::fs::read_to_string(&review)
            .unwrap_or_else(|e| panic!("{signal}: no review file ({e}); log:\n{logged}"))
            .lines()
            .map(|l| serde_json::from_str(l).expect("review line is JSON"))
            .collect();
        let ids: Vec<&str> = lines
            .iter()
            .filter_map(|l| l["fields"]["messageId"].as_str())
            .collect();
        assert_eq!(ids, ["sig-0", "sig-1", "sig-2"], "{signal}: {lines:?}");
        // Written down, so no longer pending: nobody answers them behind the reviewer's back.
        let pending = common::streams::workers_pending(&mut h.con).await;
        assert_eq!(pending, 0, "{signal}: still pending: {pending}");
    }
}

/// On a Redis the twin never used, the kill switch turned off with `K` holds: the
/// first message is answered and `PAUSE:ALL` stays absent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_off_in_the_control_room_holds_on_a_new_redis() {
    let mut h = Harness::start().await;
    secondme::store::optin::set_enabled(&mut h.con, &["alice".to_string()], true)
        .await
        .expect("enable");
    let mut screen = Screen::start(&h.server.url(), 30, 100);
    screen.wait_for("subscribed to events:pause");
    // The switch is off, so K offers to turn it on: on, then off again.
    screen.keys("K");
    screen.keys("y");
    screen.wait_for("KILL SWITCH ON");
    screen.keys("K");
    screen.keys("y");
    screen.wait_for("kill switch OFF");
    let marker = common::eventually(Duration::from_secs(5), || {
        let mut con = h.con.clone();
        async move {
            let m: Option<String> = con.get(schema::state_marker()).await.ok()?;
            m
        }
    })
    .await;
    assert!(marker.is_some(), "K off marks the state as known");
    h.send(&common::incoming("tui-first", "alice", "hello"))
        .await;
    let state = common::eventually(Duration::from_secs(10), || {
        let mut con = h.con.clone();
        async move {
            common::handled(&mut con, "tui-first")
                .await
                .filter(|s| s != "seen")
        }
    })
    .await;
    assert_eq!(state.as_deref(), Some("answered"));
    let kill: bool = h.con.exists(schema::pause_all()).await.expect("exists");
    assert!(!kill, "PAUSE:ALL stays absent");
    screen.keys("q");
    assert!(screen.wait_exit(Duration::from_secs(15), "q").success());
}

/// A learned chat: for each of `answers`, a message of the contact's then, two
/// minutes later, that answer of the owner's; last, a photo the owner sent.
fn learned_chat(answers: &[&str]) -> Vec<secondme::learn::ChatLine> {
    use secondme::learn::{ChatLine, LineKind};
    let start = 1_760_000_000_000_i64;
    let mut lines = Vec::new();
    for (i, answer) in answers.iter().enumerate() {
        let at = start + i as i64 * 3_600_000;
        lines.push(ChatLine {
            ts: at,
            me: false,
            kind: LineKind::Text,
            text: format!("question number {i}?"),
        });
        lines.push(ChatLine {
            ts: at + 120_000,
            me: true,
            kind: LineKind::Text,
            text: (*answer).to_owned(),
        });
    }
    lines.push(ChatLine {
        ts: start + answers.len() as i64 * 3_600_000,
        me: true,
        kind: LineKind::Media,
        text: String::new(),
    });
    lines
}

/// The learned panel (`l`) for the selected contact: the hint while nothing is
/// learned; for a contact whose chat was learned, its figures (counted here)
/// and the last eval as the owner's bars beside the twin's; for a contact
/// without a chat, the overall profile, said to be one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_learned_panel_shows_what_the_twin_learned_for_the_selected_contact() {
    use secondme::learn::LineKind;
    use secondme::store::learned;

    let mut h = Harness::start().await;
    h.allow(&["alice", "bob"]).await;
    let mut screen = Screen::start_with(&h.server.url(), 24, 80, &["--no-worker"]);
    screen.wait_for("alice");
    screen.keys("/bob\r");
    screen.keys("l");
    screen.wait_for("Learned · bob");
    screen.wait_for("nothing learned yet — secondme learn CHAT.txt");

    // Seven of nine answers start lowercase; their lengths' median is counted here.
    let answers = [
        "yes see you at 7",
        "haha ok",
        "sure",
        "Sounds good to me",
        "no way",
        "on my way now",
        "Maybe tomorrow then",
        "lol",
        "ok cool see you there",
    ];
    let chat = learned_chat(&answers);
    learned::add_lines(&mut h.con, "alice", &chat, 1000)
        .await
        .expect("learn alice's chat");
    let texts: Vec<&str> = chat
        .iter()
        .filter(|l| l.me && l.kind == LineKind::Text)
        .map(|l| l.text.as_str())
        .collect();
    let mut lengths: Vec<usize> = texts.iter().map(|t| t.chars().count()).collect();
    lengths.sort_unstable();
    let median = lengths[lengths.len() / 2];
    let lower = texts
        .iter()
        .filter(|t| t.chars().next().is_some_and(char::is_lowercase))
        .count();
    let lower_pct = (lower as f64 * 100.0 / texts.len() as f64).round();
    let eval = serde_json::json!({
        "contact": "alice",
        "holdout": 4,
        "twin": {"style_distance": 0.18, "rows": [
            {"measure": "starts_lowercase", "owner": 0.85, "generated": 0.72, "distance": 0.13},
            {"measure": "median_chars", "owner": 12.0, "generated": 6.0, "distance": 0.5}
        ]},
        "baseline": {"style_distance": 0.42, "rows": []},
        // 90 minutes and a half ago: the screen's clock may lag by a tick.
        "at": secondme::store::now_ms() - 5_430_000
    });
    learned::save_eval(&mut h.con, "alice", &eval)
        .await
        .expect("save the eval");

    // The filter is edited, not cleared with esc: esc and `/` at once read as alt-/.
    screen.keys("/\u{7f}\u{7f}\u{7f}alice\r");
    screen.wait_for("Learned · alice");
    let text = screen.wait_for(&format!("{} messages learned · this chat", texts.len()));
    for part in [
        format!("length ~{median} chars · lowercase {lower_pct:.0}%"),
        "replies in ~2m (median)".to_string(),
        "fidelity 0.18 · baseline 0.42".to_string(),
        "1h30m ago".to_string(),
        "twin · 4 replies".to_string(),
    ] {
        assert!(text.contains(&part), "{part:?} on screen:\n{text}");
    }
    let bars = text
        .lines()
        .find(|l| l.contains("lowercase  "))
        .unwrap_or_else(|| panic!("a lowercase bar row:\n{text}"));
    assert!(
        bars.contains('█') && bars.contains(" 85% ") && bars.contains(" 72% "),
        "{bars}"
    );
    let length = text
        .lines()
        .find(|l| l.contains("length  "))
        .expect("a length row");
    assert!(
        length.contains(" 12.0 ") && length.contains(" 6.00 "),
        "{length}"
    );

    // bob has no chat: the overall profile (alice's only) serves, said so.
    screen.keys("/\u{7f}\u{7f}\u{7f}\u{7f}\u{7f}bob\r");
    screen.wait_for(&format!(
        "{} messages learned · overall profile",
        texts.len()
    ));
    // `l` again: the conversation is back.
    screen.keys("l");
    screen.wait_for("Conversation · bob");
    screen.keys("q");
    assert!(screen.wait_exit(Duration::from_secs(15), "q").success());
}
