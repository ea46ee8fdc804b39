//! `secondme eval` end to end: a learned chat in a real Redis, the real binary,
//! the offline engine or a fake model over real HTTP that answers from the
//! prompt it reads. The owner writes short, lowercase, without a period, with
//! "haha"; the contact writes full sentences.

mod common;
#[path = "common/fake_llm.rs"]
mod fake_llm;

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use common::{Harness, run_cli};
use fake_llm::{FakeLlm, Step};
use redis::AsyncCommands;
use secondme::learn::{ChatLine, LineKind};
use secondme::store::learned;

/// The contact's messages, one per topic, and the owner's answers to each.
const TOPICS: &[(&str, &[&str])] = &[
    (
        "Are you coming to the party on Saturday?",
        &["haha ya im in", "ya ya haha", "haha obviously"],
    ),
    (
        "Did you finish the report for Monday?",
        &["nope haha", "almost done haha", "lol not yet"],
    ),
    (
        "Do you want to grab dinner tonight?",
        &["haha sure", "cant tonight sry", "ya haha"],
    ),
    (
        "Can you call me when you are free?",
        &["k in 5", "haha calling", "ok gimme a sec"],
    ),
    (
        "How was the concert yesterday evening?",
        &["so good haha", "loud lol", "haha amazing"],
    ),
    (
        "Did you see the news about the train strike?",
        &["ugh ya", "haha no way", "saw it lol"],
    ),
];

/// A word only the last training reply holds: it may reach a prompt.
const TRAINING_WORD: &str = "flamingoish";
/// A word only the last held-out reply holds: it must never reach a prompt.
const HELD_OUT_WORD: &str = "zanzibarish";
/// The contact's word in one held-out message that the failing model refuses.
const FAIL_WORD: &str = "xylophone";

const CONTACT: &str = "c-eval";

/// `n` exchanges a minute apart; with `holdout` held out, the last training
/// reply holds [`TRAINING_WORD`] and the last reply [`HELD_OUT_WORD`].
fn chat(n: usize, holdout: usize) -> Vec<ChatLine> {
    let mut lines = Vec::new();
    for i in 0..n {
        let (them, answers) = TOPICS[i % TOPICS.len()];
        let mut me = answers[(i / TOPICS.len()) % answers.len()].to_owned();
        if i + 1 == n - holdout {
            me = format!("haha {TRAINING_WORD}");
        }
        if i + 1 == n {
            me = format!("haha {HELD_OUT_WORD}");
        }
        let them = if i + 2 == n {
            format!("{them} Bring the {FAIL_WORD}")
        } else {
            them.to_owned()
        };
        let t = 1_600_000_000_000 + i as i64 * 600_000;
        lines.push(text(t, false, &them));
        lines.push(text(t + 60_000, true, &me));
    }
    lines
}

fn text(ts: i64, me: bool, text: &str) -> ChatLine {
    ChatLine {
        ts,
        me,
        kind: LineKind::Text,
        text: text.into(),
    }
}

/// A harness whose Redis holds the learned chat of [`CONTACT`].
async fn learned_chat(n: usize, holdout: usize) -> Harness {
    let mut h = Harness::start().await;
    learned::add_lines(&mut h.con, CONTACT, &chat(n, holdout), 10_000)
        .await
        .expect("learn the chat");
    h
}

/// Writes the test's config file where `run_cli` makes the binary look.
fn write_config(dir: &Path, toml: &str) {
    let config = dir.join("config").join("secondme");
    std::fs::create_dir_all(&config).expect("config dir");
    std::fs::write(config.join("config.toml"), toml).expect("config file");
}

/// Runs `secondme ARGS` off the async runtime, so a fake model can answer it.
async fn eval(h: &Harness, args: &[&str]) -> std::process::Output {
    let url = h.server.url();
    let dir = h.dir.to_path_buf();
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run_cli(&url, &dir, &args)
    })
    .await
    .expect("run secondme")
}

/// The one JSON object `secondme eval --json` printed for one contact.
fn one_report(out: &std::process::Output) -> serde_json::Value {
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "eval failed: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "one object per contact: {stdout}");
    serde_json::from_str(lines[0]).expect("the line is JSON")
}

fn distance(report: &serde_json::Value, side: &str) -> f64 {
    report[side]["style_distance"]
        .as_f64()
        .unwrap_or_else(|| panic!("{side}.style_distance is a number: {report}"))
}

/// The figure of `measure` for `side` (`owner` from the twin's rows).
fn figure(report: &serde_json::Value, side: &str, measure: &str) -> f64 {
    let rows_of = if side == "owner" { "twin" } else { side };
    let field = if side == "owner" {
        "owner"
    } else {
        "generated"
    };
    report[rows_of]["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .find(|r| r["measure"] == measure)
        .and_then(|r| r[field].as_f64())
        .unwrap_or_else(|| panic!("no {measure} for {side}: {report}"))
}

fn keys(v: &serde_json::Value) -> BTreeSet<&str> {
    v.as_object()
        .expect("an object")
        .keys()
        .map(String::as_str)
        .collect()
}

#[tokio::test]
async fn offline_the_twin_writes_closer_to_the_owner_than_the_baseline() {
    let h = learned_chat(60, 20).await;
    let report = one_report(&eval(&h, &["eval", "--contact", CONTACT, "--json"]).await);
    let (twin, baseline) = (distance(&report, "twin"), distance(&report, "baseline"));
    assert!(
        twin < baseline,
        "twin {twin} must be closer than baseline {baseline}: {report}"
    );
    // The owner's figures, known by construction: lowercase, never a period.
    assert_eq!(figure(&report, "owner", "starts_lowercase"), 1.0);
    assert_eq!(figure(&report, "owner", "ends_with_period"), 0.0);
    // The offline twin answers with the owner's own past replies.
    assert_eq!(figure(&report, "twin", "starts_lowercase"), 1.0);
    assert_eq!(figure(&report, "twin", "ends_with_period"), 0.0);
}

#[tokio::test]
async fn the_table_shows_figures_and_no_text_of_the_chat() {
    let h = learned_chat(60, 20).await;
    let out = eval(&h, &["eval", "--holdout", "10"]).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}\n{stdout}");
    assert!(
        stdout.contains(&format!("{CONTACT}: 10 held-out replies")),
        "{stdout}"
    );
    for header in ["measure", "owner", "twin", "baseline", "style_distance"] {
        assert!(stdout.contains(header), "no {header} in\n{stdout}");
    }
    let said = format!("{stdout}{stderr}");
    for (them, answers) in TOPICS {
        assert!(!said.contains(them), "the chat's text was printed:\n{said}");
        for a in *answers {
            // Short answers could be a measure's name by chance; these are not.
            assert!(!said.contains(&format!(" {a} ")), "{a:?} printed:\n{said}");
        }
    }
    assert!(!said.contains(HELD_OUT_WORD) && !said.contains(TRAINING_WORD));
    assert!(
        !stderr.contains('\r'),
        "no progress bar when piped: {stderr:?}"
    );
}

#[tokio::test]
async fn a_terminal_shows_a_progress_bar_and_json_never_does() {
    let h = learned_chat(40, 10).await;
    let url = h.server.url();
    let mut screen = common::pty::Screen::start_with(&url, 40, 120, &["eval", "--holdout", "10"]);
    screen.wait_exit(Duration::from_secs(30), "eval on a terminal");
    let raw = screen.raw_text();
    assert!(raw.contains(&format!("{CONTACT} [")), "a bar: {raw:?}");
    assert!(
        raw.contains("/20  "),
        "done/total of 2 x 10 generations: {raw:?}"
    );
    assert!(raw.contains("style_distance"), "{raw:?}");

    let mut screen =
        common::pty::Screen::start_with(&url, 40, 120, &["eval", "--holdout", "10", "--json"]);
    screen.wait_exit(Duration::from_secs(30), "eval --json on a terminal");
    let raw = screen.raw_text();
    assert!(raw.contains("\"style_distance\""), "{raw:?}");
    assert!(
        !raw.contains(&format!("{CONTACT} [")) && !raw.contains("\x1b[2K"),
        "no bar with --json: {raw:?}"
    );
}

/// Runs `secondme --redis-url URL ARGS` with stderr on a terminal and stdout
/// written to `out`; returns what reached the terminal.
fn stderr_on_a_terminal(h: &Harness, out: &Path, args: &[&str]) -> String {
    use portable_pty::{CommandBuilder, PtySize, native_pty_system};
    use std::io::Read;
    let pty = native_pty_system()
        .openpty(PtySize {
            rows: 40,
            cols: 120,
            pixel_width: 0,
            pixel_height: 0,
        })
        .expect("pty");
    let mut cmd = CommandBuilder::new("sh");
    let script = r#"bin="$1"; out="$2"; shift 2; exec "$bin" "$@" > "$out""#;
    cmd.args(["-c", script, "sh", env!("CARGO_BIN_EXE_secondme")]);
    cmd.arg(out);
    cmd.args(["--redis-url", &h.server.url()]);
    cmd.args(args);
    cmd.env("XDG_CONFIG_HOME", h.dir.join("config"));
    cmd.env("XDG_STATE_HOME", h.dir.join("state"));
    cmd.env("TERM", "xterm-256color");
    let mut child = pty.slave.spawn_command(cmd).expect("spawn");
    drop(pty.slave);
    let mut reader = pty.master.try_clone_reader().expect("reader");
    let reading = std::thread::spawn(move || {
        let mut raw = Vec::new();
        let mut buf = [0u8; 8192];
        while let Ok(n) = reader.read(&mut buf) {
            if n == 0 {
                break;
            }
            raw.extend_from_slice(&buf[..n]);
        }
        raw
    });
    let status = child.wait().expect("wait");
    drop(pty.master);
    let raw = reading.join().expect("the reader");
    assert!(status.success(), "{}", String::from_utf8_lossy(&raw));
    String::from_utf8_lossy(&raw).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_progress_bar_when_the_output_is_piped_even_on_a_terminal() {
    let h = learned_chat(40, 10).await;
    let out = h.dir.join("eval.txt");
    let shown = tokio::task::block_in_place(|| {
        stderr_on_a_terminal(&h, &out, &["eval", "--holdout", "10"])
    });
    assert!(
        !shown.contains(&format!("{CONTACT} [")) && !shown.contains("\x1b[2K"),
        "a bar while stdout goes to a file: {shown:?}"
    );
    let table = std::fs::read_to_string(&out).expect("the output");
    assert!(table.contains("style_distance"), "{table}");
}

#[tokio::test]
async fn json_has_exactly_the_documented_shape_and_is_saved() {
    let mut h = learned_chat(50, 20).await;
    let before = secondme::store::now_ms();
    let report = one_report(&eval(&h, &["eval", "--json"]).await);
    let after = secondme::store::now_ms();
    assert_eq!(
        keys(&report),
        BTreeSet::from(["contact", "holdout", "twin", "baseline", "at"])
    );
    assert_eq!(report["contact"], CONTACT);
    assert_eq!(report["holdout"], 20, "the default holdout");
    let at = report["at"].as_i64().expect("at is ms");
    assert!(
        (before..=after).contains(&at),
        "{at} not in {before}..={after}"
    );
    for side in ["twin", "baseline"] {
        assert_eq!(
            keys(&report[side]),
            BTreeSet::from(["style_distance", "rows"])
        );
        let d = distance(&report, side);
        assert!((0.0..=1.0).contains(&d), "{side} {d}");
        let rows = report[side]["rows"].as_array().expect("rows");
        assert!(!rows.is_empty());
        for row in rows {
            assert_eq!(
                keys(row),
                BTreeSet::from(["measure", "owner", "generated", "distance"])
            );
        }
    }
    let saved: Option<String> = h
        .con
        .get(secondme::schema::learned::eval_key(CONTACT))
        .await
        .expect("read LEARN:eval");
    let saved: serde_json::Value =
        serde_json::from_str(&saved.expect("LEARN:eval:{c} is written")).expect("JSON");
    assert_eq!(saved, report);
    let last = learned::last_eval(&mut h.con, CONTACT)
        .await
        .expect("last eval");
    assert_eq!(last, Some(report));
}

#[tokio::test]
async fn a_short_chat_holds_out_less_and_says_so_and_a_tiny_one_is_an_error() {
    let h = learned_chat(12, 6).await;
    let out = eval(&h, &["eval", "--contact", CONTACT, "--json"]).await;
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let report = one_report(&out);
    assert_eq!(report["holdout"], 6, "half of the 12 exchanges");
    assert!(
        stderr.contains("holding out 6 replies instead of 20"),
        "{stderr}"
    );

    let mut tiny = Harness::start().await;
    learned::add_lines(&mut tiny.con, CONTACT, &chat(4, 2), 10_000)
        .await
        .expect("learn");
    let out = eval(&tiny, &["eval", "--contact", CONTACT]).await;
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("only 4 exchanges"), "{stderr}");
}

#[tokio::test]
async fn nothing_learned_is_a_clear_error() {
    let h = Harness::start().await;
    let out = eval(&h, &["eval"]).await;
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("nothing is learned yet"), "{stderr}");
}

/// An OpenAI chat completion answering `text`.
fn completion(text: &str) -> Step {
    Step::ok(
        &serde_json::json!({
            "choices": [{"message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 3}
        })
        .to_string(),
    )
}

/// The system prompt of an OpenAI request.
fn system_prompt(body: &serde_json::Value) -> &str {
    body["messages"][0]["content"].as_str().unwrap_or_default()
}

/// The first reply the prompt shows as an example: a learned exchange's answer,
/// else the persona's first example message.
fn first_example(system: &str) -> Option<String> {
    if let Some((_, rest)) = system.split_once(" you answered: \"") {
        let line = rest.lines().next()?;
        return Some(line.strip_suffix('"')?.to_owned());
    }
    let (_, rest) = system.split_once("Messages you wrote before")?;
    rest.lines()
        .find_map(|l| l.strip_prefix("- "))
        .map(str::to_owned)
}

/// A model that copies the first example it is shown.
fn copies_its_first_example(body: &serde_json::Value) -> Step {
    match first_example(system_prompt(body)) {
        Some(example) => completion(&example),
        None => Step::status(400, r#"{"error":{"message":"no example in the prompt"}}"#),
    }
}

/// A model that always writes the same formal sentence.
fn formal(_: &serde_json::Value) -> Step {
    completion("Thank you for your message. I will get back to you tomorrow.")
}

/// A model that refuses the message holding [`FAIL_WORD`] and copies otherwise.
fn fails_on_one_message(body: &serde_json::Value) -> Step {
    if body.to_string().contains(FAIL_WORD) {
        return Step::status(400, r#"{"error":{"message":"bad request"}}"#);
    }
    copies_its_first_example(body)
}

/// A fake model playing `pick` for every request, and the config pointing at it.
async fn model(h: &Harness, pick: fn(&serde_json::Value) -> Step) -> FakeLlm {
    let fake = FakeLlm::start(vec![Step::Compute(pick); 500]).await;
    write_config(
        &h.dir,
        &format!(
            "[llm]\nbase_url = \"{}\"\nphatic_to_template = false\nmax_retries = 0\ntimeout = \"10s\"\n",
            fake.url
        ),
    );
    fake
}

/// `secondme eval --json` of 10 held-out replies of a learned chat of 40
/// exchanges, the model playing `pick`: the harness, the model and the output.
async fn eval_with(
    pick: fn(&serde_json::Value) -> Step,
) -> (Harness, FakeLlm, std::process::Output) {
    let h = learned_chat(40, 10).await;
    let fake = model(&h, pick).await;
    let out = eval(
        &h,
        &["eval", "--contact", CONTACT, "--holdout", "10", "--json"],
    )
    .await;
    (h, fake, out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_that_copies_its_examples_scores_closer_than_the_baseline() {
    let (_h, fake, out) = eval_with(copies_its_first_example).await;
    let report = one_report(&out);
    assert_eq!(report["holdout"], 10);
    let (twin, baseline) = (distance(&report, "twin"), distance(&report, "baseline"));
    assert!(
        twin < baseline,
        "twin {twin} vs baseline {baseline}: {report}"
    );
    assert_eq!(
        fake.requests().len(),
        20,
        "a twin and a baseline call per reply"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_that_ignores_its_prompt_scores_the_same_for_both() {
    let (_h, _fake, out) = eval_with(formal).await;
    let report = one_report(&out);
    let (twin, baseline) = (distance(&report, "twin"), distance(&report, "baseline"));
    assert!(
        (twin - baseline).abs() < 1e-9,
        "the same replies, the same distance: twin {twin}, baseline {baseline}"
    );
    assert!(
        twin > 0.0,
        "a formal sentence is far from this owner: {report}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_held_out_reply_reaches_a_prompt() {
    let (_h, fake, out) = eval_with(copies_its_first_example).await;
    one_report(&out);
    let prompts: Vec<String> = fake.requests().iter().map(|r| r.body.to_string()).collect();
    assert_eq!(prompts.len(), 20);
    assert!(
        prompts.iter().all(|p| !p.contains(HELD_OUT_WORD)),
        "a held-out reply was in a prompt"
    );
    // The control: the last training reply does reach the twin's prompts.
    assert!(
        prompts.iter().any(|p| p.contains(TRAINING_WORD)),
        "the training chat never reached a prompt"
    );
    // The baseline's prompts hold nothing of the chat but the message answered.
    let baseline: Vec<&String> = prompts
        .iter()
        .filter(|p| !p.contains(" you answered: "))
        .collect();
    assert_eq!(baseline.len(), 10, "one baseline call per reply");
    assert!(baseline.iter().all(|p| !p.contains(TRAINING_WORD)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_generation_is_counted_and_reported_not_a_crash() {
    let (mut h, _fake, out) = eval_with(fails_on_one_message).await;
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let report = one_report(&out);
    assert_eq!(
        report["holdout"], 9,
        "the failed exchange is left out of both sides"
    );
    assert!(stderr.contains("2 of 20 generations failed"), "{stderr}");
    assert!(
        !stderr.contains(FAIL_WORD),
        "the chat's text in an error: {stderr}"
    );
    let saved = learned::last_eval(&mut h.con, CONTACT).await.expect("read");
    assert_eq!(saved, Some(report));

    let _down = model(&h, |_| Step::status(400, r#"{"error":{"message":"down"}}"#)).await;
    let out = eval(&h, &["eval", "--contact", CONTACT, "--holdout", "10"]).await;
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("every generation failed"), "{stderr}");
}
