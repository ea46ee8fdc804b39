//! Time from the README's run command to the demo's first frame, after the build:
//! `scripts/setup.sh` when everything is installed, then `secondme demo` (private
//! Redis with FalkorDB, graph seeding, simulated gateway, control room) in a
//! pseudo-terminal until the first frame with the contacts pane is on screen.
//!
//! Run with `cargo bench --bench demo_start`. (`scripts/run.sh` also runs a no-op
//! `cargo build`, which this bench cannot call while cargo runs it.)

use std::io::Read;
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use portable_pty::{CommandBuilder, PtySize, native_pty_system};

const RUNS: usize = 5;
const BUDGET_S: f64 = 5.0;

fn main() -> Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut setup = Vec::new();
    let mut frame = Vec::new();
    for _ in 0..RUNS {
        let started = Instant::now();
        let status = Command::new(root.join("scripts/setup.sh"))
            .stdout(std::process::Stdio::null())
            .status()
            .context("scripts/setup.sh")?;
        if !status.success() {
            bail!("scripts/setup.sh failed: {status}");
        }
        setup.push(started.elapsed().as_secs_f64());
        frame.push(first_frame()?);
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (s, f) = (median(&mut setup), median(&mut frame));
    println!("demo start, {RUNS} runs (medians; max in brackets)");
    println!(
        "scripts/setup.sh (installed)    {:7.3} s  [{:.3}]",
        s,
        setup.last().copied().unwrap_or(0.0)
    );
    println!(
        "secondme demo -> first frame    {:7.3} s  [{:.3}]",
        f,
        frame.last().copied().unwrap_or(0.0)
    );
    let total = s + f;
    println!(
        "run command -> first frame      {total:7.3} s  (budget < {BUDGET_S} s: {})",
        if total < BUDGET_S { "ok" } else { "SHORT" }
    );
    Ok(())
}

/// Seconds from spawning `secondme demo` to a frame showing the contacts pane.
fn first_frame() -> Result<f64> {
    let pty = native_pty_system()
        .openpty(PtySize {
            rows: 40,
            cols: 120,
            pixel_width: 0,
            pixel_height: 0,
        })
        .map_err(|e| anyhow::anyhow!("openpty: {e}"))?;
    let dir = std::env::temp_dir().join(format!("secondme-demo-bench-{}", std::process::id()));
    let mut cmd = CommandBuilder::new(env!("CARGO_BIN_EXE_secondme"));
    cmd.arg("demo");
    cmd.env("XDG_STATE_HOME", dir.join("state"));
    cmd.env("XDG_CONFIG_HOME", dir.join("config"));
    cmd.env("TERM", "xterm-256color");
    let started = Instant::now();
    let mut child = pty
        .slave
        .spawn_command(cmd)
        .map_err(|e| anyhow::anyhow!("spawn: {e}"))?;
    let mut reader = pty
        .master
        .try_clone_reader()
        .map_err(|e| anyhow::anyhow!("reader: {e}"))?;
    let mut writer = pty
        .master
        .take_writer()
        .map_err(|e| anyhow::anyhow!("writer: {e}"))?;
    let parser = Arc::new(Mutex::new(vt100::Parser::new(40, 120, 0)));
    let seen: Arc<Mutex<Option<Duration>>> = Arc::new(Mutex::new(None));
    let (p, s) = (parser.clone(), seen.clone());
    std::thread::spawn(move || {
        let mut buf = [0u8; 8192];
        while let Ok(n) = reader.read(&mut buf) {
            if n == 0 {
                break;
            }
            if let (Ok(mut p), Ok(mut s)) = (p.lock(), s.lock()) {
                p.process(&buf[..n]);
                if s.is_none() && p.screen().contents().contains("Contacts") {
                    *s = Some(started.elapsed());
                }
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    let elapsed = loop {
        if let Some(d) = *seen.lock().map_err(|_| anyhow::anyhow!("lock"))? {
            break d;
        }
        if Instant::now() > deadline {
            bail!("no first frame within 30 s");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    std::io::Write::write_all(&mut writer, b"q").context("send q")?;
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().context("wait")?.is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            bail!("the demo did not quit");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(elapsed.as_secs_f64())
}
