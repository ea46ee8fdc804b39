//! The gateway's Redis rights: the ACL rules of docs/redis-schema.md are
//! enough, and they do not let it change the worker's code.

use secondme::connection::Con;
use std::time::Duration;

use redis::AsyncCommands;
use secondme::bridge::whatsapp::link::LinkEvent;
use secondme::bridge::whatsapp::status;
use secondme::schema;

use crate::common::{Harness, eventually};
use crate::media::voice;
use crate::setup::{
    CONTACT, Setup, USER, dead_letters, inbound, pending_replies, queue_text, send_ids, start_with,
    wait_state,
};

/// The gateway's rules of docs/redis-schema.md ("ACL users").
pub const GATEWAY_ACL: &[&str] = &[
    "~QUEUE:*",
    "~SESSION:*",
    "~QR:*",
    "~SENT:*",
    "~SENTREPLY:*",
    "~SENDFAIL:*",
    "~GATEWAY*",
    "~CONTACTS:names",
    "~OPTIN:contacts",
    "~MEDIA:*",
    "~PAUSE:*",
    "~PAUSEMETA:*",
    "~HISTORY:*",
    "~SECONDME:stats",
    "&events:*",
    "+@all",
    "-@dangerous",
    "-@admin",
    "-@scripting",
    "+fcall",
];

/// As a Redis user with only the documented rules, the gateway logs in, takes a
/// message and a voice note, sends a reply and dead-letters a failing one, and
/// Redis refuses it nothing.
#[tokio::test]
async fn the_documented_gateway_acl_is_enough() {
    let mut h = Harness::start().await;
    h.allow(&[CONTACT]).await;
    let mut setuser = redis::cmd("ACL");
    setuser.arg("SETUSER").arg("gw").arg("on").arg(">gw-pass");
    for rule in GATEWAY_ACL {
        setuser.arg(*rule);
    }
    let _: () = setuser.query_async(&mut h.con).await.expect("ACL SETUSER");
    let _: () = redis::cmd("ACL")
        .arg("LOG")
        .arg("RESET")
        .query_async(&mut h.con)
        .await
        .expect("ACL LOG RESET");
    // The library as the worker leaves it: loaded at its start, by its own user.
    let _: () = redis::cmd("FUNCTION")
        .arg("FLUSH")
        .query_async(&mut h.con)
        .await
        .expect("FUNCTION FLUSH");
    secondme::store::functions::load(&mut h.con)
        .await
        .expect("the worker loads the library");
    let url = format!("{}?user=gw&pass=gw-pass", h.server.url());
    let client = secondme::connection::open_client(&url).expect("client");
    let con = secondme::connection::manager(&client, None)
        .await
        .expect("connect as gw");
    let mut probe = con.clone();
    let setup = Setup {
        con: Some(con),
        fail_text: Some("will fail".into()),
        send_attempts: 1,
        ..Setup::default()
    };
    let run = start_with(&h, false, setup).await;
    wait_state(&mut h, status::State::WaitingForScan).await;
    run.fake
        .emit(LinkEvent::Connected {
            account: "wa_acc".into(),
            device: 3,
            name: "Alice".into(),
        })
        .await;
    wait_state(&mut h, status::State::Connected).await;
    run.fake
        .inbox()
        .commit(&[inbound("A1", "dinner?")])
        .await
        .expect("commit as gw");
    run.fake.serve("/v/A3", b"opus");
    run.fake
        .deliver(vec![voice("A3", "/v/A3", 4)])
        .await
        .expect("a voice note as gw");
    let media: Option<Vec<u8>> = h
        .con
        .get(schema::media_key(&format!("{CONTACT}.A3")))
        .await
        .expect("get");
    assert_eq!(media.as_deref(), Some(&b"opus"[..]));
    queue_text(&mut h, "bot_A1", "sounds good", 0).await;
    queue_text(&mut h, "bot_A2", "will fail", 0).await;
    let letters = dead_letters(&mut h).await;
    assert_eq!(letters.len(), 1);
    assert!(
        letters[0]["reason"].contains("reply bot_A2: sending failed 1 times"),
        "{letters:?}"
    );
    let fake = run.fake.clone();
    eventually(Duration::from_secs(5), || {
        let ids = send_ids(&fake.calls(), "sounds good");
        async move { (ids.len() == 1).then_some(()) }
    })
    .await
    .expect("the reply is sent");
    assert_eq!(pending_replies(&mut h).await, 0);
    let session: bool = h
        .con
        .exists(schema::session_key(USER))
        .await
        .expect("exists");
    assert!(session);
    let refused: Vec<redis::Value> = redis::cmd("ACL")
        .arg("LOG")
        .query_async(&mut h.con)
        .await
        .expect("ACL LOG");
    assert!(refused.is_empty(), "refused: {refused:?}");
    let other: redis::RedisResult<Option<String>> = probe.get(schema::state_marker()).await;
    assert!(other.is_err(), "the connection is the limited user");
    // Nor can it change the code the worker runs with the worker's rights.
    let library = secondme::store::functions::library();
    let name = format!("secondme_{}", library.version);
    let attempts: [&[&str]; 3] = [
        &["LOAD", "REPLACE", library.text.as_str()],
        &["DELETE", name.as_str()],
        &["FLUSH"],
    ];
    for args in attempts {
        let refused: redis::RedisResult<redis::Value> = redis::cmd("FUNCTION")
            .arg(args)
            .query_async(&mut probe)
            .await;
        let code = refused
            .as_ref()
            .err()
            .and_then(|e| e.code().map(str::to_owned));
        assert_eq!(
            code.as_deref(),
            Some("NOPERM"),
            "FUNCTION {}: {refused:?}",
            args[0]
        );
    }
    run.finish().await;
}

/// A connection as a Redis user with the gateway's documented rules.
pub async fn as_gateway_user(h: &mut Harness) -> Con {
    let mut setuser = redis::cmd("ACL");
    setuser.arg("SETUSER").arg("gw").arg("on").arg(">gw-pass");
    for rule in GATEWAY_ACL {
        setuser.arg(*rule);
    }
    let _: () = setuser.query_async(&mut h.con).await.expect("ACL SETUSER");
    let url = format!("{}?user=gw&pass=gw-pass", h.server.url());
    let client = secondme::connection::open_client(&url).expect("client");
    secondme::connection::manager(&client, None)
        .await
        .expect("connect as gw")
}
