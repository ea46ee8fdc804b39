//! Contacts seen live but unknown to Redis's keys stay listed across snapshots
//! until they age out; ids from a snapshot are cleaned like the live feed's.

mod common;

use common::*;
use secondme_ui::model::{LIVE_ONLY_KEEP_MS, MAX_LIVE_ONLY};
use secondme_ui::{Event, Model, Pause, PauseReason, Snapshot, Stats, WorkerState, update};

fn message(contact: &str, id: &str, at: i64) -> Event {
    Event::MessageEvent {
        message_id: id.into(),
        contact_id: contact.into(),
        text: "hi".into(),
        bot_sent: false,
        from_person: false,
        timestamp_ms: at,
    }
}

fn snapshot_of(ids: &[&str]) -> Event {
    Event::Snapshot(Snapshot {
        contacts: ids.iter().map(|id| contact(id, None, 5)).collect(),
        ..Snapshot::default()
    })
}

fn ids(m: &Model) -> Vec<String> {
    m.visible_contacts().iter().map(|c| c.id.clone()).collect()
}

#[test]
fn a_contact_seen_live_survives_the_next_snapshot_with_what_is_known() {
    let mut m = three();
    update(&mut m, message("stranger", "s1", NOW - MIN));
    update(
        &mut m,
        Event::PauseEvent {
            contact_id: "stranger".into(),
            action: secondme_ui::PauseAction::Pause,
            expires_at_ms: Some(NOW + 30 * MIN),
            reason: PauseReason::Takeover,
        },
    );
    update(
        &mut m,
        snapshot_of(&["111@s.whatsapp.net", "222@s.whatsapp.net"]),
    );
    let listed = ids(&m);
    assert!(listed.contains(&"stranger".to_string()), "{listed:?}");
    let s = m.contact("stranger").expect("still listed");
    assert_eq!(s.last_activity_ms, NOW - MIN);
    assert_eq!(
        s.pause,
        Some(Pause {
            expires_at_ms: Some(NOW + 30 * MIN),
            reason: PauseReason::Takeover
        })
    );
    assert_eq!(m.conversations["stranger"].messages.len(), 1);
    // Past the horizon, neither the live-only contact nor those an earlier
    // snapshot listed and this one does not are kept.
    let mut old = three();
    update(&mut old, message("stranger", "s1", NOW - MIN));
    update(
        &mut old,
        Event::Tick {
            now_ms: NOW + LIVE_ONLY_KEEP_MS + MIN,
        },
    );
    update(&mut old, snapshot_of(&["111@s.whatsapp.net"]));
    assert_eq!(ids(&old), ["111@s.whatsapp.net"]);
}

#[test]
fn a_contact_is_kept_from_when_it_was_seen_not_from_the_time_its_sender_claims() {
    // A phone that was offline for a year, a gateway writing seconds for ms, or
    // one writing microseconds (ten years ahead would never age out by its claim).
    const YEAR: i64 = 365 * 24 * 60 * MIN;
    for claimed in [NOW - YEAR, (NOW - YEAR) / 1000, NOW + 10 * YEAR] {
        let mut m = empty();
        update(&mut m, message("offline-phone", "o1", claimed));
        update(&mut m, snapshot_of(&["known"]));
        assert!(
            m.contact("offline-phone").is_some(),
            "seen just now, claimed {claimed}: {:?}",
            ids(&m)
        );
        update(
            &mut m,
            Event::Tick {
                now_ms: NOW + LIVE_ONLY_KEEP_MS - MIN,
            },
        );
        update(&mut m, snapshot_of(&["known"]));
        assert!(
            m.contact("offline-phone").is_some(),
            "kept a day from when seen"
        );
        update(
            &mut m,
            Event::Tick {
                now_ms: NOW + LIVE_ONLY_KEEP_MS + MIN,
            },
        );
        update(&mut m, snapshot_of(&["known"]));
        assert!(m.contact("offline-phone").is_none(), "then it ages out");
    }
}

#[test]
fn a_listed_contact_seen_live_keeps_that_when_the_keys_stop_listing_it() {
    let mut m = empty();
    update(&mut m, message("friend", "f1", NOW - 400 * 24 * 60 * MIN));
    // A day later, the keys still list it (as active 5 minutes before `NOW`),
    // then stop: the time it was seen here is what keeps it a minute more.
    update(
        &mut m,
        Event::Tick {
            now_ms: NOW + LIVE_ONLY_KEEP_MS - MIN,
        },
    );
    update(&mut m, snapshot_of(&["friend", "known"]));
    update(&mut m, snapshot_of(&["known"]));
    assert!(m.contact("friend").is_some(), "{:?}", ids(&m));
}

#[test]
fn a_live_only_contact_ages_out() {
    let mut m = empty();
    update(&mut m, message("stranger", "s1", NOW));
    update(
        &mut m,
        Event::Tick {
            now_ms: NOW + LIVE_ONLY_KEEP_MS - MIN,
        },
    );
    update(&mut m, snapshot_of(&["known"]));
    assert!(m.contact("stranger").is_some(), "kept within the horizon");
    update(
        &mut m,
        Event::Tick {
            now_ms: NOW + LIVE_ONLY_KEEP_MS + MIN,
        },
    );
    update(&mut m, snapshot_of(&["known"]));
    assert!(m.contact("stranger").is_none(), "gone past the horizon");
    assert!(m.contact("known").is_some());
}

#[test]
fn live_only_contacts_are_bounded() {
    let mut m = empty();
    for i in 0..MAX_LIVE_ONLY + 50 {
        update(
            &mut m,
            message(&format!("s{i}"), &format!("m{i}"), NOW - 1000 + i as i64),
        );
    }
    update(&mut m, snapshot_of(&["known"]));
    assert_eq!(m.contacts.len(), MAX_LIVE_ONLY + 1);
    // The least recent went first.
    assert!(m.contact("s0").is_none());
    assert!(m.contact(&format!("s{}", MAX_LIVE_ONLY + 49)).is_some());
}

#[test]
fn snapshot_ids_are_cleaned_like_live_ones() {
    let mut m = empty();
    update(
        &mut m,
        message("mallory\u{1b}]0;pwned\u{7}\u{1b}[2J-x", "h1", NOW),
    );
    let live_id = m.contacts[0].id.clone();
    assert_eq!(live_id, "mallory-x");
    update(
        &mut m,
        snapshot_of(&["mallory\u{1b}]0;pwned\u{7}\u{1b}[2J-x", "e\u{202e}vil"]),
    );
    let listed = ids(&m);
    assert_eq!(listed.len(), 2, "one entry per contact: {listed:?}");
    for id in &listed {
        assert!(
            !id.contains('\u{1b}') && !id.contains('\u{202e}') && !id.contains("pwned"),
            "{id:?}"
        );
    }
}

#[test]
fn a_snapshot_keeps_the_worker_state_and_the_malformed_count() {
    // Redis knows neither the embedded worker's state nor the payloads this
    // process could not parse, so a re-read must not reset them.
    let mut m = three();
    update(
        &mut m,
        Event::WorkerProgress(WorkerState::Draining { left: 2 }),
    );
    update(
        &mut m,
        Event::Malformed {
            channel: "events:qr".into(),
            error: "expected value".into(),
        },
    );
    update(
        &mut m,
        Event::Snapshot(Snapshot {
            stats: Stats {
                queue_len: 7,
                ..Stats::default()
            },
            ..Snapshot::default()
        }),
    );
    assert_eq!(
        m.stats.queue_len, 7,
        "the rest of the counters are replaced"
    );
    assert_eq!(m.stats.worker, WorkerState::Draining { left: 2 });
    assert_eq!(m.stats.malformed_payloads, 1);
}

#[test]
fn other_programs_reasons_show_cleaned_and_short() {
    let mut m = three();
    let wild = format!("tired\u{1b}]0;pwned\u{7}\u{202e}{}", "z".repeat(100));
    update(
        &mut m,
        Event::PauseEvent {
            contact_id: "stranger".into(),
            action: secondme_ui::PauseAction::Pause,
            expires_at_ms: Some(NOW + MIN),
            reason: PauseReason::Other(wild.clone()),
        },
    );
    let live = m.contact("stranger").and_then(|c| c.pause.clone());
    let mut snap = contact("listed", None, 5);
    snap.pause = Some(Pause {
        expires_at_ms: Some(NOW + MIN),
        reason: PauseReason::Other(wild),
    });
    update(
        &mut m,
        Event::Snapshot(Snapshot {
            contacts: vec![snap],
            ..Snapshot::default()
        }),
    );
    let read = m.contact("listed").and_then(|c| c.pause.clone());
    for pause in [live, read] {
        let label = pause.expect("paused").reason.label().to_string();
        assert!(label.starts_with("tired"), "{label:?}");
        assert!(
            !label.contains('\u{1b}') && !label.contains('\u{202e}') && !label.contains("pwned"),
            "{label:?}"
        );
        assert!(label.chars().count() <= 40, "{label:?}");
    }
}

#[test]
fn reasons_without_a_wire_name_still_read_on_screen() {
    let mut m = three();
    update(
        &mut m,
        Event::PauseEvent {
            contact_id: "ALL".into(),
            action: secondme_ui::PauseAction::Pause,
            expires_at_ms: None,
            reason: PauseReason::Unknown,
        },
    );
    let line = m.events.back().map(|l| l.text.clone()).unwrap_or_default();
    assert_eq!(
        line,
        "kill switch ON (unknown): the twin is paused for everyone"
    );
    assert_eq!(PauseReason::StateLost.label(), "state_lost");
    assert_eq!(PauseReason::RateLimit.label(), "rate limit");
}
