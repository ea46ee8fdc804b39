//! How close two styles are: `style_distance`, the eval's summary.
//!
//! `style_distance` is the mean of eleven per-measure distances, each in
//! `0..=1` (0: the same figure), so it is itself in `0..=1`, lower is closer:
//! - lengths (`median_chars`, `p90_chars`) and `messages_per_turn`: the
//!   relative difference |a − b| / max(a, b), since a reply twice as long is
//!   as far off for a terse writer as for a wordy one;
//! - shares (`starts_lowercase`, `ends_with_period`, `ellipsis_share`,
//!   `several_in_a_row`): the absolute difference |a − b|;
//! - rates per message (`emoji_per_message`, `exclamations_per_message`,
//!   `questions_per_message`, `laughter_per_message`): |a − b| / max(1, a, b),
//!   the absolute difference while both are under one a message (0.1 emoji a
//!   message against none is close, unlike a relative difference, which would
//!   call it as far as can be), relative above.
//!
//! Two zero figures are at distance 0. The lists (top emoji, greetings,
//! languages...) and the reply time are not compared: generated replies have no
//! timestamps and their lists are too short to compare.

use serde::{Deserialize, Serialize};

use super::StyleProfile;

/// One measure compared.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MeasureRow {
    /// The profile's field name.
    pub measure: String,
    /// The owner's real figure.
    pub owner: f64,
    /// The generated replies' figure.
    pub generated: f64,
    /// Their distance, `0..=1`.
    pub distance: f64,
}

/// How a measure's two figures are compared.
#[derive(Clone, Copy)]
enum Scale {
    /// |a − b| / max(a, b).
    Relative,
    /// |a − b|.
    Share,
    /// |a − b| / max(1, a, b).
    Rate,
}

/// A measure: its field name, how it is compared and where it is read.
type Measure = (&'static str, Scale, fn(&StyleProfile) -> f64);

/// The measures, in the order of the rows.
const MEASURES: &[Measure] = &[
    ("median_chars", Scale::Relative, |p| p.median_chars),
    ("p90_chars", Scale::Relative, |p| p.p90_chars),
    ("emoji_per_message", Scale::Rate, |p| p.emoji_per_message),
    ("starts_lowercase", Scale::Share, |p| p.starts_lowercase),
    ("ends_with_period", Scale::Share, |p| p.ends_with_period),
    ("exclamations_per_message", Scale::Rate, |p| {
        p.exclamations_per_message
    }),
    ("questions_per_message", Scale::Rate, |p| {
        p.questions_per_message
    }),
    ("ellipsis_share", Scale::Share, |p| p.ellipsis_share),
    ("laughter_per_message", Scale::Rate, |p| {
        p.laughter_per_message
    }),
    ("several_in_a_row", Scale::Share, |p| p.several_in_a_row),
    ("messages_per_turn", Scale::Relative, |p| {
        p.messages_per_turn
    }),
];

/// The style distance (`0..=1`, lower is closer) and each measure's row.
pub fn compare(owner: &StyleProfile, generated: &StyleProfile) -> (f64, Vec<MeasureRow>) {
    let rows: Vec<MeasureRow> = MEASURES
        .iter()
        .map(|(measure, scale, read)| {
            let (a, b) = (read(owner), read(generated));
            MeasureRow {
                measure: (*measure).to_owned(),
                owner: a,
                generated: b,
                distance: distance(*scale, a, b),
            }
        })
        .collect();
    let mean = rows.iter().map(|r| r.distance).sum::<f64>() / rows.len() as f64;
    (mean, rows)
}

/// The distance of two figures of a measure, `0..=1`.
fn distance(scale: Scale, a: f64, b: f64) -> f64 {
    let diff = (a - b).abs();
    let d = match scale {
        Scale::Relative => {
            let top = a.max(b);
            if top > 0.0 { diff / top } else { 0.0 }
        }
        Scale::Share => diff,
        Scale::Rate => diff / a.max(b).max(1.0),
    };
    if d.is_finite() {
        d.clamp(0.0, 1.0)
    } else {
        1.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::learn::style::Tally;

    fn profile(texts: &[&str]) -> StyleProfile {
        let mut tally = Tally::default();
        tally.add_texts(texts.iter().copied());
        tally.profile()
    }

    #[test]
    fn identical_profiles_are_at_distance_zero() {
        let p = profile(&["hey!", "haha ok 😂", "see you."]);
        let (d, rows) = compare(&p, &p);
        assert_eq!(d, 0.0);
        assert!(rows.iter().all(|r| r.distance == 0.0));
        assert_eq!(
            compare(&StyleProfile::default(), &StyleProfile::default()).0,
            0.0
        );
    }

    #[test]
    fn rows_come_in_a_fixed_order_with_both_figures() {
        let owner = StyleProfile {
            median_chars: 10.0,
            emoji_per_message: 0.5,
            ..StyleProfile::default()
        };
        let generated = StyleProfile {
            median_chars: 40.0,
            emoji_per_message: 3.0,
            ..StyleProfile::default()
        };
        let (_, rows) = compare(&owner, &generated);
        let names: Vec<&str> = rows.iter().map(|r| r.measure.as_str()).collect();
        assert_eq!(names, MEASURES.iter().map(|m| m.0).collect::<Vec<_>>());
        assert_eq!(names.len(), 11);
        assert_eq!((rows[0].owner, rows[0].generated), (10.0, 40.0));
    }

    #[test]
    fn each_scale_is_computed_as_documented() {
        let owner = StyleProfile {
            median_chars: 10.0,
            p90_chars: 30.0,
            emoji_per_message: 0.5,
            starts_lowercase: 0.9,
            exclamations_per_message: 0.2,
            questions_per_message: 2.0,
            messages_per_turn: 1.5,
            ..StyleProfile::default()
        };
        let generated = StyleProfile {
            median_chars: 40.0,
            p90_chars: 30.0,
            emoji_per_message: 3.0,
            starts_lowercase: 0.3,
            exclamations_per_message: 0.0,
            questions_per_message: 1.0,
            messages_per_turn: 1.0,
            ..StyleProfile::default()
        };
        let (d, rows) = compare(&owner, &generated);
        let by_name = |n: &str| rows.iter().find(|r| r.measure == n).map(|r| r.distance);
        let want = [
            ("median_chars", 30.0 / 40.0),
            ("p90_chars", 0.0),
            ("emoji_per_message", 2.5 / 3.0),
            ("starts_lowercase", 0.6),
            ("exclamations_per_message", 0.2),
            ("questions_per_message", 1.0 / 2.0),
            ("messages_per_turn", 0.5 / 1.5),
        ];
        for (name, value) in want {
            let got = by_name(name).unwrap_or(f64::NAN);
            assert!((got - value).abs() < 1e-12, "{name}: {got} != {value}");
        }
        let sum: f64 = want.iter().map(|w| w.1).sum();
        assert!((d - sum / 11.0).abs() < 1e-12);
    }

    #[test]
    fn replies_written_like_the_owner_are_closer_than_others() {
        let owner = profile(&[
            "haha yes",
            "ok 😂",
            "lol no way",
            "see u at 8",
            "hahaha ok",
            "nah",
        ]);
        let alike = profile(&["haha sure", "ok 😂😂", "lol yes", "at 9?", "haha no"]);
        let unlike = profile(&[
            "Thank you very much for your message. I will get back to you as soon as possible.",
            "Certainly! I would be delighted to attend the event on Saturday evening.",
            "Unfortunately, I am not available tomorrow. Could we reschedule for next week?",
        ]);
        let (near, _) = compare(&owner, &alike);
        let (far, _) = compare(&owner, &unlike);
        assert!(near < far, "near {near}, far {far}");
        assert!(far > 0.3 && near < 0.2, "near {near}, far {far}");
    }
}
