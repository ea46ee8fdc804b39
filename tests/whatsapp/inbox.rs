//! Incoming messages: committed to `QUEUE:messages` through the durability
//! hook only, with the contact's name and without their number.

use std::time::Duration;

use redis::AsyncCommands;
use secondme::bridge::whatsapp::status;
use secondme::schema;

use crate::common::{Harness, streams};
use crate::setup::{CONTACT, inbound, start, wait_state};

#[tokio::test]
async fn incoming_messages_reach_the_stream_through_the_hook_commit_only() {
    let mut h = Harness::start().await;
    let run = start(&h, true).await;
    wait_state(&mut h, status::State::Connected).await;
    let len: usize = h.con.xlen(schema::queue_messages()).await.expect("xlen");
    assert_eq!(len, 0, "connecting adds nothing");
    run.fake
        .inbox()
        .commit(&[inbound("A1", "hi there")])
        .await
        .expect("commit");
    let entries = streams::entries(&mut h.con, schema::queue_messages()).await;
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0]["content"], "hi there");
    assert_eq!(entries[0]["direction"], "incoming");
    assert_eq!(entries[0]["fromMe"], "false");
    let name: Option<String> = h.con.hget("CONTACTS:names", CONTACT).await.expect("names");
    assert_eq!(name.as_deref(), Some("Bob"));
    let all: Vec<String> = h.con.keys("*").await.expect("keys");
    let dump = format!("{all:?} {entries:?}");
    assert!(
        !dump.contains("15550001111"),
        "no phone number in Redis: {dump}"
    );
    run.finish().await;
}

/// The commands Redis received, as `MONITOR` shows them, up to the first that
/// `want` matches (the last line then); all seen within 5 s otherwise.
pub async fn monitor_until(url: &str, want: impl Fn(&str) -> bool) -> Vec<String> {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let mut seen = Vec::new();
    let Some(path) = url.strip_prefix("unix://") else {
        return seen;
    };
    let Ok(mut socket) = tokio::net::UnixStream::connect(path).await else {
        return seen;
    };
    if socket.write_all(b"*1\r\n$7\r\nMONITOR\r\n").await.is_err() {
        return seen;
    }
    let mut lines = BufReader::new(socket).lines();
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        while let Ok(Some(line)) = lines.next_line().await {
            let found = want(&line);
            seen.push(line);
            if found {
                return;
            }
        }
    })
    .await;
    seen
}

#[tokio::test]
async fn incoming_messages_are_added_with_acked_trimming_on_redis_8_2() {
    let h = Harness::start().await;
    let run = start(&h, true).await;
    let url = h.server.url();
    let seen = tokio::spawn(async move {
        monitor_until(&url, |l| l.contains("\"XADD\" \"QUEUE:messages\"")).await
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    run.fake
        .inbox()
        .commit(&[inbound("A1", "hi")])
        .await
        .expect("commit");
    let lines = seen.await.expect("join");
    let line = lines
        .last()
        .filter(|l| l.contains("\"XADD\" \"QUEUE:messages\""))
        .expect("the XADD");
    if h.acked {
        assert!(
            line.contains("\"XADD\" \"QUEUE:messages\" \"ACKED\" \"MAXLEN\" \"~\""),
            "{line}"
        );
    } else {
        assert!(
            line.contains("\"XADD\" \"QUEUE:messages\" \"*\""),
            "no trimming before 8.2: {line}"
        );
    }
    run.finish().await;
}
