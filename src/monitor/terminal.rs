//! The terminal's state while the control room runs, restored on every way out:
//! normal quit, error, panic, signal, and a closed input stream (SSH dropped).
//!
//! A panic puts the terminal back only when the program ends with it: one on the
//! thread that holds the terminal (the control room's loop), or any under
//! `panic = "abort"`. A panic elsewhere (a task, whose handle catches it) goes to
//! the log only, while the control room goes on drawing.

use std::io::{self, Write};
use std::panic::PanicHookInfo;
use std::sync::{Mutex, Once, PoisonError};
use std::thread::{self, ThreadId};

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

/// The thread that put the terminal in the control room's mode, while it is in it.
static HOLDER: Mutex<Option<ThreadId>> = Mutex::new(None);

/// Puts the terminal in full-screen mode; dropping it puts everything back.
pub struct TerminalGuard {
    /// The terminal to draw on.
    pub terminal: Term,
}

impl TerminalGuard {
    /// Enters raw mode and the alternate screen, with a panic hook that restores
    /// them when a panic ends the program.
    pub fn enter() -> Result<Self> {
        install_panic_hook();
        enable_raw_mode().context("cannot put the terminal in raw mode (is this a terminal?)")?;
        *holder() = Some(thread::current().id());
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

/// Leaves raw mode and the alternate screen and shows the cursor, once per
/// [`TerminalGuard::enter`]: a second call (the guard dropped while a panic
/// unwinds, after the hook restored) would clear the shell's screen.
pub fn restore() {
    if holder().take().is_none() {
        return;
    }
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

fn holder() -> std::sync::MutexGuard<'static, Option<ThreadId>> {
    // Only a plain value is kept under the lock: a poisoned one is still right.
    HOLDER.lock().unwrap_or_else(PoisonError::into_inner)
}

/// What the panic hook does with one panic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OnPanic {
    /// The terminal is the shell's: log, and report on stderr as Rust does.
    Report,
    /// The program ends with this panic: put the terminal back, log and report.
    RestoreAndReport,
    /// The program goes on (the panic's thread or task handle catches it): log
    /// only, since stderr is the control room's screen.
    LogOnly,
}

/// For a panic on thread `on` while `holder` holds the terminal; `aborts` when
/// every panic ends the process.
fn on_panic(holder: Option<ThreadId>, on: ThreadId, aborts: bool) -> OnPanic {
    match holder {
        None => OnPanic::Report,
        Some(h) if h == on || aborts => OnPanic::RestoreAndReport,
        Some(_) => OnPanic::LogOnly,
    }
}

/// Installs the process's panic hook (once; every command calls it, the control
/// room again on entering): it restores the terminal when the panic ends the
/// program, and says where a panic happened without a formatted message, which
/// may quote a contact's message, on stderr (a service's journal) as in the log.
pub fn install_panic_hook() {
    static INSTALLED: Once = Once::new();
    INSTALLED.call_once(|| {
        std::panic::set_hook(Box::new(move |info| {
            let held = *holder();
            let action = on_panic(held, thread::current().id(), cfg!(panic = "abort"));
            if action == OnPanic::RestoreAndReport {
                restore();
            }
            let text = panic_text(info);
            tracing::error!("{text}");
            if action != OnPanic::LogOnly {
                eprintln!("secondme: {text}");
            }
        }));
    });
}

/// Where a panic happened, and what it says when that is text fixed in the
/// code: a formatted message may quote a contact's message, which no log holds.
fn panic_text(info: &PanicHookInfo<'_>) -> String {
    let current = thread::current();
    let name = current.name().unwrap_or("unnamed");
    let place = info
        .location()
        .map_or_else(|| "an unknown place".to_owned(), ToString::to_string);
    match fixed_text(info.payload()) {
        Some(text) => format!("panic in thread {name} at {place}: {text}"),
        None => format!(
            "panic in thread {name} at {place} (its message is withheld: it may quote private data)"
        ),
    }
}

/// A panic's message when it is a literal (`panic!("...")`), not formatted.
fn fixed_text(payload: &(dyn std::any::Any + Send)) -> Option<&'static str> {
    payload.downcast_ref::<&'static str>().copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_panic_that_ends_the_program_restores_the_terminal() {
        let ui = thread::current().id();
        let task = thread::spawn(|| thread::current().id())
            .join()
            .expect("a thread's id");
        assert_eq!(on_panic(None, task, false), OnPanic::Report);
        assert_eq!(on_panic(Some(ui), ui, false), OnPanic::RestoreAndReport);
        assert_eq!(on_panic(Some(ui), task, false), OnPanic::LogOnly);
        assert_eq!(on_panic(Some(ui), task, true), OnPanic::RestoreAndReport);
    }

    #[test]
    fn a_formatted_panic_message_is_not_logged() {
        let literal: Box<dyn std::any::Any + Send> = Box::new("fixed text");
        assert_eq!(fixed_text(&*literal), Some("fixed text"));
        let quoted: Box<dyn std::any::Any + Send> = Box::new(format!("byte 3 of {:?}", "hi"));
        assert_eq!(fixed_text(&*quoted), None);
    }
}
