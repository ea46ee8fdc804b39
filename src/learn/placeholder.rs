//! The placeholders the WhatsApp gateway writes for a message without text
//! (`bridge::whatsapp::mapping::content`): `[video]`, `[GIF]`, `[document]`
//! (each maybe followed by its caption), `[sticker]`, `[location]`, `[contact
//! card]`; and, from gateways before voice notes and photos were named by
//! `mediaType`, `[photo]`, `[voice note 0:12]`, `[audio 1:05]`. A live message
//! of that form is media, not the person's writing.

/// Labels that may carry a caption after them.
const CAPTIONED: &[&str] = &["photo", "video", "GIF", "document"];
/// Labels that stand alone.
const BARE: &[&str] = &["sticker", "location", "contact card"];
/// Labels followed by a duration `m:ss`.
const TIMED: &[&str] = &["voice note", "audio"];

/// The caption (empty when none) when `text` is a gateway placeholder;
/// `None` for a message of text.
pub fn gateway_media(text: &str) -> Option<&str> {
    let rest = text.strip_prefix('[')?;
    let (label, after) = rest.split_once(']')?;
    if CAPTIONED.contains(&label) {
        return match after {
            "" => Some(""),
            caption => caption.strip_prefix(' ').map(str::trim),
        };
    }
    if !after.is_empty() {
        return None;
    }
    if BARE.contains(&label) {
        return Some("");
    }
    let (kind, duration) = label.rsplit_once(' ')?;
    (TIMED.contains(&kind) && is_duration(duration)).then_some("")
}

/// Whether any line of `text` is a gateway placeholder.
pub fn holds_gateway_media(text: &str) -> bool {
    text.lines().any(|l| gateway_media(l.trim()).is_some())
}

/// `m:ss`, minutes any number of digits.
fn is_duration(text: &str) -> bool {
    let Some((m, s)) = text.split_once(':') else {
        return false;
    };
    let digits = |d: &str| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit());
    digits(m) && s.len() == 2 && digits(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gateways_placeholders_are_media_with_their_caption() {
        for (text, caption) in [
            ("[photo]", ""),
            ("[photo] the view", "the view"),
            ("[GIF]", ""),
            ("[video] look!", "look!"),
            ("[document] invoice.pdf", "invoice.pdf"),
            ("[voice note 0:12]", ""),
            ("[audio 12:05]", ""),
            ("[sticker]", ""),
            ("[location]", ""),
            ("[contact card]", ""),
        ] {
            assert_eq!(gateway_media(text), Some(caption), "{text:?}");
        }
        for text in [
            "photo",
            "[photo]x",
            "[sticker] hi",
            "[voice note]",
            "[voice note 0:1]",
            "[audio a:bc]",
            "[link] here",
            "see [photo]",
            "",
        ] {
            assert_eq!(gateway_media(text), None, "{text:?}");
        }
        assert!(holds_gateway_media("yes!\n[sticker]"));
        assert!(!holds_gateway_media("yes!\nno"));
    }
}
