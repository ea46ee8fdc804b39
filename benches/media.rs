//! Voice notes through the real worker (the `secondme worker` binary, in its own
//! process) on a private redis-server, with a fake transcription server in this
//! process that speaks real HTTP and reads each body to the end:
//!
//! 1. Overhead per voice note: the same backlog of 1,000 messages, once as text and
//!    once as 20 KB voice notes, drained by a fresh worker each time: wall time
//!    and the worker's CPU time per message; the worker's overhead per voice note
//!    is its extra CPU time (the wall time holds the endpoint's, which is
//!    measured inside the server, from the request's first byte to the answer
//!    sent, and shown apart). Medians of 5 rounds.
//! 2. Memory with 16 MB voice notes in flight: 12 of them queued, the server
//!    holding each answer 500 ms so several are in flight at once; the worker's
//!    peak resident memory (VmHWM) against the same worker draining text only.
//!
//! Run with `cargo bench --bench media`.

mod common;

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use redis::AsyncCommands;
use redis::aio::MultiplexedConnection;
use secondme::schema;
use secondme::server::RedisServer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const MESSAGES: usize = 1000;
const ROUNDS: usize = 5;
const SMALL_NOTE: usize = 20_000;
const BIG_NOTE: usize = 16 * 1024 * 1024;
const BIG_NOTES: usize = 12;
const BIG_HOLD: Duration = Duration::from_millis(500);

/// The fake transcription server: answers every request with a transcript,
/// after `hold`, and sums the time it spent per request.
struct FakeStt {
    url: String,
    served: Arc<AtomicUsize>,
    busy_micros: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl FakeStt {
    async fn start(hold: Duration) -> Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        let served = Arc::new(AtomicUsize::new(0));
        let busy_micros = Arc::new(AtomicU64::new(0));
        let (s, b) = (Arc::clone(&served), Arc::clone(&busy_micros));
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (s, b) = (Arc::clone(&s), Arc::clone(&b));
                tokio::spawn(async move {
                    let _ = serve(stream, hold, &s, &b).await;
                });
            }
        });
        Ok(Self {
            url,
            served,
            busy_micros,
            task,
        })
    }

    fn busy(&self) -> Duration {
        Duration::from_micros(self.busy_micros.load(Ordering::SeqCst))
    }
}

impl Drop for FakeStt {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Serves requests on one keep-alive connection: reads the headers and the
/// whole body (dropping it as it comes), answers `{"text": ...}`.
async fn serve(
    mut stream: TcpStream,
    hold: Duration,
    served: &AtomicUsize,
    busy: &AtomicU64,
) -> Result<()> {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let mut head = Vec::new();
        let first = loop {
            let n = stream.read(&mut buf).await?;
            if n == 0 {
                return Ok(());
            }
            let start = Instant::now();
            head.extend_from_slice(&buf[..n]);
            if head.windows(4).any(|w| w == b"\r\n\r\n") {
                break start;
            }
        };
        let end = head
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .context("headers end")?
            + 4;
        let text = String::from_utf8_lossy(&head[..end]).to_ascii_lowercase();
        let length: usize = text
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse().ok())
            .context("a content-length")?;
        let mut left = length.saturating_sub(head.len() - end);
        while left > 0 {
            let n = stream.read(&mut buf[..left.min(64 * 1024)]).await?;
            if n == 0 {
                bail!("the body ended early");
            }
            left -= n;
        }
        tokio::time::sleep(hold).await;
        let body = r#"{"text":"are you coming on saturday?"}"#;
        let answer = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(answer.as_bytes()).await?;
        let spent = first.elapsed().saturating_sub(hold);
        busy.fetch_add(spent.as_micros() as u64, Ordering::SeqCst);
        served.fetch_add(1, Ordering::SeqCst);
    }
}

fn main() -> Result<()> {
    common::on_two_threads(run())
}

async fn run() -> Result<()> {
    let server = RedisServer::start_default().context("start redis-server")?;
    let url = server.url();
    let client = redis::Client::open(url.as_str())?;
    let mut con = client.get_multiplexed_async_connection().await?;
    let dir = std::env::temp_dir().join(format!("secondme-media-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("config.toml"), "")?;
    let result = async {
        overhead(&url, &mut con, &dir).await?;
        memory(&url, &mut con, &dir).await
    }
    .await;
    let _ = std::fs::remove_dir_all(&dir);
    result
}

/// One round's figures.
struct Round {
    text: Duration,
    voice: Duration,
    endpoint: Duration,
    text_cpu: f64,
    voice_cpu: f64,
}

async fn overhead(url: &str, con: &mut MultiplexedConnection, dir: &std::path::Path) -> Result<()> {
    let stt = FakeStt::start(Duration::ZERO).await?;
    let mut rounds = Vec::with_capacity(ROUNDS);
    for round in 0..ROUNDS {
        let (text, _, text_cpu) = drain(url, con, dir, &stt.url, round, None).await?;
        let busy_before = stt.busy();
        let (voice, _, voice_cpu) = drain(url, con, dir, &stt.url, round, Some(SMALL_NOTE)).await?;
        rounds.push(Round {
            text,
            voice,
            endpoint: stt.busy() - busy_before,
            text_cpu,
            voice_cpu,
        });
    }
    if stt.served.load(Ordering::SeqCst) != ROUNDS * MESSAGES {
        bail!(
            "the server transcribed {} notes, not {}",
            stt.served.load(Ordering::SeqCst),
            ROUNDS * MESSAGES
        );
    }
    let per = |d: Duration| d.as_secs_f64() * 1000.0 / MESSAGES as f64;
    let mut text: Vec<f64> = rounds.iter().map(|r| per(r.text)).collect();
    let mut voice: Vec<f64> = rounds.iter().map(|r| per(r.voice)).collect();
    let mut endpoint: Vec<f64> = rounds.iter().map(|r| per(r.endpoint)).collect();
    let cpu_per = |secs: f64| secs * 1000.0 / MESSAGES as f64;
    let mut text_cpu: Vec<f64> = rounds.iter().map(|r| cpu_per(r.text_cpu)).collect();
    let mut voice_cpu: Vec<f64> = rounds.iter().map(|r| cpu_per(r.voice_cpu)).collect();
    let mut extra_cpu: Vec<f64> = rounds
        .iter()
        .map(|r| cpu_per(r.voice_cpu) - cpu_per(r.text_cpu))
        .collect();
    println!("Voice notes against text ({MESSAGES} messages a round, {ROUNDS} rounds, medians):");
    println!("                                       text    20 KB voice note");
    println!(
        "  wall time per message, ms        {:8.3}    {:8.3}   ({:.2}x)",
        median(&mut text),
        median(&mut voice),
        median(&mut voice) / median(&mut text)
    );
    println!(
        "  worker CPU per message, ms       {:8.3}    {:8.3}",
        median(&mut text_cpu),
        median(&mut voice_cpu)
    );
    println!(
        "  the endpoint's own time per note, ms (server side; up to 4 at once): {:.3}",
        median(&mut endpoint)
    );
    println!(
        "  the worker's overhead per voice note (extra CPU), ms:                {:.3}",
        median(&mut extra_cpu)
    );
    Ok(())
}

async fn memory(url: &str, con: &mut MultiplexedConnection, dir: &std::path::Path) -> Result<()> {
    let stt = FakeStt::start(BIG_HOLD).await?;
    let (_, text_peak, _) = drain_n(url, con, dir, &stt.url, 100, BIG_NOTES, None).await?;
    let (took, voice_peak, _) =
        drain_n(url, con, dir, &stt.url, 101, BIG_NOTES, Some(BIG_NOTE)).await?;
    println!();
    println!(
        "Memory with {BIG_NOTES} voice notes of 16 MiB (the server holds each answer {} ms):",
        BIG_HOLD.as_millis()
    );
    println!("  worker peak resident, text only          {text_peak:8.1} MB");
    println!("  worker peak resident, 16 MiB notes       {voice_peak:8.1} MB");
    println!(
        "  per note in flight (4 at once)           {:8.1} MB",
        (voice_peak - text_peak) / 4.0
    );
    println!(
        "  drained in                               {:8.2} s",
        took.as_secs_f64()
    );
    Ok(())
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

async fn drain(
    url: &str,
    con: &mut MultiplexedConnection,
    dir: &std::path::Path,
    stt_url: &str,
    round: usize,
    note: Option<usize>,
) -> Result<(Duration, f64, f64)> {
    drain_n(url, con, dir, stt_url, round, MESSAGES, note).await
}

/// Starts a worker, queues `n` messages (voice notes of `note` bytes, or text),
/// waits until all are answered; the time from the worker's start to the last
/// reply, the worker's peak resident memory and its CPU time, seconds.
async fn drain_n(
    url: &str,
    con: &mut MultiplexedConnection,
    dir: &std::path::Path,
    stt_url: &str,
    round: usize,
    n: usize,
    note: Option<usize>,
) -> Result<(Duration, f64, f64)> {
    let _: () = redis::cmd("FLUSHALL").query_async(con).await?;
    let _: () = con.set(schema::state_marker(), "1").await?;
    let contacts: Vec<String> = (0..n).map(|i| format!("c{round}_{i}")).collect();
    let _: () = con.sadd(schema::optin_contacts(), &contacts).await?;
    let bytes: Vec<u8> = note
        .map(|len| (0..len).map(|i| (i % 251) as u8).collect())
        .unwrap_or_default();
    for (i, c) in contacts.iter().enumerate() {
        let id = format!("m{round}_{i}");
        let ts = secondme::store::now_ms().to_string();
        let mut xadd = redis::cmd("XADD");
        xadd.arg(schema::queue_messages())
            .arg("*")
            .arg("messageId")
            .arg(&id)
            .arg("contactId")
            .arg(c)
            .arg("content")
            .arg(if note.is_some() {
                ""
            } else {
                "are you coming on saturday?"
            })
            .arg("timestamp")
            .arg(&ts)
            .arg("direction")
            .arg("incoming")
            .arg("fromMe")
            .arg("false");
        if note.is_some() {
            let _: () = redis::cmd("SET")
                .arg(schema::media_key(&id))
                .arg(&bytes)
                .arg("PX")
                .arg(schema::media::MEDIA_TTL_MS)
                .query_async(con)
                .await?;
            xadd.arg("mediaType")
                .arg("audio/ogg; codecs=opus")
                .arg("mediaSeconds")
                .arg(4);
        }
        let _: String = xadd.query_async(con).await?;
    }
    drop(bytes);
    // The backlog is queued before the worker starts: its start-up is in both
    // the text and the voice figures, and cancels out of their difference.
    let start = Instant::now();
    let mut child = worker(url, dir, stt_url)?;
    let result = async {
        let deadline = Instant::now() + Duration::from_secs(300);
        let mut peak = 0.0f64;
        loop {
            if let Some(mb) = common::memory_mb(child.id(), "VmHWM:") {
                peak = peak.max(mb);
            }
            let answered: Option<usize> = con.hget(schema::stats(), "answered").await?;
            if answered.unwrap_or(0) >= n {
                let cpu = common::cpu_secs(child.id()).unwrap_or(f64::NAN);
                return Ok((start.elapsed(), peak, cpu));
            }
            if Instant::now() > deadline {
                bail!("{} of {n} answered in 300 s", answered.unwrap_or(0));
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
    .await;
    let _ = child.kill();
    let _ = child.wait();
    result
}

fn worker(url: &str, dir: &std::path::Path, stt_url: &str) -> Result<Child> {
    Command::new(env!("CARGO_BIN_EXE_secondme"))
        .arg("--config")
        .arg(dir.join("config.toml"))
        .arg("--redis-url")
        .arg(url)
        .arg("--review-file")
        .arg(dir.join("review.jsonl"))
        .arg("--sleep-hours")
        .arg("off")
        .arg("--stt-url")
        .arg(stt_url)
        .arg("worker")
        .env("SECONDME_LOG", "error")
        .env_remove("SECONDME_REDIS_URL")
        .env_remove("SECONDME_STT_URL")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("start the worker")
}
