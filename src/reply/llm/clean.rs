//! The model's text made into one WhatsApp message, or refused: no label, no
//! quotes, no markdown, not too long; never an empty text, a refusal or an
//! "as an AI" confession.

use super::chat::strip_think_tags;

/// Labels a model puts before its line ("Assistant: ..."), lowercase.
const LABELS: &[&str] = &[
    "assistant",
    "me",
    "you",
    "reply",
    "answer",
    "response",
    "bot",
    "ai",
    "twin",
    "message",
];

/// Refusals and phrases that give the twin away; a reply holding one is dropped.
/// Matched on the lowercased text with typographic apostrophes made plain.
/// Self-descriptions ("I'm a large language model") are found by
/// [`says_it_is_a_machine`].
const GIVEAWAYS: &[&str] = &[
    "ai language model",
    "a bot designed",
    "i cannot assist",
    "i can't assist",
    "i cannot help with that",
    "i can't help with that",
    "i'm sorry, but i can",
    "i apologize, but i can",
    "i'm not able to help with",
];

/// What the twin must never say it is, as words.
const MACHINES: &[&[&str]] = &[
    &["ai"],
    &["llm"],
    &["bot"],
    &["chatbot"],
    &["robot"],
    &["language", "model"],
    &["artificial", "intelligence"],
    &["virtual", "assistant"],
    &["digital", "assistant"],
    &["ai", "assistant"],
    &["computer", "program"],
];

/// Whether the text says, in the first person, that it is a machine: "I'm a
/// bot", "as an AI", "I am just a large language model". "what is a language
/// model?" or "I worked as an assistant" is no confession.
fn says_it_is_a_machine(lower: &str) -> bool {
    let words: Vec<&str> = lower
        .split(|c: char| !(c.is_alphanumeric() || c == '\''))
        .filter(|w| !w.is_empty())
        .collect();
    (0..words.len()).any(|i| {
        let rest = match &words[i..] {
            ["i'm" | "im", rest @ ..] | ["i", "am", rest @ ..] | ["as", rest @ ..] => rest,
            _ => return false,
        };
        let rest = match rest {
            ["just" | "only" | "merely" | "simply", rest @ ..] => rest,
            _ => rest,
        };
        let ["a" | "an", rest @ ..] = rest else {
            return false;
        };
        // Up to two words between the article and the noun ("large", "helpful").
        (0..=2.min(rest.len()))
            .any(|skip| MACHINES.iter().any(|noun| rest[skip..].starts_with(noun)))
    })
}

/// Why a text was dropped.
pub type Dropped = &'static str;

/// Cleans `raw`; `names` are labels the model may put before its line (the
/// person's name, the persona's); `cut_off` says the model stopped at its token
/// cap, so the text ends mid-sentence. Errors say why the text was dropped.
pub fn clean(
    raw: &str,
    names: &[&str],
    max_chars: usize,
    cut_off: bool,
) -> Result<String, Dropped> {
    let text = strip_think_tags(raw);
    let text = strip_markdown(&text);
    let text = strip_label(&text, names);
    let text = strip_quotes(&text);
    let text = tidy_lines(&text);
    // A reply cut by the token cap would reach the contact mid-word: keep its
    // whole sentences, or nothing.
    let text = if cut_off {
        whole_sentences(&text).ok_or("cut off by the token cap before a sentence ended")?
    } else {
        text
    };
    if text.is_empty()
        || !text
            .chars()
            .any(|c| !c.is_whitespace() && !c.is_ascii_punctuation())
    {
        return Err("empty");
    }
    let lower = text.to_lowercase().replace('\u{2019}', "'");
    if GIVEAWAYS.iter().any(|g| lower.contains(g)) || says_it_is_a_machine(&lower) {
        return Err("a refusal or an AI disclaimer");
    }
    Ok(cap(&text, max_chars))
}

/// Whether a finish reason means the model hit its token cap (OpenAI's
/// `length`, Anthropic's `max_tokens`).
pub fn stopped_at_cap(finish_reason: Option<&str>) -> bool {
    matches!(finish_reason, Some("length" | "max_tokens"))
}

fn strip_markdown(text: &str) -> String {
    let mut lines = Vec::new();
    for line in text.lines() {
        let mut l = line.trim_start();
        // Headings, bullets, quotes.
        l = l.trim_start_matches('#').trim_start();
        for marker in ["- ", "* ", "• ", "> "] {
            if let Some(rest) = l.strip_prefix(marker) {
                l = rest;
            }
        }
        lines.push(unlink(l));
    }
    let joined = lines.join("\n");
    ["**", "__", "~~", "```", "`"]
        .iter()
        .fold(joined, |t, m| t.replace(m, ""))
}

/// `[text](url)` becomes `text (url)`.
fn unlink(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    while let Some(open) = rest.find('[') {
        let after = &rest[open + 1..];
        let Some(close) = after.find("](") else {
            break;
        };
        let Some(end) = after[close + 2..].find(')') else {
            break;
        };
        let label = &after[..close];
        let url = &after[close + 2..close + 2 + end];
        out.push_str(&rest[..open]);
        out.push_str(label);
        out.push_str(" (");
        out.push_str(url);
        out.push(')');
        rest = &after[close + 2 + end + 1..];
    }
    out.push_str(rest);
    out
}

/// Removes a leading "Name:" whose name is a known label.
fn strip_label(text: &str, names: &[&str]) -> String {
    let mut t = text.trim();
    while let Some((head, rest)) = t.split_once(':') {
        let head = head.trim().to_lowercase();
        let known = LABELS.contains(&head.as_str())
            || names
                .iter()
                .any(|n| !n.is_empty() && n.to_lowercase() == head);
        if !known {
            break;
        }
        t = rest.trim_start();
    }
    t.to_owned()
}

fn strip_quotes(text: &str) -> String {
    let pairs = [
        ('"', '"'),
        ('\'', '\''),
        ('“', '”'),
        ('‘', '’'),
        ('«', '»'),
        ('„', '“'),
    ];
    let mut t = text.trim();
    loop {
        let mut chars = t.chars();
        let (Some(first), Some(last)) = (chars.next(), chars.next_back()) else {
            break;
        };
        let wrapped = pairs.iter().any(|&(a, b)| first == a && last == b);
        // Only when the quote does not occur inside too ("'a' or 'b'" stays).
        let inner = &t[first.len_utf8()..t.len() - last.len_utf8()];
        if !wrapped || inner.contains(first) || inner.contains(last) {
            break;
        }
        t = inner.trim();
    }
    t.to_owned()
}

/// Trims each line and drops empty and repeated ones: a WhatsApp message, not a
/// letter, and small models loop.
fn tidy_lines(text: &str) -> String {
    let mut seen = std::collections::HashSet::new();
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && seen.insert(l.to_lowercase()))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The text up to its last sentence end, or `None` without one. The text was
/// cut by the token cap, so a `.` at its very end may be a decimal point
/// ("at 7." of "at 7.45"): only `!`, `?` and `…` end it there.
fn whole_sentences(text: &str) -> Option<String> {
    let at_end = text
        .trim_end()
        .ends_with(['!', '?', '…'])
        .then_some(text.len());
    let end = at_end.or_else(|| last_sentence_end(text, text.len()))?;
    Some(text[..end].trim_end().to_owned())
}

/// The byte offset just after the last sentence end at or before `limit`: a
/// `.`, `!`, `?` or `…` followed by whitespace, so "7.45" and "example.com"
/// are not ends.
fn last_sentence_end(text: &str, limit: usize) -> Option<usize> {
    let mut chars = text.char_indices().peekable();
    let mut last = None;
    while let Some((i, c)) = chars.next() {
        let end = i + c.len_utf8();
        if end > limit {
            break;
        }
        let followed_by_space = chars.peek().is_some_and(|&(_, n)| n.is_whitespace());
        if matches!(c, '.' | '!' | '?' | '…') && followed_by_space {
            last = Some(end);
        }
    }
    last
}

/// At most `max` characters, cut after the last sentence end that fits; without
/// one, at the last space.
fn cap(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let end = text.char_indices().nth(max).map_or(text.len(), |(i, _)| i);
    let head = &text[..end];
    let cut = last_sentence_end(text, end)
        .unwrap_or_else(|| head.rfind(char::is_whitespace).unwrap_or(end));
    head[..cut].trim_end().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_quotes_and_markdown_go() {
        assert_eq!(
            clean("Sam: \"sure, see you at 8!\"", &["Sam"], 300, false),
            Ok("sure, see you at 8!".into())
        );
        assert_eq!(
            clean("Assistant: **yes** totally", &[], 300, false),
            Ok("yes totally".into())
        );
        assert_eq!(clean("“ok then”", &[], 300, false), Ok("ok then".into()));
        assert_eq!(
            clean(
                "# Plan\n- bring `snacks`\n- see [map](http://m.example)",
                &[],
                300,
                false
            ),
            Ok("Plan\nbring snacks\nsee map (http://m.example)".into())
        );
        assert_eq!(
            clean("Note: the time changed", &[], 300, false),
            Ok("Note: the time changed".into())
        );
        assert_eq!(
            clean("'a' or 'b'", &[], 300, false),
            Ok("'a' or 'b'".into())
        );
        assert_eq!(
            clean("<think>they want a yes</think>yes!", &[], 300, false),
            Ok("yes!".into())
        );
    }

    #[test]
    fn long_replies_end_at_a_sentence() {
        let text = "First one. Second one is longer! Third goes on and on and on";
        assert_eq!(
            clean(text, &[], 40, false),
            Ok("First one. Second one is longer!".into())
        );
        assert_eq!(
            clean("no stops at all in this text", &[], 12, false),
            Ok("no stops at".into())
        );
    }

    #[test]
    fn empty_refusals_and_ai_confessions_are_dropped() {
        for bad in [
            "",
            "   ",
            "\"\"",
            "...",
            "<think>only thinking",
            "As an AI, I don't have plans.",
            "I'm sorry, but I can't help with that.",
            "Sure! As a language model I cannot meet you.",
            "I’m sorry for any confusion, I’m a bot designed to meet your needs.",
            "I am a bot, I can't come.",
            "I'm sorry for any confusion, but as a chatbot, I don't have the capability to send messages.",
        ] {
            assert!(clean(bad, &[], 300, false).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_reply_cut_at_the_token_cap_keeps_its_whole_sentences_or_is_dropped() {
        assert_eq!(
            clean(
                "I'm so glad you're enjoying it! I'm always happy to help with anything that",
                &[],
                300,
                true
            ),
            Ok("I'm so glad you're enjoying it!".into())
        );
        assert!(clean("see you at the usual place near the", &[], 300, true).is_err());
        // Without the cap, an open end is the model's own choice.
        assert_eq!(
            clean("see you at the usual place", &[], 300, false),
            Ok("see you at the usual place".into())
        );
        assert!(stopped_at_cap(Some("length")));
        assert!(stopped_at_cap(Some("max_tokens")));
        assert!(!stopped_at_cap(Some("stop")));
        assert!(!stopped_at_cap(None));
    }

    #[test]
    fn a_decimal_point_or_a_domain_is_no_sentence_end() {
        for cut in [
            "Sure, meet at 7.45 by the",
            "ok see you at 8.30 at the",
            "check example.com for the",
            "meet at 7.",
        ] {
            assert!(clean(cut, &[], 300, true).is_err(), "{cut:?}");
        }
        assert_eq!(
            clean("Sure! Meet at 7.45 by the", &[], 300, true),
            Ok("Sure!".into())
        );
        assert_eq!(
            clean("see you then?", &[], 300, true),
            Ok("see you then?".into())
        );
        assert_eq!(
            clean(
                "Meet at 7.45 tonight. Bring the map from example.com please",
                &[],
                40,
                false
            ),
            Ok("Meet at 7.45 tonight.".into())
        );
    }

    #[test]
    fn every_way_of_saying_it_is_a_machine_is_dropped() {
        for bad in [
            "I'm a large language model, trained by Google.",
            "As a large language model, I can't meet you.",
            "I am just a language model.",
            "I'm only a virtual assistant",
            "As an LLM I don't eat.",
            "Im an AI lol",
            "i am an ai",
            "As an AI, I don't have plans.",
            "I'm a friendly chatbot!",
            "I am a computer program.",
        ] {
            assert!(clean(bad, &[], 300, false).is_err(), "{bad:?}");
        }
        for fine in [
            "I worked as an assistant at the vet for 3 years",
            "I'm an assistant manager now",
            "the bot in that game was so annoying",
            "as a kid I loved robots",
            "I'm a big fan of AI art tbh",
        ] {
            assert_eq!(
                clean(fine, &[], 300, false),
                Ok(fine.to_owned()),
                "{fine:?}"
            );
        }
    }

    #[test]
    fn talking_about_language_models_is_no_confession() {
        assert_eq!(
            clean(
                "what is a language model anyway? it predicts words",
                &[],
                300,
                false
            ),
            Ok("what is a language model anyway? it predicts words".into())
        );
        assert!(clean("I'm a language model, so no.", &[], 300, false).is_err());
    }

    #[test]
    fn a_line_the_model_repeats_is_kept_once() {
        assert_eq!(
            clean(
                "srs.\nyou can't eat now.\nYou can't eat now.\nyou can't eat now.",
                &[],
                300,
                false
            ),
            Ok("srs.\nyou can't eat now.".into())
        );
    }
}
