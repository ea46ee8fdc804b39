//! Learning from chat exports through the real binary and a real redis-server:
//! `secondme learn` on an Android export, the iOS export of the same chat and
//! its zip (built here), and a later overlapping export, each adding nothing
//! twice; the contact found by name; the errors; `secondme style` against
//! figures computed here; an export's wall clock learned as UTC in the host's
//! zone; `secondme forget` leaving no key that holds the chat's text while
//! another contact's stays, the streams purged before the keys; a
//! foreign-typed key refused, a foreign eval key never overwritten.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Output;

use common::{Harness, incoming};
use redis::AsyncCommands;
use secondme::connection::Con;
use secondme::learn::{ChatLine, LineKind};
use secondme::schema::{self, learned as keys};
use secondme::store::learned;
use serde_json::{Value, json};

/// A word only Maria's chat holds: no key may hold it after `forget`.
const MARKER: &str = "zanzibarquokka";
/// A word only Bob's chat holds: it must survive Maria's `forget`.
const OTHER_MARKER: &str = "pumpernickelwombat";
const OWNER: &str = "Sam Rivera";
const MARIA: &str = "wa_0000000000000000000maria";
const BOB: &str = "wa_00000000000000000000bob";

/// [`ANDROID`] from the dinner question on, where [`LATER`] starts.
macro_rules! android_from_dinner {
    () => {
        "\
07.08.2016, 09:00 - Maria: are we still on for dinner?
07.08.2016, 09:12 - Sam Rivera: Yes! see you at 8
07.08.2016, 09:12 - Sam Rivera: ok
07.08.2016, 09:12 - Sam Rivera: ok
13.08.2016, 18:30 - Maria: This message was deleted
13.08.2016, 18:31 - Sam Rivera: where are you?
13.08.2016, 18:35 - Maria: I'm late
10 minutes, sorry
13.08.2016, 18:36 - Sam Rivera: no worries...
"
    };
}

/// Android, day first, 24 h, dotted: an encryption notice, a photo, a deleted
/// message, "ok" twice in one minute, a continuation line starting with digits.
const ANDROID: &str = concat!(
    "\
06.08.2016, 13:20 - Messages and calls are end-to-end encrypted. No one outside of this chat, not even WhatsApp, can read or listen to them. Tap to learn more.
06.08.2016, 13:23 - Maria: hey! did you see the zanzibarquokka photo?
06.08.2016, 13:25 - Sam Rivera: haha yes 😂
06.08.2016, 13:25 - Sam Rivera: it was so funny.
06.08.2016, 13:40 - Maria: <Media omitted>
",
    android_from_dinner!()
);

/// The same chat as an iPhone exports it: bracketed, with seconds, the U+200E
/// mark before the notice, the attachment and the deleted message.
const IOS: &str = "\
[06/08/2016, 13:20:00] Maria: \u{200e}Messages and calls are end-to-end encrypted. No one outside of this chat, not even WhatsApp, can read or listen to them.
[06/08/2016, 13:23:00] Maria: hey! did you see the zanzibarquokka photo?
[06/08/2016, 13:25:00] Sam Rivera: haha yes 😂
[06/08/2016, 13:25:00] Sam Rivera: it was so funny.
[06/08/2016, 13:40:00] Maria: \u{200e}image omitted
[07/08/2016, 09:00:00] Maria: are we still on for dinner?
[07/08/2016, 09:12:00] Sam Rivera: Yes! see you at 8
[07/08/2016, 09:12:00] Sam Rivera: ok
[07/08/2016, 09:12:00] Sam Rivera: ok
[13/08/2016, 18:30:00] Maria: \u{200e}This message was deleted.
[13/08/2016, 18:31:00] Sam Rivera: where are you?
[13/08/2016, 18:35:00] Maria: I'm late
10 minutes, sorry
[13/08/2016, 18:36:00] Sam Rivera: no worries...
";

/// A later Android export: it starts in the middle of the first one and goes
/// on with two new messages.
const LATER: &str = concat!(
    android_from_dinner!(),
    "\
14.08.2016, 10:02 - Maria: home safe?
14.08.2016, 10:05 - Sam Rivera: yes, thanks!
"
);

/// The owner's text messages of [`ANDROID`], for the figures computed here.
const OWNER_TEXTS: [&str; 7] = [
    "haha yes 😂",
    "it was so funny.",
    "Yes! see you at 8",
    "ok",
    "ok",
    "where are you?",
    "no worries...",
];

/// Bob's chat, for a second contact.
const BOB_CHAT: &str = "\
01.09.2016, 10:00 - Bob: pumpernickelwombat for lunch?
01.09.2016, 10:02 - Sam Rivera: sure, 1pm
02.09.2016, 19:00 - Bob: thanks for today
02.09.2016, 19:30 - Sam Rivera: anytime
";

/// A group: three authors.
const GROUP: &str = "\
01.09.2016, 10:00 - Bob: hi all
01.09.2016, 10:02 - Sam Rivera: hey
01.09.2016, 10:03 - Maria: hello
";

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).expect("write a fixture");
    path
}

/// A zip of `files`, each stored (no compression), as a phone's "with media"
/// export is read: local headers, central directory, end record.
fn stored_zip(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut central = Vec::new();
    for (name, data) in files {
        let offset = out.len() as u32;
        let crc = crc32fast::hash(data);
        let size = data.len() as u32;
        let header = |sig: u32, central_entry: bool| {
            let mut h = Vec::new();
            h.extend_from_slice(&sig.to_le_bytes());
            if central_entry {
                h.extend_from_slice(&20u16.to_le_bytes());
            }
            for v in [20u16, 0, 0, 0, 0] {
                h.extend_from_slice(&v.to_le_bytes());
            }
            for v in [crc, size, size] {
                h.extend_from_slice(&v.to_le_bytes());
            }
            h.extend_from_slice(&(name.len() as u16).to_le_bytes());
            h.extend_from_slice(&0u16.to_le_bytes());
            if central_entry {
                for v in [0u16, 0, 0] {
                    h.extend_from_slice(&v.to_le_bytes());
                }
                h.extend_from_slice(&0u32.to_le_bytes());
                h.extend_from_slice(&offset.to_le_bytes());
            }
            h.extend_from_slice(name.as_bytes());
            h
        };
        let local = header(0x0403_4b50, false);
        let entry = header(0x0201_4b50, true);
        out.extend_from_slice(&local);
        out.extend_from_slice(data);
        central.extend_from_slice(&entry);
    }
    let (cd_offset, cd_size, n) = (out.len() as u32, central.len() as u32, files.len() as u16);
    out.extend_from_slice(&central);
    out.extend_from_slice(&0x0605_4b50u32.to_le_bytes());
    for v in [0u16, 0, n, n] {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out.extend_from_slice(&cd_size.to_le_bytes());
    out.extend_from_slice(&cd_offset.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out
}

/// Runs `secondme ARGS` against the harness's server, in UTC.
fn cli(h: &Harness, args: &[&str]) -> Output {
    cli_in(h, "UTC0", args)
}

/// Runs `secondme ARGS` against the harness's server in the time zone `tz`
/// (a POSIX `TZ` value), as `run_cli` does otherwise.
fn cli_in(h: &Harness, tz: &str, args: &[&str]) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_secondme"))
        .args(args)
        .arg("--redis-url")
        .arg(h.server.url())
        .env("XDG_CONFIG_HOME", h.dir.join("config"))
        .env("XDG_STATE_HOME", h.dir.join("state"))
        .env_remove("SECONDME_CONFIG")
        .env("TZ", tz)
        .output()
        .expect("run secondme")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The JSON objects printed one a line.
fn json_lines(out: &Output) -> Vec<Value> {
    text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// `secondme learn FILE --me OWNER --json ARGS`, which must succeed; its one object.
fn learn_ok(h: &Harness, file: &Path, extra: &[&str]) -> Value {
    let path = file.to_str().expect("a UTF-8 path");
    let mut args = vec!["learn", path, "--me", OWNER, "--json"];
    args.extend_from_slice(extra);
    let out = cli(h, &args);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let mut objects = json_lines(&out);
    assert_eq!(objects.len(), 1, "{objects:?}");
    objects.remove(0)
}

async fn zcard(con: &mut Con, key: &str) -> usize {
    con.zcard(key).await.expect("zcard")
}

async fn style_version(con: &mut Con, contact: &str) -> Option<u64> {
    learned::version(con, contact)
        .await
        .expect("version")
        .map(|v| v.n)
}

/// Nearest-rank percentile, as the profile documents it: the value at rank
/// ⌈p·n/100⌉ of the sorted values.
fn nearest_rank(sorted: &[usize], p: usize) -> f64 {
    let rank = (p * sorted.len()).div_ceil(100).max(1);
    sorted[rank - 1] as f64
}

fn close(got: &Value, want: f64) -> bool {
    got.as_f64().is_some_and(|g| (g - want).abs() < 1e-9)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_export_is_learned_once_whatever_form_it_comes_in() {
    let mut h = Harness::start().await;
    let _: () = h
        .con
        .hset(schema::contact_names(), MARIA, "maria")
        .await
        .expect("name");
    let android = write(&h.dir, "WhatsApp Chat with Maria.txt", ANDROID.as_bytes());

    // The contact is found by the other author's name, ignoring case.
    let first = learn_ok(&h, &android, &[]);
    assert_eq!(
        first,
        json!({
            "file": android.display().to_string(),
            "format": "android-24h-dotted",
            "day_first": true,
            "messages": {"me": 7, "them": 5},
            "media": 1,
            "system": 1,
            "deleted": 1,
            "first": "2016-08-06T13:23:00",
            "last": "2016-08-13T18:36:00",
            "skipped": {},
            "contact": MARIA,
            "added": 12,
            "kept": 12,
        })
    );
    let chat = keys::chat_key(MARIA);
    assert_eq!(
        zcard(&mut h.con, &chat).await,
        12,
        "both \"ok\" of 09:12 are kept"
    );
    let members: Vec<String> = h.con.zrange(&chat, 0, -1).await.expect("members");
    let first_member: Value = serde_json::from_str(&members[0]).expect("JSON member");
    assert_eq!(
        first_member,
        json!({"ts": 1_470_489_780_000i64, "me": false, "k": "text",
               "text": format!("hey! did you see the {MARKER} photo?"), "n": 0})
    );
    let oks: Vec<&String> = members
        .iter()
        .filter(|m| m.contains(r#""text":"ok""#))
        .collect();
    assert_eq!(oks.len(), 2);
    assert!(
        oks[0].ends_with(r#""n":0}"#) && oks[1].ends_with(r#""n":1}"#),
        "{oks:?}"
    );
    let lines = learned::lines(&mut h.con, MARIA).await.expect("lines");
    let order: Vec<&str> = lines.iter().map(|l| l.text.as_str()).collect();
    assert_eq!(
        &order[4..8],
        [
            "are we still on for dinner?",
            "Yes! see you at 8",
            "ok",
            "ok"
        ],
        "a minute's messages keep their order"
    );
    assert_eq!(lines[10].text, "I'm late\n10 minutes, sorry");
    let learned_set: Vec<String> = h.con.smembers(keys::contacts_key()).await.expect("set");
    assert_eq!(learned_set, [MARIA]);
    assert_eq!(style_version(&mut h.con, MARIA).await, Some(1));
    let overall: String = h.con.get(keys::overall_key()).await.expect("overall");
    let style: String = h.con.get(keys::style_key(MARIA)).await.expect("style");
    let (overall, style): (Value, Value) = (
        serde_json::from_str(&overall).expect("JSON"),
        serde_json::from_str(&style).expect("JSON"),
    );
    assert_eq!(
        overall["tally"], style["tally"],
        "one contact: overall is its counts"
    );

    // The same file again, the iPhone's export of the chat, its zip: nothing new.
    let again = learn_ok(&h, &android, &["--contact", MARIA]);
    assert_eq!(
        (again["added"].clone(), again["kept"].clone()),
        (json!(0), json!(12))
    );
    let ios = write(&h.dir, "_chat.txt", IOS.as_bytes());
    let from_ios = learn_ok(&h, &ios, &["--contact", MARIA]);
    assert_eq!(from_ios["format"], "ios-24h-slashed");
    assert_eq!(from_ios["day_first"], true);
    assert_eq!(from_ios["messages"], json!({"me": 7, "them": 5}));
    assert_eq!(
        (from_ios["media"].clone(), from_ios["deleted"].clone()),
        (json!(1), json!(1))
    );
    assert_eq!(from_ios["added"], 0, "{from_ios}");
    let zip = stored_zip(&[
        ("_chat.txt", IOS.as_bytes()),
        (
            "00000005-PHOTO-2016-08-06-13-40-00.jpg",
            b"\xff\xd8\xff\xe0 not a real photo",
        ),
    ]);
    let zip = write(&h.dir, "WhatsApp Chat - Maria.zip", &zip);
    let from_zip = learn_ok(&h, &zip, &["--contact", MARIA]);
    assert_eq!(from_zip["added"], 0, "{from_zip}");
    assert_eq!(zcard(&mut h.con, &chat).await, 12);
    assert_eq!(
        style_version(&mut h.con, MARIA).await,
        Some(1),
        "nothing changed"
    );

    // A later export overlapping the first: only its two new messages.
    let later = write(&h.dir, "later.txt", LATER.as_bytes());
    let from_later = learn_ok(&h, &later, &["--contact", MARIA]);
    assert_eq!(
        (from_later["added"].clone(), from_later["kept"].clone()),
        (json!(2), json!(14))
    );
    assert_eq!(zcard(&mut h.con, &chat).await, 14);
    assert_eq!(style_version(&mut h.con, MARIA).await, Some(2));
    let from_later = learn_ok(&h, &later, &["--contact", MARIA]);
    assert_eq!(from_later["added"], 0);
    assert_eq!(style_version(&mut h.con, MARIA).await, Some(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exports_wall_clock_is_learned_as_utc_in_the_hosts_zone() {
    let mut h = Harness::start().await;
    let android = write(&h.dir, "maria.txt", ANDROID.as_bytes());
    let path = android.to_str().expect("a UTF-8 path");
    // Three hours behind UTC, without daylight saving time (POSIX form).
    let args = ["learn", path, "--me", OWNER, "--contact", MARIA, "--json"];
    let out = cli_in(&h, "BRT3", &args);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let report = &json_lines(&out)[0];
    assert_eq!(
        report["first"], "2016-08-06T13:23:00",
        "as the export wrote it"
    );
    assert_eq!(report["last"], "2016-08-13T18:36:00");
    let lines = learned::lines(&mut h.con, MARIA).await.expect("lines");
    let written = 1_470_489_780_000i64; // 2016-08-06 13:23 read as UTC
    assert_eq!(
        lines[0].ts,
        written + 3 * 3_600_000,
        "13:23 at UTC-3 is 16:23 UTC"
    );
    // A zone with daylight saving time: Central Europe, summer (UTC+2) in August.
    let mut h = Harness::start().await;
    let out = cli_in(&h, "CET-1CEST,M3.5.0,M10.5.0/3", &args);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let lines = learned::lines(&mut h.con, MARIA).await.expect("lines");
    assert_eq!(
        lines[0].ts,
        written - 2 * 3_600_000,
        "13:23 CEST is 11:23 UTC"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_style_printed_is_the_one_computed_from_the_owners_messages() {
    let h = Harness::start().await;
    let android = write(&h.dir, "maria.txt", ANDROID.as_bytes());
    let bob = write(&h.dir, "bob.txt", BOB_CHAT.as_bytes());
    learn_ok(&h, &android, &["--contact", MARIA]);

    let out = cli(&h, &["style", MARIA, "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let p: Value = serde_json::from_str(&text(&out.stdout)).expect("JSON");
    let mut lengths: Vec<usize> = OWNER_TEXTS.iter().map(|t| t.chars().count()).collect();
    lengths.sort_unstable();
    let n = OWNER_TEXTS.len() as f64;
    let share = |f: &dyn Fn(&str) -> bool| OWNER_TEXTS.iter().filter(|t| f(t)).count() as f64 / n;
    let per = |c: char| {
        OWNER_TEXTS
            .iter()
            .map(|t| t.matches(c).count())
            .sum::<usize>() as f64
            / n
    };
    assert_eq!(p["samples"], 7);
    assert!(close(&p["median_chars"], nearest_rank(&lengths, 50)), "{p}");
    assert!(close(&p["p90_chars"], nearest_rank(&lengths, 90)), "{p}");
    let lower = |t: &str| {
        t.chars()
            .find(|c| c.is_alphabetic())
            .is_some_and(char::is_lowercase)
    };
    assert!(close(&p["starts_lowercase"], share(&lower)), "{p}");
    let period = |t: &str| t.ends_with('.') && !t.ends_with("..");
    assert!(close(&p["ends_with_period"], share(&period)), "{p}");
    assert!(close(&p["exclamations_per_message"], per('!')), "{p}");
    assert!(close(&p["questions_per_message"], per('?')), "{p}");
    assert!(
        close(&p["ellipsis_share"], share(&|t| t.contains("..."))),
        "{p}"
    );
    assert!(close(&p["emoji_per_message"], 1.0 / n), "{p}");
    assert_eq!(p["top_emoji"], json!(["😂"]));
    // Every field of the profile, by its exact name.
    let fields: Vec<&String> = p.as_object().expect("an object").keys().collect();
    for name in [
        "samples",
        "median_chars",
        "p90_chars",
        "emoji_per_message",
        "top_emoji",
        "starts_lowercase",
        "ends_with_period",
        "exclamations_per_message",
        "questions_per_message",
        "ellipsis_share",
        "laughter_per_message",
        "top_laughter",
        "top_greetings",
        "top_signoffs",
        "languages",
        "several_in_a_row",
        "messages_per_turn",
        "reply_time_median_s",
    ] {
        assert!(fields.iter().any(|f| *f == name), "{name} missing from {p}");
    }

    let human = cli(&h, &["style", MARIA]);
    let shown = text(&human.stdout);
    assert!(human.status.success(), "{}", text(&human.stderr));
    assert!(shown.contains("from 7 messages"), "{shown}");
    assert!(
        shown.contains(&format!("median {} characters", nearest_rank(&lengths, 50))),
        "{shown}"
    );
    assert!(!shown.contains(MARKER), "no message text: {shown}");

    // Overall: both contacts' owner messages.
    learn_ok(&h, &bob, &["--contact", BOB]);
    let out = cli(&h, &["style", "--json"]);
    let overall: Value = serde_json::from_str(&text(&out.stdout)).expect("JSON");
    assert_eq!(overall["samples"], 9, "{overall}");
    let nobody = cli(&h, &["style", "wa_nobody"]);
    assert!(!nobody.status.success());
    assert!(text(&nobody.stderr).contains("nothing is learned for contact wa_nobody"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_cannot_be_decided_is_refused_with_the_authors_named() {
    let mut h = Harness::start().await;
    let android = write(&h.dir, "maria.txt", ANDROID.as_bytes());
    let group = write(&h.dir, "group.txt", GROUP.as_bytes());
    let path = |p: &PathBuf| p.to_str().expect("UTF-8").to_owned();

    let no_me = cli(&h, &["learn", &path(&android), "--contact", MARIA]);
    assert!(!no_me.status.success());
    let err = text(&no_me.stderr);
    assert!(err.contains("--me") && err.contains("owner_name"), "{err}");

    let wrong_me = cli(
        &h,
        &["learn", &path(&android), "--me", "Bob", "--contact", MARIA],
    );
    assert!(!wrong_me.status.success());
    let err = text(&wrong_me.stderr);
    assert!(
        err.contains("\"Sam Rivera\"") && err.contains("\"Maria\""),
        "{err}"
    );

    // Nobody called Maria is known: the contact must be named.
    let unknown = cli(&h, &["learn", &path(&android), "--me", OWNER]);
    assert!(!unknown.status.success());
    let err = text(&unknown.stderr);
    assert!(
        err.contains("--contact") && err.contains("\"Maria\""),
        "{err}"
    );

    let _: () = h
        .con
        .hset(schema::contact_names(), MARIA, "Maria")
        .await
        .expect("name");
    let in_group = cli(&h, &["learn", &path(&group), "--me", OWNER]);
    assert!(!in_group.status.success());
    let err = text(&in_group.stderr);
    assert!(err.contains("--contact"), "{err}");
    for author in ["\"Bob\"", "\"Maria\"", "\"Sam Rivera\""] {
        assert!(err.contains(author), "{author} in {err}");
    }
    assert!(
        !h.con
            .exists::<_, bool>(keys::chat_key(MARIA))
            .await
            .expect("exists")
    );

    // The owner's name from the settings; a file that fails leaves the others learned.
    let missing = h.dir.join("missing.txt");
    let out = cli(
        &h,
        &[
            "--owner-name",
            "sam rivera",
            "learn",
            &path(&missing),
            &path(&android),
            &path(&group),
            "--contact",
            "wa_group",
        ],
    );
    assert!(!out.status.success(), "one file is missing");
    let err = text(&out.stderr);
    assert!(
        err.contains("missing.txt") && err.contains("1 of 3 files"),
        "{err}"
    );
    assert_eq!(zcard(&mut h.con, &keys::chat_key("wa_group")).await, 15);
    let out = cli(
        &h,
        &[
            "learn",
            &path(&group),
            "--me",
            OWNER,
            "--contact",
            "wa_group2",
            "--json",
        ],
    );
    assert_eq!(json_lines(&out)[0]["messages"], json!({"me": 1, "them": 2}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreign_key_is_named_and_nothing_else_is_touched() {
    let mut h = Harness::start().await;
    let android = write(&h.dir, "maria.txt", ANDROID.as_bytes());
    let bob = write(&h.dir, "bob.txt", BOB_CHAT.as_bytes());
    learn_ok(&h, &bob, &["--contact", BOB]);
    let overall_before: String = h.con.get(keys::overall_key()).await.expect("overall");
    let chat = keys::chat_key(MARIA);
    let _: () = h.con.set(&chat, "another program's").await.expect("set");

    let path = android.to_str().expect("UTF-8");
    let out = cli(&h, &["learn", path, "--me", OWNER, "--contact", MARIA]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains(&chat) && err.contains(MARIA) && err.contains("sorted set"),
        "{err}"
    );
    let still: String = h.con.get(&chat).await.expect("get");
    assert_eq!(still, "another program's");
    assert!(
        !h.con
            .exists::<_, bool>(keys::style_key(MARIA))
            .await
            .expect("exists")
    );
    let set: Vec<String> = h.con.smembers(keys::contacts_key()).await.expect("set");
    assert_eq!(set, [BOB]);
    let overall_after: String = h.con.get(keys::overall_key()).await.expect("overall");
    assert_eq!(overall_after, overall_before);
    assert_eq!(zcard(&mut h.con, &keys::chat_key(BOB)).await, 4);

    let out = cli(&h, &["style", MARIA]);
    assert!(!out.status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_message_is_not_learned_again_from_an_export_and_the_cap_holds() {
    let mut h = Harness::start().await;
    let export = secondme::learn::export::parse_text(ANDROID);
    let lines: Vec<ChatLine> = export
        .messages
        .iter()
        .map(|m| ChatLine {
            ts: m.ts,
            me: m.author == OWNER,
            kind: m.kind,
            text: m.text.clone(),
        })
        .collect();
    // The worker saw "where are you?" live, in UTC, three hours off the phone's clock.
    let seen = ChatLine {
        ts: lines[9].ts + 3 * 3_600_000 + 17_345,
        ..lines[9].clone()
    };
    assert_eq!(seen.text, "where are you?");
    // Live learning grows only a chat already learned.
    let nobody = learned::add_live(&mut h.con, BOB, &seen, 1_000)
        .await
        .expect("live");
    assert_eq!(nobody, None);
    let bob_chat: bool = h.con.exists(keys::chat_key(BOB)).await.expect("exists");
    assert!(!bob_chat, "nothing written for a contact never learned");
    let head = learned::add_lines(&mut h.con, MARIA, &lines[..9], 1_000)
        .await
        .expect("add");
    assert_eq!(head.added, 9);
    let live = learned::add_live(&mut h.con, MARIA, &seen, 1_000)
        .await
        .expect("live")
        .expect("a learned chat grows");
    assert_eq!((live.added, live.total), (1, 10));
    let v1 = style_version(&mut h.con, MARIA).await;
    // The contact's newest message answers nothing yet: stored, no new version.
    let asked = ChatLine {
        ts: seen.ts + 60_000,
        me: false,
        kind: LineKind::Text,
        text: "still there?".into(),
    };
    let live = learned::add_live(&mut h.con, MARIA, &asked, 1_000)
        .await
        .expect("live")
        .expect("a learned chat grows");
    assert_eq!((live.added, live.total), (1, 11));
    assert_eq!(style_version(&mut h.con, MARIA).await, v1);
    let added = learned::add_lines(&mut h.con, MARIA, &lines, 1_000)
        .await
        .expect("add");
    assert_eq!((added.added, added.total), (2, 13));
    assert!(style_version(&mut h.con, MARIA).await > v1);
    let again = learned::add_lines(&mut h.con, MARIA, &lines, 1_000)
        .await
        .expect("add");
    assert_eq!(again.added, 0);
    let stored = learned::lines(&mut h.con, MARIA).await.expect("lines");
    let asked = stored.iter().filter(|l| l.text == "where are you?").count();
    assert_eq!(asked, 1, "the live message stands for the export's");

    // A cap of 5 keeps the newest 5; adding the chat again adds nothing.
    let capped = learned::add_lines(&mut h.con, BOB, &lines, 5)
        .await
        .expect("add");
    assert_eq!((capped.added, capped.total), (5, 5));
    let kept = learned::lines(&mut h.con, BOB).await.expect("lines");
    assert_eq!(kept, lines[7..]);
    let again = learned::add_lines(&mut h.con, BOB, &lines, 5)
        .await
        .expect("add");
    assert_eq!((again.added, again.total), (0, 5));
    let media = kept.iter().filter(|l| l.kind == LineKind::Media).count();
    assert_eq!(media, 0, "the photo was older than the newest 5");
}

/// Every key's whole content (every type), for finding a word anywhere.
async fn every_value(con: &mut Con) -> HashMap<String, String> {
    let mut all = HashMap::new();
    let mut keys: Vec<String> = Vec::new();
    let mut cursor = 0u64;
    loop {
        let (next, page): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("COUNT")
            .arg(1000)
            .query_async(con)
            .await
            .expect("scan");
        keys.extend(page);
        if next == 0 {
            break;
        }
        cursor = next;
    }
    for key in keys {
        let kind: String = redis::cmd("TYPE")
            .arg(&key)
            .query_async(con)
            .await
            .expect("type");
        let parts: Vec<Vec<u8>> = match kind.as_str() {
            "string" => vec![con.get(&key).await.expect("get")],
            "list" => con.lrange(&key, 0, -1).await.expect("lrange"),
            "set" => con.smembers(&key).await.expect("smembers"),
            "zset" => con.zrange(&key, 0, -1).await.expect("zrange"),
            "hash" => {
                let h: Vec<(Vec<u8>, Vec<u8>)> = con.hgetall(&key).await.expect("hgetall");
                h.into_iter().flat_map(|(f, v)| [f, v]).collect()
            }
            "stream" => {
                let r: redis::streams::StreamRangeReply =
                    con.xrange_all(&key).await.expect("xrange");
                r.ids
                    .into_iter()
                    .flat_map(|e| {
                        let id = e.id.into_bytes();
                        e.map.into_iter().flat_map(move |(f, v)| {
                            let v = redis::from_redis_value::<Vec<u8>>(v).unwrap_or_default();
                            [[id.clone(), b" ".to_vec(), f.into_bytes()].concat(), v]
                        })
                    })
                    .collect()
            }
            other => panic!("{key} is a {other}: not read"),
        };
        // Sorted: fields of a hash or stream entry come in no fixed order.
        let mut parts = parts;
        parts.sort();
        let joined = parts
            .iter()
            .map(|p| String::from_utf8_lossy(p))
            .collect::<Vec<_>>()
            .join("\n");
        all.insert(key, joined);
    }
    all
}

fn holding(all: &HashMap<String, String>, word: &str) -> Vec<String> {
    let mut keys: Vec<String> = all
        .iter()
        .filter(|(k, v)| k.contains(word) || v.contains(word))
        .map(|(k, _)| k.clone())
        .collect();
    keys.sort();
    keys
}

/// A reply entry as the worker writes it.
async fn reply(con: &mut Con, contact: &str, reply_id: &str, content: &str) {
    let _: String = con
        .xadd(
            schema::queue_responses(),
            "*",
            &[
                (schema::response_fields::REPLY_ID, reply_id),
                (schema::response_fields::CONTACT_ID, contact),
                (schema::response_fields::CONTENT, content),
                (schema::response_fields::IN_REPLY_TO, "m"),
            ],
        )
        .await
        .expect("xadd reply");
}

/// A waiting draft as the worker writes it: its hash, its `DRAFTS` member and
/// a request to have it written again.
async fn draft(con: &mut Con, contact: &str, content: &str) {
    use schema::drafts::{self as d, fields};
    let draft_id = d::draft_id(&format!("{contact}_m"));
    let _: () = con
        .hset_multiple(
            d::draft_key(contact),
            &[
                (fields::DRAFT_ID, draft_id.as_str()),
                (fields::CONTACT_ID, contact),
                (fields::CONTENT, content),
                (fields::IN_REPLY_TO, "m"),
                (fields::CREATED_AT, "1"),
                (fields::EXPIRES_AT, "2"),
            ],
        )
        .await
        .expect("draft");
    let _: () = con.zadd(d::drafts_key(), contact, 2).await.expect("index");
    let _: () = con
        .hset(d::regenerate_key(), contact, &draft_id)
        .await
        .expect("regenerate");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forget_leaves_no_key_holding_the_chat_and_spares_the_others() {
    let mut h = Harness::start().await;
    let android = write(&h.dir, "maria.txt", ANDROID.as_bytes());
    let bob = write(&h.dir, "bob.txt", BOB_CHAT.as_bytes());
    learn_ok(&h, &android, &["--contact", MARIA]);
    learn_ok(&h, &bob, &["--contact", BOB]);
    let said = format!("the {MARKER} again");
    let bob_said = format!("{OTHER_MARKER} tomorrow?");
    let event = |contact: &str, content: &str| {
        json!({"messageId": "x", "contactId": contact, "content": content,
               "botSent": false, "timestamp": 1})
        .to_string()
    };
    let c = &mut h.con;
    let _: () = c
        .lpush(schema::history_key(MARIA), event(MARIA, &said))
        .await
        .expect("history");
    let _: () = c
        .lpush(schema::own_history_key(MARIA), event(MARIA, &said))
        .await
        .expect("own");
    let _: () = c
        .lpush(schema::history_key(BOB), event(BOB, &bob_said))
        .await
        .expect("history");
    let _: () = c
        .set(keys::eval_key(MARIA), json!({"real": [said]}).to_string())
        .await
        .expect("eval");
    // Queued messages, one of them pending in the workers' group; the original
    // gateway's payload form too.
    let _: () = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(schema::queue_messages())
        .arg(schema::WORKER_GROUP)
        .arg("$")
        .arg("MKSTREAM")
        .query_async(c)
        .await
        .expect("group");
    h.send(&incoming("m1", MARIA, &said)).await;
    h.send(&incoming("b1", BOB, &bob_said)).await;
    let payload = json!({"messageId": "m2", "contactId": MARIA, "content": said, "timestamp": 1});
    h.send_raw(&[("payload", payload.to_string().as_bytes())])
        .await;
    let c = &mut h.con;
    let _: redis::Value = redis::cmd("XREADGROUP")
        .arg("GROUP")
        .arg(schema::WORKER_GROUP)
        .arg("w1")
        .arg("COUNT")
        .arg(10)
        .arg("STREAMS")
        .arg(schema::queue_messages())
        .arg(">")
        .query_async(c)
        .await
        .expect("read");
    assert_eq!(common::streams::workers_pending(c).await, 3);
    reply(c, MARIA, "bot_m1", &said).await;
    reply(c, BOB, "bot_b1", &bob_said).await;
    let _: () = c
        .set(schema::sent_reply_key("bot_m1"), "sending:w")
        .await
        .expect("mark");
    let _: () = c
        .hset(schema::send_fail_key("bot_m1"), "attempts", 1)
        .await
        .expect("fail");
    let _: String = c
        .xadd(
            schema::queue_deadletter(),
            "*",
            &[
                ("sourceId", "1-0"),
                ("reason", "test"),
                ("contactId", MARIA),
                ("content", said.as_str()),
            ],
        )
        .await
        .expect("dead letter");
    draft(c, MARIA, &said).await;
    draft(c, BOB, &bob_said).await;
    let _: () = c
        .hset_multiple(schema::unanswered(), &[(MARIA, 2), (BOB, 1)])
        .await
        .expect("unanswered");
    let night = |who: &str, text: &str| {
        serde_json::json!({"streamId": "1-1", "message": {"messageId": "n", "contactId": who,
            "content": text, "botSent": false, "timestamp": 1}})
        .to_string()
    };
    let _: () = c
        .hset_multiple(
            schema::deferred(),
            &[(MARIA, night(MARIA, &said)), (BOB, night(BOB, &bob_said))],
        )
        .await
        .expect("a night kept for the morning");
    let before = every_value(c).await;
    let mut planted = vec![
        schema::drafts::draft_key(MARIA),
        keys::chat_key(MARIA),
        keys::eval_key(MARIA),
        schema::history_key(MARIA),
        schema::own_history_key(MARIA),
        schema::queue_messages().to_owned(),
        schema::queue_responses().to_owned(),
        schema::queue_deadletter().to_owned(),
        schema::deferred().to_owned(),
    ];
    planted.sort();
    assert_eq!(holding(&before, MARKER), planted);

    // Not on a terminal and without --yes: refused, nothing removed.
    let refused = cli(&h, &["forget", MARIA]);
    assert!(!refused.status.success());
    assert!(
        text(&refused.stderr).contains("--yes"),
        "{}",
        text(&refused.stderr)
    );
    assert_eq!(every_value(&mut h.con).await, before);

    let out = cli(&h, &["forget", MARIA, "--yes"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let shown = text(&out.stdout);
    for line in [
        "learned messages  12",
        "keys deleted      8",
        "queued messages   2",
        "replies           1",
        "dead letters      1",
    ] {
        assert!(shown.contains(line), "{line:?} in {shown}");
    }
    let after = every_value(&mut h.con).await;
    assert_eq!(holding(&after, MARKER), Vec::<String>::new());
    let mut spared = vec![
        schema::drafts::draft_key(BOB),
        keys::chat_key(BOB),
        schema::history_key(BOB),
        schema::queue_messages().to_owned(),
        schema::queue_responses().to_owned(),
        schema::deferred().to_owned(),
    ];
    spared.sort();
    assert_eq!(holding(&after, OTHER_MARKER), spared);
    let c = &mut h.con;
    assert_eq!(
        common::streams::workers_pending(c).await,
        1,
        "Bob's entry still pending"
    );
    let set: Vec<String> = c.smembers(keys::contacts_key()).await.expect("set");
    assert_eq!(set, [BOB]);
    let overall: String = c.get(keys::overall_key()).await.expect("overall");
    let bob_style: String = c.get(keys::style_key(BOB)).await.expect("style");
    let (overall, bob_style): (Value, Value) = (
        serde_json::from_str(&overall).expect("JSON"),
        serde_json::from_str(&bob_style).expect("JSON"),
    );
    assert_eq!(
        overall["tally"], bob_style["tally"],
        "the overall is Bob's alone now"
    );
    assert_eq!(zcard(c, &keys::chat_key(BOB)).await, 4);
    let waiting: Vec<String> = c
        .zrange(schema::drafts::drafts_key(), 0, -1)
        .await
        .expect("drafts");
    assert_eq!(
        waiting,
        [BOB],
        "Maria's draft is out of the index, Bob's stays"
    );
    let asked: Vec<String> = c
        .hkeys(schema::drafts::regenerate_key())
        .await
        .expect("requests");
    assert_eq!(asked, [BOB], "Maria's request to write it again is gone");
    let unanswered: HashMap<String, u64> =
        c.hgetall(schema::unanswered()).await.expect("unanswered");
    assert_eq!(
        unanswered,
        HashMap::from([(BOB.to_owned(), 1)]),
        "Maria's unanswered count is gone, Bob's stays"
    );
    let nights: Vec<String> = c.hkeys(schema::deferred()).await.expect("deferred");
    assert_eq!(nights, [BOB], "Maria's night is gone, Bob's stays");
}

/// The key events Redis publishes (`notify-keyspace-events`) while `during`
/// runs, in order, as `(event, key)`, until half a second passes without one.
async fn key_events(
    h: &Harness,
    during: impl std::future::Future<Output = ()>,
) -> Vec<(String, String)> {
    use futures_util::StreamExt;
    let mut con = h.con.clone();
    let () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("notify-keyspace-events")
        .arg("KEA")
        .query_async(&mut con)
        .await
        .expect("notifications on");
    let client = secondme::connection::open_client(&h.server.url()).expect("client");
    let mut pubsub = client.get_async_pubsub().await.expect("pubsub");
    pubsub
        .psubscribe("__keyevent@*__:*")
        .await
        .expect("psubscribe");
    let mut stream = pubsub.into_on_message();
    during.await;
    let mut events = Vec::new();
    let wait = std::time::Duration::from_millis(500);
    while let Ok(Some(msg)) = tokio::time::timeout(wait, stream.next()).await {
        let event = msg
            .get_channel_name()
            .rsplit(':')
            .next()
            .unwrap_or("")
            .to_owned();
        let key: String = msg.get_payload().unwrap_or_default();
        events.push((event, key));
    }
    events
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forget_purges_the_streams_before_it_deletes_the_keys() {
    let mut h = Harness::start().await;
    let lines = secondme::learn::export::parse_text(ANDROID).into_chat_lines(OWNER);
    learned::add_lines(&mut h.con, MARIA, &lines, 1_000)
        .await
        .expect("learn");
    h.send(&incoming("m1", MARIA, "see you")).await;
    reply(&mut h.con, MARIA, "bot_m1", "ok").await;
    let mut con = h.con.clone();
    let events = key_events(&h, async move {
        learned::forget(&mut con, MARIA).await.expect("forget");
    })
    .await;
    let at = |event: &str, key: &str| {
        events
            .iter()
            .position(|(e, k)| e == event && k == key)
            .unwrap_or_else(|| panic!("no {event} of {key} in {events:?}"))
    };
    let chat_gone = at("del", &keys::chat_key(MARIA));
    for stream in [schema::queue_messages(), schema::queue_responses()] {
        assert!(
            at("xdel", stream) < chat_gone,
            "{stream} purged after the keys: {events:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_eval_never_overwrites_another_programs_key_and_foreign_members_are_left_out() {
    let mut h = Harness::start().await;
    let _: () = h
        .con
        .hset(keys::eval_key(MARIA), "theirs", "1")
        .await
        .expect("hset");
    let err = learned::save_eval(&mut h.con, MARIA, &json!({"holdout": 1}))
        .await
        .expect_err("another program's key");
    assert!(
        err.to_string().contains(&keys::eval_key(MARIA)),
        "the key is named: {err}"
    );
    let kept: HashMap<String, String> = h.con.hgetall(keys::eval_key(MARIA)).await.expect("hash");
    assert_eq!(kept.get("theirs").map(String::as_str), Some("1"));
    learned::save_eval(&mut h.con, BOB, &json!({"holdout": 1}))
        .await
        .expect("a string key is SecondMe's");

    let lines = secondme::learn::export::parse_text(BOB_CHAT).into_chat_lines(OWNER);
    learned::add_lines(&mut h.con, BOB, &lines, 1_000)
        .await
        .expect("learn");
    let _: () = h
        .con
        .sadd(keys::contacts_key(), &["\u{1b}[31mevil", "has space"])
        .await
        .expect("sadd");
    let _: () = h
        .con
        .sadd(keys::contacts_key(), &b"\xff\xfe"[..])
        .await
        .expect("sadd");
    assert_eq!(
        learned::contacts(&mut h.con).await.expect("contacts"),
        [BOB],
        "members that are no contact id are left out"
    );
}
