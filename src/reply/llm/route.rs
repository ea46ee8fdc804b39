//! Which model answers: a cheap local heuristic, no classifier call.

use crate::reply::input::ContactContext;

/// Where a message goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// Greetings, thanks, emoji, "ok": the fast model with a small cap (or the template engine).
    Phatic,
    /// Questions, plans, anything about someone or something the graph knows: the strong model.
    Substantive,
}

/// Words a phatic message is made of (lowercase ASCII; emoji are handled apart).
const PHATIC_WORDS: &[&str] = &[
    "ok",
    "okay",
    "okey",
    "k",
    "kk",
    "oki",
    "lol",
    "lmao",
    "haha",
    "hahaha",
    "hehe",
    "thanks",
    "thank",
    "you",
    "thx",
    "ty",
    "tysm",
    "cool",
    "nice",
    "great",
    "sure",
    "yes",
    "yep",
    "yeah",
    "yup",
    "no",
    "nope",
    "np",
    "hi",
    "hey",
    "heya",
    "hello",
    "yo",
    "bye",
    "cya",
    "night",
    "good",
    "morning",
    "evening",
    "afternoon",
    "gn",
    "gm",
    "so",
    "much",
    "a",
    "lot",
    "alright",
    "fine",
    "perfect",
    "awesome",
    "got",
    "it",
    "noted",
    "sounds",
    "see",
    "later",
    "cheers",
    "welcome",
    "congrats",
    "wow",
    "omg",
    "aw",
    "aww",
    "xo",
    "xoxo",
    "love",
    "ciao",
    "hola",
    "gracias",
    "merci",
    "danke",
    "obrigado",
    "obrigada",
    "oi",
    "salut",
    "bonjour",
    "hallo",
    "ja",
    "si",
    "sí",
];

/// Longest phatic message, in words.
const MAX_PHATIC_WORDS: usize = 4;

/// Routes `text` from a contact the graph describes as `context`.
pub fn route(text: &str, context: Option<&ContactContext>) -> Route {
    let text = text.trim();
    if text.is_empty() || text.contains('?') || names_something_known(text, context) {
        return Route::Substantive;
    }
    if is_emoji_only(text) || is_phatic_words(text) {
        Route::Phatic
    } else {
        Route::Substantive
    }
}

/// True when the text has no letter or digit at all (emoji, "!!", "<3").
fn is_emoji_only(text: &str) -> bool {
    !text.chars().any(char::is_alphanumeric)
}

fn is_phatic_words(text: &str) -> bool {
    let words: Vec<String> = text
        .split_whitespace()
        .map(|w| {
            w.trim_matches(|c: char| !c.is_alphanumeric())
                .to_lowercase()
        })
        .filter(|w| !w.is_empty())
        .collect();
    !words.is_empty()
        && words.len() <= MAX_PHATIC_WORDS
        && words
            .iter()
            .all(|w| PHATIC_WORDS.contains(&w.as_str()) || is_laugh(w))
}

/// "hahahaha", "jajaja", "kkkk", "rsrs".
fn is_laugh(word: &str) -> bool {
    word.len() >= 4
        && (word.chars().all(|c| matches!(c, 'h' | 'a' | 'j' | 'e'))
            || word.chars().all(|c| c == 'k')
            || word.chars().all(|c| matches!(c, 'r' | 's')))
}

/// Whether the text names a person, company or topic from the contact's graph.
fn names_something_known(text: &str, context: Option<&ContactContext>) -> bool {
    let Some(c) = context else {
        return false;
    };
    let lower = text.to_lowercase();
    let people = c.people.iter().flat_map(|p| {
        let first = p.name.split_whitespace().next();
        [Some(p.name.as_str()), first, p.company.as_deref()]
    });
    people
        .flatten()
        .chain(c.topics.iter().map(String::as_str))
        .filter(|n| n.chars().count() >= 3)
        .any(|n| contains_word(&lower, &n.to_lowercase()))
}

/// `needle` in `haystack` on word boundaries ("Ana" is not in "banana").
fn contains_word(haystack: &str, needle: &str) -> bool {
    haystack.match_indices(needle).any(|(i, _)| {
        let before = haystack[..i].chars().next_back();
        let after = haystack[i + needle.len()..].chars().next();
        !before.is_some_and(char::is_alphanumeric) && !after.is_some_and(char::is_alphanumeric)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reply::input::ContactPerson;

    fn context() -> ContactContext {
        ContactContext {
            name: Some("Maria".into()),
            relationship_type: "friend".into(),
            people: vec![ContactPerson {
                name: "Ana Souza".into(),
                occupation: None,
                company: Some("Acme".into()),
            }],
            topics: vec!["climbing".into()],
        }
    }

    #[test]
    fn greetings_thanks_emoji_and_acks_are_phatic() {
        for text in [
            "ok",
            "Thanks!",
            "thank you so much",
            "good morning ☀️",
            "👍",
            "❤️❤️",
            "haha ok",
            "hahahahaha",
            "kk",
            "sounds good",
            "got it",
            "ciao",
            "!!",
        ] {
            assert_eq!(route(text, None), Route::Phatic, "{text}");
        }
    }

    #[test]
    fn questions_plans_and_longer_messages_are_substantive() {
        for text in [
            "ok?",
            "are you free tomorrow",
            "let's meet at 7 at the station",
            "thanks, can you send me the file",
            "ok ok ok ok ok",
            "",
        ] {
            assert_eq!(route(text, None), Route::Substantive, "{text}");
        }
    }

    #[test]
    fn naming_someone_or_something_from_the_graph_is_substantive() {
        let c = context();
        assert_eq!(route("thanks ana", Some(&c)), Route::Substantive);
        assert_eq!(route("climbing!", Some(&c)), Route::Substantive);
        assert_eq!(route("acme 👍", Some(&c)), Route::Substantive);
        assert_eq!(
            route("banana", Some(&c)),
            Route::Substantive,
            "not phatic anyway"
        );
        assert_eq!(route("thanks", Some(&c)), Route::Phatic);
        assert!(!contains_word("banana split", "ana"));
    }
}
