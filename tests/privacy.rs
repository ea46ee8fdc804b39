//! Secrets and hostile text through the real binary: a Redis password never
//! reaches `--help`, an error or the log; the log is private; and strings other
//! programs wrote to Redis cannot drive the terminal through `secondme status`.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::{Harness, TestDir};
use redis::AsyncCommands;
use secondme::schema;

/// Runs `secondme ARGS` with private config and state directories under `dir`.
fn secondme(dir: &TestDir, args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_secondme"))
        .args(args)
        .env("XDG_CONFIG_HOME", dir.join("config"))
        .env("XDG_STATE_HOME", dir.join("state"))
        .env_remove("SECONDME_CONFIG")
        .env_remove("SECONDME_REDIS_URL")
        .envs(env.iter().copied())
        .output()
        .expect("run secondme")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn help_never_shows_the_redis_url_from_the_environment() {
    let dir = TestDir::new("help");
    let url = "redis://bob:hunter2-help@127.0.0.1:6379/0";
    for args in [
        &["--help"][..],
        &["status", "--help"],
        &["worker", "--help"],
    ] {
        let out = secondme(&dir, args, &[("SECONDME_REDIS_URL", url)]);
        assert!(out.status.success(), "{args:?}");
        let help = text(&out.stdout);
        assert!(
            help.contains("SECONDME_REDIS_URL"),
            "the variable is named: {help}"
        );
        assert!(
            !help.contains("hunter2"),
            "{args:?} shows the password:\n{help}"
        );
    }
}

#[test]
fn a_password_in_a_unix_url_is_not_printed_when_the_connection_fails() {
    let dir = TestDir::new("unix-pass");
    let url = format!(
        "unix://{}/absent.sock?pass=hunter2-unix&db=1",
        dir.display()
    );
    let out = secondme(&dir, &["status", "--redis-url", &url], &[]);
    assert!(!out.status.success(), "nothing listens there");
    let err = text(&out.stderr);
    assert!(!err.contains("hunter2"), "{err}");
    assert!(err.contains("pass=***"), "the URL is still named: {err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_or_right_unix_password_stays_out_of_errors_and_the_log() {
    let mut h = Harness::start().await;
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("requirepass")
        .arg("right-hunter2")
        .query_async(&mut h.con)
        .await
        .expect("requirepass");
    let dir = TestDir::new("unix-auth");

    // Redis refuses the password: its error must not quote it.
    let wrong = format!("{}?pass=wrong-hunter2", h.server.url());
    let out = secondme(&dir, &["status", "--redis-url", &wrong], &[]);
    assert!(!out.status.success(), "a wrong password is refused");
    let err = text(&out.stderr);
    assert!(!err.contains("hunter2"), "{err}");

    // The right one: the control room logs the URL it uses at every start, to a
    // log file only this user may read, in a directory it created private.
    let right = format!("{}?pass=right-hunter2", h.server.url());
    let log = dir.join("logs/private/secondme.log");
    let log_arg = log.display().to_string();
    let mut screen =
        common::pty::Screen::start_with(&right, 30, 120, &["--no-worker", "--log-file", &log_arg]);
    screen.wait_for("redis");
    let deadline = Instant::now() + Duration::from_secs(10);
    let logged = loop {
        let logged = std::fs::read_to_string(&log).unwrap_or_default();
        if logged.contains("control room on") || Instant::now() > deadline {
            break logged;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    screen.stop();
    assert!(logged.contains("pass=***"), "{logged}");
    assert!(!logged.contains("hunter2"), "{logged}");
    let mode =
        |p: &std::path::Path| std::fs::metadata(p).expect("metadata").permissions().mode() & 0o777;
    assert_eq!(mode(&log), 0o600, "the log is private");
    assert_eq!(mode(&dir.join("logs/private")), 0o700);
    assert_eq!(mode(&dir.join("logs")), 0o700);
}

/// Bytes a terminal acts on: ESC, BEL, other C0 controls but newline, DEL, C1
/// controls (U+0080..U+009F) and bidi/format characters, as UTF-8.
fn terminal_controls(out: &[u8]) -> Vec<String> {
    text(out)
        .chars()
        .filter(|&c| {
            (c.is_control() && c != '\n')
                || matches!(c, '\u{200b}'..='\u{200f}' | '\u{2028}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
        })
        .map(|c| format!("U+{:04X}", c as u32))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_never_lets_strings_from_redis_drive_the_terminal() {
    let mut h = Harness::start().await;
    // What another program sharing the Redis could write: an OSC 52 clipboard
    // write, a screen clear, a C1 CSI, a bidi override.
    let osc52 = "mallory\u{1b}]52;c;ZWNobyBwd25lZA==\u{7}";
    let clear = "eve\u{1b}[2J\u{1b}[H";
    let c1 = "trudy\u{9b}31m";
    let bidi = "\u{202e}gnp.exe";
    let ids = [osc52, clear, c1, bidi];
    let _: () = h
        .con
        .sadd(schema::optin_contacts(), &ids[..])
        .await
        .expect("sadd");
    for (i, id) in ids.iter().enumerate() {
        let _: () = h
            .con
            .zadd(schema::contacts_activity(), *id, 1_000 + i as i64)
            .await
            .expect("zadd");
        let _: () = h
            .con
            .set_ex(format!("COUNTER:{id}:msgs"), 3, 60)
            .await
            .expect("counter");
    }
    let far = secondme::store::now_ms() + 3_600_000;
    let _: () = h
        .con
        .set_ex(format!("PAUSE:{clear}"), far, 3600)
        .await
        .expect("pause");
    let _: () = h
        .con
        .set_ex(
            format!("PAUSEMETA:{clear}"),
            "\u{1b}]0;pwned\u{7}manual",
            3600,
        )
        .await
        .expect("reason");
    let _: () = h
        .con
        .hset(schema::stats(), "answered\u{1b}[31m\u{9d}", 5)
        .await
        .expect("stats");

    let dir = TestDir::new("hostile-status");
    let url = h.server.url();
    let out = secondme(&dir, &["status", "--redis-url", &url], &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let shown = text(&out.stdout);
    assert!(
        shown.contains("mallory"),
        "the contact is still listed: {shown}"
    );
    let found = terminal_controls(&out.stdout);
    assert!(found.is_empty(), "status printed {found:?}:\n{shown:?}");

    // JSON keeps the data exact, written as escapes a terminal does not act on.
    let out = secondme(&dir, &["status", "--json", "--redis-url", &url], &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let found = terminal_controls(&out.stdout);
    assert!(found.is_empty(), "status --json printed {found:?}");
    let value: serde_json::Value = serde_json::from_slice(&out.stdout).expect("valid JSON");
    let enabled: Vec<&str> = value["enabled"]
        .as_array()
        .expect("enabled")
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    for id in ids {
        assert!(enabled.contains(&id), "{id:?} exact in {enabled:?}");
    }
}
