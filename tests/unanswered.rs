//! The messages the twin chose not to answer (`SECONDME:unanswered`) against a
//! real redis-server: read (garbage values, fields that are no text, a key of
//! another type, a hash larger than one scan page), dismissed one contact at a
//! time or all at once, forgotten with the contact; and in the real control
//! room at 80x24: a count another program writes shows in the status bar and
//! the list, and the dismiss key clears it in Redis.

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::Harness;
use common::pty::Screen;
use redis::AsyncCommands;
use secondme::schema;
use secondme::store::{learned, unanswered};

/// Waits until the screen no longer shows `needle`.
fn wait_gone(screen: &Screen, needle: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = screen.text();
        if !text.contains(needle) {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "{needle:?} stayed on screen:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn counts(pairs: &[(&str, u64)]) -> HashMap<String, u64> {
    pairs.iter().map(|(c, n)| ((*c).to_owned(), *n)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counts_are_read_garbage_and_all() {
    let mut h = Harness::start().await;
    let key = schema::unanswered();
    assert_eq!(
        unanswered::read(&mut h.con).await.expect("read").by_contact,
        HashMap::new(),
        "no key, no counts"
    );
    let _: () = h
        .con
        .hset_multiple(
            key,
            &[
                ("alice", "3"),
                ("bob", "lots"),
                ("carol", "-4"),
                ("dave", "2.5"),
                ("eve", "0"),
            ],
        )
        .await
        .expect("HSET");
    // A field no contact id can be: not UTF-8.
    let _: () = redis::cmd("HSET")
        .arg(key)
        .arg(&[0xff_u8, 0xfe][..])
        .arg("7")
        .query_async(&mut h.con)
        .await
        .expect("HSET bytes");
    assert_eq!(
        unanswered::read(&mut h.con).await.expect("read").by_contact,
        counts(&[("alice", 3), ("bob", 1), ("dave", 1)])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hash_of_many_contacts_is_read_whole_across_pages() {
    let mut h = Harness::start().await;
    let fields: Vec<(String, u64)> = (0..2_500).map(|i| (format!("c{i}"), i % 7 + 1)).collect();
    for chunk in fields.chunks(500) {
        let _: () = h
            .con
            .hset_multiple(schema::unanswered(), chunk)
            .await
            .expect("HSET");
    }
    let read = unanswered::read(&mut h.con).await.expect("read").by_contact;
    assert_eq!(read, fields.into_iter().collect::<HashMap<_, _>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dismissing_removes_one_contacts_count_or_all() {
    let mut h = Harness::start().await;
    let key = schema::unanswered();
    let _: () = h
        .con
        .hset_multiple(key, &[("alice", 3), ("bob", 1), ("carol", 2)])
        .await
        .expect("HSET");
    assert!(
        unanswered::dismiss(&mut h.con, "alice")
            .await
            .expect("dismiss")
    );
    let there: bool = h.con.hexists(key, "alice").await.expect("HEXISTS");
    assert!(!there, "alice's count is gone");
    assert!(
        !unanswered::dismiss(&mut h.con, "alice")
            .await
            .expect("again"),
        "nothing left to dismiss"
    );
    assert_eq!(
        unanswered::read(&mut h.con).await.expect("read").by_contact,
        counts(&[("bob", 1), ("carol", 2)])
    );
    let refused = unanswered::dismiss(&mut h.con, "").await;
    assert!(
        matches!(refused, Err(unanswered::Error::ContactId { .. })),
        "{refused:?}"
    );

    assert_eq!(unanswered::dismiss_all(&mut h.con).await.expect("all"), 2);
    let exists: bool = h.con.exists(key).await.expect("EXISTS");
    assert!(!exists, "every count is gone");
    assert_eq!(unanswered::dismiss_all(&mut h.con).await.expect("none"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_of_another_type_is_said_and_left_alone() {
    let mut h = Harness::start().await;
    let key = schema::unanswered();
    let _: () = h.con.rpush(key, "alice").await.expect("RPUSH");
    let read = unanswered::read(&mut h.con).await.expect("read");
    assert!(read.by_contact.is_empty(), "{read:?}");
    let [e @ unanswered::Error::Foreign { .. }] = read.foreign.as_slice() else {
        panic!("a list is no hash of counts: {read:?}");
    };
    let said = e.to_string();
    assert!(
        said.contains(&format!("{key} holds a list, not a hash")),
        "{said}"
    );
    assert!(matches!(
        unanswered::dismiss(&mut h.con, "alice").await,
        Err(unanswered::Error::Foreign { .. })
    ));
    assert!(matches!(
        unanswered::dismiss_all(&mut h.con).await,
        Err(unanswered::Error::Foreign { .. })
    ));
    let kept: Vec<String> = h.con.lrange(key, 0, -1).await.expect("LRANGE");
    assert_eq!(kept, ["alice"], "another program's key stays as it was");

    // Forgetting a contact does not stumble on it either.
    learned::forget(&mut h.con, "alice")
        .await
        .expect("forget goes on");
    let kept: Vec<String> = h.con.lrange(key, 0, -1).await.expect("LRANGE");
    assert_eq!(kept, ["alice"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_control_room_shows_the_count_and_the_key_dismisses_it() {
    let mut h = Harness::start().await;
    h.allow(&["alice"]).await;
    let mut screen = Screen::start_with(&h.server.url(), 24, 80, &["--no-worker"]);
    screen.wait_for("subscribed to events:");
    screen.wait_for("alice");
    let text = screen.text();
    assert!(!text.contains("unanswered"), "nothing counted yet:\n{text}");

    // Another worker counts three messages it did not answer.
    let key = schema::unanswered();
    let _: () = h.con.hset(key, "alice", 3).await.expect("HSET");
    let text = screen.wait_for("unanswered 3");
    let bar = text.lines().nth(1).unwrap_or_default();
    assert!(bar.contains("unanswered 3"), "in the status bar: {text}");
    assert!(text.contains("✉3"), "alice marked in the list:\n{text}");

    screen.keys("u");
    screen.wait_for("alice: unanswered messages marked as seen");
    let text = wait_gone(&screen, "unanswered 3");
    assert!(!text.contains("✉3"), "{text}");
    let there: bool = h.con.hexists(key, "alice").await.expect("HEXISTS");
    assert!(!there, "the count is gone from Redis");

    // A new count after that shows again: the screen follows Redis.
    let _: () = h.con.hset(key, "alice", 1).await.expect("HSET");
    screen.wait_for("unanswered 1");
    screen.stop();
}
