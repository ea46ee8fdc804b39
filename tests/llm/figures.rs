//! The language model's figures for the control room against a real server:
//! a flush writes the latency lists and per-minute counts with their bounds
//! and TTLs, the monitor reads them into the dashboard, keys of another type
//! under the same names break neither the flush nor the read and never make a
//! flush count twice, and two workers' breakers do not flap the banner.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use crate::common::Harness;
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use redis::AsyncCommands;
use secondme::monitor::llm as monitor_llm;
use secondme::reply::llm::LlmShared;
use secondme::reply::llm::breaker::Breaker;
use secondme::reply::llm::usage::{Meter, now_minute};
use secondme::schema;
use secondme::store::{llm_figures, usage};
use secondme_ui::{Event, Model, Theme, update, view};

fn shared() -> LlmShared {
    LlmShared {
        meter: Arc::new(Meter::default()),
        breaker: Arc::new(Breaker::new(Duration::from_secs(300))),
        daily_token_budget: 0,
        // USD per million tokens, input and output.
        prices: HashMap::from([("fast".to_string(), [0.15, 0.60])]),
    }
}

fn screen(model: &Model, w: u16, h: u16) -> String {
    let mut t = Terminal::new(TestBackend::new(w, h)).expect("backend");
    t.draw(|f| view(model, f)).expect("draw");
    let buf = t.backend().buffer();
    buf.content()
        .chunks(usize::from(w))
        .map(|row| row.iter().map(|c| c.symbol()).collect::<String>())
        .collect::<Vec<_>>()
        .join("\n")
}

/// Index in the read's series of Unix minute `minute`.
fn at(figures: &llm_figures::Figures, minute: i64) -> usize {
    let now = figures.now_ms.div_euclid(60_000);
    llm_figures::SERIES_MINUTES - 1 - usize::try_from(now - minute).expect("a past minute")
}

#[tokio::test]
async fn a_flush_writes_bounded_latencies_and_minutes_that_the_control_room_shows() {
    let mut h = Harness::start().await;
    let llm = shared();
    let now = now_minute();
    for ms in 1..=600 {
        llm.meter.record_call_at("fast", 100, 20, ms, now);
    }
    for ms in [100, 200, 300] {
        llm.meter
            .record_call_at("org/strong:7b", 1000, 200, ms, now - 5);
    }
    llm.meter.record_error_at("org/strong:7b", now - 5);
    llm.meter.record_error_at("org/strong:7b", now - 5);
    usage::flush(&mut h.con, &llm).await.expect("flush");

    let fast = schema::llm_latency_key("fast");
    let len: usize = h.con.llen(&fast).await.expect("llen");
    assert_eq!(len, schema::LLM_LATENCY_SAMPLES);
    let newest: String = h.con.lindex(&fast, 0).await.expect("lindex");
    assert_eq!(newest, "600", "newest first");
    let ttl: i64 = h.con.ttl(&fast).await.expect("ttl");
    assert!(ttl > 0 && ttl <= schema::LLM_LATENCY_TTL_S, "{ttl}");
    let minute = schema::llm_minute_key(now);
    let counts: HashMap<String, u64> = h.con.hgetall(&minute).await.expect("minute");
    assert_eq!(counts["replies"], 600);
    assert_eq!(counts["tokens"], 600 * 120);
    assert_eq!(counts["errors"], 0);
    let ttl: i64 = h.con.ttl(&minute).await.expect("ttl");
    assert!(ttl > 0 && ttl <= schema::LLM_MINUTE_TTL_S, "{ttl}");
    let earlier: HashMap<String, u64> = h
        .con
        .hgetall(schema::llm_minute_key(now - 5))
        .await
        .expect("minute");
    assert_eq!((earlier["replies"], earlier["errors"]), (3, 2));

    // One more call: the list stays at its bound, the oldest sample goes.
    llm.meter.record_call_at("fast", 100, 20, 601, now);
    usage::flush(&mut h.con, &llm).await.expect("flush");
    let len: usize = h.con.llen(&fast).await.expect("llen");
    assert_eq!(len, schema::LLM_LATENCY_SAMPLES);

    let (figures, odd) = llm_figures::read(&mut h.con).await.expect("read");
    assert!(odd.is_empty(), "{odd:?}");
    let figures = figures.expect("figures");
    let f = &figures.models[0];
    assert_eq!((f.name.as_str(), f.calls, f.errors), ("fast", 601, 0));
    // The newest 500 of 1..=601 ms are 102..=601: nearest-rank p50 and p95.
    assert_eq!((f.p50_ms, f.p95_ms), (Some(351), Some(576)));
    // 601 calls of 100 + 20 tokens at 0.15 / 0.60 USD per million.
    assert_eq!(f.cost_micro_usd, Some(16_227));
    let s = &figures.models[1];
    assert_eq!(
        (s.name.as_str(), s.calls, s.errors),
        ("org/strong:7b", 3, 2)
    );
    assert_eq!((s.p50_ms, s.p95_ms), (Some(200), Some(300)));
    assert_eq!(figures.minutes.len(), llm_figures::SERIES_MINUTES);
    assert_eq!(figures.minutes[at(&figures, now)].replies, 601);
    assert_eq!(figures.minutes[at(&figures, now - 5)].errors, 2);
    assert_eq!(figures.breaker, None);

    // The monitor's read, applied to the dashboard and drawn at 80x24.
    let mut model = Model::new(Theme::dark(), Default::default(), secondme::store::now_ms());
    let events = monitor_llm::read(&mut h.con, &mut Vec::new())
        .await
        .expect("events");
    for ev in events {
        update(&mut model, ev);
    }
    let text = screen(&model, 80, 24);
    assert!(text.contains("◆ model"), "{text}");
    assert!(
        text.contains("601 calls 0 err 60.1k+12.0k tok $0.0162 p50 351ms p95 576ms"),
        "{text}"
    );
    assert!(
        text.contains("3 calls 2 err 3.0k+600 tok p50 200ms p95 300ms"),
        "{text}"
    );

    // A permanent error opens the breaker: the banner comes, then goes.
    llm.breaker.trip("401 invalid api key");
    usage::flush(&mut h.con, &llm).await.expect("flush");
    for ev in monitor_llm::read(&mut h.con, &mut Vec::new())
        .await
        .expect("events")
    {
        update(&mut model, ev);
    }
    let text = screen(&model, 160, 40);
    assert!(
        text.contains("■ LANGUAGE MODEL FAILING ■ the twin is silent for it, retry at"),
        "{text}"
    );
    assert!(text.contains("401 invalid api key"));
    let entry: String = h
        .con
        .hget(schema::llm_breakers(), llm.breaker.id())
        .await
        .expect("the worker's breaker entry");
    assert!(entry.ends_with(" 401 invalid api key"), "{entry}");
    // The worker gone: its entry expires with the key.
    let _: () = h
        .con
        .hdel(schema::llm_breakers(), llm.breaker.id())
        .await
        .expect("close");
    for ev in monitor_llm::read(&mut h.con, &mut Vec::new())
        .await
        .expect("events")
    {
        update(&mut model, ev);
    }
    assert!(!screen(&model, 160, 40).contains("LANGUAGE MODEL FAILING"));
}

#[tokio::test]
async fn keys_of_another_type_break_neither_the_flush_nor_the_read() {
    let mut h = Harness::start().await;
    let llm = shared();
    let now = now_minute();
    let _: () = redis::pipe()
        .set(schema::llm_latency_key("fast"), "another program's")
        .rpush(schema::llm_minute_key(now), "not a hash")
        .rpush(schema::llm_latency_key("slow"), &["12", "garbage", "30"])
        .hset(schema::llm_minute_key(now - 1), "replies", "many")
        .query_async(&mut h.con)
        .await
        .expect("seed");
    llm.meter.record_call_at("fast", 10, 5, 700, now);
    llm.meter.record_call_at("slow", 10, 5, 20, now - 2);
    let flushed = usage::flush(&mut h.con, &llm).await.expect("flush");
    assert_eq!(flushed.total, Some(30), "the day's tokens are counted");
    assert_eq!(flushed.problems.len(), 2, "{:?}", flushed.problems);
    let calls: String = h
        .con
        .hget(schema::llm_stats(), "fast:calls")
        .await
        .expect("hget");
    assert_eq!(calls, "1", "SECONDME:llm is written");
    let theirs: String = h
        .con
        .get(schema::llm_latency_key("fast"))
        .await
        .expect("get");
    assert_eq!(theirs, "another program's", "left alone");
    for key in [schema::llm_latency_key("fast"), schema::llm_minute_key(now)] {
        let ttl: i64 = h.con.ttl(&key).await.expect("ttl");
        assert_eq!(ttl, -1, "{key} gets no TTL either");
    }

    let (figures, odd) = llm_figures::read(&mut h.con).await.expect("read");
    let figures = figures.expect("figures");
    let fast = figures
        .models
        .iter()
        .find(|m| m.name == "fast")
        .expect("fast");
    assert_eq!((fast.calls, fast.p50_ms), (1, None));
    let slow = figures
        .models
        .iter()
        .find(|m| m.name == "slow")
        .expect("slow");
    // The garbage sample is skipped: 20 (ours), 12 and 30.
    assert_eq!((slow.p50_ms, slow.p95_ms), (Some(20), Some(30)));
    assert_eq!(figures.minutes[at(&figures, now)].replies, 0);
    assert_eq!(figures.minutes[at(&figures, now - 1)].replies, 0);
    assert_eq!(figures.minutes[at(&figures, now - 2)].replies, 1);
    let named = |k: &str| odd.iter().any(|o| o.starts_with(&format!("{k}: ")));
    assert!(named(&schema::llm_latency_key("fast")), "{odd:?}");
    assert!(named(&schema::llm_minute_key(now)), "{odd:?}");

    // The hash itself of another type: no figures, the key named once, and the
    // control room's snapshot goes on.
    let _: () = h.con.del(schema::llm_stats()).await.expect("del");
    let _: () = h.con.set(schema::llm_stats(), "x").await.expect("set");
    let mut seen = Vec::new();
    let events = monitor_llm::read(&mut h.con, &mut seen)
        .await
        .expect("events");
    assert!(matches!(events[0], Event::Llm(None)));
    let logged: Vec<String> = events[1..]
        .iter()
        .filter_map(|e| match e {
            Event::Log(l) => Some(l.text.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(logged.len(), 1, "{logged:?}");
    assert!(
        logged[0].starts_with("cannot read SECONDME:llm: "),
        "{logged:?}"
    );
    let again = monitor_llm::read(&mut h.con, &mut seen)
        .await
        .expect("events");
    assert_eq!(again.len(), 1, "named once");
    secondme::store::snapshot::read(&mut h.con, "user-1")
        .await
        .expect("the snapshot still reads");
}

fn day_tokens_key() -> String {
    schema::llm_tokens_key(&secondme::llm_usage::date(
        secondme::reply::llm::usage::today(),
    ))
}

/// The day's tokens and the minute's replies and tokens.
async fn day_and_minute(h: &mut Harness, minute: i64) -> (u64, u64, u64) {
    let day: u64 = h.con.get(day_tokens_key()).await.expect("day");
    let m: HashMap<String, u64> = h
        .con
        .hgetall(schema::llm_minute_key(minute))
        .await
        .expect("minute");
    (day, m["replies"], m["tokens"])
}

#[tokio::test]
async fn the_day_s_tokens_get_their_ttl_on_the_first_flush() {
    let mut h = Harness::start().await;
    let llm = shared();
    llm.meter.record_call_at("fast", 10, 5, 700, now_minute());
    let flushed = usage::flush(&mut h.con, &llm).await.expect("flush");
    assert_eq!(
        flushed,
        usage::Flushed {
            total: Some(15),
            problems: vec![]
        }
    );
    let ttl: i64 = h.con.ttl(day_tokens_key()).await.expect("ttl");
    assert!(ttl > 0 && ttl <= schema::LLM_TOKENS_TTL_S, "{ttl}");
}

#[tokio::test]
async fn a_foreign_stats_key_never_makes_a_flush_count_twice() {
    let mut h = Harness::start().await;
    let llm = shared();
    let now = now_minute();
    let _: () = h.con.set(schema::llm_stats(), "x").await.expect("set");
    llm.meter.record_call_at("fast", 10, 5, 700, now);
    let first = usage::flush(&mut h.con, &llm).await.expect("flush");
    assert_eq!(first.total, Some(15));
    assert!(
        first.problems[0].starts_with("SECONDME:llm holds another program's type"),
        "{:?}",
        first.problems
    );
    let second = usage::flush(&mut h.con, &llm).await.expect("flush");
    assert_eq!(second.total, Some(15));
    assert_eq!(day_and_minute(&mut h, now).await, (15, 1, 15));
    let samples: usize = h
        .con
        .llen(schema::llm_latency_key("fast"))
        .await
        .expect("llen");
    assert_eq!(samples, 1);
    let theirs: String = h.con.get(schema::llm_stats()).await.expect("get");
    assert_eq!(theirs, "x", "left alone");
}

#[tokio::test]
async fn a_refused_counter_drops_that_flush_instead_of_counting_the_rest_again() {
    let mut h = Harness::start().await;
    let llm = shared();
    let now = now_minute();
    // Passes the type check; HINCRBY fails inside the transaction, after the
    // other commands of it were applied.
    let _: () = h
        .con
        .hset(schema::llm_stats(), "fast:calls", "many")
        .await
        .expect("seed");
    llm.meter.record_call_at("fast", 10, 5, 700, now);
    let first = usage::flush(&mut h.con, &llm).await.expect("flush");
    assert_eq!(first.total, Some(15));
    assert!(
        first
            .problems
            .iter()
            .any(|p| p.starts_with("SECONDME:llm fast:calls: ")),
        "{:?}",
        first.problems
    );
    let second = usage::flush(&mut h.con, &llm).await.expect("flush");
    assert!(second.problems.is_empty(), "{:?}", second.problems);
    assert_eq!(day_and_minute(&mut h, now).await, (15, 1, 15));
    let prompt: u64 = h
        .con
        .hget(schema::llm_stats(), "fast:prompt_tokens")
        .await
        .expect("hget");
    assert_eq!(prompt, 10);
    let cost: u64 = h
        .con
        .hget(schema::llm_stats(), "fast:cost_micro_usd")
        .await
        .expect("hget");
    assert_eq!(cost, 5, "10 x 0.15 + 5 x 0.60, once");
}

#[tokio::test]
async fn two_workers_one_tripped_keep_the_banner_steady() {
    let mut h = Harness::start().await;
    let tripped = shared();
    let tripped = LlmShared {
        breaker: Arc::new(Breaker::new(Duration::from_millis(1500))),
        ..tripped
    };
    let fine = shared();
    // A worker gone long ago left an entry: pruned by the next flush.
    let _: () = h
        .con
        .hset(schema::llm_breakers(), "1-gone", "1000 2000 old")
        .await
        .expect("seed");
    tripped.meter.record_error("fast");
    tripped.breaker.trip("401 invalid api key");
    let mut model = Model::new(Theme::dark(), Default::default(), secondme::store::now_ms());
    let before = model.events.len();
    let mut seen = Vec::new();
    for round in 0..6 {
        let llm = if round % 2 == 0 { &tripped } else { &fine };
        usage::flush(&mut h.con, llm).await.expect("flush");
        for ev in monitor_llm::read(&mut h.con, &mut seen)
            .await
            .expect("events")
        {
            update(&mut model, ev);
        }
        let text = screen(&model, 160, 40);
        assert!(
            text.contains("LANGUAGE MODEL FAILING"),
            "round {round}: {text}"
        );
        assert!(text.contains("401 invalid api key"), "round {round}");
    }
    let gone: Option<String> = h
        .con
        .hget(schema::llm_breakers(), "1-gone")
        .await
        .expect("hget");
    assert_eq!(gone, None, "a stale entry is pruned");
    let ttl: i64 = h.con.ttl(schema::llm_breakers()).await.expect("ttl");
    assert!(ttl > 0 && ttl <= schema::LLM_BREAKERS_TTL_S, "{ttl}");

    // The cool-down over: its next flush removes the entry, the banner goes.
    tokio::time::sleep(Duration::from_millis(1600)).await;
    usage::flush(&mut h.con, &tripped).await.expect("flush");
    usage::flush(&mut h.con, &fine).await.expect("flush");
    for ev in monitor_llm::read(&mut h.con, &mut seen)
        .await
        .expect("events")
    {
        update(&mut model, ev);
    }
    assert!(!screen(&model, 160, 40).contains("LANGUAGE MODEL FAILING"));
    let logged: Vec<&str> = model
        .events
        .iter()
        .skip(before)
        .map(|l| l.text.as_str())
        .collect();
    assert_eq!(
        logged,
        [
            "language model off: 401 invalid api key",
            "language model on again: its breaker closed"
        ]
    );
    let exists: bool = h.con.exists(schema::llm_breakers()).await.expect("exists");
    assert!(!exists, "no open breaker, no entry");
}

#[tokio::test]
async fn a_transaction_redis_refused_whole_is_counted_at_the_next_flush_once() {
    let mut h = Harness::start().await;
    let llm = shared();
    let now = now_minute();
    llm.meter.record_call_at("fast", 10, 5, 700, now);
    // Out of memory: every write is refused while queueing, so EXEC discards
    // the whole transaction (EXECABORT) and nothing was applied.
    let config = |args: &[&str]| {
        let mut cmd = redis::cmd("CONFIG");
        cmd.arg("SET").arg(args);
        cmd
    };
    let _: () = config(&["maxmemory-policy", "noeviction"])
        .query_async(&mut h.con)
        .await
        .expect("policy");
    let _: () = config(&["maxmemory", "1"])
        .query_async(&mut h.con)
        .await
        .expect("maxmemory");
    let refused = usage::flush(&mut h.con, &llm).await;
    assert!(refused.is_err(), "{refused:?}");
    let _: () = config(&["maxmemory", "0"])
        .query_async(&mut h.con)
        .await
        .expect("maxmemory");
    let flushed = usage::flush(&mut h.con, &llm).await.expect("flush");
    assert_eq!(flushed.total, Some(15));
    assert_eq!(day_and_minute(&mut h, now).await, (15, 1, 15));
}
