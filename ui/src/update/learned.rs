//! What the twin learned, as the binary read it for the selected contact:
//! cleaned (its strings come from chats, its figures from Redis) and kept.

use super::{MAX_SHORT, UpdateResult};
use crate::model::{
    LastEval, LearnedProfile, LearnedView, MAX_MEASURES, MAX_TOP, Measure, Model, Scale,
};
use crate::sanitize;

/// Longest emoji or laugh kept, in chars (an emoji with modifiers is several).
const MAX_TOKEN: usize = 12;
/// Longest measure name kept, in chars.
const MAX_MEASURE_NAME: usize = 32;

/// A new reading; redraws only when it changed what is known.
pub(super) fn on_learned(model: &mut Model, view: LearnedView) -> UpdateResult {
    let view = clean(view);
    if model.learned.as_ref() == Some(&view) {
        return UpdateResult::clean();
    }
    model.learned = Some(view);
    UpdateResult::dirty()
}

/// The toggle key: shows or hides the panel.
pub(super) fn toggle(model: &mut Model) -> UpdateResult {
    model.show_learned = !model.show_learned;
    UpdateResult::dirty()
}

fn clean(view: LearnedView) -> LearnedView {
    LearnedView {
        contact_id: sanitize::clean(&view.contact_id, MAX_SHORT),
        profile: view.profile.map(clean_profile),
        eval: view.eval.map(clean_eval),
    }
}

fn clean_profile(p: LearnedProfile) -> LearnedProfile {
    LearnedProfile {
        from_contact: p.from_contact,
        samples: p.samples,
        median_chars: figure(p.median_chars),
        starts_lowercase: share(p.starts_lowercase),
        ends_with_period: share(p.ends_with_period),
        emoji_per_message: figure(p.emoji_per_message),
        top_emoji: tokens(p.top_emoji),
        laughter_per_message: figure(p.laughter_per_message),
        top_laughter: tokens(p.top_laughter),
        reply_time_median_s: p.reply_time_median_s.map(figure),
    }
}

fn clean_eval(e: LastEval) -> LastEval {
    LastEval {
        at_ms: e.at_ms,
        holdout: e.holdout,
        // A style distance is a share too: 0 the same style, 1 nothing alike.
        twin_distance: share(e.twin_distance),
        baseline_distance: e.baseline_distance.map(share),
        measures: e
            .measures
            .into_iter()
            .take(MAX_MEASURES)
            .map(|m| {
                let name = sanitize::clean(&m.name, MAX_MEASURE_NAME);
                let held = |x: f64| match Measure::scale_of(&name) {
                    Scale::Share => share(x),
                    Scale::Amount => figure(x),
                };
                Measure {
                    owner: held(m.owner),
                    twin: held(m.twin),
                    name,
                }
            })
            .collect(),
    }
}

/// The few most used emoji or laughs, each cleaned; what cleans to nothing goes.
fn tokens(list: Vec<String>) -> Vec<String> {
    list.iter()
        .map(|t| sanitize::clean(t, MAX_TOKEN))
        .filter(|t| !t.trim().is_empty())
        .take(MAX_TOP)
        .collect()
}

/// A figure from Redis, where anything may be written: not a number or
/// below zero reads as zero.
fn figure(x: f64) -> f64 {
    if x.is_finite() && x > 0.0 { x } else { 0.0 }
}

/// A share, held to `0..=1`.
fn share(x: f64) -> f64 {
    figure(x).min(1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_strings_and_figures_are_cleaned() {
        let view = LearnedView {
            contact_id: "al\u{1b}[2Jice".into(),
            profile: Some(LearnedProfile {
                samples: 3,
                median_chars: f64::NAN,
                starts_lowercase: 7.0,
                ends_with_period: -1.0,
                top_emoji: vec![
                    "\u{1b}]0;pwned\u{7}😂".into(),
                    "\u{202e}".into(),
                    "❤️".into(),
                    "a".into(),
                    "b".into(),
                ],
                reply_time_median_s: Some(f64::INFINITY),
                ..LearnedProfile::default()
            }),
            eval: Some(LastEval {
                twin_distance: f64::NEG_INFINITY,
                measures: vec![
                    Measure {
                        name: "x\u{1b}[31my".into(),
                        owner: 1.5,
                        twin: f64::NAN,
                    };
                    MAX_MEASURES + 5
                ],
                ..LastEval::default()
            }),
        };
        let c = clean(view);
        assert_eq!(c.contact_id, "alice");
        let p = c.profile.expect("profile");
        assert_eq!(p.median_chars, 0.0);
        assert_eq!(p.starts_lowercase, 1.0);
        assert_eq!(p.ends_with_period, 0.0);
        // The variation selector goes with the other invisible marks.
        assert_eq!(p.top_emoji, vec!["😂", "❤", "a"]);
        assert_eq!(p.reply_time_median_s, Some(0.0));
        let e = c.eval.expect("eval");
        assert_eq!(e.twin_distance, 0.0);
        assert_eq!(e.measures.len(), MAX_MEASURES);
        assert_eq!(e.measures[0].name, "xy");
        assert_eq!(e.measures[0].owner, 1.5);
        assert_eq!(e.measures[0].twin, 0.0);
    }

    #[test]
    fn the_same_reading_again_does_not_redraw() {
        let mut m = Model::default();
        let view = LearnedView {
            contact_id: "bob".into(),
            ..LearnedView::default()
        };
        assert!(on_learned(&mut m, view.clone()).dirty);
        assert!(!on_learned(&mut m, view).dirty);
        assert!(toggle(&mut m).dirty);
        assert!(m.show_learned);
    }
}
