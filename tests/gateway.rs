//! The simulated gateway against a real redis-server: the login cycle and the
//! echo rule (the twin's own sent replies never count as the person typing).

mod common;

use std::time::Duration;

use base64::Engine;
use common::{Harness, collect, eventually};
use redis::AsyncCommands;
use secondme::bridge::Gateway;
use secondme::bridge::simulator::{Script, Simulator, Step};
use secondme::reply::persona_engine::PersonaEngine;
use secondme::{schema, worker};
use tokio::sync::watch;

fn script(steps: Vec<Step>) -> Script {
    Script {
        contacts: vec!["pat".into()],
        enabled: vec!["pat".into()],
        steps,
    }
}

#[tokio::test]
async fn codes_rotate_until_scanned_and_come_back_when_the_session_goes() {
    let mut h = Harness::start().await;
    let mut events = h.subscribe().await;
    let mut sim = Simulator::new(h.con.clone(), "user-1", script(Vec::new()), h.acked);
    sim.scan_after = Duration::from_millis(600);
    let (stop_tx, stop_rx) = watch::channel(false);
    let gateway = tokio::spawn(sim.run(stop_rx));

    let codes = collect(
        &mut events,
        schema::channel_qr(),
        Duration::from_millis(400),
    )
    .await;
    assert!(!codes.is_empty(), "a login code is published");
    assert_eq!(codes[0]["expiresIn"], 60, "the first code lasts about 60 s");
    let text = base64::engine::general_purpose::STANDARD
        .decode(codes[0]["qrCode"].as_str().expect("qrCode"))
        .expect("base64");
    assert!(text.starts_with(b"2@"), "a WhatsApp-style login payload");
    // The code on screen is also stored, for a dashboard that starts later.
    let stored: Option<String> = h.con.get(schema::qr_key("user-1")).await.expect("get");
    let stored: serde_json::Value =
        serde_json::from_str(&stored.expect("QR:user-1 is set")).expect("json");
    assert_eq!(stored["qrCode"], codes.last().expect("a code")["qrCode"]);
    let qr_ttl: i64 = h.con.pttl(schema::qr_key("user-1")).await.expect("pttl");
    assert!((1..=60_000).contains(&qr_ttl), "{qr_ttl}");

    let ttl = eventually(Duration::from_secs(5), || {
        let mut con = h.con.clone();
        async move {
            let ttl: i64 = con.ttl("SESSION:user-1").await.ok()?;
            (ttl > 0).then_some(ttl)
        }
    })
    .await
    .expect("the session appears once the code is scanned");
    assert!((86_398..=86_400).contains(&ttl));
    let token: String = h.con.hget("SESSION:user-1", "token").await.expect("token");
    assert!(token.starts_with("v1."), "sealed token");
    let left: bool = h
        .con
        .exists(schema::qr_key("user-1"))
        .await
        .expect("exists");
    assert!(!left, "a scanned code is not shown any more");

    // Logging out (or expiry) brings the codes back.
    let _: () = h.con.del("SESSION:user-1").await.expect("logout");
    let again = collect(&mut events, schema::channel_qr(), Duration::from_secs(3)).await;
    assert!(
        !again.is_empty(),
        "codes come back after the session is gone"
    );
    let _ = stop_tx.send(true);
    gateway.await.expect("join").expect("gateway");
}

#[tokio::test]
async fn the_echo_of_a_twin_reply_is_not_a_takeover() {
    let mut h = Harness::start().await;
    h.allow(&["pat"]).await;
    let step = |after_ms, content: &str| Step {
        after_ms,
        contact: "pat".into(),
        content: content.into(),
        from_me: false,
        burst: None,
        voice_seconds: None,
    };
    // One message now; the script's second step is far away, so no replay loop runs.
    let steps = vec![
        step(0, "are you around this weekend?"),
        step(600_000, "later"),
    ];
    let mut sim = Simulator::new(h.con.clone(), "user-1", script(steps), h.acked);
    sim.scan_after = Duration::from_millis(100);
    let config = h.config("w1");
    let (stop_tx, stop_rx) = watch::channel(false);
    let worker_stop = stop_rx.clone();
    let worker = tokio::spawn(async move {
        worker::run_worker(&config, PersonaEngine::default(), worker_stop).await
    });
    let gateway = tokio::spawn(sim.run(stop_rx));

    // The gateway "sends" the reply, records SENT:{id}, and the echo comes back as fromMe.
    let echo_state = eventually(Duration::from_secs(10), || {
        let mut con = h.con.clone();
        async move {
            let sent: Vec<String> = con.keys("SENT:*").await.ok()?;
            let id = sent.first()?.trim_start_matches("SENT:").to_owned();
            common::handled(&mut con, &id).await
        }
    })
    .await
    .expect("the echo was handled");
    assert_eq!(echo_state, "echo");
    let paused: bool = h.con.exists("PAUSE:pat").await.expect("exists");
    assert!(!paused, "the twin's own reply never pauses the contact");
    let _ = stop_tx.send(true);
    gateway.await.expect("join").expect("gateway");
    worker.await.expect("join").expect("worker");
}

#[tokio::test]
async fn the_demos_voice_note_is_written_as_a_gateway_does_and_left_to_the_operator() {
    let mut h = Harness::start().await;
    h.allow(&["pat"]).await;
    let steps = vec![
        Step {
            after_ms: 0,
            contact: "pat".into(),
            content: String::new(),
            from_me: false,
            burst: None,
            voice_seconds: Some(7),
        },
        Step {
            after_ms: 600_000,
            contact: "pat".into(),
            content: "later".into(),
            from_me: false,
            burst: None,
            voice_seconds: None,
        },
    ];
    let mut sim = Simulator::new(h.con.clone(), "user-1", script(steps), h.acked);
    sim.scan_after = Duration::from_millis(100);
    let (stop_tx, stop_rx) = watch::channel(false);
    let gateway = tokio::spawn(sim.run(stop_rx));
    let entry = eventually(Duration::from_secs(10), || {
        let mut con = h.con.clone();
        async move {
            let entries = common::streams::entries(&mut con, schema::queue_messages()).await;
            entries.into_iter().next()
        }
    })
    .await
    .expect("the voice note is queued");
    assert_eq!(entry["mediaType"], "audio/ogg; codecs=opus");
    assert_eq!(entry["mediaSeconds"], "7");
    assert_eq!(entry["content"], "");
    let key = schema::media_key(&entry["messageId"]);
    let ttl: i64 = h.con.pttl(&key).await.expect("PTTL");
    assert!(
        (1..=schema::media::MEDIA_TTL_MS as i64).contains(&ttl),
        "its bytes wait at most an hour: {ttl}"
    );
    // No transcription endpoint: never answered, counted for the operator.
    let config = h.config("w1");
    let (worker_stop_tx, worker_stop) = watch::channel(false);
    let worker = tokio::spawn(async move {
        worker::run_worker(&config, PersonaEngine::default(), worker_stop).await
    });
    let id = entry["messageId"].clone();
    let state = eventually(Duration::from_secs(10), || {
        let mut con = h.con.clone();
        let id = id.clone();
        async move { common::handled(&mut con, &id).await.filter(|s| s != "seen") }
    })
    .await
    .expect("handled");
    assert_eq!(state, "skip:unreadable");
    let counted: Option<u64> = h.con.hget(schema::unheard(), "pat").await.expect("HGET");
    assert_eq!(counted, Some(1));
    let _ = worker_stop_tx.send(true);
    let _ = stop_tx.send(true);
    gateway.await.expect("join").expect("gateway");
    worker.await.expect("join").expect("worker");
}
