//! The language model's figures on screen: the panel at 80x24 and on a large
//! terminal, and the breaker's banner.

mod common;

use common::*;
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use secondme_ui::llm::{BreakerOpen, LlmFigures, ModelFigures};
use secondme_ui::{Event, Model, update};

const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];

fn rows(t: &Terminal<TestBackend>) -> Vec<String> {
    let buf = t.backend().buffer();
    let w = usize::from(buf.area.width);
    buf.content()
        .chunks(w)
        .map(|row| row.iter().map(|c| c.symbol()).collect())
        .collect()
}

fn figures() -> LlmFigures {
    // A busy last quarter of an hour: replies and tokens rising to the end.
    let replies: Vec<u64> = (0..60).map(|m| if m < 45 { 0 } else { m - 44 }).collect();
    let tokens: Vec<u64> = replies.iter().map(|r| r * 350).collect();
    LlmFigures {
        models: vec![
            ModelFigures {
                name: "gpt-4o-mini".into(),
                calls: 120,
                errors: 2,
                prompt_tokens: 45_100,
                completion_tokens: 12_000,
                cost_micro_usd: Some(123_400),
                p50_ms: Some(1_200),
                p95_ms: Some(3_400),
            },
            ModelFigures {
                name: "gpt-4o".into(),
                calls: 30,
                errors: 0,
                prompt_tokens: 20_000,
                completion_tokens: 4_000,
                cost_micro_usd: None,
                p50_ms: Some(850),
                p95_ms: None,
            },
        ],
        breaker: None,
        replies_per_min: replies,
        tokens_per_min: tokens,
    }
}

fn with_figures(f: LlmFigures) -> Model {
    let mut m = busy();
    assert!(update(&mut m, Event::Llm(Some(f))).dirty);
    m
}

fn has_bars(line: &str) -> bool {
    line.chars().any(|c| BARS.contains(&c))
}

#[test]
fn at_80x24_the_figures_take_three_rows_under_the_conversation() {
    let m = with_figures(figures());
    let before = rows(&draw(&busy(), 80, 24));
    let screen = rows(&draw(&m, 80, 24));
    let text = screen.join("\n");
    println!("{text}");
    let header = screen
        .iter()
        .position(|r| r.starts_with("◆ model"))
        .expect("the header row");
    assert!(screen[header].contains("replies "));
    assert!(screen[header].contains(" 120/h"), "{}", screen[header]);
    assert!(screen[header].contains("42.0k tok/h"), "{}", screen[header]);
    assert!(has_bars(&screen[header]), "sparklines: {}", screen[header]);
    let first = &screen[header + 1];
    for part in [
        "gpt-4o-mini",
        "120 calls 2 err 45.1k+12.0k tok $0.1234 p50 1.2s p95 3.4s",
    ] {
        assert!(first.contains(part), "{part:?} in {first:?}");
    }
    assert!(screen[header + 2].contains("gpt-4o "));
    assert!(screen[header + 2].contains("30 calls 0 err 20.0k+4.0k tok p50 850ms p95 -"));
    // The rest of the screen is still there: status, event log, key hints.
    assert_eq!(screen[0], before[0]);
    assert!(text.contains("Events"));
    assert_eq!(screen[23], before[23]);
}

#[test]
fn a_small_terminal_keeps_the_header_row_only_when_rows_are_short() {
    let m = with_figures(figures());
    let screen = rows(&draw(&m, 60, 16));
    println!("{}", screen.join("\n"));
    let header = screen.iter().position(|r| r.starts_with("◆ model (+2)"));
    assert!(header.is_some(), "one row, naming the models it leaves out");
    assert!(!screen.join("\n").contains("gpt-4o-mini"));
}

#[test]
fn a_large_terminal_shows_a_panel_beside_the_event_log() {
    let m = with_figures(figures());
    let screen = rows(&draw(&m, 160, 48));
    let text = screen.join("\n");
    println!("{text}");
    let title = screen
        .iter()
        .position(|r| r.contains(" Language model "))
        .expect("the panel's title");
    assert!(screen[title].contains("Events"), "beside the event log");
    let header = &screen[title + 1];
    for col in [
        "model", "calls", "errors", "prompt", "compl", "cost", "p50", "p95",
    ] {
        assert!(header.contains(col), "{col} in {header:?}");
    }
    let squeeze = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        squeeze(&screen[title + 2]).contains("gpt-4o-mini 120 2 45.1k 12.0k $0.1234 1.2s 3.4s")
    );
    assert!(squeeze(&screen[title + 3]).contains("gpt-4o 30 0 20.0k 4.0k - 850ms -"));
    let replies = screen
        .iter()
        .position(|r| r.contains("replies 120/h"))
        .expect("replies");
    let tokens = screen
        .iter()
        .position(|r| r.contains("tokens 42.0k/h"))
        .expect("tokens");
    assert!(tokens > replies);
    // Sparklines of several rows: the rows above each label carry bars too.
    assert!(has_bars(&screen[replies]) && has_bars(&screen[replies - 1]));
    assert!(has_bars(&screen[tokens]));
    // The contacts and conversation keep their full height: no compact rows.
    assert!(!text.contains("◆ model"));
}

#[test]
fn no_figures_no_panel() {
    let m = busy();
    let text = rows(&draw(&m, 80, 24)).join("\n");
    assert!(!text.contains("◆ model"));
    let text = rows(&draw(&m, 160, 48)).join("\n");
    assert!(!text.contains("Language model"));
}

#[test]
fn a_breaker_banner_shows_under_the_status_bar_until_it_closes() {
    let mut m = with_figures(figures());
    let logged = m.events.len();
    let mut open = figures();
    open.breaker = Some(BreakerOpen {
        reason: "401 Unauthorized: invalid api key \u{1b}]0;pwn\u{7}".into(),
        until_ms: Some(NOW + 3 * MIN),
    });
    assert!(update(&mut m, Event::Llm(Some(open.clone()))).dirty);
    assert!(
        !update(&mut m, Event::Llm(Some(open))).dirty,
        "same figures, no redraw"
    );
    for (w, h) in [(80, 24), (160, 48)] {
        let screen = rows(&draw(&m, w, h));
        let plain = rows(&draw(&with_figures(figures()), w, h));
        let status_h = plain
            .iter()
            .position(|r| r.contains("Contacts"))
            .expect("the contacts pane");
        let banner = &screen[status_h];
        println!("{}", screen.join("\n"));
        let expected = if w >= 120 {
            "■ LANGUAGE MODEL FAILING ■ the twin is silent for it, retry at 22:16 (in 3m): \
             401 Unauthorized: invalid api key"
        } else {
            "■ LLM OFF ■ twin silent, retry 22:16 (3m): 401 Unauthorized: invalid api key"
        };
        assert!(banner.starts_with(expected), "{banner:?}");
        assert!(!screen.join("").contains('\u{1b}'), "sanitized");
        assert_eq!(
            screen[..status_h],
            plain[..status_h],
            "under the status bar"
        );
    }
    let note = log_since(&m, logged)[0];
    assert!(
        note.starts_with("language model off: 401 Unauthorized: invalid api key"),
        "{note:?}"
    );
    assert!(!note.contains('\u{1b}'));
    assert!(update(&mut m, Event::Llm(Some(figures()))).dirty);
    let text = rows(&draw(&m, 160, 48)).join("\n");
    assert!(!text.contains("LANGUAGE MODEL FAILING"));
    assert_eq!(
        log_since(&m, logged).last(),
        Some(&"language model on again: its breaker closed")
    );
}

#[test]
fn hostile_model_names_are_cleaned() {
    let mut f = figures();
    f.models[0].name = "evil\u{1b}[2J\u{202e}model".into();
    let m = with_figures(f);
    let text = rows(&draw(&m, 160, 48)).join("");
    assert!(!text.contains('\u{1b}') && !text.contains('\u{202e}'));
    assert!(text.contains("evil"));
}

#[test]
fn huge_counts_from_redis_draw_without_overflowing() {
    let mut f = figures();
    f.replies_per_min = vec![u64::MAX; 60];
    f.tokens_per_min = vec![u64::MAX - 1; 60];
    f.models[0].calls = u64::MAX;
    let m = with_figures(f);
    for (w, h) in [(80, 24), (160, 48)] {
        let text = rows(&draw(&m, w, h)).join("\n");
        // The saturated sum, however much of it the label has room for.
        assert!(text.contains("18446744"), "{text}");
    }
}
