//! Media a message carries (issue 23): the optional `QUEUE:messages` fields
//! naming it, the limits on its bytes at `MEDIA:{messageId}` ([`super::media_key`]),
//! and the mark the conversation keeps once the twin understood it (or could not).

use serde::{Deserialize, Serialize};

/// Entry field: the MIME type of the media (`audio/ogg; codecs=opus`, `image/jpeg`).
pub const MEDIA_TYPE_FIELD: &str = "mediaType";
/// Entry field: the length of a voice note or audio, whole seconds (optional).
pub const MEDIA_SECONDS_FIELD: &str = "mediaSeconds";
/// How long the gateway keeps a message's bytes at `MEDIA:{messageId}`, ms.
pub const MEDIA_TTL_MS: u64 = 3_600_000;
/// Default largest media, bytes (the `media_max_mb` setting).
pub const DEFAULT_MAX_BYTES: usize = 16 * 1024 * 1024;
/// Longest `mediaType` accepted, bytes.
pub const MAX_MEDIA_TYPE_BYTES: usize = 255;

/// What kind of media the twin can understand.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MediaKind {
    /// A voice note or any audio: transcribed.
    Voice,
    /// A photo: described by a model that takes images.
    Photo,
    /// A kind another program wrote that this version does not know: shown
    /// and read as its text, so the message is not lost to a newer writer.
    #[serde(other)]
    Other,
}

impl MediaKind {
    /// The kind of a MIME type, or `None` for media the twin does not read
    /// (video, documents): such an entry is answered from its text as before.
    pub fn of_mime(mime: &str) -> Option<Self> {
        let essence = mime.split(';').next().unwrap_or("").trim();
        let top = essence.split('/').next().unwrap_or("");
        if top.eq_ignore_ascii_case("audio") {
            Some(Self::Voice)
        } else if top.eq_ignore_ascii_case("image") {
            Some(Self::Photo)
        } else {
            None
        }
    }
}

/// What an entry says about its media: the two optional fields, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaRef {
    /// The MIME type, as the gateway wrote it.
    pub mime: String,
    /// Length in seconds, when the gateway knew it.
    pub seconds: Option<u32>,
}

impl MediaRef {
    /// The kind the twin understands, if any.
    pub fn kind(&self) -> Option<MediaKind> {
        MediaKind::of_mime(&self.mime)
    }
}

/// Checks a `mediaType` value: `type/subtype` with optional parameters, printable
/// ASCII, at most [`MAX_MEDIA_TYPE_BYTES`].
pub fn check_media_type(value: &str) -> Result<(), String> {
    if value.len() > MAX_MEDIA_TYPE_BYTES {
        return Err(format!(
            "is {} bytes, longer than {MAX_MEDIA_TYPE_BYTES}",
            value.len()
        ));
    }
    if !value.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        return Err("holds characters a MIME type cannot".into());
    }
    let essence = value.split(';').next().unwrap_or("").trim();
    match essence.split_once('/') {
        Some((top, sub)) if !top.is_empty() && !sub.is_empty() && !sub.contains('/') => Ok(()),
        _ => Err("is not a MIME type (type/subtype)".into()),
    }
}

/// The mark an `events:messages` payload (and so `HISTORY`) carries for a
/// message that came with media (added field `media`, issue 23).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MediaMark {
    /// Voice note or photo.
    pub kind: MediaKind,
    /// Length of a voice note, seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seconds: Option<u32>,
    /// What the photo shows, in a few words, as the model saw it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gist: Option<String>,
    /// True when the twin could not understand it (no transcription endpoint,
    /// a permanent failure, bytes gone or too large): it was not answered.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unread: bool,
}

/// `m:ss`.
fn clock(seconds: u32) -> String {
    format!("{}:{:02}", seconds / 60, seconds % 60)
}

/// How the control room shows a message with media: `🎤 0:12 "are you coming
/// saturday"`, `📷 a red car · "look at my new car!"`, `🎤 0:32 (not understood)`.
pub fn display(content: &str, mark: &MediaMark) -> String {
    let mut out = String::new();
    match mark.kind {
        MediaKind::Voice => {
            out.push('🎤');
            if let Some(s) = mark.seconds {
                out.push(' ');
                out.push_str(&clock(s));
            }
        }
        MediaKind::Other => out.push('📎'),
        MediaKind::Photo => {
            out.push('📷');
            if let Some(gist) = mark.gist.as_deref().filter(|g| !g.trim().is_empty()) {
                out.push(' ');
                out.push_str(gist.trim());
                if !content.trim().is_empty() {
                    out.push_str(" ·");
                }
            }
        }
    }
    if !content.trim().is_empty() {
        out.push_str(" \"");
        out.push_str(content.trim());
        out.push('"');
    }
    if mark.unread {
        out.push_str(" (not understood)");
    }
    out
}

/// How the model reads a message with media in the conversation: the words
/// said or the photo's gist, marked, so it answers them as if typed.
pub fn prompt_text(content: &str, mark: &MediaMark) -> String {
    let content = content.trim();
    match (mark.kind, mark.unread) {
        (MediaKind::Voice, false) => format!("(voice note) {content}"),
        (MediaKind::Voice, true) => "(a voice note)".to_owned(),
        (MediaKind::Other, _) if content.is_empty() => "(an attachment)".to_owned(),
        (MediaKind::Other, _) => format!("(an attachment) {content}"),
        (MediaKind::Photo, unread) => {
            let gist = mark
                .gist
                .as_deref()
                .map(str::trim)
                .filter(|g| !g.is_empty() && !unread);
            match (gist, content.is_empty()) {
                (Some(g), true) => format!("(photo: {g})"),
                (Some(g), false) => format!("(photo: {g}) {content}"),
                (None, true) => "(a photo)".to_owned(),
                (None, false) => format!("(a photo) {content}"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_come_from_the_mime_type_essence() {
        assert_eq!(
            MediaKind::of_mime("audio/ogg; codecs=opus"),
            Some(MediaKind::Voice)
        );
        assert_eq!(MediaKind::of_mime("IMAGE/JPEG"), Some(MediaKind::Photo));
        assert_eq!(MediaKind::of_mime("video/mp4"), None);
        assert_eq!(MediaKind::of_mime("audiox/ogg"), None);
    }

    #[test]
    fn media_types_are_checked() {
        assert!(check_media_type("audio/ogg; codecs=opus").is_ok());
        assert!(check_media_type("image/jpeg").is_ok());
        assert!(check_media_type("jpeg").is_err());
        assert!(check_media_type("image/").is_err());
        assert!(check_media_type("image/jpeg\u{1b}[2J").is_err());
        assert!(check_media_type(&format!("image/{}", "x".repeat(300))).is_err());
    }

    #[test]
    fn the_mark_reads_as_the_control_room_shows_it() {
        let voice = MediaMark {
            kind: MediaKind::Voice,
            seconds: Some(12),
            gist: None,
            unread: false,
        };
        assert_eq!(
            display("are you coming saturday", &voice),
            "🎤 0:12 \"are you coming saturday\""
        );
        let photo = MediaMark {
            kind: MediaKind::Photo,
            seconds: None,
            gist: Some("a red sports car".into()),
            unread: false,
        };
        assert_eq!(
            display("look at my new car!", &photo),
            "📷 a red sports car · \"look at my new car!\""
        );
        let unread = MediaMark {
            unread: true,
            seconds: Some(32),
            ..voice.clone()
        };
        assert_eq!(display("", &unread), "🎤 0:32 (not understood)");
        assert_eq!(prompt_text("", &unread), "(a voice note)");
        assert_eq!(
            prompt_text("look at my new car!", &photo),
            "(photo: a red sports car) look at my new car!"
        );
    }

    #[test]
    fn a_kind_from_a_newer_writer_still_reads() {
        let mark: MediaMark =
            serde_json::from_str(r#"{"kind":"video","seconds":4}"#).expect("decodes");
        assert_eq!(mark.kind, MediaKind::Other);
        assert_eq!(display("see this", &mark), "📎 \"see this\"");
    }

    #[test]
    fn the_mark_round_trips_and_omits_what_is_unset() {
        let voice = MediaMark {
            kind: MediaKind::Voice,
            seconds: Some(3),
            gist: None,
            unread: false,
        };
        let json = serde_json::to_string(&voice).expect("encodes");
        assert_eq!(json, r#"{"kind":"voice","seconds":3}"#);
        let back: MediaMark = serde_json::from_str(&json).expect("decodes");
        assert_eq!(back, voice);
    }
}
