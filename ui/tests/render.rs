mod common;

use common::*;
use insta::assert_snapshot;
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::style::{Color, Modifier};
use secondme_ui::{
    Connection, Event, KeyCode, Mode, Model, Pause, PauseReason, SessionInfo, Theme, update,
};

const WHATSAPP_LIKE: &str = "2@Xk3p9ZfQ0aV7bL1mN5cR8tY2uI4oP6sD0fG3hJ5kL7zX9cV1bN3mQ5wE7rT9yU1iO3pA5sD7fG9hJ1kL3zX5cV7bN9m,\
    Qw8Er7Ty6Ui5Op4As3Df2Gh1Jk0Lz9Xc8Vb7Nm6Qw5Er4Ty3=,Ui2Op1As0Df9Gh8Jk7Lz6Xc5Vb4Nm3Qw2Er1Ty0Ui9=,Op8As7Df6Gh5Jk4Lz3Xc2Vb1Nm0Qw==";

fn screen(model: &Model, w: u16, h: u16) -> Terminal<TestBackend> {
    draw(model, w, h)
}

fn text_of(t: &Terminal<TestBackend>) -> String {
    t.backend()
        .buffer()
        .content()
        .iter()
        .map(|c| c.symbol())
        .collect()
}

#[test]
fn empty_80x24() {
    assert_snapshot!(screen(&empty(), 80, 24).backend());
}

#[test]
fn busy_80x24() {
    assert_snapshot!(screen(&busy(), 80, 24).backend());
}

#[test]
fn busy_160x48() {
    assert_snapshot!(screen(&busy(), 160, 48).backend());
}

#[test]
fn busy_events_focused_120x30() {
    let mut m = busy();
    update(&mut m, code(KeyCode::BackTab));
    assert_snapshot!(screen(&m, 120, 30).backend());
}

#[test]
fn paused_countdowns_three_reasons() {
    let mut m = three();
    let pauses = [
        (Some(NOW + 14 * MIN + 59_000), PauseReason::Manual),
        (Some(NOW + 65 * MIN), PauseReason::Takeover),
        (Some(NOW + 9_500), PauseReason::RateLimit),
    ];
    for (c, (at, reason)) in m.contacts.iter_mut().zip(pauses) {
        c.pause = Some(Pause {
            expires_at_ms: at,
            reason,
        });
    }
    let t = screen(&m, 80, 24);
    let text = text_of(&t);
    assert!(text.contains("paused 14:59 manual"));
    assert!(text.contains("paused 1:05:00 takeover"));
    assert!(text.contains("paused 00:10 rate limit"));
    assert_snapshot!(t.backend());
}

#[test]
fn kill_switch_on() {
    let mut m = busy();
    m.kill_switch = Some(NOW - 5 * MIN);
    let t = screen(&m, 80, 24);
    assert!(text_of(&t).contains("KILL SWITCH ON"));
    assert_snapshot!(t.backend());
}

#[test]
fn kill_switch_banner_visible_without_color() {
    let mut m = busy_with(Theme::no_color());
    m.kill_switch = Some(NOW - 5 * MIN);
    let t = screen(&m, 80, 24);
    let buf = t.backend().buffer();
    for x in 0..80 {
        let cell = &buf[(x, 0)];
        assert!(
            cell.modifier.contains(Modifier::REVERSED),
            "banner cell {x} not reversed"
        );
        assert_eq!(cell.fg, Color::Reset);
        assert_eq!(cell.bg, Color::Reset);
    }
}

#[test]
fn qr_overlay_80x24() {
    let mut m = empty();
    update(
        &mut m,
        Event::QrEvent {
            payload: "hello".into(),
            expires_in_s: 60,
        },
    );
    update(
        &mut m,
        Event::Tick {
            now_ms: NOW + 18_000,
        },
    );
    let t = screen(&m, 80, 24);
    assert!(text_of(&t).contains("expires in 42s"));
    assert_snapshot!(t.backend());
}

#[test]
fn qr_overlay_whatsapp_sized_160x48() {
    let mut m = empty();
    update(
        &mut m,
        Event::QrEvent {
            payload: WHATSAPP_LIKE.into(),
            expires_in_s: 20,
        },
    );
    assert_snapshot!(screen(&m, 160, 48).backend());
}

#[test]
fn qr_too_small() {
    let mut m = empty();
    update(
        &mut m,
        Event::QrEvent {
            payload: WHATSAPP_LIKE.into(),
            expires_in_s: 20,
        },
    );
    let t = screen(&m, 80, 24);
    assert!(text_of(&t).contains("Enlarge the terminal"));
    assert!(!text_of(&t).contains('▀'));
    assert_snapshot!(t.backend());
}

#[test]
fn qr_expired() {
    let mut m = empty();
    update(
        &mut m,
        Event::QrEvent {
            payload: "hello".into(),
            expires_in_s: 20,
        },
    );
    update(
        &mut m,
        Event::Tick {
            now_ms: NOW + 21_000,
        },
    );
    let t = screen(&m, 80, 24);
    assert!(text_of(&t).contains("expired - waiting for a new code"));
    assert_snapshot!(t.backend());
}

#[test]
fn qr_hidden_once_logged_in() {
    let mut m = empty();
    update(
        &mut m,
        Event::QrEvent {
            payload: "hello".into(),
            expires_in_s: 60,
        },
    );
    update(
        &mut m,
        Event::SessionChanged(Some(SessionInfo {
            connected_at_ms: NOW,
            expires_at_ms: NOW + 3_600_000,
        })),
    );
    assert!(m.qr.is_none());
    assert!(!text_of(&screen(&m, 80, 24)).contains("Scan with WhatsApp"));
}

#[test]
fn too_small_terminal() {
    assert_snapshot!(screen(&busy(), 50, 12).backend());
}

#[test]
fn tiny_terminals_do_not_panic() {
    for (w, h) in [
        (0, 0),
        (1, 1),
        (5, 2),
        (59, 16),
        (60, 15),
        (60, 16),
        (61, 17),
    ] {
        let mut m = busy();
        m.mode = Mode::Help;
        screen(&m, w, h);
        update(
            &mut m,
            Event::QrEvent {
                payload: WHATSAPP_LIKE.into(),
                expires_in_s: 20,
            },
        );
        m.session = None;
        screen(&m, w, h);
    }
}

#[test]
fn minimum_size_60x16() {
    assert_snapshot!(screen(&busy(), 60, 16).backend());
}

#[test]
fn help_overlay() {
    let mut m = busy();
    update(&mut m, key('?'));
    let t = screen(&m, 80, 24);
    let text = text_of(&t);
    for (action, _) in m.keymap.bindings() {
        assert!(
            text.contains(action.description()),
            "missing {}",
            action.description()
        );
    }
    assert_snapshot!(t.backend());
}

#[test]
fn help_overlay_min_size_lists_everything() {
    let mut m = busy();
    update(&mut m, key('?'));
    let text = text_of(&screen(&m, 60, 16));
    for (action, _) in m.keymap.bindings() {
        let label = m.keymap.keys_label(*action);
        assert!(text.contains(&label), "missing {label}");
    }
}

#[test]
fn asleep_in_sleep_hours() {
    let mut m = busy();
    update(
        &mut m,
        Event::WorkerProgress(secondme_ui::WorkerState::Asleep {
            until_minute: 7 * 60,
        }),
    );
    let t = screen(&m, 80, 24);
    assert!(
        text_of(&t).contains("asleep until 07:00"),
        "{}",
        text_of(&t)
    );
    assert_snapshot!(t.backend());
}

#[test]
fn disconnected() {
    let mut m = busy();
    update(
        &mut m,
        Event::Connection(Connection::Disconnected {
            since_ms: NOW - 42_000,
            retrying: true,
            last_error: "Connection refused (os error 111)".into(),
        }),
    );
    let t = screen(&m, 80, 24);
    assert!(text_of(&t).contains("DISCONNECTED - retrying"));
    assert_snapshot!(t.backend());
}

#[test]
fn filter_active() {
    let mut m = busy();
    update(&mut m, key('/'));
    for c in "al".chars() {
        update(&mut m, key(c));
    }
    assert_eq!(m.filter, "al");
    assert_snapshot!(screen(&m, 80, 24).backend());
}

#[test]
fn pause_prompt() {
    let mut m = busy();
    update(&mut m, key('p'));
    update(&mut m, code(KeyCode::Down));
    assert_snapshot!(screen(&m, 80, 24).backend());
    update(&mut m, key('4'));
    update(&mut m, key('5'));
    assert_snapshot!("pause_prompt_custom", screen(&m, 80, 24).backend());
}

#[test]
fn kill_confirm() {
    let mut m = busy();
    update(&mut m, key('K'));
    let t = screen(&m, 80, 24);
    assert!(text_of(&t).contains("Turn kill switch ON? y/n"));
    assert_snapshot!(t.backend());
}

#[test]
fn quitting() {
    let mut m = busy();
    update(&mut m, key('q'));
    update(
        &mut m,
        Event::WorkerProgress(secondme_ui::WorkerState::Draining { left: 2 }),
    );
    assert_snapshot!(screen(&m, 80, 24).backend());
}

#[test]
fn queue_critical() {
    let mut m = busy();
    m.stats.queue_len = 950;
    let t = screen(&m, 80, 24);
    assert!(text_of(&t).contains("950/1000 !!"));
}

fn assert_no_color(t: &Terminal<TestBackend>) {
    for cell in t.backend().buffer().content() {
        assert_eq!(cell.fg, Color::Reset, "fg set on {:?}", cell.symbol());
        assert_eq!(cell.bg, Color::Reset, "bg set on {:?}", cell.symbol());
    }
}

#[test]
fn no_color_theme_uses_no_colors() {
    let mut m = busy_with(Theme::no_color());
    let t = screen(&m, 80, 24);
    assert_no_color(&t);
    assert_snapshot!(t.backend());
    m.kill_switch = Some(NOW);
    assert_no_color(&screen(&m, 160, 48));
    m.mode = Mode::Help;
    assert_no_color(&screen(&m, 80, 24));
    m.mode = Mode::ConfirmKill { on: false };
    assert_no_color(&screen(&m, 80, 24));
    m.mode = Mode::Normal;
    m.session = None;
    update(
        &mut m,
        Event::QrEvent {
            payload: "hello".into(),
            expires_in_s: 60,
        },
    );
    update(
        &mut m,
        Event::Connection(Connection::Disconnected {
            since_ms: NOW,
            retrying: true,
            last_error: "x".into(),
        }),
    );
    let t = screen(&m, 80, 24);
    assert!(text_of(&t).contains('▀'));
    assert_no_color(&t);
}

#[test]
fn light_theme_renders_same_text() {
    let dark = text_of(&screen(&busy(), 80, 24));
    let light = text_of(&screen(&busy_with(Theme::light()), 80, 24));
    assert_eq!(dark, light);
}

#[test]
fn escape_sequences_in_messages_never_reach_the_buffer() {
    let mut m = three();
    update(
        &mut m,
        Event::MessageEvent {
            message_id: "evil".into(),
            contact_id: "111@s.whatsapp.net".into(),
            text: "hi\x1b[2J\x1b]0;pwned\x07 there \u{9b}31m\u{202e}".into(),
            bot_sent: false,
            from_person: false,
            timestamp_ms: NOW,
        },
    );
    let text = text_of(&screen(&m, 80, 24));
    assert!(text.contains("hi there"));
    assert!(!text.contains("[2J"));
    assert!(!text.contains("pwned"));
    assert!(!text.contains("31m"));
    assert!(!text.contains('\x1b'));
    assert!(!text.contains('\u{202e}'));
}

#[test]
fn weird_text_does_not_panic() {
    let mut m = three();
    for (i, text) in [
        "",
        " ",
        "\n\n\n",
        "👨‍👩‍👧‍👦".repeat(50).as_str(),
        "世".repeat(300).as_str(),
        "a\u{301}\u{301}\u{301}",
    ]
    .iter()
    .enumerate()
    {
        update(
            &mut m,
            Event::MessageEvent {
                message_id: format!("w{i}"),
                contact_id: "111@s.whatsapp.net".into(),
                text: text.to_string(),
                bot_sent: i % 2 == 0,
                from_person: false,
                timestamp_ms: NOW,
            },
        );
    }
    m.contacts[0].name = Some("世".repeat(100));
    for (w, h) in [(60, 16), (80, 24), (81, 25), (160, 48)] {
        screen(&m, w, h);
    }
}

#[test]
fn a_setup_warning_stays_under_the_status_bar_until_cleared() {
    let mut m = busy();
    let warning = "Redis may evict SecondMe's keys (maxmemory-policy allkeys-lru): \
                   CONFIG SET maxmemory-policy noeviction \u{1b}]0;pwn\u{7}";
    assert!(update(&mut m, Event::SetupWarning(Some(warning.into()))).dirty);
    let text = text_of(&screen(&m, 160, 30));
    assert!(text.contains("⚠ Redis may evict SecondMe's keys (maxmemory-policy allkeys-lru)"));
    assert!(!text.contains("pwn"), "the warning is sanitized");
    assert!(!update(&mut m, Event::SetupWarning(Some(warning.into()))).dirty);
    assert!(update(&mut m, Event::SetupWarning(None)).dirty);
    assert!(!text_of(&screen(&m, 160, 30)).contains("may evict"));
}
