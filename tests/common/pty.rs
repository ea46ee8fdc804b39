//! The real binary in a pseudo-terminal, read through a terminal emulator (vt100),
//! for end-to-end tests that look at the screen as a person would.

use std::io::{Read, Write};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use portable_pty::{CommandBuilder, PtySize, native_pty_system};

/// The real binary in a pseudo-terminal, its output parsed by a terminal emulator.
pub struct Screen {
    parser: Arc<Mutex<vt100::Parser>>,
    pub raw: Arc<Mutex<Vec<u8>>>,
    writer: Box<dyn Write + Send>,
    pub child: Box<dyn portable_pty::Child + Send + Sync>,
    /// The program's XDG config and state directories.
    dir: super::TestDir,
}

impl Drop for Screen {
    fn drop(&mut self) {
        // Ended before its files go, whatever the test did.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Screen {
    pub fn start(url: &str, rows: u16, cols: u16) -> Self {
        Self::start_with(url, rows, cols, &[])
    }

    pub fn start_with(url: &str, rows: u16, cols: u16, extra_args: &[&str]) -> Self {
        let mut args = vec!["--redis-url", url];
        args.extend_from_slice(extra_args);
        Self::spawn(&args, rows, cols)
    }

    /// Runs `secondme ARGS` with private config and state directories.
    pub fn spawn(args: &[&str], rows: u16, cols: u16) -> Self {
        let pty = native_pty_system()
            .openpty(PtySize {
                rows,
                cols,
                pixel_width: 0,
                pixel_height: 0,
            })
            .expect("pty");
        let dir = super::TestDir::new("tui");
        let mut cmd = CommandBuilder::new(env!("CARGO_BIN_EXE_secondme"));
        cmd.args(args);
        cmd.env("XDG_STATE_HOME", dir.join("state"));
        cmd.env("XDG_CONFIG_HOME", dir.join("config"));
        cmd.env("TERM", "xterm-256color");
        let child = pty.slave.spawn_command(cmd).expect("spawn");
        let mut reader = pty.master.try_clone_reader().expect("reader");
        let writer = pty.master.take_writer().expect("writer");
        let parser = Arc::new(Mutex::new(vt100::Parser::new(rows, cols, 0)));
        let raw = Arc::new(Mutex::new(Vec::new()));
        let (p, r) = (parser.clone(), raw.clone());
        std::thread::spawn(move || {
            let mut buf = [0u8; 8192];
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 {
                    break;
                }
                if let Ok(mut p) = p.lock() {
                    p.process(&buf[..n]);
                }
                if let Ok(mut r) = r.lock() {
                    r.extend_from_slice(&buf[..n]);
                }
            }
        });
        std::mem::forget(pty.master);
        Self {
            parser,
            raw,
            writer,
            child,
            dir,
        }
    }

    pub fn text(&self) -> String {
        self.parser.lock().expect("parser").screen().contents()
    }

    pub fn wait_for(&self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let text = self.text();
            if text.contains(needle) {
                return text;
            }
            assert!(
                Instant::now() < deadline,
                "screen never showed {needle:?}:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The screen's rows as characters, one entry per terminal row.
    pub fn rows(&self) -> Vec<Vec<char>> {
        let parser = self.parser.lock().expect("parser");
        let (_, cols) = parser.screen().size();
        parser
            .screen()
            .rows(0, cols)
            .map(|r| r.chars().collect())
            .collect()
    }

    /// Waits until `lines` show as one block: row after row, all at the same column.
    pub fn wait_for_block(&self, lines: &[String]) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if block_position(&self.rows(), lines).is_some() {
                return self.text();
            }
            assert!(
                Instant::now() < deadline,
                "the code never showed as a block:\n{}",
                self.text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn raw_text(&self) -> String {
        String::from_utf8_lossy(&self.raw.lock().expect("raw")).into_owned()
    }

    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Waits for the program to exit; panics with `what` after `within`.
    pub fn wait_exit(&mut self, within: Duration, what: &str) -> portable_pty::ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                // Let the reader thread take the last bytes the program wrote.
                std::thread::sleep(Duration::from_millis(100));
                return status;
            }
            assert!(Instant::now() < deadline, "{what}: did not exit");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Asserts the program's last output cleared and left the alternate screen
    /// and showed the cursor. Cleared first: tmux (3.3) copies what the
    /// alternate screen holds over the shell's screen when the width changed
    /// while the program ran (an SSH client reattached at another size).
    pub fn assert_terminal_restored(&self, what: &str) {
        let raw = self.raw.lock().expect("raw").clone();
        let tail = String::from_utf8_lossy(&raw[raw.len().saturating_sub(64)..]).into_owned();
        let cleared = tail.rfind("\u{1b}[2J");
        let left = tail.rfind("\u{1b}[?1049l");
        assert!(left.is_some(), "{what}: alternate screen left: {tail:?}");
        assert!(
            cleared.is_some_and(|c| Some(c) < left),
            "{what}: alternate screen cleared before leaving it: {tail:?}"
        );
        assert!(
            tail.contains("\u{1b}[?25h"),
            "{what}: cursor shown: {tail:?}"
        );
    }

    pub fn keys(&mut self, keys: &str) {
        self.writer.write_all(keys.as_bytes()).expect("write");
        self.writer.flush().expect("flush");
    }
}

/// Row and column where `lines` appear stacked on `rows`.
fn block_position(rows: &[Vec<char>], lines: &[String]) -> Option<(usize, usize)> {
    let lines: Vec<Vec<char>> = lines.iter().map(|l| l.chars().collect()).collect();
    let width = lines.first()?.len();
    let fits = |row: &[char], col: usize, line: &[char]| row.get(col..col + width) == Some(line);
    (0..rows.len().saturating_sub(lines.len() - 1)).find_map(|top| {
        let first = &rows[top];
        (0..first.len().saturating_sub(width - 1))
            .find(|&col| {
                lines
                    .iter()
                    .enumerate()
                    .all(|(i, line)| fits(&rows[top + i], col, line))
            })
            .map(|col| (top, col))
    })
}
