//! `replicas_to_wait` in the gateway, against a real primary and its replica:
//! WhatsApp is told we have a message only once the replica holds it, and a
//! reply is sent only once its claim is on the replica.

use std::time::{Duration, Instant};

use redis::AsyncCommands;
use secondme::connection::{self, Con};
use secondme::schema;
use secondme::store::durability::WAIT_TIMEOUT;

use crate::common::replicated::Replicated;
use crate::common::{Harness, eventually, nodes};
use crate::setup::{CONTACT, Running, Setup, inbound, queue_text_on, send_ids, start_with};

/// A connection to `topo`'s primary with the twin allowed to answer [`CONTACT`].
async fn primary(topo: &Replicated) -> Con {
    let client = connection::open_client(&topo.url()).expect("client");
    let mut con = connection::manager(&client, None).await.expect("connect");
    let _: () = con.set(schema::state_marker(), "1").await.expect("marker");
    secondme::store::optin::set_enabled(&mut con, &[CONTACT.to_owned()], true)
        .await
        .expect("enable");
    con
}

/// A test gateway writing through `con` and waiting for its one replica, started.
async fn waiting_gateway(h: &Harness, con: &Con) -> Running {
    start_with(
        h,
        true,
        Setup {
            con: Some(con.clone()),
            replicas_to_wait: 1,
            ..Setup::default()
        },
    )
    .await
}

/// A test gateway writing to `topo` and waiting for its one replica, once connected.
async fn gateway(h: &Harness, con: &Con) -> Running {
    let run = waiting_gateway(h, con).await;
    let fake = run.fake.clone();
    eventually(Duration::from_secs(5), || {
        let up = fake.record.lock().expect("lock").inbox.is_some();
        async move { up.then_some(()) }
    })
    .await
    .expect("connected");
    run
}

/// Message ids in `QUEUE:messages` on the node at `port`, read there.
async fn messages_on(port: u16) -> Vec<String> {
    let mut con = nodes::connect(port).await.expect("connect to the node");
    let reply: redis::streams::StreamRangeReply = con
        .xrange_all(schema::queue_messages())
        .await
        .expect("XRANGE");
    reply
        .ids
        .iter()
        .map(|e| e.get::<String>("messageId").unwrap_or_default())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_from_whatsapp_is_acknowledged_only_once_the_replica_holds_it() {
    let h = Harness::start().await;
    let topo = Replicated::start().await;
    let con = primary(&topo).await;
    let run = gateway(&h, &con).await;
    // What the durability hook calls: Ok acknowledges the batch to WhatsApp.
    let inbox = run.fake.inbox();
    inbox
        .commit(&[inbound("A1", "dinner?")])
        .await
        .expect("confirmed on the replica");
    let a1 = format!("{CONTACT}.A1");
    assert_eq!(
        messages_on(topo.replica.port()).await,
        std::slice::from_ref(&a1),
        "on the replica when WhatsApp is told"
    );

    topo.process.pause();
    let started = Instant::now();
    let refused = inbox.commit(&[inbound("A2", "still on?")]).await;
    let took = started.elapsed();
    topo.process.resume();
    let e = refused.expect_err("not acknowledged without the replica");
    assert!(
        format!("{e:#}").contains("WhatsApp delivers them again"),
        "{e:#}"
    );
    assert!(took >= WAIT_TIMEOUT, "it waited for the replica: {took:?}");
    let a2 = format!("{CONTACT}.A2");
    assert_eq!(
        messages_on(topo.primary.port()).await,
        [a1.clone(), a2.clone()],
        "written on the primary all the same"
    );
    // WhatsApp delivers it again: confirmed this time (the worker answers it once).
    inbox
        .commit(&[inbound("A2", "still on?")])
        .await
        .expect("confirmed");
    assert_eq!(messages_on(topo.replica.port()).await, [a1, a2.clone(), a2]);
    run.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_goes_only_once_its_claim_is_on_the_replica() {
    let h = Harness::start().await;
    let topo = Replicated::start().await;
    let mut con = primary(&topo).await;
    let run = gateway(&h, &con).await;
    run.fake
        .inbox()
        .commit(&[inbound("A1", "dinner?")])
        .await
        .expect("commit");

    topo.process.pause();
    queue_text_on(&mut con, "bot_A1", "see you at 8", 0).await;
    let claim_key = schema::sent_reply_key("bot_A1");
    let claim = eventually(Duration::from_secs(5), || {
        let mut con = con.clone();
        let key = claim_key.clone();
        async move { con.get::<_, Option<String>>(&key).await.ok().flatten() }
    })
    .await
    .expect("the reply is claimed on the primary");
    assert!(claim.starts_with("sending:"), "{claim}");
    // Its WAIT fails after WAIT_TIMEOUT: nothing is sent meanwhile.
    tokio::time::sleep(WAIT_TIMEOUT + Duration::from_millis(500)).await;
    let calls = run.fake.calls();
    assert!(
        !calls.iter().any(|c| c.starts_with("send")),
        "not sent before the claim is on the replica: {calls:?}"
    );

    topo.process.resume();
    let fake = run.fake.clone();
    let ids = eventually(Duration::from_secs(10), || {
        let ids = send_ids(&fake.calls(), "see you at 8");
        async move { (!ids.is_empty()).then_some(ids) }
    })
    .await
    .expect("sent once the replica is back");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        send_ids(&run.fake.calls(), "see you at 8"),
        ids,
        "sent once"
    );
    assert_eq!(
        claim,
        format!("sending:{CONTACT}.{}", ids[0]),
        "under the WhatsApp id it claimed"
    );
    let sent: Option<String> = con.get(&claim_key).await.expect("GET");
    assert_eq!(sent, Some(format!("{CONTACT}.{}", ids[0])));
    run.finish().await;
}

/// How many times "typing..." was shown so far.
fn typing_shown(run: &Running) -> usize {
    run.fake
        .calls()
        .iter()
        .filter(|c| c.starts_with("composing"))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_the_inbox_waits_for_a_lagging_replica_the_gateways_other_commands_go_on() {
    let h = Harness::start().await;
    let topo = Replicated::start().await;
    let mut con = primary(&topo).await;
    let run = gateway(&h, &con).await;
    let inbox = run.fake.inbox();
    topo.process.pause();
    let waiting = tokio::spawn(async move { inbox.commit(&[inbound("A1", "dinner?")]).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    // The connection the lease is renewed on: its WAIT would hold this up to WAIT_TIMEOUT.
    let started = Instant::now();
    let _: () = redis::cmd("PING")
        .query_async(&mut con)
        .await
        .expect("PING");
    let took = started.elapsed();
    let refused = waiting.await.expect("join");
    topo.process.resume();
    assert!(refused.is_err(), "not confirmed without the replica");
    assert!(
        took < Duration::from_millis(1000),
        "the shared connection answered while the inbox waited: {took:?}"
    );
    run.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_whose_claim_waits_for_the_replica_shows_typing_once_not_at_every_try() {
    let h = Harness::start().await;
    let topo = Replicated::start().await;
    let mut con = primary(&topo).await;
    let run = gateway(&h, &con).await;
    run.fake
        .inbox()
        .commit(&[inbound("A1", "dinner?")])
        .await
        .expect("commit");

    topo.process.pause();
    // Two seconds of typing, refreshed every 400 ms in the test setup: about 5 shows.
    queue_text_on(&mut con, "bot_A1", "see you at 8", 2_000).await;
    let claim_key = schema::sent_reply_key("bot_A1");
    eventually(Duration::from_secs(10), || {
        let mut con = con.clone();
        let key = claim_key.clone();
        async move { con.get::<_, Option<String>>(&key).await.ok().flatten() }
    })
    .await
    .expect("the reply is claimed on the primary");
    let first = typing_shown(&run);
    // Two more tries, each failing its WAIT after WAIT_TIMEOUT.
    tokio::time::sleep(2 * WAIT_TIMEOUT + Duration::from_millis(1_000)).await;
    let retried = typing_shown(&run) - first;
    topo.process.resume();
    let fake = run.fake.clone();
    eventually(Duration::from_secs(10), || {
        let ids = send_ids(&fake.calls(), "see you at 8");
        async move { (!ids.is_empty()).then_some(ids) }
    })
    .await
    .expect("sent once the replica is back");
    assert!(first >= 3, "the whole delay was shown once: {first}");
    assert!(
        retried <= 3,
        "a try after an unconfirmed claim shows typing only briefly: {retried} more shows"
    );
    run.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lease_is_held_only_once_the_replica_has_it() {
    let h = Harness::start().await;
    let topo = Replicated::start().await;
    let con = primary(&topo).await;
    topo.process.pause();
    let run = waiting_gateway(&h, &con).await;
    tokio::time::sleep(WAIT_TIMEOUT + Duration::from_millis(1_500)).await;
    let connected = run.fake.record.lock().expect("lock").inbox.is_some();
    topo.process.resume();
    assert!(
        !connected,
        "no connection to WhatsApp while the lease is on the primary only"
    );
    let fake = run.fake.clone();
    eventually(Duration::from_secs(10), || {
        let up = fake.record.lock().expect("lock").inbox.is_some();
        async move { up.then_some(()) }
    })
    .await
    .expect("connected once the replica holds the lease");
    run.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_stopped_with_its_lease_unconfirmed_gives_it_up() {
    let h = Harness::start().await;
    let topo = Replicated::start().await;
    let mut con = primary(&topo).await;
    topo.process.pause();
    let run = waiting_gateway(&h, &con).await;
    let key = schema::gateway_lock_key(crate::setup::USER);
    let taken = eventually(Duration::from_secs(5), || {
        let mut con = con.clone();
        let key = key.clone();
        async move { con.exists::<_, bool>(&key).await.ok().filter(|t| *t) }
    })
    .await;
    assert!(taken.is_some(), "taken on the primary");
    tokio::time::sleep(WAIT_TIMEOUT + Duration::from_millis(500)).await;
    run.finish().await;
    topo.process.resume();
    let left: bool = con.exists(&key).await.expect("EXISTS");
    assert!(!left, "a standby gateway need not wait for it to expire");
}
