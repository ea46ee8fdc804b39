//! One connection: its events (login codes, connected, lost, logged out,
//! replaced, banned) become the state shown, the session and how it ended;
//! while connected the reply lease is held, and the sender runs for the
//! connection's life.

use std::sync::Arc;

use tokio::sync::{mpsc, watch};

use super::publish::Manifest;
use super::{WhatsAppGateway, retrying};
use crate::bridge::whatsapp::lease;
use crate::bridge::whatsapp::link::{Connector, Link, LinkEvent};
use crate::bridge::whatsapp::pacing::Backoff;
use crate::bridge::whatsapp::sender;
use crate::bridge::whatsapp::status::{GatewayStatus, State};
use crate::schema;
use crate::store;

/// How one connection ended.
pub(super) enum Outcome {
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

impl<C: Connector> WhatsAppGateway<C> {
    /// Serves one connection: its events, the session refresh and the sender.
    /// `shown` is the state on screen as it starts (a retry keeps its `since`);
    /// the backoff starts over once connected.
    pub(super) async fn connection(
        &mut self,
        link: &Arc<C::Link>,
        mut events: mpsc::Receiver<LinkEvent>,
        stop: &mut watch::Receiver<bool>,
        backoff: &mut Backoff,
        shown: GatewayStatus,
    ) -> Outcome {
        let (connected_tx, connected_rx) = watch::channel(false);
        let (leased_tx, leased_rx) = watch::channel(false);
        let sender = sender::spawn(
            self.con.clone(),
            Arc::clone(link),
            self.inbox.clone(),
            self.opts.clone(),
            (connected_rx, leased_rx),
            Arc::clone(&self.budget),
        );
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
                    schema::gateway_lock_key(&self.opts.user_id)
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
