//! The control room's setup: its connections, the subscriptions, the tasks that
//! feed the event loop (state reads, warnings, the worker's progress) and the
//! embedded worker.

use std::sync::Arc;
use std::time::Duration;

use crate::connection::Client;
use crate::connection::Con;
use anyhow::Result;
use redis::PushInfo;
use secondme_ui::{Event, LogEntry, LogKind, WorkerState};
use tokio::sync::{Notify, mpsc, oneshot, watch};

use super::{MonitorOptions, drafts, gateway_state, learned, llm, state, unanswered};
use crate::config::Config;
use crate::connection;
use crate::reply::engine::Engine;
use crate::schema;
use crate::store;
use crate::worker::{self, Worker, WorkerConfig, WorkerStatus};

/// What the event loop works with once the tasks run.
pub(super) struct Wiring {
    /// The connection the operator's actions use; it receives the pushes.
    pub(super) con: Con,
    /// Pub/sub pushes of the subscribed channels.
    pub(super) pushes: mpsc::UnboundedReceiver<PushInfo>,
    /// Where the tasks and the actions send their events.
    pub(super) events_tx: mpsc::UnboundedSender<Event>,
    /// The events the tasks and the actions sent.
    pub(super) events: mpsc::UnboundedReceiver<Event>,
    /// Contacts seen on the feed, whose state the poll reads first.
    pub(super) live: state::LiveContacts,
    /// Asks the poll to read everything again after a disconnection notice.
    pub(super) resync: state::Resync,
    /// The selected contact, whose learned data is read.
    pub(super) selected: watch::Sender<Option<String>>,
    /// Wakes the drafts reader: a draft or a mode changed.
    pub(super) drafts_changed: Arc<Notify>,
    /// Wakes the unanswered counts' reader: the operator dismissed one.
    pub(super) unanswered_changed: Arc<Notify>,
    /// The embedded worker, unless `--no-worker`.
    pub(super) worker: Option<EmbeddedWorker>,
}

/// The worker running inside the control room.
pub(super) struct EmbeddedWorker {
    stop: watch::Sender<bool>,
    done: oneshot::Receiver<Result<WorkerStatus>>,
}

impl EmbeddedWorker {
    /// Asks the worker to drain and stop.
    pub(super) fn stop(&self) {
        let _ = self.stop.send(true);
    }

    /// The worker's end: its last status, its error, or that its task died.
    pub(super) async fn done(&mut self) -> Result<Result<WorkerStatus>, oneshot::error::RecvError> {
        (&mut self.done).await
    }
}

/// Opens the connection, starts the tasks that feed the event loop and, with
/// `options.worker`, the embedded worker.
pub(super) fn start(config: &Config, options: MonitorOptions) -> Result<Wiring> {
    let client = connection::client_for(config)?;
    let (push_tx, pushes) = mpsc::unbounded_channel();
    let con = connection::lazy_manager(&client, Some(push_tx))?;
    let (events_tx, events) = mpsc::unbounded_channel::<Event>();
    let live = state::LiveContacts::default();
    let resync = state::Resync::default();
    spawn_watchers(config, &con, &live, &resync, &events_tx);
    let (selected, selected_rx) = watch::channel(None);
    tokio::spawn(learned::watch(con.clone(), selected_rx, events_tx.clone()));
    let drafts_changed = Arc::new(Notify::new());
    tokio::spawn(drafts::watch(
        con.clone(),
        Arc::clone(&drafts_changed),
        config.reply_mode,
        events_tx.clone(),
    ));
    let unanswered_changed = Arc::new(Notify::new());
    tokio::spawn(unanswered::watch(
        con.clone(),
        Arc::clone(&unanswered_changed),
        events_tx.clone(),
    ));
    let worker = if options.worker {
        Some(start_worker(config, &client, &con, &events_tx)?)
    } else {
        None
    };
    Ok(Wiring {
        con,
        pushes,
        events_tx,
        events,
        live,
        resync,
        selected,
        drafts_changed,
        unanswered_changed,
        worker,
    })
}

/// Starts the tasks that read Redis for the screen: the subscriptions, the
/// eviction check, the model's figures, the gateway's state and the state poll.
fn spawn_watchers(
    config: &Config,
    con: &Con,
    live: &state::LiveContacts,
    resync: &state::Resync,
    tx: &mpsc::UnboundedSender<Event>,
) {
    tokio::spawn(subscribe(con.clone(), tx.clone()));
    tokio::spawn(warn_eviction(con.clone(), tx.clone()));
    tokio::spawn(llm::watch(con.clone(), tx.clone()));
    tokio::spawn(gateway_state::watch(
        con.clone(),
        config.user_id.clone(),
        tx.clone(),
    ));
    tokio::spawn(state::poll(
        con.clone(),
        config.user_id.clone(),
        live.clone(),
        resync.clone(),
        tx.clone(),
    ));
}

/// Starts the embedded worker on a connection of its own, its progress forwarded
/// to the model and, with a language model, its usage accounts kept.
fn start_worker(
    config: &Config,
    client: &Client,
    con: &Con,
    tx: &mpsc::UnboundedSender<Event>,
) -> Result<EmbeddedWorker> {
    let (stop, stop_rx) = watch::channel(false);
    let engine = Engine::from_config(config.llm.as_ref(), &config.learn)?;
    if let Some(llm) = engine.llm() {
        tokio::spawn(store::usage::keep_accounts(
            con.clone(),
            llm,
            stop_rx.clone(),
        ));
    }
    let w = Worker::with_connection(
        client.clone(),
        connection::lazy_manager(client, None)?,
        engine,
        WorkerConfig::from_config(config),
    );
    tokio::spawn(forward_worker_status(w.status(), tx.clone()));
    let (done_tx, done) = oneshot::channel();
    tokio::spawn(async move {
        let _ = done_tx.send(w.run(stop_rx).await);
    });
    Ok(EmbeddedWorker { stop, done })
}

/// Subscribes to the three channels, retrying until Redis answers; the manager
/// resubscribes by itself after later reconnects.
async fn subscribe(mut con: Con, tx: mpsc::UnboundedSender<Event>) {
    // The seed's three, the service statuses other gateways publish, and the drafts.
    let channels = [
        &schema::channels()[..],
        &[
            schema::dialect::channel_status(),
            schema::drafts::channel_drafts(),
        ],
    ]
    .concat();
    loop {
        match con.subscribe(&channels).await {
            Ok(()) => {
                let _ = tx.send(Event::Log(LogEntry {
                    at_ms: store::now_ms(),
                    kind: LogKind::Connection,
                    text: format!("subscribed to {}", channels.join(", ")),
                }));
                return;
            }
            Err(e) => {
                tracing::warn!("subscribe failed, retrying: {e}");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

/// Warns, in the event log once and under the status bar while it lasts, when
/// Redis may evict SecondMe's keys (its `maxmemory-policy` is not `noeviction`).
/// Re-read every minute, so the line goes once the policy is fixed.
async fn warn_eviction(mut con: Con, tx: mpsc::UnboundedSender<Event>) {
    let mut logged = false;
    loop {
        let mut wait = Duration::from_secs(2);
        // Redis not there yet: nothing is known, so nothing is said.
        if let Ok(check) = store::eviction::check(&mut con).await {
            wait = Duration::from_secs(60);
            if let (Some(warning), false) = (&check.warning, logged) {
                logged = true;
                let _ = tx.send(Event::Log(LogEntry {
                    at_ms: store::now_ms(),
                    kind: LogKind::Connection,
                    text: secondme_ui::sanitize::clean(&format!("WARNING {warning}"), 400),
                }));
            }
            let bar = check.policy.filter(|_| !check.safe).map(|p| {
                format!(
                    "Redis may evict SecondMe's keys (maxmemory-policy {p}): \
                     CONFIG SET maxmemory-policy {}",
                    store::eviction::SAFE_POLICY
                )
            });
            if tx.send(Event::SetupWarning(bar)).is_err() {
                return;
            }
        }
        tokio::time::sleep(wait).await;
    }
}

/// Hands the worker's state to the model as it changes, and logs why it is off.
async fn forward_worker_status(
    mut status: watch::Receiver<WorkerStatus>,
    tx: mpsc::UnboundedSender<Event>,
) {
    let mut last_error = None;
    loop {
        let (state, asleep, left) = {
            let s = status.borrow_and_update();
            (s.state.clone(), s.asleep, s.left())
        };
        // "worker off" alone hides why; a missing permission must be read on screen.
        if let worker::WorkerState::Disconnected { error } = &state
            && last_error.as_ref() != Some(error)
        {
            last_error = Some(error.clone());
            let _ = tx.send(Event::Log(LogEntry {
                at_ms: store::now_ms(),
                kind: LogKind::Connection,
                text: secondme_ui::sanitize::clean(&format!("worker off: {error}"), 400),
            }));
        }
        let shown = match state {
            worker::WorkerState::Starting | worker::WorkerState::Disconnected { .. } => {
                WorkerState::Off
            }
            worker::WorkerState::Running => match asleep {
                Some(w) => WorkerState::Asleep {
                    until_minute: w.end_minute(),
                },
                None => WorkerState::Running,
            },
            worker::WorkerState::Draining => WorkerState::Draining { left },
            worker::WorkerState::Stopped => WorkerState::Stopped,
        };
        if tx.send(Event::WorkerProgress(shown)).is_err() || status.changed().await.is_err() {
            return;
        }
    }
}
