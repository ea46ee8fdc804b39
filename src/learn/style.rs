//! How the owner writes, measured from their own text messages.
//!
//! A [`Tally`] holds counts only (lengths and reply times as histograms), so
//! the tallies of several chats add up and the profile of the sum is exactly
//! the profile of all their messages together.
//!
//! What each measure counts:
//! - the samples are the owner's text messages (not media, not deleted ones),
//!   each trimmed of surrounding white space; lengths are in characters;
//! - `median_chars` and `p90_chars` are nearest-rank percentiles: the p-th
//!   percentile of n sorted values is the one at rank ⌈p·n/100⌉ (so the median
//!   of an even count is the lower middle value, always a length that occurs);
//! - `starts_lowercase` is among the messages whose first letter has a case
//!   (a message in a script without case, or without letters, is not counted);
//! - `ends_with_period`: the last character is a single `.` (not `..` or `...`);
//! - exclamations and questions count `!` `！` and `?` `？` (`‼` `⁇` as two,
//!   `⁉` `⁈` as one of each); the Spanish opening `¡` `¿` are not counted, so
//!   `¡hola!` has one exclamation like `hola!`;
//! - `ellipsis_share`: messages with `...` or `…`;
//! - emoji are counted as [`super::emoji`] reads them (👍🏽 and 🇧🇷 are one each);
//! - laughs, greetings and sign-offs as [`markers`] reads them; languages as
//!   [`super::language`] reads them, a language listed when it is at least a
//!   tenth of the messages whose language was found;
//! - a turn is a run of the owner's consecutive messages of any kind in a chat
//!   (each text counts as its own turn without a chat);
//! - the reply time is measured for each of the owner's turns that follows a
//!   line of the contact, from that line to the turn's first message, rounded
//!   to the second and then to two significant digits (1234 s counts as
//!   1200 s); a gap over a day is a new conversation, not a reply, and a
//!   negative one (lines out of order) is not counted.

mod markers;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::words::{self, Kind, Token};
use super::{ChatLine, LineKind, language};

/// Longer gaps are a new conversation, not a reply, ms.
pub const REPLY_WINDOW_MS: i64 = 24 * 60 * 60 * 1000;
/// Entries of the top lists.
const TOP: usize = 5;
/// A language is listed from this share of the messages whose language was found.
const LANGUAGE_SHARE: f64 = 0.1;

/// The owner's style, as `secondme style --json` prints it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StyleProfile {
    /// Text messages measured.
    pub samples: u64,
    /// Median length, characters.
    pub median_chars: f64,
    /// 90th percentile length, characters.
    pub p90_chars: f64,
    /// Emoji per message.
    pub emoji_per_message: f64,
    /// Most used emoji, most first.
    pub top_emoji: Vec<String>,
    /// Share of messages whose first letter is lowercase.
    pub starts_lowercase: f64,
    /// Share of messages ending with a period.
    pub ends_with_period: f64,
    /// `!` per message.
    pub exclamations_per_message: f64,
    /// `?` per message.
    pub questions_per_message: f64,
    /// Share of messages with an ellipsis (`...` or `…`).
    pub ellipsis_share: f64,
    /// Laughs (haha, lol, jaja, kkk, 😂...) per message.
    pub laughter_per_message: f64,
    /// Most used laughs, most first.
    pub top_laughter: Vec<String>,
    /// Most used openings (hi, hey, oi...), most first.
    pub top_greetings: Vec<String>,
    /// Most used closings (bye, xx, bjs...), most first.
    pub top_signoffs: Vec<String>,
    /// Languages written, ISO 639-1 codes, most used first.
    pub languages: Vec<String>,
    /// Share of the owner's turns with several messages in a row.
    pub several_in_a_row: f64,
    /// Messages per turn, on average.
    pub messages_per_turn: f64,
    /// The owner's median reply time, seconds (from the timestamps).
    pub reply_time_median_s: Option<f64>,
}

/// How often each value was seen.
type Counts<K> = BTreeMap<K, u64>;

/// Counts from which a profile is computed; tallies of several chats merge.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Tally {
    /// Text messages measured.
    samples: u64,
    /// Messages by length in characters.
    #[serde(skip_serializing_if = "Counts::is_empty")]
    lengths: Counts<u32>,
    /// Emoji seen.
    emoji: u64,
    /// Each emoji's count.
    #[serde(skip_serializing_if = "Counts::is_empty")]
    top_emoji: Counts<String>,
    /// Messages whose first letter has a case.
    cased: u64,
    /// ... and is lowercase.
    lowercase: u64,
    /// Messages ending with a single period.
    period: u64,
    /// Exclamation marks.
    exclamations: u64,
    /// Question marks.
    questions: u64,
    /// Messages with an ellipsis.
    ellipsis: u64,
    /// Laughs seen.
    laughs: u64,
    /// Each laugh's count.
    #[serde(skip_serializing_if = "Counts::is_empty")]
    laughter: Counts<String>,
    /// Each greeting's count.
    #[serde(skip_serializing_if = "Counts::is_empty")]
    greetings: Counts<String>,
    /// Each sign-off's count.
    #[serde(skip_serializing_if = "Counts::is_empty")]
    signoffs: Counts<String>,
    /// Messages by language found.
    #[serde(skip_serializing_if = "Counts::is_empty")]
    languages: Counts<String>,
    /// The owner's turns.
    turns: u64,
    /// Messages in those turns.
    turn_messages: u64,
    /// Turns of several messages.
    multi_turns: u64,
    /// Reply times, seconds (two significant digits).
    #[serde(skip_serializing_if = "Counts::is_empty")]
    reply_s: Counts<u64>,
}

impl Tally {
    /// Counts one chat, in order (the contact's lines give turns and reply times).
    pub fn add_chat(&mut self, lines: &[ChatLine]) {
        let mut before: Option<&ChatLine> = None;
        for run in lines.chunk_by(|a, b| a.me == b.me) {
            if run[0].me {
                self.add_turn(run.len());
                if let Some(seconds) = before.and_then(|contact| reply_seconds(contact, &run[0])) {
                    inc(self.reply_s.entry(seconds).or_default(), 1);
                }
                let texts = run.iter().filter(|l| l.kind == LineKind::Text);
                texts.for_each(|l| self.add_text(&l.text));
            }
            before = run.last();
        }
    }

    /// Counts messages without a chat around them (generated replies in an eval).
    pub fn add_texts<'a>(&mut self, texts: impl IntoIterator<Item = &'a str>) {
        for text in texts {
            self.add_turn(1);
            self.add_text(text);
        }
    }

    /// Adds another tally's counts (saturating: a count read from Redis may
    /// be anything).
    pub fn merge(&mut self, other: &Tally) {
        self.combine(other, u64::saturating_add);
    }

    /// Takes another tally's counts away, each at least 0; a key counted 0
    /// is dropped, so the result equals the tally of what is left.
    pub fn subtract(&mut self, other: &Tally) {
        self.combine(other, u64::saturating_sub);
    }

    /// What appending `line` to a chat ending with `before` (its last lines,
    /// two are enough) adds to the chat's counts.
    pub fn appended(before: &[ChatLine], line: &ChatLine) -> Tally {
        let from = before.len().saturating_sub(2);
        let mut with = before[from..].to_vec();
        with.push(line.clone());
        Self::difference(&with, &before[from..])
    }

    /// What dropping `dropped`, the oldest lines of a chat, takes from the
    /// chat's counts; `after` are the lines that follow them (two are enough).
    pub fn dropped(dropped: &[ChatLine], after: &[ChatLine]) -> Tally {
        let after = &after[..after.len().min(2)];
        let mut with = dropped.to_vec();
        with.extend_from_slice(after);
        Self::difference(&with, after)
    }

    /// The counts of chat `more` less those of chat `less`.
    fn difference(more: &[ChatLine], less: &[ChatLine]) -> Tally {
        let mut delta = Tally::default();
        delta.add_chat(more);
        let mut minus = Tally::default();
        minus.add_chat(less);
        delta.subtract(&minus);
        delta
    }

    /// Each count of `self` and `other` put together by `op`.
    fn combine(&mut self, other: &Tally, op: fn(u64, u64) -> u64) {
        let scalars = [
            (&mut self.samples, other.samples),
            (&mut self.emoji, other.emoji),
            (&mut self.cased, other.cased),
            (&mut self.lowercase, other.lowercase),
            (&mut self.period, other.period),
            (&mut self.exclamations, other.exclamations),
            (&mut self.questions, other.questions),
            (&mut self.ellipsis, other.ellipsis),
            (&mut self.laughs, other.laughs),
            (&mut self.turns, other.turns),
            (&mut self.turn_messages, other.turn_messages),
            (&mut self.multi_turns, other.multi_turns),
        ];
        for (mine, theirs) in scalars {
            *mine = op(*mine, theirs);
        }
        combine_counts(&mut self.lengths, &other.lengths, op);
        combine_counts(&mut self.top_emoji, &other.top_emoji, op);
        combine_counts(&mut self.laughter, &other.laughter, op);
        combine_counts(&mut self.greetings, &other.greetings, op);
        combine_counts(&mut self.signoffs, &other.signoffs, op);
        combine_counts(&mut self.languages, &other.languages, op);
        combine_counts(&mut self.reply_s, &other.reply_s, op);
    }

    /// The profile these counts give.
    pub fn profile(&self) -> StyleProfile {
        let per_message = |n: u64| ratio(n, self.samples);
        let found = self
            .languages
            .values()
            .fold(0u64, |all, n| all.saturating_add(*n));
        let languages = top(&self.languages, usize::MAX)
            .into_iter()
            .filter(|lang| ratio(self.languages[lang], found) >= LANGUAGE_SHARE)
            .collect();
        StyleProfile {
            samples: self.samples,
            median_chars: percentile(&self.lengths, 50).map_or(0.0, f64::from),
            p90_chars: percentile(&self.lengths, 90).map_or(0.0, f64::from),
            emoji_per_message: per_message(self.emoji),
            top_emoji: top(&self.top_emoji, TOP),
            starts_lowercase: ratio(self.lowercase, self.cased),
            ends_with_period: per_message(self.period),
            exclamations_per_message: per_message(self.exclamations),
            questions_per_message: per_message(self.questions),
            ellipsis_share: per_message(self.ellipsis),
            laughter_per_message: per_message(self.laughs),
            top_laughter: top(&self.laughter, TOP),
            top_greetings: top(&self.greetings, TOP),
            top_signoffs: top(&self.signoffs, TOP),
            languages,
            several_in_a_row: ratio(self.multi_turns, self.turns),
            messages_per_turn: ratio(self.turn_messages, self.turns),
            reply_time_median_s: percentile(&self.reply_s, 50).map(|s| s as f64),
        }
    }

    /// Counts one turn of `messages` messages.
    fn add_turn(&mut self, messages: usize) {
        self.turns = self.turns.saturating_add(1);
        self.turn_messages = self.turn_messages.saturating_add(messages as u64);
        self.multi_turns = self.multi_turns.saturating_add(u64::from(messages >= 2));
    }

    /// Counts one text message.
    fn add_text(&mut self, text: &str) {
        let text = text.trim();
        inc(&mut self.samples, 1);
        let chars = u32::try_from(text.chars().count()).unwrap_or(u32::MAX);
        inc(self.lengths.entry(chars).or_default(), 1);
        self.add_punctuation(text);
        let tokens = words::tokens(text);
        self.add_tokens(&tokens);
        bump(&mut self.greetings, markers::greeting(text, &tokens));
        bump(&mut self.signoffs, markers::signoff(text, &tokens));
        let found = language::detect(
            tokens
                .iter()
                .filter(|t| t.kind == Kind::Word)
                .map(|t| t.norm.as_str()),
        );
        bump(&mut self.languages, found);
    }

    /// Counts what a message's characters show: case, period, marks, ellipsis.
    fn add_punctuation(&mut self, text: &str) {
        if let Some(first) = text.chars().find(|c| c.is_alphabetic()) {
            inc(
                &mut self.cased,
                u64::from(first.is_lowercase() || first.is_uppercase()),
            );
            inc(&mut self.lowercase, u64::from(first.is_lowercase()));
        }
        inc(
            &mut self.period,
            u64::from(text.ends_with('.') && !text.ends_with("..")),
        );
        for c in text.chars() {
            let (exclamations, questions) = marks(c);
            inc(&mut self.exclamations, exclamations);
            inc(&mut self.questions, questions);
        }
        inc(
            &mut self.ellipsis,
            u64::from(text.contains("...") || text.contains('…')),
        );
    }

    /// Counts a message's emoji and laughs.
    fn add_tokens(&mut self, tokens: &[Token]) {
        for token in tokens {
            if token.kind == Kind::Emoji {
                inc(&mut self.emoji, 1);
                bump(&mut self.top_emoji, Some(token.norm.as_str()));
            }
            if let Some(laugh) = markers::laugh(token) {
                inc(&mut self.laughs, 1);
                bump(&mut self.laughter, Some(laugh.as_str()));
            }
        }
    }
}

/// The exclamation and question marks `c` stands for.
fn marks(c: char) -> (u64, u64) {
    match c {
        '!' | '！' => (1, 0),
        '?' | '？' => (0, 1),
        '‼' => (2, 0),
        '⁇' => (0, 2),
        '⁉' | '⁈' => (1, 1),
        _ => (0, 0),
    }
}

/// The owner's reply time in seconds (two significant digits), when `mine`
/// answers the contact's `theirs` within a day.
fn reply_seconds(theirs: &ChatLine, mine: &ChatLine) -> Option<u64> {
    let gap = mine.ts.checked_sub(theirs.ts)?;
    if !(0..=REPLY_WINDOW_MS).contains(&gap) {
        return None;
    }
    let seconds = u64::try_from((gap + 500) / 1000).ok()?;
    Some(two_digits(seconds))
}

/// `n` rounded to two significant digits (half up).
fn two_digits(n: u64) -> u64 {
    let mut unit = 1;
    while n / unit >= 100 {
        unit *= 10;
    }
    (n + unit / 2) / unit * unit
}

/// Adds `by` to a count, saturating: counts may come from a stored tally.
fn inc(n: &mut u64, by: u64) {
    *n = n.saturating_add(by);
}

/// Adds one to `key`'s count, if there is a key.
fn bump(counts: &mut Counts<String>, key: Option<&str>) {
    if let Some(key) = key {
        match counts.get_mut(key) {
            Some(n) => inc(n, 1),
            None => {
                counts.insert(key.to_owned(), 1);
            }
        }
    }
}

/// `other`'s counts put into `into` by `op`; a key left at 0 is dropped.
fn combine_counts<K: Ord + Clone>(
    into: &mut Counts<K>,
    other: &Counts<K>,
    op: fn(u64, u64) -> u64,
) {
    for (key, n) in other {
        let entry = into.entry(key.clone()).or_default();
        *entry = op(*entry, *n);
        if *entry == 0 {
            into.remove(key);
        }
    }
}

/// `n / of`, 0 when there is nothing to divide.
fn ratio(n: u64, of: u64) -> f64 {
    if of == 0 { 0.0 } else { n as f64 / of as f64 }
}

/// The nearest-rank `p`-th percentile (0 < p ≤ 100) of the counted values: the
/// value at rank ⌈p·n/100⌉ of the n values in order; `None` when there are none.
fn percentile<K: Copy>(counts: &Counts<K>, p: u64) -> Option<K> {
    let n = counts.values().fold(0u64, |all, c| all.saturating_add(*c));
    // In u128: p·n cannot overflow, whatever a stored count says.
    let rank = (u128::from(p) * u128::from(n)).div_ceil(100).max(1);
    let mut seen = 0u128;
    counts.iter().find_map(|(value, count)| {
        seen += u128::from(*count);
        (seen >= rank).then_some(*value)
    })
}

/// The `k` most counted keys, most first (ties in key order).
fn top(counts: &Counts<String>, k: usize) -> Vec<String> {
    let mut ranked: Vec<(&String, &u64)> = counts.iter().collect();
    ranked.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    ranked
        .into_iter()
        .take(k)
        .map(|(key, _)| key.clone())
        .collect()
}

#[cfg(test)]
mod tests;
