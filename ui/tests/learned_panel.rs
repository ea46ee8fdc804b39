//! What the twin learned, on screen: the panel its key shows for the selected
//! contact, at 80x24 in place of the conversation and under it on a large
//! terminal, with the owner's figures beside the twin's as bars.

mod common;

use common::*;
use secondme_ui::model::{LastEval, LearnedProfile, LearnedView, Measure};
use secondme_ui::widgets::learned::NOTHING_LEARNED;
use secondme_ui::{Event, Model, update};

fn selected(m: &Model) -> String {
    m.selected_contact().expect("a selection").id.clone()
}

fn profile() -> LearnedProfile {
    LearnedProfile {
        from_contact: true,
        samples: 212,
        median_chars: 24.0,
        starts_lowercase: 0.85,
        ends_with_period: 0.03,
        emoji_per_message: 0.3,
        top_emoji: vec!["😂".into(), "❤".into()],
        laughter_per_message: 0.4,
        top_laughter: vec!["haha".into()],
        reply_time_median_s: Some(125.0),
    }
}

fn measure(name: &str, owner: f64, twin: f64) -> Measure {
    Measure {
        name: name.into(),
        owner,
        twin,
    }
}

fn eval() -> LastEval {
    LastEval {
        at_ms: Some(NOW - 2 * 3_600_000),
        holdout: 20,
        twin_distance: 0.18,
        baseline_distance: Some(0.42),
        measures: vec![
            measure("starts_lowercase", 0.85, 0.72),
            measure("median_chars", 24.0, 12.0),
            measure("laughter_per_message", 0.4, 0.0),
        ],
    }
}

/// The busy model with `view` read for the selected contact and the panel on.
fn shown(view: impl FnOnce(String) -> LearnedView) -> Model {
    let mut m = busy();
    let id = selected(&m);
    assert!(update(&mut m, Event::Learned(view(id))).dirty);
    assert!(update(&mut m, key('l')).dirty);
    m
}

fn learned(id: String) -> LearnedView {
    LearnedView {
        contact_id: id,
        profile: Some(profile()),
        eval: Some(eval()),
    }
}

fn row_with<'a>(screen: &'a [String], part: &str) -> &'a str {
    screen
        .iter()
        .find(|r| r.contains(part))
        .unwrap_or_else(|| panic!("no row with {part:?}:\n{}", screen.join("\n")))
}

#[test]
fn at_80x24_the_key_shows_the_panel_in_place_of_the_conversation() {
    let m = shown(learned);
    let screen = screen_rows(&draw(&m, 80, 24));
    let text = screen.join("\n");
    println!("{text}");
    assert!(!text.contains("Conversation"), "{text}");
    assert!(text.contains("Learned · Alice Martin"), "{text}");
    for part in [
        "212 messages learned · this chat",
        "length ~24 chars · lowercase 85% · period 3%",
        "emoji 0.3/msg 😂 ❤ · laughs 0.4/msg haha",
        "replies in ~2m (median)",
        "fidelity 0.18 · baseline 0.42",
        "2h00m ago",
        "twin · 20 replies",
    ] {
        assert!(text.contains(part), "{part:?} in:\n{text}");
    }
    // Each measure: the owner's bar and figure, then the twin's; a share fills
    // its bar in proportion to 100%, an amount to the larger figure.
    let lower = row_with(&screen, "lowercase  ");
    let cells = |s: &str| s.chars().filter(|c| *c == '█' || *c == '░').count();
    let parts: Vec<&str> = lower.split(['│', '┃']).collect();
    let bars = parts
        .iter()
        .find(|p| p.contains("lowercase  "))
        .expect("the row");
    assert!(bars.contains(" 85% "), "{bars}");
    assert!(bars.contains(" 72% "), "{bars}");
    let bar_cells = cells(bars) / 2;
    assert!(bar_cells >= 8, "bars of {bar_cells} cells: {bars}");
    let filled: Vec<usize> = bars
        .split(' ')
        .filter(|w| w.contains('█') || w.contains('░'))
        .map(|w| w.chars().filter(|c| *c == '█').count())
        .collect();
    let expect = |share: f64| (share * bar_cells as f64).round() as usize;
    assert_eq!(filled, vec![expect(0.85), expect(0.72)], "{bars}");
    let length = row_with(&screen, "length  ");
    assert!(
        length.contains(" 24.0 ") && length.contains(" 12.0 "),
        "{length}"
    );
    let laughs = row_with(&screen, "laughs/msg");
    assert!(
        laughs.contains(" 0.40 ") && laughs.contains(" 0.00 "),
        "{laughs}"
    );
    // The rest of the screen is untouched: contacts, event log, key hints.
    let before = screen_rows(&draw(&busy(), 80, 24));
    assert_eq!(screen[0], before[0]);
    assert_eq!(screen[23], before[23]);
    assert!(text.contains("Contacts") && text.contains("Events"));

    // The key again brings the conversation back.
    let mut m = m;
    assert!(update(&mut m, key('l')).dirty);
    let text = screen_rows(&draw(&m, 80, 24)).join("\n");
    assert!(
        text.contains("Conversation") && !text.contains("Learned"),
        "{text}"
    );
}

#[test]
fn a_large_terminal_keeps_the_conversation_above_the_panel() {
    let m = shown(learned);
    let screen = screen_rows(&draw(&m, 160, 48));
    let text = screen.join("\n");
    println!("{text}");
    let conv = screen
        .iter()
        .position(|r| r.contains("Conversation"))
        .expect("conversation");
    let panel = screen
        .iter()
        .position(|r| r.contains("Learned · "))
        .expect("panel");
    assert!(conv < panel, "{text}");
    assert!(text.contains("212 messages learned"), "{text}");
    assert!(row_with(&screen, "laughs/msg").contains(" 0.40 "));
}

#[test]
fn nothing_learned_shows_the_hint() {
    let m = shown(|id| LearnedView {
        contact_id: id,
        profile: None,
        eval: None,
    });
    let text = screen_rows(&draw(&m, 80, 24)).join("\n");
    assert!(text.contains(NOTHING_LEARNED), "{text}");
    assert!(!text.contains("messages learned"), "{text}");
}

#[test]
fn the_overall_profile_says_so_and_no_eval_says_how_to_run_one() {
    let m = shown(|id| LearnedView {
        contact_id: id,
        profile: Some(LearnedProfile {
            from_contact: false,
            ..profile()
        }),
        eval: None,
    });
    let text = screen_rows(&draw(&m, 80, 24)).join("\n");
    assert!(
        text.contains("212 messages learned · overall profile"),
        "{text}"
    );
    assert!(text.contains("no fidelity score yet"), "{text}");
    assert!(!text.contains("owner"), "{text}");
}

#[test]
fn a_reading_for_another_contact_is_never_shown_as_this_ones() {
    let m = shown(|_| learned("someone-else".into()));
    let text = screen_rows(&draw(&m, 80, 24)).join("\n");
    assert!(text.contains("reading…"), "{text}");
    assert!(!text.contains("212"), "{text}");
}

#[test]
fn every_measure_of_an_eval_fits_or_says_how_many_more() {
    let names = [
        "samples",
        "median_chars",
        "p90_chars",
        "emoji_per_message",
        "starts_lowercase",
        "ends_with_period",
        "exclamations_per_message",
        "questions_per_message",
        "ellipsis_share",
        "laughter_per_message",
        "several_in_a_row",
        "messages_per_turn",
        "reply_time_median_s",
    ];
    let m = shown(|id| LearnedView {
        eval: Some(LastEval {
            measures: names.iter().map(|n| measure(n, 1e12, 3.0)).collect(),
            ..eval()
        }),
        ..learned(id)
    });
    for (w, h) in [(80, 24), (60, 16)] {
        let screen = screen_rows(&draw(&m, w, h));
        let text = screen.join("\n");
        assert!(text.contains("more rows"), "{w}x{h}:\n{text}");
        let before = screen_rows(&draw(&busy(), w, h));
        assert_eq!(screen[usize::from(h) - 1], before[usize::from(h) - 1]);
    }
    let screen = screen_rows(&draw(&m, 160, 60));
    let text = screen.join("\n");
    assert!(!text.contains("more rows"), "{text}");
    assert!(
        row_with(&screen, "reply time").contains(" 9999k "),
        "{text}"
    );
    // A share from Redis above 100% is held to it.
    assert!(row_with(&screen, "ellipsis ").contains(" 100% "), "{text}");
}

#[test]
fn hostile_text_from_a_chat_is_cleaned_before_it_is_drawn() {
    let m = shown(|id| LearnedView {
        profile: Some(LearnedProfile {
            top_emoji: vec!["\u{1b}]0;pwned\u{7}😂\u{1b}[2J".into()],
            top_laughter: vec!["ha\u{202e}ha".into()],
            ..profile()
        }),
        eval: Some(LastEval {
            measures: vec![measure("evil\u{1b}[31m", 1.0, f64::NAN)],
            ..eval()
        }),
        ..learned(id)
    });
    let text = screen_rows(&draw(&m, 80, 24)).join("\n");
    assert!(!text.contains("pwned") && !text.contains("[2J") && !text.contains("[31m"));
    assert!(text.contains("😂 · laughs 0.4/msg haha"), "{text}");
    assert!(text.contains("evil"), "{text}");
}
