//! The control room's panic hook in a pseudo-terminal: a panic in a background
//! task leaves the terminal to the control room (alternate screen, raw mode),
//! shows nothing and goes to the log only; a panic on the thread that holds the
//! terminal, with which the program ends, puts the terminal back once and says
//! why on the shell's screen.
//!
//! The binary has no way to panic on purpose and must not get one, so this test
//! runs itself again in a pseudo-terminal as the child, which holds the terminal
//! with the control room's own guard and hook and panics where told.

mod common;

use std::io::{Read, Write};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use portable_pty::{CommandBuilder, PtySize, native_pty_system};
use secondme::monitor::terminal::TerminalGuard;

/// Set for the child: where it logs.
const CHILD_LOG: &str = "SECONDME_TEST_PANIC_HOOK_LOG";
const TEST: &str = "a_task_panic_leaves_the_terminal_to_the_control_room";
const TASK_PANIC: &str = "a background task gave up";
const LOOP_PANIC: &str = "the control room's loop gave up";
const CAUGHT: &str = "TASK-PANIC-CAUGHT";
const LEAVE_ALTERNATE: &str = "\u{1b}[?1049l";

#[test]
fn a_task_panic_leaves_the_terminal_to_the_control_room() {
    if let Some(log) = std::env::var_os(CHILD_LOG) {
        child(Path::new(&log));
        return;
    }
    let dir = common::TestDir::new("panic-hook");
    let log = dir.join("secondme.log");
    let mut run = Child::start(&log);

    let before = run.wait_for(CAUGHT);
    assert!(
        !before.contains(LEAVE_ALTERNATE),
        "a task's panic left the alternate screen: {before:?}"
    );
    assert!(
        !before.contains(TASK_PANIC) && !before.contains("panicked"),
        "a task's panic was shown: {before:?}"
    );
    assert!(run.alternate_screen(), "still on the alternate screen");
    // In raw mode one key is read at once; a terminal put back would wait for Enter.
    run.type_key(b'x');
    run.wait_for("READ x");

    run.wait_exit();
    let all = run.raw();
    let after = &all[before.len()..];
    let left = after.find(LEAVE_ALTERNATE);
    let cleared = after.find("\u{1b}[2J");
    let said = after.find(LOOP_PANIC);
    assert!(
        cleared.is_some() && cleared < left && left < said,
        "the loop's panic clears and leaves the alternate screen, then says why: {after:?}"
    );
    assert_eq!(
        all.matches(LEAVE_ALTERNATE).count(),
        1,
        "put back once: a second time would clear the shell's screen"
    );
    assert!(!run.alternate_screen(), "back on the shell's screen");
    assert!(
        run.screen_text().contains(LOOP_PANIC),
        "the cause stays on the shell's screen:\n{}",
        run.screen_text()
    );
    let logged = std::fs::read_to_string(&log).expect("the child's log");
    let task_line = logged.lines().find(|l| l.contains(TASK_PANIC));
    assert!(
        task_line.is_some_and(
            |l| l.contains("panic in thread tokio") && l.contains(" at tests/panic_hook.rs:")
        ),
        "the task's panic is in the log, with its thread and place: {logged:?}"
    );
    assert!(logged.contains(LOOP_PANIC), "{logged:?}");
}

/// The child: the control room's terminal guard, a task that panics, a key read
/// in raw mode, then a panic on the thread holding the terminal.
fn child(log: &Path) {
    let file = std::fs::File::create(log).expect("the log file");
    tracing_subscriber::fmt()
        .with_ansi(false)
        .with_writer(Mutex::new(file))
        .init();
    let _guard = TerminalGuard::enter().expect("a terminal");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("a runtime");
    let task = runtime.spawn(async { std::panic::panic_any(TASK_PANIC) });
    let joined = runtime.block_on(task);
    assert!(joined.is_err_and(|e| e.is_panic()), "the task panicked");
    let mut out = std::io::stdout();
    write!(out, "{CAUGHT}").expect("write");
    out.flush().expect("flush");
    let mut key = [0u8; 1];
    std::io::stdin().read_exact(&mut key).expect("a key");
    write!(out, "READ {}", char::from(key[0])).expect("write");
    out.flush().expect("flush");
    std::panic::panic_any(LOOP_PANIC);
}

/// This test's binary, as the child, in a pseudo-terminal read through vt100.
struct Child {
    parser: Arc<Mutex<vt100::Parser>>,
    raw: Arc<Mutex<Vec<u8>>>,
    writer: Box<dyn Write + Send>,
    process: Box<dyn portable_pty::Child + Send + Sync>,
}

impl Child {
    fn start(log: &Path) -> Self {
        let pty = native_pty_system()
            .openpty(PtySize {
                rows: 24,
                cols: 100,
                pixel_width: 0,
                pixel_height: 0,
            })
            .expect("pty");
        let mut cmd = CommandBuilder::new(std::env::current_exe().expect("this test's binary"));
        cmd.args([TEST, "--exact", "--nocapture", "--test-threads=1"]);
        cmd.env(CHILD_LOG, log);
        cmd.env("TERM", "xterm-256color");
        cmd.env_remove("RUST_BACKTRACE");
        let process = pty.slave.spawn_command(cmd).expect("spawn");
        let mut reader = pty.master.try_clone_reader().expect("reader");
        let writer = pty.master.take_writer().expect("writer");
        let parser = Arc::new(Mutex::new(vt100::Parser::new(24, 100, 0)));
        let raw = Arc::new(Mutex::new(Vec::new()));
        let (p, r) = (parser.clone(), raw.clone());
        std::thread::spawn(move || {
            let mut buf = [0u8; 8192];
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 {
                    break;
                }
                p.lock().expect("parser").process(&buf[..n]);
                r.lock().expect("raw").extend_from_slice(&buf[..n]);
            }
        });
        // Kept open for the child's life: dropping it hangs the terminal up.
        std::mem::forget(pty.master);
        Self {
            parser,
            raw,
            writer,
            process,
        }
    }

    fn raw(&self) -> String {
        String::from_utf8_lossy(&self.raw.lock().expect("raw")).into_owned()
    }

    /// The output up to and including `needle`, once it came.
    fn wait_for(&self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let raw = self.raw();
            if let Some(at) = raw.find(needle) {
                return raw[..at + needle.len()].to_owned();
            }
            assert!(
                Instant::now() < deadline,
                "the child never wrote {needle:?}: {raw:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn type_key(&mut self, key: u8) {
        self.writer.write_all(&[key]).expect("write");
        self.writer.flush().expect("flush");
    }

    fn wait_exit(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.process.try_wait().expect("wait").is_none() {
            assert!(Instant::now() < deadline, "the child did not end");
            std::thread::sleep(Duration::from_millis(20));
        }
        // Let the reader take the last bytes.
        std::thread::sleep(Duration::from_millis(200));
    }

    fn alternate_screen(&self) -> bool {
        self.parser
            .lock()
            .expect("parser")
            .screen()
            .alternate_screen()
    }

    fn screen_text(&self) -> String {
        self.parser.lock().expect("parser").screen().contents()
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

/// Set for the headless child.
const HEADLESS_CHILD: &str = "SECONDME_TEST_PANIC_HOOK_HEADLESS";
const HEADLESS_TEST: &str = "a_headless_panic_says_where_but_never_what_it_quotes";

#[test]
fn a_headless_panic_says_where_but_never_what_it_quotes() {
    let private = "meet me at the station at 9";
    if std::env::var_os(HEADLESS_CHILD).is_some() {
        // What `secondme worker` does first; its stderr is a service's journal.
        secondme::monitor::terminal::install_panic_hook();
        let message = private.to_owned();
        panic!("cannot slice {message:?} at byte 4");
    }
    let out = std::process::Command::new(std::env::current_exe().expect("this test's binary"))
        .args([HEADLESS_TEST, "--exact", "--nocapture", "--test-threads=1"])
        .env(HEADLESS_CHILD, "1")
        .env_remove("RUST_BACKTRACE")
        .output()
        .expect("the child runs");
    assert!(!out.status.success(), "the child panicked");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("secondme: panic in thread")
            && stderr.contains("tests/panic_hook.rs:")
            && stderr.contains("withheld"),
        "where it happened is said: {stderr}"
    );
    assert!(
        !stderr.contains(private) && !String::from_utf8_lossy(&out.stdout).contains(private),
        "the message's text is not: {stderr}"
    );
}
