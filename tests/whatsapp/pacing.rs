//! How fast replies go: "typing..." capped at a minute, and a send budget
//! kept across reconnects.

use std::time::Duration;

use redis::AsyncCommands;
use secondme::bridge::whatsapp::{pacing, status};
use secondme::schema;

use crate::common::{Harness, eventually};
use crate::fake::FakeConnector;
use crate::setup::{CONTACT, Running, Setup, USER, met_a_contact, queue_text};

/// A reply's "typing..." lasts its `delayMs`, at most a minute: a huge one
/// (hostile or a bug) would hold every later reply behind it.
#[test]
fn the_typing_delay_is_capped_at_a_minute() {
    assert_eq!(pacing::MAX_TYPING_DELAY, Duration::from_secs(60));
    assert_eq!(pacing::typing_delay("1500"), Duration::from_millis(1500));
    assert_eq!(pacing::typing_delay("60000"), Duration::from_secs(60));
    assert_eq!(pacing::typing_delay("60001"), pacing::MAX_TYPING_DELAY);
    assert_eq!(
        pacing::typing_delay(&u64::MAX.to_string()),
        pacing::MAX_TYPING_DELAY
    );
    assert_eq!(
        pacing::typing_delay("99999999999999999999999"),
        Duration::ZERO
    );
    assert_eq!(pacing::typing_delay("-5"), Duration::ZERO);
    assert_eq!(pacing::typing_delay(""), Duration::ZERO);
}

/// Waits until `run`'s fake made its `n`-th connection and the gateway shows it connected.
async fn connected_again(h: &mut Harness, run: &Running, n: usize) {
    let con = h.con.clone();
    let fake = run.fake.clone();
    eventually(Duration::from_secs(5), || {
        let mut con = con.clone();
        let connects = fake.record.lock().expect("lock").connects;
        async move {
            let json: Option<String> = con.get(schema::gateway_key(USER)).await.ok()?;
            let s: status::GatewayStatus = serde_json::from_str(&json?).ok()?;
            (connects == n && s.state == status::State::Connected).then_some(())
        }
    })
    .await
    .unwrap_or_else(|| panic!("connection {n} never came"));
}

/// How many sends `fake` was asked for.
fn sends(fake: &FakeConnector) -> usize {
    fake.calls()
        .iter()
        .filter(|c| c.starts_with("send "))
        .count()
}

/// The send budget belongs to the gateway's run, not to one connection: a
/// connection that drops and comes back three times within a minute sends no
/// more than `send_per_minute` in that minute.
#[tokio::test]
async fn a_flapping_connection_sends_no_more_than_the_budget_in_a_minute() {
    let mut h = Harness::start().await;
    h.allow(&[CONTACT]).await;
    let setup = Setup {
        send_per_minute: 2,
        ..Setup::default()
    };
    let run = met_a_contact(&mut h, setup, "are you free?").await;
    let started = std::time::Instant::now();
    for n in 0..6 {
        queue_text(&mut h, &format!("bot_R{n}"), &format!("reply {n}"), 0).await;
    }
    let fake = run.fake.clone();
    eventually(Duration::from_secs(8), || {
        let n = sends(&fake);
        async move { (n >= 2).then_some(()) }
    })
    .await
    .expect("the budget's two replies go at once");
    for connection in 2..=4 {
        run.fake.drop_link();
        connected_again(&mut h, &run, connection).await;
        // Long enough for a new connection's sender to send whatever it may.
        tokio::time::sleep(Duration::from_millis(1500)).await;
    }
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "within the half minute the next token needs"
    );
    assert_eq!(sends(&run.fake), 2, "{:?}", run.fake.calls());
    run.finish().await;
}
