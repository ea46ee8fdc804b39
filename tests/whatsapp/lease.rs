//! The lease `GATEWAYLOCK:{userId}`: one gateway of an account connects and
//! sends, the others stand by; it hands over at a stop or a crash, and never
//! renews or releases another's lease.

use std::time::{Duration, Instant};

use redis::AsyncCommands;
use secondme::bridge::whatsapp::{lease, status};
use secondme::schema;

use crate::common::{Harness, eventually};
use crate::setup::{
    CONTACT, Running, Setup, USER, inbound, met_a_contact, pending_replies, queue_text, send_ids,
    sent_times, start_with, state, wait_state,
};

/// The reply lease's holder as the test sees it: `GATEWAYLOCK:{userId}`'s value.
async fn lease_holder(h: &mut Harness) -> Option<String> {
    h.con
        .get(schema::gateway_lock_key(USER))
        .await
        .expect("GET lease")
}

/// Connections `run`'s fake made (or tried).
fn connects(run: &Running) -> usize {
    run.fake.record.lock().expect("lock").connects
}

/// Waits until `run` has connected `n` times; how long that took from `since`.
async fn connected_times(run: &Running, n: usize, since: Instant) -> Duration {
    let fake = run.fake.clone();
    eventually(Duration::from_secs(15), || {
        let made = fake.record.lock().expect("lock").connects;
        async move { (made >= n).then(|| since.elapsed()) }
    })
    .await
    .unwrap_or_else(|| panic!("{n} connections: {:?}", run.fake.calls()))
}

/// `to` sees the contacts `from` met, as two hosts sharing one `whatsapp_dir`
/// do (the device store both use is there too).
fn share_contacts(from: &Running, to: &Running) {
    std::fs::copy(
        from._dir.join("contacts.json"),
        to._dir.join("contacts.json"),
    )
    .expect("contacts file");
}

/// Two gateways of one account (same user, same consumer name, one pending
/// list, the contacts on storage both reach): only the holder of
/// `GATEWAYLOCK:{userId}` connects to WhatsApp and sends, each attempt of a
/// failing reply goes out once and with one WhatsApp id; the other stands by
/// without connecting, shown where no connected gateway's state is, and
/// connects and takes over when the first stops (the lease released at once)
/// or crashes (the lease expired: within its TTL and one retry).
#[tokio::test]
async fn only_the_lease_holder_connects_and_a_standby_gateway_takes_over_at_a_stop_or_a_crash() {
    let mut h = Harness::start().await;
    h.allow(&[CONTACT]).await;
    let ttl = Duration::from_secs(3);
    let setup = || Setup {
        fail_text: Some("will fail".into()),
        send_attempts: 50,
        send_retry: Duration::from_millis(300),
        lease_ttl: ttl,
        ..Setup::default()
    };
    let first = start_with(&h, true, setup()).await;
    wait_state(&mut h, status::State::Connected).await;
    let holder = lease_holder(&mut h)
        .await
        .expect("the first holds the lease");
    first
        .fake
        .inbox()
        .commit(&[inbound("A1", "dinner?")])
        .await
        .expect("commit");
    let second = start_with(&h, true, setup()).await;
    share_contacts(&first, &second);
    // Longer than a try of the lease and a renewal of the first's.
    tokio::time::sleep(lease::RETRY + Duration::from_millis(500)).await;
    assert_eq!(connects(&second), 0, "the second does not connect");
    assert_eq!(
        state(&mut h).await.map(|s| s.state),
        Some(status::State::Connected),
        "the state shown stays the connected gateway's"
    );
    let _: () = h.con.del(schema::gateway_key(USER)).await.expect("DEL");
    let standby = wait_state(&mut h, status::State::Standby).await;
    assert!(
        standby
            .detail
            .is_some_and(|d| d.contains("GATEWAYLOCK:user-1")),
        "it says why it waits"
    );

    queue_text(&mut h, "bot_A1", "will fail", 0).await;
    let ids = sent_times(&first, "will fail", 3).await;
    assert_eq!(
        send_ids(&second.fake.calls(), "will fail"),
        Vec::<String>::new()
    );
    assert_eq!(lease_holder(&mut h).await, Some(holder.clone()));

    // A clean stop releases the lease: the second connects at its next try.
    let _ = first.stop.send(true);
    let _ = first.task.await;
    let stopped = Instant::now();
    assert_ne!(
        lease_holder(&mut h).await,
        Some(holder.clone()),
        "released at the stop"
    );
    let took = connected_times(&second, 1, stopped).await;
    assert!(took <= lease::RETRY + Duration::from_secs(1), "{took:?}");
    let by_first = send_ids(&first.fake.calls(), "will fail");
    assert!(
        first.fake.calls().iter().any(|c| c == "shutdown"),
        "the first disconnected"
    );
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

    // A crash leaves the lease to expire; then the third, standing by, connects.
    let third = start_with(&h, true, setup()).await;
    share_contacts(&second, &third);
    tokio::time::sleep(lease::RETRY + Duration::from_millis(500)).await;
    assert_eq!(connects(&third), 0, "the third stands by");
    second.task.abort();
    let _ = second.task.await;
    let crashed = Instant::now();
    let took = connected_times(&third, 1, crashed).await;
    // The lease had between a renewal's period and its TTL left.
    assert!(
        took >= ttl / 3 - Duration::from_millis(200),
        "kept until it expired: {took:?}"
    );
    assert!(
        took <= ttl + lease::RETRY + Duration::from_secs(1),
        "taken over within the lease's TTL and one retry: {took:?}"
    );
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
/// gateway clears the typing, sends nothing, and disconnects from WhatsApp
/// (two gateways never hold one session), showing that it stands by; once the
/// lease is free it connects again, and each reply goes once.
#[tokio::test]
async fn a_lease_lost_while_typing_clears_the_typing_sends_nothing_and_disconnects() {
    let mut h = Harness::start().await;
    h.allow(&[CONTACT]).await;
    let run = met_a_contact(
        &mut h,
        Setup {
            refresh: Duration::from_millis(300),
            lease_ttl: Duration::from_secs(3),
            ..Setup::default()
        },
        "where are you?",
    )
    .await;
    let lease = schema::gateway_lock_key(USER);
    assert!(
        lease_holder(&mut h).await.is_some(),
        "taken before connecting"
    );
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
    // The lease check (every second with this TTL) sees it; the typing ends
    // within a second, then the connection.
    let standby = wait_state(&mut h, status::State::Standby).await;
    assert!(
        standby
            .detail
            .is_some_and(|d| d.contains("GATEWAYLOCK:user-1"))
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
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
    let shutdown = calls
        .iter()
        .position(|c| c == "shutdown")
        .unwrap_or_else(|| panic!("disconnected: {calls:?}"));
    assert!(
        last_typing < shutdown,
        "cleared before disconnecting: {calls:?}"
    );
    assert_eq!(connects(&run), 1, "not connected again meanwhile");
    assert_eq!(pending_replies(&mut h).await, 2);
    let letters: usize = h.con.xlen(schema::queue_deadletter()).await.expect("xlen");
    assert_eq!(letters, 0);
    assert_eq!(
        lease_holder(&mut h).await.as_deref(),
        Some("another-gateway")
    );

    // The lease free again: it connects, the reply types its whole delay again, then goes.
    let _: () = h.con.del(&lease).await.expect("DEL");
    let freed = Instant::now();
    let took = connected_times(&run, 2, freed).await;
    assert!(took <= lease::RETRY + Duration::from_secs(1), "{took:?}");
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
