//! The `secondme-ui` crate never links the engine (no tokio, no redis), so it
//! keeps its own copies of a few engine types and constants. Each test here
//! ties one copy to its original, so that the two cannot drift apart unseen:
//! - enums pair their variants in one list ([`pairs!`]) whose two exhaustive
//!   matches stop compiling when either side gains a variant the list lacks;
//! - structs are built on both sides without `..`, so a field added to either
//!   stops compilation here until the test (and the conversion) carries it;
//! - constants are compared.
//!
//! Where the control room's conversion (`monitor`) is public, the test runs it
//! on the engine's value and compares the result with the mirror it names.

use std::fmt::Debug;

use base64::Engine;
use secondme::bridge::whatsapp::status::{GatewayStatus, State};
use secondme::llm_usage::MinuteUsage;
use secondme::monitor::{feed, llm};
use secondme::schema;
use secondme::store::llm_figures;
use secondme_ui::model::{ALL_CONTACTS, RATE_LIMIT};
use secondme_ui::{Event, GatewayPhase, GatewayState, PauseAction, PauseReason, Stats};
use serde::Serialize;

/// Each variant of an engine enum beside the dashboard's variant mirroring it,
/// from one list. Its two matches make a variant that either side gains, and
/// the list lacks, a compile error here. `engine also` and `ui also` name the
/// variants with data or without a twin, which the test checks on its own.
macro_rules! pairs {
    (
        $engine:ty => $ui:ty { $($e:path => $u:path),+ $(,)? }
        $(engine also: $engine_also:pat,)?
        $(ui also: $ui_also:pat,)?
    ) => {{
        let _every_engine_variant = |e: &$engine| match e {
            $($e)|+ $(| $engine_also)? => {}
        };
        let _every_ui_variant = |u: &$ui| match u {
            $($u)|+ $(| $ui_also)? => {}
        };
        [$(($e, $u)),+]
    }};
}

/// A variant's name as `Debug` spells it, without its data: both sides name
/// their variants alike, and the dashboard's have no wire names to compare.
fn variant(value: &impl Debug) -> String {
    let text = format!("{value:?}");
    text.split(['(', ' ', '{'])
        .next()
        .unwrap_or_default()
        .to_owned()
}

#[test]
fn the_limits_the_dashboard_shows_are_the_engines() {
    assert_eq!(i64::from(RATE_LIMIT), schema::RATE_LIMIT_MAX);
    assert_eq!(ALL_CONTACTS, schema::PAUSE_ALL_CONTACT);
    // Shown until the first snapshot brings the engine's own figure.
    assert_eq!(
        usize::try_from(Stats::default().queue_cap).ok(),
        Some(schema::QUEUE_MESSAGES_CAP)
    );
}

#[test]
fn pause_reasons_pair_variant_for_variant() {
    let pairs = pairs!(schema::PauseReason => PauseReason {
        schema::PauseReason::Manual => PauseReason::Manual,
        schema::PauseReason::Takeover => PauseReason::Takeover,
        schema::PauseReason::RateLimit => PauseReason::RateLimit,
        schema::PauseReason::StateLost => PauseReason::StateLost,
        schema::PauseReason::Refused => PauseReason::Refused,
        schema::PauseReason::Unknown => PauseReason::Unknown,
    }
    engine also: schema::PauseReason::Other(_),
    ui also: PauseReason::Other(_),);
    let free_text = (
        schema::PauseReason::Other("on holiday".into()),
        PauseReason::Other("on holiday".into()),
    );
    for (engine, ui) in pairs.into_iter().chain([free_text]) {
        assert_eq!(variant(&engine), variant(&ui));
        assert_eq!(feed::ui_reason(&engine), ui, "{engine:?}");
    }
}

#[test]
fn pause_events_and_their_actions_pair_field_for_field() {
    let actions = pairs!(schema::PauseAction => PauseAction {
        schema::PauseAction::Pause => PauseAction::Pause,
        schema::PauseAction::Resume => PauseAction::Resume,
    });
    for (action, ui_action) in actions {
        assert_eq!(variant(&action), variant(&ui_action));
        let sent = schema::PauseEvent {
            contact_id: "c1".into(),
            action,
            expires_at: Some(1_234),
            reason: Some(schema::PauseReason::Takeover),
        };
        let payload = serde_json::to_string(&sent).expect("pause event as JSON");
        match feed::on_message(schema::channel_pause(), &payload) {
            Event::PauseEvent {
                contact_id,
                action,
                expires_at_ms,
                reason,
            } => {
                assert_eq!(contact_id, sent.contact_id);
                assert_eq!(action, ui_action);
                assert_eq!(expires_at_ms, sent.expires_at);
                assert_eq!(reason, PauseReason::Takeover);
            }
            other => panic!("not a pause event: {other:?}"),
        }
    }
}

#[test]
fn message_events_pair_field_for_field() {
    // Both flags each way: a swap of the two would pass one case, not both.
    for (bot_sent, from_me) in [(true, false), (false, true)] {
        let sent = schema::MessageEvent {
            message_id: "m1".into(),
            contact_id: "c1".into(),
            content: "hello".into(),
            bot_sent,
            timestamp: 1_700_000_000_000,
            from_me,
            media: None,
        };
        let payload = serde_json::to_string(&sent).expect("message event as JSON");
        match feed::on_message(schema::channel_messages(), &payload) {
            Event::MessageEvent {
                message_id,
                contact_id,
                text,
                bot_sent,
                from_person,
                timestamp_ms,
            } => {
                assert_eq!(message_id, sent.message_id);
                assert_eq!(contact_id, sent.contact_id);
                assert_eq!(text, sent.content);
                assert_eq!(bot_sent, sent.bot_sent);
                assert_eq!(from_person, sent.from_me);
                assert_eq!(timestamp_ms, sent.timestamp);
            }
            other => panic!("not a message event: {other:?}"),
        }
    }
}

#[test]
fn login_code_events_pair_field_for_field() {
    let code = "2@abc,def";
    let sent = schema::QrEvent {
        qr_code: base64::engine::general_purpose::STANDARD.encode(code),
        expires_in: 45,
    };
    let payload = serde_json::to_string(&sent).expect("QR event as JSON");
    match feed::on_message(schema::channel_qr(), &payload) {
        Event::QrEvent {
            payload,
            expires_in_s,
        } => {
            assert_eq!(payload, code);
            assert_eq!(expires_in_s, sent.expires_in);
        }
        other => panic!("not a QR event: {other:?}"),
    }
}

#[test]
fn the_language_model_figures_pair_field_for_field() {
    let read = llm_figures::Figures {
        // The time of the read: the dashboard keeps its own clock.
        now_ms: 99,
        models: vec![llm_figures::ModelFigures {
            name: "gpt-test".into(),
            calls: 1,
            errors: 2,
            prompt_tokens: 3,
            completion_tokens: 4,
            cost_micro_usd: Some(5),
            p50_ms: Some(6),
            p95_ms: Some(7),
        }],
        breaker: Some(llm_figures::BreakerOpen {
            reason: "bad key".into(),
            until_ms: Some(8),
        }),
        // Errors a minute are counted, not drawn: the dashboard shows replies and tokens.
        minutes: vec![
            MinuteUsage {
                replies: 9,
                tokens: 10,
                errors: 11,
            },
            MinuteUsage {
                replies: 12,
                tokens: 13,
                errors: 14,
            },
        ],
    };
    let shown = secondme_ui::llm::LlmFigures {
        models: vec![secondme_ui::llm::ModelFigures {
            name: "gpt-test".into(),
            calls: 1,
            errors: 2,
            prompt_tokens: 3,
            completion_tokens: 4,
            cost_micro_usd: Some(5),
            p50_ms: Some(6),
            p95_ms: Some(7),
        }],
        breaker: Some(secondme_ui::llm::BreakerOpen {
            reason: "bad key".into(),
            until_ms: Some(8),
        }),
        replies_per_min: vec![9, 12],
        tokens_per_min: vec![10, 13],
    };
    assert_eq!(llm::to_ui(read), shown);
}

/// A status with every field set.
fn full_status(state: State) -> GatewayStatus {
    GatewayStatus {
        state,
        since: 1_000,
        detail: Some("why".into()),
        name: Some("Alice".into()),
        code: Some("ABCD1234".into()),
        next_try: Some(2_000),
        until: Some(3_000),
    }
}

/// The dashboard's state for [`full_status`], as `monitor::gateway_state` builds
/// it (privately, so it is not called here): like it, without `..`.
fn full_state(phase: GatewayPhase) -> GatewayState {
    GatewayState {
        phase,
        since_ms: 1_000,
        detail: Some("why".into()),
        name: Some("Alice".into()),
        code: Some("ABCD1234".into()),
        next_try_ms: Some(2_000),
        until_ms: Some(3_000),
    }
}

/// A struct's field names as serde writes them, in snake case, sorted.
fn wire_fields(value: &impl Serialize) -> Vec<String> {
    let json = serde_json::to_value(value).expect("a struct as JSON");
    let mut names: Vec<String> = json
        .as_object()
        .expect("a JSON object")
        .keys()
        .map(|key| {
            let mut snake = String::new();
            for c in key.chars() {
                if c.is_ascii_uppercase() {
                    snake.push('_');
                }
                snake.push(c.to_ascii_lowercase());
            }
            snake
        })
        .collect();
    names.sort();
    names
}

/// A struct's field names as `Debug` prints them, sorted: the lines of its
/// pretty form one indent deep.
fn debug_fields(value: &impl Debug) -> Vec<String> {
    let text = format!("{value:#?}");
    let mut names: Vec<String> = text
        .lines()
        .filter_map(|line| line.strip_prefix("    "))
        .filter(|line| !line.starts_with(' '))
        .filter_map(|line| line.split_once(": "))
        .map(|(name, _)| name.to_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn gateway_states_pair_variant_for_variant_and_field_for_field() {
    let pairs = pairs!(State => GatewayPhase {
        State::Standby => GatewayPhase::Standby,
        State::Connecting => GatewayPhase::Connecting,
        State::WaitingForScan => GatewayPhase::WaitingForScan,
        State::PairCode => GatewayPhase::PairCode,
        State::CodesExhausted => GatewayPhase::CodesExhausted,
        State::Connected => GatewayPhase::Connected,
        State::Reconnecting => GatewayPhase::Reconnecting,
        State::NoNetwork => GatewayPhase::NoNetwork,
        State::LoggedOut => GatewayPhase::LoggedOut,
        State::Replaced => GatewayPhase::Replaced,
        State::Banned => GatewayPhase::Banned,
        State::Stopped => GatewayPhase::Stopped,
    }
    // The dashboard's own: what a state becomes once its key expired.
    ui also: GatewayPhase::Gone,);
    for (state, phase) in pairs {
        assert_eq!(variant(&state), variant(&phase));
    }
    // The dashboard names the phase `phase` and its times in ms with `_ms`.
    let renamed = |name: String| match name.as_str() {
        "state" => "phase".to_owned(),
        "since" | "next_try" | "until" => format!("{name}_ms"),
        _ => name,
    };
    let mut engine: Vec<String> = wire_fields(&full_status(State::PairCode))
        .into_iter()
        .map(renamed)
        .collect();
    engine.sort();
    assert_eq!(engine, debug_fields(&full_state(GatewayPhase::PairCode)));
}

#[test]
fn reply_modes_and_draft_changes_pair_variant_for_variant() {
    use secondme::monitor::drafts as ui_drafts;
    use secondme::schema::drafts::{ReplyMode, events};
    use secondme_ui::model::{DraftChange, ReplyMode as UiMode};
    let modes = pairs!(ReplyMode => UiMode {
        ReplyMode::Auto => UiMode::Auto,
        ReplyMode::Draft => UiMode::Draft,
    });
    for (engine, ui) in modes {
        assert_eq!(variant(&engine), variant(&ui));
        assert_eq!(ui_drafts::mode(engine), ui);
        assert_eq!(ui.label(), engine.as_str());
    }
    // The event types are the engine's strings: each names one change.
    let _every_change = |c: &DraftChange| match c {
        DraftChange::Created
        | DraftChange::Replaced
        | DraftChange::Approved
        | DraftChange::Discarded
        | DraftChange::Expired
        | DraftChange::Regenerate => {}
    };
    let changes = [
        (events::CREATED, DraftChange::Created),
        (events::REPLACED, DraftChange::Replaced),
        (events::APPROVED, DraftChange::Approved),
        (events::DISCARDED, DraftChange::Discarded),
        (events::EXPIRED, DraftChange::Expired),
        (events::REGENERATE, DraftChange::Regenerate),
    ];
    for (kind, change) in changes {
        let sent = schema::drafts::DraftEvent {
            kind: kind.into(),
            draft_id: "draft_m1".into(),
            contact_id: "c1".into(),
            at: 5,
        };
        let payload = serde_json::to_string(&sent).expect("draft event as JSON");
        match feed::on_message(schema::drafts::channel_drafts(), &payload) {
            Event::DraftEvent {
                change: got,
                draft_id,
                contact_id,
            } => {
                assert_eq!(got, change, "{kind}");
                assert_eq!(draft_id, sent.draft_id);
                assert_eq!(contact_id, sent.contact_id);
            }
            other => panic!("not a draft event: {other:?}"),
        }
    }
}

#[test]
fn drafts_pair_field_for_field() {
    use secondme::monitor::drafts as ui_drafts;
    use secondme::schema::drafts::{Draft, ReplyMode};
    let d = Draft {
        draft_id: "draft_m1".into(),
        contact_id: "c1".into(),
        content: "see you at 7".into(),
        in_reply_to: "m1".into(),
        created_at: 11,
        expires_at: 22,
    };
    let read = ui_drafts::to_ui(vec![d.clone()], Default::default(), ReplyMode::Auto);
    let secondme_ui::model::Draft {
        draft_id,
        contact_id,
        content,
        in_reply_to,
        created_at_ms,
        expires_at_ms,
    } = read.drafts.into_iter().next().expect("the draft");
    assert_eq!(draft_id, d.draft_id);
    assert_eq!(contact_id, d.contact_id);
    assert_eq!(content, d.content);
    assert_eq!(in_reply_to, d.in_reply_to);
    assert_eq!(created_at_ms, d.created_at);
    assert_eq!(expires_at_ms, d.expires_at);
}
