//! The gateway's effects, over any [`Connector`]: login codes to `events:qr` and
//! `QR:{userId}`, the session manifest in `SESSION:{userId}`, the state in
//! `GATEWAY:{userId}`, and the reply sender reading `QUEUE:responses`.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use base64::Engine;
use redis::AsyncCommands;
use redis::aio::ConnectionManager;
use serde::Serialize;
use tokio::sync::{mpsc, watch};

use super::inbox::Inbox;
use super::link::{Connector, Link, LinkEvent};
use super::status::{self, GatewayStatus, State};
use crate::schema::{self, Direction, QrEvent, QueueMessage, response_fields as rf};
use crate::seal::SessionKey;
use crate::store::{self, session};

/// The consumer group the gateway reads `QUEUE:responses` in.
pub const SENDER_GROUP: &str = "secondme-gateway";

/// `SENTREPLY:{replyId}`: the message id a reply was sent as (a reply is sent once).
pub fn sent_reply_key(reply_id: &str) -> String {
    format!("SENTREPLY:{reply_id}")
}

/// Default send budget: replies a minute, far below what looks like spam to WhatsApp.
pub const DEFAULT_SEND_PER_MINUTE: u32 = 12;

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
    /// When this device was linked or last connected, ms.
    pub paired_at: i64,
}

/// How one connection ended.
enum Outcome {
    Stop,
    LoggedIn,
    LoggedOut,
    Replaced,
    CodesExhausted,
    Banned(i64),
    Lost,
}

/// The gateway: one connector, one Redis.
pub struct WhatsAppGateway<C: Connector> {
    connector: C,
    con: ConnectionManager,
    inbox: Inbox,
    opts: GatewayOptions,
    tap: Option<mpsc::UnboundedSender<LinkEvent>>,
}

impl<C: Connector> WhatsAppGateway<C> {
    /// A gateway writing through `con`, committing messages through `inbox`.
    pub fn new(connector: C, con: ConnectionManager, inbox: Inbox, opts: GatewayOptions) -> Self {
        Self {
            connector,
            con,
            inbox,
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
        loop {
            if *stop.borrow() {
                return Ok(self.stopped().await);
            }
            self.set_status(GatewayStatus::new(State::Connecting, store::now_ms()))
                .await;
            let (tx, rx) = mpsc::channel(64);
            let link = match self.connector.connect(self.inbox.clone(), tx).await {
                Ok(link) => Arc::new(link),
                Err(e) => {
                    let wait = backoff.next();
                    let mut s = GatewayStatus::new(State::Reconnecting, store::now_ms())
                        .detail(format!("{e:#}"));
                    s.next_try = Some(store::now_ms() + millis(wait));
                    self.set_status(s).await;
                    if sleep_or_stop(wait, &mut stop).await {
                        return Ok(self.stopped().await);
                    }
                    continue;
                }
            };
            let outcome = self.connection(&link, rx, &mut stop).await;
            link.shutdown().await;
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
                Outcome::Banned(until) => {
                    let wait =
                        Duration::from_millis(u64::try_from(until - store::now_ms()).unwrap_or(0));
                    if sleep_or_stop(wait, &mut stop).await {
                        return Ok(self.stopped().await);
                    }
                }
                Outcome::Lost => {
                    if sleep_or_stop(backoff.next(), &mut stop).await {
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
    async fn connection(
        &mut self,
        link: &Arc<C::Link>,
        mut events: mpsc::Receiver<LinkEvent>,
        stop: &mut watch::Receiver<bool>,
    ) -> Outcome {
        let (connected_tx, connected_rx) = watch::channel(false);
        let sender = tokio::spawn(sender_loop(
            self.con.clone(),
            Arc::clone(link),
            self.inbox.clone(),
            self.opts.clone(),
            connected_rx,
        ));
        let mut manifest: Option<Manifest> = None;
        let mut last = GatewayStatus::new(State::Connecting, store::now_ms());
        let mut refresh = tokio::time::interval(status::REFRESH);
        let outcome = loop {
            tokio::select! {
                _ = stop.changed() => break Outcome::Stop,
                _ = refresh.tick() => {
                    self.set_status(last.clone()).await;
                    if let Some(m) = &manifest
                        && let Err(e) = self.write_session(m).await
                    {
                        tracing::warn!("whatsapp gateway: {e:#}");
                    }
                }
                event = events.recv() => {
                    let Some(event) = event else { break Outcome::Lost };
                    if let Some(tap) = &self.tap {
                        let _ = tap.send(event.clone());
                    }
                    let now = store::now_ms();
                    match event {
                        LinkEvent::Qr { code, expires_in } => {
                            self.publish_qr(&code, expires_in).await;
                            let mut s = GatewayStatus::new(State::WaitingForScan, now);
                            s.until = Some(now + i64::from(expires_in) * 1000);
                            last = s;
                        }
                        LinkEvent::PairCode { code, expires_in } => {
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
                            let m = Manifest {
                                account,
                                device,
                                store_path: self.connector.store_path().display().to_string(),
                                paired_at: now,
                            };
                            if let Err(e) = self.write_session(&m).await {
                                tracing::warn!("whatsapp gateway: {e:#}");
                            }
                            manifest = Some(m);
                            if let Err(e) = link.set_unavailable().await {
                                tracing::warn!("whatsapp gateway: cannot appear offline: {e}");
                            }
                            let mut s = GatewayStatus::new(State::Connected, now);
                            s.name = Some(name);
                            last = s;
                            let _ = connected_tx.send(true);
                            if self.opts.until_connected {
                                self.set_status(last.clone()).await;
                                break Outcome::LoggedIn;
                            }
                        }
                        LinkEvent::Reconnecting { reason, next_try_ms } => {
                            let _ = connected_tx.send(false);
                            last = retrying(State::Reconnecting, &last, now, reason, next_try_ms);
                        }
                        LinkEvent::NoNetwork { reason, next_try_ms } => {
                            let _ = connected_tx.send(false);
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
                            self.set_status(s).await;
                            break Outcome::Banned(until_ms);
                        }
                    }
                    self.set_status(last.clone()).await;
                }
            }
        };
        sender.abort();
        outcome
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
        self.set_status(
            GatewayStatus::new(State::CodesExhausted, store::now_ms()).detail(format!(
                "no code was scanned; ask for new ones: SET {} {} EX 300",
                status::request_key(&self.opts.user_id),
                status::REQUEST_NEW_CODES
            )),
        )
        .await;
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
            if refresh.elapsed() > status::REFRESH {
                refresh = tokio::time::Instant::now();
                self.set_status(GatewayStatus::new(State::CodesExhausted, store::now_ms()))
                    .await;
            }
            if sleep_or_stop(Duration::from_millis(500), stop).await {
                return true;
            }
        }
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
            .exec_async(&mut self.con)
            .await;
        if let Err(e) = result {
            tracing::warn!("whatsapp gateway: cannot publish the login code: {e}");
        }
    }

    async fn clear_qr(&mut self) {
        let _: redis::RedisResult<i64> = self.con.del(schema::qr_key(&self.opts.user_id)).await;
    }

    async fn write_session(&mut self, m: &Manifest) -> Result<()> {
        let plain = serde_json::to_vec(m)?;
        session::write(
            &mut self.con,
            &self.opts.user_id,
            &self.opts.key,
            &plain,
            m.paired_at,
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

/// A retrying state, keeping the time the trouble started.
fn retrying(
    state: State,
    last: &GatewayStatus,
    now: i64,
    reason: String,
    next_try_ms: i64,
) -> GatewayStatus {
    let since = if matches!(last.state, State::Reconnecting | State::NoNetwork) {
        last.since
    } else {
        now
    };
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
}

/// The send budget: a token bucket of `per_minute` tokens refilled continuously.
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

    /// How long to wait before the next send may go (zero when it may go now); takes the token.
    pub fn take(&mut self) -> Duration {
        let now = tokio::time::Instant::now();
        let refill = now.duration_since(self.at).as_secs_f64() * self.per_minute / 60.0;
        self.tokens = (self.tokens + refill).min(self.per_minute);
        self.at = now;
        self.tokens -= 1.0;
        if self.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-self.tokens * 60.0 / self.per_minute)
        }
    }
}

/// Reads `QUEUE:responses` in [`SENDER_GROUP`] while connected and sends each reply.
async fn sender_loop<L: Link>(
    con: ConnectionManager,
    link: Arc<L>,
    inbox: Inbox,
    opts: GatewayOptions,
    mut connected: watch::Receiver<bool>,
) {
    let mut budget = Budget::new(opts.send_per_minute);
    let mut sender = Sender {
        con,
        link,
        inbox,
        opts,
    };
    loop {
        if connected.wait_for(|c| *c).await.is_err() {
            return;
        }
        if let Err(e) = sender.serve(&mut budget, &mut connected).await {
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
}

/// One reply from `QUEUE:responses`.
struct Reply {
    stream_id: String,
    reply_id: String,
    contact_id: String,
    content: String,
    delay: Duration,
}

impl<L: Link> Sender<L> {
    /// Own pending entries first (a restart loses none), then new ones.
    async fn serve(
        &mut self,
        budget: &mut Budget,
        connected: &mut watch::Receiver<bool>,
    ) -> Result<()> {
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
        let mut cursor = "0".to_owned();
        while *connected.borrow() {
            // Short blocks: the shared connection's response timeout is 500 ms.
            let opts = redis::streams::StreamReadOptions::default()
                .group(SENDER_GROUP, &self.opts.consumer)
                .count(10)
                .block(if cursor == "0" { 0 } else { 200 });
            let reply: Option<redis::streams::StreamReadReply> = self
                .con
                .xread_options(&[schema::QUEUE_RESPONSES], &[cursor.as_str()], &opts)
                .await
                .context("cannot read QUEUE:responses")?;
            let entries: Vec<_> = reply
                .map(|r| r.keys)
                .unwrap_or_default()
                .into_iter()
                .flat_map(|k| k.ids)
                .collect();
            if entries.is_empty() {
                if cursor == "0" {
                    cursor = ">".to_owned();
                } else {
                    tokio::time::sleep(Duration::from_millis(300)).await;
                }
                continue;
            }
            for entry in entries {
                let get = |f: &str| entry.get::<String>(f).unwrap_or_default();
                let reply = Reply {
                    stream_id: entry.id.clone(),
                    reply_id: get(rf::REPLY_ID),
                    contact_id: get(rf::CONTACT_ID),
                    content: get(rf::CONTENT),
                    delay: Duration::from_millis(get(rf::DELAY_MS).parse().unwrap_or(0)),
                };
                self.deliver(&reply, budget).await?;
            }
        }
        Ok(())
    }

    /// Sends one reply at most once; acknowledges it unless sending failed.
    async fn deliver(&mut self, reply: &Reply, budget: &mut Budget) -> Result<()> {
        let done: Option<String> = self.con.get(sent_reply_key(&reply.reply_id)).await?;
        let Some(address) = self.inbox.directory().address(&reply.contact_id) else {
            tracing::warn!(
                "whatsapp gateway: no address for contact {}; reply {} dropped",
                reply.contact_id,
                reply.reply_id
            );
            return self.ack(reply).await;
        };
        if done.is_some() || !self.allowed(&reply.contact_id).await? {
            return self.ack(reply).await;
        }
        let wait = budget.take();
        if !wait.is_zero() {
            tracing::info!("whatsapp gateway: send budget spent; waiting {wait:?}");
            tokio::time::sleep(wait).await;
        }
        if !self.type_for(&address, reply).await? {
            self.link.paused(&address).await.ok();
            tracing::info!(
                "whatsapp gateway: reply {} withheld (paused while typing)",
                reply.reply_id
            );
            return self.ack(reply).await;
        }
        let wa_id = self.link.message_id();
        let message_id = super::message_id(&reply.contact_id, &wa_id);
        // SENT: before the send, so the echo is never taken for the person typing;
        // SENTREPLY: claims the reply, so a redelivery after a crash never sends it twice.
        let claimed: (Option<String>, ()) = redis::pipe()
            .atomic()
            .cmd("SET")
            .arg(sent_reply_key(&reply.reply_id))
            .arg(&message_id)
            .arg("NX")
            .arg("EX")
            .arg(SENT_REPLY_TTL_S)
            .set_ex(schema::sent_key(&message_id), 1, schema::SENT_TTL_S as u64)
            .query_async(&mut self.con)
            .await?;
        if claimed.0.is_none() {
            return self.ack(reply).await;
        }
        if let Err(e) = self.link.send_text(&address, &wa_id, &reply.content).await {
            let _: redis::RedisResult<i64> = self.con.del(sent_reply_key(&reply.reply_id)).await;
            return Err(e).context("cannot send the reply");
        }
        self.link.paused(&address).await.ok();
        let echo = QueueMessage {
            message_id,
            contact_id: reply.contact_id.clone(),
            content: reply.content.clone(),
            timestamp: store::now_ms(),
            direction: Direction::Outgoing,
            from_me: true,
        };
        self.inbox.commit_echo(&echo).await?;
        self.ack(reply).await
    }

    /// Shows "typing..." for the reply's delay, refreshed; false when a pause came meanwhile.
    async fn type_for(&mut self, address: &str, reply: &Reply) -> Result<bool> {
        let until = tokio::time::Instant::now() + reply.delay;
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
                if !self.allowed(&reply.contact_id).await? {
                    return Ok(false);
                }
            }
            if tokio::time::Instant::now() >= until {
                return self.allowed(&reply.contact_id).await;
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
