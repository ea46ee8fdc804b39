//! One connection: its events (login codes, connected, lost, logged out,
//! replaced, banned) become the state shown, the session and how it ended.
//! It starts with the lease held and renews it; a lease lost to another
//! gateway ends it, so two gateways never hold one WhatsApp session. The
//! sender runs for the connection's life.

use std::sync::Arc;

use tokio::sync::{mpsc, watch};

use super::publish::Manifest;
use super::{WhatsAppGateway, retrying};
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
    /// Another gateway holds the lease now (or it could not be renewed in
    /// time); the last state shown.
    LeaseLost(GatewayStatus),
}

impl<C: Connector> WhatsAppGateway<C> {
    /// Serves one connection, made with the lease just taken: its events, the
    /// session refresh, the lease's renewal and the sender. `shown` is the
    /// state on screen as it starts (a retry keeps its `since`); the backoff
    /// starts over once connected.
    pub(super) async fn connection(
        &mut self,
        link: &Arc<C::Link>,
        mut events: mpsc::Receiver<LinkEvent>,
        stop: &mut watch::Receiver<bool>,
        backoff: &mut Backoff,
        shown: GatewayStatus,
    ) -> Outcome {
        let (connected_tx, connected_rx) = watch::channel(false);
        let (leased_tx, leased_rx) = watch::channel(true);
        let sender = sender::spawn(
            self.sender_con.clone(),
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
        let mut lease_check = tokio::time::interval(self.lease.check_every());
        // When the lease was last renewed (taken right before this connection).
        let mut renewed = tokio::time::Instant::now();
        let outcome = loop {
            tokio::select! {
                _ = stop.changed() => break Outcome::Stop,
                _ = lease_check.tick() => {
                    if renewed.elapsed() >= self.lease.renew_every()
                        && !self.renew_lease(&mut renewed).await
                    {
                        break Outcome::LeaseLost(last);
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
                            // Written (and kept fresh) by the wait for its end.
                            break Outcome::Banned(s);
                        }
                    }
                    self.set_status(last.clone()).await;
                }
            }
        };
        // The sender is gone before the lease is, so nothing is sent after it;
        // told first, it starts nothing new, clears its "typing..." and lets a
        // sent reply be recorded.
        let _ = leased_tx.send(false);
        sender.stop().await;
        if !matches!(outcome, Outcome::LeaseLost(_)) {
            self.release_lease().await;
        }
        outcome
    }

    /// Renews the lease; false when it is lost: another gateway holds it, or
    /// it could not be checked since longer than it is surely still ours (a
    /// failed check keeps a lease renewed recently enough, and drops it before
    /// it could have expired on the server).
    async fn renew_lease(&mut self, renewed: &mut tokio::time::Instant) -> bool {
        match self.lease.hold(&mut self.con).await {
            Ok(true) => {
                *renewed = tokio::time::Instant::now();
                true
            }
            Ok(false) => false,
            Err(e) => {
                let held = renewed.elapsed() < self.lease.surely_held();
                tracing::warn!(
                    "whatsapp gateway: cannot renew {}: {e}{}",
                    schema::gateway_lock_key(&self.opts.user_id),
                    if held {
                        "; trying again"
                    } else {
                        "; disconnecting"
                    }
                );
                held
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
