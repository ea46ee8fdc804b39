//! Pub/sub pushes turned into dashboard events. Every payload is checked; a bad
//! one becomes a `Malformed` event, never a crash.

use base64::Engine;
use redis::{PushInfo, PushKind, Value};
use secondme_ui::sanitize;
use secondme_ui::{Connection, Event, PauseAction, PauseReason};

use crate::schema::media::{self, MediaMark};
use crate::schema::{self, MessageEvent, PauseEvent};

/// Longest part (transcript, caption, gist) of a media line cleaned here, in
/// chars: the dashboard caps the whole line again.
const MAX_PART_CHARS: usize = 4_000;

/// The dashboard event for one push, if it is one the dashboard shows.
pub fn translate(push: PushInfo, now_ms: i64) -> Option<Event> {
    match push.kind {
        PushKind::Message => {
            let mut data = push.data.into_iter();
            let channel = text(data.next()?);
            let payload = data.next().map(text).unwrap_or_default();
            Some(on_message(&channel, &payload))
        }
        PushKind::Disconnection => Some(Event::Connection(Connection::Disconnected {
            since_ms: now_ms,
            retrying: true,
            last_error: "connection to Redis lost".into(),
        })),
        _ => None,
    }
}

fn text(v: Value) -> String {
    match v {
        Value::BulkString(b) => String::from_utf8_lossy(&b).into_owned(),
        Value::SimpleString(s) => s,
        other => format!("{other:?}"),
    }
}

fn malformed(channel: &str, error: impl std::fmt::Display) -> Event {
    Event::Malformed {
        channel: channel.to_owned(),
        error: error.to_string(),
    }
}

/// Parses a payload of one of the subscribed channels.
pub fn on_message(channel: &str, payload: &str) -> Event {
    match channel {
        c if c == schema::channel_messages() => match serde_json::from_str::<MessageEvent>(payload)
        {
            Ok(m) => Event::MessageEvent {
                text: message_text(m.content, m.media.as_ref()),
                message_id: m.message_id,
                contact_id: m.contact_id,
                bot_sent: m.bot_sent,
                from_person: m.from_me,
                timestamp_ms: m.timestamp,
            },
            Err(e) => malformed(channel, e),
        },
        c if c == schema::channel_pause() => match serde_json::from_str::<PauseEvent>(payload) {
            Ok(p) => Event::PauseEvent {
                contact_id: p.contact_id,
                action: match p.action {
                    schema::PauseAction::Pause => PauseAction::Pause,
                    schema::PauseAction::Resume => PauseAction::Resume,
                },
                expires_at_ms: p.expires_at,
                // The seed's gateway sends no reason: its pauses are the operator's.
                reason: p.reason.as_ref().map_or(PauseReason::Manual, ui_reason),
            },
            Err(e) => malformed(channel, e),
        },
        c if c == schema::channel_qr() => qr(payload).unwrap_or_else(|e| malformed(channel, e)),
        c if c == schema::dialect::channel_status() => {
            service_status(payload).unwrap_or_else(|e| malformed(channel, e))
        }
        c if c == schema::drafts::channel_drafts() => {
            draft_event(payload).unwrap_or_else(|e| malformed(channel, e))
        }
        other => malformed(
            other,
            "message on a channel the dashboard did not subscribe to",
        ),
    }
}

/// A message's conversation line: its content, or for one that came with a
/// voice note or photo what the twin understood of it ([`media::display`]).
/// The parts of a media line are cleaned before they are put together, so an
/// escape left open in one cannot swallow the rest (the caption, the
/// `(not understood)` cue); the dashboard cleans the whole line again.
pub fn message_text(content: String, mark: Option<&MediaMark>) -> String {
    let Some(mark) = mark else {
        return content;
    };
    let content = sanitize::clean_multiline(&content, MAX_PART_CHARS);
    let mark = MediaMark {
        gist: mark
            .gist
            .as_deref()
            .map(|g| sanitize::clean(g, MAX_PART_CHARS)),
        ..mark.clone()
    };
    media::display(&content, &mark)
}

/// The dashboard's reason for a parsed wire reason; the control room's one
/// mapping from the contract's vocabulary to the screen's.
pub fn ui_reason(reason: &schema::PauseReason) -> PauseReason {
    match reason {
        schema::PauseReason::Manual => PauseReason::Manual,
        schema::PauseReason::Takeover => PauseReason::Takeover,
        schema::PauseReason::RateLimit => PauseReason::RateLimit,
        schema::PauseReason::StateLost => PauseReason::StateLost,
        schema::PauseReason::Refused => PauseReason::Refused,
        schema::PauseReason::Unknown => PauseReason::Unknown,
        // Cleaned by the dashboard before it is kept or shown.
        schema::PauseReason::Other(text) => PauseReason::Other(text.clone()),
    }
}

/// `{type, draftId, contactId, at}` on `events:drafts`.
fn draft_event(payload: &str) -> Result<Event, String> {
    let e: schema::drafts::DraftEvent = serde_json::from_str(payload).map_err(|e| e.to_string())?;
    let change = super::drafts::change(&e.kind)
        .ok_or_else(|| format!("unknown draft event type {:?}", e.kind))?;
    Ok(Event::DraftEvent {
        change,
        draft_id: e.draft_id,
        contact_id: e.contact_id,
    })
}

/// `{service, status, reason?}` on `events:status` (other gateways').
fn service_status(payload: &str) -> Result<Event, String> {
    let v: serde_json::Value = serde_json::from_str(payload).map_err(|e| e.to_string())?;
    let field = |name: &str| v.get(name).and_then(serde_json::Value::as_str);
    let (Some(service), Some(status)) = (field("service"), field("status")) else {
        return Err("expected {service, status, reason?}".into());
    };
    let status = match field("reason") {
        Some(reason) if !reason.is_empty() => format!("{status} ({reason})"),
        _ => status.to_owned(),
    };
    Ok(Event::ServiceStatus {
        service: service.to_owned(),
        status,
    })
}

/// `{qrCode (base64), expiresIn}` per the seed; `{qr, timestamp}` (the code's raw
/// text, the original gateway's) and a PNG data URL in either field (other
/// dashboards') from other programs.
pub(super) fn qr(payload: &str) -> Result<Event, String> {
    let v: serde_json::Value = serde_json::from_str(payload).map_err(|e| e.to_string())?;
    let expires_in_s = v
        .get("expiresIn")
        .and_then(serde_json::Value::as_u64)
        .map_or(60, |s| s.min(3600) as u32);
    // A `data:` URL in either field is an image of the code (other dashboards'
    // PNG): read the code from it.
    let code = if let Some(url) = ["qrCode", "qr"]
        .iter()
        .filter_map(|f| v.get(*f).and_then(|c| c.as_str()))
        .find(|c| c.starts_with("data:"))
    {
        super::qr_image::decode_data_url(url)?
    } else if let Some(b64) = v.get("qrCode").and_then(|c| c.as_str()) {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(b64.trim())
            .map_err(|e| format!("qrCode is not base64: {e}"))?;
        String::from_utf8(bytes).map_err(|_| "qrCode does not decode to text".to_owned())?
    } else if let Some(plain) = v.get("qr").and_then(|c| c.as_str()) {
        plain.to_owned()
    } else {
        return Err("expected {qrCode, expiresIn} or {qr}".into());
    };
    if code.is_empty() || code.len() > 2048 {
        return Err(format!(
            "QR payload of {} bytes is not a login code",
            code.len()
        ));
    }
    Ok(Event::QrEvent {
        payload: code,
        expires_in_s,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_become_events_or_malformed() {
        let m = on_message(
            "events:messages",
            r#"{"messageId":"m","contactId":"c","content":"hi","botSent":true,"timestamp":5}"#,
        );
        assert!(matches!(m, Event::MessageEvent { bot_sent: true, .. }));
        let q = on_message("events:qr", r#"{"qrCode":"MkBhYmM=","expiresIn":20}"#);
        assert!(
            matches!(q, Event::QrEvent { ref payload, expires_in_s: 20 } if payload == "2@abc")
        );
        let other = on_message("events:qr", r#"{"qr":"2@xyz"}"#);
        assert!(matches!(other, Event::QrEvent { .. }));
        for bad in ["{", r#"{"foo":1}"#, r#"{"qrCode":"%%%"}"#] {
            assert!(matches!(
                on_message("events:qr", bad),
                Event::Malformed { .. }
            ));
        }
        assert!(matches!(
            on_message("events:pause", r#"{"contactId":"c"}"#),
            Event::Malformed { .. }
        ));
        let d = on_message(
            "events:drafts",
            r#"{"type":"approved","draftId":"draft_m1","contactId":"c","at":5}"#,
        );
        assert!(matches!(
            d,
            Event::DraftEvent { change: secondme_ui::model::DraftChange::Approved, ref draft_id, .. }
                if draft_id == "draft_m1"
        ));
        for bad in [
            r#"{"type":"sent","draftId":"d","contactId":"c","at":5}"#,
            r#"{"type":"created"}"#,
        ] {
            assert!(matches!(
                on_message("events:drafts", bad),
                Event::Malformed { .. }
            ));
        }
    }

    /// The conversation line a published `events:messages` payload becomes.
    fn line(payload: &str) -> String {
        match on_message("events:messages", payload) {
            Event::MessageEvent { text, .. } => text,
            other => panic!("not a message event: {other:?}"),
        }
    }

    fn payload(content: &str, media: &str) -> String {
        let content = serde_json::to_string(content).expect("a string encodes");
        format!(
            r#"{{"messageId":"m","contactId":"alice","content":{content},"botSent":false,"timestamp":5,"media":{media}}}"#
        )
    }

    #[test]
    fn a_voice_note_shows_what_was_said_and_how_long() {
        assert_eq!(
            line(&payload(
                "are you coming saturday",
                r#"{"kind":"voice","seconds":12}"#
            )),
            "🎤 0:12 \"are you coming saturday\""
        );
    }

    #[test]
    fn a_photo_shows_its_gist_and_caption() {
        assert_eq!(
            line(&payload(
                "look at my new car!",
                r#"{"kind":"photo","gist":"a red sports car"}"#
            )),
            "📷 a red sports car · \"look at my new car!\""
        );
        assert_eq!(
            line(&payload("look at my new car!", r#"{"kind":"photo"}"#)),
            "📷 \"look at my new car!\""
        );
    }

    #[test]
    fn a_voice_note_not_understood_says_so() {
        assert_eq!(
            line(&payload(
                "",
                r#"{"kind":"voice","seconds":32,"unread":true}"#
            )),
            "🎤 0:32 (not understood)"
        );
    }

    #[test]
    fn plain_text_is_shown_as_it_came() {
        assert_eq!(
            line(
                r#"{"messageId":"m","contactId":"c","content":"hi [photo]","botSent":false,"timestamp":5}"#
            ),
            "hi [photo]"
        );
    }

    #[test]
    fn escapes_in_a_gist_or_transcript_are_neutralised_and_hide_nothing() {
        // An OSC left open in the gist would swallow the caption after it.
        let photo = line(&payload(
            "look \u{1b}[31mhere",
            r#"{"kind":"photo","gist":"a red \u001b[2Jcar \u001b]0;pwned"}"#,
        ));
        assert_eq!(photo, "📷 a red car · \"look here\"");
        // One left open in the transcript would swallow the operator's cue.
        let voice = line(&payload(
            "hi \u{1b}]0;pwned",
            r#"{"kind":"voice","seconds":32,"unread":true}"#,
        ));
        assert_eq!(voice, "🎤 0:32 \"hi\" (not understood)");
        // And the dashboard shows the line as it was made here.
        let mut model = secondme_ui::Model::default();
        let ev = on_message(
            "events:messages",
            &payload(
                "look",
                r#"{"kind":"photo","gist":"a \u009b2Jcar\u202e \u001b]8;;http://evil\u0007x"}"#,
            ),
        );
        let _ = secondme_ui::update(&mut model, ev);
        let shown: Vec<&str> = model.conversations["alice"]
            .messages
            .iter()
            .map(|m| m.text.as_str())
            .collect();
        assert_eq!(shown, ["📷 a car x · \"look\""]);
    }

    fn pause_reason(payload: &str) -> PauseReason {
        match on_message("events:pause", payload) {
            Event::PauseEvent { reason, .. } => reason,
            other => panic!("not a pause event: {other:?}"),
        }
    }

    #[test]
    fn pause_reasons_are_parsed_once_at_the_edge() {
        let with = |reason: &str| {
            format!(r#"{{"contactId":"c","action":"pause","expiresAt":null,"reason":{reason}}}"#)
        };
        for (wire, shown) in [
            ("manual", PauseReason::Manual),
            ("takeover", PauseReason::Takeover),
            ("rate_limit", PauseReason::RateLimit),
            ("state_lost", PauseReason::StateLost),
            ("refused", PauseReason::Refused),
            ("unknown", PauseReason::Unknown),
            ("on holiday", PauseReason::Other("on holiday".into())),
        ] {
            assert_eq!(pause_reason(&with(&format!("{wire:?}"))), shown, "{wire}");
        }
        // The seed's payload has no reason; null is the same absence.
        assert_eq!(
            pause_reason(r#"{"contactId":"c","action":"resume","expiresAt":null}"#),
            PauseReason::Manual
        );
        assert_eq!(pause_reason(&with("null")), PauseReason::Manual);
        assert!(matches!(
            on_message("events:pause", &with("5")),
            Event::Malformed { .. }
        ));
    }

    #[test]
    fn wire_reasons_round_trip_as_plain_strings() {
        for wire in [
            "manual",
            "takeover",
            "rate_limit",
            "state_lost",
            "unknown",
            "free text",
        ] {
            let reason = schema::PauseReason::parse(wire);
            assert_eq!(reason.as_str(), wire);
            assert_eq!(reason.to_string(), wire);
            let json = serde_json::to_string(&reason).expect("serialize");
            assert_eq!(json, format!("{wire:?}"));
            let back: schema::PauseReason = serde_json::from_str(&json).expect("deserialize");
            assert_eq!(back, reason);
        }
        let mut other = schema::PauseReason::Other("a\u{1b}[2Jb".into());
        other.clean_other(|t| t.replace('\u{1b}', ""));
        assert_eq!(other.as_str(), "a[2Jb");
        let mut known = schema::PauseReason::StateLost;
        known.clean_other(|_| "never".into());
        assert_eq!(known, schema::PauseReason::StateLost);
    }
}
