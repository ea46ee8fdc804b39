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

/// Phrases that give the twin away or refuse; a reply holding one is dropped.
const GIVEAWAYS: &[&str] = &[
    "as an ai",
    "as a language model",
    "as an artificial intelligence",
    "i'm an ai",
    "i am an ai",
    "ai language model",
    "ai assistant",
    "i cannot assist",
    "i can't assist",
    "i can’t assist",
    "i cannot help with that",
    "i can't help with that",
    "i can’t help with that",
    "i'm sorry, but i can",
    "i’m sorry, but i can",
    "i apologize, but i can",
    "i'm not able to help with",
];

/// Why a text was dropped.
pub type Dropped = &'static str;

/// Cleans `raw`; `names` are labels the model may put before its line (the
/// person's name, the persona's). Errors say why the text was dropped.
pub fn clean(raw: &str, names: &[&str], max_chars: usize) -> Result<String, Dropped> {
    let text = strip_think_tags(raw);
    let text = strip_markdown(&text);
    let text = strip_label(&text, names);
    let text = strip_quotes(&text);
    let text = tidy_lines(&text);
    if text.is_empty()
        || !text
            .chars()
            .any(|c| !c.is_whitespace() && !c.is_ascii_punctuation())
    {
        return Err("empty");
    }
    let lower = text.to_lowercase();
    if GIVEAWAYS.iter().any(|g| lower.contains(g)) {
        return Err("a refusal or an AI disclaimer");
    }
    Ok(cap(&text, max_chars))
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

/// Trims each line and drops empty ones: a WhatsApp message, not a letter.
fn tidy_lines(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("\n")
}

/// At most `max` characters, cut after the last sentence end that fits; without
/// one, at the last space.
fn cap(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let end = text.char_indices().nth(max).map_or(text.len(), |(i, _)| i);
    let head = &text[..end];
    let sentence = head
        .char_indices()
        .filter(|&(_, c)| matches!(c, '.' | '!' | '?' | '…'))
        .map(|(i, c)| i + c.len_utf8())
        .next_back();
    let cut = match sentence {
        Some(i) if i > 0 => i,
        _ => head.rfind(char::is_whitespace).unwrap_or(end),
    };
    head[..cut].trim_end().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_quotes_and_markdown_go() {
        assert_eq!(
            clean("Sam: \"sure, see you at 8!\"", &["Sam"], 300),
            Ok("sure, see you at 8!".into())
        );
        assert_eq!(
            clean("Assistant: **yes** totally", &[], 300),
            Ok("yes totally".into())
        );
        assert_eq!(clean("“ok then”", &[], 300), Ok("ok then".into()));
        assert_eq!(
            clean(
                "# Plan\n- bring `snacks`\n- see [map](http://m.example)",
                &[],
                300
            ),
            Ok("Plan\nbring snacks\nsee map (http://m.example)".into())
        );
        assert_eq!(
            clean("Note: the time changed", &[], 300),
            Ok("Note: the time changed".into())
        );
        assert_eq!(clean("'a' or 'b'", &[], 300), Ok("'a' or 'b'".into()));
        assert_eq!(
            clean("<think>they want a yes</think>yes!", &[], 300),
            Ok("yes!".into())
        );
    }

    #[test]
    fn long_replies_end_at_a_sentence() {
        let text = "First one. Second one is longer! Third goes on and on and on";
        assert_eq!(
            clean(text, &[], 40),
            Ok("First one. Second one is longer!".into())
        );
        assert_eq!(
            clean("no stops at all in this text", &[], 12),
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
        ] {
            assert!(clean(bad, &[], 300).is_err(), "{bad:?}");
        }
    }
}
