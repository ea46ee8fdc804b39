//! A switch of the Sentinel primary looks to a push subscriber like a reconnect:
//! once its subscriptions are on the new primary it gets the `Disconnection`
//! notice a plain reconnect gives, and the control room, told so, reads again
//! what pub/sub could not deliver while they moved (on a real Sentinel
//! deployment from tests/common/sentinel.rs, and on one server for the plain
//! reconnect it matches).

mod common;

use common::node_pubsub::{next_message, subscribers_at};
use std::time::Duration;

use common::pty::Screen;
use common::sentinel::{Sentinel, role};
use common::{Harness, nodes};
use redis::aio::MultiplexedConnection;
use redis::{AsyncCommands, PushKind};
use secondme::connection;
use secondme::schema;
use tokio::sync::mpsc;

/// Longest a failover may take, from `SENTINEL FAILOVER` to a new primary.
const FAILOVER: Duration = Duration::from_secs(30);
/// The replicas of the harness's deployment, all of which confirm a seed write.
const REPLICAS: usize = 2;

/// The live node, other than `old`, that says it is a primary and counts a
/// subscriber of `channel`.
async fn new_primary_subscribed(deployment: &Sentinel, old: u16, channel: &str) -> Option<u16> {
    for port in deployment.live_server_ports() {
        if port != old
            && role(port).await.as_deref() == Some("master")
            && subscribers_at(port, channel).await.unwrap_or(0) >= 1
        {
            return Some(port);
        }
    }
    None
}

/// Asks the first sentinel to fail over now, and waits until the sentinels name
/// a primary other than `old`; its port.
async fn fail_over(deployment: &Sentinel, old: u16) -> u16 {
    let mut admin = nodes::connect(deployment.sentinel_ports()[0])
        .await
        .expect("a sentinel");
    let _: () = redis::cmd("SENTINEL")
        .arg("FAILOVER")
        .arg(deployment.name())
        .query_async(&mut admin)
        .await
        .expect("SENTINEL FAILOVER");
    nodes::poll(FAILOVER, || async {
        let named = deployment.primary_port().await;
        (named != old).then_some(named)
    })
    .await
    .expect("the sentinels name a new primary")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_is_told_of_a_primary_switch_once_its_subscriptions_moved() {
    let channel = "switch-events";
    let deployment = Sentinel::start("twin-switch").await;
    let client = connection::open_client(&deployment.url()).expect("client");
    let (tx, mut pushes) = mpsc::unbounded_channel();
    let mut con = connection::manager(&client, Some(tx))
        .await
        .expect("connect through the sentinels");
    con.subscribe(&[channel]).await.expect("SUBSCRIBE");
    let old = deployment.primary_port().await;
    let mut node = nodes::connect(old).await.expect("the primary");
    let _: u64 = node.publish(channel, "before").await.expect("PUBLISH");
    assert_eq!(
        next_message(&mut pushes, channel, Duration::from_secs(5))
            .await
            .as_deref(),
        Some("before")
    );

    fail_over(&deployment, old).await;

    // Every notice is checked as it comes: the one that matters finds the
    // subscription already on the new primary, so nothing published after it is lost.
    let deadline = tokio::time::Instant::now() + FAILOVER;
    let mut notices = 0;
    let new = loop {
        let push = tokio::time::timeout_at(deadline, pushes.recv())
            .await
            .ok()
            .flatten();
        let Some(push) = push else {
            panic!(
                "no disconnection notice with the subscription on a new primary \
                 within {FAILOVER:?} ({notices} notices before it)"
            );
        };
        if push.kind != PushKind::Disconnection {
            continue;
        }
        notices += 1;
        if let Some(new) = new_primary_subscribed(&deployment, old, channel).await {
            break new;
        }
    };
    let mut node = nodes::connect(new).await.expect("the new primary");
    let _: u64 = node.publish(channel, "after").await.expect("PUBLISH");
    assert_eq!(
        next_message(&mut pushes, channel, Duration::from_secs(5))
            .await
            .as_deref(),
        Some("after"),
        "a message published on the new primary after the notice arrives"
    );
}

/// A history line of `contact`, as the gateway stores it.
fn history_line(id: &str, contact: &str, content: &str, timestamp: i64) -> String {
    serde_json::json!({
        "messageId": id,
        "contactId": contact,
        "content": content,
        "botSent": false,
        "timestamp": timestamp,
    })
    .to_string()
}

/// Stores a line of carol's history through `con`, publishing nothing: the
/// live feed never tells of it.
async fn store_line(con: &mut MultiplexedConnection, id: &str, content: &str, at: i64) {
    let line = history_line(id, "carol", content, at);
    let _: () = redis::pipe()
        .zadd(schema::contacts_activity(), "carol", at)
        .lpush(schema::history_key("carol"), &line)
        .query_async(con)
        .await
        .expect("store a history line");
}

/// Waits until every replica has what was written on `con` (`WAIT`).
async fn replicated(con: &mut MultiplexedConnection) {
    let acked: usize = redis::cmd("WAIT")
        .arg(REPLICAS)
        .arg(5000)
        .query_async(con)
        .await
        .expect("WAIT");
    assert_eq!(acked, REPLICAS, "every replica has the line");
}

// The line stored without a publish stands for one published while the
// subscriptions moved: pub/sub never delivers either, only a read shows it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_control_room_reads_what_it_missed_when_the_primary_switches() {
    let deployment = Sentinel::start("twin-screen").await;
    let old = deployment.primary_port().await;
    let mut node = nodes::connect(old).await.expect("the primary");
    store_line(&mut node, "s1", "said before the switch", 1_704_931_100_000).await;
    let screen = Screen::start_with(&deployment.url(), 40, 120, &["--no-worker"]);
    screen.wait_for("said before the switch");
    screen.wait_for("subscribed to events:pause");

    store_line(
        &mut node,
        "s2",
        "missed while it switched",
        1_704_931_200_000,
    )
    .await;
    replicated(&mut node).await;
    // Two state reads go by: none of them loads history again by itself.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(
        !screen.text().contains("missed while it switched"),
        "shown before the switch: {}",
        screen.text()
    );

    fail_over(&deployment, old).await;
    let text = screen.wait_for("missed while it switched");
    assert!(text.contains("said before the switch"), "{text}");
    assert!(
        text.contains("redis disconnected"),
        "the switch shows as a reconnect: {text}"
    );
}

/// Kills every client of the server that holds a subscription (`CLIENT KILL ID`);
/// how many it killed.
async fn kill_subscribers(con: &mut connection::Con) -> usize {
    let list: String = redis::cmd("CLIENT")
        .arg("LIST")
        .query_async(con)
        .await
        .expect("CLIENT LIST");
    let mut killed = 0;
    for client in list.lines() {
        let field = |name: &str| {
            client
                .split(' ')
                .find_map(|f| f.strip_prefix(name)?.strip_prefix('='))
        };
        if field("sub").is_some_and(|n| n != "0")
            && let Some(id) = field("id")
        {
            let _: () = redis::cmd("CLIENT")
                .arg("KILL")
                .arg("ID")
                .arg(id)
                .query_async(con)
                .await
                .expect("CLIENT KILL");
            killed += 1;
        }
    }
    killed
}

// The plain reconnect the switch matches: the connection comes back at once, so
// no state read ever fails, and only the notice says something may be lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_control_room_reads_what_it_missed_across_a_reconnect() {
    let mut h = Harness::start().await;
    let client = redis::Client::open(h.server.url()).expect("client");
    let mut node = client
        .get_multiplexed_async_connection()
        .await
        .expect("connect");
    store_line(
        &mut node,
        "r1",
        "said before the reconnect",
        1_704_931_100_000,
    )
    .await;
    let screen = Screen::start_with(&h.server.url(), 40, 120, &["--no-worker"]);
    screen.wait_for("said before the reconnect");
    screen.wait_for("subscribed to events:pause");

    store_line(
        &mut node,
        "r2",
        "missed while it reconnected",
        1_704_931_200_000,
    )
    .await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(
        !screen.text().contains("missed while it reconnected"),
        "shown before the reconnect: {}",
        screen.text()
    );

    assert_eq!(kill_subscribers(&mut h.con).await, 1, "the control room's");
    let text = screen.wait_for("missed while it reconnected");
    assert!(text.contains("redis disconnected"), "{text}");
}
