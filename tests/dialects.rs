//! SecondMe beside the original TypeScript gateway: a test gateway writes exactly
//! the forms that gateway (and other dashboards) write into a real redis-server,
//! while the worker and the control room (the real binary, in a PTY) run against
//! it. Replies come out for its `payload` entries, nothing that should be answered
//! is dead-lettered, its keys keep their type and content, and the control room
//! shows its names, pauses, session and login codes (raw, base64 and PNG).

mod common;

use secondme::connection::Con;
use std::collections::HashMap;
use std::time::Duration;

use base64::Engine;
use common::pty::Screen;
use common::{Harness, eventually};
use redis::AsyncCommands;
use secondme::schema::{self, dialect};
use secondme_ui::widgets::qr;

const ANN: &str = "123456789@c.us";
const BOB: &str = "987654321@c.us";
const CY: &str = "555000111@c.us";

/// The original gateway's queue entry: one `payload` field of JSON.
fn payload_entry(message_id: &str, contact: &str, name: &str, content: &str, at: i64) -> String {
    serde_json::json!({
        "messageId": message_id,
        "contactId": contact,
        "contactName": name,
        "content": content,
        // ms at one-second resolution, as that gateway writes it
        "timestamp": at / 1000 * 1000,
        "hasMedia": false,
        "type": "chat",
    })
    .to_string()
}

/// Every key of theirs, as `(key, type, content)`, to compare before and after.
async fn their_keys(con: &mut Con) -> Vec<(String, String, String)> {
    let keys = [
        format!("HISTORY:{ANN}"),
        format!("COUNTER:{ANN}:msgs"),
        format!("PAUSE:{CY}"),
        dialect::contacts_list().to_owned(),
        dialect::session_info().to_owned(),
        dialect::config_sleep_hours().to_owned(),
    ];
    let mut out = Vec::new();
    for key in keys {
        let kind: String = redis::cmd("TYPE")
            .arg(&key)
            .query_async(con)
            .await
            .expect("TYPE");
        let content = match kind.as_str() {
            "zset" => format!(
                "{:?}",
                con.zrange_withscores::<_, Vec<(String, f64)>>(&key, 0, -1)
                    .await
                    .expect("ZRANGE")
            ),
            "hash" => {
                let mut h: Vec<(String, String)> = con
                    .hgetall::<_, HashMap<String, String>>(&key)
                    .await
                    .expect("HGETALL")
                    .into_iter()
                    .collect();
                h.sort();
                format!("{h:?}")
            }
            "string" => {
                let v: String = con.get(&key).await.expect("GET");
                let ttl: i64 = con.ttl(&key).await.expect("TTL");
                // A counter's window runs down: only whether it has one is compared.
                format!("{v} ttl:{}", ttl > 0)
            }
            other => other.to_owned(),
        };
        out.push((key, kind, content));
    }
    out
}

/// Writes what the original gateway and its dashboard keep: a sorted-set history,
/// its own rate counter, a JSON pause without TTL, the names, its session, a sleep window.
async fn write_gateway_state(h: &mut Harness, now: i64) {
    let _: () = h
        .con
        .zadd(
            format!("HISTORY:{ANN}"),
            r#"{"id":"old","body":"from their gateway","fromMe":false}"#,
            now - 60_000,
        )
        .await
        .expect("ZADD");
    let _: () = h
        .con
        .set_ex(format!("COUNTER:{ANN}:msgs"), 3, 60)
        .await
        .expect("SET counter");
    let _: () = h
        .con
        .set(
            format!("PAUSE:{CY}"),
            format!(r#"{{"pausedAt":{now},"reason":"fromMe"}}"#),
        )
        .await
        .expect("SET pause");
    let _: () = h
        .con
        .hset_multiple(
            dialect::contacts_list(),
            &[
                (ANN, "Ann Original"),
                (BOB, "Bob Original"),
                (CY, "Cy Original"),
            ],
        )
        .await
        .expect("HSET names");
    let _: () = h
        .con
        .set(
            dialect::session_info(),
            format!(
                r#"{{"createdAt":{now},"lastVerifiedAt":{now},"estimatedExpiryAt":{},"state":"connected","needsRefresh":false}}"#,
                now + 20 * 3_600_000
            ),
        )
        .await
        .expect("SET session");
    let _: () = h
        .con
        .set(
            dialect::config_sleep_hours(),
            r#"{"start":"23:00","end":"07:00"}"#,
        )
        .await
        .expect("SET sleep");
}

/// A PNG of `code` as dashboards publish it: black modules on white, 6 px each.
fn png_of(code: &str) -> Vec<u8> {
    let grid = qr::modules(code).expect("encodable");
    let scale = 6;
    let side = grid.len() * scale;
    let mut pixels = Vec::with_capacity(side * side * 3);
    for y in 0..side {
        for x in 0..side {
            let v = if grid[y / scale][x / scale] { 0 } else { 255 };
            pixels.extend_from_slice(&[v, v, v]);
        }
    }
    let mut out = Vec::new();
    let mut enc = png::Encoder::new(&mut out, side as u32, side as u32);
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    let mut w = enc.write_header().expect("header");
    w.write_image_data(&pixels).expect("data");
    w.finish().expect("finish");
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn beside_the_original_gateway_its_forms_are_read_and_its_keys_left_alone() {
    let mut h = Harness::start().await;
    h.allow(&[ANN, BOB, CY]).await;
    let now = secondme::store::now_ms();
    write_gateway_state(&mut h, now).await;
    let before = their_keys(&mut h.con).await;

    let entries = [
        (
            "false_123456789@c.us_3EB0A1",
            ANN,
            "Ann",
            "hey, are you free tomorrow?",
        ),
        (
            "false_987654321@c.us_3EB0B2",
            BOB,
            "Bob",
            "how was the trip?",
        ),
        ("false_555000111@c.us_3EB0C3", CY, "Cy", "hello?"),
    ];
    for (id, contact, name, content) in entries {
        let json = payload_entry(id, contact, name, content, now);
        h.send_raw(&[("payload", json.as_bytes())]).await;
    }

    // The control room with its worker; the gateway counts the rate itself.
    let mut screen = Screen::start_with(
        &h.server.url(),
        45,
        150,
        &["--rate-counted-elsewhere", "true", "--gateway", "none"],
    );

    // Replies in the seed's form for the two contacts not paused; none dead-lettered.
    let con = h.con.clone();
    let replies = eventually(Duration::from_secs(20), || {
        let mut con = con.clone();
        async move {
            let r: redis::streams::StreamRangeReply =
                con.xrange_all(schema::queue_responses()).await.ok()?;
            (r.ids.len() >= 2).then_some(r)
        }
    })
    .await
    .expect("two replies");
    let mut to: Vec<String> = replies
        .ids
        .iter()
        .map(|e| e.get::<String>("inReplyTo").unwrap_or_default())
        .collect();
    to.sort();
    assert_eq!(to, [entries[0].0, entries[1].0]);
    for e in &replies.ids {
        let mid: String = e.get("inReplyTo").unwrap_or_default();
        assert_eq!(e.get::<String>("replyId"), Some(format!("bot_{mid}")));
        assert!(e.get::<String>("content").is_some_and(|c| !c.is_empty()));
    }
    assert!(
        h.dead_letters().await.is_empty(),
        "{:?}",
        h.dead_letters().await
    );
    // The JSON pause holds: Cy's message is recorded, not answered.
    let cy = eventually(Duration::from_secs(5), || {
        let mut con = h.con.clone();
        async move { common::handled(&mut con, entries[2].0).await }
    })
    .await;
    assert_eq!(cy.as_deref(), Some("skip:paused"));
    // Our history sits beside their sorted set.
    let ours: Vec<String> = h
        .con
        .lrange(schema::own_history_key(ANN), 0, -1)
        .await
        .expect("LRANGE");
    assert_eq!(ours.len(), 2, "{ours:?}");

    // The control room: the names, the pause until resumed, the session, the dialects.
    screen.wait_for("Ann Original");
    screen.wait_for("Cy Original");
    screen.wait_for("until resumed");
    screen.wait_for("whatsapp connected");
    screen.wait_for("reading: QUEUE:messages");

    // The login code in each form, drawn module for module.
    let raw = "2@raw-form,AbCdEf==,GhIj==";
    let b64 = "2@base64-form,KlMn==,OpQr==";
    let png = "2@png-form,StUv==,WxYz==";
    let forms = [
        (raw, format!(r#"{{"qr":"{raw}","timestamp":{now}}}"#)),
        (
            b64,
            format!(
                r#"{{"qrCode":"{}","expiresIn":60}}"#,
                base64::engine::general_purpose::STANDARD.encode(b64)
            ),
        ),
        (
            png,
            format!(
                r#"{{"qrCode":"data:image/png;base64,{}"}}"#,
                base64::engine::general_purpose::STANDARD.encode(png_of(png))
            ),
        ),
    ];
    for (code, payload) in &forms {
        let _: i64 = h
            .con
            .publish(schema::channel_qr(), payload)
            .await
            .expect("publish");
        let lines = qr::render_lines(code).expect("encodable");
        screen.wait_for_block(&lines);
    }
    screen.stop();

    // Their keys kept their type and content.
    assert_eq!(their_keys(&mut h.con).await, before);
    let counter: String = h.con.get(format!("COUNTER:{ANN}:msgs")).await.expect("GET");
    assert_eq!(counter, "3", "the gateway's count, not incremented again");
}

/// `secondme status` names the dialects it found and shows the JSON pause and
/// the gateway's session; a key of a foreign type is reported, not fatal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_names_the_dialects_and_survives_foreign_keys() {
    let mut h = Harness::start().await;
    h.allow(&[ANN, CY]).await;
    let now = secondme::store::now_ms();
    write_gateway_state(&mut h, now).await;
    let json = payload_entry("false_1@c.us_X", ANN, "Ann", "hi", now);
    h.send_raw(&[("payload", json.as_bytes())]).await;
    let _: () = h
        .con
        .zadd_multiple(schema::contacts_activity(), &[(now, CY), (now, ANN)])
        .await
        .expect("ZADD");
    // Another program's session key of another type.
    let _: () = h
        .con
        .set(schema::session_key("user-1"), "not a hash")
        .await
        .expect("SET");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_secondme"))
        .args(["--redis-url", &h.server.url(), "status"])
        .env("XDG_CONFIG_HOME", h.dir.join("cfg"))
        .output()
        .expect("status runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for needle in [
        "session      connected (another gateway's, SESSION:whatsapp:info)",
        &format!("paused       {CY} until resumed (takeover)"),
        "reading      QUEUE:messages: 1 of the newest entries are one `payload` JSON field",
        "reading      SESSION:user-1 is a string",
        "reading      CONTACTS:list (hash)",
        "reading      CONFIG:sleep_hours is set by another dashboard",
        "reading      HISTORY:{contactId} kept as a zset",
        "reading      PAUSE:{contactId} as JSON",
        "unreadable   SESSION:user-1",
    ] {
        assert!(text.contains(needle), "{needle:?} not in:\n{text}");
    }
}
