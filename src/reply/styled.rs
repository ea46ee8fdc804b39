//! A template's words written the way the person writes: the offline engine's
//! fallback when no past reply is close enough still sounds like its owner
//! (the first letter's case, the final period, their laugh and emoji, each
//! at the rate the learned profile measured).

use crate::learn::StyleProfile;

/// `text` with the owner's habits applied; `pick` chooses, deterministically,
/// whether a habit measured at a rate below 1 shows in this message. A laugh or
/// an emoji is added only from the contact's own profile (`own_chat`): one
/// learned with mom says nothing of how the person writes to a colleague.
pub fn in_owner_style(text: &str, profile: &StyleProfile, pick: u64, own_chat: bool) -> String {
    if profile.samples == 0 {
        return text.to_owned();
    }
    let mut out = text.trim().to_owned();
    if profile.starts_lowercase >= 0.5 {
        out = lowercase_first_letter(&out);
    }
    if profile.ends_with_period < 0.5 {
        strip_final_period(&mut out);
    }
    if profile.exclamations_per_message < 0.1 {
        while out.ends_with('!') {
            out.pop();
        }
    }
    // An emoji-only answer stays one: "👍 haha" is nobody's style.
    if !own_chat || !out.chars().any(char::is_alphabetic) {
        return out;
    }
    if let Some(laugh) = profile.top_laughter.first()
        && happens(profile.laughter_per_message, pick)
        && !out.to_lowercase().contains(laugh.as_str())
    {
        out.push(' ');
        out.push_str(laugh);
    }
    if let Some(emoji) = profile.top_emoji.first()
        && happens(profile.emoji_per_message, pick >> 16)
        && !out.contains(emoji.as_str())
    {
        out.push(' ');
        out.push_str(emoji);
    }
    out
}

/// True for a share `rate` of the picks (a rate of 1 or more: always).
fn happens(rate: f64, pick: u64) -> bool {
    (pick % 1000) as f64 / 1000.0 < rate
}

/// The first letter in lowercase (what comes before it, an emoji or a quote, kept).
fn lowercase_first_letter(text: &str) -> String {
    let Some((at, c)) = text.char_indices().find(|(_, c)| c.is_alphabetic()) else {
        return text.to_owned();
    };
    // "I" alone is a word people who write in lowercase still often capitalise.
    let next = text[at + c.len_utf8()..].chars().next();
    if c == 'I' && next.is_none_or(|n| !n.is_alphabetic()) {
        return text.to_owned();
    }
    let mut out = String::with_capacity(text.len());
    out.push_str(&text[..at]);
    out.extend(c.to_lowercase());
    out.push_str(&text[at + c.len_utf8()..]);
    out
}

/// Drops one final `.`, never an ellipsis's.
fn strip_final_period(text: &mut String) {
    if text.ends_with('.') && !text.ends_with("..") {
        text.pop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile() -> StyleProfile {
        StyleProfile {
            samples: 40,
            starts_lowercase: 0.9,
            ends_with_period: 0.05,
            exclamations_per_message: 0.0,
            laughter_per_message: 1.0,
            top_laughter: vec!["haha".into()],
            emoji_per_message: 0.0,
            top_emoji: vec!["😂".into()],
            ..StyleProfile::default()
        }
    }

    #[test]
    fn a_template_takes_the_owners_case_period_and_laugh() {
        assert_eq!(
            in_owner_style("Sounds good, I'll check.", &profile(), 7, true),
            "sounds good, I'll check haha"
        );
        assert_eq!(
            in_owner_style("Great!", &profile(), 7, true),
            "great haha",
            "no '!' from someone who never writes one"
        );
        assert_eq!(
            in_owner_style("Wait...", &profile(), 7, true),
            "wait... haha"
        );
        assert_eq!(
            in_owner_style("haha yes", &profile(), 7, true),
            "haha yes",
            "the laugh is not doubled"
        );
    }

    #[test]
    fn each_habit_shows_at_its_measured_rate() {
        let p = StyleProfile {
            laughter_per_message: 0.3,
            ..profile()
        };
        let laughs = (0..1000u64)
            .filter(|pick| in_owner_style("ok then", &p, *pick, true).ends_with("haha"))
            .count();
        assert_eq!(laughs, 300, "30% of the picks laugh");
        let q = StyleProfile {
            emoji_per_message: 0.5,
            laughter_per_message: 0.0,
            ..profile()
        };
        let emoji = (0..1000u64)
            .filter(|pick| in_owner_style("ok then", &q, *pick << 16, true).ends_with('😂'))
            .count();
        assert_eq!(emoji, 500);
    }

    #[test]
    fn someone_who_writes_capitals_and_periods_keeps_them() {
        let p = StyleProfile {
            samples: 10,
            starts_lowercase: 0.1,
            ends_with_period: 0.8,
            exclamations_per_message: 0.5,
            ..StyleProfile::default()
        };
        assert_eq!(
            in_owner_style("Sure, see you then.", &p, 3, true),
            "Sure, see you then."
        );
        assert_eq!(in_owner_style("Great!", &p, 3, true), "Great!");
    }

    #[test]
    fn another_chats_profile_lends_no_laugh_or_emoji() {
        let p = StyleProfile {
            emoji_per_message: 1.0,
            ..profile()
        };
        assert_eq!(
            in_owner_style("Sounds good, I'll check.", &p, 7, false),
            "sounds good, I'll check"
        );
    }

    #[test]
    fn nothing_learned_changes_nothing() {
        assert_eq!(
            in_owner_style("Hello there.", &StyleProfile::default(), 1, true),
            "Hello there."
        );
        assert_eq!(
            in_owner_style("👍", &profile(), 7, true),
            "👍",
            "an emoji-only answer gets no laugh"
        );
    }
}
