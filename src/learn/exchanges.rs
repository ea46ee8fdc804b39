//! A chat as exchanges: what the contact wrote and what the owner answered.
//!
//! The chat is cut into runs of one author's consecutive lines (of any kind).
//! Each run of the contact followed by a run of the owner is one exchange, made
//! of the text lines of both runs; a media or deleted line takes its place in
//! its run (a photo between the contact's messages does not split them, and
//! one from the contact ends the owner's run) but adds no text, and a pair of
//! runs without text on either side is no exchange (the owner's answer to a
//! photo teaches nothing about answering words). The answer's time and the
//! reply time are taken from the runs' lines of any kind: the answer began with
//! the owner's first line, in answer to the contact's last.
//!
//! An answer that came more than a day later is still an exchange, with no
//! reply time (`reply_ms: None`), as is one timed before the message it
//! follows (lines out of order): it may be the start of a new conversation
//! rather than an answer, and the missing reply time says so.

use serde::{Deserialize, Serialize};

use super::style::REPLY_WINDOW_MS;
use super::{ChatLine, LineKind};

/// One exchange: the contact's run of messages and the owner's answer to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Exchange {
    /// When the owner's answer began, ms since the epoch.
    pub ts: i64,
    /// The contact's messages, joined with `\n`.
    pub them: String,
    /// The owner's messages in answer, joined with `\n`.
    pub me: String,
    /// From the contact's last message to the owner's first, ms.
    pub reply_ms: Option<i64>,
}

/// The exchanges of a chat in order (text messages only on both sides).
pub fn exchanges(lines: &[ChatLine]) -> Vec<Exchange> {
    let runs: Vec<&[ChatLine]> = lines.chunk_by(|a, b| a.me == b.me).collect();
    runs.windows(2)
        .filter(|pair| !pair[0][0].me && pair[1][0].me)
        .filter_map(|pair| exchange(pair[0], pair[1]))
        .collect()
}

/// The exchange of the contact's run `theirs` and the owner's run `mine`
/// that follows it, if both hold text.
fn exchange(theirs: &[ChatLine], mine: &[ChatLine]) -> Option<Exchange> {
    let them = joined(theirs)?;
    let me = joined(mine)?;
    let (last, first) = (theirs.last()?, mine.first()?);
    let gap = first.ts.checked_sub(last.ts);
    Some(Exchange {
        ts: first.ts,
        them,
        me,
        reply_ms: gap.filter(|g| (0..=REPLY_WINDOW_MS).contains(g)),
    })
}

/// The run's text lines joined with `\n`, if it has any.
fn joined(run: &[ChatLine]) -> Option<String> {
    let mut texts = run
        .iter()
        .filter(|l| l.kind == LineKind::Text)
        .map(|l| l.text.as_str());
    let first = texts.next()?;
    Some(texts.fold(first.to_owned(), |mut all, text| {
        all.push('\n');
        all.push_str(text);
        all
    }))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::learn::fixtures::{line_of, mine, theirs};

    #[test]
    fn each_run_of_theirs_and_the_answer_after_it_is_an_exchange() {
        let lines = [
            mine(0, "hi"), // nothing before it: no exchange
            theirs(10_000, "hey"),
            theirs(11_000, "are you free tonight?"),
            mine(71_000, "yes!"),
            mine(72_000, "where?"),
            theirs(100_000, "pub at 8"),
            mine(160_000, "ok"),
            theirs(200_000, "unanswered"),
        ];
        let got = exchanges(&lines);
        let want = [
            Exchange {
                ts: 71_000,
                them: "hey\nare you free tonight?".into(),
                me: "yes!\nwhere?".into(),
                reply_ms: Some(60_000),
            },
            Exchange {
                ts: 160_000,
                them: "pub at 8".into(),
                me: "ok".into(),
                reply_ms: Some(60_000),
            },
        ];
        assert_eq!(got, want);
    }

    #[test]
    fn media_and_deleted_lines_take_their_place_without_text() {
        let lines = [
            theirs(0, "look"),
            line_of(1_000, false, LineKind::Media, ""),
            line_of(5_000, true, LineKind::Media, ""),
            mine(6_000, "wow"),
            line_of(7_000, false, LineKind::Media, ""),
            mine(9_000, "nice"), // answers a photo only: no exchange
            theirs(10_000, "ok"),
            line_of(12_000, true, LineKind::Deleted, ""), // answer without text: no exchange
        ];
        let got = exchanges(&lines);
        let want = [Exchange {
            ts: 5_000,
            them: "look".into(),
            me: "wow".into(),
            reply_ms: Some(4_000),
        }];
        assert_eq!(got, want);
    }

    #[test]
    fn an_answer_after_a_day_has_no_reply_time() {
        let day = 24 * 3600 * 1000;
        let got = exchanges(&[
            theirs(0, "hi"),
            mine(day + 1, "sorry, just saw this"),
            theirs(2 * day, "ok"),
            mine(2 * day + day, "x"),
        ]);
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].reply_ms, None);
        assert_eq!(got[1].reply_ms, Some(day));
        let backwards = exchanges(&[theirs(10, "hi"), mine(5, "hey")]);
        assert_eq!(backwards[0].reply_ms, None);
    }

    /// The exchanges' texts, read line by line: the contact's texts gathered
    /// until the owner has answered and the contact writes again.
    fn by_hand(lines: &[ChatLine]) -> Vec<(String, String)> {
        let (mut out, mut them, mut me) = (Vec::new(), Vec::new(), Vec::new());
        let mut flush = |them: &mut Vec<&str>, me: &mut Vec<&str>| {
            if !them.is_empty() && !me.is_empty() {
                out.push((them.join("\n"), me.join("\n")));
            }
            them.clear();
            me.clear();
        };
        let mut owner_before = false;
        for l in lines {
            if !l.me && owner_before {
                flush(&mut them, &mut me);
            }
            if l.kind == LineKind::Text {
                if l.me {
                    me.push(l.text.as_str())
                } else {
                    them.push(l.text.as_str())
                }
            }
            owner_before = l.me;
        }
        flush(&mut them, &mut me);
        out
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 200, failure_persistence: None, ..ProptestConfig::default() })]

        #[test]
        fn exchanges_hold_every_answered_text_and_only_texts(
            raw in prop::collection::vec((any::<bool>(), 0u8..4, "[a-z]{1,6}"), 0..40)
        ) {
            let lines: Vec<ChatLine> = raw
                .iter()
                .enumerate()
                .map(|(i, (me, k, text))| {
                    let kind = [LineKind::Text, LineKind::Text, LineKind::Media, LineKind::Deleted][usize::from(*k)];
                    let text = if kind == LineKind::Text { text.as_str() } else { "" };
                    line_of(i as i64 * 1_000, *me, kind, text)
                })
                .collect();
            let got = exchanges(&lines);
            let pairs: Vec<(String, String)> = got.iter().map(|e| (e.them.clone(), e.me.clone())).collect();
            prop_assert_eq!(pairs, by_hand(&lines));
            for e in &got {
                prop_assert!(!e.them.is_empty() && !e.me.is_empty());
                prop_assert!(e.reply_ms.is_some_and(|ms| ms >= 1_000));
            }
            for pair in got.windows(2) {
                prop_assert!(pair[0].ts < pair[1].ts);
            }
        }
    }
}
