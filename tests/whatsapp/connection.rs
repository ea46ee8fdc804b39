//! A connection's troubles as `GATEWAY:{userId}` shows them: a ban, a lost
//! connection and the reconnect backoff, each kept fresh while it lasts.

use std::time::Duration;

use redis::AsyncCommands;
use secondme::bridge::whatsapp::link::LinkEvent;
use secondme::bridge::whatsapp::status;
use secondme::schema;

use crate::common::{Harness, eventually};
use crate::setup::{Setup, USER, start, start_with, state, wait_state};

#[tokio::test]
async fn a_temporary_ban_is_shown_and_waited_out() {
    let mut h = Harness::start().await;
    let run = start(&h, true).await;
    wait_state(&mut h, status::State::Connected).await;
    let until = secondme::store::now_ms() + 1_500;
    run.fake
        .emit(LinkEvent::TemporaryBan {
            until_ms: until,
            reason: "101".into(),
        })
        .await;
    let s = wait_state(&mut h, status::State::Banned).await;
    assert_eq!(s.until, Some(until));
    assert_eq!(run.fake.record.lock().expect("lock").connects, 1);
    tokio::time::sleep(Duration::from_millis(2_000)).await;
    wait_state(&mut h, status::State::Connected).await;
    assert!(secondme::store::now_ms() >= until);
    assert_eq!(
        run.fake.record.lock().expect("lock").connects,
        2,
        "one new connection once the ban is over"
    );
    run.finish().await;
}

/// `GATEWAY:{userId}` is rewritten during a wait longer than its TTL, unchanged.
async fn assert_kept_fresh(h: &mut Harness, shown: &status::GatewayStatus, wait: Duration) {
    let _: () = h
        .con
        .expire(schema::gateway_key(USER), 5)
        .await
        .expect("expire");
    tokio::time::sleep(wait).await;
    let ttl: i64 = h.con.ttl(schema::gateway_key(USER)).await.expect("ttl");
    assert!(ttl > 80, "the TTL is renewed: {ttl}");
    assert_eq!(state(h).await.as_ref(), Some(shown), "the same state");
}

#[tokio::test]
async fn a_long_ban_keeps_its_state_fresh_and_unchanged() {
    let mut h = Harness::start().await;
    let run = start_with(
        &h,
        true,
        Setup {
            refresh: Duration::from_millis(150),
            ..Setup::default()
        },
    )
    .await;
    wait_state(&mut h, status::State::Connected).await;
    run.fake
        .emit(LinkEvent::TemporaryBan {
            until_ms: secondme::store::now_ms() + 3_000,
            reason: "101".into(),
        })
        .await;
    let banned = wait_state(&mut h, status::State::Banned).await;
    assert_kept_fresh(&mut h, &banned, Duration::from_millis(500)).await;
    assert_kept_fresh(&mut h, &banned, Duration::from_millis(500)).await;
    run.finish().await;
}

#[tokio::test]
async fn a_lost_connection_and_the_reconnect_backoff_keep_their_state_fresh_and_unchanged() {
    let mut h = Harness::start().await;
    let run = start_with(
        &h,
        true,
        Setup {
            refresh: Duration::from_millis(150),
            ..Setup::default()
        },
    )
    .await;
    wait_state(&mut h, status::State::Connected).await;
    run.fake.record.lock().expect("lock").fail_connect = true;
    run.fake.drop_link();
    // Lost: 1 s before the next try.
    let lost = wait_state(&mut h, status::State::Reconnecting).await;
    assert!(lost.next_try.is_some(), "{lost:?}");
    assert_kept_fresh(&mut h, &lost, Duration::from_millis(400)).await;
    // That try fails: 2 s before the next.
    let con = h.con.clone();
    let refused = eventually(Duration::from_secs(5), || {
        let mut con = con.clone();
        async move {
            let json: Option<String> = con.get(schema::gateway_key(USER)).await.ok()?;
            let s: status::GatewayStatus = serde_json::from_str(&json?).ok()?;
            s.detail
                .as_deref()
                .is_some_and(|d| d.contains("connection refused"))
                .then_some(s)
        }
    })
    .await
    .expect("the failed reconnect shown");
    assert_eq!(refused.state, status::State::Reconnecting);
    assert_kept_fresh(&mut h, &refused, Duration::from_millis(600)).await;
    assert_eq!(run.fake.record.lock().expect("lock").connects, 2);
    run.finish().await;
}

/// The reconnect backoff starts over after a connection: a loss after
/// reconnecting waits 1 s again, not twice the last wait.
#[tokio::test]
async fn the_reconnect_backoff_starts_over_once_connected() {
    let mut h = Harness::start().await;
    let run = start(&h, true).await;
    wait_state(&mut h, status::State::Connected).await;
    run.fake.drop_link();
    let lost = wait_state(&mut h, status::State::Reconnecting).await;
    let first_wait = lost.next_try.expect("next try") - lost.since;
    assert!((900..=1100).contains(&first_wait), "{lost:?}");
    let con = h.con.clone();
    let fake = run.fake.clone();
    eventually(Duration::from_secs(5), || {
        let mut con = con.clone();
        let connects = fake.record.lock().expect("lock").connects;
        async move {
            let json: Option<String> = con.get(schema::gateway_key(USER)).await.ok()?;
            let s: status::GatewayStatus = serde_json::from_str(&json?).ok()?;
            (connects == 2 && s.state == status::State::Connected).then_some(())
        }
    })
    .await
    .expect("connected again");
    run.fake.drop_link();
    let again = wait_state(&mut h, status::State::Reconnecting).await;
    let second_wait = again.next_try.expect("next try") - again.since;
    assert!(
        (900..=1100).contains(&second_wait),
        "1 s again after a connection: {again:?}"
    );
    run.finish().await;
}

/// Failed connections in a row keep the `since` of the loss that began the
/// trouble.
#[tokio::test]
async fn failed_reconnects_keep_the_time_the_trouble_began() {
    let mut h = Harness::start().await;
    let run = start(&h, true).await;
    wait_state(&mut h, status::State::Connected).await;
    run.fake.record.lock().expect("lock").fail_connect = true;
    run.fake.drop_link();
    let lost = wait_state(&mut h, status::State::Reconnecting).await;
    // Two tries fail (after 1 s, then 2 s more).
    let con = h.con.clone();
    let fake = run.fake.clone();
    let after = eventually(Duration::from_secs(8), || {
        let mut con = con.clone();
        let connects = fake.record.lock().expect("lock").connects;
        async move {
            let json: Option<String> = con.get(schema::gateway_key(USER)).await.ok()?;
            let s: status::GatewayStatus = serde_json::from_str(&json?).ok()?;
            (connects == 3 && s.detail.as_deref() == Some("connection refused")).then_some(s)
        }
    })
    .await
    .expect("two failed reconnects");
    assert_eq!(after.state, status::State::Reconnecting);
    assert_eq!(
        after.since, lost.since,
        "since the loss: {lost:?} {after:?}"
    );
    run.finish().await;
}
