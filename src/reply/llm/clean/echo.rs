//! Whether a reply repeats the prompt: runs of words it shares with the system
//! prompt, measured, not looked up in a list of phrases.
//!
//! Both texts are cut into words (lowercase letters and digits; apostrophes
//! dropped, all else a separator) and compared as word n-grams ("shingles").
//! A persona's example message, or a past exchange of this chat, is the
//! person's own writing (or the contact's words, which a reply may echo):
//! runs that lie inside one example do not count, runs that cross from one
//! example into the next (a listing of them) do, and so does a reply quoting
//! long runs of several examples that no single one of them holds. The same
//! words written twice (the person thanked two people alike) are one example.

use std::collections::HashSet;

use super::Dropped;

/// Words in a row that, shared with the instructions, make a leak on their own.
/// Independent texts share a run this long only by quoting: chat replies
/// borrow idioms of four or five words ("check and get back to"), while an echo
/// of even one line of the prompt holds a dozen words.
const LONG_RUN: usize = 8;

/// Words in a row that count towards the share of a reply copied from the
/// instructions, for a paraphrase that keeps shorter pieces.
const SHORT_RUN: usize = 4;

/// Words in short runs a reply may share with the instructions however short it
/// is: a borrowed idiom and a name from the contact's profile stay under it.
const MIN_COPIED_WORDS: usize = 12;

/// The share of a reply's words in short runs from the instructions above
/// which (with [`MIN_COPIED_WORDS`]) it is a leak: one word in three.
const COPIED_SHARE: (usize, usize) = (1, 3);

/// Why `reply` was dropped when it repeats `system` (the system prompt sent):
/// a run of [`LONG_RUN`] words of it outside any single example message, a
/// third of its words in shorter runs of it, or long runs of several examples
/// that no single example holds all of.
pub fn repeats_the_prompt(reply: &str, system: &str, examples: &[String]) -> Option<Dropped> {
    let reply = words(reply);
    if reply.len() < SHORT_RUN {
        return None;
    }
    let prompt = words(system);
    let examples: Vec<Vec<String>> = examples.iter().map(|e| words(e)).collect();
    let long = outside_examples(&prompt, &examples, LONG_RUN);
    if reply.windows(LONG_RUN).any(|run| long.contains(run)) {
        return Some("repeats its instructions (a long run of words of the system prompt)");
    }
    let short = outside_examples(&prompt, &examples, SHORT_RUN);
    let copied = covered(&reply, &short, SHORT_RUN);
    let (num, den) = COPIED_SHARE;
    if copied >= MIN_COPIED_WORDS && copied * den >= reply.len() * num {
        return Some("repeats its instructions (much of it in runs of words of the system prompt)");
    }
    quotes_several(&reply, &examples).then_some("repeats the persona's example messages")
}

/// Whether the long runs of `reply` found in examples come from more than one
/// example: no single example holds every one of them (identical or nested
/// examples hold the same runs, so they count as one).
fn quotes_several(reply: &[String], examples: &[Vec<String>]) -> bool {
    let runs: Vec<&[String]> = reply.windows(LONG_RUN).collect();
    let held_by = |e: &Vec<String>| -> Vec<bool> {
        let own: HashSet<&[String]> = e.windows(LONG_RUN).collect();
        runs.iter().map(|run| own.contains(run)).collect()
    };
    let holds: Vec<Vec<bool>> = examples.iter().map(held_by).collect();
    let quoted: Vec<bool> = (0..runs.len())
        .map(|i| holds.iter().any(|h| h[i]))
        .collect();
    quoted.contains(&true) && !holds.contains(&quoted)
}

/// The words of `text` as compared: lowercase runs of letters and digits, an
/// apostrophe inside a word dropped ("you'll" and "you’ll" are "youll").
fn words(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut word = String::new();
    for c in text.chars() {
        if c.is_alphanumeric() {
            word.extend(c.to_lowercase());
        } else if matches!(c, '\'' | '\u{2019}') && !word.is_empty() {
            continue;
        } else if !word.is_empty() {
            out.push(std::mem::take(&mut word));
        }
    }
    if !word.is_empty() {
        out.push(word);
    }
    out
}

/// The `n`-word runs of `prompt` that do not lie inside one example.
fn outside_examples<'a>(
    prompt: &'a [String],
    examples: &[Vec<String>],
    n: usize,
) -> HashSet<&'a [String]> {
    let own: HashSet<&[String]> = examples.iter().flat_map(|e| e.windows(n)).collect();
    prompt.windows(n).filter(|run| !own.contains(run)).collect()
}

/// How many words of `reply` lie in an `n`-word run found in `runs`.
fn covered(reply: &[String], runs: &HashSet<&[String]>, n: usize) -> usize {
    let mut hit = vec![false; reply.len()];
    for (i, run) in reply.windows(n).enumerate() {
        if runs.contains(run) {
            hit[i..i + n].iter_mut().for_each(|h| *h = true);
        }
    }
    hit.into_iter().filter(|&h| h).count()
}
