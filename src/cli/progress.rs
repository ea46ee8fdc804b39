//! A progress bar on stderr for long work (`learn` on a large export, `eval`
//! with a slow model): label, bar, done/total, rate and time left, redrawn at
//! most ten times a second and cleared at the end. Drawn only when both the
//! output and stderr are a terminal: with the output piped (`| tee`, `> file`)
//! the run is a script's, and a bar would only garble its log.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use super::output::printable;

/// Least time between two draws.
const REDRAW: Duration = Duration::from_millis(100);
/// Cells of the bar itself.
const BAR_CELLS: usize = 24;
/// Longest label shown.
const LABEL_CHARS: usize = 32;

/// A progress bar on stderr, or nothing when disabled.
pub struct Progress {
    label: String,
    total: u64,
    done: u64,
    started: Instant,
    last_draw: Option<Instant>,
    /// Drawing at all: asked for, and stdout and stderr are terminals.
    enabled: bool,
    /// Something is on the line and must be cleared.
    drawn: bool,
}

impl Progress {
    /// A bar for `total` steps; `enabled` false (`--json`) draws nothing, and
    /// neither does a stdout or a stderr that is not a terminal.
    pub fn new(label: &str, total: u64, enabled: bool) -> Progress {
        Progress {
            label: printable(label).chars().take(LABEL_CHARS).collect(),
            total,
            done: 0,
            started: Instant::now(),
            last_draw: None,
            enabled: enabled && Self::on_terminal(),
            drawn: false,
        }
    }

    /// Whether a person watches: stdout and stderr both terminals.
    pub fn on_terminal() -> bool {
        std::io::stdout().is_terminal() && std::io::stderr().is_terminal()
    }

    /// `done` steps are finished; redraws when the last draw is old enough.
    pub fn set(&mut self, done: u64) {
        self.done = done.min(self.total);
        if !self.enabled {
            return;
        }
        let now = Instant::now();
        if self.last_draw.is_some_and(|at| now - at < REDRAW) {
            return;
        }
        self.last_draw = Some(now);
        let line = render(&self.label, self.done, self.total, now - self.started);
        let mut err = std::io::stderr().lock();
        // A progress bar that cannot be drawn is no reason to stop the work.
        let _ = write!(err, "\r\x1b[2K{line}");
        let _ = err.flush();
        self.drawn = true;
    }

    /// Clears the bar.
    pub fn finish(mut self) {
        self.clear();
    }

    fn clear(&mut self) {
        if self.drawn {
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r\x1b[2K");
            let _ = err.flush();
            self.drawn = false;
        }
    }
}

impl Drop for Progress {
    /// An error cutting the work short leaves no half-drawn bar behind.
    fn drop(&mut self) {
        self.clear();
    }
}

/// One line: `label [#####-----] done/total  rate/s  ETA 12s`.
fn render(label: &str, done: u64, total: u64, elapsed: Duration) -> String {
    let share = if total == 0 {
        1.0
    } else {
        done as f64 / total as f64
    };
    let filled = ((share * BAR_CELLS as f64).round() as usize).min(BAR_CELLS);
    let bar = format!("{}{}", "#".repeat(filled), "-".repeat(BAR_CELLS - filled));
    let secs = elapsed.as_secs_f64();
    let rate = if secs > 0.0 { done as f64 / secs } else { 0.0 };
    let eta = if rate > 0.0 {
        let left = (total.saturating_sub(done)) as f64 / rate;
        format!("ETA {}", span(left))
    } else {
        "ETA --".to_owned()
    };
    format!("{label} [{bar}] {done}/{total}  {}/s  {eta}", whole(rate))
}

/// A rate without decimals, `k` or `M` past a thousand.
fn whole(rate: f64) -> String {
    match rate {
        r if r >= 1e6 => format!("{:.1}M", r / 1e6),
        r if r >= 1e4 => format!("{:.0}k", r / 1e3),
        r if r >= 10.0 => format!("{r:.0}"),
        r => format!("{r:.1}"),
    }
}

/// Seconds as `45s`, `3m05s`, `1h02m`.
fn span(secs: f64) -> String {
    let s = secs.ceil() as u64;
    match s {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m{:02}s", s / 60, s % 60),
        s => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
    }
}

#[cfg(test)]
mod tests {
    // The parent by its full path: a `super` path in this folder names a sibling file.
    use crate::cli::progress::{BAR_CELLS, Duration, Progress, render, span};

    #[test]
    fn a_line_shows_the_share_the_count_the_rate_and_what_is_left() {
        let line = render("learning chat.txt", 25_000, 100_000, Duration::from_secs(2));
        assert_eq!(
            line,
            "learning chat.txt [######------------------] 25000/100000  12k/s  ETA 6s"
        );
        let start = render("eval", 0, 10, Duration::ZERO);
        assert_eq!(start, "eval [------------------------] 0/10  0.0/s  ETA --");
        let slow = render("eval", 3, 40, Duration::from_secs(60));
        assert!(slow.ends_with("3/40  0.1/s  ETA 12m20s"), "{slow}");
        let done = render("x", 7, 7, Duration::from_secs(1));
        assert!(done.contains(&"#".repeat(BAR_CELLS)), "{done}");
    }

    #[test]
    fn disabled_it_draws_nothing_and_keeps_count() {
        let mut p = Progress::new("x", 10, false);
        p.set(15);
        assert_eq!(p.done, 10);
        assert!(!p.drawn);
        p.finish();
    }

    #[test]
    fn spans_read_like_a_clock() {
        assert_eq!(span(0.2), "1s");
        assert_eq!(span(185.0), "3m05s");
        assert_eq!(span(3_720.0), "1h02m");
    }
}
