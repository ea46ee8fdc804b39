//! Which language a message is written in, from its common small words: each
//! language has a list of words that are frequent in chat and rare elsewhere;
//! a message is counted for the language whose list it uses most.

use std::cmp::Reverse;
use std::collections::HashMap;
use std::sync::LazyLock;

use super::words::normalize;

/// Words a message needs before its language is guessed.
const MIN_WORDS: usize = 3;
/// Listed words a message needs in its language.
const MIN_HITS: u32 = 2;

/// The languages told apart (ISO 639-1) and their common words. A word in two
/// lists counts for both, so it never decides between them.
const LANGUAGES: &[(&str, &[&str])] = &[
    (
        "en",
        &[
            "the", "and", "you", "is", "are", "to", "it", "that", "of", "in", "my", "what", "have",
            "this", "with", "for", "not", "was", "so", "just", "can", "be", "we", "do", "your",
            "but", "don", "im", "know", "will", "at", "how", "about", "good", "yes", "yeah",
            "where", "when", "there", "get", "going", "love", "thanks", "think", "did", "would",
            "he", "she", "they", "if", "all", "too", "now", "today", "tomorrow", "i",
        ],
    ),
    (
        "es",
        &[
            "el", "la", "los", "las", "que", "de", "y", "es", "está", "pero", "muy", "yo", "tú",
            "con", "para", "por", "qué", "cómo", "también", "bien", "hay", "estoy", "eres", "soy",
            "lo", "una", "un", "hola", "gracias", "vale", "ya", "nada", "mucho", "ahora", "hoy",
            "mañana", "bueno", "creo", "porque", "tengo", "tienes", "vamos", "del", "al", "sí",
            "quieres", "dónde", "cuando", "te", "me", "mi", "en", "no",
        ],
    ),
    (
        "pt",
        &[
            "o", "os", "as", "do", "da", "dos", "das", "não", "você", "vc", "tá", "eu", "meu",
            "minha", "com", "em", "um", "uma", "muito", "bem", "sim", "obrigado", "obrigada",
            "também", "isso", "isto", "aqui", "ele", "ela", "estou", "vou", "pra", "pro", "tudo",
            "agora", "hoje", "amanhã", "beleza", "então", "ainda", "fazer", "que", "de", "e", "no",
            "na", "tem", "mas", "te", "me", "se", "quando", "onde", "porque", "é",
        ],
    ),
    (
        "fr",
        &[
            "le", "la", "je", "tu", "il", "elle", "les", "des", "est", "et", "pas", "oui", "non",
            "suis", "mais", "avec", "pour", "dans", "sur", "ce", "ça", "on", "nous", "vous",
            "très", "merci", "bonjour", "quoi", "qui", "au", "du", "une", "un", "moi", "toi",
            "aussi", "fait", "que", "de", "en", "ai", "as", "c", "j", "t", "ne", "demain",
            "aujourd", "hui", "bien", "chez", "peux", "veux",
        ],
    ),
    (
        "de",
        &[
            "der", "die", "das", "und", "ich", "du", "ist", "nicht", "ein", "eine", "mit", "auf",
            "für", "zu", "den", "dem", "sie", "wir", "ihr", "ja", "nein", "aber", "auch", "noch",
            "schon", "mal", "bin", "bist", "hast", "habe", "was", "wie", "gut", "danke", "doch",
            "jetzt", "heute", "morgen", "wo", "dass", "mir", "dich", "dir", "mich", "es", "kann",
            "kannst", "wann", "sehr", "hab", "gerne", "oder", "so",
        ],
    ),
    (
        "it",
        &[
            "il", "lo", "gli", "che", "di", "e", "è", "non", "sono", "sei", "ho", "hai", "ma",
            "per", "con", "una", "un", "mi", "ti", "ci", "si", "anche", "molto", "bene", "grazie",
            "ciao", "cosa", "come", "questo", "quello", "perché", "oggi", "domani", "della", "del",
            "nel", "alla", "sì", "io", "tu", "noi", "voi", "lui", "lei", "va", "fatto", "la", "le",
            "in", "allora", "dove", "quando", "tutto",
        ],
    ),
    (
        "nl",
        &[
            "de", "het", "een", "en", "ik", "je", "jij", "is", "niet", "dat", "van", "op", "te",
            "met", "voor", "maar", "ook", "nog", "wel", "heb", "hebt", "zijn", "was", "wat", "hoe",
            "waar", "ja", "nee", "goed", "dank", "bedankt", "hoi", "mijn", "naar", "dit", "die",
            "er", "al", "kan", "ben", "even", "gaan", "leuk", "morgen", "jou", "jullie", "we",
            "wij", "zo", "nu", "vandaag", "komt", "kom",
        ],
    ),
    (
        "fi",
        &[
            "ja",
            "on",
            "ei",
            "että",
            "se",
            "mä",
            "sä",
            "mitä",
            "minä",
            "sinä",
            "hän",
            "me",
            "te",
            "he",
            "kun",
            "niin",
            "mutta",
            "tai",
            "jos",
            "oli",
            "olen",
            "olet",
            "ole",
            "kiitos",
            "moi",
            "joo",
            "juu",
            "nyt",
            "vaan",
            "vai",
            "myös",
            "tänään",
            "huomenna",
            "hyvä",
            "miten",
            "missä",
            "tää",
            "kyllä",
            "sitten",
            "vielä",
            "eikä",
            "mun",
            "sun",
            "mulla",
            "sulla",
            "voit",
            "voin",
            "tuu",
            "tuun",
            "kanssa",
            "onko",
            "ootko",
            "mikä",
        ],
    ),
];

/// Each listed word (folded) and the languages it belongs to, as bits.
static WORDS: LazyLock<HashMap<String, u8>> = LazyLock::new(|| {
    let mut map = HashMap::new();
    for (bit, (_, words)) in LANGUAGES.iter().enumerate() {
        for word in *words {
            *map.entry(normalize(word)).or_insert(0) |= 1 << bit;
        }
    }
    map
});

/// The language of a message from its words (lowercase, folded), if they are
/// enough (at least three, two of them in one language's list) and one
/// language uses strictly more of them than any other.
pub fn detect<'a>(words: impl IntoIterator<Item = &'a str>) -> Option<&'static str> {
    let mut hits = [0u32; LANGUAGES.len()];
    let mut count = 0;
    for word in words {
        count += 1;
        let Some(bits) = WORDS.get(word) else {
            continue;
        };
        for (bit, hit) in hits.iter_mut().enumerate() {
            *hit += u32::from(bits >> bit & 1);
        }
    }
    let mut ranked: Vec<(u32, usize)> = hits.iter().enumerate().map(|(i, h)| (*h, i)).collect();
    ranked.sort_unstable_by_key(|r| Reverse(r.0));
    let (best, lang) = ranked[0];
    let clear = best >= MIN_HITS && best > ranked[1].0 && count >= MIN_WORDS;
    clear.then(|| LANGUAGES[lang].0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::learn::words::tokens;

    fn lang(text: &str) -> Option<&'static str> {
        let toks = tokens(text);
        detect(toks.iter().map(|t| t.norm.as_str()))
    }

    #[test]
    fn each_language_is_told_from_a_chat_line() {
        let cases = [
            ("I think you are right about that", "en"),
            ("no sé, creo que está bien para mañana", "es"),
            ("você já está em casa? tô indo agora", "pt"),
            ("je suis pas sûr, on verra demain", "fr"),
            ("ich bin heute nicht da, aber morgen schon", "de"),
            ("non lo so, ci vediamo domani allora", "it"),
            ("ik ben er morgen niet, maar het is goed", "nl"),
            ("mä en tiedä, onko se huomenna vai ei", "fi"),
        ];
        for (text, want) in cases {
            assert_eq!(lang(text), Some(want), "{text}");
        }
    }

    #[test]
    fn short_or_unknown_text_has_no_language() {
        assert_eq!(lang("ok"), None);
        assert_eq!(lang("the end"), None);
        assert_eq!(lang("xyzzy plugh frobnicate"), None);
    }
}
