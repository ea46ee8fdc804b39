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
pub fn strip_think_tags(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    loop {
        let Some(start) = find_ci(rest, "<think>") else {
            out.push_str(rest);
            break;
        };
        out.push_str(&rest[..start]);
        let after = &rest[start + "<think>".len()..];
        match find_ci(after, "</think>") {
            Some(end) => rest = &after[end + "</think>".len()..],
            None => break,
        }
    }
    // A model that starts with the closing tag (its template opened the block).
    match find_ci(&out, "</think>") {
        Some(end) => out[end + "</think>".len()..].trim().to_owned(),
        None => out.trim().to_owned(),
    }
}

fn find_ci(haystack: &str, needle: &str) -> Option<usize> {
    haystack.to_ascii_lowercase().find(needle)
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
    }
}
