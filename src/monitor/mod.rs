//! The control room's effects: the terminal, the subscriptions, the state reads,
//! the operator's actions and the embedded worker, around the pure `secondme-ui`.
//!
//! One `select!` loop over terminal input, dashboard events (pushes, snapshots,
//! action results, worker progress), a countdown tick and signals; it redraws
//! only when the model says something visible changed, at most once per frame
//! interval.

pub mod actions;
pub mod drafts;
pub mod feed;
// The WhatsApp gateway's state (`GATEWAY:{userId}`), logged as it changes.
mod gateway_state;
pub mod learned;
pub mod llm;
mod preview;
mod qr_image;
mod setup;
pub mod state;
pub mod terminal;
pub mod unanswered;

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use crossterm::event::{Event as TermEvent, EventStream, KeyEventKind};
use futures_util::StreamExt;
use secondme_ui::{Action, Event, KeyInput, Keymap, Model, Theme, update, view};
use tokio::sync::oneshot;
use tokio::time::Instant;

use crate::config::Config;
use crate::store;
use crate::worker::WorkerStatus;
use setup::Wiring;

/// Shortest time between two frames. Pushes can arrive thousands a second;
/// drawing once per event would spend a core on frames nobody can read, so a
/// burst is folded into one frame, while the first change after a quiet spell
/// (a key press, say) still draws at once.
const FRAME_INTERVAL: Duration = Duration::from_millis(33);

/// How the control room runs.
#[derive(Debug, Clone, Copy, Default)]
pub struct MonitorOptions {
    /// Run the embedded worker (off with `--no-worker`).
    pub worker: bool,
}

/// Builds the model's theme and keymap from the config and `NO_COLOR`.
pub fn initial_model(config: &Config) -> Result<Model> {
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    let theme = if no_color {
        Theme::no_color()
    } else {
        Theme::from_name(&config.theme)
            .with_context(|| format!("unknown theme {:?} (dark, light, no-color)", config.theme))?
    };
    let overrides: Vec<(String, String)> = config
        .keys
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let keymap = Keymap::from_overrides(&overrides)
        .map_err(|e| anyhow::anyhow!("invalid key binding in the config file: {e}"))?;
    let mut model = Model::new(theme, keymap, store::now_ms());
    model.bell = config.bell;
    Ok(model)
}

/// Runs the control room until the operator quits (or the terminal goes away).
pub async fn run(config: &Config, options: MonitorOptions) -> Result<()> {
    let model = initial_model(config)?;
    let wiring = setup::start(config, options)?;
    event_loop(config, model, wiring).await
}

/// Takes the terminal and runs the `select!` loop: input, pushes and events in,
/// frames and actions out, until the operator quits and the embedded worker has
/// drained.
async fn event_loop(config: &Config, mut model: Model, wiring: Wiring) -> Result<()> {
    let Wiring {
        con,
        mut pushes,
        events_tx,
        mut events,
        live,
        resync,
        selected,
        drafts_changed,
        unanswered_changed,
        mut worker,
    } = wiring;
    let ctx = actions::Context {
        con: con.clone(),
        user_id: config.user_id.clone(),
        takeover: config.takeover,
        events: events_tx.clone(),
        drafts_changed: Arc::clone(&drafts_changed),
        unanswered_changed,
    };
    let shared_config = Arc::new(config.clone());
    let mut guard = terminal::TerminalGuard::enter()?;
    let mut input = EventStream::new();
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    // Kept as streams, not a one-shot future: the loop goes on after the first
    // signal (the worker drains), and a finished future must never be polled again.
    let mut term_or_hangup = TermOrHangup::new();
    // Once input has closed it only returns None/Err: polling it again would spin.
    let mut input_open = true;
    let mut quitting = false;
    let mut dirty = true;
    let mut last_draw: Option<Instant> = None;
    // Set when drawing fails: the terminal is gone (a dropped SSH link gives EIO).
    // The control room then stops drawing but still lets the worker drain.
    let mut terminal_gone = false;
    loop {
        let mut actions = Vec::new();
        if dirty && !terminal_gone && last_draw.is_none_or(|at| at.elapsed() >= FRAME_INTERVAL) {
            follow_selection(&model, &selected);
            if let Err(e) = guard.terminal.draw(|f| view(&model, f)) {
                tracing::warn!("cannot draw ({e}): the terminal is gone; stopping");
                terminal_gone = true;
                input_open = false;
                actions.push(Action::Quit);
            }
            dirty = false;
            last_draw = Some(Instant::now());
        }
        let next_frame = last_draw.map_or_else(Instant::now, |at| at + FRAME_INTERVAL);
        tokio::select! {
            ev = input.next(), if input_open => match ev {
                Some(Ok(TermEvent::Key(k))) if k.kind != KeyEventKind::Release => {
                    if let Some(key) = KeyInput::from_crossterm(k) {
                        if quitting && key.ctrl && key.code == secondme_ui::KeyCode::Char('c') {
                            tracing::warn!("second Ctrl-C: leaving without waiting for the drain");
                            break;
                        }
                        let r = update(&mut model, Event::Key(key));
                        dirty |= r.dirty;
                        actions = r.actions;
                    }
                }
                Some(Ok(TermEvent::Paste(text))) => {
                    let r = update(&mut model, Event::Paste(text));
                    dirty |= r.dirty;
                    actions = r.actions;
                }
                Some(Ok(TermEvent::Resize(..))) => {
                    dirty |= update(&mut model, Event::Resize).dirty;
                }
                Some(Ok(_)) => {}
                // Input closed: the SSH link or the terminal is gone.
                None | Some(Err(_)) => {
                    tracing::warn!("terminal input closed; stopping");
                    input_open = false;
                    actions.push(Action::Quit);
                }
            },
            Some(push) = pushes.recv() => {
                resync.on_push(&push);
                if let Some(ev) = feed::translate(push, store::now_ms()) {
                    if let Event::MessageEvent { contact_id, .. }
                    | Event::PauseEvent { contact_id, .. } = &ev
                    {
                        live.saw(contact_id);
                    }
                    if matches!(ev, Event::DraftEvent { .. }) {
                        drafts_changed.notify_one();
                    }
                    let r = apply(&mut model, ev);
                    dirty |= r.dirty;
                    actions = r.actions;
                }
            },
            Some(ev) = events.recv() => {
                let r = apply(&mut model, ev);
                dirty |= r.dirty;
                actions = r.actions;
            },
            _ = tick.tick() => {
                dirty |= update(&mut model, Event::Tick { now_ms: store::now_ms() }).dirty;
            },
            name = term_or_hangup.recv() => {
                tracing::info!("{name} received; stopping");
                actions.push(Action::Quit);
            },
            // A change held back by the frame interval is drawn when it ends.
            () = tokio::time::sleep_until(next_frame), if dirty => {},
            done = async {
                match worker.as_mut() {
                    Some(w) => w.done().await,
                    None => std::future::pending().await,
                }
            }, if quitting => {
                report_worker_end(done);
                break;
            },
        }
        for action in actions {
            if action == Action::Quit {
                if !quitting {
                    quitting = true;
                    if let Some(w) = &worker {
                        w.stop();
                    }
                    dirty = true;
                }
                if worker.is_none() {
                    return Ok(());
                }
            } else if action == Action::Bell {
                ring(&mut guard, terminal_gone);
            } else if let Action::Preview { contact_id } = action {
                preview::spawn(&con, &shared_config, contact_id, &events_tx);
            } else {
                actions::spawn(&ctx, action);
            }
        }
    }
    Ok(())
}

/// Tells the learned-data reader which contact is selected, when that changed.
fn follow_selection(model: &Model, selected: &tokio::sync::watch::Sender<Option<String>>) {
    let now = model.selected_contact().map(|c| c.id.as_str());
    selected.send_if_modified(|was| {
        let changed = was.as_deref() != now;
        if changed {
            *was = now.map(str::to_owned);
        }
        changed
    });
}

/// Logs how the embedded worker ended.
fn report_worker_end(done: Result<Result<WorkerStatus>, oneshot::error::RecvError>) {
    match done {
        Ok(Ok(s)) => tracing::info!(
            "worker drained: {} answered, {} to review",
            s.answered,
            s.reviewed
        ),
        Ok(Err(e)) => tracing::error!("worker ended with an error: {e:#}"),
        Err(_) => tracing::error!("the worker task ended without a result"),
    }
}

/// Applies an event from the feed or a task; a malformed payload also goes to
/// the log file, where it outlives the screen's event log.
fn apply(model: &mut Model, ev: Event) -> secondme_ui::UpdateResult {
    if let Event::Malformed { channel, error } = &ev {
        tracing::warn!("malformed payload on {channel}: {error}");
    }
    update(model, ev)
}

/// Rings the terminal's bell (a BEL byte), unless the terminal is gone.
fn ring(guard: &mut terminal::TerminalGuard, terminal_gone: bool) {
    if terminal_gone {
        return;
    }
    let backend = guard.terminal.backend_mut();
    if let Err(e) = backend.write_all(b"\x07").and_then(|()| backend.flush()) {
        tracing::debug!("cannot ring the bell: {e}");
    }
}

/// SIGTERM and SIGHUP as streams (Ctrl-C arrives as a key in raw mode).
struct TermOrHangup {
    term: Option<tokio::signal::unix::Signal>,
    hup: Option<tokio::signal::unix::Signal>,
}

impl TermOrHangup {
    fn new() -> Self {
        use tokio::signal::unix::{SignalKind, signal};
        Self {
            term: signal(SignalKind::terminate()).ok(),
            hup: signal(SignalKind::hangup()).ok(),
        }
    }

    /// The name of the next signal; never resolves when neither could be installed.
    async fn recv(&mut self) -> &'static str {
        async fn recv_or_never(s: &mut Option<tokio::signal::unix::Signal>) {
            if let Some(sig) = s.as_mut()
                && sig.recv().await.is_some()
            {
                return;
            }
            // A stream that ended (None) is waited on no more.
            *s = None;
            std::future::pending::<()>().await;
        }
        tokio::select! {
            () = recv_or_never(&mut self.term) => "SIGTERM",
            () = recv_or_never(&mut self.hup) => "SIGHUP",
        }
    }
}
