//! Frame time of the dashboard with a large model: 10,000 contacts and 100,000
//! messages, drawn into ratatui's `TestBackend` at two terminal sizes, then
//! with 1,000 drafts waiting (issue 21), plus the cost of `update()` for the
//! events the control room handles most.
//!
//! Run with `cargo bench --bench ui_render`. Budget from issue 3: a frame in
//! under 2 ms at p99.

use std::collections::HashMap;
use std::hint::black_box;
use std::time::{Duration, Instant};

use ratatui::Terminal;
use ratatui::backend::TestBackend;
use secondme_ui::model::{Draft, DraftsRead, ReplyMode};
use secondme_ui::{
    Connection, Contact, Event, KeyCode, KeyInput, Keymap, Model, Pause, PauseReason, SessionInfo,
    Snapshot, Stats, Theme, WorkerState, model::MAX_MESSAGES, update, view,
};

const CONTACTS: usize = 10_000;
const MESSAGES: usize = 100_000;
const FRAMES: usize = 2_000;
const UPDATES: usize = 20_000;
/// Drafts waiting in the drafts case (the figure).
const DRAFTS: usize = 1_000;
/// Re-reads of all the drafts timed (the control room reads them every few seconds).
const DRAFT_READS: usize = 200;
const BUDGET_P99_MS: f64 = 2.0;
/// 2023-11-14 22:13:20 UTC.
const NOW: i64 = 1_700_000_000_000;

/// A deterministic xorshift, so every run draws the same model.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn contact_id(i: usize) -> String {
    format!("31{i:09}@s.whatsapp.net")
}

fn contacts(rng: &mut Rng) -> Vec<Contact> {
    (0..CONTACTS)
        .map(|i| {
            let mut c = Contact::new(contact_id(i));
            if i % 3 != 0 {
                c.name = Some(format!(
                    "Contact {i} {}",
                    ["Smith", "Müller", "佐藤"][i % 3]
                ));
            }
            c.enabled = i % 7 != 0;
            c.rate_count = (i % 11) as u32;
            c.last_activity_ms = NOW - rng.below(86_400_000) as i64;
            if i % 10 == 0 {
                c.pause = Some(Pause {
                    expires_at_ms: Some(NOW + 60_000 + rng.below(3_600_000) as i64),
                    reason: PauseReason::RateLimit,
                });
            }
            c
        })
        .collect()
}

/// A message for a contact chosen with a skew: half the traffic goes to 2% of
/// the contacts, so their histories hit the per-conversation cap.
fn message(rng: &mut Rng, n: usize, at_ms: i64) -> Event {
    let who = if rng.below(2) == 0 {
        rng.below(CONTACTS / 50)
    } else {
        rng.below(CONTACTS)
    };
    Event::MessageEvent {
        message_id: format!("m{n}"),
        contact_id: contact_id(who),
        text: format!(
            "message {n}: a line of ordinary chat text long enough to wrap at eighty columns, \
             with an emoji 👍 and some more words"
        ),
        bot_sent: n % 2 == 1,
        from_person: false,
        timestamp_ms: at_ms,
    }
}

fn big_model() -> (Model, Duration) {
    let mut rng = Rng(0x5eed_cafe_f00d_d00d);
    let mut model = Model::new(Theme::dark(), Keymap::default(), NOW);
    update(
        &mut model,
        Event::Snapshot(Snapshot {
            contacts: contacts(&mut rng),
            stats: Stats {
                queue_len: 420,
                pending: 7,
                throughput_per_s: 812.5,
                subscribers: 2,
                ..Stats::default()
            },
            session: Some(SessionInfo {
                connected_at_ms: NOW - 3_600_000,
                expires_at_ms: NOW + 86_400_000,
            }),
            kill_switch: None,
            conversations: HashMap::new(),
        }),
    );
    // The worker's state comes from the worker, not from a snapshot of Redis.
    update(&mut model, Event::WorkerProgress(WorkerState::Running));
    update(
        &mut model,
        Event::Connection(Connection::Connected { rtt_ms: 1 }),
    );
    let started = Instant::now();
    for n in 0..MESSAGES {
        let ev = message(&mut rng, n, NOW - (MESSAGES - n) as i64 * 10);
        update(&mut model, ev);
    }
    (model, started.elapsed())
}

/// `DRAFTS` drafts for the contacts at the top of the list, where the
/// selection moves, so most frames draw the draft panel as well as the pens;
/// every other one of them in draft mode.
fn drafts_read(model: &Model) -> DraftsRead {
    let ids: Vec<String> = model
        .visible_window(0, DRAFTS)
        .into_iter()
        .map(|c| c.id.clone())
        .collect();
    DraftsRead {
        drafts: ids
            .iter()
            .enumerate()
            .map(|(i, id)| Draft {
                draft_id: format!("draft_m{i}"),
                contact_id: id.clone(),
                content: format!(
                    "draft {i}: sure, see you at 7 👍 and I'll bring the book you asked \
                     about, the one with the 日本 cover"
                ),
                in_reply_to: format!("m{i}"),
                created_at_ms: NOW - i as i64 * 1000,
                expires_at_ms: NOW + 86_400_000 - i as i64 * 1000,
            })
            .collect(),
        modes: ids
            .iter()
            .step_by(2)
            .map(|id| (id.clone(), ReplyMode::Draft))
            .collect(),
        default_mode: ReplyMode::Auto,
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// Draws `FRAMES` frames, each after a tick and every few frames a key or a
/// message, so the selection, scroll and countdowns change as they do live.
fn frames(model: &mut Model, w: u16, h: u16, rng: &mut Rng) -> Vec<Duration> {
    let mut terminal = Terminal::new(TestBackend::new(w, h)).expect("test backend");
    let mut times = Vec::with_capacity(FRAMES);
    let keys = [KeyCode::Down, KeyCode::Down, KeyCode::PageDown, KeyCode::Up];
    for f in 0..FRAMES {
        let now = model.now_ms + 250;
        update(model, Event::Tick { now_ms: now });
        if f % 4 == 0 {
            update(model, Event::Key(KeyInput::plain(keys[f / 4 % keys.len()])));
        }
        if f % 3 == 0 {
            update(model, message(rng, MESSAGES + f, now));
        }
        let started = Instant::now();
        terminal.draw(|frame| view(model, frame)).expect("draw");
        times.push(started.elapsed());
        black_box(terminal.backend().buffer());
    }
    times.sort();
    times
}

fn report_frames(label: &str, wall: &[Duration]) -> bool {
    let p99 = percentile(wall, 0.99);
    println!(
        "frame {label:<16} n={:<5} p50 {:.3} ms  p99 {:.3} ms  max {:.3} ms",
        wall.len(),
        ms(percentile(wall, 0.5)),
        ms(p99),
        ms(wall[wall.len() - 1]),
    );
    ms(p99) < BUDGET_P99_MS
}

fn time_updates(model: &mut Model, mut make: impl FnMut(usize) -> Event) -> Vec<Duration> {
    let mut times = Vec::with_capacity(UPDATES);
    for i in 0..UPDATES {
        let ev = make(i);
        let started = Instant::now();
        black_box(update(model, ev));
        times.push(started.elapsed());
    }
    times.sort();
    times
}

/// Times `DRAFT_READS` readings of all the drafts, as the control room
/// re-reads them (each reading made by `make`, outside the timing).
fn time_reads(model: &mut Model, mut make: impl FnMut(usize) -> DraftsRead) -> Vec<Duration> {
    let mut times = Vec::with_capacity(DRAFT_READS);
    for i in 0..DRAFT_READS {
        let ev = Event::Drafts(make(i));
        let started = Instant::now();
        black_box(update(model, ev));
        times.push(started.elapsed());
    }
    times.sort();
    times
}

fn report_updates(label: &str, times: &[Duration]) {
    println!(
        "update {label:<15} n={:<5} p50 {:.2} us  p99 {:.2} us  max {:.2} us",
        times.len(),
        us(percentile(times, 0.5)),
        us(percentile(times, 0.99)),
        us(times[times.len() - 1]),
    );
}

fn main() {
    let (mut model, ingest) = big_model();
    let kept: usize = model.conversations.values().map(|c| c.messages.len()).sum();
    println!(
        "model: {} contacts, {MESSAGES} messages fed ({kept} kept, cap {MAX_MESSAGES} per \
         conversation, {} conversations) in {:.0} ms ({:.2} us/message)",
        model.contacts.len(),
        model.conversations.len(),
        ms(ingest),
        us(ingest) / MESSAGES as f64,
    );

    let mut rng = Rng(0xdead_beef_1234_5678);
    let mut ok = true;
    ok &= report_frames("80x24", &frames(&mut model, 80, 24, &mut rng));
    ok &= report_frames("200x60", &frames(&mut model, 200, 60, &mut rng));
    update(&mut model, Event::Key(KeyInput::char('/')));
    for c in "smith".chars() {
        update(&mut model, Event::Key(KeyInput::char(c)));
    }
    update(&mut model, Event::Key(KeyInput::plain(KeyCode::Enter)));
    ok &= report_frames("120x40 filtered", &frames(&mut model, 120, 40, &mut rng));
    update(&mut model, Event::Key(KeyInput::plain(KeyCode::Esc)));

    update(&mut model, Event::Key(KeyInput::plain(KeyCode::Home)));
    let read = drafts_read(&model);
    update(&mut model, Event::Drafts(read.clone()));
    println!("drafts: {} waiting", model.drafts.count());
    ok &= report_frames("80x24 drafts", &frames(&mut model, 80, 24, &mut rng));
    update(&mut model, Event::Key(KeyInput::plain(KeyCode::Home)));
    ok &= report_frames("200x60 drafts", &frames(&mut model, 200, 60, &mut rng));
    let mut read = read;
    let same = time_reads(&mut model, |_| read.clone());
    report_updates("drafts read same", &same);
    let changed = time_reads(&mut model, |i| {
        read.drafts[0].content = format!("draft edited {i}");
        read.clone()
    });
    report_updates("drafts read new", &changed);

    let base = MESSAGES + 10 * FRAMES;
    let mut at = model.now_ms;
    let msg_times = time_updates(&mut model, |i| {
        at += 1;
        message(&mut rng, base + i, at)
    });
    report_updates("message event", &msg_times);
    let mut now = model.now_ms;
    let tick_times = time_updates(&mut model, |_| {
        now += 250;
        Event::Tick { now_ms: now }
    });
    report_updates("tick", &tick_times);
    let keys = [
        KeyCode::Down,
        KeyCode::Up,
        KeyCode::PageDown,
        KeyCode::PageUp,
    ];
    let key_times = time_updates(&mut model, |i| {
        Event::Key(KeyInput::plain(keys[i % keys.len()]))
    });
    report_updates("key", &key_times);

    println!(
        "budget: frame p99 < {BUDGET_P99_MS} ms: {}",
        if ok { "PASS" } else { "FAIL" }
    );
}
