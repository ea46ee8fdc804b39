//! The learned style said in plain words and numbers, for the prompt.

use std::fmt::Write as _;

use super::one_line;
use crate::learn::StyleProfile;

/// A share as a whole percentage.
fn pct(share: f64) -> i64 {
    (share.clamp(0.0, 1.0) * 100.0).round() as i64
}

/// How often a share happens, in words.
fn how_often(share: f64) -> &'static str {
    match share {
        s if s < 0.1 => "rarely",
        s if s < 0.35 => "sometimes",
        s if s < 0.65 => "often",
        _ => "usually",
    }
}

/// Up to three items, one-lined, joined.
fn listed(items: &[String]) -> String {
    let items: Vec<String> = items.iter().take(3).map(|i| one_line(i)).collect();
    items.join(", ")
}

/// A language's English name for the codes most chats are in, else the code.
fn language_name(code: &str) -> String {
    let name = match code {
        "en" => "English",
        "pt" => "Portuguese",
        "es" => "Spanish",
        "de" => "German",
        "fr" => "French",
        "it" => "Italian",
        "nl" => "Dutch",
        "fi" => "Finnish",
        other => return one_line(other),
    };
    name.to_owned()
}

/// The measured style in plain words and numbers.
pub fn describe_profile(p: &StyleProfile, from_contact: bool) -> String {
    let mut s = String::new();
    let whose = if from_contact {
        "your own messages to this contact"
    } else {
        "your own messages in all your chats"
    };
    let _ = writeln!(
        s,
        "How you write, measured from {} of {whose} (write like this):",
        p.samples
    );
    let size = match p.median_chars {
        m if m <= 40.0 => "short",
        m if m <= 120.0 => "of medium length",
        _ => "long",
    };
    let _ = writeln!(
        s,
        "- Your messages are {size}: median {:.0} characters, 90% under {:.0}.",
        p.median_chars, p.p90_chars
    );
    let _ = writeln!(
        s,
        "- You start with a lowercase letter {}% of the time and {} end with a period ({}%).",
        pct(p.starts_lowercase),
        how_often(p.ends_with_period),
        pct(p.ends_with_period)
    );
    if p.emoji_per_message < 0.05 {
        let _ = writeln!(s, "- You almost never use emoji.");
    } else {
        let _ = write!(
            s,
            "- You use about {:.1} emoji per message",
            p.emoji_per_message
        );
        if !p.top_emoji.is_empty() {
            let _ = write!(s, " (most: {})", listed(&p.top_emoji).replace(", ", " "));
        }
        s.push_str(".\n");
    }
    let _ = writeln!(
        s,
        "- Per message: about {:.1} exclamation marks and {:.1} question marks; {}% of your messages have an ellipsis.",
        p.exclamations_per_message,
        p.questions_per_message,
        pct(p.ellipsis_share)
    );
    if p.laughter_per_message < 0.05 {
        let _ = writeln!(s, "- You rarely laugh in writing.");
    } else {
        let _ = write!(
            s,
            "- You laugh in writing about {:.1} times per message",
            p.laughter_per_message
        );
        if !p.top_laughter.is_empty() {
            let _ = write!(s, " (mostly {})", listed(&p.top_laughter));
        }
        s.push_str(".\n");
    }
    if !p.top_greetings.is_empty() {
        let _ = writeln!(s, "- Your usual greetings: {}.", listed(&p.top_greetings));
    }
    if !p.top_signoffs.is_empty() {
        let _ = writeln!(s, "- Your usual sign-offs: {}.", listed(&p.top_signoffs));
    }
    if !p.languages.is_empty() {
        let names: Vec<String> = p
            .languages
            .iter()
            .take(3)
            .map(|l| language_name(l))
            .collect();
        let _ = writeln!(s, "- You write in {}.", names.join(" and "));
    }
    if p.several_in_a_row >= 0.1 {
        let _ = writeln!(
            s,
            "- You {} send several messages in a row ({}% of your turns, {:.1} messages a turn on average).",
            how_often(p.several_in_a_row),
            pct(p.several_in_a_row),
            p.messages_per_turn
        );
    } else {
        let _ = writeln!(s, "- You usually answer in a single message.");
    }
    s
}
