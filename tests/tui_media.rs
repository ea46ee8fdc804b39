//! Voice notes and photos in the real control room (issue 23), in a
//! pseudo-terminal against a real redis-server: the conversation shows what a
//! voice note said and what a photo showed, from the stored history and from
//! the live feed, with a hostile gist made harmless; a voice note the twin could
//! not understand shows as such and is counted for the operator.

mod common;

use std::time::Duration;

use common::Harness;
use common::pty::Screen;
use redis::AsyncCommands;
use secondme::schema;

/// A stored or published message of alice's as the contract spells it, with
/// its `media` mark.
fn payload(id: &str, content: &str, media: &str, timestamp: i64) -> String {
    let content = serde_json::to_string(content).expect("a string encodes");
    format!(
        r#"{{"messageId":"{id}","contactId":"alice","content":{content},"botSent":false,"timestamp":{timestamp},"media":{media}}}"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_conversation_shows_what_was_said_and_shown() {
    let mut h = Harness::start().await;
    let _: () = redis::pipe()
        .zadd(schema::contacts_activity(), "alice", 1_704_931_200_000i64)
        .lpush(
            schema::history_key("alice"),
            payload(
                "v1",
                "are you coming saturday",
                r#"{"kind":"voice","seconds":12}"#,
                1_704_931_100_000,
            ),
        )
        .lpush(
            schema::history_key("alice"),
            payload(
                "v2",
                "",
                r#"{"kind":"voice","seconds":32,"unread":true}"#,
                1_704_931_200_000,
            ),
        )
        .query_async(&mut h.con)
        .await
        .expect("seed history");
    let screen = Screen::start_with(&h.server.url(), 30, 120, &["--no-worker"]);

    // From the history loaded at the start.
    let text = screen.wait_for(r#"🎤 0:12 "are you coming saturday""#);
    assert!(
        !text.contains("[voice note"),
        "no placeholder is shown: {text}"
    );
    screen.wait_for("🎤 0:32 (not understood)");

    // From the live feed, with escapes in the gist and the caption: an OSC left
    // open in the gist must neither reach the terminal nor hide the caption.
    screen.wait_for("subscribed to events:");
    let photo = payload(
        "p1",
        "look at my \u{1b}[31mnew car!",
        r#"{"kind":"photo","gist":"a red \u001b[2Jcar \u001b]0;pwned"}"#,
        1_704_931_300_000,
    );
    let _: i64 = h
        .con
        .publish(schema::channel_messages(), photo)
        .await
        .expect("publish");
    let text = screen.wait_for(r#"📷 a red car · "look at my new car!""#);
    assert!(!text.contains("pwned"), "{text}");
    assert!(!text.contains("[2J"), "{text}");
    let raw = screen.raw_text();
    assert!(!raw.contains("pwned"), "the OSC never reached the terminal");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_voice_note_the_twin_could_not_understand_is_the_operators_cue() {
    let mut h = Harness::start().await;
    h.allow(&["alice"]).await;
    // The embedded worker, with no transcription endpoint.
    let mut screen = Screen::start(&h.server.url(), 30, 120);
    screen.wait_for("subscribed to events:");
    screen.wait_for("alice");
    let text = screen.text();
    assert!(!text.contains("unanswered"), "nothing counted yet:\n{text}");

    let now = secondme::store::now_ms().to_string();
    h.send_raw(&[
        ("messageId", b"voice-1"),
        ("contactId", b"alice"),
        ("content", b""),
        ("timestamp", now.as_bytes()),
        ("direction", b"incoming"),
        ("fromMe", b"false"),
        ("mediaType", b"audio/ogg; codecs=opus"),
        ("mediaSeconds", b"32"),
    ])
    .await;

    let text = screen.wait_for("🎤 0:32 (not understood)");
    let text = if text.contains("unanswered 1") {
        text
    } else {
        screen.wait_for("unanswered 1")
    };
    let bar = text.lines().nth(1).unwrap_or_default();
    assert!(bar.contains("unanswered 1"), "in the status bar: {text}");
    assert!(text.contains("✉1"), "alice marked in the list:\n{text}");

    // Counted in Redis by the decision itself, and nothing went to alice.
    let counted: Option<u64> = h.con.hget(schema::unheard(), "alice").await.expect("HGET");
    assert_eq!(counted, Some(1));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(h.responses().await.is_empty(), "no reply to a voice note");
    screen.stop();
}
