//! The real binary and library with WhatsApp out of reach (a closed local
//! port): `secondme gateway`, `login` and `logout` say what is wrong and go on.

use std::time::Duration;

use redis::AsyncCommands;
use secondme::bridge::whatsapp::status;
use secondme::schema;

use crate::common::{Harness, TestDir, eventually};
use crate::setup::{USER, state};

/// The real binary and library with WhatsApp out of reach, made so on any
/// machine: the client's endpoint is a closed local port. The gateway says so in
/// `GATEWAY:{userId}` and its log, and keeps trying with backoff.
#[tokio::test]
async fn with_no_network_the_real_gateway_reports_it_and_keeps_retrying() {
    let h = Harness::start().await;
    let dir = TestDir::new("wa-real");
    let log = std::fs::File::create(dir.join("stderr")).expect("log");
    let mut child = real_command(&h, &dir, &["gateway"])
        .stderr(log)
        .spawn()
        .expect("spawn secondme gateway");
    let first = eventually(Duration::from_secs(60), || {
        let mut con = h.con.clone();
        async move {
            let json: Option<String> = con.get(schema::gateway_key(USER)).await.ok()?;
            let s: status::GatewayStatus = serde_json::from_str(&json?).ok()?;
            (s.state == status::State::NoNetwork).then_some(s)
        }
    })
    .await
    .expect("the gateway reports the missing network");
    assert!(first.next_try.is_some(), "{first:?}");
    assert!(
        first
            .detail
            .as_deref()
            .is_some_and(|d| d.contains("cannot reach 127.0.0.1") && d.contains("refused")),
        "{first:?}"
    );
    let next_report = |after: Option<i64>| {
        let con = h.con.clone();
        async move {
            eventually(Duration::from_secs(60), || {
                let mut con = con.clone();
                async move {
                    let json: Option<String> = con.get(schema::gateway_key(USER)).await.ok()?;
                    let s: status::GatewayStatus = serde_json::from_str(&json?).ok()?;
                    (s.next_try > after).then_some(s)
                }
            })
            .await
            .expect("it tries again")
        }
    };
    let later = next_report(first.next_try).await;
    assert_eq!(later.since, first.since, "the trouble keeps its start time");
    let third = next_report(later.next_try).await;
    let gap = |a: &status::GatewayStatus, b: &status::GatewayStatus| {
        b.next_try.unwrap_or(0) - a.next_try.unwrap_or(0)
    };
    assert!(
        gap(&later, &third) > gap(&first, &later),
        "the wait grows (backoff): {first:?} {later:?} {third:?}"
    );
    let store = dir.join("wa");
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&store).expect("store dir").permissions(),
    );
    assert_eq!(mode & 0o777, 0o700);
    assert!(store.join("device.db").exists(), "the store file");
    for entry in std::fs::read_dir(&store).expect("store dir") {
        let entry = entry.expect("entry");
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &entry.metadata().expect("metadata").permissions(),
        );
        assert_eq!(mode & 0o777, 0o600, "{:?}", entry.path());
    }
    let _ = std::process::Command::new("kill")
        .arg(child.id().to_string())
        .status();
    let _ = child.wait();
    let text = std::fs::read_to_string(dir.join("stderr")).unwrap_or_default();
    assert!(text.contains("no network"), "{text}");
}

/// The real binary with private files under `dir`, WhatsApp's endpoint a closed
/// local port (nothing answers on any machine).
pub fn real_command(h: &Harness, dir: &TestDir, args: &[&str]) -> std::process::Command {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_secondme"));
    command
        .args(args)
        .env("SECONDME_REDIS_URL", h.server.url())
        .env("SECONDME_USER_ID", USER)
        .env("SECONDME_KEY_FILE", dir.join("session.key"))
        .env("SECONDME_WHATSAPP_DIR", dir.join("wa"))
        .env("XDG_CONFIG_HOME", dir.join("config"))
        .env("XDG_STATE_HOME", dir.join("state"))
        .env("HOME", &**dir)
        .env("SECONDME_LOG", "info")
        .env("SECONDME_WHATSAPP_ENDPOINT", closed_endpoint())
        .env("HTTPS_PROXY", "")
        .env_remove("SECONDME_CONFIG");
    command
}

/// `secondme login` says what is wrong in the terminal: a phone number it cannot
/// use, and WhatsApp out of reach (it keeps trying).
#[tokio::test]
async fn secondme_login_refuses_a_bad_phone_and_tells_when_whatsapp_is_out_of_reach() {
    let h = Harness::start().await;
    let dir = TestDir::new("wa-login");
    let bad = real_command(&h, &dir, &["login", "--phone", "call me"])
        .output()
        .expect("run secondme login");
    assert!(!bad.status.success());
    let said = String::from_utf8_lossy(&bad.stderr);
    assert!(
        said.contains("--phone must be a phone number with its country code"),
        "{said}"
    );
    let out = std::fs::File::create(dir.join("stdout")).expect("stdout");
    let mut child = real_command(&h, &dir, &["login"])
        .stdout(out)
        .spawn()
        .expect("spawn secondme login");
    let text = eventually(Duration::from_secs(60), || {
        let text = std::fs::read_to_string(dir.join("stdout")).unwrap_or_default();
        async move {
            text.contains("no network: cannot reach 127.0.0.1")
                .then_some(text)
        }
    })
    .await;
    let _ = std::process::Command::new("kill")
        .arg(child.id().to_string())
        .status();
    let status = child.wait().expect("wait");
    let text =
        text.unwrap_or_else(|| std::fs::read_to_string(dir.join("stdout")).unwrap_or_default());
    assert!(text.starts_with("Connecting to WhatsApp..."), "{text}");
    assert!(text.contains("(next try in "), "{text}");
    assert!(!status.success(), "stopped before linking is a failure");
}

/// `secondme logout` without a linked device: the store directory and
/// `SESSION:{userId}` go, and the state says logged out.
#[tokio::test]
async fn secondme_logout_deletes_the_store_and_the_session() {
    let mut h = Harness::start().await;
    let dir = TestDir::new("wa-logout");
    std::fs::create_dir_all(dir.join("wa")).expect("dir");
    std::fs::write(dir.join("wa").join("contacts.json"), b"{}").expect("contacts");
    let _: () = h
        .con
        .hset(schema::session_key(USER), "token", "v1.x")
        .await
        .expect("session");
    let out = real_command(&h, &dir, &["logout"])
        .output()
        .expect("run secondme logout");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{said} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(said.contains("The device's keys are deleted"), "{said}");
    assert!(!dir.join("wa").exists(), "the store directory is gone");
    let session: bool = h
        .con
        .exists(schema::session_key(USER))
        .await
        .expect("exists");
    assert!(!session, "SESSION deleted");
    assert_eq!(
        state(&mut h).await.map(|s| s.state),
        Some(status::State::LoggedOut)
    );
}

/// A `ws://` endpoint on a closed local port: nothing answers, on any machine.
pub fn closed_endpoint() -> String {
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("address").port()
    };
    format!("ws://127.0.0.1:{closed}/ws/chat")
}
