//! `secondme demo` end to end: it starts its own Redis (with FalkorDB), seeds the
//! graph, runs the simulated gateway and the control room, and on quit leaves no
//! process and no file behind.

mod common;

use std::time::{Duration, Instant};

use common::pty::Screen;

/// Processes whose command line mentions `needle`.
fn processes_mentioning(needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return found;
    };
    for entry in dir.flatten() {
        let cmdline = entry.path().join("cmdline");
        if let Ok(bytes) = std::fs::read(&cmdline) {
            let text = String::from_utf8_lossy(&bytes).replace('\0', " ");
            if text.contains(needle) {
                found.push(format!("{}: {text}", entry.file_name().to_string_lossy()));
            }
        }
    }
    found
}

#[test]
fn the_demo_runs_the_whole_system_and_cleans_up_on_quit() {
    let mut screen = Screen::spawn(&["demo"], 40, 120);
    let pid = screen.child.process_id().expect("pid");
    let private_dir = std::env::temp_dir().join(format!("secondme-redis-{pid}-0"));

    // The private Redis is up, the graph seeded (names instead of ids), the login
    // code scanned by the simulated phone, and conversations flowing.
    screen.wait_for("Sam Carter");
    assert!(
        private_dir.join("redis.sock").exists(),
        "private socket in {private_dir:?}"
    );
    assert!(
        !processes_mentioning(&private_dir.display().to_string()).is_empty(),
        "its own redis-server runs"
    );
    let deadline = Instant::now() + Duration::from_secs(25);
    loop {
        let text = screen.text();
        if text.contains("logged in since") && text.contains("twin:") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no login and reply on screen:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    screen.keys("q");
    let status = screen.wait_exit(Duration::from_secs(20), "the demo");
    assert!(status.success(), "exit status {status:?}");
    screen.assert_terminal_restored("the demo");
    let left = processes_mentioning(&private_dir.display().to_string());
    assert!(left.is_empty(), "processes left behind: {left:?}");
    assert!(!private_dir.exists(), "{private_dir:?} was not removed");
}

/// The demo's owner as its sample exports name them.
const DEMO_OWNER: &str = "Robin";

/// The authored messages of an Android export (`06.08.2016, 13:23 - Name: text`),
/// counted here from its header lines: `(author, text)` of each line that starts
/// a message; continuation lines and author-less system lines are not counted.
fn android_messages(export: &str) -> Vec<(&str, &str)> {
    export
        .lines()
        .filter_map(|line| {
            let b = line.as_bytes();
            let header = b.len() > 20
                && b[2] == b'.'
                && b[5] == b'.'
                && &line[10..12] == ", "
                && &line[17..20] == " - ";
            header.then(|| line[20..].split_once(": "))?
        })
        .collect()
}

/// At start the demo learns its owner from the shipped sample exports (an
/// Android chat with mom, an iOS one with alex): the learned chats and styles
/// are in its Redis before the traffic, with the figures the export gives, and
/// the learned panel shows them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_learns_its_owner_from_the_sample_exports() {
    use redis::AsyncCommands;
    use secondme::schema::learned as keys;

    let mut screen = Screen::spawn(&["demo"], 40, 120);
    let pid = screen.child.process_id().expect("pid");
    let socket = std::env::temp_dir()
        .join(format!("secondme-redis-{pid}-0"))
        .join("redis.sock");
    screen.wait_for("Sam Carter");
    let client =
        secondme::connection::open_client(&format!("unix://{}", socket.display())).expect("client");
    let mut con = secondme::connection::manager(&client, None)
        .await
        .expect("the demo's Redis");

    let mom = android_messages(include_str!("../assets/demo-export-android.txt"));
    assert!(
        mom.len() >= 60,
        "the sample chat with mom: {} messages",
        mom.len()
    );
    let chat: usize = con.zcard(keys::chat_key("mom")).await.expect("zcard");
    assert_eq!(
        chat,
        mom.len(),
        "every message of the chat with mom is learned"
    );
    let alex: usize = con.zcard(keys::chat_key("alex")).await.expect("zcard");
    assert!(alex > 0, "the iOS chat with alex is learned");
    for contact in ["mom", "alex"] {
        let exists: bool = con.exists(keys::style_key(contact)).await.expect("exists");
        assert!(exists, "{contact}'s style counts are stored");
        let learned: bool = con
            .sismember(keys::contacts_key(), contact)
            .await
            .expect("sismember");
        assert!(learned, "{contact} is listed as learned");
    }
    let exists: bool = con.exists(keys::overall_key()).await.expect("exists");
    assert!(exists, "the overall style counts are stored");
    // The owner's text messages to mom, counted here, are the profile's samples.
    let texts = mom
        .iter()
        .filter(|(author, text)| *author == DEMO_OWNER && *text != "<Media omitted>")
        .count();
    let profile = secondme::store::learned::profile(&mut con, Some("mom"))
        .await
        .expect("read")
        .expect("mom's profile");
    assert_eq!(profile.samples, texts as u64, "samples of mom's profile");

    // The demo scores the twin on its sample chats behind the screen: the offline
    // engine answering with the owner's own replies writes closer to them than
    // the templates alone.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let eval = loop {
        let saved = secondme::store::learned::last_eval(&mut con, "mom")
            .await
            .expect("read");
        match saved {
            Some(eval) => break eval,
            None if std::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            None => panic!("no eval of mom's sample chat saved by the demo"),
        }
    };
    let distance = |side: &str| eval[side]["style_distance"].as_f64().expect("a distance");
    assert!(
        distance("twin") < distance("baseline"),
        "the demo's twin scores closer than its baseline: {eval}"
    );

    // The learned panel shows it for the selected contact.
    screen.keys("l");
    screen.wait_for("messages learned");
    // Down the list until a contact with a score (mom or alex) is selected.
    for _ in 0..6 {
        if screen.text().contains("· baseline") {
            break;
        }
        screen.keys("j");
        std::thread::sleep(Duration::from_millis(300));
    }
    screen.wait_for("· baseline");
    screen.keys("q");
    let status = screen.wait_exit(Duration::from_secs(20), "the demo");
    assert!(status.success(), "exit status {status:?}");
}
