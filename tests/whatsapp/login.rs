//! Logging in: login codes to `events:qr` and `QR:{userId}`, the session in
//! `SESSION:{userId}`, a logout, a replaced device, and codes that ran out.

use std::time::Duration;

use base64::Engine;
use redis::AsyncCommands;
use secondme::bridge::whatsapp::gateway::Exit;
use secondme::bridge::whatsapp::link::{Connector, LinkEvent};
use secondme::bridge::whatsapp::status;
use secondme::schema;
use secondme::seal::{self, SessionKey};

use crate::common::{self, Harness, TestDir, eventually};
use crate::setup::{Setup, USER, start, start_with, state, wait_state};

#[tokio::test]
async fn login_codes_reach_events_qr_and_the_qr_key_then_connecting_writes_the_session() {
    let mut h = Harness::start().await;
    let mut events = h.subscribe().await;
    let run = start(&h, false).await;
    let s = wait_state(&mut h, status::State::WaitingForScan).await;
    assert!(s.until.is_some());
    let qr: String = h.con.get(schema::qr_key(USER)).await.expect("QR key");
    let payload: serde_json::Value = serde_json::from_str(&qr).expect("json");
    let code = base64::engine::general_purpose::STANDARD
        .decode(payload["qrCode"].as_str().expect("qrCode"))
        .expect("base64");
    assert_eq!(code, b"2@fake-code");
    assert_eq!(payload["expiresIn"], 60);
    let ttl: i64 = h.con.pttl(schema::qr_key(USER)).await.expect("pttl");
    assert!((50_000..=60_000).contains(&ttl), "{ttl}");
    let published = common::collect(
        &mut events,
        schema::channel_qr(),
        Duration::from_millis(300),
    )
    .await;
    assert_eq!(published, vec![payload]);

    let before_link = secondme::store::now_ms();
    run.fake
        .emit(LinkEvent::Connected {
            account: "wa_acc".into(),
            device: 3,
            name: "Alice".into(),
        })
        .await;
    let s = wait_state(&mut h, status::State::Connected).await;
    assert_eq!(s.name.as_deref(), Some("Alice"));
    let gone: bool = h.con.exists(schema::qr_key(USER)).await.expect("exists");
    assert!(!gone, "the code is deleted at login");
    let token: String = h
        .con
        .hget(schema::session_key(USER), "token")
        .await
        .expect("session");
    let manifest: serde_json::Value = serde_json::from_slice(
        &seal::open(&run.key, &token, &schema::session_key(USER)).expect("opens"),
    )
    .expect("manifest");
    assert_eq!(manifest["account"], "wa_acc");
    assert_eq!(manifest["device"], 3);
    assert!(
        manifest["storePath"]
            .as_str()
            .expect("path")
            .ends_with("device.db")
    );
    assert!(
        manifest["pairedAt"].as_i64().expect("pairedAt") >= before_link,
        "linked by this scan: {manifest}"
    );
    let ttl: i64 = h.con.ttl(schema::session_key(USER)).await.expect("ttl");
    assert!(ttl > 86_000, "{ttl}");
    assert!(
        run.fake.calls().contains(&"unavailable".to_owned()),
        "presence set offline"
    );
    let _ = run.stop.send(true);
    assert_eq!(run.task.await.expect("join").expect("run"), Exit::Stopped);
}

#[tokio::test]
async fn a_restart_with_a_store_connects_without_a_code() {
    let mut h = Harness::start().await;
    let mut events = h.subscribe().await;
    let run = start(&h, true).await;
    wait_state(&mut h, status::State::Connected).await;
    assert!(
        common::collect(
            &mut events,
            schema::channel_qr(),
            Duration::from_millis(300)
        )
        .await
        .is_empty()
    );
    let qr: bool = h.con.exists(schema::qr_key(USER)).await.expect("exists");
    assert!(!qr);
    assert!(run.fake.has_store(), "the store is kept");
    run.finish().await;
}

async fn manifest(h: &mut Harness, key: &SessionKey) -> serde_json::Value {
    let token: String = h
        .con
        .hget(schema::session_key(USER), "token")
        .await
        .expect("session");
    serde_json::from_slice(&seal::open(key, &token, &schema::session_key(USER)).expect("opens"))
        .expect("manifest")
}

#[tokio::test]
async fn the_session_is_rewritten_before_its_ttl_runs_out_and_keeps_the_time_the_device_was_linked()
{
    let mut h = Harness::start().await;
    let dir = TestDir::new("wa");
    std::fs::write(dir.join("device.db"), b"keys").expect("store");
    let linked = secondme::store::now_ms();
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let setup = Setup {
        dir: Some(dir),
        refresh: Duration::from_millis(300),
        ..Setup::default()
    };
    let run = start_with(&h, false, setup).await;
    wait_state(&mut h, status::State::Connected).await;
    let first = manifest(&mut h, &run.key).await;
    let paired = first["pairedAt"].as_i64().expect("pairedAt");
    assert!(
        (linked - 5_000..=linked).contains(&paired),
        "the store's creation, not this connection: {paired} vs {linked}"
    );
    let times = |h: &mut Harness| {
        let mut con = h.con.clone();
        async move {
            let t: (i64, i64) = redis::cmd("HMGET")
                .arg(schema::session_key(USER))
                .arg("connectedAt")
                .arg("expiresAt")
                .query_async(&mut con)
                .await
                .expect("times");
            t
        }
    };
    let (connected_at, expires_at) = times(&mut h).await;
    assert!(connected_at >= linked + 1_000, "{connected_at}");
    let _: () = h
        .con
        .expire(schema::session_key(USER), 100)
        .await
        .expect("expire");
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let ttl: i64 = h.con.ttl(schema::session_key(USER)).await.expect("ttl");
    assert!(ttl > 86_000, "the TTL is renewed: {ttl}");
    let (connected_again, expires_again) = times(&mut h).await;
    assert_eq!(connected_again, connected_at);
    assert!(
        expires_again > expires_at,
        "expiresAt moves with the TTL: {expires_at} then {expires_again}"
    );
    assert_eq!(manifest(&mut h, &run.key).await, first);
    run.finish().await;
}

#[tokio::test]
async fn logging_out_deletes_the_store_and_the_session_and_shows_a_code_again() {
    let mut h = Harness::start().await;
    let run = start(&h, true).await;
    wait_state(&mut h, status::State::Connected).await;
    let session: bool = h
        .con
        .exists(schema::session_key(USER))
        .await
        .expect("exists");
    assert!(session);
    run.fake
        .emit(LinkEvent::LoggedOut {
            reason: "the device was unlinked".into(),
        })
        .await;
    wait_state(&mut h, status::State::WaitingForScan).await;
    assert!(!run.fake.has_store(), "store deleted");
    let session: bool = h
        .con
        .exists(schema::session_key(USER))
        .await
        .expect("exists");
    assert!(!session, "SESSION deleted");
    let qr: bool = h.con.exists(schema::qr_key(USER)).await.expect("exists");
    assert!(qr, "a new login code is up");
    assert_eq!(run.fake.record.lock().expect("lock").connects, 2);
    run.finish().await;
}

#[tokio::test]
async fn a_replaced_stream_stops_the_gateway_and_used_up_codes_wait_for_the_operator() {
    let mut h = Harness::start().await;
    let setup = Setup {
        refresh: Duration::from_millis(200),
        ..Setup::default()
    };
    let run = start_with(&h, false, setup).await;
    wait_state(&mut h, status::State::WaitingForScan).await;
    run.fake.emit(LinkEvent::CodesExhausted).await;
    let waiting = wait_state(&mut h, status::State::CodesExhausted).await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    // Refreshed (the TTL renewed) but the same state: nobody watching sees news.
    assert_eq!(state(&mut h).await, Some(waiting.clone()));
    assert!(
        waiting
            .detail
            .as_deref()
            .unwrap_or("")
            .contains("GATEWAYREQ:"),
        "{waiting:?}"
    );
    assert_eq!(
        run.fake.record.lock().expect("lock").connects,
        1,
        "no new codes unasked"
    );
    let _: () = h
        .con
        .set(schema::gateway_request_key(USER), status::REQUEST_NEW_CODES)
        .await
        .expect("ask");
    wait_state(&mut h, status::State::WaitingForScan).await;
    assert_eq!(run.fake.record.lock().expect("lock").connects, 2);
    run.fake.emit(LinkEvent::StreamReplaced).await;
    let exit = tokio::time::timeout(Duration::from_secs(5), run.task)
        .await
        .expect("stops")
        .expect("join")
        .expect("run");
    assert_eq!(exit, Exit::Replaced);
    assert_eq!(
        state(&mut h).await.map(|s| s.state),
        Some(status::State::Replaced)
    );
}

/// A second press of the new-codes key, landing after the gateway took the
/// first, is dropped when codes show or run out, so it starts no round later.
#[tokio::test]
async fn a_second_press_for_new_codes_starts_no_round_unasked() {
    let mut h = Harness::start().await;
    let run = start_with(
        &h,
        false,
        Setup {
            refresh: Duration::from_millis(200),
            ..Setup::default()
        },
    )
    .await;
    wait_state(&mut h, status::State::WaitingForScan).await;
    run.fake.emit(LinkEvent::CodesExhausted).await;
    wait_state(&mut h, status::State::CodesExhausted).await;
    let press = |h: &mut Harness| {
        let mut con = h.con.clone();
        async move {
            let _: () = con
                .set_ex(
                    schema::gateway_request_key(USER),
                    status::REQUEST_NEW_CODES,
                    300,
                )
                .await
                .expect("ask");
        }
    };
    press(&mut h).await;
    wait_state(&mut h, status::State::WaitingForScan).await;
    assert_eq!(run.fake.record.lock().expect("lock").connects, 2);
    // The second press, late: the next code drops it.
    press(&mut h).await;
    run.fake
        .emit(LinkEvent::Qr {
            code: "2@second".into(),
            expires_in: 20,
        })
        .await;
    let con = h.con.clone();
    eventually(Duration::from_secs(5), || {
        let mut con = con.clone();
        async move {
            let asked: bool = con.exists(schema::gateway_request_key(USER)).await.ok()?;
            (!asked).then_some(())
        }
    })
    .await
    .expect("the stale request is dropped when a code shows");
    // Again, and the codes run out at once: dropped too, no new round.
    press(&mut h).await;
    run.fake.emit(LinkEvent::CodesExhausted).await;
    wait_state(&mut h, status::State::CodesExhausted).await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(
        state(&mut h).await.map(|s| s.state),
        Some(status::State::CodesExhausted)
    );
    assert_eq!(
        run.fake.record.lock().expect("lock").connects,
        2,
        "no round unasked"
    );
    let asked: bool = h
        .con
        .exists(schema::gateway_request_key(USER))
        .await
        .expect("exists");
    assert!(!asked);
    run.finish().await;
}
