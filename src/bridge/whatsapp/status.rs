//! The gateway's state as other programs see it: `GATEWAY:{userId}` (JSON,
//! refreshed while the gateway runs, gone 90 s after it stops) and the same
//! payload on `events:gateway`.

use crate::connection::Con;
use serde::{Deserialize, Serialize};

use crate::schema;

/// The value of [`request_key`] asking for a fresh round of login codes.
pub const REQUEST_NEW_CODES: &str = "new_codes";

/// How long `GATEWAY:{userId}` outlives the last refresh, s.
pub const TTL_S: u64 = 90;

/// How often a running gateway refreshes it.
pub const REFRESH: std::time::Duration = std::time::Duration::from_secs(30);

/// What the WhatsApp connection is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Another gateway of the account holds `GATEWAYLOCK:{userId}`: this one
    /// does not connect, and takes over when the lease is free.
    Standby,
    /// Opening the connection.
    Connecting,
    /// A QR code is up (`QR:{userId}`), waiting for the phone.
    WaitingForScan,
    /// A pair code is up (`code`), waiting for the phone.
    PairCode,
    /// No login codes left; the operator asks for new ones.
    CodesExhausted,
    /// Logged in (`name`).
    Connected,
    /// Connection lost; trying again at `nextTry`.
    Reconnecting,
    /// WhatsApp unreachable; trying again at `nextTry`.
    NoNetwork,
    /// Unlinked; a new login follows.
    LoggedOut,
    /// Another instance took over; this gateway stopped.
    Replaced,
    /// Banned until `until`.
    Banned,
    /// The gateway stopped.
    Stopped,
}

/// The JSON payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GatewayStatus {
    /// The state.
    pub state: State,
    /// Since when, ms.
    pub since: i64,
    /// Why, or what to do, for the operator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// The account's display name, when connected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The pair code to type on the phone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// Next connection attempt, ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_try: Option<i64>,
    /// End of a ban or of a code's validity, ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<i64>,
}

impl GatewayStatus {
    /// A status with only its state and time.
    pub fn new(state: State, since: i64) -> Self {
        Self {
            state,
            since,
            detail: None,
            name: None,
            code: None,
            next_try: None,
            until: None,
        }
    }

    /// With a detail.
    pub fn detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    /// One line for a status bar or a terminal, relative to `now` (ms).
    pub fn line(&self, now: i64) -> String {
        let secs = |at: i64| (at - now).max(0) / 1000;
        let mut text = match self.state {
            State::Standby => {
                "standing by (another gateway of this account is connected)".to_owned()
            }
            State::Connecting => "connecting".to_owned(),
            State::WaitingForScan => "waiting for scan".to_owned(),
            State::PairCode => format!(
                "pair code {} (WhatsApp > Linked devices > Link with phone number)",
                self.code.as_deref().unwrap_or("?")
            ),
            State::CodesExhausted => "login codes ran out: ask for new ones".to_owned(),
            State::Connected => format!("connected as {}", self.name.as_deref().unwrap_or("?")),
            State::Reconnecting => "reconnecting".to_owned(),
            State::NoNetwork => "no network".to_owned(),
            State::LoggedOut => "logged out".to_owned(),
            State::Replaced => "replaced by another instance (stopped)".to_owned(),
            State::Banned => "temporarily banned".to_owned(),
            State::Stopped => "stopped".to_owned(),
        };
        if let Some(next) = self.next_try {
            text.push_str(&format!(
                " (since {}s, next try in {}s)",
                (now - self.since).max(0) / 1000,
                secs(next)
            ));
        }
        if self.state == State::Banned
            && let Some(until) = self.until
        {
            text.push_str(&format!(" (for {}s more)", secs(until)));
        }
        if let Some(detail) = &self.detail {
            text.push_str(": ");
            text.push_str(detail);
        }
        text
    }
}

/// Writes `s` to `GATEWAY:{userId}` with its TTL and publishes it on
/// `events:gateway`, in one round trip.
pub async fn publish(con: &mut Con, user_id: &str, s: &GatewayStatus) -> anyhow::Result<()> {
    let json = serde_json::to_string(s)?;
    redis::pipe()
        .set_ex(schema::gateway_key(user_id), &json, TTL_S)
        .ignore()
        .publish(schema::channel_gateway(), &json)
        .ignore()
        .exec_async(con)
        .await?;
    Ok(())
}

/// Writes `s` as [`publish`] does, but only where no state is shown or where
/// `replacing` (this gateway's own last one) is: a gateway standing by does not
/// hide the state of the one connected. True when written.
pub async fn publish_if_free(
    con: &mut Con,
    user_id: &str,
    s: &GatewayStatus,
    replacing: Option<&GatewayStatus>,
) -> anyhow::Result<bool> {
    let json = serde_json::to_string(s)?;
    let key = schema::gateway_key(user_id);
    let shown: Option<String> = redis::cmd("SET")
        .arg(&key)
        .arg(&json)
        .arg("NX")
        .arg("GET")
        .arg("EX")
        .arg(TTL_S)
        .query_async(con)
        .await?;
    let ours = match (&shown, replacing) {
        (None, _) => true,
        (Some(shown), Some(r)) => *shown == serde_json::to_string(r)?,
        (Some(_), None) => false,
    };
    if !ours {
        return Ok(false);
    }
    publish(con, user_id, s).await?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_payload_is_camel_case_and_round_trips() {
        let mut s = GatewayStatus::new(State::NoNetwork, 1_000).detail("dns");
        s.next_try = Some(6_000);
        let json = serde_json::to_string(&s).unwrap_or_default();
        assert_eq!(
            json,
            r#"{"state":"no_network","since":1000,"detail":"dns","nextTry":6000}"#
        );
        assert_eq!(
            serde_json::from_str::<GatewayStatus>(&json).ok(),
            Some(s.clone())
        );
        assert_eq!(s.line(3_000), "no network (since 2s, next try in 3s): dns");
    }

    #[test]
    fn a_standby_gateway_says_so_on_the_wire_and_in_words() {
        let s = GatewayStatus::new(State::Standby, 1_000).detail("GATEWAYLOCK:u is held");
        let json = serde_json::to_string(&s).unwrap_or_default();
        assert!(json.starts_with(r#"{"state":"standby","#), "{json}");
        assert_eq!(
            s.line(2_000),
            "standing by (another gateway of this account is connected): GATEWAYLOCK:u is held"
        );
    }
}
