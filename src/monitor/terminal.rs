//! The terminal's state while the control room runs, restored on every way out:
//! normal quit, error, panic, signal, and a closed input stream (SSH dropped).

use std::io::{self, Write};

use anyhow::{Context, Result};
use crossterm::event::{DisableBracketedPaste, EnableBracketedPaste};
use crossterm::terminal::{
    Clear, ClearType, EnterAlternateScreen, LeaveAlternateScreen, disable_raw_mode, enable_raw_mode,
};
use crossterm::{cursor, execute};
use ratatui::Terminal;
use ratatui::backend::CrosstermBackend;

/// The ratatui terminal on stdout.
pub type Term = Terminal<CrosstermBackend<io::Stdout>>;

/// Puts the terminal in full-screen mode; dropping it puts everything back.
pub struct TerminalGuard {
    /// The terminal to draw on.
    pub terminal: Term,
}

impl TerminalGuard {
    /// Enters raw mode and the alternate screen, with a panic hook that restores them.
    pub fn enter() -> Result<Self> {
        install_panic_hook();
        enable_raw_mode().context("cannot put the terminal in raw mode (is this a terminal?)")?;
        let mut out = io::stdout();
        if let Err(e) = execute!(
            out,
            EnterAlternateScreen,
            EnableBracketedPaste,
            cursor::Hide
        ) {
            restore();
            return Err(e).context("cannot switch to the alternate screen");
        }
        let terminal = Terminal::new(CrosstermBackend::new(out)).inspect_err(|_| restore())?;
        Ok(Self { terminal })
    }
}

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        restore();
    }
}

/// Leaves raw mode and the alternate screen and shows the cursor; safe to call twice.
pub fn restore() {
    let _ = disable_raw_mode();
    let mut out = io::stdout();
    let _ = execute!(
        out,
        DisableBracketedPaste,
        cursor::MoveTo(0, 0),
        Clear(ClearType::All),
        LeaveAlternateScreen,
        cursor::Show
    );
    let _ = out.flush();
}

fn install_panic_hook() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        restore();
        // The screen is gone with the alternate screen: the log keeps the cause.
        tracing::error!("panic: {info}");
        previous(info);
    }));
}
