//! `secondme learn FILE...`, `secondme style [CONTACT]` and `secondme forget
//! CONTACT`: importing chat exports, showing the learned style, and removing a
//! contact's text. Counts and the profile's figures are printed, never a
//! message.
//!
//! An export's times are the phone's wall clock, without a zone: they are
//! learned as UTC through this host's time zone (`TZ`, else `/etc/localtime`,
//! daylight saving time followed), as the live messages are, so an export
//! taken where the importing machine is agrees with what the worker saw. The
//! report's `first` and `last` keep the export's times as written.

use std::collections::{BTreeSet, HashMap};
use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use secondme::config::Config;
use secondme::connection::Con;
use secondme::learn::export::{self, ParsedExport};
use secondme::learn::{LineKind, StyleProfile};
use secondme::store::{self, dialects, learned};
use secondme::{connection, graph, schema};
use serde_json::json;

use super::common::connect;
use super::output::{format_ms, list_or_none, printable};
use super::progress::Progress;
use super::status::terminal_safe_json;

/// What `secondme learn` was asked.
pub(super) struct LearnArgs {
    /// The export files.
    pub(super) files: Vec<PathBuf>,
    /// The owner's name as the exports show it.
    pub(super) me: Option<String>,
    /// The contact to learn every file as.
    pub(super) contact: Option<String>,
    /// One JSON object per file.
    pub(super) json: bool,
}

/// `secondme learn FILE... [--me NAME] [--contact ID] [--json]`: each file
/// read and added to its contact's learned chat; a file that fails is reported
/// and the others still learned, the exit status says so at the end.
pub(super) async fn learn(config: &Config, args: LearnArgs) -> Result<()> {
    let Some(me) = args.me.clone().or_else(|| config.owner_name.clone()) else {
        bail!(
            "who are you in these chats? pass --me NAME (your name as the export shows it) \
             or set owner_name in the config"
        );
    };
    if let Some(c) = &args.contact {
        store::ensure_contact_id(c)?;
    }
    let mut con = connect(config).await?;
    let mut known: Option<Vec<(String, String)>> = None;
    let mut failed = 0;
    for file in &args.files {
        match learn_file(config, &mut con, &args, &me, file, &mut known).await {
            Ok(report) if args.json => println!("{}", terminal_safe_json(&report.to_string())),
            Ok(report) => print_summary(&printable(&file.display().to_string()), &report),
            Err(e) => {
                failed += 1;
                let why = connection::scrub(&format!("{e:#}"));
                if args.json {
                    let error = json!({"file": file.display().to_string(), "error": why});
                    println!("{}", terminal_safe_json(&error.to_string()));
                }
                eprintln!("secondme: {}", printable_long(&why));
            }
        }
    }
    if failed > 0 {
        bail!(
            "{failed} of {} files could not be learned",
            args.files.len()
        );
    }
    Ok(())
}

/// One file read, its contact found and its messages added; the report
/// `--json` prints.
async fn learn_file(
    config: &Config,
    con: &mut Con,
    args: &LearnArgs,
    me: &str,
    file: &Path,
    known: &mut Option<Vec<(String, String)>>,
) -> Result<serde_json::Value> {
    // The parser's errors name the file; the others are given it here.
    let parsed = export::read_file(file)?;
    let shown = || printable(&file.display().to_string());
    let authors: Vec<String> = parsed.authors().into_iter().map(|(a, _)| a).collect();
    let owner = find_owner(&authors, me).with_context(shown)?;
    let contact = match &args.contact {
        Some(c) => c.clone(),
        None => {
            if known.is_none() {
                *known = Some(known_contacts(con).await?);
            }
            find_contact(&authors, &owner, known.as_deref().unwrap_or_default())
                .with_context(shown)?
        }
    };
    let mut report = summary(&parsed, &owner);
    let mut lines = parsed.into_chat_lines(&owner);
    let mut zone = LocalZone::default();
    for line in &mut lines {
        line.ts = zone.utc_of(line.ts);
    }
    let name = file.file_name().unwrap_or(file.as_os_str());
    let label = format!("learning {}", name.to_string_lossy());
    let mut bar = Progress::new(&label, lines.len() as u64, !args.json);
    let added = learned::add_lines_with_progress(
        con,
        &contact,
        &lines,
        config.learn.max_messages,
        &mut |done, _| bar.set(done as u64),
    )
    .await
    .with_context(shown)?;
    bar.finish();
    report["file"] = json!(file.display().to_string());
    report["contact"] = json!(contact);
    report["added"] = json!(added.added);
    report["kept"] = json!(added.total);
    Ok(report)
}

/// The owner among the authors: `me` exactly, else the one author equal to it
/// ignoring case.
fn find_owner(authors: &[String], me: &str) -> Result<String> {
    if let Some(a) = authors.iter().find(|a| *a == me) {
        return Ok(a.clone());
    }
    let folded: Vec<&String> = authors
        .iter()
        .filter(|a| a.to_lowercase() == me.to_lowercase())
        .collect();
    match folded.as_slice() {
        [one] => Ok((*one).clone()),
        _ => bail!(
            "--me {:?} is not one of the chat's authors: {} (pass --me with your name as the export shows it)",
            printable(me),
            shown_list(authors)
        ),
    }
}

/// The contact of a chat with one other author, found by that author's name
/// among the contacts the project knows.
fn find_contact(authors: &[String], owner: &str, known: &[(String, String)]) -> Result<String> {
    let others: Vec<&String> = authors.iter().filter(|a| *a != owner).collect();
    let [other] = others.as_slice() else {
        bail!(
            "the chat's authors are {}: with {} other author(s), pass --contact ID to name the \
             contact to learn it as",
            shown_list(authors),
            others.len()
        );
    };
    let wanted = other.trim().to_lowercase();
    let ids: BTreeSet<&str> = known
        .iter()
        .filter(|(_, name)| name.trim().to_lowercase() == wanted)
        .map(|(id, _)| id.as_str())
        .collect();
    let ids: Vec<String> = ids.into_iter().map(str::to_owned).collect();
    match ids.as_slice() {
        [one] => Ok(one.clone()),
        [] => bail!(
            "no known contact is named {:?} (the chat's authors are {}): pass --contact ID",
            printable(other),
            shown_list(authors)
        ),
        _ => bail!(
            "several contacts are named {:?} ({}): pass --contact ID",
            printable(other),
            shown_list(&ids)
        ),
    }
}

/// `(contact id, name)` of every contact with a name: the gateway's
/// `CONTACTS:names`, the graph's contacts when FalkorDB is loaded, and the
/// original dashboard's `CONTACTS:list`.
async fn known_contacts(con: &mut Con) -> Result<Vec<(String, String)>> {
    let key = schema::contact_names();
    let names: redis::RedisResult<Vec<(String, String)>> =
        redis::cmd("HGETALL").arg(key).query_async(con).await;
    let mut known = match names {
        Ok(n) => n,
        // Another program's key: its names are not read.
        Err(e) if e.code() == Some("WRONGTYPE") => Vec::new(),
        Err(e) => return Err(e).with_context(|| format!("cannot read {key}")),
    };
    if graph::available(con).await {
        known.extend(graph::contact_names(con).await?);
    }
    known.extend(dialects::contact_names(con).await.unwrap_or_default());
    Ok(known)
}

/// The file's figures as `--json` prints them (file, contact and added come later).
fn summary(parsed: &ParsedExport, owner: &str) -> serde_json::Value {
    let by = |me: bool| {
        parsed
            .messages
            .iter()
            .filter(|m| (m.author == owner) == me)
            .count()
    };
    let first = parsed.messages.iter().map(|m| m.ts).min();
    let last = parsed.messages.iter().map(|m| m.ts).max();
    json!({
        "format": parsed.format,
        "day_first": parsed.day_first,
        "messages": {"me": by(true), "them": by(false)},
        "media": parsed.count(LineKind::Media),
        "system": parsed.system,
        "deleted": parsed.count(LineKind::Deleted),
        "first": first.map(iso),
        "last": last.map(iso),
        "skipped": parsed.skipped,
    })
}

/// The export's messages as learned lines, the parse dropped as it goes.
/// A few lines per file, counts only.
fn print_summary(file: &str, r: &serde_json::Value) {
    let n = |path: &[&str]| {
        path.iter()
            .try_fold(r, |v, k| v.get(k))
            .and_then(serde_json::Value::as_u64)
            .unwrap_or(0)
    };
    let day = |k: &str| {
        r[k].as_str()
            .and_then(|s| s.get(..10))
            .unwrap_or("-")
            .to_owned()
    };
    println!(
        "{file}: {} messages (you {}, them {}), media {}, deleted {}, system lines {}, {} to {}",
        n(&["messages", "me"]) + n(&["messages", "them"]),
        n(&["messages", "me"]),
        n(&["messages", "them"]),
        n(&["media"]),
        n(&["deleted"]),
        n(&["system"]),
        day("first"),
        day("last"),
    );
    let skipped: u64 = r["skipped"]
        .as_object()
        .map(|o| o.values().filter_map(serde_json::Value::as_u64).sum())
        .unwrap_or(0);
    if skipped > 0 {
        println!("  {skipped} lines could not be read");
    }
    println!(
        "  learned as contact {}: {} new, {} kept",
        printable(r["contact"].as_str().unwrap_or_default()),
        n(&["added"]),
        n(&["kept"]),
    );
}

/// `secondme style [CONTACT] [--json]`: the learned profile of a contact, or
/// the overall one.
pub(super) async fn style(config: &Config, contact: Option<&str>, json: bool) -> Result<()> {
    if let Some(c) = contact {
        store::ensure_contact_id(c)?;
    }
    let mut con = connect(config).await?;
    let Some(profile) = learned::profile(&mut con, contact).await? else {
        match contact {
            Some(c) => bail!(
                "nothing is learned for contact {c} yet: import a chat with \
                 `secondme learn FILE --contact {c}`"
            ),
            None => bail!("nothing is learned yet: import a chat with `secondme learn FILE`"),
        }
    };
    if json {
        let text = serde_json::to_string_pretty(&profile).context("cannot encode the profile")?;
        println!("{}", terminal_safe_json(&text));
        return Ok(());
    }
    match contact {
        Some(c) => println!("how you write to {c}, from {} messages", profile.samples),
        None => println!("how you write, from {} messages", profile.samples),
    }
    for (what, figure) in profile_rows(&profile) {
        println!("  {what:<20}{}", printable(&figure));
    }
    Ok(())
}

/// The profile in plain words, one measure a row.
fn profile_rows(p: &StyleProfile) -> Vec<(&'static str, String)> {
    let pct = |x: f64| format!("{:.0}% of messages", x * 100.0);
    let each = |x: f64| format!("{x:.2} a message");
    let with_top = |x: f64, top: &[String]| match top {
        [] => each(x),
        top => format!("{}; most used: {}", each(x), top.join(" ")),
    };
    vec![
        (
            "length",
            format!(
                "median {:.0} characters, 90% under {:.0}",
                p.median_chars, p.p90_chars
            ),
        ),
        ("emoji", with_top(p.emoji_per_message, &p.top_emoji)),
        ("starts lowercase", pct(p.starts_lowercase)),
        ("ends with a period", pct(p.ends_with_period)),
        ("exclamations", each(p.exclamations_per_message)),
        ("questions", each(p.questions_per_message)),
        ("ellipsis", pct(p.ellipsis_share)),
        (
            "laughter",
            with_top(p.laughter_per_message, &p.top_laughter),
        ),
        ("greetings", list_or_none(&p.top_greetings)),
        ("sign-offs", list_or_none(&p.top_signoffs)),
        ("languages", list_or_none(&p.languages)),
        (
            "several in a row",
            format!(
                "{:.0}% of your turns, {:.1} messages a turn",
                p.several_in_a_row * 100.0,
                p.messages_per_turn
            ),
        ),
        (
            "reply time",
            match p.reply_time_median_s {
                Some(s) => format!("median {}", format_ms((s * 1000.0) as i64)),
                None => "unknown".into(),
            },
        ),
    ]
}

/// `secondme forget CONTACT [--yes]`: every trace of the contact's text removed
/// from Redis, after the operator typed its id (or with `--yes`).
pub(super) async fn forget(config: &Config, contact: &str, yes: bool) -> Result<()> {
    store::ensure_contact_id(contact)?;
    if !yes {
        confirm(contact)?;
    }
    let mut con = connect(config).await?;
    let gone = learned::forget(&mut con, contact).await?;
    println!("forgot contact {contact}:");
    let rows = [
        ("learned messages", gone.learned_messages),
        ("keys deleted", gone.keys),
        ("queued messages", gone.queued),
        ("replies", gone.replies),
        ("dead letters", gone.dead_letters),
    ];
    for (what, n) in rows {
        println!("  {what:<18}{n}");
    }
    Ok(())
}

/// Asks the operator to type the contact id; refuses without a terminal.
fn confirm(contact: &str) -> Result<()> {
    if !(std::io::stdin().is_terminal() && std::io::stderr().is_terminal()) {
        bail!("not on a terminal: pass --yes to forget contact {contact}");
    }
    let mut err = std::io::stderr();
    write!(
        err,
        "This removes contact {contact}'s learned chat, history and queued messages from \
         Redis.\nType the contact id to confirm: "
    )
    .context("cannot ask for confirmation")?;
    err.flush().context("cannot ask for confirmation")?;
    let mut typed = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut typed)
        .context("cannot read the confirmation")?;
    if typed.trim() != contact {
        bail!("not confirmed: nothing was removed");
    }
    Ok(())
}

/// Names from a file, made printable and joined.
fn shown_list(items: &[String]) -> String {
    let shown: Vec<String> = items
        .iter()
        .map(|a| format!("{:?}", printable(a)))
        .collect();
    list_or_none(&shown)
}

/// An error that may be long (a list of authors), made printable, uncut.
fn printable_long(s: &str) -> String {
    secondme_ui::sanitize::clean(s, 2_000)
}

/// This host's time zone, its UTC offset remembered per wall-clock hour (a
/// zone changes offset on the hour, and `mktime` costs a microsecond).
#[derive(Default)]
struct LocalZone {
    offsets: HashMap<i64, i64>,
}

impl LocalZone {
    /// The UTC time of `wall_ms`, a wall-clock time here written as if UTC.
    /// A time a clock change skipped or repeated is read as the C library
    /// reads it; one it cannot place stays as it is.
    fn utc_of(&mut self, wall_ms: i64) -> i64 {
        let hour = wall_ms.div_euclid(3_600_000);
        let offset = *self
            .offsets
            .entry(hour)
            .or_insert_with(|| utc_offset_ms(hour * 3_600_000).unwrap_or(0));
        wall_ms - offset
    }
}

/// How far this host's wall clock was ahead of UTC at `wall_ms` (a wall-clock
/// time written as if UTC), from the C library's time zone rules.
fn utc_offset_ms(wall_ms: i64) -> Option<i64> {
    let secs = wall_ms.div_euclid(1000);
    let (days, rest) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = export::civil_from_days(days);
    let int = |v: i64| libc::c_int::try_from(v).ok();
    // SAFETY: a zeroed `tm` is a valid value of the plain C struct.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    tm.tm_year = int(y - 1900)?;
    tm.tm_mon = int(m - 1)?;
    tm.tm_mday = int(d)?;
    tm.tm_hour = int(rest / 3600)?;
    tm.tm_min = int(rest % 3600 / 60)?;
    tm.tm_sec = int(rest % 60)?;
    // Let the rules say whether daylight saving time applied then.
    tm.tm_isdst = -1;
    // SAFETY: `mktime` reads and normalises the `tm` we own and keeps no
    // pointer to it; it reads the process's zone, which nothing here changes.
    let utc = unsafe { libc::mktime(&mut tm) };
    // -1 is an error (or the one second before 1970: no matter, a zone's
    // offset is the same a second apart). `time_t` is 64-bit here but 32-bit
    // on some targets.
    #[allow(clippy::useless_conversion)]
    let utc = i64::from(utc);
    (utc != -1).then(|| secs * 1000 - utc * 1000)
}

/// `2016-08-06T13:23:00` of a ms timestamp (the export's time as written).
fn iso(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (days, rest) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = export::civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

#[cfg(test)]
mod tests {
    // The parent by its full path: a `super` path in this folder names a sibling file.
    use secondme::learn::export::ExportMessage;

    use crate::cli::learn::{
        LineKind, LocalZone, ParsedExport, find_contact, find_owner, iso, json, summary,
    };

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn iso_times_match_the_calendar() {
        assert_eq!(iso(1_470_489_780_000), "2016-08-06T13:23:00");
        assert_eq!(iso(0), "1970-01-01T00:00:00");
        assert_eq!(iso(951_782_400_000), "2000-02-29T00:00:00");
        assert_eq!(iso(-1_000), "1969-12-31T23:59:59");
    }

    #[test]
    fn the_owner_is_found_exactly_then_ignoring_case() {
        let authors = names(&["Sam", "sam", "Maria"]);
        assert_eq!(find_owner(&authors, "sam").expect("exact"), "sam");
        assert_eq!(
            find_owner(&names(&["Sam", "Maria"]), "SAM").expect("case"),
            "Sam"
        );
        let err = find_owner(&authors, "Bob").expect_err("not an author");
        assert!(err.to_string().contains("\"Maria\""), "{err}");
    }

    #[test]
    fn the_contact_is_the_one_known_by_the_other_authors_name() {
        let known = vec![
            ("wa_1".to_owned(), "Maria ".to_owned()),
            ("wa_2".to_owned(), "Ana".to_owned()),
            ("wa_3".to_owned(), "ana".to_owned()),
        ];
        let authors = names(&["Sam", "maria"]);
        assert_eq!(
            find_contact(&authors, "Sam", &known).expect("found"),
            "wa_1"
        );
        let twice = find_contact(&names(&["Sam", "Ana"]), "Sam", &known).expect_err("two");
        assert!(twice.to_string().contains("wa_2") && twice.to_string().contains("wa_3"));
        let group = find_contact(&names(&["Sam", "Ana", "Maria"]), "Sam", &known);
        assert!(group.expect_err("group").to_string().contains("--contact"));
    }

    #[test]
    fn every_message_becomes_a_line_on_its_side() {
        let parsed = ParsedExport {
            messages: vec![
                ExportMessage {
                    ts: 1,
                    author: "Sam".into(),
                    kind: LineKind::Text,
                    text: "hi".into(),
                },
                ExportMessage {
                    ts: 2,
                    author: "Maria".into(),
                    kind: LineKind::Media,
                    text: String::new(),
                },
            ],
            ..ParsedExport::default()
        };
        let report = summary(&parsed, "Sam");
        assert_eq!(report["messages"], json!({"me": 1, "them": 1}));
        assert_eq!(report["media"], 1);
        let lines = parsed.into_chat_lines("Sam");
        let sides: Vec<(bool, LineKind)> = lines.iter().map(|l| (l.me, l.kind)).collect();
        assert_eq!(sides, [(true, LineKind::Text), (false, LineKind::Media)]);
    }

    #[test]
    fn a_wall_clock_time_becomes_utc_in_this_hosts_zone() {
        // Whatever the zone, converting the wall clock of a UTC time gives it back.
        let utc = 1_470_489_780_000i64;
        let mut zone = LocalZone::default();
        let offset = {
            // The host's wall clock at `utc`, from localtime_r.
            let t = libc::time_t::try_from(utc / 1000).expect("fits");
            // SAFETY: localtime_r writes only the `tm` we own.
            let tm = unsafe {
                let mut tm: libc::tm = std::mem::zeroed();
                assert!(!libc::localtime_r(&t, &mut tm).is_null());
                tm
            };
            #[allow(clippy::useless_conversion)]
            let offset = i64::from(tm.tm_gmtoff);
            offset * 1000
        };
        assert_eq!(zone.utc_of(utc + offset), utc);
        assert_eq!(
            zone.utc_of(utc + offset + 59_000),
            utc + 59_000,
            "same hour, remembered"
        );
    }
}
