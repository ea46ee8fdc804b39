//! Emoji found in text without a Unicode table: a few code point ranges and the
//! rules that glue several code points into one emoji.
//!
//! An emoji starts with a base (U+1F300-1FAFF, U+2600-27BF and the few other
//! emoji of the older blocks: ⭐ ⌛ ⏰ 🅰 🈁...), then takes its extenders
//! (variation selectors, skin tones, the keycap mark, tag characters) and any
//! further base joined by a zero-width joiner: 👍🏽, ❤️, 👨‍👩‍👧 and 🏴󠁧󠁢󠁳󠁣󠁴󠁿 are one emoji each.
//! Two regional indicators make one flag (🇧🇷); a digit, `#` or `*` followed by
//! the keycap mark makes one keycap (1️⃣).

/// Joins two emoji into one (👨‍👩‍👧).
const ZWJ: char = '\u{200D}';
/// Asks for the text form of the character before it.
const TEXT_STYLE: char = '\u{FE0E}';
/// Asks for the emoji form of the character before it.
const EMOJI_STYLE: char = '\u{FE0F}';
/// Makes a digit, `#` or `*` a keycap.
const KEYCAP: char = '\u{20E3}';

/// `c` is an emoji on its own.
fn is_base(c: char) -> bool {
    matches!(
        c as u32,
        0x1F300..=0x1FAFF
            | 0x2600..=0x27BF
            | 0x1F004
            | 0x1F0CF
            | 0x1F170..=0x1F251
            | 0x231A..=0x231B
            | 0x2328
            | 0x23CF
            | 0x23E9..=0x23F3
            | 0x23F8..=0x23FA
            | 0x2934..=0x2935
            | 0x2B05..=0x2B07
            | 0x2B1B..=0x2B1C
            | 0x2B50
            | 0x2B55
            | 0x3030
            | 0x303D
            | 0x3297
            | 0x3299
    )
}

/// One of the 26 letters whose pairs make flags.
fn is_regional(c: char) -> bool {
    matches!(c as u32, 0x1F1E6..=0x1F1FF)
}

/// A skin tone, which colours the emoji before it.
fn is_skin_tone(c: char) -> bool {
    matches!(c as u32, 0x1F3FB..=0x1F3FF)
}

/// Belongs to the emoji before it.
fn is_extender(c: char) -> bool {
    c == TEXT_STYLE
        || c == EMOJI_STYLE
        || c == KEYCAP
        || is_skin_tone(c)
        || matches!(c as u32, 0xE0020..=0xE007F)
}

/// Starts a keycap when the keycap mark follows.
fn is_keycap_base(c: char) -> bool {
    c.is_ascii_digit() || c == '#' || c == '*'
}

/// The byte length of the emoji `s` starts with, if it starts with one.
pub fn len_at(s: &str) -> Option<usize> {
    let first = s.chars().next()?;
    let after = first.len_utf8();
    if is_regional(first) {
        let pair = s[after..].chars().next().filter(|c| is_regional(*c));
        return Some(after + pair.map_or(0, char::len_utf8));
    }
    if is_keycap_base(first) {
        let rest = &s[after..];
        let rest = rest.strip_prefix(EMOJI_STYLE).unwrap_or(rest);
        return rest.strip_prefix(KEYCAP).map(|tail| s.len() - tail.len());
    }
    is_base(first).then(|| after + tail_len(&s[after..]))
}

/// The byte length of the extenders and joined emoji that `s` starts with.
fn tail_len(s: &str) -> usize {
    let mut end = 0;
    loop {
        let mut chars = s[end..].chars();
        match chars.next() {
            Some(c) if is_extender(c) => end += c.len_utf8(),
            Some(ZWJ) => match chars.next() {
                Some(c) if is_base(c) => end += ZWJ.len_utf8() + c.len_utf8(),
                _ => return end,
            },
            _ => return end,
        }
    }
}

/// One spelling for every way of writing the same emoji, so that ❤ and ❤️
/// count together: the style selectors dropped, then the emoji-style selector
/// put back after each base of the older blocks (which default to text) unless
/// a skin tone follows it.
pub fn canonical(emoji: &str) -> String {
    let mut out = String::with_capacity(emoji.len() + 3);
    let mut chars = emoji
        .chars()
        .filter(|c| *c != TEXT_STYLE && *c != EMOJI_STYLE)
        .peekable();
    while let Some(c) = chars.next() {
        out.push(c);
        let text_default = (c as u32) < 0x1F000 && (is_base(c) || is_keycap_base(c));
        if text_default && !chars.peek().is_some_and(|next| is_skin_tone(*next)) {
            out.push(EMOJI_STYLE);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The emoji of `s`, canonical, in order (other characters skipped).
    fn all(s: &str) -> Vec<String> {
        let mut out = Vec::new();
        let mut at = 0;
        while at < s.len() {
            match len_at(&s[at..]) {
                Some(n) => {
                    out.push(canonical(&s[at..at + n]));
                    at += n;
                }
                None => at += s[at..].chars().next().map_or(1, char::len_utf8),
            }
        }
        out
    }

    #[test]
    fn plain_text_has_no_emoji() {
        assert!(all("hello, world! 123 #tag *x* ¿qué? ©").is_empty());
    }

    #[test]
    fn each_emoji_counts_once_with_its_modifiers() {
        let family = "👨\u{200D}👩\u{200D}👧";
        let text = format!("ok 👍🏽 {family} 🇧🇷🇵🇹 1\u{FE0F}\u{20E3} 😂😂");
        let found = all(&text);
        assert_eq!(found.len(), 7, "{found:?}");
        assert_eq!(found[0], "👍🏽");
        assert_eq!(found[1], family);
        assert_eq!(found[2], "🇧🇷");
        assert_eq!(found[3], "🇵🇹");
        assert_eq!(found[4], "1\u{FE0F}\u{20E3}");
        assert_eq!(&found[5..], ["😂", "😂"]);
    }

    #[test]
    fn a_heart_is_the_same_heart_with_or_without_its_selector() {
        assert_eq!(all("❤ ❤\u{FE0F} ❤\u{FE0E}"), vec!["❤\u{FE0F}"; 3]);
        let fire_heart = "❤\u{FE0F}\u{200D}🔥";
        assert_eq!(all(fire_heart), [fire_heart]);
        assert_eq!(all("☝🏽"), ["☝🏽"]);
    }

    #[test]
    fn a_joiner_before_text_ends_the_emoji() {
        let s = "😀\u{200D}a";
        assert_eq!(len_at(s), Some("😀".len()));
    }

    #[test]
    fn a_lone_regional_letter_is_one_emoji() {
        assert_eq!(all("🇧 x"), ["🇧"]);
    }
}
