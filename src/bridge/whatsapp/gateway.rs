//! The gateway's effects, over any [`Connector`]: login codes to `events:qr` and
//! `QR:{userId}`, the session manifest in `SESSION:{userId}`, the state in
//! `GATEWAY:{userId}`, and the reply sender reading `QUEUE:responses`.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use base64::Engine;
use redis::AsyncCommands;
use redis::aio::ConnectionManager;
use redis::streams::{StreamId, StreamReadOptions};
use serde::Serialize;
use tokio::sync::{mpsc, watch};

use super::inbox::Inbox;
use super::lease::{self, Lease};
use super::link::{Connector, Link, LinkError, LinkEvent};
use super::status::{self, GatewayStatus, State};
use crate::schema::{self, Direction, QrEvent, QueueMessage, response_fields as rf};
use crate::seal::SessionKey;
use crate::store::{self, session};
use crate::worker::batch::{self, DeadLetter};

/// The consumer group the gateway reads `QUEUE:responses` in.
pub const SENDER_GROUP: &str = "secondme-gateway";

/// The gateway's consumer name in [`SENDER_GROUP`]: one per account (two
/// gateways of one account share it, and only the holder of the reply lease,
/// [`super::lease`], reads with it), the same after every restart, so the
/// replies it left pending are its own again.
pub fn consumer_name(user_id: &str) -> String {
    format!("gateway-{user_id}")
}

/// `SENTREPLY:{replyId}`: the message id a reply was sent as (a reply is sent once),
/// `sending:{messageId}` while it is being sent.
pub fn sent_reply_key(reply_id: &str) -> String {
    format!("SENTREPLY:{reply_id}")
}

/// What `SENTREPLY:{replyId}` holds, before the id, while the reply is being sent.
pub const SENDING: &str = "sending:";

/// `SENDFAIL:{replyId}`: the WhatsApp id a reply goes out with (`waId`, written
/// before its first send) and its failed sends (`attempts`, `error`).
pub fn send_fail_key(reply_id: &str) -> String {
    format!("SENDFAIL:{reply_id}")
}

/// Default attempts at sending one reply before it goes to `QUEUE:deadletter`.
pub const DEFAULT_SEND_ATTEMPTS: u32 = 5;

/// Default wait after a reply's first failed send (doubled after each further one).
pub const DEFAULT_SEND_RETRY: Duration = Duration::from_secs(5);

/// Default send budget: replies a minute, far below what looks like spam to WhatsApp.
pub const DEFAULT_SEND_PER_MINUTE: u32 = 12;

/// How long another consumer of [`SENDER_GROUP`] must have been idle before a
/// starting gateway removes it (a live one reads every half second).
pub const IDLE_BEFORE_REMOVAL: Duration = Duration::from_secs(2);

/// How long `SENTREPLY:` is kept, s.
pub const SENT_REPLY_TTL_S: u64 = 24 * 60 * 60;

/// How the gateway behaves.
#[derive(Debug, Clone)]
pub struct GatewayOptions {
    /// Account owner (`SESSION:{userId}`, `QR:{userId}`, `GATEWAY:{userId}`).
    pub user_id: String,
    /// Seals the session manifest.
    pub key: SessionKey,
    /// Replies sent per minute at most (the send budget).
    pub send_per_minute: u32,
    /// "typing..." is sent again this often during a reply's delay.
    pub typing_refresh: Duration,
    /// `GATEWAY:{userId}` and `SESSION:{userId}` are rewritten this often
    /// ([`status::REFRESH`]), well within their TTLs.
    pub refresh: Duration,
    /// Failed sends of one reply before it is dead-lettered.
    pub send_attempts: u32,
    /// Wait after a reply's first failed send (doubled after each further one).
    pub send_retry: Duration,
    /// Stop once logged in (`secondme login`) instead of serving traffic.
    pub until_connected: bool,
    /// This gateway's consumer name in [`SENDER_GROUP`].
    pub consumer: String,
}

/// Why the gateway stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Asked to stop.
    Stopped,
    /// Logged in (with `until_connected`).
    LoggedIn,
    /// Another instance uses the account.
    Replaced,
}

/// The session manifest sealed in `SESSION:{userId}.token`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    /// The account (a contact id, not the number).
    pub account: String,
    /// This device's number on the account.
    pub device: u16,
    /// The device store.
    pub store_path: String,
    /// When this device was linked to the account, ms.
    pub paired_at: i64,
}

/// How one connection ended.
enum Outcome {
    Stop,
    LoggedIn,
    LoggedOut,
    Replaced,
    CodesExhausted,
    /// Banned; the state shown (`until` the end of the ban).
    Banned(GatewayStatus),
    /// The connection ended by itself; the last state shown.
    Lost(GatewayStatus),
}

/// The gateway: one connector, one Redis.
pub struct WhatsAppGateway<C: Connector> {
    connector: C,
    con: ConnectionManager,
    inbox: Inbox,
    opts: GatewayOptions,
    tap: Option<mpsc::UnboundedSender<LinkEvent>>,
    /// Only its holder sends replies.
    lease: Lease,
    /// The send budget of the whole run: a reconnect does not refill it.
    budget: Arc<tokio::sync::Mutex<Budget>>,
}

impl<C: Connector> WhatsAppGateway<C> {
    /// A gateway writing through `con`, committing messages through `inbox`.
    pub fn new(connector: C, con: ConnectionManager, inbox: Inbox, opts: GatewayOptions) -> Self {
        Self {
            connector,
            con,
            inbox,
            lease: Lease::new(&opts.user_id),
            budget: Arc::new(tokio::sync::Mutex::new(Budget::new(opts.send_per_minute))),
            opts,
            tap: None,
        }
    }

    /// Also sends every connection event to `tap` (the login command prints them).
    pub fn with_tap(mut self, tap: mpsc::UnboundedSender<LinkEvent>) -> Self {
        self.tap = Some(tap);
        self
    }

    /// Runs connections until stopped, replaced, or (with `until_connected`) logged in.
    pub async fn run(mut self, mut stop: watch::Receiver<bool>) -> Result<Exit> {
        let mut backoff = Backoff::default();
        // The last state shown between connections: while it is a retry, the
        // next try keeps its `since` (when the trouble began).
        let mut shown = GatewayStatus::new(State::Connecting, store::now_ms());
        loop {
            if *stop.borrow() {
                return Ok(self.stopped().await);
            }
            if !is_retrying(&shown) {
                shown = GatewayStatus::new(State::Connecting, store::now_ms());
                self.set_status(shown.clone()).await;
            }
            let (tx, rx) = mpsc::channel(64);
            let link = match self.connector.connect(self.inbox.clone(), tx).await {
                Ok(link) => Arc::new(link),
                Err(e) => {
                    let wait = backoff.next();
                    let now = store::now_ms();
                    shown = retrying(
                        State::Reconnecting,
                        &shown,
                        now,
                        format!("{e:#}"),
                        now + millis(wait),
                    );
                    if self.wait_out(shown.clone(), wait, &mut stop).await {
                        return Ok(self.stopped().await);
                    }
                    continue;
                }
            };
            let outcome = self
                .connection(&link, rx, &mut stop, &mut backoff, shown.clone())
                .await;
            link.shutdown().await;
            shown = GatewayStatus::new(State::Connecting, store::now_ms());
            match outcome {
                Outcome::Stop => return Ok(self.stopped().await),
                Outcome::LoggedIn => return Ok(Exit::LoggedIn),
                Outcome::Replaced => {
                    self.set_status(
                        GatewayStatus::new(State::Replaced, store::now_ms())
                            .detail("another program uses this device; stop it or log in again"),
                    )
                    .await;
                    return Ok(Exit::Replaced);
                }
                Outcome::LoggedOut => self.forget_login().await,
                Outcome::CodesExhausted => {
                    if self.wait_for_new_codes(&mut stop).await {
                        return Ok(self.stopped().await);
                    }
                }
                Outcome::Banned(banned) => {
                    let until = banned.until.unwrap_or(0);
                    let wait =
                        Duration::from_millis(u64::try_from(until - store::now_ms()).unwrap_or(0));
                    if self.wait_out(banned, wait, &mut stop).await {
                        return Ok(self.stopped().await);
                    }
                }
                Outcome::Lost(last) => {
                    let wait = backoff.next();
                    let now = store::now_ms();
                    shown = retrying(
                        State::Reconnecting,
                        &last,
                        now,
                        "the connection ended".to_owned(),
                        now + millis(wait),
                    );
                    if self.wait_out(shown.clone(), wait, &mut stop).await {
                        return Ok(self.stopped().await);
                    }
                }
            }
        }
    }

    async fn stopped(&self) -> Exit {
        self.set_status(GatewayStatus::new(State::Stopped, store::now_ms()))
            .await;
        Exit::Stopped
    }

    /// Serves one connection: its events, the session refresh and the sender.
    /// `shown` is the state on screen as it starts (a retry keeps its `since`);
    /// the backoff starts over once connected.
    async fn connection(
        &mut self,
        link: &Arc<C::Link>,
        mut events: mpsc::Receiver<LinkEvent>,
        stop: &mut watch::Receiver<bool>,
        backoff: &mut Backoff,
        shown: GatewayStatus,
    ) -> Outcome {
        let (connected_tx, connected_rx) = watch::channel(false);
        let (leased_tx, leased_rx) = watch::channel(false);
        let recording = Arc::new(tokio::sync::Mutex::new(()));
        let sender = SenderTask {
            task: tokio::spawn(sender_loop(
                self.con.clone(),
                Arc::clone(link),
                self.inbox.clone(),
                self.opts.clone(),
                (connected_rx, leased_rx),
                Arc::clone(&recording),
                Arc::clone(&self.budget),
            )),
            recording,
        };
        let mut manifest: Option<(Manifest, i64)> = None;
        // Codes shown on this connection: a Connected after them is a new link.
        let mut linking = false;
        let mut last = shown;
        let mut refresh = tokio::time::interval(self.opts.refresh);
        let mut lease_check = tokio::time::interval(lease::RETRY);
        // When the lease was last renewed: it is renewed with the state refresh.
        let mut renewed: Option<tokio::time::Instant> = None;
        let outcome = loop {
            tokio::select! {
                _ = stop.changed() => break Outcome::Stop,
                _ = lease_check.tick() => {
                    let due = renewed.is_none_or(|at| at.elapsed() >= self.opts.refresh);
                    if *connected_tx.borrow() && !self.opts.until_connected && due {
                        self.hold_lease(&leased_tx, &mut last, &mut renewed).await;
                    }
                }
                _ = refresh.tick() => {
                    self.set_status(last.clone()).await;
                    if let Some((m, connected_at)) = &manifest
                        && let Err(e) = self.write_session(m, *connected_at).await
                    {
                        tracing::warn!("whatsapp gateway: {e:#}");
                    }
                }
                event = events.recv() => {
                    let Some(event) = event else { break Outcome::Lost(last) };
                    if let Some(tap) = &self.tap {
                        let _ = tap.send(event.clone());
                    }
                    let now = store::now_ms();
                    match event {
                        LinkEvent::Qr { code, expires_in } => {
                            linking = true;
                            self.publish_qr(&code, expires_in).await;
                            let mut s = GatewayStatus::new(State::WaitingForScan, now);
                            s.until = Some(now + i64::from(expires_in) * 1000);
                            last = s;
                        }
                        LinkEvent::PairCode { code, expires_in } => {
                            linking = true;
                            self.drop_request().await;
                            let mut s = GatewayStatus::new(State::PairCode, now);
                            s.code = Some(code);
                            s.until = Some(now + i64::from(expires_in) * 1000);
                            last = s;
                        }
                        LinkEvent::PairCodeFailed { reason } => {
                            last = GatewayStatus::new(State::WaitingForScan, now)
                                .detail(format!("pair code failed: {reason}"));
                        }
                        LinkEvent::CodesExhausted => {
                            self.clear_qr().await;
                            break Outcome::CodesExhausted;
                        }
                        LinkEvent::Connected { account, device, name } => {
                            self.clear_qr().await;
                            let store_path = self.connector.store_path();
                            let m = Manifest {
                                account,
                                device,
                                paired_at: if linking { now } else { linked_at(&store_path, now) },
                                store_path: store_path.display().to_string(),
                            };
                            if let Err(e) = self.write_session(&m, now).await {
                                tracing::warn!("whatsapp gateway: {e:#}");
                            }
                            manifest = Some((m, now));
                            if let Err(e) = link.set_unavailable().await {
                                tracing::warn!("whatsapp gateway: cannot appear offline: {e}");
                            }
                            backoff.reset();
                            let mut s = GatewayStatus::new(State::Connected, now);
                            s.name = Some(name);
                            last = s;
                            let _ = connected_tx.send(true);
                            if self.opts.until_connected {
                                self.set_status(last.clone()).await;
                                break Outcome::LoggedIn;
                            }
                            self.hold_lease(&leased_tx, &mut last, &mut renewed).await;
                        }
                        LinkEvent::Reconnecting { reason, next_try_ms } => {
                            let _ = connected_tx.send(false);
                            // Taken again once connected (it may expire meanwhile).
                            let _ = leased_tx.send(false);
                            renewed = None;
                            last = retrying(State::Reconnecting, &last, now, reason, next_try_ms);
                        }
                        LinkEvent::NoNetwork { reason, next_try_ms } => {
                            let _ = connected_tx.send(false);
                            let _ = leased_tx.send(false);
                            renewed = None;
                            last = retrying(State::NoNetwork, &last, now, reason, next_try_ms);
                        }
                        LinkEvent::LoggedOut { reason } => {
                            last = GatewayStatus::new(State::LoggedOut, now).detail(reason);
                            self.set_status(last.clone()).await;
                            break Outcome::LoggedOut;
                        }
                        LinkEvent::StreamReplaced => break Outcome::Replaced,
                        LinkEvent::TemporaryBan { until_ms, reason } => {
                            let mut s = GatewayStatus::new(State::Banned, now).detail(reason);
                            s.until = Some(until_ms);
                            // Written (and kept fresh) by the wait for its end.
                            break Outcome::Banned(s);
                        }
                    }
                    self.set_status(last.clone()).await;
                }
            }
        };
        // The sender is gone before the lease is, so nothing is sent after it;
        // told first, it starts nothing new while a sent reply is recorded.
        let _ = leased_tx.send(false);
        sender.stop().await;
        if let Err(e) = self.lease.release(&mut self.con).await {
            tracing::warn!("whatsapp gateway: cannot release the reply lease: {e}");
        }
        outcome
    }

    /// Takes or renews the reply lease and tells the sender; while another
    /// gateway holds it, the connected state says so (and the log, once).
    /// `renewed` is when it was last renewed: a check that fails (a Redis
    /// timeout) keeps a lease renewed recently enough to be surely ours still,
    /// and drops it before it could have expired on the server.
    async fn hold_lease(
        &mut self,
        leased: &watch::Sender<bool>,
        last: &mut GatewayStatus,
        renewed: &mut Option<tokio::time::Instant>,
    ) {
        let held = match self.lease.hold(&mut self.con).await {
            Ok(held) => {
                *renewed = held.then(tokio::time::Instant::now);
                held
            }
            Err(e) => {
                tracing::warn!("whatsapp gateway: cannot check the reply lease: {e}");
                renewed.is_some_and(|at| at.elapsed() < lease::SURELY_HELD)
            }
        };
        let was = leased.send_replace(held);
        if last.state == State::Connected {
            let waiting = (!held).then(|| {
                format!(
                    "another gateway of this account sends the replies ({}); this one waits",
                    lease::key(&self.opts.user_id)
                )
            });
            if waiting != last.detail {
                if let Some(w) = &waiting {
                    tracing::warn!("whatsapp gateway: {w}");
                } else if !was {
                    tracing::info!("whatsapp gateway: took the reply lease; sending replies");
                }
                last.detail = waiting;
                self.set_status(last.clone()).await;
            }
        }
    }

    /// After a logout: the store and the session go, so the next connection shows codes.
    async fn forget_login(&mut self) {
        if let Err(e) = self.connector.remove_store() {
            tracing::warn!("whatsapp gateway: cannot delete the device store: {e}");
        }
        if let Err(e) = session::remove(&mut self.con, &self.opts.user_id).await {
            tracing::warn!("whatsapp gateway: {e:#}");
        }
    }

    /// Waits until the operator asks for new codes (`GATEWAYREQ:{userId}`); true when stopped.
    async fn wait_for_new_codes(&mut self, stop: &mut watch::Receiver<bool>) -> bool {
        // One state for the whole wait, refreshed unchanged: a new `since` at each
        // refresh would read as news to everyone watching the key.
        let waiting = GatewayStatus::new(State::CodesExhausted, store::now_ms()).detail(format!(
            "no code was scanned; ask for new ones: SET {} {} EX 300",
            status::request_key(&self.opts.user_id),
            status::REQUEST_NEW_CODES
        ));
        self.set_status(waiting.clone()).await;
        let key = status::request_key(&self.opts.user_id);
        let mut refresh = tokio::time::Instant::now();
        loop {
            let asked: redis::RedisResult<Option<String>> = redis::cmd("GETDEL")
                .arg(&key)
                .query_async(&mut self.con)
                .await;
            if matches!(asked, Ok(Some(ref v)) if v == status::REQUEST_NEW_CODES) {
                return false;
            }
            if refresh.elapsed() > self.opts.refresh {
                refresh = tokio::time::Instant::now();
                self.set_status(waiting.clone()).await;
            }
            if sleep_or_stop(Duration::from_millis(500), stop).await {
                return true;
            }
        }
    }

    /// Shows `s` for `wait`, rewriting it unchanged every `refresh` so its key
    /// outlives a wait longer than its TTL (a ban, a long backoff); true when stopped.
    async fn wait_out(
        &self,
        s: GatewayStatus,
        wait: Duration,
        stop: &mut watch::Receiver<bool>,
    ) -> bool {
        let until = tokio::time::Instant::now() + wait;
        loop {
            self.set_status(s.clone()).await;
            let left = until.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                return *stop.borrow();
            }
            if sleep_or_stop(left.min(self.opts.refresh), stop).await {
                return true;
            }
        }
    }

    /// Deletes `GATEWAYREQ:{userId}`: a request is meant only while the codes
    /// ran out, so one still there when codes show (a second press of the key)
    /// would start a round nobody asked for the next time they run out.
    async fn drop_request(&mut self) {
        let key = status::request_key(&self.opts.user_id);
        let _: redis::RedisResult<i64> = self.con.del(key).await;
    }

    async fn publish_qr(&mut self, code: &str, expires_in: u32) {
        let payload = QrEvent {
            qr_code: base64::engine::general_purpose::STANDARD.encode(code),
            expires_in,
        };
        let Ok(payload) = serde_json::to_string(&payload) else {
            return;
        };
        let result: redis::RedisResult<()> = redis::pipe()
            .pset_ex(
                schema::qr_key(&self.opts.user_id),
                &payload,
                u64::from(expires_in.max(1)) * 1000,
            )
            .ignore()
            .publish(schema::CHANNEL_QR, &payload)
            .ignore()
            .del(status::request_key(&self.opts.user_id))
            .ignore()
            .exec_async(&mut self.con)
            .await;
        if let Err(e) = result {
            tracing::warn!("whatsapp gateway: cannot publish the login code: {e}");
        }
    }

    /// Deletes the code on screen, and any request for new codes made while
    /// codes were still showing (see [`Self::drop_request`]).
    async fn clear_qr(&mut self) {
        let keys = [
            schema::qr_key(&self.opts.user_id),
            status::request_key(&self.opts.user_id),
        ];
        let _: redis::RedisResult<i64> = self.con.del(&keys).await;
    }

    /// Writes the manifest of a connection made at `connected_at`, with a fresh TTL.
    async fn write_session(&mut self, m: &Manifest, connected_at: i64) -> Result<()> {
        let plain = serde_json::to_vec(m)?;
        session::write_at(
            &mut self.con,
            &self.opts.user_id,
            &self.opts.key,
            &plain,
            connected_at,
            store::now_ms(),
        )
        .await?;
        Ok(())
    }

    async fn set_status(&self, s: GatewayStatus) {
        let Ok(json) = serde_json::to_string(&s) else {
            return;
        };
        let mut con = self.con.clone();
        let result: redis::RedisResult<()> = redis::pipe()
            .set_ex(status::key(&self.opts.user_id), &json, status::TTL_S)
            .ignore()
            .publish(status::CHANNEL, &json)
            .ignore()
            .exec_async(&mut con)
            .await;
        match result {
            Ok(()) => tracing::debug!("whatsapp gateway: {}", s.line(store::now_ms())),
            Err(e) => tracing::warn!("whatsapp gateway: cannot write its state: {e}"),
        }
    }
}

/// When a device connecting without codes was linked: its store is created when
/// linking starts and deleted at a logout, so its creation time (else `now`).
fn linked_at(store: &std::path::Path, now: i64) -> i64 {
    std::fs::metadata(store)
        .and_then(|m| m.created())
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .and_then(|d| i64::try_from(d.as_millis()).ok())
        .unwrap_or(now)
}

/// Whether `s` is a retry after trouble (its `since` is when the trouble began).
fn is_retrying(s: &GatewayStatus) -> bool {
    matches!(s.state, State::Reconnecting | State::NoNetwork)
}

/// A retrying state, keeping the time the trouble started.
fn retrying(
    state: State,
    last: &GatewayStatus,
    now: i64,
    reason: String,
    next_try_ms: i64,
) -> GatewayStatus {
    let since = if is_retrying(last) { last.since } else { now };
    let mut s = GatewayStatus::new(state, since).detail(reason);
    s.next_try = Some(next_try_ms);
    s
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Sleeps `d` unless stopped first; true when stopped.
async fn sleep_or_stop(d: Duration, stop: &mut watch::Receiver<bool>) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(d) => *stop.borrow(),
        _ = stop.changed() => true,
    }
}

/// Exponential backoff from 1 s to 5 min.
#[derive(Debug, Default)]
struct Backoff {
    step: u32,
}

impl Backoff {
    fn next(&mut self) -> Duration {
        let d = Duration::from_secs(1u64 << self.step.min(8)).min(Duration::from_secs(300));
        self.step += 1;
        d
    }

    /// Starts over from 1 s (a connection was made: the next loss is new trouble).
    fn reset(&mut self) {
        self.step = 0;
    }
}

/// The sender's task, aborted when dropped too (the gateway's future dropped
/// mid-run must not leave a sender behind).
struct SenderTask {
    task: tokio::task::JoinHandle<()>,
    /// Held by the sender from a send until it is recorded.
    recording: Arc<tokio::sync::Mutex<()>>,
}

/// How long a stop waits for a sent reply to be recorded (the control room
/// gives the whole gateway 12 s to stop).
const STOP_GRACE: Duration = Duration::from_secs(5);

impl SenderTask {
    /// Lets a send in progress be recorded (at most [`STOP_GRACE`]: Redis may
    /// be gone), then aborts the task and waits until it is gone.
    async fn stop(mut self) {
        let recording = Arc::clone(&self.recording);
        let settled = tokio::time::timeout(STOP_GRACE, recording.lock()).await;
        if settled.is_err() {
            tracing::warn!(
                "whatsapp gateway: stopped while a sent reply was being recorded (Redis slow or gone): without its record it goes again after the restart, with the same WhatsApp id, and its echo may be missing from the history"
            );
        }
        self.task.abort();
        let _ = (&mut self.task).await;
    }
}

impl Drop for SenderTask {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The send budget: a token bucket of `per_minute` tokens refilled continuously.
/// One per gateway run, shared by its connections' senders.
#[derive(Debug)]
pub struct Budget {
    per_minute: f64,
    tokens: f64,
    at: tokio::time::Instant,
}

impl Budget {
    /// A full bucket.
    pub fn new(per_minute: u32) -> Self {
        let per_minute = f64::from(per_minute.max(1));
        Self {
            per_minute,
            tokens: per_minute,
            at: tokio::time::Instant::now(),
        }
    }

    /// Takes a token when one is left, else says how long until one is and takes
    /// nothing: a sender stopped while it waits (its connection lost) leaves no debt.
    pub fn try_take(&mut self) -> Result<(), Duration> {
        self.try_take_at(tokio::time::Instant::now())
    }

    /// [`Self::try_take`] at time `now` (not before the last take).
    pub fn try_take_at(&mut self, now: tokio::time::Instant) -> Result<(), Duration> {
        let refill = now.duration_since(self.at).as_secs_f64() * self.per_minute / 60.0;
        self.tokens = (self.tokens + refill).min(self.per_minute);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            // At most a minute: fewer than one token is missing.
            Err(Duration::from_secs_f64(
                (1.0 - self.tokens) * 60.0 / self.per_minute,
            ))
        }
    }
}

/// Reads `QUEUE:responses` in [`SENDER_GROUP`] while connected and sends each reply.
async fn sender_loop<L: Link>(
    con: ConnectionManager,
    link: Arc<L>,
    inbox: Inbox,
    opts: GatewayOptions,
    (connected, mut leased): (watch::Receiver<bool>, watch::Receiver<bool>),
    recording: Arc<tokio::sync::Mutex<()>>,
    budget: Arc<tokio::sync::Mutex<Budget>>,
) {
    let mut sender = Sender {
        con,
        link,
        inbox,
        opts,
        connected,
        leased: leased.clone(),
        deferred: HashMap::new(),
        recording,
        budget,
    };
    loop {
        // The lease is taken only while connected, and dropped with the connection.
        if leased.wait_for(|held| *held).await.is_err() {
            return;
        }
        if !sender.serving() {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        }
        if let Err(e) = sender.serve().await {
            tracing::warn!("whatsapp gateway (sender): {e:#}; retrying");
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
}

struct Sender<L: Link> {
    con: ConnectionManager,
    link: Arc<L>,
    inbox: Inbox,
    opts: GatewayOptions,
    connected: watch::Receiver<bool>,
    /// Whether this gateway holds the reply lease ([`lease`]).
    leased: watch::Receiver<bool>,
    /// Replies whose send failed, by stream id: not tried again before this time.
    deferred: HashMap<String, tokio::time::Instant>,
    /// Held from a send until it is recorded ([`SenderTask::stop`] waits for it).
    recording: Arc<tokio::sync::Mutex<()>>,
    /// The gateway run's send budget.
    budget: Arc<tokio::sync::Mutex<Budget>>,
}

/// The longest wait between tries to record a sent reply.
const RECORD_RETRY_MAX: Duration = Duration::from_secs(10);

/// Tries to add a sent reply's echo before it is given up (within [`STOP_GRACE`]
/// when Redis answers).
const ECHO_ATTEMPTS: u32 = 2;

/// One reply from `QUEUE:responses`.
struct Reply {
    stream_id: String,
    reply_id: String,
    contact_id: String,
    content: String,
    delay: Duration,
    /// The entry's fields, bounded, for a dead letter.
    fields: Vec<(String, String)>,
}

impl Reply {
    fn of(entry: &StreamId) -> Self {
        let get = |f: &str| entry.get::<String>(f).unwrap_or_default();
        Self {
            stream_id: entry.id.clone(),
            reply_id: get(rf::REPLY_ID),
            contact_id: get(rf::CONTACT_ID),
            content: get(rf::CONTENT),
            delay: typing_delay(&get(rf::DELAY_MS)),
            fields: crate::entry::raw_fields(&entry.map),
        }
    }
}

/// The longest "typing..." shown before a reply. The serial sender holds every
/// later reply behind the one typing, so an entry with a huge `delayMs` (a bug
/// or hostile input) must not type for days; a minute is already far longer
/// than any human-looking delay the worker asks for.
pub const MAX_TYPING_DELAY: Duration = Duration::from_secs(60);

/// How long a reply shows "typing...": its `delayMs` (0 when not a number), at
/// most [`MAX_TYPING_DELAY`].
pub fn typing_delay(delay_ms: &str) -> Duration {
    Duration::from_millis(delay_ms.trim().parse().unwrap_or(0)).min(MAX_TYPING_DELAY)
}

/// What became of one reply.
enum Delivered {
    /// Sent, withheld or dead-lettered: acknowledged.
    Done,
    /// Its send failed; it stays pending and is tried again after this wait.
    Retry(Duration),
}

/// A reply's failed send attempts so far (`SENDFAIL:{replyId}`).
#[derive(Debug, Default)]
struct Failures {
    attempts: u32,
    /// The WhatsApp id the failed attempts used; a retry sends with it again.
    wa_id: Option<String>,
    /// The last failure's error.
    error: Option<String>,
}

impl<L: Link> Sender<L> {
    /// Own pending entries first (a restart loses none), then new ones; replies
    /// whose send failed are tried again when their wait is over, without
    /// holding back the others.
    async fn serve(&mut self) -> Result<()> {
        let created: redis::RedisResult<()> = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(schema::QUEUE_RESPONSES)
            .arg(SENDER_GROUP)
            .arg("$")
            .arg("MKSTREAM")
            .query_async(&mut self.con)
            .await;
        if let Err(e) = created
            && e.code() != Some("BUSYGROUP")
        {
            return Err(e).context("cannot create the gateway's group on QUEUE:responses");
        }
        self.take_over().await?;
        let mut scan = true;
        while self.serving() {
            let now = tokio::time::Instant::now();
            if scan || self.deferred.values().any(|at| *at <= now) {
                self.scan_pending().await?;
                scan = false;
            }
            // Short blocks: the shared connection's response timeout is 3 s.
            let entries = self.read(">", Some(200)).await?;
            if entries.is_empty() {
                tokio::time::sleep(Duration::from_millis(300)).await;
                continue;
            }
            for entry in entries {
                self.handle(&entry).await?;
            }
        }
        Ok(())
    }

    /// Connected and holding the reply lease.
    fn serving(&self) -> bool {
        *self.connected.borrow() && *self.leased.borrow()
    }

    /// Takes over the replies other consumers of the group left pending (this
    /// gateway under an older name, or another `consumer`), then removes those
    /// consumers once empty. Only the lease holder serves, so nobody else is
    /// sending them. A consumer is removed only when idle for
    /// [`IDLE_BEFORE_REMOVAL`] too: a live one reads every half second, and what
    /// it read between our look and the removal would be lost with it.
    async fn take_over(&mut self) -> Result<()> {
        let others = self.other_consumers().await?;
        if others.iter().any(|c| c.pending > 0) {
            let mut cursor = "0-0".to_owned();
            loop {
                let reply: Vec<redis::Value> = redis::cmd("XAUTOCLAIM")
                    .arg(schema::QUEUE_RESPONSES)
                    .arg(SENDER_GROUP)
                    .arg(&self.opts.consumer)
                    .arg(0)
                    .arg(&cursor)
                    .arg("COUNT")
                    .arg(100)
                    .arg("JUSTID")
                    .query_async(&mut self.con)
                    .await
                    .context("cannot take over the replies left pending")?;
                cursor = match reply.first() {
                    Some(next) => redis::from_redis_value_ref(next)?,
                    None => break,
                };
                if cursor == "0-0" {
                    break;
                }
            }
        }
        let idle = millis(IDLE_BEFORE_REMOVAL);
        for c in self.other_consumers().await? {
            if c.pending == 0 && i64::try_from(c.idle).unwrap_or(i64::MAX) >= idle {
                let _: i64 = redis::cmd("XGROUP")
                    .arg("DELCONSUMER")
                    .arg(schema::QUEUE_RESPONSES)
                    .arg(SENDER_GROUP)
                    .arg(&c.name)
                    .query_async(&mut self.con)
                    .await
                    .context("cannot remove an old consumer")?;
            }
        }
        Ok(())
    }

    /// The group's consumers but this gateway.
    async fn other_consumers(&mut self) -> Result<Vec<redis::streams::StreamInfoConsumer>> {
        let info: redis::streams::StreamInfoConsumersReply = self
            .con
            .xinfo_consumers(schema::QUEUE_RESPONSES, SENDER_GROUP)
            .await
            .context("cannot list the gateway's consumers")?;
        Ok(info
            .consumers
            .into_iter()
            .filter(|c| c.name != self.opts.consumer)
            .collect())
    }

    /// Goes once through this consumer's pending replies, skipping those whose
    /// retry is not due yet. A deferred reply no longer pending (acknowledged
    /// elsewhere, its consumer removed, the group recreated) is forgotten.
    async fn scan_pending(&mut self) -> Result<()> {
        let mut cursor = "0".to_owned();
        let mut pending = HashSet::new();
        loop {
            let entries = self.read(&cursor, None).await?;
            let Some(last) = entries.last() else {
                self.deferred.retain(|id, _| pending.contains(id));
                return Ok(());
            };
            cursor = last.id.clone();
            for entry in entries {
                pending.insert(entry.id.clone());
                let now = tokio::time::Instant::now();
                if self.deferred.get(&entry.id).is_some_and(|at| *at > now) {
                    continue;
                }
                self.handle(&entry).await?;
            }
        }
    }

    async fn read(&mut self, cursor: &str, block_ms: Option<usize>) -> Result<Vec<StreamId>> {
        let mut opts = StreamReadOptions::default()
            .group(SENDER_GROUP, &self.opts.consumer)
            .count(10);
        if let Some(ms) = block_ms {
            opts = opts.block(ms);
        }
        let reply: Option<redis::streams::StreamReadReply> = self
            .con
            .xread_options(&[schema::QUEUE_RESPONSES], &[cursor], &opts)
            .await
            .context("cannot read QUEUE:responses")?;
        Ok(reply
            .map(|r| r.keys)
            .unwrap_or_default()
            .into_iter()
            .flat_map(|k| k.ids)
            .collect())
    }

    async fn handle(&mut self, entry: &StreamId) -> Result<()> {
        if !self.serving() {
            // The connection or the lease went mid-scan: nothing is typed, sent or
            // dead-lettered without them. The entry stays pending for the holder.
            let later = tokio::time::Instant::now() + self.opts.send_retry;
            self.deferred.insert(entry.id.clone(), later);
            return Ok(());
        }
        let reply = Reply::of(entry);
        let delivered = if entry.map.is_empty() {
            // Deleted from the stream while pending: nothing left to send.
            self.ack(&reply).await?;
            Delivered::Done
        } else if reply.reply_id.is_empty() || reply.contact_id.is_empty() {
            let why = format!(
                "entry {}: not a reply (no replyId or contactId)",
                reply.stream_id
            );
            self.give_up(&reply, why).await?
        } else {
            self.deliver(&reply).await?
        };
        match delivered {
            Delivered::Done => {
                self.deferred.remove(&reply.stream_id);
            }
            Delivered::Retry(wait) => {
                self.deferred
                    .insert(reply.stream_id, tokio::time::Instant::now() + wait);
            }
        }
        Ok(())
    }

    /// Sends one reply at most once: acknowledges it when sent or withheld,
    /// dead-letters it when it cannot go, and leaves it pending after a failed send.
    async fn deliver(&mut self, reply: &Reply) -> Result<Delivered> {
        let claim: Option<String> = self.con.get(sent_reply_key(&reply.reply_id)).await?;
        if claim.is_none() && too_old_to_claim(&reply.stream_id, store::now_ms()) {
            let why = format!(
                "reply {}: still unsent after a day; not sent so late (an earlier attempt's claim may have expired)",
                reply.reply_id
            );
            return self.give_up(reply, why).await;
        }
        let sent = claim.is_some_and(|c| !c.starts_with(SENDING));
        if sent || !self.allowed(&reply.contact_id).await? {
            self.ack(reply).await?;
            return Ok(Delivered::Done);
        }
        let Some(address) = self.address(&reply.contact_id) else {
            let why = format!(
                "reply {}: no WhatsApp address is known for contact {} (no message of theirs reached this gateway)",
                reply.reply_id, reply.contact_id
            );
            return self.give_up(reply, why).await;
        };
        let failures = self.failures(&reply.reply_id).await?;
        if failures.attempts >= self.opts.send_attempts {
            // Out of attempts, its dead letter failed before: that goes again, no send.
            let error = failures.error.unwrap_or_default();
            return self.abandon(reply, failures.attempts, &error).await;
        }
        self.spend_budget().await;
        // A retry shows "typing..." only briefly: the contact saw the whole delay once.
        let delay = if failures.attempts == 0 {
            reply.delay
        } else {
            Duration::ZERO
        };
        if !self.type_for(&address, &reply.contact_id, delay).await? {
            self.link.paused(&address).await.ok();
            tracing::info!(
                "whatsapp gateway: reply {} withheld (paused while typing)",
                reply.reply_id
            );
            self.ack(reply).await?;
            return Ok(Delivered::Done);
        }
        if !self.serving() {
            // The lease or the connection went while this reply waited: its next
            // holder sends it.
            self.link.paused(&address).await.ok();
            return Ok(Delivered::Retry(self.opts.send_retry));
        }
        let reused = failures.wa_id.is_some();
        let wa_id = failures.wa_id.unwrap_or_else(|| self.link.message_id());
        let message_id = super::message_id(&reply.contact_id, &wa_id);
        let sending = format!("{SENDING}{message_id}");
        // SENT: before the send, so the echo is never taken for the person typing.
        // SENTREPLY: claims the reply as `sending:{messageId}` (ours when it already
        // says so: an earlier attempt with this WhatsApp id), and SENDFAIL: keeps
        // the WhatsApp id, so a send cut short by a crash goes again after the
        // restart with the same id (see `failed_send`). Once sent, SENTREPLY: is
        // the id. The id is written with HSETNX in the claim's transaction: when
        // the claim is won it is ours (or already the claim's), and a lost claim
        // never overwrites the winner's.
        let fail_key = send_fail_key(&reply.reply_id);
        let sent_mark = schema::sent_key(&message_id);
        let (previous, ()): (Option<String>, ()) = redis::pipe()
            .atomic()
            .hset_nx(&fail_key, "waId", &wa_id)
            .ignore()
            .cmd("SET")
            .arg(sent_reply_key(&reply.reply_id))
            .arg(&sending)
            .arg("NX")
            .arg("GET")
            .arg("EX")
            .arg(SENT_REPLY_TTL_S)
            .expire(&fail_key, SENT_REPLY_TTL_S as i64)
            .ignore()
            .set_ex(&sent_mark, 1, schema::SENT_TTL_S as u64)
            .query_async(&mut self.con)
            .await?;
        if let Some(previous) = previous.filter(|p| *p != sending) {
            return self.lost_claim(reply, &previous, &message_id, reused).await;
        }
        if let Err(e) = self.link.send_text(&address, &wa_id, &reply.content).await {
            self.link.paused(&address).await.ok();
            return self.failed_send(reply, &wa_id, &e).await;
        }
        // From here to the echo nothing may stop this task: a stop waits for the
        // guard (bounded), so a clean stop never leaves a sent reply recorded as
        // `sending:`, to go again after the restart. (A stop during the send
        // itself does not wait: that send goes again with the same id.)
        let guard = Arc::clone(&self.recording);
        let recording = guard.lock().await;
        let echo = QueueMessage {
            message_id,
            contact_id: reply.contact_id.clone(),
            content: reply.content.clone(),
            timestamp: store::now_ms(),
            direction: Direction::Outgoing,
            from_me: true,
        };
        self.record_sent(&reply.reply_id, &echo.message_id).await;
        self.commit_echo(&echo).await;
        drop(recording);
        self.link.paused(&address).await.ok();
        self.ack(reply).await?;
        Ok(Delivered::Done)
    }

    /// Waits until the send budget has a token, and takes it.
    async fn spend_budget(&self) {
        let mut told = false;
        loop {
            let wait = match self.budget.lock().await.try_take() {
                Ok(()) => return,
                Err(wait) => wait,
            };
            if !told {
                tracing::info!("whatsapp gateway: send budget spent; waiting {wait:?}");
                told = true;
            }
            tokio::time::sleep(wait).await;
        }
    }

    /// Records a sent reply (`SENTREPLY:` = its message id, failures gone),
    /// trying again in place until Redis takes it: returning an error here would
    /// send the reply a second time on the next pass.
    async fn record_sent(&mut self, reply_id: &str, message_id: &str) {
        let mut wait = Duration::from_millis(250);
        loop {
            let recorded: redis::RedisResult<()> = redis::pipe()
                .atomic()
                .set_ex(sent_reply_key(reply_id), message_id, SENT_REPLY_TTL_S)
                .ignore()
                .del(send_fail_key(reply_id))
                .ignore()
                .exec_async(&mut self.con)
                .await;
            match recorded {
                Ok(()) => return,
                Err(e) => {
                    tracing::warn!(
                        "whatsapp gateway: reply {reply_id} was sent but cannot be recorded yet: {e}; trying again in {wait:?}"
                    );
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(RECORD_RETRY_MAX);
                }
            }
        }
    }

    /// Adds the sent reply's echo to `QUEUE:messages`, a few tries; an echo that
    /// still cannot be added is said in the log (the conversation's history will
    /// lack the twin's message), never a reason to send again.
    async fn commit_echo(&mut self, echo: &QueueMessage) {
        for attempt in 1..=ECHO_ATTEMPTS {
            match self.inbox.commit_echo(echo).await {
                Ok(()) => return,
                Err(e) if attempt == ECHO_ATTEMPTS => {
                    tracing::error!(
                        "whatsapp gateway: the echo of sent message {} is lost (the history lacks it): {e:#}",
                        echo.message_id
                    );
                }
                Err(e) => {
                    tracing::warn!(
                        "whatsapp gateway: echo of {}: {e:#}; trying again",
                        echo.message_id
                    );
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }

    /// The address of a contact; a contact another gateway of this account met
    /// first is looked up again in the shared directory file.
    fn address(&self, contact_id: &str) -> Option<String> {
        let directory = self.inbox.directory();
        directory.address(contact_id).or_else(|| {
            if let Err(e) = directory.reload() {
                tracing::warn!("whatsapp gateway: {e:#}");
            }
            directory.address(contact_id)
        })
    }

    /// The claim was someone else's: never a second message. A sent reply is
    /// acknowledged; one being sent under another WhatsApp id stays pending (if
    /// its sender dies, the next try reads that id from `SENDFAIL:` and sends
    /// with it), unless our id came from `SENDFAIL:` already (`reused`): then
    /// the claim and the failures disagree (an older gateway overwrote the id)
    /// and no id is known to be safe, so it is dead-lettered. The marks the
    /// lost claim wrote for our id go, unless the winner sends under that id too
    /// (it read it from `SENDFAIL:`): its echo needs the `SENT:` mark.
    async fn lost_claim(
        &mut self,
        reply: &Reply,
        previous: &str,
        message_id: &str,
        reused: bool,
    ) -> Result<Delivered> {
        let being_sent = previous.starts_with(SENDING);
        let mut cleanup = redis::pipe();
        if previous.trim_start_matches(SENDING) != message_id {
            cleanup.del(schema::sent_key(message_id)).ignore();
        }
        if !being_sent {
            // Sent: its failures were deleted then; HSETNX made them anew.
            cleanup.del(send_fail_key(&reply.reply_id)).ignore();
        }
        let _: redis::RedisResult<()> = cleanup.exec_async(&mut self.con).await;
        if being_sent && reused {
            let why = format!(
                "reply {}: claimed under another WhatsApp id than its failures name; WhatsApp may have taken it",
                reply.reply_id
            );
            return self.give_up(reply, why).await;
        }
        if being_sent {
            return Ok(Delivered::Retry(self.opts.send_retry));
        }
        self.ack(reply).await?;
        Ok(Delivered::Done)
    }

    /// A send that returned an error. The error is ambiguous: WhatsApp may have
    /// taken the message before it (a lost acknowledgement, a timeout). We choose
    /// to try again, and soundly: the claim stays `sending:` (only a success turns
    /// it into the id, and then nothing sends the reply again); and every retry
    /// reuses the failed attempt's WhatsApp id, under which WhatsApp and the phone
    /// key the message (chat, sender, id), so a copy that did arrive is the same
    /// message, not a second one, and its `SENT:` mark still names it. After
    /// `send_attempts` counted failures the reply is dead-lettered and its claim
    /// dropped (it may have reached the contact once; the reason says so). A
    /// failure while the connection is down is not counted: the reply waits for
    /// the reconnect.
    async fn failed_send(
        &mut self,
        reply: &Reply,
        wa_id: &str,
        error: &LinkError,
    ) -> Result<Delivered> {
        let error = without_numbers(&error.to_string());
        let counted = i64::from(*self.connected.borrow());
        let key = send_fail_key(&reply.reply_id);
        let (attempts,): (u32,) = redis::pipe()
            .atomic()
            .hincr(&key, "attempts", counted)
            .hset(&key, "waId", wa_id)
            .ignore()
            .hset(&key, "error", &error)
            .ignore()
            .expire(&key, SENT_REPLY_TTL_S as i64)
            .ignore()
            .query_async(&mut self.con)
            .await
            .context("cannot record a failed send")?;
        if attempts >= self.opts.send_attempts {
            return self.abandon(reply, attempts, &error).await;
        }
        let wait = retry_wait(self.opts.send_retry, attempts);
        tracing::warn!(
            "whatsapp gateway: reply {} not sent ({error}); failure {attempts} of {}, next try in {wait:?}",
            reply.reply_id,
            self.opts.send_attempts
        );
        Ok(Delivered::Retry(wait))
    }

    /// Dead-letters a reply out of attempts and drops its claim and failures;
    /// when the dead letter fails they stay, and so does the reply, for later.
    async fn abandon(&mut self, reply: &Reply, attempts: u32, error: &str) -> Result<Delivered> {
        let why = format!(
            "reply {}: sending failed {attempts} times (last error: {error}); WhatsApp may have taken one attempt",
            reply.reply_id
        );
        let done = self.give_up(reply, why).await?;
        let keys = [
            send_fail_key(&reply.reply_id),
            sent_reply_key(&reply.reply_id),
        ];
        if matches!(done, Delivered::Done) {
            let _: redis::RedisResult<i64> = self.con.del(&keys).await;
        } else {
            // Still waiting for its dead letter: the claim and the count must
            // outlive the wait, or once they expired the next try would take a
            // fresh claim and send the old reply again.
            let mut renew = redis::pipe();
            for key in &keys {
                renew.expire(key, SENT_REPLY_TTL_S as i64).ignore();
            }
            renew
                .exec_async(&mut self.con)
                .await
                .context("cannot keep a reply's claim while it waits")?;
        }
        Ok(done)
    }

    /// Dead-letters a reply that cannot go. When that fails (the functions
    /// library not loaded, which this gateway's ACL user may not do: the worker
    /// loads it at its start) the reply stays pending and is tried again later,
    /// without holding back the others.
    async fn give_up(&mut self, reply: &Reply, why: String) -> Result<Delivered> {
        match self.dead_letter(reply, why).await {
            Ok(()) => Ok(Delivered::Done),
            Err(e) => {
                let wait = retry_wait(self.opts.send_retry, self.opts.send_attempts);
                tracing::warn!(
                    "whatsapp gateway: reply {} kept pending, next try in {wait:?}: {e:#}",
                    reply.stream_id
                );
                Ok(Delivered::Retry(wait))
            }
        }
    }

    async fn failures(&mut self, reply_id: &str) -> Result<Failures> {
        let (attempts, wa_id, error): (Option<u32>, Option<String>, Option<String>) =
            redis::cmd("HMGET")
                .arg(send_fail_key(reply_id))
                .arg("attempts")
                .arg("waId")
                .arg("error")
                .query_async(&mut self.con)
                .await
                .context("cannot read a reply's failed sends")?;
        Ok(Failures {
            attempts: attempts.unwrap_or(0),
            wa_id: wa_id.filter(|id| !id.is_empty()),
            error,
        })
    }

    /// Moves the reply to `QUEUE:deadletter` and acknowledges it, in the worker's
    /// format and step.
    async fn dead_letter(&mut self, reply: &Reply, reason: String) -> Result<()> {
        let letter = DeadLetter {
            stream_id: reply.stream_id.clone(),
            reason,
            fields: reply.fields.clone(),
        };
        batch::dead_letter_from(
            &mut self.con,
            schema::QUEUE_RESPONSES,
            SENDER_GROUP,
            &[letter],
        )
        .await
    }

    /// Shows "typing..." for `delay`, refreshed; false when a pause came
    /// meanwhile. It ends early when the lease or the connection goes (the
    /// caller then leaves the reply pending), so the next holder's "typing..."
    /// is not shown twice, nor cleared by ours.
    async fn type_for(&mut self, address: &str, contact_id: &str, delay: Duration) -> Result<bool> {
        let until = tokio::time::Instant::now() + delay;
        loop {
            if let Err(e) = self.link.composing(address).await {
                tracing::debug!("whatsapp gateway: typing: {e}");
            }
            let left = until.saturating_duration_since(tokio::time::Instant::now());
            let step = left.min(self.opts.typing_refresh);
            // Checked every second of the delay, and once more right before sending.
            let mut waited = Duration::ZERO;
            while waited < step {
                let tick = (step - waited).min(Duration::from_secs(1));
                tokio::time::sleep(tick).await;
                waited += tick;
                if !self.serving() {
                    return Ok(true);
                }
                if !self.allowed(contact_id).await? {
                    return Ok(false);
                }
            }
            if tokio::time::Instant::now() >= until {
                return self.allowed(contact_id).await;
            }
        }
    }

    /// Not killed, not paused, opted in.
    async fn allowed(&mut self, contact_id: &str) -> Result<bool> {
        let (all, paused, enabled): (bool, bool, bool) = redis::pipe()
            .exists(schema::PAUSE_ALL)
            .exists(schema::pause_key(contact_id))
            .sismember(schema::OPTIN_CONTACTS, contact_id)
            .query_async(&mut self.con)
            .await
            .context("cannot re-check the pauses")?;
        Ok(!all && !paused && enabled)
    }

    async fn ack(&mut self, reply: &Reply) -> Result<()> {
        let _: i64 = self
            .con
            .xack(schema::QUEUE_RESPONSES, SENDER_GROUP, &[&reply.stream_id])
            .await?;
        Ok(())
    }
}

/// Whether a reply entry is too old to claim: a claim lives [`SENT_REPLY_TTL_S`]
/// from when it was taken, so an unclaimed entry nearly that old may be one
/// whose claim expired after a send (a gateway down for a day), and claiming it
/// afresh would send it a second time under a new id. An hour is left for the
/// clocks of Redis (which stamped the id) and this host to differ.
pub fn too_old_to_claim(stream_id: &str, now_ms: i64) -> bool {
    let Some(created) = stream_id
        .split_once('-')
        .and_then(|(ms, _)| ms.parse::<i64>().ok())
    else {
        return false;
    };
    now_ms.saturating_sub(created) >= (SENT_REPLY_TTL_S as i64 - CLOCK_MARGIN_S) * 1000
}

/// How far apart the clocks of Redis and the gateway's host may be.
const CLOCK_MARGIN_S: i64 = 60 * 60;

/// The wait after a reply's `failures`-th failed send: `base`, doubled after each
/// further failure, at most 5 min.
pub fn retry_wait(base: Duration, failures: u32) -> Duration {
    let factor = 1u32 << failures.saturating_sub(1).min(16);
    base.saturating_mul(factor).min(Duration::from_secs(300))
}

/// The library's error text with long digit runs (phone numbers in addresses)
/// replaced, for the log and the dead-letter stream.
pub fn without_numbers(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut digits = String::new();
    for c in text.chars().chain(std::iter::once('\0')) {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        if digits.len() >= 7 {
            out.push_str("[number]");
        } else {
            out.push_str(&digits);
        }
        digits.clear();
        if c != '\0' {
            out.push(c);
        }
    }
    out
}

impl Inbox {
    /// Adds the echo of a reply the gateway sent, as WhatsApp would show it.
    pub async fn commit_echo(&self, echo: &QueueMessage) -> Result<()> {
        self.commit(&[super::link::Inbound {
            message: echo.clone(),
            address: self
                .directory()
                .address(&echo.contact_id)
                .unwrap_or_default(),
            push_name: None,
        }])
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_wait_longer_each_time_up_to_five_minutes() {
        let base = Duration::from_secs(5);
        let waits: Vec<u64> = (1..=5).map(|n| retry_wait(base, n).as_secs()).collect();
        assert_eq!(waits, [5, 10, 20, 40, 80]);
        assert_eq!(retry_wait(base, 40), Duration::from_secs(300));
        assert_eq!(retry_wait(base, 0), base);
    }

    #[test]
    fn the_send_budget_lets_a_minute_s_worth_go_then_spaces_the_rest() {
        let mut budget = Budget::new(2);
        let start = tokio::time::Instant::now();
        assert_eq!(budget.try_take_at(start), Ok(()));
        assert_eq!(budget.try_take_at(start), Ok(()));
        let wait = budget.try_take_at(start).expect_err("spent");
        assert_eq!(wait, Duration::from_secs(30));
        assert_eq!(
            budget.try_take_at(start),
            Err(wait),
            "a refused take costs nothing"
        );
        assert_eq!(budget.try_take_at(start + wait), Ok(()));
        assert!(budget.try_take_at(start + wait).is_err());
    }

    #[test]
    fn error_texts_lose_phone_numbers_but_keep_short_figures() {
        assert_eq!(
            without_numbers("send to 15550001111@s.whatsapp.net failed: 408 after 20s"),
            "send to [number]@s.whatsapp.net failed: 408 after 20s"
        );
        assert_eq!(without_numbers("code 1234567"), "code [number]");
        assert_eq!(without_numbers(""), "");
    }
}
