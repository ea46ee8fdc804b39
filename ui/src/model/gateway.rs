//! The WhatsApp login and gateway as the dashboard shows them: the pending
//! login code and the gateway's state.

use super::Model;

/// A login code waiting to be scanned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QrCode {
    /// The exact string to encode.
    pub payload: String,
    /// When the dashboard received it.
    pub received_at_ms: i64,
    /// Validity in seconds from `received_at_ms`.
    pub expires_in_s: u32,
}

impl QrCode {
    /// When the code stops being valid.
    pub fn expires_at_ms(&self) -> i64 {
        self.received_at_ms
            .saturating_add(i64::from(self.expires_in_s) * 1000)
    }
}

/// What the WhatsApp connection is doing (the gateway's `state`). Mirrors the
/// engine's `bridge::whatsapp::status::State`, plus `Gone`, the dashboard's own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GatewayPhase {
    /// Another gateway of the account is connected; this one takes over when it stops.
    Standby,
    /// Opening the connection.
    Connecting,
    /// A QR code is up, waiting for the phone.
    WaitingForScan,
    /// A pair code is up (`code`), waiting for the phone.
    PairCode,
    /// No login codes left; the operator asks for new ones.
    CodesExhausted,
    /// Logged in (`name`).
    Connected,
    /// Connection lost; trying again at `next_try_ms`.
    Reconnecting,
    /// WhatsApp unreachable; trying again at `next_try_ms`.
    NoNetwork,
    /// Unlinked; a new login follows.
    LoggedOut,
    /// Another instance took over; this gateway stopped.
    Replaced,
    /// Banned until `until_ms`.
    Banned,
    /// The gateway stopped.
    Stopped,
    /// Its state expired: no gateway has refreshed it for its TTL.
    Gone,
}

/// The gateway's state; text fields are cleaned by `update` before they are kept.
/// Mirrors the engine's `bridge::whatsapp::status::GatewayStatus`, field for field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GatewayState {
    /// The state.
    pub phase: GatewayPhase,
    /// Since when, ms.
    pub since_ms: i64,
    /// Why, or what to do, from the gateway.
    pub detail: Option<String>,
    /// The account's display name, when connected.
    pub name: Option<String>,
    /// The pair code to type on the phone.
    pub code: Option<String>,
    /// Next connection attempt, ms.
    pub next_try_ms: Option<i64>,
    /// End of a ban or of a code's validity, ms.
    pub until_ms: Option<i64>,
}

impl GatewayState {
    /// A state with only its phase and time.
    pub fn new(phase: GatewayPhase, since_ms: i64) -> GatewayState {
        GatewayState {
            phase,
            since_ms,
            detail: None,
            name: None,
            code: None,
            next_try_ms: None,
            until_ms: None,
        }
    }

    /// The pair code grouped for reading aloud or typing: `ABCD-EFGH`.
    pub fn code_grouped(&self) -> String {
        let code = self.code.as_deref().unwrap_or("?");
        let chars: Vec<char> = code.chars().collect();
        if chars.len() == 8 {
            let (a, b) = chars.split_at(4);
            format!(
                "{}-{}",
                a.iter().collect::<String>(),
                b.iter().collect::<String>()
            )
        } else {
            code.to_string()
        }
    }
}

impl Model {
    /// Whether the login-code overlay should be shown.
    pub fn qr_visible(&self) -> bool {
        self.qr.is_some() && self.session.is_none()
    }
}
