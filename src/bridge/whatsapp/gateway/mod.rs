//! The gateway over any [`Connector`]: connections one after another until it
//! is stopped, replaced or (for `secondme login`) logged in, and the waits
//! between them (the reconnect backoff, a ban, the operator's request for new
//! login codes). Each connection is made only while holding the account's
//! lease ([`crate::bridge::whatsapp::lease`]); without it the gateway stands by.
//!
//! - `connection`: one connection's events, the lease's renewal and the sender's life;
//! - `publish`: what other programs read: the state, the login code, the session.

mod connection;
mod publish;

use std::sync::Arc;
use std::time::Duration;

use crate::connection::Con;
use crate::store::durability::{self, Confirmer, WAIT_TIMEOUT};
use anyhow::Result;
use tokio::sync::{mpsc, watch};

use crate::bridge::whatsapp::inbox::Inbox;
use crate::bridge::whatsapp::lease::{self, Lease};
use crate::bridge::whatsapp::link::{Connector, Link, LinkEvent};
use crate::bridge::whatsapp::pacing::{self, Backoff, Budget};
use crate::bridge::whatsapp::status::{self, GatewayStatus, State};
use crate::schema;
use crate::seal::SessionKey;
use crate::store::{self, session};
use connection::Outcome;

/// Default attempts at sending one reply before it goes to `QUEUE:deadletter`.
pub const DEFAULT_SEND_ATTEMPTS: u32 = 5;

/// Default wait after a reply's first failed send (doubled after each further one).
pub const DEFAULT_SEND_RETRY: Duration = Duration::from_secs(5);

/// Default send budget: replies a minute, far below what looks like spam to WhatsApp.
pub const DEFAULT_SEND_PER_MINUTE: u32 = 12;

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
    /// This gateway's consumer name in [`schema::GATEWAY_GROUP`].
    pub consumer: String,
    /// Replicas that hold an inbound message before WhatsApp is told we have
    /// it, and a reply's claim before the reply is sent (`WAIT`); 0 waits for none.
    pub replicas_to_wait: u32,
    /// How long `GATEWAYLOCK:{userId}` outlives its last renewal ([`lease::TTL`]):
    /// a crashed gateway's account waits this long for a standby one.
    pub lease_ttl: Duration,
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

/// The gateway: one connector, one Redis.
pub struct WhatsAppGateway<C: Connector> {
    connector: C,
    con: Con,
    /// Where the sender claims and sends replies: with `replicas_to_wait`, a
    /// connection of its own, so its `WAIT`s never hold up the lease's renewal.
    sender_con: Con,
    inbox: Inbox,
    opts: GatewayOptions,
    tap: Option<mpsc::UnboundedSender<LinkEvent>>,
    /// Only its holder connects and sends replies.
    lease: Lease,
    /// The send budget of the whole run: a reconnect does not refill it.
    budget: Arc<tokio::sync::Mutex<Budget>>,
}

impl<C: Connector> WhatsAppGateway<C> {
    /// A gateway writing through `con`, committing messages through `inbox`.
    pub fn new(connector: C, con: Con, inbox: Inbox, opts: GatewayOptions) -> Self {
        Self {
            connector,
            sender_con: durability::own_connection(&con, opts.replicas_to_wait),
            con,
            inbox: inbox.waiting_for(opts.replicas_to_wait),
            lease: Lease::with_ttl(&opts.user_id, opts.lease_ttl),
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
        // This gateway's state still shown after it lost the lease: standing
        // by, it replaces it (it would hide no other gateway's).
        let mut left_shown = None;
        loop {
            if *stop.borrow() {
                return Ok(self.stopped().await);
            }
            if !self.stand_by(&mut stop, left_shown.take()).await? {
                return Ok(Exit::Stopped);
            }
            if !is_retrying(&shown) {
                shown = GatewayStatus::new(State::Connecting, store::now_ms());
                self.set_status(shown.clone()).await;
            }
            let (tx, rx) = mpsc::channel(64);
            let link = match self.connector.connect(self.inbox.clone(), tx).await {
                Ok(link) => Arc::new(link),
                Err(e) => {
                    self.release_lease().await;
                    let wait = backoff.next();
                    let now = store::now_ms();
                    shown = retrying(
                        State::Reconnecting,
                        &shown,
                        now,
                        format!("{e:#}"),
                        now + pacing::millis(wait),
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
                Outcome::LeaseLost(last) => {
                    tracing::warn!(
                        "whatsapp gateway: another gateway of this account took {}; disconnected, standing by",
                        schema::gateway_lock_key(&self.opts.user_id)
                    );
                    left_shown = Some(last);
                }
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
                        now + pacing::millis(wait),
                    );
                    if self.wait_out(shown.clone(), wait, &mut stop).await {
                        return Ok(self.stopped().await);
                    }
                }
            }
        }
    }

    /// Takes the lease before a connection. While another gateway holds it,
    /// stands by ([`State::Standby`], shown where no other gateway's state
    /// shows; `mine` is this gateway's own, which it may replace) and tries
    /// again every [`lease::RETRY`]; false when stopped first. `secondme
    /// login` does not wait: it says who holds it.
    async fn stand_by(
        &mut self,
        stop: &mut watch::Receiver<bool>,
        mine: Option<GatewayStatus>,
    ) -> Result<bool> {
        let key = schema::gateway_lock_key(&self.opts.user_id);
        let standby = GatewayStatus::new(State::Standby, store::now_ms()).detail(format!(
            "{key} is held by another gateway of this account; this one connects when it is free"
        ));
        // Whether and when the standby state was last written.
        let mut shown: Option<(bool, tokio::time::Instant)> = None;
        let mut unreachable = false;
        loop {
            match self.hold_lease().await {
                Ok(true) => {
                    if shown.is_some() {
                        tracing::info!("whatsapp gateway: took {key}; connecting");
                    }
                    return Ok(true);
                }
                Ok(false) if self.opts.until_connected => anyhow::bail!(
                    "another gateway of this account is running ({key} is taken): log in from its control room, or stop it first"
                ),
                Ok(false) => {
                    unreachable = false;
                    if shown.is_none() {
                        tracing::warn!(
                            "whatsapp gateway: another gateway of this account holds {key}; this one stands by and connects once it is free"
                        );
                    }
                    // Every try while the key shows nothing: a connected gateway
                    // that died leaves its state to expire, and then this one shows.
                    let written = shown.is_some_and(|(w, _)| w);
                    let due =
                        !written || shown.is_some_and(|(_, at)| at.elapsed() >= self.opts.refresh);
                    if due {
                        let replacing = if written {
                            Some(&standby)
                        } else {
                            mine.as_ref()
                        };
                        let now_written = self.show_if_free(&standby, replacing).await;
                        shown = Some((now_written, tokio::time::Instant::now()));
                    }
                }
                Err(e) => {
                    if !unreachable {
                        tracing::warn!("whatsapp gateway: cannot take {key}: {e}; trying again");
                    }
                    unreachable = true;
                }
            }
            if sleep_or_stop(lease::RETRY, stop).await {
                if shown.is_some_and(|(w, _)| w) {
                    let stopped = GatewayStatus::new(State::Stopped, store::now_ms());
                    self.show_if_free(&stopped, Some(&standby)).await;
                }
                if unreachable {
                    // Perhaps taken but not confirmed on the replicas: a standby
                    // gateway should not wait for it to expire (only ours is deleted).
                    self.release_lease().await;
                }
                return Ok(false);
            }
        }
    }

    /// Shows `s` unless another gateway's state is shown (see
    /// [`status::publish_if_free`]); whether it was written.
    async fn show_if_free(&mut self, s: &GatewayStatus, replacing: Option<&GatewayStatus>) -> bool {
        match status::publish_if_free(&mut self.con, &self.opts.user_id, s, replacing).await {
            Ok(written) => written,
            Err(e) => {
                tracing::warn!("whatsapp gateway: cannot write its state: {e}");
                false
            }
        }
    }

    /// Takes (or renews) the lease; with `replicas_to_wait`, it is held only
    /// once the replicas have it too, so a failover cannot hand it to a
    /// second gateway while this one connects.
    async fn hold_lease(&mut self) -> redis::RedisResult<bool> {
        let key = schema::gateway_lock_key(&self.opts.user_id);
        let wanted = self.opts.replicas_to_wait;
        let confirmer = Confirmer::default();
        let mark = confirmer.begin(&mut self.con, &key, wanted).await;
        if !self.lease.hold(&mut self.con).await? {
            return Ok(false);
        }
        let confirmed = confirmer
            .confirm(&mark, &mut self.con, &key, wanted, WAIT_TIMEOUT)
            .await;
        match confirmed {
            Ok(_) => Ok(true),
            Err(e) => Err(redis::RedisError::from((
                redis::ErrorKind::Io,
                "the lease is taken on the primary but not on the replicas",
                e.to_string(),
            ))),
        }
    }

    /// Gives the lease up between connections, so a standby gateway may take over.
    async fn release_lease(&mut self) {
        if let Err(e) = self.lease.release(&mut self.con).await {
            tracing::warn!("whatsapp gateway: cannot release the lease: {e}");
        }
    }

    async fn stopped(&self) -> Exit {
        self.set_status(GatewayStatus::new(State::Stopped, store::now_ms()))
            .await;
        Exit::Stopped
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
        let key = schema::gateway_request_key(&self.opts.user_id);
        // One state for the whole wait, refreshed unchanged: a new `since` at each
        // refresh would read as news to everyone watching the key.
        let waiting = GatewayStatus::new(State::CodesExhausted, store::now_ms()).detail(format!(
            "no code was scanned; ask for new ones: SET {key} {} EX 300",
            status::REQUEST_NEW_CODES
        ));
        self.set_status(waiting.clone()).await;
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

/// Sleeps `d` unless stopped first; true when stopped.
async fn sleep_or_stop(d: Duration, stop: &mut watch::Receiver<bool>) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(d) => *stop.borrow(),
        _ = stop.changed() => true,
    }
}
