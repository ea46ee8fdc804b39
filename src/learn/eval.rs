//! How close the twin writes, the pure half of `secondme eval`: the split of a
//! contact's chat into what is learned and what is held out, and the report
//! that compares the generated replies with the real ones.
//!
//! The report is what `secondme eval --json` prints (one object per contact)
//! and what `LEARN:eval:{contactId}` holds, read by the control room:
//!
//! ```json
//! {"contact": "c1", "holdout": 20,
//!  "twin":     {"style_distance": 0.12, "rows": [MeasureRow, ...]},
//!  "baseline": {"style_distance": 0.41, "rows": [MeasureRow, ...]},
//!  "at": 1700000000000}
//! ```
//!
//! where a `MeasureRow` is `{"measure", "owner", "generated", "distance"}`
//! (`learn::fidelity::MeasureRow`), `holdout` the replies compared and `at` the
//! time of the eval in ms.

use serde::{Deserialize, Serialize};

use super::exchanges::exchanges;
use super::fidelity::{self, MeasureRow};
use super::style::Tally;
use super::{ChatLine, Exchange, LineKind};

/// Replies held out when `--holdout` is not given.
pub const DEFAULT_HOLDOUT: usize = 20;

/// Fewest replies an eval compares: fewer say nothing about a style.
pub const MIN_HOLDOUT: usize = 3;

/// Why a chat cannot be evaluated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SplitError {
    /// `--holdout` asks for fewer replies than an eval needs.
    #[error("--holdout must be at least {MIN_HOLDOUT}, not {0}")]
    HoldoutTooSmall(usize),
    /// The chat has too few exchanges to hold some out and learn from the rest.
    #[error(
        "only {found} exchanges (a message and the owner's answer) are learned; an eval needs at least {needed}"
    )]
    TooFewExchanges {
        /// Exchanges in the chat.
        found: usize,
        /// Exchanges needed.
        needed: usize,
    },
}

/// A chat split for an eval.
#[derive(Debug, Clone, PartialEq)]
pub struct Split<'a> {
    /// What the twin learns from: every line before the first held-out exchange.
    pub training: &'a [ChatLine],
    /// The last exchanges, whose real replies the generated ones are compared with.
    pub held_out: Vec<Exchange>,
    /// The holdout asked for (more than `held_out.len()` when the chat is short).
    pub requested: usize,
}

impl Split<'_> {
    /// The holdout was made smaller than asked because the chat is short.
    pub fn reduced(&self) -> bool {
        self.held_out.len() < self.requested
    }
}

/// Holds out the owner's last `requested` answers with the messages they
/// answered, and keeps the lines before them for learning. At most half of the
/// chat's exchanges are held out, so the twin always learns from as many as it
/// is tested on; the cut falls at the first message of the first held-out
/// exchange, so nothing of the held-out part is learned.
pub fn split(lines: &[ChatLine], requested: usize) -> Result<Split<'_>, SplitError> {
    if requested < MIN_HOLDOUT {
        return Err(SplitError::HoldoutTooSmall(requested));
    }
    let starts = exchange_starts(lines);
    let held = requested.min(starts.len() / 2);
    if held < MIN_HOLDOUT {
        return Err(SplitError::TooFewExchanges {
            found: starts.len(),
            needed: 2 * MIN_HOLDOUT,
        });
    }
    let cut = starts[starts.len() - held];
    Ok(Split {
        training: &lines[..cut],
        held_out: exchanges(&lines[cut..]),
        requested,
    })
}

/// Where each exchange starts: the first line of the contact's run of
/// messages that an owner's run answers, both holding text (as
/// [`exchanges`] pairs them).
fn exchange_starts(lines: &[ChatLine]) -> Vec<usize> {
    let has_text = |run: &[ChatLine]| run.iter().any(|l| l.kind == LineKind::Text);
    let mut starts = Vec::new();
    let mut at = 0;
    let mut runs = lines.chunk_by(|a, b| a.me == b.me).peekable();
    while let Some(run) = runs.next() {
        if let Some(next) = runs.peek()
            && !run[0].me
            && has_text(run)
            && has_text(next)
        {
            starts.push(at);
        }
        at += run.len();
    }
    starts
}

/// One side of an eval: the twin, or the baseline without learning.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SideReport {
    /// `learn::fidelity::compare`'s summary, `0..=1`, lower is closer.
    pub style_distance: f64,
    /// Each measure: the owner's figure, the generated replies' and their distance.
    pub rows: Vec<MeasureRow>,
}

impl SideReport {
    /// The generated replies measured against the owner's real ones.
    pub fn measure<'a>(owner: &Tally, generated: impl IntoIterator<Item = &'a str>) -> Self {
        let mut tally = Tally::default();
        tally.add_texts(generated);
        let (style_distance, rows) = fidelity::compare(&owner.profile(), &tally.profile());
        Self {
            style_distance,
            rows,
        }
    }
}

/// The eval of one contact: the shape of `LEARN:eval:{contactId}` and of
/// `secondme eval --json` (see the module's documentation).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalReport {
    /// The contact id.
    pub contact: String,
    /// Held-out replies compared.
    pub holdout: usize,
    /// The twin: persona, learned profile, examples and history.
    pub twin: SideReport,
    /// The same engine and persona given only the message being answered.
    pub baseline: SideReport,
    /// When the eval ran, ms since the epoch.
    pub at: i64,
}

/// One held-out exchange as generated: the real reply and both sides' replies
/// (`None` where the generation failed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Generated {
    /// What the owner really answered.
    pub real: String,
    /// The twin's reply.
    pub twin: Option<String>,
    /// The baseline's reply.
    pub baseline: Option<String>,
}

impl EvalReport {
    /// Scores the exchanges both sides answered (a failed generation drops its
    /// exchange from both, so the two sides face the same messages); `None`
    /// when none is left.
    pub fn score(contact: &str, generated: &[Generated], at: i64) -> Option<Self> {
        let answered: Vec<(&str, &str, &str)> = generated
            .iter()
            .filter_map(|g| Some((g.real.as_str(), g.twin.as_deref()?, g.baseline.as_deref()?)))
            .collect();
        if answered.is_empty() {
            return None;
        }
        let mut owner = Tally::default();
        owner.add_texts(answered.iter().map(|a| a.0));
        Some(Self {
            contact: contact.to_owned(),
            holdout: answered.len(),
            twin: SideReport::measure(&owner, answered.iter().map(|a| a.1)),
            baseline: SideReport::measure(&owner, answered.iter().map(|a| a.2)),
            at,
        })
    }

    /// One row per measure: the owner's figure, the twin's and the baseline's.
    pub fn table(&self) -> Vec<TableRow> {
        self.twin
            .rows
            .iter()
            .map(|t| TableRow {
                measure: t.measure.clone(),
                owner: t.owner,
                twin: t.generated,
                baseline: self
                    .baseline
                    .rows
                    .iter()
                    .find(|b| b.measure == t.measure)
                    .map(|b| b.generated),
            })
            .collect()
    }
}

/// A line of the eval's table.
#[derive(Debug, Clone, PartialEq)]
pub struct TableRow {
    /// The profile's field name.
    pub measure: String,
    /// The owner's real figure.
    pub owner: f64,
    /// The twin's figure.
    pub twin: f64,
    /// The baseline's figure, if it has this measure.
    pub baseline: Option<f64>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::learn::fixtures::{line, line_of};

    fn media(ts: i64, me: bool) -> ChatLine {
        line_of(ts, me, LineKind::Media, "")
    }

    /// `n` exchanges, `them{i}` answered by `me{i}`, a minute apart.
    fn chat(n: usize) -> Vec<ChatLine> {
        (0..n)
            .flat_map(|i| {
                let t = i as i64 * 120_000;
                [
                    line(t, false, &format!("them{i}")),
                    line(t + 60_000, true, &format!("me{i}")),
                ]
            })
            .collect()
    }

    #[test]
    fn exchange_starts_follow_the_owner_s_answers() {
        let lines = vec![
            line(0, true, "an opening nobody answered"),
            line(1, false, "a"),
            media(2, false),
            line(3, false, "b"),
            line(4, true, "x"),
            line(5, true, "y"),
            media(6, true),
            line(7, false, "c"),
            line(8, true, "z"),
            media(9, false),
            media(10, true),
            line(11, false, "unanswered"),
        ];
        assert_eq!(exchange_starts(&lines), vec![1, 7]);
        assert_eq!(exchanges(&lines).len(), 2);
        assert!(exchange_starts(&[]).is_empty());
        assert!(exchange_starts(&[line(0, false, "a"), media(1, true)]).is_empty());
    }

    #[test]
    fn split_holds_out_the_last_n_and_learns_from_the_lines_before() {
        let lines = chat(30);
        let s = split(&lines, 5).expect("split");
        assert_eq!(s.training, &lines[..50]);
        let real: Vec<&str> = s.held_out.iter().map(|e| e.me.as_str()).collect();
        assert_eq!(real, ["me25", "me26", "me27", "me28", "me29"]);
        let them: Vec<&str> = s.held_out.iter().map(|e| e.them.as_str()).collect();
        assert_eq!(them, ["them25", "them26", "them27", "them28", "them29"]);
        assert!(!s.reduced());
        for e in &s.held_out {
            assert!(
                s.training
                    .iter()
                    .all(|l| l.text != e.me && l.text != e.them)
            );
        }
    }

    #[test]
    fn a_short_chat_holds_out_half_and_says_so() {
        let lines = chat(9);
        let s = split(&lines, 20).expect("split");
        assert_eq!(s.held_out.len(), 4);
        assert_eq!(s.training.len(), 10);
        assert!(s.reduced());
        assert_eq!(s.requested, 20);
    }

    #[test]
    fn too_few_exchanges_or_too_small_a_holdout_is_an_error() {
        assert_eq!(
            split(&chat(5), 20),
            Err(SplitError::TooFewExchanges {
                found: 5,
                needed: 6
            })
        );
        assert!(split(&chat(6), 20).is_ok());
        assert_eq!(split(&chat(30), 2), Err(SplitError::HoldoutTooSmall(2)));
        assert!(split(&[], 20).is_err());
    }

    #[test]
    fn several_messages_a_side_stay_in_one_exchange() {
        // The owner answers in two messages; the contact writes twice, with a photo.
        let mut lines = chat(6);
        lines.extend([
            line(10_000_000, true, "me5 again"),
            line(10_000_001, false, "them6"),
            media(10_000_002, false),
            line(10_000_003, false, "them6 more"),
            line(10_000_004, true, "me6"),
        ]);
        let s = split(&lines, 3).expect("split");
        assert_eq!(s.held_out.len(), 3);
        assert_eq!(
            s.training.len(),
            8,
            "up to me3: the held-out part starts at them4"
        );
        assert_eq!(s.held_out[2].them, "them6\nthem6 more");
        assert_eq!(s.held_out[1].me, "me5\nme5 again");
    }

    fn row(measure: &str, owner: f64, generated: f64) -> MeasureRow {
        MeasureRow {
            measure: measure.into(),
            owner,
            generated,
            distance: (owner - generated).abs(),
        }
    }

    #[test]
    fn the_report_serialises_to_the_documented_shape() {
        let report = EvalReport {
            contact: "c1".into(),
            holdout: 3,
            twin: SideReport {
                style_distance: 0.25,
                rows: vec![row("median_chars", 10.0, 12.0)],
            },
            baseline: SideReport {
                style_distance: 0.5,
                rows: vec![row("median_chars", 10.0, 40.0)],
            },
            at: 42,
        };
        let json = serde_json::to_value(&report).expect("json");
        assert_eq!(
            json,
            serde_json::json!({
                "contact": "c1",
                "holdout": 3,
                "twin": {"style_distance": 0.25, "rows": [
                    {"measure": "median_chars", "owner": 10.0, "generated": 12.0, "distance": 2.0}
                ]},
                "baseline": {"style_distance": 0.5, "rows": [
                    {"measure": "median_chars", "owner": 10.0, "generated": 40.0, "distance": 30.0}
                ]},
                "at": 42
            })
        );
        let back: EvalReport = serde_json::from_value(json).expect("back");
        assert_eq!(back, report);
        let table = report.table();
        assert_eq!(
            table,
            vec![TableRow {
                measure: "median_chars".into(),
                owner: 10.0,
                twin: 12.0,
                baseline: Some(40.0)
            }]
        );
    }

    fn generated(real: &str, twin: &str, baseline: &str) -> Generated {
        Generated {
            real: real.into(),
            twin: Some(twin.into()),
            baseline: Some(baseline.into()),
        }
    }

    #[test]
    fn replies_like_the_owner_s_score_closer_than_formal_ones() {
        let items = [
            generated("haha ya", "haha ya", "Thank you, I will check."),
            generated("lol ok", "lol ok", "Understood, see you then."),
            generated("k", "k", "Noted."),
        ];
        let report = EvalReport::score("c1", &items, 7).expect("scored");
        assert_eq!(report.holdout, 3);
        assert_eq!(report.at, 7);
        assert_eq!(report.twin.style_distance, 0.0, "the same replies");
        assert!(report.baseline.style_distance > 0.0);
        let lowercase = report
            .table()
            .into_iter()
            .find(|r| r.measure == "starts_lowercase")
            .expect("a starts_lowercase row");
        assert_eq!(
            (lowercase.owner, lowercase.twin, lowercase.baseline),
            (1.0, 1.0, Some(0.0))
        );
    }

    #[test]
    fn a_failed_generation_drops_its_exchange_from_both_sides() {
        let mut items = vec![
            generated("haha ya", "haha ya", "Thank you."),
            generated("lol ok", "lol ok", "Noted."),
        ];
        items.push(Generated {
            real: "A Long Formal Answer That Would Change The Owner's Figures.".into(),
            twin: None,
            baseline: Some("Fine.".into()),
        });
        let report = EvalReport::score("c1", &items, 1).expect("scored");
        assert_eq!(report.holdout, 2);
        assert_eq!(
            report.twin.style_distance, 0.0,
            "the third real reply is not counted"
        );
    }

    #[test]
    fn a_report_needs_an_exchange_both_sides_answered() {
        let failed = [
            Generated {
                real: "a".into(),
                twin: None,
                baseline: Some("b".into()),
            },
            Generated {
                real: "a".into(),
                twin: Some("b".into()),
                baseline: None,
            },
        ];
        assert_eq!(EvalReport::score("c1", &failed, 1), None);
        assert_eq!(EvalReport::score("c1", &[], 1), None);
    }
}
