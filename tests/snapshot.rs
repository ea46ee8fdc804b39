//! The state read of `status` and the control room against a real server: it
//! looks only at the contacts it knows, never scans the keyspace, and strips key
//! prefixes once.

mod common;

use common::Harness;
use redis::AsyncCommands;
use secondme::schema::{self, PauseReason};
use secondme::store::{control, optin, snapshot};

#[tokio::test]
async fn the_snapshot_reads_known_contacts_without_scanning_the_keyspace() {
    let mut h = Harness::start().await;
    optin::set_enabled(&mut h.con, &["alice".to_string(), "bob".to_string()], true)
        .await
        .expect("enable");
    let now = secondme::store::now_ms();
    let far = now + 3_600_000;
    let _: () = redis::pipe()
        // A contact whose id looks like a key prefix: its pause key is PAUSE:PAUSE:x.
        .zadd(schema::contacts_activity(), "PAUSE:x", now)
        .set(schema::pause_key("PAUSE:x"), far)
        .pexpire(schema::pause_key("PAUSE:x"), 3_600_000)
        .set(schema::pause_meta_key("PAUSE:x"), "takeover")
        // Another program's counter holding text, and a real one.
        .set(schema::counter_key("alice"), "not a number")
        .set_ex(schema::counter_key("bob"), 3, 60)
        // A pause on a contact nobody lists (another program's).
        .set(schema::pause_key("stranger"), far)
        .query_async(&mut h.con)
        .await
        .expect("seed");
    // A pause the operator sets on a contact that never wrote is listed.
    control::pause(&mut h.con, "newcomer", 60_000, PauseReason::Manual)
        .await
        .expect("pause");
    for chunk in 0..10 {
        let mut pipe = redis::pipe();
        for i in 0..1000 {
            pipe.set_ex(schema::sent_key(&format!("m{chunk}-{i}")), 1, 3600)
                .ignore();
        }
        let () = pipe.query_async(&mut h.con).await.expect("sent keys");
    }

    let _: () = redis::cmd("CONFIG")
        .arg("RESETSTAT")
        .query_async(&mut h.con)
        .await
        .expect("resetstat");
    let snap = snapshot::read(&mut h.con, "user-1")
        .await
        .expect("snapshot");
    let stats: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(&mut h.con)
        .await
        .expect("info");
    assert!(
        !stats.contains("cmdstat_scan") && !stats.contains("cmdstat_keys"),
        "no keyspace walk: {stats}"
    );

    let paused: Vec<(&str, &str)> = snap
        .paused
        .iter()
        .map(|p| (p.contact_id.as_str(), p.reason.as_str()))
        .collect();
    assert!(paused.contains(&("PAUSE:x", "takeover")), "{paused:?}");
    assert!(paused.contains(&("newcomer", "manual")), "{paused:?}");
    assert!(
        !paused.iter().any(|(id, _)| *id == "stranger"),
        "{paused:?}"
    );
    let counters: Vec<(&str, i64)> = snap
        .counters
        .iter()
        .map(|c| (c.contact_id.as_str(), c.count))
        .collect();
    assert_eq!(counters, [("bob", 3)]);
    assert!(snap.counters[0].remaining_ms > 0);

    // Seen live (the control room passes those): its pause is read too.
    let snap = snapshot::read_with(&mut h.con, "user-1", &["stranger".to_string()])
        .await
        .expect("snapshot");
    assert!(
        snap.paused
            .iter()
            .any(|p| p.contact_id == "stranger" && p.reason == PauseReason::Unknown),
        "{:?}",
        snap.paused
    );
    let exists: bool = h.con.exists(schema::pause_all()).await.expect("exists");
    assert!(!exists && snap.kill_switch.is_none() && snap.kill_reason.is_none());
}
