//! Draft mode end to end: the real binary in a pseudo-terminal at 80x24, its
//! embedded worker writing drafts into a real redis-server, the operator
//! deciding on them with the keys (approve, edit with wide characters and a
//! paste, discard, the preview, the mode toggle, writing as themselves), and
//! two control rooms approving one draft: it is sent once.

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::pty::Screen;
use common::{Harness, eventually, incoming};
use redis::AsyncCommands;
use secondme::schema::{self, drafts as keys, response_fields as f};
use secondme::store::drafts::{self, Draft, ReplyMode};

/// Bracketed paste as a terminal sends it (the control room turns it on).
fn pasted(text: &str) -> String {
    format!("\u{1b}[200~{text}\u{1b}[201~")
}

/// Waits until a draft for `contact` other than `not` waits; returns it.
async fn wait_draft(h: &Harness, contact: &str, not: Option<&str>) -> Draft {
    let con = h.con.clone();
    let found = eventually(Duration::from_secs(10), || {
        let mut con = con.clone();
        async move {
            drafts::list(&mut con)
                .await
                .ok()?
                .into_iter()
                .find(|d| d.contact_id == contact && Some(d.draft_id.as_str()) != not)
        }
    })
    .await;
    match found {
        Some(d) => d,
        None => {
            let mut con = h.con.clone();
            let responses = common::streams::entries(&mut con, schema::queue_responses()).await;
            let dead = common::streams::entries(&mut con, schema::queue_deadletter()).await;
            panic!("no draft for {contact}; replies {responses:?}, dead letters {dead:?}")
        }
    }
}

/// Waits until `QUEUE:responses` holds `n` entries; returns them all.
async fn wait_responses(h: &mut Harness, n: usize) -> Vec<HashMap<String, String>> {
    let con = h.con.clone();
    let got = eventually(Duration::from_secs(10), || {
        let mut con = con.clone();
        async move {
            let len: usize = con.xlen(schema::queue_responses()).await.ok()?;
            (len >= n).then_some(())
        }
    })
    .await;
    let all = h.responses().await;
    assert!(got.is_some(), "{n} replies expected, got {all:?}");
    all
}

/// Waits until `check` holds for what Redis says, or fails with `what`.
async fn until<F, Fut>(what: &str, check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<()>>,
{
    let done = eventually(Duration::from_secs(10), check).await;
    assert!(done.is_some(), "{what}");
}

/// Waits until the screen no longer shows `needle`.
fn wait_gone(screen: &Screen, needle: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = screen.text();
        if !text.contains(needle) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{needle:?} stayed on screen:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The first words of a draft, as they show in the panel's first row.
fn opening(content: &str) -> String {
    content
        .lines()
        .next()
        .unwrap_or_default()
        .chars()
        .take(16)
        .collect::<String>()
        .trim()
        .to_owned()
}

async fn mode_of(h: &Harness, contact: &str) -> Option<String> {
    let mut con = h.con.clone();
    con.hget(keys::modes_key(), contact).await.ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drafts_are_approved_edited_discarded_and_written_from_the_keyboard() {
    let mut h = Harness::start().await;
    h.allow(&["alice"]).await;
    drafts::set_mode(&mut h.con, &["alice".to_owned()], ReplyMode::Draft)
        .await
        .expect("draft mode");
    let mut screen = Screen::start_with(&h.server.url(), 24, 80, &["--bell", "true"]);
    screen.wait_for("subscribed to events:");
    let bells_before = screen.raw_text().matches('\u{7}').count();

    // A draft the embedded worker wrote shows under the conversation, marked,
    // counted and rung for.
    h.send(&incoming("d1", "alice", "are we still on for dinner?"))
        .await;
    let first = wait_draft(&h, "alice", None).await;
    let text = screen.wait_for("DRAFT · not sent");
    screen.wait_for(&opening(&first.content));
    assert!(text.contains("drafts 1"), "{text}");
    assert!(text.contains("draft waiting"), "{text}");
    assert!(h.responses().await.is_empty(), "a draft is not sent");
    assert!(
        screen.raw_text().matches('\u{7}').count() > bells_before,
        "the bell rang for the new draft"
    );

    // a: sent as written, once.
    screen.keys("a");
    let sent = wait_responses(&mut h, 1).await;
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0][f::CONTENT], first.content);
    assert_eq!(sent[0][f::CONTACT_ID], "alice");
    assert!(!sent[0].contains_key(f::FROM_OWNER), "{sent:?}");
    screen.wait_for("draft approved and sent");
    wait_gone(&screen, "DRAFT · not sent");
    let waiting: bool = h
        .con
        .exists(keys::draft_key("alice"))
        .await
        .expect("EXISTS");
    assert!(!waiting, "the approved draft is gone");

    // i: edited with wide characters, a multi-line paste and Alt-Enter, then sent.
    h.send(&incoming("d2", "alice", "and what time?")).await;
    let second = wait_draft(&h, "alice", Some(&first.draft_id)).await;
    screen.wait_for("DRAFT · not sent");
    screen.wait_for(&opening(&second.content));
    screen.keys("i");
    screen.wait_for("Editing the draft");
    screen.keys("\u{15}");
    screen.keys("日本語 at 8");
    screen.keys(&pasted("\r\nbring 🍷\r\nok?"));
    screen.keys("\u{1b}\r");
    screen.keys("x");
    screen.wait_for("bring 🍷");
    screen.keys("\r");
    let sent = wait_responses(&mut h, 2).await;
    assert_eq!(sent[1][f::CONTENT], "日本語 at 8\nbring 🍷\nok?\nx");
    assert_eq!(sent[1][f::IN_REPLY_TO], second.in_reply_to);
    wait_gone(&screen, "Editing the draft");
    wait_gone(&screen, "DRAFT · not sent");

    // x: discarded, nothing sent.
    h.send(&incoming("d3", "alice", "hello?")).await;
    let third = wait_draft(&h, "alice", Some(&second.draft_id)).await;
    screen.wait_for("DRAFT · not sent");
    screen.wait_for(&opening(&third.content));
    screen.keys("x");
    screen.wait_for("draft discarded");
    let waiting: bool = h
        .con
        .exists(keys::draft_key("alice"))
        .await
        .expect("EXISTS");
    assert!(!waiting, "the discarded draft is gone");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        h.responses().await.len(),
        2,
        "a discarded draft is not sent"
    );

    // w: what the twin would answer the last message, in a popup; nothing sent.
    screen.keys("w");
    screen.wait_for("The twin would say to alice");
    wait_gone(&screen, "the twin is writing");
    let text = screen.wait_for("nothing was sent");
    for failure in ["no message of theirs", "engine"] {
        assert!(!text.contains(failure), "{text}");
    }
    screen.keys("\r");
    wait_gone(&screen, "The twin would say");
    assert_eq!(h.responses().await.len(), 2, "a preview is not sent");
    assert!(
        drafts::list(&mut h.con).await.expect("list").is_empty(),
        "nor drafted"
    );

    // m: auto, then draft again, in SECONDME:modes.
    screen.keys("m");
    until("m stores auto", || async {
        (mode_of(&h, "alice").await.as_deref() == Some("auto")).then_some(())
    })
    .await;
    screen.keys("m");
    until("m stores draft", || async {
        (mode_of(&h, "alice").await.as_deref() == Some("draft")).then_some(())
    })
    .await;

    // c: the operator's own words, marked as theirs.
    screen.keys("c");
    screen.wait_for("as yourself");
    screen.keys("running late, sorry");
    screen.keys("\r");
    let sent = wait_responses(&mut h, 3).await;
    assert_eq!(sent[2][f::CONTENT], "running late, sorry");
    assert_eq!(sent[2][f::CONTACT_ID], "alice");
    assert_eq!(sent[2].get(f::FROM_OWNER).map(String::as_str), Some("true"));

    screen.keys("q");
    assert!(screen.wait_exit(Duration::from_secs(15), "q").success());
    screen.assert_terminal_restored("q");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_control_rooms_approving_one_draft_send_it_once() {
    let mut h = Harness::start().await;
    h.allow(&["alice"]).await;
    drafts::set_mode(&mut h.con, &["alice".to_owned()], ReplyMode::Draft)
        .await
        .expect("draft mode");
    // One writes the drafts (its embedded worker), the other only looks.
    let mut one = Screen::start_with(&h.server.url(), 24, 80, &[]);
    let mut two = Screen::start_with(&h.server.url(), 24, 80, &["--no-worker"]);
    one.wait_for("subscribed to events:");
    two.wait_for("subscribed to events:");

    // Both press a at the same moment: one reply.
    h.send(&incoming("t1", "alice", "are we still on?")).await;
    let first = wait_draft(&h, "alice", None).await;
    one.wait_for("DRAFT · not sent");
    two.wait_for("DRAFT · not sent");
    one.keys("a");
    two.keys("a");
    let sent = wait_responses(&mut h, 1).await;
    for s in [&one, &two] {
        wait_gone(s, "DRAFT · not sent");
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let sent_after = h.responses().await;
    assert_eq!(
        sent_after.len(),
        1,
        "sent once: {sent:?} then {sent_after:?}"
    );
    assert_eq!(sent_after[0][f::IN_REPLY_TO], first.in_reply_to);

    // The second room still holds the draft in its editor when the first
    // approves it: its Enter finds it decided, and says so.
    h.send(&incoming("t2", "alice", "and tomorrow?")).await;
    let second = wait_draft(&h, "alice", Some(&first.draft_id)).await;
    for s in [&one, &two] {
        s.wait_for("DRAFT · not sent");
        s.wait_for(&opening(&second.content));
    }
    two.keys("i");
    two.wait_for("Editing the draft");
    one.keys("a");
    wait_responses(&mut h, 2).await;
    two.wait_for("no longer waiting");
    two.keys("\r");
    two.wait_for("already decided");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let all = h.responses().await;
    assert_eq!(all.len(), 2, "{all:?}");
    assert_eq!(all[1][f::IN_REPLY_TO], second.in_reply_to);
    // Neither rings: the bell is off by default.
    assert!(!one.raw_text().contains('\u{7}'));
    assert!(!two.raw_text().contains('\u{7}'));

    for s in [&mut one, &mut two] {
        s.keys("q");
        assert!(s.wait_exit(Duration::from_secs(15), "q").success());
    }
}
