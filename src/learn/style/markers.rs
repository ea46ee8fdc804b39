//! The habits a message shows in a word or two: laughs, greetings, sign-offs.
//!
//! Greetings and sign-offs are read from fixed lists (in English, Spanish,
//! Portuguese, French, German, Italian, Dutch and Finnish), compared without
//! case or accents, the last word allowed to stretch (`heyyy` is `hey`, `bjsss`
//! is `bjs`); the longest phrase wins (`good morning` over `morning`) and a
//! message counts once. A few words that are also common words elsewhere (`yo`
//! is Spanish for "I", `night` ends many sentences) count only when punctuation
//! or the message's edge sets them apart (`yo!`, `ok, night`).

use std::collections::HashMap;
use std::sync::LazyLock;

use crate::learn::words::{Kind, Token, normalize};

/// Laughing emoji.
const LAUGH_EMOJI: &[&str] = &["😂", "🤣", "😆", "😹"];
/// Laughs written as one fixed word.
const LAUGH_WORDS: &[&str] = &["lol", "lmao", "lmfao", "rofl", "mdr", "ptdr", "xd"];
/// Laughs written as a syllable said again and again (haha, jaja, rsrs...).
const SYLLABLES: &[[char; 2]] = &[
    ['h', 'a'],
    ['h', 'e'],
    ['h', 'i'],
    ['j', 'a'],
    ['j', 'e'],
    ['j', 'i'],
    ['r', 's'],
    ['j', 's'],
];
/// A repeated laugh is shown with at most this many syllables.
const MAX_SYLLABLES: usize = 5;
/// A `kkk` laugh is shown with at most this many letters.
const MAX_K: usize = 6;

/// The laugh `token` is, in a canonical spelling (`HAHAH` is `haha`, `ahahah`
/// is `hahaha`, `loool` is `lol`), or `None`.
pub fn laugh(token: &Token) -> Option<String> {
    let w = token.norm.as_str();
    if token.kind == Kind::Emoji {
        return LAUGH_EMOJI.contains(&w).then(|| w.to_owned());
    }
    let len = w.chars().count();
    if len >= 3 && w.chars().all(|c| c == 'k') {
        return Some("k".repeat(len.min(MAX_K)));
    }
    if let Some(unit) = SYLLABLES.iter().find(|unit| is_repeated(w, **unit)) {
        let times = (len / 2).min(MAX_SYLLABLES);
        return Some(unit.iter().collect::<String>().repeat(times));
    }
    let stretched = LAUGH_WORDS.iter().find(|l| w == **l || is_stretched(w, l));
    stretched
        .map(|l| (*l).to_owned())
        .or_else(|| is_lol(w).then(|| "lol".to_owned()))
}

/// `w` is made of the two letters of `unit` only, each at least twice, four
/// letters or more (`haha`, `ahah`, `hahaa`, but not `aha`).
fn is_repeated(w: &str, [x, y]: [char; 2]) -> bool {
    let (mut nx, mut ny) = (0, 0);
    for c in w.chars() {
        match c {
            c if c == x => nx += 1,
            c if c == y => ny += 1,
            _ => return false,
        }
    }
    nx >= 2 && ny >= 2
}

/// `w` is `lol` with its `o`s or `ol`s repeated (`lool`, `lolol`).
fn is_lol(w: &str) -> bool {
    let inner = w.strip_prefix('l').and_then(|r| r.strip_suffix('l'));
    inner.is_some_and(|i| i.contains('o') && i.chars().all(|c| c == 'o' || c == 'l'))
}

/// `w` is `word` with its last letter typed again (`heyyy` for `hey`).
fn is_stretched(w: &str, word: &str) -> bool {
    let Some(last) = word.chars().last() else {
        return false;
    };
    w.len() > word.len() && w.starts_with(word) && w[word.len()..].chars().all(|c| c == last)
}

/// One greeting or sign-off of a list.
struct Phrase {
    /// As shown: lowercase, with its accents.
    shown: &'static str,
    /// Its words, folded.
    words: Vec<String>,
    /// It counts only when set apart by punctuation or the message's edge.
    alone: bool,
}

/// A list's phrases by the first letter of the word a message is matched at
/// (the first word of a greeting, the last of a sign-off), longest (in words)
/// first.
struct Phrases(HashMap<char, Vec<Phrase>>);

/// The phrases of `list`, to be found at `edge`.
fn phrases(list: &[(&'static str, bool)], edge: Edge) -> Phrases {
    let mut by_initial: HashMap<char, Vec<Phrase>> = HashMap::new();
    for (shown, alone) in list {
        let words: Vec<String> = normalize(shown).split(' ').map(str::to_owned).collect();
        let initial = anchor(&words, edge, |w| w.as_str()).and_then(|w| w.chars().next());
        let phrase = Phrase {
            shown,
            words,
            alone: *alone,
        };
        by_initial
            .entry(initial.unwrap_or(' '))
            .or_default()
            .push(phrase);
    }
    for bucket in by_initial.values_mut() {
        bucket.sort_by(|a, b| {
            let longer = b.words.len().cmp(&a.words.len());
            longer.then(b.shown.len().cmp(&a.shown.len()))
        });
    }
    Phrases(by_initial)
}

/// The word at `edge` of `words`.
fn anchor<T>(words: &[T], edge: Edge, word: impl Fn(&T) -> &str) -> Option<&str> {
    let at = match edge {
        Edge::Start => words.first(),
        Edge::End => words.last(),
    };
    at.map(word)
}

/// Openings; `true` marks those that must stand apart.
static GREETINGS: LazyLock<Phrases> = LazyLock::new(|| {
    phrases(
        &[
            ("hi", false),
            ("hey", false),
            ("hello", false),
            ("hiya", false),
            ("heya", false),
            ("howdy", false),
            ("yo", true),
            ("oi", false),
            ("olá", false),
            ("ola", false),
            ("oie", false),
            ("e aí", false),
            ("eae", false),
            ("fala", true),
            ("alô", false),
            ("bom dia", false),
            ("boa tarde", false),
            ("boa noite", false),
            ("hola", false),
            ("holi", false),
            ("buenas", false),
            ("buenos días", false),
            ("buenas tardes", false),
            ("buenas noches", false),
            ("good morning", false),
            ("morning", false),
            ("good evening", false),
            ("ciao", false),
            ("buongiorno", false),
            ("buonasera", false),
            ("salve", false),
            ("salut", false),
            ("coucou", false),
            ("bonjour", false),
            ("bonsoir", false),
            ("hallo", false),
            ("moin", false),
            ("servus", false),
            ("guten morgen", false),
            ("guten tag", false),
            ("hoi", false),
            ("hey hey", false),
            ("goedemorgen", false),
            ("dag", true),
            ("hei", false),
            ("moi", true),
            ("moikka", false),
            ("terve", false),
            ("huomenta", false),
            ("hyvää huomenta", false),
            ("hej", false),
        ],
        Edge::Start,
    )
});

/// Closings; `true` marks those that must stand apart.
static SIGNOFFS: LazyLock<Phrases> = LazyLock::new(|| {
    phrases(
        &[
            ("bye", false),
            ("bye bye", false),
            ("cya", false),
            ("see you", false),
            ("see ya", false),
            ("see u", false),
            ("see you soon", false),
            ("see you later", false),
            ("later", true),
            ("laters", false),
            ("ttyl", false),
            ("x", false),
            ("xx", false),
            ("xxx", false),
            ("xoxo", false),
            ("love you", false),
            ("love u", false),
            ("ily", false),
            ("night", true),
            ("good night", false),
            ("gn", false),
            ("nighty night", false),
            ("sleep well", false),
            ("sweet dreams", false),
            ("take care", false),
            ("cheers", false),
            ("bj", false),
            ("bjs", false),
            ("bjo", false),
            ("bjos", false),
            ("beijo", false),
            ("beijos", false),
            ("beijão", false),
            ("abraço", false),
            ("abraços", false),
            ("abs", false),
            ("tchau", false),
            ("até logo", false),
            ("até amanhã", false),
            ("até mais", false),
            ("boa noite", false),
            ("chau", false),
            ("chao", false),
            ("adiós", false),
            ("hasta luego", false),
            ("hasta mañana", false),
            ("nos vemos", false),
            ("beso", false),
            ("besos", false),
            ("besitos", false),
            ("un beso", false),
            ("abrazo", false),
            ("abrazos", false),
            ("buenas noches", false),
            ("ciao", false),
            ("a dopo", false),
            ("buonanotte", false),
            ("un bacio", false),
            ("baci", false),
            ("à plus", false),
            ("à bientôt", false),
            ("à demain", false),
            ("bisous", false),
            ("bises", false),
            ("bonne nuit", false),
            ("tschüss", false),
            ("tschüs", false),
            ("bis dann", false),
            ("bis später", false),
            ("bis morgen", false),
            ("gute nacht", false),
            ("doei", false),
            ("tot straks", false),
            ("tot morgen", false),
            ("welterusten", false),
            ("hei hei", false),
            ("heippa", false),
            ("nähdään", false),
            ("hyvää yötä", false),
            ("öitä", false),
        ],
        Edge::End,
    )
});

/// The greeting `text` opens with, given its tokens.
pub fn greeting(text: &str, tokens: &[Token]) -> Option<&'static str> {
    find(text, tokens, &GREETINGS, Edge::Start)
}

/// The sign-off `text` closes with, given its tokens.
pub fn signoff(text: &str, tokens: &[Token]) -> Option<&'static str> {
    find(text, tokens, &SIGNOFFS, Edge::End)
}

/// Where a phrase is looked for.
#[derive(Clone, Copy)]
enum Edge {
    /// The first words.
    Start,
    /// The last words.
    End,
}

/// The first phrase of `list` that the words at `edge` read, exactly first and
/// then with the last word stretched.
fn find(text: &str, tokens: &[Token], list: &Phrases, edge: Edge) -> Option<&'static str> {
    let words: Vec<&Token> = tokens.iter().filter(|t| t.kind == Kind::Word).collect();
    let initial = anchor(&words, edge, |t| t.norm.as_str()).and_then(|w| w.chars().next());
    let list = list.0.get(&initial?)?;
    let place = |n: usize| -> Option<(&[&Token], bool)> {
        match edge {
            Edge::Start => {
                let head = words.get(..n)?;
                let apart = words
                    .get(n)
                    .is_none_or(|next| set_apart(text, head[n - 1], next));
                Some((head, apart))
            }
            Edge::End => {
                let from = words.len().checked_sub(n)?;
                let apart = from == 0 || set_apart(text, words[from - 1], words[from]);
                Some((&words[from..], apart))
            }
        }
    };
    let reads = |p: &Phrase, stretch: bool| {
        let Some((got, apart)) = place(p.words.len()) else {
            return false;
        };
        let last = p.words.len() - 1;
        let same = p.words.iter().zip(got).enumerate().all(|(i, (want, got))| {
            *want == got.norm || (stretch && i == last && is_stretched(&got.norm, want))
        });
        same && (apart || !p.alone)
    };
    let exact = list.iter().find(|p| reads(p, false));
    exact
        .or_else(|| list.iter().find(|p| reads(p, true)))
        .map(|p| p.shown)
}

/// Something other than spaces stands between the tokens `a` and `b`.
fn set_apart(text: &str, a: &Token, b: &Token) -> bool {
    text.get(a.span.end..b.span.start)
        .is_some_and(|gap| !gap.trim().is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::learn::words::tokens;

    fn laughs(text: &str) -> Vec<String> {
        tokens(text).iter().filter_map(laugh).collect()
    }

    fn open(text: &str) -> Option<&'static str> {
        greeting(text, &tokens(text))
    }

    fn close(text: &str) -> Option<&'static str> {
        signoff(text, &tokens(text))
    }

    #[test]
    fn laughs_are_found_in_their_canonical_spelling() {
        assert_eq!(
            laughs("HAHAHA ahah hehe jajaja kkkkkkkkkk rsrs LOL loool lmaooo xD 😂🤣 aha ok"),
            [
                "hahaha", "haha", "hehe", "jajaja", "kkkkkk", "rsrs", "lol", "lol", "lmao", "xd",
                "😂", "🤣"
            ]
        );
    }

    #[test]
    fn words_that_only_look_like_laughs_are_not_laughs() {
        assert!(laughs("aha haaa hah kk lolly lo ha ja hello").is_empty());
    }

    #[test]
    fn greetings_are_read_from_the_first_words() {
        assert_eq!(open("Hey John, how are you?"), Some("hey"));
        assert_eq!(open("heyyy"), Some("hey"));
        assert_eq!(open("Good morning!"), Some("good morning"));
        assert_eq!(open("morning all"), Some("morning"));
        assert_eq!(open("Bom dia, tudo bem?"), Some("bom dia"));
        assert_eq!(open("Buenos dias"), Some("buenos días"));
        assert_eq!(open("😊 oiii"), Some("oi"));
        assert_eq!(open("I said hi"), None);
    }

    #[test]
    fn an_ambiguous_greeting_counts_only_apart() {
        assert_eq!(open("yo quiero ir"), None);
        assert_eq!(open("yo, what's up"), Some("yo"));
        assert_eq!(open("Yo!"), Some("yo"));
    }

    #[test]
    fn signoffs_are_read_from_the_last_words() {
        assert_eq!(close("ok see you later!"), Some("see you later"));
        assert_eq!(close("love you ❤️"), Some("love you"));
        assert_eq!(close("thanks xxxx"), Some("xxx"));
        assert_eq!(close("Bjsss"), Some("bjs"));
        assert_eq!(close("até amanhã"), Some("até amanhã"));
        assert_eq!(close("what a night"), None);
        assert_eq!(close("ok, night"), Some("night"));
        assert_eq!(close("bye for now then"), None);
    }
}
