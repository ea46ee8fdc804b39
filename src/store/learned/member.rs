//! A learned message as a member of `LEARN:chat:{contactId}`: compact JSON
//! `{"ts","me","k","text","n"}` (and `"live":true` for a message the worker saw
//! live), scored by its time. Pure: which lines of an import are new is decided
//! here, the writing is `super`'s.

use std::borrow::Cow;
use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::learn::{ChatLine, LineKind};

/// Lines of one `ts` told apart in the score: `ts + seq / 1024`, exact in an
/// `f64` for any time before the year 2248, so a minute's messages keep their
/// order (members of one score would sort by their bytes instead).
const SEQ_SLOTS: u32 = 1024;

/// An export line this close to a live line with the same side, kind and text
/// is that message: the export's wall clock is converted with the importing
/// machine's zone, which may not be the phone's, and time zones lie within ±14 h.
pub(super) const LIVE_WINDOW_MS: i64 = 14 * 3_600_000;

/// The member as stored.
#[derive(Debug, Serialize, Deserialize)]
struct Member<'a> {
    ts: i64,
    me: bool,
    k: LineKind,
    #[serde(borrow)]
    text: Cow<'a, str>,
    /// How many identical `(ts, me, k, text)` lines came before it in the chat
    /// it was imported with: two real "ok" of one minute stay two members.
    n: u32,
    #[serde(default, skip_serializing_if = "is_false")]
    live: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// The member of `line`, `n`-th of its kind in its import.
pub(super) fn encode(line: &ChatLine, n: u32, live: bool) -> String {
    let m = Member {
        ts: line.ts,
        me: line.me,
        k: line.kind,
        text: Cow::Borrowed(&line.text),
        n,
        live,
    };
    // A struct of plain fields always serializes.
    serde_json::to_string(&m).unwrap_or_default()
}

/// The line a member holds and whether it came live; `None` for a member some
/// other program wrote.
pub(super) fn decode(member: &str) -> Option<(ChatLine, bool)> {
    let m: Member<'_> = serde_json::from_str(member).ok()?;
    let line = ChatLine {
        ts: m.ts,
        me: m.me,
        kind: m.k,
        text: m.text.into_owned(),
    };
    Some((line, m.live))
}

/// Whether a member was written live, without parsing it: the quotes inside a
/// text are escaped, so the pattern cannot come from a message.
pub(super) fn looks_live(member: &str) -> bool {
    member.contains(r#""live":true"#)
}

/// Each line's score and occurrence index `n`, from the whole import (so the
/// same export always gives the same members, whatever is skipped after).
pub(super) fn positions(lines: &[ChatLine]) -> Vec<(f64, u32)> {
    let mut same_ts: HashMap<i64, u32> = HashMap::new();
    let mut same_line: HashMap<(i64, bool, LineKind, &str), u32> = HashMap::new();
    lines
        .iter()
        .map(|l| {
            let seq = same_ts.entry(l.ts).or_insert(0);
            let score = l.ts as f64 + f64::from((*seq).min(SEQ_SLOTS - 1)) / f64::from(SEQ_SLOTS);
            *seq += 1;
            let n = same_line
                .entry((l.ts, l.me, l.kind, l.text.as_str()))
                .or_insert(0);
            let this = *n;
            *n += 1;
            (score, this)
        })
        .collect()
}

/// Marks the export lines that are a live line already learned (same side, kind
/// and text within [`LIVE_WINDOW_MS`]); each live line stands for one export
/// line, the nearest in the import's order that fits.
pub(super) fn seen_live(lines: &[ChatLine], live: &[ChatLine]) -> Vec<bool> {
    // Side, kind and text to the live lines' times, each with whether it was taken.
    type Content<'a> = (bool, LineKind, &'a str);
    let mut by_content: HashMap<Content<'_>, Vec<(i64, bool)>> = HashMap::new();
    for l in live {
        by_content
            .entry((l.me, l.kind, l.text.as_str()))
            .or_default()
            .push((l.ts, false));
    }
    lines
        .iter()
        .map(|l| {
            let Some(candidates) = by_content.get_mut(&(l.me, l.kind, l.text.as_str())) else {
                return false;
            };
            let free = candidates
                .iter_mut()
                .find(|(ts, used)| !*used && (ts - l.ts).abs() <= LIVE_WINDOW_MS);
            match free {
                Some((_, used)) => {
                    *used = true;
                    true
                }
                None => false,
            }
        })
        .collect()
}

/// The lowest score of the `keep` highest in `scores` (all of them kept when
/// there are no more than `keep`).
pub(super) fn newest_floor(scores: impl Iterator<Item = f64>, keep: usize) -> Option<f64> {
    let mut all: Vec<f64> = scores.collect();
    if all.len() <= keep || keep == 0 {
        return None;
    }
    let at = all.len() - keep;
    let (_, floor, _) = all.select_nth_unstable_by(at, f64::total_cmp);
    Some(*floor)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::learn::fixtures::line;

    #[test]
    fn a_member_round_trips_and_only_a_live_one_says_so() {
        let l = line(1_470_489_780_000, true, "say \"live\":true");
        let m = encode(&l, 2, false);
        assert_eq!(
            m,
            r#"{"ts":1470489780000,"me":true,"k":"text","text":"say \"live\":true","n":2}"#
        );
        assert!(!looks_live(&m));
        assert_eq!(decode(&m), Some((l.clone(), false)));
        let live = encode(&l, 0, true);
        assert!(looks_live(&live));
        assert_eq!(decode(&live), Some((l, true)));
        assert_eq!(decode("not ours"), None);
    }

    #[test]
    fn identical_lines_of_one_minute_are_counted_and_keep_their_order() {
        let t = 1_470_489_780_000;
        let lines = [
            line(t, false, "ok"),
            line(t, true, "ok"),
            line(t, false, "ok"),
            line(t + 60_000, false, "ok"),
        ];
        let p = positions(&lines);
        let ns: Vec<u32> = p.iter().map(|(_, n)| *n).collect();
        assert_eq!(ns, [0, 0, 1, 0]);
        assert!(p[0].0 < p[1].0 && p[1].0 < p[2].0 && p[2].0 < p[3].0);
        assert_eq!(p[0].0, t as f64);
        assert_eq!(p[3].0, (t + 60_000) as f64);
        // Exact: the fraction survives the trip through Redis's text.
        let back: f64 = p[2].0.to_string().parse().expect("a number");
        assert_eq!(back, p[2].0);
        assert_eq!(back.floor() as i64, t);
    }

    #[test]
    fn each_live_line_stands_for_one_export_line_within_the_window() {
        let t = 1_600_000_000_000;
        let live = [line(t, true, "on my way")];
        let export = [
            line(t + 2 * 3_600_000, true, "on my way"),
            line(t + 2 * 3_600_000, true, "on my way"),
            line(t, false, "on my way"),
        ];
        assert_eq!(seen_live(&export, &live), [true, false, false]);
        let far = [line(t + LIVE_WINDOW_MS + 1, true, "on my way")];
        assert_eq!(seen_live(&far, &live), [false]);
    }

    #[test]
    fn the_floor_is_the_lowest_score_kept() {
        assert_eq!(newest_floor([3.0, 1.0, 2.0].into_iter(), 2), Some(2.0));
        assert_eq!(newest_floor([3.0, 1.0].into_iter(), 2), None);
    }
}
