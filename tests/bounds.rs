//! What a stranger writing to the number can make Redis keep is bounded: the
//! history of a contact expires (sooner for one the twin does not answer), the
//! activity index is capped, and a dead letter keeps a bounded copy of its entry.

mod common;

use std::time::Duration;

use common::{Harness, eventually, incoming};
use redis::AsyncCommands;
use secondme::reply::persona_engine::PersonaEngine;
use secondme::schema;
use secondme::worker::{Worker, WorkerConfig};
use tokio::sync::watch;

const SECOND: Duration = Duration::from_secs(1);

async fn run_worker(h: &Harness) -> watch::Sender<bool> {
    let mut cfg = WorkerConfig::from_config(&h.config("bounds"));
    cfg.sleep_hours = secondme::config::SleepSetting::Off;
    let client = secondme::connection::open_client(&h.server.url()).expect("client");
    let w = Worker::connect(client, PersonaEngine::default(), cfg)
        .await
        .expect("connect");
    let (stop, rx) = watch::channel(false);
    tokio::spawn(w.run(rx));
    stop
}

async fn wait_handled(h: &Harness, message_id: &str) {
    let con = h.con.clone();
    let id = message_id.to_owned();
    let done = eventually(10 * SECOND, || {
        let mut con = con.clone();
        let id = id.clone();
        async move { common::handled(&mut con, &id).await }
    })
    .await;
    assert!(done.is_some(), "{message_id} handled");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn histories_expire_sooner_for_contacts_the_twin_does_not_answer() {
    let mut h = Harness::start().await;
    h.allow(&["friend"]).await;
    let stop = run_worker(&h).await;
    h.send(&incoming("from-friend", "friend", "hi")).await;
    h.send(&incoming("from-stranger", "stranger", "buy now"))
        .await;
    wait_handled(&h, "from-friend").await;
    wait_handled(&h, "from-stranger").await;
    let friend: i64 = h.con.pttl("HISTORY:friend").await.expect("PTTL");
    let stranger: i64 = h.con.pttl("HISTORY:stranger").await.expect("PTTL");
    let day = 24 * 60 * 60 * 1000;
    assert!(
        (29 * day..=schema::HISTORY_TTL_ENABLED_MS).contains(&friend),
        "friend {friend}"
    );
    assert!(
        (day - 60_000..=schema::HISTORY_TTL_OTHER_MS).contains(&stranger),
        "stranger {stranger}"
    );
    let _ = stop.send(true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_activity_index_keeps_only_the_most_recent_contacts() {
    let mut h = Harness::start().await;
    h.allow(&["friend"]).await;
    // Another burst of strangers already filled the index past its cap.
    let over = schema::CONTACTS_ACTIVITY_CAP + 500;
    let mut pipe = redis::pipe();
    for chunk in (0..over).collect::<Vec<_>>().chunks(1000) {
        let mut cmd = redis::cmd("ZADD");
        cmd.arg(schema::contacts_activity());
        for i in chunk {
            cmd.arg(*i as i64 + 1).arg(format!("old-{i}"));
        }
        pipe.add_command(cmd).ignore();
    }
    let _: () = pipe.query_async(&mut h.con).await.expect("ZADD");
    let stop = run_worker(&h).await;
    h.send(&incoming("new", "friend", "hi")).await;
    wait_handled(&h, "new").await;
    let n: usize = h
        .con
        .zcard(schema::contacts_activity())
        .await
        .expect("ZCARD");
    assert_eq!(n, schema::CONTACTS_ACTIVITY_CAP);
    let newest: Option<f64> = h
        .con
        .zscore(schema::contacts_activity(), "friend")
        .await
        .expect("ZSCORE");
    assert!(newest.is_some(), "the newest contact is kept");
    let oldest: Option<f64> = h
        .con
        .zscore(schema::contacts_activity(), "old-0")
        .await
        .expect("ZSCORE");
    assert!(oldest.is_none(), "the oldest went");
    let _ = stop.send(true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_letter_keeps_a_bounded_copy_of_a_huge_entry() {
    let mut h = Harness::start().await;
    h.allow(&["friend"]).await;
    let huge = vec![b'x'; 10 * 1024 * 1024];
    let mut fields: Vec<(String, Vec<u8>)> = vec![
        ("messageId".into(), b"huge".to_vec()),
        ("contactId".into(), b"friend".to_vec()),
        ("content".into(), huge.clone()),
        ("timestamp".into(), b"1".to_vec()),
        ("direction".into(), b"incoming".to_vec()),
        ("fromMe".into(), b"false".to_vec()),
    ];
    for i in 0..100 {
        fields.push((format!("extra{i:03}"), huge[..1000].to_vec()));
    }
    let borrowed: Vec<(&str, &[u8])> = fields
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_slice()))
        .collect();
    h.send_raw(&borrowed).await;
    let stop = run_worker(&h).await;
    let letters = eventually(10 * SECOND, || {
        let mut con = h.con.clone();
        async move {
            let n: usize = con.xlen(schema::queue_deadletter()).await.ok()?;
            (n > 0).then_some(())
        }
    })
    .await;
    assert!(letters.is_some(), "dead-lettered");
    let letter = &h.dead_letters().await[0];
    let bytes: usize = letter.iter().map(|(k, v)| k.len() + v.len()).sum();
    assert!(bytes < 200 * 1024, "{bytes} bytes kept");
    let content = &letter["content"];
    assert!(
        content.ends_with("[cut: 10485760 bytes]"),
        "{}",
        &content[content.len() - 40..]
    );
    assert!(
        letter.contains_key("secondme:omitted"),
        "{:?}",
        letter.keys()
    );
    for seed_field in ["messageId", "contactId", "timestamp", "direction", "fromMe"] {
        assert!(letter.contains_key(seed_field), "{seed_field} kept");
    }
    let _ = stop.send(true);
}
