//! Shared fixtures for the integration tests.
#![allow(dead_code)]

use std::collections::{HashMap, VecDeque};

use ratatui::Terminal;
use ratatui::backend::TestBackend;
use secondme_ui::{
    Author, ChatMessage, Connection, Contact, Conversation, Event, KeyCode, KeyInput, LogEntry,
    LogKind, Model, Pause, PauseReason, SessionInfo, Snapshot, Stats, Theme, WorkerState, update,
    view,
};

/// 2023-11-14 22:13:20 UTC.
pub const NOW: i64 = 1_700_000_000_000;
pub const MIN: i64 = 60_000;

/// The event-log texts added after the first `before` entries.
pub fn log_since(model: &Model, before: usize) -> Vec<&str> {
    model
        .events
        .iter()
        .skip(before)
        .map(|l| l.text.as_str())
        .collect()
}

pub fn draw(model: &Model, w: u16, h: u16) -> Terminal<TestBackend> {
    let mut terminal = Terminal::new(TestBackend::new(w, h)).expect("test backend");
    terminal.draw(|f| view(model, f)).expect("draw");
    terminal
}

/// The screen's rows as text; the cell a wide character covers is skipped.
pub fn screen_rows(t: &Terminal<TestBackend>) -> Vec<String> {
    let buf = t.backend().buffer();
    let w = usize::from(buf.area.width);
    buf.content()
        .chunks(w)
        .map(|row| {
            let mut out = String::new();
            let mut covered = 0;
            for cell in row {
                if covered > 0 {
                    covered -= 1;
                    continue;
                }
                out.push_str(cell.symbol());
                covered = secondme_ui::text::width(cell.symbol()).saturating_sub(1);
            }
            out
        })
        .collect()
}

pub fn contact(id: &str, name: Option<&str>, last_min_ago: i64) -> Contact {
    Contact {
        name: name.map(str::to_string),
        last_activity_ms: NOW - last_min_ago * MIN,
        ..Contact::new(id)
    }
}

pub fn msg(id: &str, min_ago: i64, author: Author, text: &str) -> ChatMessage {
    ChatMessage {
        id: id.to_string(),
        timestamp_ms: NOW - min_ago * MIN,
        author,
        text: text.to_string(),
    }
}

pub fn empty() -> Model {
    Model::new(Theme::dark(), Default::default(), NOW)
}

/// Three contacts, most recent first: alice, bob, carol.
pub fn three() -> Model {
    let mut m = empty();
    let snap = Snapshot {
        contacts: vec![
            contact("111@s.whatsapp.net", Some("Alice"), 1),
            contact("222@s.whatsapp.net", Some("Bob"), 2),
            contact("333@s.whatsapp.net", Some("Carol"), 3),
        ],
        ..Snapshot::default()
    };
    update(&mut m, Event::Snapshot(snap));
    m
}

pub fn busy_with(theme: Theme) -> Model {
    let mut m = Model::new(theme, Default::default(), NOW);
    let names = [
        Some("Alice Martin"),
        Some("Bob"),
        None,
        Some("Dr. Carol Alexandria Longname-Smythe"),
        Some("Dave 🎸"),
        Some("Eve"),
        Some("Frank"),
        Some("日本語の名前"),
        Some("Grace"),
        Some("Heidi"),
        Some("Ivan"),
        Some("Judy"),
    ];
    let mut contacts: Vec<Contact> = names
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let mut c = contact(
                &format!("3161234{i:04}@s.whatsapp.net"),
                *n,
                i as i64 * 7 + 1,
            );
            c.rate_count = (i as u32 * 3) % 11;
            c
        })
        .collect();
    contacts[1].pause = Some(Pause {
        expires_at_ms: Some(NOW + 14 * MIN + 59_000),
        reason: PauseReason::Manual,
    });
    contacts[2].enabled = false;
    contacts[3].pause = Some(Pause {
        expires_at_ms: Some(NOW + 2 * 60 * MIN + 5_000),
        reason: PauseReason::Takeover,
    });
    contacts[4].pause = Some(Pause {
        expires_at_ms: Some(NOW + 45_000),
        reason: PauseReason::RateLimit,
    });
    let alice = contacts[0].id.clone();
    let mut conv = Conversation::default();
    let texts = [
        (Author::Contact, "Hey! Are we still on for dinner tonight?"),
        (
            Author::Twin,
            "Yes, 19:30 at the usual place. Want me to book a table for four?",
        ),
        (
            Author::Contact,
            "Perfect 👍 and can you bring the 日本 guidebook",
        ),
        (
            Author::Person,
            "Taking over: I'll bring it myself.\nSee you there!",
        ),
        (Author::Contact, "Great, see you"),
        (Author::Twin, "👋"),
    ];
    for (i, (author, text)) in texts.iter().enumerate() {
        conv.push(msg(&format!("m{i}"), 30 - i as i64 * 5, *author, text));
    }
    let mut conversations = HashMap::new();
    conversations.insert(alice, conv);
    let snap = Snapshot {
        contacts,
        stats: Stats {
            queue_len: 750,
            queue_cap: 1000,
            pending: 3,
            dead_letters: 2,
            throughput_per_s: 1.25,
            subscribers: 2,
            ..Stats::default()
        },
        session: Some(SessionInfo {
            connected_at_ms: NOW - 47 * MIN,
            expires_at_ms: NOW + (23 * 60 + 12) * MIN,
        }),
        kill_switch: None,
        conversations,
    };
    update(&mut m, Event::Snapshot(snap));
    // A snapshot leaves these to the process (see `Event::Snapshot`): the worker
    // reports its state, and the count was this session's.
    update(&mut m, Event::WorkerProgress(WorkerState::Running));
    m.stats.malformed_payloads = 1;
    update(
        &mut m,
        Event::Connection(Connection::Connected { rtt_ms: 3 }),
    );
    let mut events = VecDeque::new();
    let kinds = [
        (LogKind::Info, "dashboard started"),
        (LogKind::Pause, "Bob paused for 15m (manual)"),
        (LogKind::Takeover, "Dr. Carol paused for 2h00m (takeover)"),
        (LogKind::RateLimit, "Dave 🎸 paused for 1m (rate limit)"),
        (LogKind::DeadLetter, "job 42 failed 3 times: model timeout"),
        (LogKind::Resume, "Frank resumed"),
        (
            LogKind::Malformed,
            "malformed payload on events: expected value at line 1",
        ),
    ];
    for (i, (kind, text)) in kinds.iter().enumerate() {
        events.push_back(LogEntry {
            at_ms: NOW - (60 - i as i64) * MIN,
            kind: *kind,
            text: text.to_string(),
        });
    }
    m.events = events;
    m
}

pub fn busy() -> Model {
    busy_with(Theme::dark())
}

pub fn key(c: char) -> Event {
    Event::Key(KeyInput::char(c))
}

pub fn code(code: KeyCode) -> Event {
    Event::Key(KeyInput::plain(code))
}
