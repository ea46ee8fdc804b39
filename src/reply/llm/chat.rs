//! What both protocols share: a conversation to complete and what came back.

/// A role in the conversation sent to the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The contact's words.
    User,
    /// The person's (or the twin's) words.
    Assistant,
}

impl Role {
    /// The wire name, the same in both protocols.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::Assistant => "assistant",
        }
    }
}

/// One turn.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Turn {
    /// Who speaks.
    pub role: Role,
    /// What they said.
    pub text: String,
}

/// A completion to ask for.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatRequest {
    /// Model name.
    pub model: String,
    /// The instructions.
    pub system: String,
    /// The conversation, oldest first, ending with the contact's message.
    pub turns: Vec<Turn>,
    /// Token cap of the answer.
    pub max_tokens: u32,
    /// Sampling temperature.
    pub temperature: f32,
}

/// What the model answered.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Completion {
    /// The text, think blocks removed (may be empty).
    pub text: String,
    /// Why it stopped, as the server says it (any value is accepted).
    pub finish_reason: Option<String>,
    /// Tokens of the prompt.
    pub prompt_tokens: u64,
    /// Tokens of the answer.
    pub completion_tokens: u64,
}

/// Merges consecutive turns of the same role (joined by a newline) and drops
/// leading assistant turns, so turns alternate starting with the user.
pub fn alternate(turns: &[Turn]) -> Vec<Turn> {
    let mut out: Vec<Turn> = Vec::with_capacity(turns.len());
    for t in turns {
        if t.text.trim().is_empty() {
            continue;
        }
        match out.last_mut() {
            Some(last) if last.role == t.role => {
                last.text.push('\n');
                last.text.push_str(&t.text);
            }
            None if t.role == Role::Assistant => {}
            _ => out.push(t.clone()),
        }
    }
    out
}

/// Removes `<think>...</think>` sections; an unclosed `<think>` hides the rest.
/// Tags match in any case. Time is linear in the text, whatever it holds: a
/// hostile server may send a megabyte of empty tag pairs.
pub fn strip_think_tags(text: &str) -> String {
    const OPEN: &str = "<think>";
    const CLOSE: &str = "</think>";
    // ASCII lowercasing keeps every byte where it was, so an offset found in
    // `lower` cuts `text` at the same place (and on a char boundary).
    let lower = text.to_ascii_lowercase();
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    loop {
        let Some(start) = lower[at..].find(OPEN).map(|i| at + i) else {
            out.push_str(&text[at..]);
            break;
        };
        out.push_str(&text[at..start]);
        let after = start + OPEN.len();
        match lower[after..].find(CLOSE) {
            Some(end) => at = after + end + CLOSE.len(),
            None => break,
        }
    }
    // A model that starts with the closing tag (its template opened the block).
    match out.to_ascii_lowercase().find(CLOSE) {
        Some(end) => out[end + CLOSE.len()..].trim().to_owned(),
        None => out.trim().to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(role: Role, text: &str) -> Turn {
        Turn {
            role,
            text: text.into(),
        }
    }

    #[test]
    fn turns_alternate_and_start_with_the_user() {
        let turns = [
            t(Role::Assistant, "earlier me"),
            t(Role::User, "hi"),
            t(Role::User, "you there?"),
            t(Role::Assistant, "yes"),
            t(Role::Assistant, " "),
            t(Role::Assistant, "what's up"),
            t(Role::User, "dinner?"),
        ];
        let out = alternate(&turns);
        assert_eq!(
            out,
            [
                t(Role::User, "hi\nyou there?"),
                t(Role::Assistant, "yes\nwhat's up"),
                t(Role::User, "dinner?"),
            ]
        );
    }

    #[test]
    fn think_tags_are_removed() {
        assert_eq!(strip_think_tags("<think>hmm</think>\nsure!"), "sure!");
        assert_eq!(strip_think_tags("a <THINK>x</THINK>b"), "a b");
        assert_eq!(strip_think_tags("<think>never closed"), "");
        assert_eq!(strip_think_tags("reasoning...</think> ok then"), "ok then");
        assert_eq!(strip_think_tags("plain"), "plain");
        assert_eq!(strip_think_tags("é<Think>x</tHiNk>ü ok"), "éü ok");
        assert_eq!(strip_think_tags("<think>a</think>b</think>c"), "c");
    }

    /// The old search lowercased what was left of the text at every tag, which
    /// made a megabyte of empty pairs cost minutes in a debug build.
    #[test]
    fn a_megabyte_of_empty_think_pairs_strips_within_seconds() {
        let pair = "<think></think>";
        let text = pair.repeat((1 << 20) / pair.len()) + "ok";
        let started = std::time::Instant::now();
        let out = strip_think_tags(&text);
        let took = started.elapsed();
        assert_eq!(out, "ok");
        assert!(
            took < std::time::Duration::from_secs(2),
            "took {took:?} for {} bytes",
            text.len()
        );
    }
}
