//! Replies that cannot go at once: failed sends retried with the same WhatsApp
//! id and counted across restarts, claims lost to another sender, and dead
//! letters (also while the functions library is missing).

use std::time::Duration;

use redis::AsyncCommands;
use secondme::bridge::whatsapp::status;
use secondme::schema;

use crate::acl::as_gateway_user;
use crate::common::{Harness, eventually, streams};
use crate::setup::{
    CONTACT, Running, Setup, dead_letters, inbound, met_a_contact, pending_replies, queue_text,
    send_ids, sent_times, start_again, start_with, wait_state,
};

#[tokio::test]
async fn a_reply_that_keeps_failing_is_retried_with_backoff_then_dead_lettered_without_holding_others_back()
 {
    let mut h = Harness::start().await;
    h.allow(&[CONTACT]).await;
    let setup = Setup {
        fail_text: Some("will fail".into()),
        send_attempts: 3,
        send_retry: Duration::from_millis(400),
        ..Setup::default()
    };
    let run = start_with(&h, true, setup).await;
    wait_state(&mut h, status::State::Connected).await;
    run.fake
        .inbox()
        .commit(&[inbound("A1", "dinner?")])
        .await
        .expect("commit");
    let failing = queue_text(&mut h, "bot_A1", "will fail", 0).await;
    queue_text(&mut h, "bot_A2", "sounds good", 0).await;
    let letters = dead_letters(&mut h).await;
    let calls = run.fake.calls();
    let sends: Vec<&String> = calls.iter().filter(|c| c.starts_with("send")).collect();
    let failed: Vec<usize> = (0..sends.len())
        .filter(|i| sends[*i].ends_with("will fail"))
        .collect();
    assert_eq!(failed.len(), 3, "three attempts, then no more: {calls:?}");
    let ids = send_ids(&calls, "will fail");
    assert!(
        ids.iter().all(|id| *id == ids[0]),
        "every retry reuses the first attempt's WhatsApp id: {ids:?}"
    );
    let good = sends
        .iter()
        .position(|c| c.ends_with("sounds good"))
        .expect("the other reply is sent");
    assert!(
        good < failed[1],
        "the other reply goes while the failing one waits: {sends:?}"
    );
    let times = run.fake.record.lock().expect("lock").send_times.clone();
    let first_wait = times[failed[1]] - times[failed[0]];
    let second_wait = times[failed[2]] - times[failed[1]];
    assert!(first_wait >= Duration::from_millis(400), "{first_wait:?}");
    assert!(
        second_wait >= Duration::from_millis(800),
        "the wait doubles: {first_wait:?} then {second_wait:?}"
    );
    assert_eq!(letters.len(), 1, "{letters:?}");
    let letter = &letters[0];
    assert_eq!(letter["sourceId"], failing);
    assert!(
        letter["reason"].contains("reply bot_A1: sending failed 3 times"),
        "{letter:?}"
    );
    assert!(
        !letter["reason"].contains("15550001111"),
        "no phone number: {letter:?}"
    );
    assert!(letter["at"].parse::<i64>().expect("at") > 0);
    assert_eq!(letter["replyId"], "bot_A1");
    assert_eq!(letter["contactId"], CONTACT);
    assert_eq!(letter["content"], "will fail");
    assert_eq!(letter["delayMs"], "0");
    assert_eq!(pending_replies(&mut h).await, 0, "both acknowledged");
    let stats: Option<i64> = h
        .con
        .hget(schema::stats(), "dead_letters")
        .await
        .expect("stats");
    assert_eq!(stats, Some(1));
    let claims: (bool, bool, bool) = redis::pipe()
        .exists("SENTREPLY:bot_A1")
        .exists("SENDFAIL:bot_A1")
        .exists("SENTREPLY:bot_A2")
        .query_async(&mut h.con)
        .await
        .expect("exists");
    assert_eq!(
        claims,
        (false, false, true),
        "the failed reply holds no claim"
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        send_ids(&run.fake.calls(), "will fail").len(),
        3,
        "nothing after the dead letter"
    );
    run.finish().await;
}

#[tokio::test]
async fn failed_sends_are_counted_across_a_gateway_restart() {
    let mut h = Harness::start().await;
    h.allow(&[CONTACT]).await;
    let setup = || Setup {
        fail_text: Some("will fail".into()),
        send_attempts: 2,
        send_retry: Duration::from_secs(60),
        ..Setup::default()
    };
    let run = start_with(&h, true, setup()).await;
    wait_state(&mut h, status::State::Connected).await;
    run.fake
        .inbox()
        .commit(&[inbound("A1", "dinner?")])
        .await
        .expect("commit");
    let failing = queue_text(&mut h, "bot_A1", "will fail", 0).await;
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
    let first_ids = send_ids(&run.fake.calls(), "will fail");
    assert_eq!(first_ids.len(), 1);
    let _ = run.stop.send(true);
    let _ = run.task.await;
    assert_eq!(pending_replies(&mut h).await, 1, "the reply stays pending");

    let again = start_with(
        &h,
        true,
        Setup {
            dir: Some(run._dir),
            key: Some(run.key),
            ..setup()
        },
    )
    .await;
    let letters = dead_letters(&mut h).await;
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0]["sourceId"], failing);
    assert!(
        letters[0]["reason"].contains("failed 2 times"),
        "{letters:?}"
    );
    assert_eq!(
        send_ids(&again.fake.calls(), "will fail"),
        first_ids,
        "one more attempt after the restart, with the same WhatsApp id"
    );
    assert_eq!(pending_replies(&mut h).await, 0);
    again.finish().await;
}

#[tokio::test]
async fn a_send_cut_short_by_a_crash_goes_again_after_the_restart_with_the_same_id() {
    let mut h = Harness::start().await;
    h.allow(&[CONTACT]).await;
    let run = met_a_contact(
        &mut h,
        Setup {
            hang_text: Some("on my way".into()),
            ..Setup::default()
        },
        "where are you?",
    )
    .await;
    queue_text(&mut h, "bot_A1", "on my way", 0).await;
    sent_times(&run, "on my way", 1).await;
    let first = send_ids(&run.fake.calls(), "on my way");
    let claim: Option<String> = h.con.get("SENTREPLY:bot_A1").await.expect("claim");
    let message_id = format!("{CONTACT}.{}", first[0]);
    assert_eq!(claim, Some(format!("sending:{message_id}")));
    // The process dies during the send: its tasks are dropped mid-call.
    let _ = run.stop.send(true);
    let _ = run.task.await;
    assert_eq!(pending_replies(&mut h).await, 1);

    let again = start_again(&h, run._dir, run.key).await;
    sent_times(&again, "on my way", 1).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        send_ids(&again.fake.calls(), "on my way"),
        first,
        "once more, with the same WhatsApp id"
    );
    let claim: Option<String> = h.con.get("SENTREPLY:bot_A1").await.expect("claim");
    assert_eq!(claim.as_deref(), Some(message_id.as_str()), "now sent");
    let fail: bool = h.con.exists("SENDFAIL:bot_A1").await.expect("exists");
    assert!(!fail);
    assert_eq!(pending_replies(&mut h).await, 0);
    let echoes: Vec<_> = streams::entries(&mut h.con, schema::queue_messages())
        .await
        .into_iter()
        .filter(|e| e["fromMe"] == "true")
        .collect();
    assert_eq!(echoes.len(), 1, "{echoes:?}");
    assert_eq!(echoes[0]["messageId"], message_id);
    again.finish().await;
}

/// A gateway as its ACL user, with the functions library gone (it may not
/// load it), connected, a message in, and every send of its reply failing once.
async fn a_failing_reply_without_the_library(h: &mut Harness) -> Running {
    h.allow(&[CONTACT]).await;
    let con = as_gateway_user(h).await;
    let _: () = redis::cmd("FUNCTION")
        .arg("FLUSH")
        .query_async(&mut h.con)
        .await
        .expect("FUNCTION FLUSH");
    let run = start_with(
        h,
        true,
        Setup {
            con: Some(con),
            fail_text: Some("will fail".into()),
            send_attempts: 1,
            send_retry: Duration::from_millis(200),
            ..Setup::default()
        },
    )
    .await;
    wait_state(h, status::State::Connected).await;
    run.fake
        .inbox()
        .commit(&[inbound("A1", "dinner?")])
        .await
        .expect("commit");
    run
}

/// With the functions library missing (the worker not started yet), the
/// gateway may not load it: a reply out of attempts stays pending, is not sent
/// again, and is dead-lettered once the worker has loaded the library.
#[tokio::test]
async fn a_dead_letter_without_the_library_waits_pending_until_it_is_loaded() {
    let mut h = Harness::start().await;
    let run = a_failing_reply_without_the_library(&mut h).await;
    let failing = queue_text(&mut h, "bot_A1", "will fail", 0).await;
    queue_text(&mut h, "bot_A2", "sounds good", 0).await;
    let fake = run.fake.clone();
    eventually(Duration::from_secs(5), || {
        let ids = send_ids(&fake.calls(), "sounds good");
        async move { (ids.len() == 1).then_some(()) }
    })
    .await
    .expect("the other reply is sent meanwhile");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let letters: usize = h.con.xlen(schema::queue_deadletter()).await.expect("xlen");
    assert_eq!(letters, 0);
    assert_eq!(pending_replies(&mut h).await, 1, "kept pending");
    assert_eq!(
        send_ids(&run.fake.calls(), "will fail").len(),
        1,
        "not sent again"
    );
    let fail: bool = h.con.exists("SENDFAIL:bot_A1").await.expect("exists");
    assert!(fail, "its failures kept for the next try");

    secondme::store::functions::load(&mut h.con)
        .await
        .expect("the worker loads the library");
    let letters = dead_letters(&mut h).await;
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0]["sourceId"], failing);
    assert!(
        letters[0]["reason"].contains("sending failed 1 times"),
        "{letters:?}"
    );
    assert!(!letters[0]["reason"].contains("15550001111"), "{letters:?}");
    assert_eq!(pending_replies(&mut h).await, 0);
    assert_eq!(send_ids(&run.fake.calls(), "will fail").len(), 1);
    let claims: (bool, bool) = redis::pipe()
        .exists("SENTREPLY:bot_A1")
        .exists("SENDFAIL:bot_A1")
        .query_async(&mut h.con)
        .await
        .expect("exists");
    assert_eq!(claims, (false, false));
    run.finish().await;
}

/// A reply waiting for its dead letter (the library missing) keeps its claim
/// and its failures alive at each retry, so they never expire into a fresh
/// claim that would send the old reply again.
#[tokio::test]
async fn a_reply_waiting_for_its_dead_letter_keeps_its_claim_and_is_not_sent_again() {
    let mut h = Harness::start().await;
    let run = a_failing_reply_without_the_library(&mut h).await;
    queue_text(&mut h, "bot_A1", "will fail", 0).await;
    sent_times(&run, "will fail", 1).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    // As if most of their 24 h had passed.
    for key in ["SENTREPLY:bot_A1", "SENDFAIL:bot_A1"] {
        let set: bool = h.con.pexpire(key, 1500).await.expect("pexpire");
        assert!(set, "{key} exists");
    }
    tokio::time::sleep(Duration::from_millis(2500)).await;
    for key in ["SENTREPLY:bot_A1", "SENDFAIL:bot_A1"] {
        let ttl: i64 = h.con.pttl(key).await.expect("pttl");
        assert!(ttl > 60_000, "{key} renewed at each retry: {ttl}");
    }
    assert_eq!(
        send_ids(&run.fake.calls(), "will fail").len(),
        1,
        "not sent again"
    );
    assert_eq!(pending_replies(&mut h).await, 1, "still pending");
    run.finish().await;
}

/// Another gateway sends the reply under the same WhatsApp id while this one
/// types it (both read the id from `SENDFAIL:`): this one's lost claim leaves
/// the `SENT:` mark the winner's echo needs, sends nothing and acknowledges.
#[tokio::test]
async fn a_claim_lost_to_a_send_under_the_same_id_keeps_its_sent_mark() {
    let mut h = Harness::start().await;
    h.allow(&[CONTACT]).await;
    let run = met_a_contact(&mut h, Setup::default(), "where are you?").await;
    let message_id = format!("{CONTACT}.X1");
    let _: () = h
        .con
        .hset_multiple(
            "SENDFAIL:bot_A1",
            &[("attempts", "1"), ("waId", "X1"), ("error", "timeout")],
        )
        .await
        .expect("HSET");
    run.fake.record.lock().expect("lock").on_composing = vec![
        ("SENTREPLY:bot_A1".into(), message_id.clone()),
        (format!("SENT:{message_id}"), "1".into()),
    ];
    queue_text(&mut h, "bot_A1", "on my way", 0).await;
    let con = h.con.clone();
    let fake = run.fake.clone();
    eventually(Duration::from_secs(5), || {
        let mut con = con.clone();
        let typed = fake.calls().iter().any(|c| c.starts_with("composing"));
        async move {
            let pending =
                streams::pending(&mut con, schema::queue_responses(), "secondme-gateway").await;
            (typed && pending == 0).then_some(())
        }
    })
    .await
    .expect("acknowledged");
    assert!(send_ids(&run.fake.calls(), "on my way").is_empty());
    let mark: bool = h
        .con
        .exists(format!("SENT:{message_id}"))
        .await
        .expect("exists");
    assert!(mark, "the winner's SENT: mark stays");
    run.finish().await;
}

/// The dead-letter step writes a letter only for an entry still pending in
/// the group: one another consumer acknowledged meanwhile (sent by another
/// gateway) was handled, not lost.
#[tokio::test]
async fn an_entry_acknowledged_meanwhile_gets_no_dead_letter() {
    use secondme::store::deadletter::{self, DeadLetter};
    let mut h = Harness::start().await;
    secondme::store::functions::load(&mut h.con)
        .await
        .expect("library");
    let _: () = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(schema::queue_responses())
        .arg("g")
        .arg("$")
        .arg("MKSTREAM")
        .query_async(&mut h.con)
        .await
        .expect("group");
    let a = queue_text(&mut h, "bot_A1", "one", 0).await;
    let b = queue_text(&mut h, "bot_A2", "two", 0).await;
    let _: redis::Value = redis::cmd("XREADGROUP")
        .arg("GROUP")
        .arg("g")
        .arg("c")
        .arg("STREAMS")
        .arg(schema::queue_responses())
        .arg(">")
        .query_async(&mut h.con)
        .await
        .expect("read");
    let _: i64 = h
        .con
        .xack(schema::queue_responses(), "g", &[&a])
        .await
        .expect("ack");
    let letters: Vec<DeadLetter> = [&a, &b]
        .into_iter()
        .map(|id| DeadLetter {
            stream_id: id.clone(),
            reason: format!("test {id}"),
            fields: vec![],
        })
        .collect();
    deadletter::write(&mut h.con, schema::queue_responses(), "g", &letters)
        .await
        .expect("dead letter");
    let written = streams::entries(&mut h.con, schema::queue_deadletter()).await;
    assert_eq!(written.len(), 1, "{written:?}");
    assert_eq!(written[0]["reason"], format!("test {b}"));
}
