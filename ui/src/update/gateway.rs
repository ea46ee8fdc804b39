//! The WhatsApp gateway's state, and the operator's request for new login codes.

use super::{Action, MAX_SHORT, UpdateResult, log};
use crate::model::{GatewayPhase, GatewayState, LogKind, Model};
use crate::sanitize;

/// Longest pair code kept (WhatsApp's are 8 characters).
const MAX_CODE: usize = 16;

/// A state read from `GATEWAY:{userId}`, or `None` when the key is gone.
pub(super) fn on_state(model: &mut Model, state: Option<GatewayState>) -> UpdateResult {
    let next = match state {
        Some(s) => clean(s),
        // The key lives 90 s past the last refresh: without it no gateway runs.
        // A state seen before turns into "gone" rather than staying on screen stale.
        None => match &model.gateway {
            Some(g) if g.phase != GatewayPhase::Gone => {
                log(
                    model,
                    LogKind::Connection,
                    "WhatsApp: the gateway is gone (its state expired)",
                );
                GatewayState::new(GatewayPhase::Gone, model.now_ms)
            }
            _ => return UpdateResult::clean(),
        },
    };
    if model.gateway.as_ref() == Some(&next) {
        return UpdateResult::clean();
    }
    model.gateway = Some(next);
    UpdateResult::dirty()
}

/// Gateway text is another program's: made safe and short before it is kept.
fn clean(mut s: GatewayState) -> GatewayState {
    s.detail = s.detail.map(|d| sanitize::clean(&d, MAX_SHORT));
    s.name = s.name.map(|n| sanitize::clean(&n, MAX_SHORT));
    // A pair code is letters and digits; anything else is noise, not to be typed.
    s.code = s.code.map(|c| {
        c.chars()
            .filter(char::is_ascii_alphanumeric)
            .take(MAX_CODE)
            .collect()
    });
    s
}

/// The new-codes key: acts only once the codes ran out, else says why not.
pub(super) fn on_new_codes_key(model: &mut Model) -> UpdateResult {
    let why_not = match model.gateway.as_ref().map(|g| g.phase) {
        Some(GatewayPhase::CodesExhausted) => return UpdateResult::action(Action::RequestNewCodes),
        Some(phase) => format!(
            "no new login codes to ask for: WhatsApp is {}",
            phase_name(phase)
        ),
        None => "no new login codes to ask for: no WhatsApp gateway state".to_string(),
    };
    log(model, LogKind::Info, &why_not);
    UpdateResult::dirty()
}

/// Short name of `phase` for the event log ("no new codes: WhatsApp is connected").
fn phase_name(phase: GatewayPhase) -> &'static str {
    match phase {
        GatewayPhase::Standby => "standing by",
        GatewayPhase::Connecting => "connecting",
        GatewayPhase::WaitingForScan => "waiting for a scan",
        GatewayPhase::PairCode => "waiting for the pair code",
        GatewayPhase::CodesExhausted => "out of login codes",
        GatewayPhase::Connected => "connected",
        GatewayPhase::Reconnecting => "reconnecting",
        GatewayPhase::NoNetwork => "without network",
        GatewayPhase::LoggedOut => "logged out",
        GatewayPhase::Replaced => "replaced by another instance",
        GatewayPhase::Banned => "banned",
        GatewayPhase::Stopped => "stopped",
        GatewayPhase::Gone => "gone",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_eight_character_code_is_grouped_in_fours() {
        let mut s = GatewayState::new(GatewayPhase::PairCode, 0);
        s.code = Some("ABCDEFGH".into());
        assert_eq!(s.code_grouped(), "ABCD-EFGH");
        s.code = Some("XYZ".into());
        assert_eq!(s.code_grouped(), "XYZ");
    }
}
