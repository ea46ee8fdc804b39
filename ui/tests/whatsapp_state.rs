//! The WhatsApp gateway's state in the control room: the status bar's text for
//! every state (80 columns and wider), the pair-code and codes-ran-out panels,
//! and the key that asks for new codes.

mod common;

use common::*;
use insta::assert_snapshot;
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use secondme_ui::{
    Action, Event, GatewayPhase, GatewayState, KeyInput, Keymap, Model, QrCode, update,
};

const SEC: i64 = 1000;

fn state(phase: GatewayPhase) -> GatewayState {
    GatewayState::new(phase, NOW - 2 * MIN)
}

/// `busy()` (redis up, logged in, worker running) with the gateway in `s`.
fn busy_in(s: GatewayState) -> Model {
    let mut m = busy();
    update(&mut m, Event::GatewayState(Some(s)));
    m
}

fn rows(t: &Terminal<TestBackend>) -> Vec<String> {
    let buf = t.backend().buffer();
    let w = usize::from(buf.area.width);
    buf.content()
        .chunks(w)
        .map(|row| row.iter().map(|c| c.symbol()).collect())
        .collect()
}

fn screen_text(t: &Terminal<TestBackend>) -> String {
    rows(t).join("\n")
}

/// Every state with what the bar says of it (NOW is 22:13:20 UTC).
fn every_state() -> Vec<(GatewayState, &'static str)> {
    let with = |phase, f: &dyn Fn(&mut GatewayState)| {
        let mut s = state(phase);
        f(&mut s);
        s
    };
    vec![
        (
            state(GatewayPhase::Standby),
            "WA standing by (another gateway is connected)",
        ),
        (state(GatewayPhase::Connecting), "WA connecting…"),
        (state(GatewayPhase::WaitingForScan), "WA waiting for scan"),
        (
            with(GatewayPhase::PairCode, &|s| {
                s.code = Some("ABCD1234".into());
                s.until_ms = Some(NOW + 150 * SEC);
            }),
            "WA pair code ABCD-1234 (2m left)",
        ),
        (
            state(GatewayPhase::CodesExhausted),
            "WA codes ran out: press n",
        ),
        (
            with(GatewayPhase::Connected, &|s| {
                s.name = Some("Alice Martin".into())
            }),
            "WA connected as Alice Martin",
        ),
        (
            with(GatewayPhase::Reconnecting, &|s| {
                s.next_try_ms = Some(NOW + 5 * SEC);
            }),
            "WA reconnecting since 22:11, next try in 5s",
        ),
        (
            with(GatewayPhase::NoNetwork, &|s| {
                s.since_ms = NOW - 10 * MIN;
                s.next_try_ms = Some(NOW + 30 * SEC);
                s.detail = Some("cannot resolve web.whatsapp.com".into());
            }),
            "WA no network since 22:03, next try in 30s",
        ),
        (state(GatewayPhase::LoggedOut), "WA logged out"),
        (
            state(GatewayPhase::Replaced),
            "WA replaced by another instance",
        ),
        (
            with(GatewayPhase::Banned, &|s| {
                s.until_ms = Some(NOW + 3 * 60 * MIN)
            }),
            "WA temporarily banned until 01:13",
        ),
        (state(GatewayPhase::Stopped), "WA stopped"),
    ]
}

#[test]
fn the_bar_tells_every_whatsapp_state_whole_at_80_columns_and_wider() {
    for (s, expected) in every_state() {
        let m = busy_in(s);
        for (w, h) in [(80, 24), (120, 30), (160, 48)] {
            let t = draw(&m, w, h);
            let bar = rows(&t)[0].clone();
            assert!(
                bar.contains(expected),
                "{w}x{h}: {bar:?} lacks {expected:?}"
            );
            // Compact enough that the rest of the line still fits.
            assert!(bar.contains("redis 3ms"), "{w}x{h}: {bar:?}");
            assert!(bar.contains("worker running"), "{w}x{h}: {bar:?}");
            // The gateway's word replaces the session key's.
            assert!(!bar.contains("logged in since"), "{w}x{h}: {bar:?}");
        }
    }
}

#[test]
fn without_a_gateway_state_the_bar_shows_the_session_as_before() {
    let m = busy();
    let bar = rows(&draw(&m, 80, 24))[0].clone();
    assert!(bar.contains("logged in since"), "{bar:?}");
    assert!(!bar.contains("WA "), "{bar:?}");
}

#[test]
fn an_expired_state_turns_into_gateway_gone_and_is_logged_once() {
    let mut connected = state(GatewayPhase::Connected);
    connected.name = Some("Alice".into());
    let mut m = busy_in(connected);
    let before = m.events.len();
    let r = update(&mut m, Event::GatewayState(None));
    assert!(r.dirty);
    let bar = rows(&draw(&m, 80, 24))[0].clone();
    assert!(bar.contains("WA gateway gone since 22:13"), "{bar:?}");
    assert!(!bar.contains("connected as"), "{bar:?}");
    assert_eq!(
        log_since(&m, before),
        vec!["WhatsApp: the gateway is gone (its state expired)"]
    );
    // Still gone a second later: nothing new to say or draw.
    assert!(!update(&mut m, Event::GatewayState(None)).dirty);
    assert_eq!(m.events.len(), before + 1);
    // A gateway that starts again is shown again.
    update(
        &mut m,
        Event::GatewayState(Some(state(GatewayPhase::Connecting))),
    );
    assert!(rows(&draw(&m, 80, 24))[0].contains("WA connecting…"));
}

#[test]
fn no_state_ever_seen_leaves_the_bar_alone() {
    let mut m = busy();
    assert!(!update(&mut m, Event::GatewayState(None)).dirty);
    assert_eq!(m.gateway, None);
}

#[test]
fn gateway_text_is_cleaned_before_it_reaches_the_terminal() {
    let mut s = state(GatewayPhase::Connected);
    s.name = Some("Eve\x1b[2J\u{202e}lin\u{7}".into());
    let m = busy_in(s);
    let name = m
        .gateway
        .as_ref()
        .and_then(|g| g.name.clone())
        .unwrap_or_default();
    assert!(
        !name.chars().any(|c| c.is_control() || c == '\u{202e}'),
        "{name:?}"
    );
    assert!(rows(&draw(&m, 80, 24))[0].contains("WA connected as Eve"));

    let mut p = state(GatewayPhase::PairCode);
    p.code = Some("AB\x1b[31mCD-12 34".into());
    let m = busy_in(p);
    let code = m.gateway.as_ref().and_then(|g| g.code.clone());
    assert_eq!(code.as_deref(), Some("AB31mCD1234"));
}

fn pair_code_model() -> Model {
    let mut s = state(GatewayPhase::PairCode);
    s.code = Some("ABCD1234".into());
    s.until_ms = Some(NOW + 150 * SEC);
    let mut m = busy_in(s);
    // A QR code still in Redis from before is stale once a pair code is up.
    m.session = None;
    m.qr = Some(QrCode {
        payload: "stale".into(),
        received_at_ms: NOW,
        expires_in_s: 60,
    });
    m
}

#[test]
fn the_pair_code_panel_shows_the_code_the_way_and_the_expiry() {
    let m = pair_code_model();
    for (w, h) in [(80, 24), (160, 48), (60, 16)] {
        let text = screen_text(&draw(&m, w, h));
        assert!(text.contains("A B C D - 1 2 3 4"), "{w}x{h}:\n{text}");
        assert!(
            text.contains("Link WhatsApp with a phone number"),
            "{w}x{h}"
        );
        assert!(
            text.contains("WhatsApp > Linked devices > Link with phone number"),
            "{w}x{h}:\n{text}"
        );
        assert!(text.contains("expires in 02:30"), "{w}x{h}:\n{text}");
        assert!(!text.contains("Scan with WhatsApp"), "{w}x{h}: QR drawn");
    }
    assert_snapshot!(draw(&m, 80, 24).backend());
}

#[test]
fn the_pair_code_countdown_ticks_and_then_says_expired() {
    let mut m = pair_code_model();
    assert!(update(&mut m, Event::Tick { now_ms: NOW + SEC }).dirty);
    assert!(screen_text(&draw(&m, 80, 24)).contains("expires in 02:29"));
    update(
        &mut m,
        Event::Tick {
            now_ms: NOW + 151 * SEC,
        },
    );
    let text = screen_text(&draw(&m, 80, 24));
    assert!(text.contains("expired - waiting for a new code"), "{text}");
}

#[test]
fn the_codes_ran_out_panel_says_so_and_names_the_key() {
    let m = busy_in(state(GatewayPhase::CodesExhausted));
    for (w, h) in [(80, 24), (120, 30)] {
        let text = screen_text(&draw(&m, w, h));
        assert!(text.contains("The login codes ran out"), "{w}x{h}:\n{text}");
        assert!(text.contains("Press n to ask for new ones."), "{w}x{h}");
        assert!(rows(&draw(&m, w, h))[0].contains("WA codes ran out: press n"));
    }
    assert_snapshot!(draw(&m, 80, 24).backend());

    let mut rebound = m.clone();
    rebound.keymap =
        Keymap::from_overrides(&[("new_codes".into(), "N".into())]).expect("valid binding");
    let text = screen_text(&draw(&rebound, 80, 24));
    assert!(text.contains("Press N to ask for new ones."), "{text}");
    assert!(text.contains("WA codes ran out: press N"), "{text}");
}

#[test]
fn n_asks_for_new_codes_only_after_they_ran_out_and_says_why_not() {
    let n = || Event::Key(KeyInput::char('n'));
    let mut m = busy();
    let before = m.events.len();
    let r = update(&mut m, n());
    assert!(r.actions.is_empty());
    assert_eq!(
        log_since(&m, before),
        vec!["no new login codes to ask for: no WhatsApp gateway state"]
    );

    let mut m = busy_in(state(GatewayPhase::Connected));
    let before = m.events.len();
    assert!(update(&mut m, n()).actions.is_empty());
    assert_eq!(
        log_since(&m, before),
        vec!["no new login codes to ask for: WhatsApp is connected"]
    );

    let mut m = busy_in(state(GatewayPhase::CodesExhausted));
    assert_eq!(update(&mut m, n()).actions, vec![Action::RequestNewCodes]);
}

#[test]
fn the_help_lists_the_new_codes_key() {
    let mut m = busy();
    update(&mut m, key('?'));
    let text = screen_text(&draw(&m, 80, 24));
    assert!(
        text.contains("n          new login codes (ran out)"),
        "{text}"
    );
}
