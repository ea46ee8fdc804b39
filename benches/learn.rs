//! Learning from chat exports against the budgets: parsing a
//! 100,000-message export (messages a second, median of 5 runs); the whole
//! `secondme learn` of it into a fresh private redis-server (the release
//! binary as a child: wall time, median of 3, and its peak RSS from `wait4`);
//! and finding the examples for a message among 50,000 past exchanges (p50 and
//! p99 of 5,000 searches). Each figure is printed beside its budget.
//!
//! Run with `cargo bench --bench learn`.

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use secondme::learn::Exchange;
use secondme::learn::export;
use secondme::learn::retrieval::Index;
use secondme::server::RedisServer;

const MESSAGES: usize = 100_000;
const PARSE_RUNS: usize = 5;
const IMPORT_RUNS: usize = 3;
const EXCHANGES: usize = 50_000;
const SEARCHES: usize = 5_000;
const OWNER: &str = "Sam Rivera";
const CONTACT: &str = "Maria Costa";

/// Words of everyday chat, most common first: picked with a skew towards the
/// start, as real chats reuse a few hundred words.
const WORDS: &[&str] = &[
    "ok", "yes", "no", "the", "you", "i", "to", "a", "and", "is", "it", "are", "we", "me", "on",
    "for", "at", "in", "what", "that", "so", "do", "be", "just", "can", "will", "now", "see",
    "going", "home", "tonight", "tomorrow", "today", "later", "time", "good", "love", "thanks",
    "haha", "lol", "sure", "maybe", "dinner", "lunch", "coffee", "work", "late", "soon", "call",
    "when", "where", "how", "why", "here", "there", "still", "again", "really", "nice", "great",
    "sorry", "please", "wait", "know", "think", "want", "need", "get", "got", "come", "back",
    "leave", "left", "bring", "send", "photo", "car", "train", "bus", "station", "airport",
    "meeting", "office", "mum", "dad", "kids", "school", "party", "weekend", "saturday", "sunday",
    "monday", "friday", "movie", "game", "beach", "park", "shop", "bread", "milk", "keys", "door",
    "phone", "battery", "rain", "sun", "cold", "hot", "tired", "hungry", "happy", "birthday",
    "cake", "present", "flight", "hotel", "ticket", "money", "bill", "doctor", "dentist", "gym",
    "run", "walk", "dog", "cat", "garden", "kitchen", "fridge", "pizza", "sushi", "wine", "beer",
    "tea", "traffic", "parking", "minutes", "hour", "early",
];
/// Endings and extras people add.
const TAILS: &[&str] = &[
    "", "", "", "!", "?", ".", "...", " 😂", " ❤️", " 👍", " haha",
];

/// A small deterministic generator (xorshift64*), so every run reads the same chat.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// A word, the common ones far more often (a cubed uniform index).
    fn word(&mut self) -> &'static str {
        let u = self.unit();
        WORDS[((u * u * u) * WORDS.len() as f64) as usize]
    }

    /// A message of 2 to 13 words with an ending, sometimes a rare word (a name,
    /// a place) that only a few messages share.
    fn sentence(&mut self) -> String {
        let n = 2 + self.below(12);
        let mut words: Vec<String> = (0..n).map(|_| self.word().to_owned()).collect();
        if self.below(4) == 0 {
            let at = self.below(n);
            words[at] = format!("place{}", self.below(5_000));
        }
        let mut s = words.join(" ");
        s.push_str(TAILS[self.below(TAILS.len())]);
        s
    }
}

fn main() -> Result<()> {
    let text = export_text(MESSAGES);
    println!(
        "learn: a {MESSAGES}-message export ({:.1} MB), two authors",
        text.len() as f64 / 1e6
    );
    let parse = parse_rate(&text)?;
    println!("parse                      {parse:>12.0} msg/s   budget >= 500000");
    let (time, rss) = import(&text)?;
    println!("secondme learn (import)    {time:>12.3} s       budget < 2 s");
    println!("secondme learn (peak RSS)  {rss:>12.1} MB      budget < 100 MB");
    let (p50, p99) = retrieval();
    println!("retrieval p50              {p50:>12.0} us");
    println!("retrieval p99              {p99:>12.0} us      budget < 2000 us");
    Ok(())
}

/// An Android export (`06.08.2016, 13:23 - Name: text`): turns of one to three
/// messages, minutes to hours apart, with photos, a deleted message now and
/// then, and continuation lines.
fn export_text(messages: usize) -> String {
    let mut rng = Rng(0x5ec0_d3e0);
    let mut out = String::with_capacity(messages * 60);
    let mut minute: i64 = 24_455_520; // 2016-07-01 00:00, in minutes since the epoch
    out.push_str(&format!(
        "{} - Messages and calls are end-to-end encrypted. No one outside of this chat, not \
         even WhatsApp, can read or listen to them. Tap to learn more.\n",
        header_time(minute)
    ));
    let mut me = false;
    let mut written = 0;
    while written < messages {
        let in_turn = 1 + rng.below(3);
        let author = if me { OWNER } else { CONTACT };
        for _ in 0..in_turn.min(messages - written) {
            let body = match rng.below(100) {
                0..=2 => "<Media omitted>".to_owned(),
                3 => "This message was deleted".to_owned(),
                4..=7 => format!("{}\n{}", rng.sentence(), rng.sentence()),
                _ => rng.sentence(),
            };
            out.push_str(&format!("{} - {author}: {body}\n", header_time(minute)));
            written += 1;
        }
        minute += 1 + (rng.unit().powi(4) * 600.0) as i64;
        me = !me;
    }
    out
}

/// `dd.mm.yyyy, HH:MM` of minutes since the epoch.
fn header_time(minute: i64) -> String {
    let (days, rest) = (minute.div_euclid(1440), minute.rem_euclid(1440));
    let (y, m, d) = export::civil_from_days(days);
    format!("{d:02}.{m:02}.{y}, {:02}:{:02}", rest / 60, rest % 60)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Messages parsed a second, median of [`PARSE_RUNS`].
fn parse_rate(text: &str) -> Result<f64> {
    let mut rates = Vec::new();
    for _ in 0..PARSE_RUNS {
        let started = Instant::now();
        let parsed = export::parse_text(text);
        let secs = started.elapsed().as_secs_f64();
        if parsed.messages.len() != MESSAGES {
            bail!(
                "parsed {} messages, wrote {MESSAGES}",
                parsed.messages.len()
            );
        }
        rates.push(MESSAGES as f64 / secs);
    }
    Ok(median(rates))
}

/// The whole import by the real binary, each run on a fresh server: median
/// seconds, and the highest peak RSS in MB.
fn import(text: &str) -> Result<(f64, f64)> {
    let dir = std::env::temp_dir().join(format!("secondme-learn-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let file = dir.join("WhatsApp Chat with Maria Costa.txt");
    std::fs::write(&file, text)?;
    // Every message kept, not the default newest 50,000.
    std::fs::write(dir.join("config.toml"), "[learn]\nmax_messages = 100000\n")?;
    let mut times = Vec::new();
    let mut peak: f64 = 0.0;
    for _ in 0..IMPORT_RUNS {
        let server = RedisServer::start_default().context("start redis-server")?;
        let (secs, rss) = run_learn(&dir, &file, &server.url())?;
        times.push(secs);
        peak = peak.max(rss);
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok((median(times), peak))
}

/// One `secondme learn --json`: its wall time and peak RSS (MB), after
/// checking that it learned every message.
fn run_learn(dir: &Path, file: &Path, url: &str) -> Result<(f64, f64)> {
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_secondme"))
        .arg("--config")
        .arg(dir.join("config.toml"))
        .arg("--redis-url")
        .arg(url)
        .arg("learn")
        .arg(file)
        .args(["--me", OWNER, "--contact", "wa_bench", "--json"])
        .env("SECONDME_LOG", "error")
        .env_remove("SECONDME_REDIS_URL")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("start secondme learn")?;
    let pid = libc::pid_t::try_from(child.id()).context("pid")?;
    let mut status = 0;
    // SAFETY: a zeroed rusage is a valid value for wait4 to fill.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waits for our own child, filling the two locals given.
    let reaped = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let secs = started.elapsed().as_secs_f64();
    if reaped != pid {
        bail!("wait4 failed: {}", std::io::Error::last_os_error());
    }
    let (mut out, mut err) = (String::new(), String::new());
    if let Some(mut s) = child.stdout.take() {
        s.read_to_string(&mut out)?;
    }
    if let Some(mut s) = child.stderr.take() {
        s.read_to_string(&mut err)?;
    }
    if !(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0) {
        bail!("secondme learn failed: {err}");
    }
    let report: serde_json::Value = serde_json::from_str(out.trim()).context("its JSON")?;
    if report["added"] != MESSAGES {
        bail!("secondme learn added {}, not {MESSAGES}", report["added"]);
    }
    // ru_maxrss is in kB on Linux.
    Ok((secs, usage.ru_maxrss as f64 / 1024.0))
}

/// p50 and p99 of [`SEARCHES`] searches among [`EXCHANGES`] exchanges, µs.
fn retrieval() -> (f64, f64) {
    let mut rng = Rng(0x0e8c_4a11);
    let exchanges: Vec<Exchange> = (0..EXCHANGES)
        .map(|i| Exchange {
            ts: 1_470_000_000_000 + i as i64 * 60_000,
            them: rng.sentence(),
            me: rng.sentence(),
            reply_ms: Some(60_000),
        })
        .collect();
    let index = Index::new(&exchanges);
    let mut took: Vec<Duration> = (0..SEARCHES)
        .map(|_| {
            let query = rng.sentence();
            let started = Instant::now();
            let hits = index.search(&query, 4);
            let t = started.elapsed();
            std::hint::black_box(hits);
            t
        })
        .collect();
    took.sort();
    let at = |q: f64| took[((took.len() as f64 * q) as usize).min(took.len() - 1)];
    (at(0.50).as_secs_f64() * 1e6, at(0.99).as_secs_f64() * 1e6)
}
