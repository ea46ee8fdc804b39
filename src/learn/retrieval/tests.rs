use proptest::prelude::*;

use super::*;
use crate::learn::words::tokens;

fn ex(ts: i64, them: &str) -> Exchange {
    Exchange {
        ts,
        them: them.to_owned(),
        me: format!("answer {ts}"),
        reply_ms: None,
    }
}

fn index(thems: &[&str]) -> Index {
    let exchanges: Vec<Exchange> = (0i64..).zip(thems).map(|(ts, t)| ex(ts, t)).collect();
    Index::new(&exchanges)
}

fn close(a: f32, b: f64) -> bool {
    (f64::from(a) - b).abs() < 1e-5
}

#[test]
fn scores_are_bm25_computed_by_hand() {
    // N = 3, lengths 2, 4, 3: mean 3. "pizza" is in 2 exchanges:
    // idf = ln(1 + (3 - 2 + 0.5) / (2 + 0.5)) = ln 1.6.
    let idx = index(&[
        "Pizza tonight?",
        "are you coming tonight",
        "pizza PIZZA pízza",
    ]);
    let idf = 1.6f64.ln();
    // Exchange 0: tf 1, length 2: 1 * 2.2 / (1 + 1.2 * (0.25 + 0.75 * 2/3)) = 2.2 / 1.9.
    // Exchange 2: tf 3, length 3: 3 * 2.2 / (3 + 1.2 * (0.25 + 0.75)) = 6.6 / 4.2.
    let hits = idx.search("pizza", 5);
    assert_eq!(hits.iter().map(|h| h.exchange).collect::<Vec<_>>(), [2, 0]);
    assert!(close(hits[0].score, idf * 6.6 / 4.2), "{hits:?}");
    assert!(close(hits[1].score, idf * 2.2 / 1.9), "{hits:?}");
    // Exchange 2 holds only "pizza"; exchange 0 also "tonight", as rare.
    assert_eq!(hits[0].similarity, 1.0);
    assert!(close(hits[1].similarity, 0.5), "{hits:?}");
}

#[test]
fn similarity_is_the_idf_weighted_jaccard_index_of_both_sides() {
    let idx = index(&[
        "Pizza tonight?",
        "are you coming tonight",
        "pizza PIZZA pízza",
    ]);
    // "pizza" is in 2 of 3: ln 1.6; "tonight" in 2: ln 1.6; "are", "you",
    // "coming" in 1: ln(1 + 2.5 / 1.5) = ln(8/3); "sushi" and "or" in none: ln 8.
    let (pizza, tonight, sushi, or) = (1.6f64.ln(), 1.6f64.ln(), 8f64.ln(), 8f64.ln());
    let hits = idx.search("pizza or sushi", 5);
    let by_doc = |doc: usize| hits.iter().find(|h| h.exchange == doc).expect("a hit");
    assert_eq!(hits.len(), 2);
    let query = pizza + sushi + or;
    // Exchange 2 holds only "pizza": shared pizza, union the query.
    assert!(close(by_doc(2).similarity, pizza / query), "{hits:?}");
    // Exchange 0 holds "pizza" and "tonight": the union adds "tonight".
    assert!(
        close(by_doc(0).similarity, pizza / (query + tonight)),
        "{hits:?}"
    );
    assert!(idx.search("sushi", 5).is_empty());
    assert!(idx.search("?!", 5).is_empty());
}

#[test]
fn a_short_query_inside_a_long_message_is_not_alike() {
    let idx = index(&[
        "ok so the plan for sunday is the quarry at nine, bring ropes and lunch",
        "ok",
        "see you",
    ]);
    let hits = idx.search("ok", 3);
    assert_eq!(hits[0].exchange, 1);
    assert_eq!(hits[0].similarity, 1.0);
    let long = hits.iter().find(|h| h.exchange == 0).expect("found");
    assert!(long.similarity < 0.2, "{hits:?}");
    // Symmetric: the long message as the query holds "ok" just as little.
    let back = idx.search(
        "ok so the plan for sunday is the quarry at nine, bring ropes and lunch",
        3,
    );
    let short = back.iter().find(|h| h.exchange == 1).expect("found");
    assert!(
        close(short.similarity, f64::from(long.similarity)),
        "{back:?}"
    );
}

#[test]
fn an_exact_repeat_comes_before_a_longer_message_that_scores_higher() {
    // "a a a" scores 6.6 / 4.92 per idf, "a" only 2.2 / 1.84: yet "a" is the repeat.
    let idx = index(&["a a a", "A", "b"]);
    let hits = idx.search("a", 3);
    assert_eq!(hits.iter().map(|h| h.exchange).collect::<Vec<_>>(), [1, 0]);
    assert!(hits[0].score < hits[1].score);
}

#[test]
fn equal_scores_go_to_the_newer_exchange() {
    let exchanges = [
        ex(20, "see you there"),
        ex(10, "see you there"),
        ex(30, "nothing alike"),
    ];
    let hits = Index::new(&exchanges).search("See you there!", 1);
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].exchange, 0);
}

#[test]
fn k_bounds_the_hits() {
    let idx = index(&["one two", "two three", "three four", "four one"]);
    assert_eq!(idx.search("one two three four", 2).len(), 2);
    assert_eq!(idx.search("one two three four", 10).len(), 4);
    assert!(idx.search("one", 0).is_empty());
}

#[test]
fn an_empty_index_finds_nothing() {
    let idx = Index::new(&[]);
    assert!(idx.is_empty());
    assert_eq!(idx.len(), 0);
    assert!(idx.search("hello", 3).is_empty());
    assert!(Index::default().search("hello", 3).is_empty());
}

#[test]
fn emoji_and_accents_match() {
    let idx = index(&["feliz cumpleaños 🎂", "café?", "ok"]);
    assert_eq!(idx.search("🎂", 3)[0].exchange, 0);
    assert_eq!(idx.search("CAFE", 3)[0].exchange, 1);
    assert_eq!(idx.search("cumpleanos", 3)[0].exchange, 0);
}

/// A sentence from a small vocabulary, so that exchanges share words.
fn sentence() -> impl Strategy<Value = String> {
    let word = prop::sample::select(vec![
        "hi", "you", "are", "pizza", "tonight", "olá", "😂", "ok", "x", "a",
    ]);
    prop::collection::vec(word, 1..6).prop_map(|w| w.join(" "))
}

fn terms(text: &str) -> Vec<String> {
    tokens(text).into_iter().map(|t| t.norm).collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn an_exchange_that_reads_like_the_query_comes_first(
        thems in prop::collection::vec(sentence(), 1..40),
        pick in any::<prop::sample::Index>(),
    ) {
        let query = pick.get(&thems).to_uppercase();
        let refs: Vec<&str> = thems.iter().map(String::as_str).collect();
        let idx = index(&refs);
        let hits = idx.search(&query, 3);
        prop_assert!(!hits.is_empty());
        prop_assert_eq!(terms(&thems[hits[0].exchange]), terms(&query));
        prop_assert_eq!(hits[0].similarity, 1.0);
    }

    #[test]
    fn any_text_is_searched_without_panic_and_hits_are_ranked(
        thems in prop::collection::vec(any::<String>(), 0..20),
        query in any::<String>(),
        k in 0usize..8,
    ) {
        let refs: Vec<&str> = thems.iter().map(String::as_str).collect();
        let idx = index(&refs);
        let hits = idx.search(&query, k);
        prop_assert!(hits.len() <= k);
        let wanted = terms(&query);
        for hit in &hits {
            prop_assert!((0.0..=1.0).contains(&hit.similarity));
            prop_assert!(hit.score > 0.0);
            prop_assert!(terms(&thems[hit.exchange]).iter().any(|t| wanted.contains(t)));
        }
    }

    #[test]
    fn hits_that_are_not_exact_repeats_come_by_score(
        thems in prop::collection::vec(sentence(), 1..40),
        query in sentence(),
    ) {
        let refs: Vec<&str> = thems.iter().map(String::as_str).collect();
        let hits = index(&refs).search(&query, 10);
        let wanted = terms(&query);
        let rest: Vec<&Hit> = hits.iter().filter(|h| terms(&thems[h.exchange]) != wanted).collect();
        for pair in rest.windows(2) {
            prop_assert!(pair[0].score >= pair[1].score);
        }
    }
}

/// Prints how long a search takes among 50,000 exchanges (run in release with
/// `--ignored --nocapture`).
#[test]
#[ignore]
fn search_time_among_50000_exchanges() {
    use std::time::Instant;
    let vocabulary: Vec<String> = (0..5_000).map(|i| format!("w{i}")).collect();
    let mut seed = 7u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    // Word ranks drawn from a Zipf-like law: a few words are in most messages.
    let mut word = || {
        let u = (next() % 1_000_000) as f64 / 1_000_000.0;
        &vocabulary[((5_000f64).powf(u) as usize - 1).min(4_999)]
    };
    let mut sentence = |n: u64| (0..n).map(|_| word().clone()).collect::<Vec<_>>().join(" ");
    let exchanges: Vec<Exchange> = (0..50_000)
        .map(|i| ex(i, &sentence(3 + i as u64 % 15)))
        .collect();
    let built = Instant::now();
    let idx = Index::new(&exchanges);
    let build = built.elapsed();
    let queries: Vec<String> = (0..2_000).map(|i| sentence(2 + i % 12)).collect();
    let mut times: Vec<f64> = queries
        .iter()
        .map(|q| {
            let at = Instant::now();
            let hits = idx.search(q, 4);
            std::hint::black_box(hits);
            at.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    times.sort_by(f64::total_cmp);
    let p = |q: f64| times[((q * times.len() as f64).ceil() as usize).max(1) - 1];
    println!(
        "index of 50000 exchanges built in {:.1} ms; search p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms",
        build.as_secs_f64() * 1e3,
        p(0.5),
        p(0.99),
        p(1.0)
    );
    assert!(p(0.99) < 2.0);
}
