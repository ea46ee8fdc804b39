mod common;

use common::*;
use secondme_ui::{Action, Event, KeyCode, KeyInput, Keymap, Mode, Pane, update};

fn run(model: &mut secondme_ui::Model, events: Vec<Event>) -> Vec<Action> {
    events
        .into_iter()
        .flat_map(|e| update(model, e).actions)
        .collect()
}

#[test]
fn j_j_p_enter_pauses_third_contact_for_15_min() {
    let mut m = three();
    let actions = run(
        &mut m,
        vec![key('j'), key('j'), key('p'), code(KeyCode::Enter)],
    );
    assert_eq!(
        actions,
        vec![Action::Pause {
            contact_id: "333@s.whatsapp.net".into(),
            duration_ms: 15 * MIN
        }]
    );
    assert_eq!(m.mode, Mode::Normal);
}

#[test]
fn pause_down_down_enter_is_8_hours() {
    let mut m = three();
    let actions = run(
        &mut m,
        vec![
            key('p'),
            code(KeyCode::Down),
            code(KeyCode::Down),
            code(KeyCode::Enter),
        ],
    );
    assert_eq!(
        actions,
        vec![Action::Pause {
            contact_id: "111@s.whatsapp.net".into(),
            duration_ms: 8 * 60 * MIN
        }]
    );
}

#[test]
fn pause_custom_45_minutes() {
    let mut m = three();
    let mut events = vec![key('p')];
    events.extend(std::iter::repeat_with(|| code(KeyCode::Down)).take(3));
    events.extend([key('4'), key('5'), code(KeyCode::Enter)]);
    let actions = run(&mut m, events);
    assert_eq!(
        actions,
        vec![Action::Pause {
            contact_id: "111@s.whatsapp.net".into(),
            duration_ms: 45 * MIN
        }]
    );
}

#[test]
fn pause_custom_empty_keeps_prompt_and_esc_cancels() {
    let mut m = three();
    let mut events = vec![key('p')];
    events.extend(std::iter::repeat_with(|| code(KeyCode::Down)).take(3));
    events.push(code(KeyCode::Enter));
    assert!(run(&mut m, events).is_empty());
    assert!(matches!(m.mode, Mode::PauseDurationPrompt { .. }));
    assert!(run(&mut m, vec![code(KeyCode::Esc)]).is_empty());
    assert_eq!(m.mode, Mode::Normal);
}

#[test]
fn pasted_digits_fill_custom_minutes() {
    let mut m = three();
    run(&mut m, vec![key('p'), Event::Paste("9x0\x1b[2J".into())]);
    let actions = run(&mut m, vec![code(KeyCode::Enter)]);
    assert_eq!(
        actions,
        vec![Action::Pause {
            contact_id: "111@s.whatsapp.net".into(),
            duration_ms: 90 * MIN
        }]
    );
}

#[test]
fn kill_switch_confirmation() {
    let mut m = three();
    assert_eq!(
        run(&mut m, vec![key('K'), key('y')]),
        vec![Action::KillSwitch { on: true }]
    );
    m.kill_switch = Some(NOW);
    assert_eq!(
        run(&mut m, vec![key('K'), key('y')]),
        vec![Action::KillSwitch { on: false }]
    );
    assert!(run(&mut m, vec![key('K'), key('n')]).is_empty());
    assert_eq!(m.mode, Mode::Normal);
    assert!(run(&mut m, vec![key('K'), code(KeyCode::Esc)]).is_empty());
    assert_eq!(m.mode, Mode::Normal);
}

#[test]
fn toggle_enabled_and_resume() {
    let mut m = three();
    assert_eq!(
        run(&mut m, vec![key('e')]),
        vec![Action::SetEnabled {
            contact_id: "111@s.whatsapp.net".into(),
            enabled: false
        }]
    );
    m.contacts.iter_mut().for_each(|c| c.enabled = false);
    assert_eq!(
        run(&mut m, vec![key('j'), key('e')]),
        vec![Action::SetEnabled {
            contact_id: "222@s.whatsapp.net".into(),
            enabled: true
        }]
    );
    assert_eq!(
        run(&mut m, vec![key('r')]),
        vec![Action::Resume {
            contact_id: "222@s.whatsapp.net".into()
        }]
    );
}

#[test]
fn quit_keys() {
    let mut m = three();
    assert_eq!(run(&mut m, vec![key('q')]), vec![Action::Quit]);
    assert!(matches!(m.mode, Mode::Quitting { .. }));
    // Only ctrl-c does anything while quitting.
    assert!(run(&mut m, vec![key('q')]).is_empty());
    assert_eq!(
        run(&mut m, vec![Event::Key(KeyInput::ctrl('c'))]),
        vec![Action::Quit]
    );
    let mut m = three();
    assert_eq!(
        run(&mut m, vec![Event::Key(KeyInput::ctrl('c'))]),
        vec![Action::Quit]
    );
}

#[test]
fn quitting_shows_drain_progress() {
    let mut m = three();
    run(
        &mut m,
        vec![
            key('q'),
            Event::WorkerProgress(secondme_ui::WorkerState::Draining { left: 4 }),
        ],
    );
    assert_eq!(
        m.mode,
        Mode::Quitting {
            progress: "draining the worker: 4 job(s) left".into()
        }
    );
}

#[test]
fn filter_then_select_applies_to_filtered_list() {
    let mut m = three();
    let actions = run(
        &mut m,
        vec![
            key('/'),
            key('c'),
            key('a'),
            key('r'),
            code(KeyCode::Enter),
            key('r'),
        ],
    );
    assert_eq!(
        actions,
        vec![Action::Resume {
            contact_id: "333@s.whatsapp.net".into()
        }]
    );
    assert_eq!(m.filter, "car");
    // Filter matches ids too.
    run(&mut m, vec![key('/'), code(KeyCode::Esc)]);
    assert_eq!(m.filter, "");
    let actions = run(
        &mut m,
        vec![key('/'), key('2'), key('2'), code(KeyCode::Enter), key('e')],
    );
    assert_eq!(
        actions,
        vec![Action::SetEnabled {
            contact_id: "222@s.whatsapp.net".into(),
            enabled: false
        }]
    );
}

#[test]
fn filter_typing_does_not_trigger_bindings() {
    let mut m = three();
    let actions = run(&mut m, vec![key('/'), key('q'), key('p'), key('K')]);
    assert!(actions.is_empty());
    assert_eq!(m.filter, "qpK");
}

#[test]
fn keymap_override_works() {
    let mut m = three();
    m.keymap = Keymap::from_overrides(&[
        ("pause".into(), "P".into()),
        ("down".into(), "x, down".into()),
    ])
    .expect("valid overrides");
    assert!(run(&mut m, vec![key('p')]).is_empty());
    let actions = run(&mut m, vec![key('x'), key('P'), code(KeyCode::Enter)]);
    assert_eq!(
        actions,
        vec![Action::Pause {
            contact_id: "222@s.whatsapp.net".into(),
            duration_ms: 15 * MIN
        }]
    );
}

#[test]
fn bad_override_is_an_error() {
    assert!(Keymap::from_overrides(&[("pause".into(), "ctrl-".into())]).is_err());
    assert!(Keymap::from_overrides(&[("pause".into(), "hyper-x".into())]).is_err());
    assert!(Keymap::from_overrides(&[("fly".into(), "f".into())]).is_err());
    assert!(Keymap::from_overrides(&[("quit".into(), "j".into())]).is_err());
}

#[test]
fn tab_cycles_focus_and_help_toggles() {
    let mut m = three();
    run(&mut m, vec![code(KeyCode::Tab)]);
    assert_eq!(m.focus, Pane::Conversation);
    run(&mut m, vec![code(KeyCode::Tab), code(KeyCode::Tab)]);
    assert_eq!(m.focus, Pane::Contacts);
    run(&mut m, vec![code(KeyCode::BackTab)]);
    assert_eq!(m.focus, Pane::Events);
    run(&mut m, vec![key('?')]);
    assert_eq!(m.mode, Mode::Help);
    run(&mut m, vec![code(KeyCode::Esc)]);
    assert_eq!(m.mode, Mode::Normal);
}

#[test]
fn selection_clamps_and_home_end() {
    let mut m = three();
    run(&mut m, vec![key('k'), key('k')]);
    assert_eq!(m.selected.as_deref(), Some("111@s.whatsapp.net"));
    run(&mut m, vec![code(KeyCode::End)]);
    assert_eq!(m.selected.as_deref(), Some("333@s.whatsapp.net"));
    run(&mut m, vec![code(KeyCode::PageDown)]);
    assert_eq!(m.selected.as_deref(), Some("333@s.whatsapp.net"));
    run(&mut m, vec![code(KeyCode::Home)]);
    assert_eq!(m.selected.as_deref(), Some("111@s.whatsapp.net"));
}

#[test]
fn dirty_flags() {
    let mut m = three();
    assert!(update(&mut m, key('j')).dirty);
    assert!(
        !update(&mut m, key('z')).dirty,
        "unbound key changes nothing"
    );
    assert!(
        !update(&mut m, Event::Tick { now_ms: NOW + 500 }).dirty,
        "no countdown visible"
    );
    m.contacts[0].pause = Some(secondme_ui::Pause {
        expires_at_ms: Some(NOW + 10 * MIN),
        reason: secondme_ui::PauseReason::Manual,
    });
    assert!(
        update(&mut m, Event::Tick { now_ms: NOW + 1000 }).dirty,
        "second changed"
    );
    assert!(
        !update(&mut m, Event::Tick { now_ms: NOW + 1200 }).dirty,
        "same second"
    );
    assert!(
        update(
            &mut m,
            Event::Tick {
                now_ms: NOW + 10 * MIN
            }
        )
        .dirty,
        "pause expired"
    );
    assert!(m.contacts[0].pause.is_none());
}

#[test]
fn pause_events_update_contacts_and_kill_switch() {
    let mut m = three();
    update(
        &mut m,
        Event::PauseEvent {
            contact_id: "222@s.whatsapp.net".into(),
            action: secondme_ui::PauseAction::Pause,
            expires_at_ms: Some(NOW + MIN),
            reason: secondme_ui::PauseReason::Takeover,
        },
    );
    let bob = m
        .contact("222@s.whatsapp.net")
        .and_then(|c| c.pause.clone())
        .expect("paused");
    assert_eq!(bob.reason, secondme_ui::PauseReason::Takeover);
    update(
        &mut m,
        Event::PauseEvent {
            contact_id: "ALL".into(),
            action: secondme_ui::PauseAction::Pause,
            expires_at_ms: None,
            reason: secondme_ui::PauseReason::Manual,
        },
    );
    assert_eq!(m.kill_switch, Some(NOW));
    assert!(m.contact("ALL").is_none());
}

#[test]
fn a_kill_switch_from_lost_state_says_why() {
    let mut m = three();
    use secondme_ui::PauseReason;
    let all = |action, reason| Event::PauseEvent {
        contact_id: "ALL".into(),
        action,
        expires_at_ms: None,
        reason,
    };
    update(
        &mut m,
        all(secondme_ui::PauseAction::Pause, PauseReason::StateLost),
    );
    let line = m.events.back().map(|l| l.text.clone()).unwrap_or_default();
    assert!(line.contains("Redis lost SecondMe's state"), "{line}");
    update(
        &mut m,
        all(secondme_ui::PauseAction::Resume, PauseReason::Manual),
    );
    update(
        &mut m,
        all(secondme_ui::PauseAction::Pause, PauseReason::Manual),
    );
    let line = m.events.back().map(|l| l.text.clone()).unwrap_or_default();
    assert_eq!(line, "kill switch ON: the twin is paused for everyone");
}

#[test]
fn messages_are_deduplicated_and_sorted_by_activity() {
    let mut m = three();
    let ev = || Event::MessageEvent {
        message_id: "x1".into(),
        contact_id: "333@s.whatsapp.net".into(),
        text: "hi".into(),
        bot_sent: false,
        from_person: false,
        timestamp_ms: NOW,
    };
    assert!(update(&mut m, ev()).dirty);
    assert!(!update(&mut m, ev()).dirty);
    assert_eq!(m.visible_contacts()[0].id, "333@s.whatsapp.net");
    assert_eq!(m.conversations["333@s.whatsapp.net"].messages.len(), 1);
}

#[test]
fn an_outage_logs_once_per_error_and_counts_from_its_start() {
    use secondme_ui::Connection;
    let mut m = three();
    let before = m.events.len();
    let down = |at: i64, error: &str| {
        Event::Connection(Connection::Disconnected {
            since_ms: at,
            retrying: true,
            last_error: error.into(),
        })
    };
    for (at, error) in [
        (1_000, "connection to Redis lost"),
        (3_000, "Connection refused (os error 111)"),
        (5_000, "Connection refused (os error 111)"),
        (7_000, "Connection refused (os error 111)"),
    ] {
        update(&mut m, down(at, error));
    }
    let texts = log_since(&m, before);
    assert_eq!(
        texts,
        vec![
            "redis disconnected: connection to Redis lost",
            "redis disconnected: Connection refused (os error 111)"
        ]
    );
    assert!(
        matches!(
            m.connection,
            Connection::Disconnected {
                since_ms: 1_000,
                ..
            }
        ),
        "{:?}",
        m.connection
    );
    update(
        &mut m,
        Event::Connection(Connection::Connected { rtt_ms: 1 }),
    );
    assert_eq!(
        m.events.back().map(|l| l.text.as_str()),
        Some("redis connected")
    );
}

#[test]
fn entering_and_leaving_sleep_hours_is_logged_once() {
    use secondme_ui::WorkerState;
    let mut m = three();
    let before = m.events.len();
    for state in [
        WorkerState::Running,
        WorkerState::Asleep { until_minute: 420 },
        WorkerState::Asleep { until_minute: 420 },
        // A disconnection and reconnection in the night is not news.
        WorkerState::Off,
        WorkerState::Asleep { until_minute: 420 },
        WorkerState::Running,
    ] {
        update(&mut m, Event::WorkerProgress(state));
    }
    let texts = log_since(&m, before);
    assert_eq!(
        texts,
        vec![
            "sleep hours: no automated replies until 07:00",
            "sleep hours over: the twin answers again"
        ]
    );
}
