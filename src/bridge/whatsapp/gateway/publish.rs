//! What the gateway writes for other programs: its state (`GATEWAY:{userId}`
//! and `events:gateway`), the login code on screen (`QR:{userId}` and
//! `events:qr`), and the session manifest (`SESSION:{userId}`).

use anyhow::Result;
use base64::Engine;
use redis::AsyncCommands;
use serde::Serialize;

use super::WhatsAppGateway;
use crate::bridge::whatsapp::link::Connector;
use crate::bridge::whatsapp::status::{self, GatewayStatus};
use crate::schema::{self, QrEvent};
use crate::store::{self, session};

/// The session manifest sealed in `SESSION:{userId}.token`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Manifest {
    /// The account (a contact id, not the number).
    pub(super) account: String,
    /// This device's number on the account.
    pub(super) device: u16,
    /// The device store.
    pub(super) store_path: String,
    /// When this device was linked to the account, ms.
    pub(super) paired_at: i64,
}

impl<C: Connector> WhatsAppGateway<C> {
    /// Deletes `GATEWAYREQ:{userId}`: a request is meant only while the codes
    /// ran out, so one still there when codes show (a second press of the key)
    /// would start a round nobody asked for the next time they run out.
    pub(super) async fn drop_request(&mut self) {
        let key = schema::gateway_request_key(&self.opts.user_id);
        let _: redis::RedisResult<i64> = self.con.del(key).await;
    }

    /// Shows a login code: `QR:{userId}` for as long as it is valid, and `events:qr`.
    pub(super) async fn publish_qr(&mut self, code: &str, expires_in: u32) {
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
            .publish(schema::channel_qr(), &payload)
            .ignore()
            .del(schema::gateway_request_key(&self.opts.user_id))
            .ignore()
            .exec_async(&mut self.con)
            .await;
        if let Err(e) = result {
            tracing::warn!("whatsapp gateway: cannot publish the login code: {e}");
        }
    }

    /// Deletes the code on screen, and any request for new codes made while
    /// codes were still showing (see [`Self::drop_request`]).
    pub(super) async fn clear_qr(&mut self) {
        let keys = [
            schema::qr_key(&self.opts.user_id),
            schema::gateway_request_key(&self.opts.user_id),
        ];
        let _: redis::RedisResult<i64> = self.con.del(&keys).await;
    }

    /// Writes the manifest of a connection made at `connected_at`, with a fresh TTL.
    pub(super) async fn write_session(&mut self, m: &Manifest, connected_at: i64) -> Result<()> {
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

    /// Shows `s` to other programs; a failure is logged (the next refresh tries again).
    pub(super) async fn set_status(&self, s: GatewayStatus) {
        let mut con = self.con.clone();
        match status::publish(&mut con, &self.opts.user_id, &s).await {
            Ok(()) => tracing::debug!("whatsapp gateway: {}", s.line(store::now_ms())),
            Err(e) => tracing::warn!("whatsapp gateway: cannot write its state: {e}"),
        }
    }
}
