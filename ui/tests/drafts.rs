//! Draft mode on screen and on the keyboard: the waiting draft under the
//! conversation, the pen in the list, the count in the status bar, the keys
//! that decide it, the inline editor (wide characters, paste, Alt-Enter,
//! Ctrl-U, Home/End) and the preview popup.

mod common;

use common::*;
use insta::assert_snapshot;
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::layout::Position;
use ratatui::style::Modifier;
use secondme_ui::model::{Draft, DraftChange, DraftsRead, EditTarget, PreviewState, ReplyMode};
use secondme_ui::{Action, Event, KeyCode, KeyInput, Mode, Model, update};

const ALICE: &str = "31612340000@s.whatsapp.net";
const BOB: &str = "31612340001@s.whatsapp.net";
const EVE: &str = "31612340005@s.whatsapp.net";

fn draft(contact_id: &str, content: &str) -> Draft {
    Draft {
        draft_id: format!("draft_m-{contact_id}"),
        contact_id: contact_id.to_owned(),
        content: content.to_owned(),
        in_reply_to: format!("m-{contact_id}"),
        created_at_ms: NOW - MIN,
        expires_at_ms: NOW + 23 * 60 * MIN + 59 * MIN,
    }
}

/// The busy screen with a draft for Alice (selected) and Eve in draft mode.
fn with_draft() -> Model {
    let mut m = busy();
    update(
        &mut m,
        Event::Drafts(DraftsRead {
            drafts: vec![draft(
                ALICE,
                "Sure, 19:30 works 👍 I'll bring the 日本 guidebook",
            )],
            modes: vec![
                (ALICE.into(), ReplyMode::Draft),
                (EVE.into(), ReplyMode::Draft),
            ],
            default_mode: ReplyMode::Auto,
        }),
    );
    m
}

fn run(model: &mut Model, events: Vec<Event>) -> Vec<Action> {
    events
        .into_iter()
        .flat_map(|e| update(model, e).actions)
        .collect()
}

fn typed(text: &str) -> Vec<Event> {
    text.chars().map(key).collect()
}

fn alt_enter() -> Event {
    Event::Key(KeyInput {
        alt: true,
        ..KeyInput::plain(KeyCode::Enter)
    })
}

fn editor_text(m: &Model) -> &str {
    match &m.mode {
        Mode::Editor { editor, .. } => editor.text(),
        other => panic!("not editing: {other:?}"),
    }
}

/// The screen as text, a row a line.
fn screen_text(t: &Terminal<TestBackend>) -> String {
    screen_rows(t).join("\n")
}

/// The cell holding `symbol` in row `y`, if any.
fn column_of(t: &Terminal<TestBackend>, y: u16, symbol: &str) -> Option<u16> {
    let buf = t.backend().buffer();
    (0..buf.area.width).find(|&x| buf[Position::new(x, y)].symbol() == symbol)
}

/// Where the reversed cell (the editor's cursor) is, if there is one in the
/// draft panel's rows.
fn reversed_cells(t: &Terminal<TestBackend>, from_row: u16) -> Vec<(u16, u16)> {
    let buf = t.backend().buffer();
    let mut out = Vec::new();
    for y in from_row..buf.area.height {
        for x in 30..buf.area.width {
            if buf[Position::new(x, y)]
                .style()
                .add_modifier
                .contains(Modifier::REVERSED)
            {
                out.push((x, y));
            }
        }
    }
    out
}

#[test]
fn a_waiting_draft_shows_under_the_conversation_at_80x24() {
    let m = with_draft();
    let t = draw(&m, 80, 24);
    let text = screen_text(&t);
    assert!(
        text.contains("DRAFT · not sent · expires in 23h59m"),
        "{text}"
    );
    assert!(text.contains("a send"), "{text}");
    assert!(text.contains("drafts 1"), "status bar count: {text}");
    assert!(text.contains("draft waiting"), "Alice's row: {text}");
    assert!(text.contains("  draft mode"), "Eve's row: {text}");
    assert_snapshot!(t.backend());
}

#[test]
fn the_draft_keys_ask_for_the_selected_contacts_draft() {
    let mut m = with_draft();
    let id = format!("draft_m-{ALICE}");
    assert_eq!(
        run(&mut m, vec![key('a')]),
        vec![Action::Approve {
            contact_id: ALICE.into(),
            draft_id: id.clone(),
            text: None
        }]
    );
    assert_eq!(
        run(&mut m, vec![key('x')]),
        vec![Action::Discard {
            contact_id: ALICE.into(),
            draft_id: id.clone()
        }]
    );
    assert_eq!(
        run(&mut m, vec![key('R')]),
        vec![Action::Regenerate {
            contact_id: ALICE.into(),
            draft_id: id
        }]
    );
    // Bob has none: nothing is asked, the log says why.
    let before = m.events.len();
    assert!(run(&mut m, vec![key('j'), key('a'), key('x'), key('i')]).is_empty());
    assert_eq!(m.mode, Mode::Normal);
    assert_eq!(log_since(&m, before), vec!["Bob: no draft waiting"; 3]);
}

#[test]
fn m_toggles_the_mode_at_once_and_asks_for_it() {
    let mut m = busy();
    run(&mut m, typed("jjjjj"));
    assert_eq!(m.selected.as_deref(), Some(EVE));
    assert!(!screen_text(&draw(&m, 80, 24)).contains("draft mode"));
    assert_eq!(
        run(&mut m, vec![key('m')]),
        vec![Action::SetMode {
            contact_id: EVE.into(),
            mode: ReplyMode::Draft
        }]
    );
    let text = screen_text(&draw(&m, 80, 24));
    let eve = text
        .lines()
        .position(|l| l.contains("● Eve"))
        .expect("Eve's row");
    assert!(
        text.lines()
            .nth(eve + 1)
            .is_some_and(|l| l.contains("  draft mode ")),
        "{text}"
    );
    assert_eq!(
        run(&mut m, vec![key('m')]),
        vec![Action::SetMode {
            contact_id: EVE.into(),
            mode: ReplyMode::Auto
        }]
    );
    assert!(!screen_text(&draw(&m, 80, 24)).contains("draft mode"));
}

#[test]
fn the_default_mode_applies_to_contacts_without_their_own() {
    let mut m = busy();
    update(
        &mut m,
        Event::Drafts(DraftsRead {
            drafts: vec![],
            modes: vec![(ALICE.into(), ReplyMode::Auto)],
            default_mode: ReplyMode::Draft,
        }),
    );
    assert_eq!(m.drafts.mode_of(ALICE), ReplyMode::Auto);
    assert_eq!(m.drafts.mode_of(BOB), ReplyMode::Draft);
    // Alice is in auto while everyone else drafts: `m` asks for draft.
    assert_eq!(
        run(&mut m, vec![key('m')]),
        vec![Action::SetMode {
            contact_id: ALICE.into(),
            mode: ReplyMode::Draft
        }]
    );
}

#[test]
fn a_mode_the_write_did_not_take_is_put_back_by_the_next_reading() {
    let mut m = busy();
    let read = DraftsRead {
        modes: vec![(ALICE.into(), ReplyMode::Auto)],
        ..DraftsRead::default()
    };
    assert!(update(&mut m, Event::Drafts(read.clone())).dirty);
    assert!(
        !update(&mut m, Event::Drafts(read.clone())).dirty,
        "the same reading"
    );
    run(&mut m, vec![key('m')]);
    assert_eq!(m.drafts.mode_of(ALICE), ReplyMode::Draft, "shown at once");
    assert!(update(&mut m, Event::Drafts(read)).dirty);
    assert_eq!(m.drafts.mode_of(ALICE), ReplyMode::Auto, "as Redis says");
}

#[test]
fn each_reading_is_cleaned_and_a_changed_draft_is_shown_changed() {
    let mut m = busy();
    let read = |alice: &str| DraftsRead {
        drafts: vec![
            draft(ALICE, alice),
            draft(BOB, "bob's \u{1b}]0;pwned\u{7}draft"),
        ],
        ..DraftsRead::default()
    };
    update(&mut m, Event::Drafts(read("first")));
    let content = |m: &Model, id: &str| m.drafts.for_contact(id).map(|d| d.content.clone());
    assert_eq!(content(&m, BOB).as_deref(), Some("bob's draft"));
    assert!(update(&mut m, Event::Drafts(read("second \u{1b}[2Jtry"))).dirty);
    assert_eq!(content(&m, ALICE).as_deref(), Some("second try"));
    assert_eq!(
        content(&m, BOB).as_deref(),
        Some("bob's draft"),
        "kept as cleaned"
    );
    update(&mut m, Event::Drafts(DraftsRead::default()));
    assert_eq!(m.drafts.count(), 0);
}

#[test]
fn editing_a_draft_sends_the_edited_text_and_esc_keeps_it() {
    let mut m = with_draft();
    let original = "Sure, 19:30 works 👍 I'll bring the 日本 guidebook";
    // i, Ctrl-U, type, Enter: the new text is approved.
    let mut events = vec![key('i'), Event::Key(KeyInput::ctrl('u'))];
    events.extend(typed("日本語 ok"));
    events.push(code(KeyCode::Enter));
    assert_eq!(
        run(&mut m, events),
        vec![Action::Approve {
            contact_id: ALICE.into(),
            draft_id: format!("draft_m-{ALICE}"),
            text: Some("日本語 ok".into())
        }]
    );
    assert_eq!(m.mode, Mode::Normal);
    // Esc leaves the draft as it was, whatever was typed.
    let mut events = vec![key('i'), Event::Key(KeyInput::ctrl('u'))];
    events.extend(typed("gone"));
    events.push(code(KeyCode::Esc));
    assert!(run(&mut m, events).is_empty());
    assert_eq!(m.mode, Mode::Normal);
    assert_eq!(
        m.drafts.for_contact(ALICE).map(|d| d.content.as_str()),
        Some(original)
    );
    // Unchanged text approves the draft as written.
    assert_eq!(
        run(&mut m, vec![key('i'), code(KeyCode::Enter)]),
        vec![Action::Approve {
            contact_id: ALICE.into(),
            draft_id: format!("draft_m-{ALICE}"),
            text: None
        }]
    );
}

#[test]
fn the_editor_moves_by_character_and_line() {
    let mut m = with_draft();
    let mut events = vec![key('c')];
    events.extend(typed("日本語"));
    // Two left, a character, Home, another, End, Backspace, Delete at the end.
    events.extend([code(KeyCode::Left), code(KeyCode::Left), key('x')]);
    events.extend([code(KeyCode::Home), key('>'), code(KeyCode::End)]);
    events.extend([code(KeyCode::Backspace), code(KeyCode::Delete)]);
    run(&mut m, events);
    assert_eq!(editor_text(&m), ">日x本");
    // Alt-Enter breaks the line; Up goes back over it by display column.
    run(&mut m, vec![alt_enter(), key('a'), key('b'), key('c')]);
    assert_eq!(editor_text(&m), ">日x本\nabc");
    run(&mut m, vec![code(KeyCode::Up), key('|')]);
    assert_eq!(
        editor_text(&m),
        ">日|x本\nabc",
        "column 3 of the line above"
    );
    // Ctrl-U clears; Enter on nothing sends nothing and keeps the editor.
    let actions = run(
        &mut m,
        vec![Event::Key(KeyInput::ctrl('u')), code(KeyCode::Enter)],
    );
    assert!(actions.is_empty());
    assert_eq!(editor_text(&m), "");
    assert!(matches!(m.mode, Mode::Editor { .. }));
}

#[test]
fn a_multi_line_paste_goes_in_at_the_cursor_and_compose_sends_it() {
    let mut m = with_draft();
    run(&mut m, vec![key('j'), key('c')]);
    run(&mut m, typed("[]"));
    run(
        &mut m,
        vec![
            code(KeyCode::Left),
            Event::Paste("line one\r\nline two 👍🏽\rthree\u{1b}[31m".into()),
        ],
    );
    assert_eq!(editor_text(&m), "[line one\nline two 👍🏽\nthree]");
    assert_eq!(
        run(&mut m, vec![code(KeyCode::Enter)]),
        vec![Action::SendAsOwner {
            contact_id: BOB.into(),
            text: "[line one\nline two 👍🏽\nthree]".into()
        }]
    );
}

#[test]
fn the_editor_draws_wide_text_with_the_cursor_by_display_width() {
    let mut m = with_draft();
    let mut events = vec![key('c')];
    events.extend(typed("日本語"));
    events.extend([code(KeyCode::Left), code(KeyCode::Left)]);
    run(&mut m, events);
    let t = draw(&m, 80, 24);
    let text = screen_text(&t);
    assert!(
        text.contains("Writing to Alice Martin as yourself"),
        "{text}"
    );
    assert!(text.contains("enter send"), "editor hints: {text}");
    // The panel's text starts after its border; the cursor is on "本", two
    // columns (one wide character) in.
    let row = text
        .lines()
        .position(|l| l.contains("日本語"))
        .expect("the text on screen");
    let start = column_of(&t, row as u16, "日").expect("the first character");
    let cursor = reversed_cells(&t, 3)
        .into_iter()
        .filter(|(_, y)| *y == row as u16)
        .collect::<Vec<_>>();
    assert_eq!(cursor, vec![(start + 2, row as u16)], "{text}");
    assert_snapshot!(t.backend());
}

#[test]
fn a_decided_draft_leaves_the_screen_and_a_new_one_rings_when_asked() {
    let mut m = with_draft();
    let id = format!("draft_m-{ALICE}");
    let before = m.events.len();
    let r = update(
        &mut m,
        Event::DraftEvent {
            change: DraftChange::Approved,
            draft_id: id.clone(),
            contact_id: ALICE.into(),
        },
    );
    assert!(r.actions.is_empty());
    assert_eq!(m.drafts.count(), 0);
    assert_eq!(
        log_since(&m, before),
        vec!["Alice Martin: draft approved and sent"]
    );
    assert!(!screen_text(&draw(&m, 80, 24)).contains("not sent"));
    let created = || Event::DraftEvent {
        change: DraftChange::Created,
        draft_id: "draft_m2".into(),
        contact_id: BOB.into(),
    };
    assert!(update(&mut m, created()).actions.is_empty(), "bell off");
    m.bell = true;
    assert_eq!(update(&mut m, created()).actions, vec![Action::Bell]);
    // Only a new draft rings.
    let replaced = Event::DraftEvent {
        change: DraftChange::Replaced,
        draft_id: "draft_m3".into(),
        contact_id: BOB.into(),
    };
    assert!(update(&mut m, replaced).actions.is_empty());
}

#[test]
fn a_draft_decided_elsewhere_while_editing_is_said_so() {
    let mut m = with_draft();
    run(&mut m, vec![key('i')]);
    update(&mut m, Event::Drafts(DraftsRead::default()));
    let text = screen_text(&draw(&m, 80, 24));
    assert!(text.contains("no longer waiting"), "{text}");
    assert!(matches!(
        &m.mode,
        Mode::Editor {
            target: EditTarget::Draft { .. },
            ..
        }
    ));
}

#[test]
fn w_previews_what_the_twin_would_say() {
    let mut m = with_draft();
    assert_eq!(
        run(&mut m, vec![key('w')]),
        vec![Action::Preview {
            contact_id: ALICE.into()
        }]
    );
    assert!(screen_text(&draw(&m, 80, 24)).contains("the twin is writing…"));
    // An answer for another contact is not this popup's.
    update(
        &mut m,
        Event::Preview {
            contact_id: BOB.into(),
            reply: Ok("not for alice".into()),
        },
    );
    assert!(matches!(
        &m.mode,
        Mode::Preview {
            state: PreviewState::Waiting,
            ..
        }
    ));
    update(
        &mut m,
        Event::Preview {
            contact_id: ALICE.into(),
            reply: Ok("see you at 7 \u{1b}[2J👋".into()),
        },
    );
    let text = screen_text(&draw(&m, 80, 24));
    assert!(
        text.contains("The twin would say to Alice Martin"),
        "{text}"
    );
    assert!(
        text.contains("see you at 7 [2J👋") || text.contains("see you at 7 👋"),
        "{text}"
    );
    assert!(!text.contains('\u{1b}'));
    assert!(text.contains("nothing was sent"), "{text}");
    run(&mut m, vec![code(KeyCode::Esc)]);
    assert_eq!(m.mode, Mode::Normal);
}

#[test]
fn a_thousand_drafts_are_counted_and_marked() {
    let mut m = busy();
    let drafts = (0..1000)
        .map(|i| draft(&format!("3161234{i:04}@s.whatsapp.net"), "ok"))
        .collect();
    update(
        &mut m,
        Event::Drafts(DraftsRead {
            drafts,
            ..DraftsRead::default()
        }),
    );
    let text = screen_text(&draw(&m, 80, 24));
    assert!(text.contains("drafts 1000"), "{text}");
    assert!(text.matches('✎').count() >= 6, "pens in the list: {text}");
}
