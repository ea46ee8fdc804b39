//! The reply lease `GATEWAYLOCK:{userId}`: one gateway of an account sends,
//! hands over at a stop or a crash, and never renews or releases another's lease.

use std::time::Duration;

use redis::AsyncCommands;
use secondme::bridge::whatsapp::status;
use secondme::schema;

use crate::common::{Harness, eventually};
use crate::setup::{
    CONTACT, Setup, USER, inbound, met_a_contact, pending_replies, queue_text, send_ids,
    sent_times, start_with, wait_state,
};

/// The reply lease's holder as the test sees it: `GATEWAYLOCK:{userId}`'s value.
async fn lease_holder(h: &mut Harness) -> Option<String> {
    h.con
        .get(schema::gateway_lock_key(USER))
        .await
        .expect("GET lease")
}

/// Two gateways of one account (same user, same consumer name, one pending
/// list): only the holder of `GATEWAYLOCK:{userId}` sends, each attempt of a
/// failing reply goes out once and with one WhatsApp id; the other says it
/// waits, and takes over when the first stops (the lease released) or crashes
/// (the lease expired).
#[tokio::test]
async fn two_gateways_of_one_account_send_each_attempt_once_and_hand_over_by_the_lease() {
    let mut h = Harness::start().await;
    h.allow(&[CONTACT]).await;
    let setup = || Setup {
        fail_text: Some("will fail".into()),
        send_attempts: 50,
        send_retry: Duration::from_millis(300),
        ..Setup::default()
    };
    let first = start_with(&h, true, setup()).await;
    wait_state(&mut h, status::State::Connected).await;
    let con = h.con.clone();
    let holder = eventually(Duration::from_secs(5), || {
        let mut con = con.clone();
        async move {
            let v: Option<String> = con.get(schema::gateway_lock_key(USER)).await.ok()?;
            v
        }
    })
    .await
    .expect("the first gateway takes the lease");
    let second = start_with(&h, true, setup()).await;
    let waiting = eventually(Duration::from_secs(5), || {
        let mut con = con.clone();
        async move {
            let json: Option<String> = con.get(schema::gateway_key(USER)).await.ok()?;
            let s: status::GatewayStatus = serde_json::from_str(&json?).ok()?;
            s.detail
                .filter(|d| d.contains("GATEWAYLOCK:user-1") && d.contains("waits"))
        }
    })
    .await;
    assert!(waiting.is_some(), "the second says it waits");
    for run in [&first, &second] {
        run.fake
            .inbox()
            .commit(&[inbound("A1", "dinner?")])
            .await
            .expect("commit");
    }
    queue_text(&mut h, "bot_A1", "will fail", 0).await;
    let ids = sent_times(&first, "will fail", 3).await;
    assert_eq!(
        send_ids(&second.fake.calls(), "will fail"),
        Vec::<String>::new()
    );
    assert_eq!(lease_holder(&mut h).await, Some(holder.clone()));

    // A clean stop releases the lease: the second takes over at once.
    let _ = first.stop.send(true);
    let _ = first.task.await;
    let by_first = send_ids(&first.fake.calls(), "will fail");
    let taken = sent_times(&second, "will fail", 1).await;
    assert_eq!(taken[0], ids[0], "the same WhatsApp id");
    let held = lease_holder(&mut h).await;
    assert!(held.is_some() && held != Some(holder), "{held:?}");
    let attempts: Option<usize> = h
        .con
        .hget("SENDFAIL:bot_A1", "attempts")
        .await
        .expect("attempts");
    let by_second = send_ids(&second.fake.calls(), "will fail");
    assert_eq!(
        attempts,
        Some(by_first.len() + by_second.len()),
        "one send per attempt: {by_first:?} then {by_second:?}"
    );

    // A crash leaves the lease until it expires; then the third takes over.
    let third = start_with(&h, true, setup()).await;
    let fake = third.fake.clone();
    eventually(Duration::from_secs(5), || {
        let up = fake.record.lock().expect("lock").inbox.is_some();
        async move { up.then_some(()) }
    })
    .await
    .expect("the third connects");
    third
        .fake
        .inbox()
        .commit(&[inbound("A1", "dinner?")])
        .await
        .expect("commit");
    second.task.abort();
    let _ = second.task.await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(
        send_ids(&third.fake.calls(), "will fail"),
        Vec::<String>::new()
    );
    let ttl: i64 = h
        .con
        .pttl(schema::gateway_lock_key(USER))
        .await
        .expect("pttl");
    assert!((1..=90_000).contains(&ttl), "kept until it expires: {ttl}");
    // Its 90 s run out.
    let _: bool = h
        .con
        .pexpire(schema::gateway_lock_key(USER), 1)
        .await
        .expect("pexpire");
    let taken = sent_times(&third, "will fail", 1).await;
    assert_eq!(taken[0], ids[0], "still the same WhatsApp id");
    third.finish().await;
    assert_eq!(
        lease_holder(&mut h).await,
        None,
        "released at the clean stop"
    );
}

/// The lease taken by another gateway while a reply shows "typing...": the
/// reply is not sent, its "typing..." is cleared, nothing more is typed, sent
/// or dead-lettered without the lease; once it is back, each reply goes once.
#[tokio::test]
async fn a_lease_lost_while_typing_sends_nothing_and_clears_the_typing() {
    let mut h = Harness::start().await;
    h.allow(&[CONTACT]).await;
    let run = met_a_contact(
        &mut h,
        Setup {
            refresh: Duration::from_millis(300),
            ..Setup::default()
        },
        "where are you?",
    )
    .await;
    let lease = schema::gateway_lock_key(USER);
    eventually(Duration::from_secs(5), || {
        let mut con = h.con.clone();
        let lease = lease.clone();
        async move { con.exists::<_, bool>(&lease).await.ok()?.then_some(()) }
    })
    .await
    .expect("the lease taken");
    // Typing longer than the wait below: it must end when the lease goes.
    queue_text(&mut h, "bot_A1", "on my way", 8_000).await;
    queue_text(&mut h, "bot_A2", "see you", 0).await;
    let fake = run.fake.clone();
    eventually(Duration::from_secs(5), || {
        let typing = fake.calls().iter().any(|c| c.starts_with("composing"));
        async move { typing.then_some(()) }
    })
    .await
    .expect("typing");
    let _: () = h.con.set(&lease, "another-gateway").await.expect("SET");
    // The lease check (every 2 s) sees it; the typing ends within a second.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let calls = run.fake.calls();
    assert!(
        !calls.iter().any(|c| c.starts_with("send")),
        "nothing sent without the lease: {calls:?}"
    );
    let last_typing = calls
        .iter()
        .rposition(|c| c.starts_with("composing") || c.starts_with("paused"))
        .expect("typing calls");
    assert!(
        calls[last_typing].starts_with("paused"),
        "typing cleared and not shown again: {calls:?}"
    );
    assert_eq!(pending_replies(&mut h).await, 2);
    let letters: usize = h.con.xlen(schema::queue_deadletter()).await.expect("xlen");
    assert_eq!(letters, 0);

    // Back with the lease, the reply types its whole delay again, then goes.
    let _: () = h.con.del(&lease).await.expect("DEL");
    let fake = run.fake.clone();
    eventually(Duration::from_secs(20), || {
        let calls = fake.calls();
        let both =
            !send_ids(&calls, "on my way").is_empty() && !send_ids(&calls, "see you").is_empty();
        async move { both.then_some(()) }
    })
    .await
    .expect("both sent once the lease is back");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(send_ids(&run.fake.calls(), "on my way").len(), 1);
    assert_eq!(send_ids(&run.fake.calls(), "see you").len(), 1);
    assert_eq!(pending_replies(&mut h).await, 0);
    run.finish().await;
}

/// The lease is never renewed for, nor released from under, another gateway:
/// a release leaves another's lease and one of ours about to expire.
#[tokio::test]
async fn the_lease_is_never_renewed_or_released_for_another_gateway() {
    use secondme::bridge::whatsapp::lease::Lease;
    let mut h = Harness::start().await;
    let key = schema::gateway_lock_key(USER);
    let ours = Lease::new(USER);
    assert!(ours.hold(&mut h.con).await.expect("take"));
    assert!(ours.hold(&mut h.con).await.expect("renew"));
    let ttl: i64 = h.con.pttl(&key).await.expect("pttl");
    assert!(ttl > 80_000, "{ttl}");

    let _: () = h.con.set_ex(&key, "other", 60).await.expect("SET");
    assert!(!ours.hold(&mut h.con).await.expect("check"));
    ours.release(&mut h.con).await.expect("release");
    assert_eq!(lease_holder(&mut h).await.as_deref(), Some("other"));

    let _: () = h.con.del(&key).await.expect("DEL");
    assert!(ours.hold(&mut h.con).await.expect("take"));
    let _: bool = h.con.pexpire(&key, 2000).await.expect("pexpire");
    ours.release(&mut h.con).await.expect("release");
    let left: i64 = h.con.pttl(&key).await.expect("pttl");
    assert!(
        left > 0,
        "a lease about to expire is left to expire: {left}"
    );

    let _: () = h.con.del(&key).await.expect("DEL");
    assert!(ours.hold(&mut h.con).await.expect("take"));
    ours.release(&mut h.con).await.expect("release");
    assert_eq!(lease_holder(&mut h).await, None, "released");
}
