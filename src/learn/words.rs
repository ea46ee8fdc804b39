//! The words and emoji of a message, as the measures and the search compare
//! them: lowercase, accents folded (á → a, ç → c, ß kept), split on anything
//! that is neither a letter nor a digit; each emoji one token; each Chinese or
//! Japanese character one word (those scripts put no spaces between words).

use std::ops::Range;

use super::emoji;

/// What a token is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Letters and digits.
    Word,
    /// One emoji, in its canonical spelling.
    Emoji,
}

/// One token of a text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    /// A word or an emoji.
    pub kind: Kind,
    /// Where it is in the text, bytes.
    pub span: Range<usize>,
    /// Its comparable form: lowercase and folded, or the canonical emoji.
    pub norm: String,
}

/// Calls `f` with each token of `text` in order: its kind, its byte span and
/// its comparable form (valid during the call only, so nothing is allocated
/// per token).
pub fn scan(text: &str, mut f: impl FnMut(Kind, Range<usize>, &str)) {
    let mut word = String::new();
    let mut start = None;
    let mut at = 0;
    while let Some(c) = text[at..].chars().next() {
        if let Some(n) = emoji::len_at(&text[at..]) {
            flush(&mut word, &mut start, at, &mut f);
            f(
                Kind::Emoji,
                at..at + n,
                &emoji::canonical(&text[at..at + n]),
            );
            at += n;
            continue;
        }
        let next = at + c.len_utf8();
        if is_ideograph(c) {
            flush(&mut word, &mut start, at, &mut f);
            f(Kind::Word, at..next, &text[at..next]);
        } else if c.is_alphanumeric() {
            start.get_or_insert(at);
            word.extend(c.to_lowercase().map(fold));
        } else if !(is_combining_accent(c) && start.is_some()) {
            flush(&mut word, &mut start, at, &mut f);
        }
        at = next;
    }
    flush(&mut word, &mut start, at, &mut f);
}

/// The tokens of `text`, in order.
pub fn tokens(text: &str) -> Vec<Token> {
    let mut out = Vec::new();
    scan(text, |kind, span, norm| {
        out.push(Token {
            kind,
            span,
            norm: norm.to_owned(),
        })
    });
    out
}

/// Hands the word being read (if any) to `f`, ending at `end`.
fn flush(
    word: &mut String,
    start: &mut Option<usize>,
    end: usize,
    f: &mut impl FnMut(Kind, Range<usize>, &str),
) {
    if let Some(from) = start.take() {
        f(Kind::Word, from..end, word);
        word.clear();
    }
}

/// A Han, Hiragana or Katakana character: a word on its own.
fn is_ideograph(c: char) -> bool {
    matches!(c as u32, 0x3040..=0x30FF | 0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xF900..=0xFAFF)
}

/// An accent written as its own code point after its letter (decomposed text):
/// dropped, so `é` reads the same either way.
fn is_combining_accent(c: char) -> bool {
    matches!(c as u32, 0x0300..=0x036F)
}

/// A lowercase Latin letter without its accent.
fn fold(c: char) -> char {
    match c {
        'à' | 'á' | 'â' | 'ã' | 'ä' | 'å' | 'ā' | 'ă' | 'ą' => 'a',
        'ç' | 'ć' | 'č' | 'ĉ' | 'ċ' => 'c',
        'ď' | 'đ' => 'd',
        'è' | 'é' | 'ê' | 'ë' | 'ē' | 'ĕ' | 'ė' | 'ę' | 'ě' => 'e',
        'ğ' | 'ĝ' | 'ġ' | 'ģ' => 'g',
        'ì' | 'í' | 'î' | 'ï' | 'ĩ' | 'ī' | 'ĭ' | 'į' | 'ı' => 'i',
        'ł' | 'ľ' | 'ĺ' | 'ļ' => 'l',
        'ñ' | 'ń' | 'ň' | 'ņ' => 'n',
        'ò' | 'ó' | 'ô' | 'õ' | 'ö' | 'ø' | 'ō' | 'ŏ' | 'ő' => 'o',
        'ŕ' | 'ř' | 'ŗ' => 'r',
        'ś' | 'š' | 'ş' | 'ș' | 'ŝ' => 's',
        'ť' | 'ţ' | 'ț' => 't',
        'ù' | 'ú' | 'û' | 'ü' | 'ũ' | 'ū' | 'ŭ' | 'ů' | 'ű' | 'ų' => 'u',
        'ý' | 'ÿ' | 'ŷ' => 'y',
        'ź' | 'ż' | 'ž' => 'z',
        other => other,
    }
}

/// `s` lowercase with its accents folded, as the words of [`scan`] read.
pub fn normalize(s: &str) -> String {
    s.chars()
        .filter(|c| !is_combining_accent(*c))
        .flat_map(char::to_lowercase)
        .map(fold)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norms(text: &str) -> Vec<String> {
        tokens(text).into_iter().map(|t| t.norm).collect()
    }

    #[test]
    fn words_are_lowercase_and_folded_and_split_on_punctuation() {
        assert_eq!(
            norms("Olá, JOSÉ! Ça va? don't_stop 2day"),
            ["ola", "jose", "ca", "va", "don", "t", "stop", "2day"]
        );
    }

    #[test]
    fn a_decomposed_accent_folds_like_a_composed_one() {
        assert_eq!(norms("cafe\u{301} café"), ["cafe", "cafe"]);
    }

    #[test]
    fn emoji_are_tokens_of_their_own() {
        let toks = tokens("haha😂 ok👍🏽");
        let kinds: Vec<Kind> = toks.iter().map(|t| t.kind).collect();
        assert_eq!(kinds, [Kind::Word, Kind::Emoji, Kind::Word, Kind::Emoji]);
        assert_eq!(toks[1].norm, "😂");
        assert_eq!(toks[3].norm, "👍🏽");
    }

    #[test]
    fn spans_point_into_the_text() {
        let text = "¡Hola Ñandú!";
        let toks = tokens(text);
        assert_eq!(&text[toks[0].span.clone()], "Hola");
        assert_eq!(&text[toks[1].span.clone()], "Ñandú");
        assert_eq!(toks[1].norm, "nandu");
    }

    #[test]
    fn each_chinese_character_is_a_word() {
        assert_eq!(norms("我爱你 ok"), ["我", "爱", "你", "ok"]);
    }

    #[test]
    fn normalize_reads_like_scan() {
        assert_eq!(normalize("Buenos Días"), "buenos dias");
    }
}
