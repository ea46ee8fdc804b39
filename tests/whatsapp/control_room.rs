//! The control room and the gateway: its state in the status bar, and the
//! key that asks for new login codes.

use std::time::Duration;

use redis::AsyncCommands;
use secondme::bridge::whatsapp::status;
use secondme::schema;

use crate::common::{self, Harness, eventually};
use crate::setup::USER;

/// The control room tells the gateway's state, written by a gateway in another
/// process: here the "no network" the real gateway reports in this sandbox.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_control_room_shows_the_gateway_state() {
    let mut h = Harness::start().await;
    let mut s = status::GatewayStatus::new(status::State::NoNetwork, secondme::store::now_ms())
        .detail("cannot resolve web.whatsapp.com");
    s.next_try = Some(secondme::store::now_ms() + 30_000);
    let json = serde_json::to_string(&s).expect("json");
    let _: () = h
        .con
        .set(schema::gateway_key(USER), &json)
        .await
        .expect("set");
    let mut screen = common::pty::Screen::start_with(&h.server.url(), 30, 160, &["--no-worker"]);
    screen.wait_for("WhatsApp: no network");
    wait_for_bar(&screen, "WA no network since");
    let connected = {
        let mut c = status::GatewayStatus::new(status::State::Connected, secondme::store::now_ms());
        c.name = Some("Alice".into());
        serde_json::to_string(&c).expect("json")
    };
    let _: () = h
        .con
        .set(schema::gateway_key(USER), &connected)
        .await
        .expect("set");
    screen.wait_for("WhatsApp: connected as Alice");
    wait_for_bar(&screen, "WA connected as Alice");
    screen.stop();
}

/// Waits until the status bar (the screen's first row) shows `needle`.
fn wait_for_bar(screen: &common::pty::Screen, needle: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let bar: String = screen.rows().first().into_iter().flatten().collect();
        if bar.contains(needle) {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the status bar never showed {needle:?}: {bar:?}\n{}",
            screen.text()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// At 80 columns: the bar and the login panel say the codes ran out, `n` writes
/// `GATEWAYREQ:{userId}` = `new_codes` with its TTL; in any other state `n`
/// writes nothing and the event log says why; a state whose key expired leaves
/// the bar as "gateway gone".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_control_room_asks_for_new_codes_once_they_ran_out() {
    let mut h = Harness::start().await;
    let set_state = |s: status::GatewayStatus| serde_json::to_string(&s).expect("json");
    let out = set_state(status::GatewayStatus::new(
        status::State::CodesExhausted,
        secondme::store::now_ms(),
    ));
    let _: () = h
        .con
        .set_ex(schema::gateway_key(USER), &out, status::TTL_S)
        .await
        .expect("set");
    let mut screen = common::pty::Screen::start_with(&h.server.url(), 24, 80, &["--no-worker"]);
    wait_for_bar(&screen, "WA codes ran out: press n");
    screen.wait_for("The login codes ran out");
    screen.wait_for("Press n to ask for new ones.");
    let request = schema::gateway_request_key(USER);
    let before: Option<String> = h.con.get(&request).await.expect("get");
    assert_eq!(before, None, "nothing asked before the key");

    screen.keys("n");
    let mut con = h.con.clone();
    let asked = eventually(Duration::from_secs(10), || {
        let (mut con, request) = (con.clone(), request.clone());
        async move {
            let v: Option<String> = con.get(&request).await.ok()?;
            v
        }
    })
    .await;
    assert_eq!(asked.as_deref(), Some(status::REQUEST_NEW_CODES));
    let ttl: i64 = con.ttl(&request).await.expect("ttl");
    assert!((290..=300).contains(&ttl), "TTL {ttl}");
    screen.wait_for("asked the WhatsApp gateway for new login codes");

    // Connected: the key asks for nothing and says so.
    let _: () = con.del(&request).await.expect("del");
    let mut c = status::GatewayStatus::new(status::State::Connected, secondme::store::now_ms());
    c.name = Some("Alice".into());
    let _: () = con
        .set_ex(schema::gateway_key(USER), set_state(c), status::TTL_S)
        .await
        .expect("set");
    wait_for_bar(&screen, "WA connected as Alice");
    screen.keys("n");
    screen.wait_for("WhatsApp is connected");
    let after: Option<String> = con.get(&request).await.expect("get");
    assert_eq!(after, None, "n wrote a request while connected");

    // The key expires (here: deleted): the bar does not keep a stale "connected".
    let _: () = con.del(schema::gateway_key(USER)).await.expect("del");
    wait_for_bar(&screen, "WA gateway gone since");
    screen.stop();
}
