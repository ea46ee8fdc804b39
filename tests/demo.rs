//! `secondme demo` end to end: it starts its own Redis (with FalkorDB), seeds the
//! graph, runs the simulated gateway and the control room, and on quit leaves no
//! process and no file behind.

mod common;

use std::time::{Duration, Instant};

use common::pty::Screen;

/// Processes whose command line mentions `needle`.
fn processes_mentioning(needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return found;
    };
    for entry in dir.flatten() {
        let cmdline = entry.path().join("cmdline");
        if let Ok(bytes) = std::fs::read(&cmdline) {
            let text = String::from_utf8_lossy(&bytes).replace('\0', " ");
            if text.contains(needle) {
                found.push(format!("{}: {text}", entry.file_name().to_string_lossy()));
            }
        }
    }
    found
}

#[test]
fn the_demo_runs_the_whole_system_and_cleans_up_on_quit() {
    let mut screen = Screen::spawn(&["demo"], 40, 120);
    let pid = screen.child.process_id().expect("pid");
    let private_dir = std::env::temp_dir().join(format!("secondme-redis-{pid}-0"));

    // The private Redis is up, the graph seeded (names instead of ids), the login
    // code scanned by the simulated phone, and conversations flowing.
    screen.wait_for("Sam Carter");
    assert!(
        private_dir.join("redis.sock").exists(),
        "private socket in {private_dir:?}"
    );
    assert!(
        !processes_mentioning(&private_dir.display().to_string()).is_empty(),
        "its own redis-server runs"
    );
    let deadline = Instant::now() + Duration::from_secs(25);
    loop {
        let text = screen.text();
        if text.contains("logged in since") && text.contains("twin:") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no login and reply on screen:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    screen.keys("q");
    let status = screen.wait_exit(Duration::from_secs(20), "the demo");
    assert!(status.success(), "exit status {status:?}");
    screen.assert_terminal_restored("the demo");
    let left = processes_mentioning(&private_dir.display().to_string());
    assert!(left.is_empty(), "processes left behind: {left:?}");
    assert!(!private_dir.exists(), "{private_dir:?} was not removed");
}
