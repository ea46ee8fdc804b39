//! End to end: the real binary in a pseudo-terminal against a real redis-server,
//! its screen read through a terminal emulator.

mod common;

use std::io::{Read, Write};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::Harness;
use portable_pty::{CommandBuilder, PtySize, native_pty_system};
use redis::AsyncCommands;
use secondme::schema;

struct Screen {
    parser: Arc<Mutex<vt100::Parser>>,
    raw: Arc<Mutex<Vec<u8>>>,
    writer: Box<dyn Write + Send>,
    child: Box<dyn portable_pty::Child + Send + Sync>,
}

impl Screen {
    fn start(url: &str, rows: u16, cols: u16) -> Self {
        let pty = native_pty_system()
            .openpty(PtySize {
                rows,
                cols,
                pixel_width: 0,
                pixel_height: 0,
            })
            .expect("pty");
        let dir = std::env::temp_dir().join(format!("secondme-tui-{}", std::process::id()));
        let mut cmd = CommandBuilder::new(env!("CARGO_BIN_EXE_secondme"));
        cmd.args(["--redis-url", url]);
        cmd.env("XDG_STATE_HOME", dir.join("state"));
        cmd.env("XDG_CONFIG_HOME", dir.join("config"));
        cmd.env("TERM", "xterm-256color");
        let child = pty.slave.spawn_command(cmd).expect("spawn");
        let mut reader = pty.master.try_clone_reader().expect("reader");
        let writer = pty.master.take_writer().expect("writer");
        let parser = Arc::new(Mutex::new(vt100::Parser::new(rows, cols, 0)));
        let raw = Arc::new(Mutex::new(Vec::new()));
        let (p, r) = (parser.clone(), raw.clone());
        std::thread::spawn(move || {
            let mut buf = [0u8; 8192];
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 {
                    break;
                }
                if let Ok(mut p) = p.lock() {
                    p.process(&buf[..n]);
                }
                if let Ok(mut r) = r.lock() {
                    r.extend_from_slice(&buf[..n]);
                }
            }
        });
        std::mem::forget(pty.master);
        Self {
            parser,
            raw,
            writer,
            child,
        }
    }

    fn text(&self) -> String {
        self.parser.lock().expect("parser").screen().contents()
    }

    fn wait_for(&self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let text = self.text();
            if text.contains(needle) {
                return text;
            }
            assert!(
                Instant::now() < deadline,
                "screen never showed {needle:?}:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn keys(&mut self, keys: &str) {
        self.writer.write_all(keys.as_bytes()).expect("write");
        self.writer.flush().expect("flush");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_control_room_shows_live_state_and_steers_the_twin() {
    let mut h = Harness::start().await;
    h.allow(&["alice"]).await;
    let mut screen = Screen::start(&h.server.url(), 30, 100);
    screen.wait_for("subscribed to events:pause");

    // A published message shows in the conversation, hostile bytes and all stripped.
    let _: i64 = h
        .con
        .publish(
            schema::CHANNEL_MESSAGES,
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
        .publish(schema::CHANNEL_PAUSE, "{not json")
        .await
        .expect("publish");
    screen.wait_for("events:pause");

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
        kill = h.con.get(schema::PAUSE_ALL).await.expect("get");
        if kill.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(kill.is_some(), "K y sets PAUSE:ALL");
    screen.wait_for("KILL SWITCH ON");

    // Redis killed and restarted: the disconnected state, then recovery.
    h.server.kill();
    screen.wait_for("DISCONNECTED");
    h.server.restart().expect("restart");
    screen.wait_for("redis connected");

    // q leaves a clean terminal: alternate screen left, cursor shown.
    screen.keys("q");
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Ok(Some(status)) = screen.child.try_wait() {
            assert!(status.success(), "exit status {status:?}");
            break;
        }
        assert!(Instant::now() < deadline, "did not quit");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(100));
    let raw = screen.raw.lock().expect("raw").clone();
    let tail = String::from_utf8_lossy(&raw[raw.len().saturating_sub(64)..]).into_owned();
    assert!(
        tail.contains("\u{1b}[?1049l"),
        "left the alternate screen: {tail:?}"
    );
    assert!(tail.contains("\u{1b}[?25h"), "cursor shown again: {tail:?}");
}
