//! The reply sender: each reply typed, sent once and echoed; withheld when a
//! pause comes; replies left pending taken over; the group's consumer name.

use std::time::Duration;

use redis::AsyncCommands;
use secondme::bridge::whatsapp::inbox::Directory;
use secondme::bridge::whatsapp::{sender, status};
use secondme::schema;

use crate::common::{Harness, eventually, streams};
use crate::fake::FakeConnector;
use crate::setup::{
    CONTACT, Setup, USER, dead_letters, inbound, met_a_contact, pending_replies, queue_reply,
    queue_text, send_ids, sent_times, start, start_again, wait_state,
};

#[tokio::test]
async fn a_reply_is_sent_once_after_typing_with_its_sent_mark_written_first() {
    let mut h = Harness::start().await;
    h.allow(&[CONTACT]).await;
    let run = met_a_contact(&mut h, Setup::default(), "dinner?").await;
    queue_reply(&mut h, "bot_A1", 1000).await;
    queue_reply(&mut h, "bot_A1", 0).await; // the same reply again: never sent twice
    let fake = run.fake.clone();
    let sent = eventually(Duration::from_secs(6), || {
        let calls = fake.calls();
        async move { calls.iter().any(|c| c.starts_with("send")).then_some(calls) }
    })
    .await
    .expect("the reply is sent");
    tokio::time::sleep(Duration::from_millis(800)).await;
    let calls = run.fake.calls();
    let sends: Vec<_> = calls.iter().filter(|c| c.starts_with("send")).collect();
    assert_eq!(sends.len(), 1, "{calls:?}");
    let at = sent
        .iter()
        .position(|c| c.starts_with("send"))
        .expect("send");
    let typing = sent[..at]
        .iter()
        .filter(|c| c.starts_with("composing 15550001111@s.whatsapp.net"))
        .count();
    assert!(
        typing >= 3,
        "\"typing...\" refreshed every 400 ms of the 1 s delay: {sent:?}"
    );
    assert!(
        calls[at + 1..].iter().any(|c| c.starts_with("paused")),
        "{calls:?}"
    );
    let wa_id = sends[0].split(' ').nth(2).expect("id").to_owned();
    let message_id = format!("{CONTACT}.{wa_id}");
    let marks = run
        .fake
        .record
        .lock()
        .expect("lock")
        .sent_marks_at_send
        .clone();
    assert_eq!(
        marks,
        vec![vec![schema::sent_key(&message_id)]],
        "SENT: before the send"
    );
    let entries = streams::entries(&mut h.con, schema::queue_messages()).await;
    let echo = entries
        .iter()
        .find(|e| e["fromMe"] == "true")
        .expect("echo entry");
    assert_eq!(echo["messageId"], message_id);
    assert_eq!(echo["direction"], "outgoing");
    assert_eq!(
        pending_replies(&mut h).await,
        0,
        "both entries acknowledged"
    );
    run.finish().await;
}

#[tokio::test]
async fn the_kill_switch_pressed_while_typing_stops_the_send() {
    let mut h = Harness::start().await;
    h.allow(&[CONTACT]).await;
    let run = met_a_contact(&mut h, Setup::default(), "you there?").await;
    queue_reply(&mut h, "bot_A1", 3000).await;
    let fake = run.fake.clone();
    eventually(Duration::from_secs(5), || {
        let calls = fake.calls();
        async move {
            calls
                .iter()
                .any(|c| c.starts_with("composing"))
                .then_some(())
        }
    })
    .await
    .expect("typing shown");
    let _: () = h
        .con
        .set(schema::pause_all(), secondme::store::now_ms())
        .await
        .expect("kill");
    tokio::time::sleep(Duration::from_secs(4)).await;
    let calls = run.fake.calls();
    assert!(!calls.iter().any(|c| c.starts_with("send")), "{calls:?}");
    assert!(
        calls.iter().any(|c| c.starts_with("paused")),
        "typing cleared: {calls:?}"
    );
    let marks: Vec<String> = h.con.keys("SENT:*").await.expect("keys");
    assert!(marks.is_empty(), "nothing marked as sent");
    run.finish().await;
}

#[tokio::test]
async fn a_reply_to_a_contact_without_an_address_is_dead_lettered() {
    let mut h = Harness::start().await;
    h.allow(&[CONTACT]).await;
    let run = start(&h, true).await;
    wait_state(&mut h, status::State::Connected).await;
    let source = queue_text(&mut h, "bot_B1", "hello?", 0).await;
    let letters = dead_letters(&mut h).await;
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0]["sourceId"], source);
    assert!(
        letters[0]["reason"].contains("no WhatsApp address is known for contact"),
        "{letters:?}"
    );
    assert_eq!(letters[0]["content"], "hello?");
    assert_eq!(pending_replies(&mut h).await, 0);
    let calls = run.fake.calls();
    assert!(!calls.iter().any(|c| c.starts_with("send")), "{calls:?}");
    run.finish().await;
}

#[tokio::test]
async fn a_contact_paused_or_disabled_while_typing_gets_no_reply() {
    let mut h = Harness::start().await;
    h.allow(&[CONTACT]).await;
    let run = met_a_contact(&mut h, Setup::default(), "you there?").await;
    let typing = |fake: FakeConnector, at_least: usize| async move {
        eventually(Duration::from_secs(5), || {
            let n = fake
                .calls()
                .iter()
                .filter(|c| c.starts_with("composing"))
                .count();
            async move { (n >= at_least).then_some(()) }
        })
        .await
        .expect("typing shown");
    };
    queue_reply(&mut h, "bot_A1", 3000).await;
    typing(run.fake.clone(), 1).await;
    let _: () = h
        .con
        .set_ex(
            schema::pause_key(CONTACT),
            secondme::store::now_ms() + 60_000,
            60,
        )
        .await
        .expect("pause");
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let _: () = h.con.del(schema::pause_key(CONTACT)).await.expect("resume");
    let typed = run
        .fake
        .calls()
        .iter()
        .filter(|c| c.starts_with("composing"))
        .count();
    queue_reply(&mut h, "bot_A2", 3000).await;
    typing(run.fake.clone(), typed + 1).await;
    secondme::store::optin::set_enabled(&mut h.con, &[CONTACT.to_owned()], false)
        .await
        .expect("disable");
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let calls = run.fake.calls();
    assert!(!calls.iter().any(|c| c.starts_with("send")), "{calls:?}");
    assert_eq!(
        pending_replies(&mut h).await,
        0,
        "both withheld and acknowledged"
    );
    let marks: Vec<String> = h.con.keys("SENT*").await.expect("keys");
    assert!(marks.is_empty(), "nothing marked as sent: {marks:?}");
    run.finish().await;
}

/// The consumers of the gateway's group, by name.
async fn gateway_consumers(h: &mut Harness) -> Vec<String> {
    let info: redis::streams::StreamInfoConsumersReply = h
        .con
        .xinfo_consumers(schema::queue_responses(), "secondme-gateway")
        .await
        .expect("XINFO CONSUMERS");
    info.consumers.into_iter().map(|c| c.name).collect()
}

/// A reply whose send failed under an older consumer name (before names were
/// stable, or another `consumer`) is not stranded: the next gateway takes it
/// over, sends it once with the same WhatsApp id, and removes the old consumer.
#[tokio::test]
async fn replies_left_pending_under_another_consumer_name_are_sent_after_a_restart() {
    let mut h = Harness::start().await;
    h.allow(&[CONTACT]).await;
    let run = met_a_contact(
        &mut h,
        Setup {
            fail_text: Some("see you".into()),
            send_retry: Duration::from_secs(60),
            consumer: "oldhost-4242".into(),
            ..Setup::default()
        },
        "tomorrow?",
    )
    .await;
    queue_text(&mut h, "bot_A1", "see you", 0).await;
    let con = h.con.clone();
    eventually(Duration::from_secs(5), || {
        let mut con = con.clone();
        async move {
            let n: Option<String> = con.hget("SENDFAIL:bot_A1", "attempts").await.ok()?;
            (n.as_deref() == Some("1")).then_some(())
        }
    })
    .await
    .expect("one failure recorded");
    let first = send_ids(&run.fake.calls(), "see you");
    assert_eq!(first.len(), 1);
    let _ = run.stop.send(true);
    let _ = run.task.await;
    assert_eq!(pending_replies(&mut h).await, 1);
    // The old consumer idle long enough to be removed once empty.
    tokio::time::sleep(sender::IDLE_BEFORE_REMOVAL + Duration::from_millis(200)).await;

    let again = start_again(&h, run._dir, run.key).await;
    sent_times(&again, "see you", 1).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        send_ids(&again.fake.calls(), "see you"),
        first,
        "once, with the first attempt's WhatsApp id"
    );
    let claim: Option<String> = h.con.get("SENTREPLY:bot_A1").await.expect("claim");
    assert_eq!(claim, Some(format!("{CONTACT}.{}", first[0])));
    assert_eq!(pending_replies(&mut h).await, 0);
    assert_eq!(gateway_consumers(&mut h).await, ["gw-test"]);
    again.finish().await;
}

#[test]
fn the_gateway_s_consumer_name_is_the_same_at_every_start() {
    assert_eq!(sender::consumer_name(USER), "gateway-user-1");
}

/// How many commands Redis receives during `window` that match `want` (`MONITOR`).
async fn monitor_count(url: &str, window: Duration, want: impl Fn(&str) -> bool) -> usize {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let path = url.strip_prefix("unix://").expect("a unix socket");
    let mut socket = tokio::net::UnixStream::connect(path)
        .await
        .expect("connect");
    socket
        .write_all(b"*1\r\n$7\r\nMONITOR\r\n")
        .await
        .expect("MONITOR");
    let mut lines = BufReader::new(socket).lines();
    let mut n = 0;
    let _ = tokio::time::timeout(window, async {
        while let Ok(Some(line)) = lines.next_line().await {
            if want(&line) {
                n += 1;
            }
        }
    })
    .await;
    n
}

/// A reply waiting for its retry that leaves the pending list another way
/// (acknowledged by hand here) is forgotten at the next scan, not scanned for
/// again and again.
#[tokio::test]
async fn a_deferred_reply_acknowledged_elsewhere_is_forgotten() {
    let mut h = Harness::start().await;
    h.allow(&[CONTACT]).await;
    let run = met_a_contact(
        &mut h,
        Setup {
            fail_text: Some("will fail".into()),
            send_retry: Duration::from_millis(300),
            ..Setup::default()
        },
        "dinner?",
    )
    .await;
    let failing = queue_text(&mut h, "bot_A1", "will fail", 0).await;
    let fake = run.fake.clone();
    eventually(Duration::from_secs(5), || {
        let ids = send_ids(&fake.calls(), "will fail");
        async move { (ids.len() == 1).then_some(()) }
    })
    .await
    .expect("the first send");
    let _: i64 = h
        .con
        .xack(schema::queue_responses(), "secondme-gateway", &[&failing])
        .await
        .expect("xack");
    // Past its retry time: one scan finds it gone.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let scans = monitor_count(&h.server.url(), Duration::from_millis(2500), |l| {
        l.contains("\"XREADGROUP\"") && l.ends_with("\"QUEUE:responses\" \"0\"")
    })
    .await;
    assert!(scans <= 1, "scanned {scans} times for a reply gone");
    assert_eq!(send_ids(&run.fake.calls(), "will fail").len(), 1);
    run.finish().await;
}

/// A reply WhatsApp took is recorded even when Redis refuses writes right after
/// the send (longer than the connection's 3 s response timeout): the gateway
/// keeps trying to record it instead of going round and sending it again.
#[tokio::test]
async fn a_sent_reply_redis_could_not_record_at_once_is_not_sent_again() {
    let mut h = Harness::start().await;
    h.allow(&[CONTACT]).await;
    let run = start(&h, true).await;
    run.fake.record.lock().expect("lock").pause_writes_after = Some(("on my way".into(), 4500));
    wait_state(&mut h, status::State::Connected).await;
    run.fake
        .inbox()
        .commit(&[inbound("A1", "where are you?")])
        .await
        .expect("commit");
    queue_text(&mut h, "bot_A1", "on my way", 0).await;
    let con = h.con.clone();
    let recorded = eventually(Duration::from_secs(15), || {
        let mut con = con.clone();
        async move {
            let claim: Option<String> = con.get("SENTREPLY:bot_A1").await.ok()?;
            claim.filter(|c| !c.starts_with("sending:"))
        }
    })
    .await
    .expect("recorded as sent once Redis takes writes again");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let ids = send_ids(&run.fake.calls(), "on my way");
    assert_eq!(ids.len(), 1, "sent once: {:?}", run.fake.calls());
    assert_eq!(recorded, format!("{CONTACT}.{}", ids[0]));
    assert_eq!(pending_replies(&mut h).await, 0);
    let echoes = streams::entries(&mut h.con, schema::queue_messages())
        .await
        .into_iter()
        .filter(|e| e["fromMe"] == "true")
        .count();
    assert_eq!(echoes, 1);
    run.finish().await;
}

/// A reply left unsent for over a day without a claim (a gateway down that
/// long: an earlier attempt's claim may have expired after WhatsApp took it) is
/// dead-lettered, never sent late under a fresh id.
#[tokio::test]
async fn a_reply_older_than_its_claims_can_live_is_dead_lettered_not_sent() {
    let mut h = Harness::start().await;
    h.allow(&[CONTACT]).await;
    let run = met_a_contact(&mut h, Setup::default(), "where are you?").await;
    let day_ago = secondme::store::now_ms() - 25 * 60 * 60 * 1000;
    let _: String = h
        .con
        .xadd(
            schema::queue_responses(),
            format!("{day_ago}-0"),
            &[
                (schema::response_fields::REPLY_ID, "bot_old"),
                (schema::response_fields::CONTACT_ID, CONTACT),
                (schema::response_fields::CONTENT, "on my way"),
                (schema::response_fields::DELAY_MS, "0"),
            ],
        )
        .await
        .expect("xadd");
    let letters = dead_letters(&mut h).await;
    assert_eq!(letters.len(), 1);
    assert!(
        letters[0]["reason"].contains("bot_old") && letters[0]["reason"].contains("after a day"),
        "{letters:?}"
    );
    assert!(send_ids(&run.fake.calls(), "on my way").is_empty());
    assert_eq!(pending_replies(&mut h).await, 0);
    assert!(!sender::too_old_to_claim(
        &format!("{}-0", secondme::store::now_ms() - 60_000),
        secondme::store::now_ms()
    ));
    assert!(!sender::too_old_to_claim("not-an-id", 0));
    run.finish().await;
}

/// A contact another gateway of the account met first (its address only in
/// the shared directory file) is answered, not dead-lettered.
#[tokio::test]
async fn a_contact_met_by_another_gateway_is_found_in_the_directory_file() {
    let mut h = Harness::start().await;
    h.allow(&[CONTACT]).await;
    let run = start(&h, true).await;
    wait_state(&mut h, status::State::Connected).await;
    let other = Directory::open(run._dir.join("contacts.json")).expect("directory");
    other
        .remember([(CONTACT, "15550001111@s.whatsapp.net")])
        .expect("remember");
    queue_text(&mut h, "bot_A1", "on my way", 0).await;
    let ids = sent_times(&run, "on my way", 1).await;
    assert_eq!(ids.len(), 1);
    assert!(
        run.fake
            .calls()
            .iter()
            .any(|c| c.starts_with("send 15550001111@s.whatsapp.net")),
        "{:?}",
        run.fake.calls()
    );
    let letters: usize = h.con.xlen(schema::queue_deadletter()).await.expect("xlen");
    assert_eq!(letters, 0);
    run.finish().await;
}
