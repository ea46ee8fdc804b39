//! The messages the twin chose not to answer on screen: the count in the
//! status bar (only when there is one, never clipped at 80x24, shortened when
//! tight), the envelope in the contact list, the footer hint, and the key
//! that says the operator saw the selected contact's.

mod common;

use std::collections::HashMap;

use common::*;
use insta::assert_snapshot;
use secondme_ui::keymap::parse_key;
use secondme_ui::model::{Draft, DraftsRead};
use secondme_ui::{Action, Event, KeyAction, Keymap, LogKind, Model, update};

const ALICE: &str = "31612340000@s.whatsapp.net";
const BOB: &str = "31612340001@s.whatsapp.net";
const EVE: &str = "31612340005@s.whatsapp.net";

fn counts(pairs: &[(&str, u64)]) -> HashMap<String, u64> {
    pairs.iter().map(|(c, n)| ((*c).to_owned(), *n)).collect()
}

/// The busy screen after a reading of `pairs`.
fn with_unanswered(pairs: &[(&str, u64)]) -> Model {
    let mut m = busy();
    let r = update(&mut m, Event::Unanswered(counts(pairs)));
    assert!(r.dirty, "a new reading redraws");
    m
}

/// The status bar's counters row (the second row) at `width` x 24.
fn counters_row(m: &Model, width: u16) -> String {
    screen_rows(&draw(m, width, 24))[1].clone()
}

/// The first row of `name`'s two rows in the contact list.
fn list_row(rows: &[String], name: &str) -> String {
    rows.iter()
        .find(|r| r.starts_with('┃') && r.contains(name))
        .unwrap_or_else(|| panic!("{name} in the list: {rows:#?}"))
        .clone()
}

#[test]
fn the_count_and_the_envelopes_show_at_80x24() {
    let m = with_unanswered(&[(BOB, 3), (EVE, 2)]);
    let t = draw(&m, 80, 24);
    let rows = screen_rows(&t);
    assert!(rows[1].contains("  unanswered 5"), "{}", rows[1]);
    assert!(list_row(&rows, "Bob").contains("✉3 3/10"), "{rows:#?}");
    assert!(list_row(&rows, "Eve").contains("✉2 4/10"), "{rows:#?}");
    assert!(!list_row(&rows, "Alice").contains('✉'), "{rows:#?}");
    assert_snapshot!(t.backend());
}

#[test]
fn nothing_unanswered_leaves_the_bar_as_it_was() {
    let before = counters_row(&busy(), 80);
    let m = with_unanswered(&[(BOB, 0), (EVE, 0)]);
    assert_eq!(counters_row(&m, 80), before);
    assert!(!before.contains("unans"), "{before}");
    let rows = screen_rows(&draw(&m, 80, 24));
    assert!(rows.iter().all(|r| !r.contains('✉')), "{rows:#?}");
}

#[test]
fn with_drafts_too_the_diagnostics_give_way_and_nothing_waiting_is_clipped() {
    let mut m = with_unanswered(&[(BOB, 3), (EVE, 2)]);
    let drafts = (0..1000)
        .map(|i| Draft {
            draft_id: format!("draft_{i}"),
            contact_id: format!("3161239{i:04}@s.whatsapp.net"),
            content: "ok".into(),
            ..Draft::default()
        })
        .collect();
    update(
        &mut m,
        Event::Drafts(DraftsRead {
            drafts,
            ..DraftsRead::default()
        }),
    );
    let row = counters_row(&m, 80);
    assert!(row.trim_end().ends_with("drafts 1000  unans 5"), "{row}");
    assert!(row.contains("dead 2"), "an alarm stays: {row}");
    assert!(
        !row.contains("subs"),
        "the subscribers gave way first: {row}"
    );
    // Wide enough, every word in full again.
    let row = counters_row(&m, 160);
    assert!(
        row.contains("subs 2  bad 1  drafts 1000  unanswered 5"),
        "{row}"
    );
    // At the smallest size the pending jobs and the rate go too, the counts
    // still whole.
    let row = counters_row(&m, 60);
    assert!(
        row.trim_end()
            .ends_with("750/1000 !  dead 2  drafts 1000  unans 5"),
        "{row}"
    );
}

#[test]
fn a_big_count_is_capped_in_the_list_but_whole_in_the_bar() {
    let m = with_unanswered(&[(BOB, 1234)]);
    let rows = screen_rows(&draw(&m, 80, 24));
    assert!(list_row(&rows, "Bob").contains("✉99+ 3/10"), "{rows:#?}");
    assert!(rows[1].contains("unanswered 1234"), "{}", rows[1]);
}

#[test]
fn the_key_dismisses_the_selected_contacts_count_and_asks_for_it() {
    let mut m = with_unanswered(&[(ALICE, 4), (BOB, 3)]);
    let footer = screen_rows(&draw(&m, 80, 24))[23].clone();
    assert!(footer.contains(" u seen "), "{footer}");
    let r = update(&mut m, key('u'));
    assert_eq!(
        r.actions,
        vec![Action::DismissUnanswered {
            contact_id: ALICE.into()
        }]
    );
    assert_eq!(m.unanswered.for_contact(ALICE), 0);
    assert_eq!(m.unanswered.total(), 3);
    let rows = screen_rows(&draw(&m, 80, 24));
    assert!(rows[1].contains("unanswered 3"), "{}", rows[1]);
    assert!(!list_row(&rows, "Alice").contains('✉'), "{rows:#?}");
    assert!(!rows[23].contains("seen"), "{}", rows[23]);

    // The same reading again (taken before Redis saw the dismissal) is a new
    // reading now: it is shown as it is, the next one confirms.
    let r = update(&mut m, Event::Unanswered(counts(&[(BOB, 3)])));
    assert!(r.dirty);
    let r = update(&mut m, Event::Unanswered(counts(&[(BOB, 3)])));
    assert!(!r.dirty, "the same reading again draws nothing");

    // Nothing unanswered: said, nothing asked.
    let before = m.events.len();
    let r = update(&mut m, key('u'));
    assert!(r.actions.is_empty(), "{:?}", r.actions);
    assert_eq!(log_since(&m, before), ["Alice Martin: nothing unanswered"]);
    assert_eq!(m.events.back().map(|e| e.kind), Some(LogKind::Info));
}

#[test]
fn ids_from_redis_are_cleaned_before_they_mark_anyone() {
    let mut m = busy();
    let dirty = format!("{BOB}\u{1b}[2J");
    update(
        &mut m,
        Event::Unanswered(counts(&[(&dirty, 2), (BOB, 1), ("\u{7}", 5)])),
    );
    // The escape sequence is gone from the id, which is Bob's then: the two
    // counts add up, and nothing of it reaches the screen.
    let rows = screen_rows(&draw(&m, 80, 24));
    assert!(rows.iter().all(|r| !r.contains('\u{1b}')), "{rows:#?}");
    assert!(list_row(&rows, "Bob").contains("✉3 "), "{rows:#?}");
    assert_eq!(m.unanswered.for_contact(BOB), 3);
    assert_eq!(m.unanswered.total(), 8);
}

#[test]
fn the_key_is_rebindable_and_listed_in_the_help() {
    let map = Keymap::from_overrides(&[("dismiss_unanswered".into(), "U".into())]).unwrap();
    let mut m = with_unanswered(&[(ALICE, 1)]);
    m.keymap = map;
    assert!(update(&mut m, key('u')).actions.is_empty());
    let r = update(&mut m, key('U'));
    assert_eq!(
        r.actions,
        vec![Action::DismissUnanswered {
            contact_id: ALICE.into()
        }]
    );
    update(&mut m, key('?'));
    let rows = screen_rows(&draw(&m, 80, 24));
    let help = rows
        .iter()
        .find(|r| r.contains("seen: clear unanswered ✉"))
        .unwrap_or_else(|| panic!("in the help: {rows:#?}"));
    let before = help.split("seen: clear").next().unwrap_or_default();
    assert!(before.trim_end().ends_with('U'), "{help}");
    // A config from before the key gave `u` to an older action: it still loads.
    let older = Keymap::from_overrides(&[("resume".into(), "u".into())]).unwrap();
    assert_eq!(
        older.action_for(&parse_key("u").unwrap()),
        Some(KeyAction::Resume)
    );
    assert!(older.keys_for(KeyAction::DismissUnanswered).is_empty());
}
