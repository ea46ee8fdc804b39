//! A `DRAFTS` another program gave its own type (issue 21): the list and the
//! operator's decisions name the key as the steps do (`SHARED_KEY`) and write
//! nothing, the drafts' keeper says it once, and a message of a contact in
//! draft mode stays pending meanwhile, drafted once the key is the twin's again.

use redis::AsyncCommands;
use secondme::schema;
use secondme::schema::drafts as keys;
use secondme::store::drafts::{self, Decision};
use tracing::Level;

use crate::common::{Harness, handled, incoming, streams};
use crate::logs::Captured;
use crate::{ALICE, Numbered, SECOND, draft_for, draft_hash, drafting_worker, responses, send};

#[tokio::test]
async fn a_drafts_index_of_another_type_is_named_and_loses_nothing() {
    let logs = Captured::start(Level::WARN);
    let mut h = Harness::start().await;
    h.allow(&[ALICE]).await;
    let w = drafting_worker(&h, Numbered::instant()).await;
    send(&mut h, &incoming("m1", ALICE, "hi")).await;
    let d = draft_for(&h, ALICE, "m1").await;
    let _: () = h
        .con
        .set(keys::drafts_key(), "another program's")
        .await
        .expect("set");

    let want = "SHARED_KEY DRAFTS holds a string, not a zset: another program wrote it; \
                rename or delete it";
    let decided = [
        (
            "approve",
            drafts::approve(&mut h.con, "draft_m1", None)
                .await
                .map(drop),
        ),
        (
            "discard",
            drafts::discard(&mut h.con, "draft_m1").await.map(drop),
        ),
        (
            "regenerate",
            drafts::regenerate(&mut h.con, "draft_m1").await.map(drop),
        ),
        ("list", drafts::list(&mut h.con).await.map(drop)),
    ];
    for (what, got) in decided {
        let err = format!("{:#}", got.expect_err(what));
        assert!(err.contains(want), "{what}: {err}");
        assert!(!err.contains("WRONGTYPE"), "{what}: {err}");
    }
    assert_eq!(draft_hash(&mut h.con, ALICE).await, d, "the draft is kept");
    assert!(responses(&mut h).await.is_empty(), "nothing is sent");

    // Alice writes again meanwhile: her message waits, neither drafted nor lost.
    send(&mut h, &incoming("m2", ALICE, "still there?")).await;
    tokio::time::sleep(2 * SECOND).await;
    assert_eq!(handled(&mut h.con, "m2").await, None);
    assert_eq!(streams::workers_pending(&mut h.con).await, 1, "pending");
    let dead = streams::entries(&mut h.con, schema::queue_deadletter()).await;
    assert!(dead.is_empty(), "{dead:?}");
    let keeper = "no draft expires (nor can be decided): SHARED_KEY DRAFTS holds a string";
    assert_eq!(logs.text().matches(keeper).count(), 1, "{}", logs.text());

    // The key is the twin's again: the message is drafted and can be decided.
    let _: () = h.con.del(keys::drafts_key()).await.expect("del");
    let d2 = draft_for(&h, ALICE, "m2").await;
    assert_eq!(
        drafts::approve(&mut h.con, "draft_m2", None)
            .await
            .expect("approve"),
        Decision::Done
    );
    let sent = responses(&mut h).await;
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0]["content"], d2["content"]);
    assert_eq!(sent[0]["inReplyTo"], "m2");
    w.stop().await;
}
