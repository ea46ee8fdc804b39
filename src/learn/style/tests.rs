use proptest::prelude::*;

use super::*;
use crate::learn::fixtures::{line_of, mine, theirs};

fn profile_of(texts: &[&str]) -> StyleProfile {
    let mut tally = Tally::default();
    tally.add_texts(texts.iter().copied());
    tally.profile()
}

#[test]
fn lengths_are_nearest_rank_percentiles_in_characters() {
    // Lengths 2, 11, 2, 12, 8 -> sorted 2 2 8 11 12: rank ceil(2.5)=3 is 8,
    // rank ceil(4.5)=5 is 12.
    let p = profile_of(&["hi", "hello there", "ok", "see you at 5", "haha yes"]);
    assert_eq!(p.samples, 5);
    assert_eq!(p.median_chars, 8.0);
    assert_eq!(p.p90_chars, 12.0);
    // "olá 😊" is 5 characters however many bytes; white space around is not counted.
    let p = profile_of(&["  olá 😊\n"]);
    assert_eq!((p.median_chars, p.p90_chars), (5.0, 5.0));
}

#[test]
fn the_median_of_an_even_count_is_the_lower_middle() {
    // 1 2 3 4: rank ceil(2)=2 is 2; p90 rank ceil(3.6)=4 is 4.
    let p = profile_of(&["a", "ab", "abc", "abcd"]);
    assert_eq!((p.median_chars, p.p90_chars), (2.0, 4.0));
}

#[test]
fn case_period_marks_and_ellipsis_are_shares_of_the_messages() {
    let p = profile_of(&[
        "hey there.",   // lowercase, period
        "Hello!!",      // uppercase, 2 !
        "what?",        // lowercase, 1 ?
        "ok...",        // lowercase, ellipsis, no period
        "123",          // no letter: not in the case share
        "¡Hola!",       // uppercase, 1 ! (the opening ¡ is not counted)
        "wait… what?!", // lowercase, ellipsis, 1 ! 1 ?
    ]);
    assert_eq!(p.samples, 7);
    assert_eq!(p.starts_lowercase, 4.0 / 6.0);
    assert_eq!(p.ends_with_period, 1.0 / 7.0);
    assert_eq!(p.exclamations_per_message, 4.0 / 7.0);
    assert_eq!(p.questions_per_message, 2.0 / 7.0);
    assert_eq!(p.ellipsis_share, 2.0 / 7.0);
}

#[test]
fn emoji_and_laughs_are_counted_per_message() {
    let p = profile_of(&["haha 😂😂", "lol 👍🏽", "❤️ ❤", "no"]);
    // 2 + 1 + 2 emoji over 4 messages; ❤️ and ❤ are one emoji.
    assert_eq!(p.emoji_per_message, 5.0 / 4.0);
    assert_eq!(p.top_emoji, ["❤️", "😂", "👍🏽"]);
    // haha, 😂, 😂, lol.
    assert_eq!(p.laughter_per_message, 1.0);
    assert_eq!(p.top_laughter, ["😂", "haha", "lol"]);
}

#[test]
fn the_top_lists_keep_five() {
    let p = profile_of(&["😀 😁 😂 🤣 😃 😄 😄"]);
    assert_eq!(p.top_emoji, ["😄", "😀", "😁", "😂", "😃"]);
}

#[test]
fn greetings_signoffs_and_languages_are_counted() {
    let p = profile_of(&[
        "Hey! are you coming tonight?",
        "heyyy how are you",
        "bom dia, tudo bem com você?",
        "ok see you later xx",
        "love you xx",
        "night",
        "ok",
    ]);
    assert_eq!(p.top_greetings, ["hey", "bom dia"]);
    assert_eq!(p.top_signoffs, ["xx", "night"]);
    // English: 3 (the first, second and fifth lines); Portuguese: 1; 1/4 >= 10%.
    assert_eq!(p.languages, ["en", "pt"]);
}

#[test]
fn a_language_under_a_tenth_is_not_listed() {
    let mut texts = vec!["I think you are right about that"; 10];
    texts.push("ich bin heute nicht da, aber morgen schon");
    assert_eq!(profile_of(&texts).languages, ["en"]);
}

#[test]
fn turns_and_reply_times_come_from_the_chat() {
    let day = 24 * 3600 * 1000;
    let lines = [
        mine(-1_000, "morning"), // turn of 1, nothing before it
        theirs(0, "are you coming?"),
        mine(60_000, "yes"),                        // 60 s
        line_of(65_000, true, LineKind::Media, ""), // turn of 2
        theirs(100_000, "great"),
        line_of(110_000, false, LineKind::Media, ""),
        mine(1_344_000, "ok"), // 1234 s -> 1200 s
        line_of(1_345_000, true, LineKind::Deleted, ""),
        mine(1_346_000, "see you"), // turn of 3
        theirs(2_000_000, "bye"),
        mine(2_000_000 + 2 * day, "hi again"), // two days: a new conversation
    ];
    let mut tally = Tally::default();
    tally.add_chat(&lines);
    let p = tally.profile();
    assert_eq!(p.samples, 5);
    // Turns of 1, 2, 3, 1 messages.
    assert_eq!(p.messages_per_turn, 7.0 / 4.0);
    assert_eq!(p.several_in_a_row, 2.0 / 4.0);
    // Replies of 60 s and 1200 s: rank ceil(1) is 60.
    assert_eq!(p.reply_time_median_s, Some(60.0));
}

#[test]
fn a_reply_before_its_message_is_not_a_reply_time() {
    let mut tally = Tally::default();
    tally.add_chat(&[theirs(10_000, "hi"), mine(5_000, "hey")]);
    assert_eq!(tally.profile().reply_time_median_s, None);
    assert_eq!(tally.profile().samples, 1);
}

#[test]
fn a_reply_of_exactly_a_day_counts() {
    let mut tally = Tally::default();
    tally.add_chat(&[theirs(0, "hi"), mine(REPLY_WINDOW_MS, "hey")]);
    assert_eq!(tally.profile().reply_time_median_s, Some(86_000.0));
}

#[test]
fn without_a_chat_each_text_is_its_own_turn() {
    let p = profile_of(&["a", "b", "c"]);
    assert_eq!((p.messages_per_turn, p.several_in_a_row), (1.0, 0.0));
    assert_eq!(p.reply_time_median_s, None);
}

#[test]
fn the_contacts_text_is_not_measured() {
    let mut tally = Tally::default();
    tally.add_chat(&[theirs(0, "HAHAHA 😂!!!"), mine(1_000, "ok")]);
    let p = tally.profile();
    assert_eq!(p.samples, 1);
    assert_eq!((p.emoji_per_message, p.laughter_per_message), (0.0, 0.0));
    assert_eq!(p.exclamations_per_message, 0.0);
}

#[test]
fn nothing_measured_gives_an_empty_profile() {
    assert_eq!(Tally::default().profile(), StyleProfile::default());
}

#[test]
fn merged_lengths_give_the_exact_median_of_all() {
    let mut a = Tally::default();
    a.add_texts(["a", "ab", "abc"]);
    let mut b = Tally::default();
    b.add_texts(["ten chars!", "twenty characters!!!"]);
    a.merge(&b);
    // 1 2 3 10 20: rank 3 is 3; p90 rank ceil(4.5)=5 is 20.
    let p = a.profile();
    assert_eq!((p.median_chars, p.p90_chars), (3.0, 20.0));
}

#[test]
fn reply_times_keep_two_significant_digits() {
    let cases = [
        (0, 0),
        (99, 99),
        (100, 100),
        (155, 160),
        (1249, 1200),
        (1250, 1300),
        (86_400, 86_000),
    ];
    for (n, want) in cases {
        assert_eq!(two_digits(n), want, "{n}");
    }
}

#[test]
fn a_tally_is_stored_compactly_and_reads_back() {
    let empty = serde_json::to_string(&Tally::default()).expect("serializes");
    assert!(!empty.contains("lengths"), "{empty}");
    let mut tally = Tally::default();
    tally.add_texts(["hello 😂", "hello 😂", "bye."]);
    let json = serde_json::to_string(&tally).expect("serializes");
    assert!(json.contains(r#""lengths":{"4":1,"7":2}"#), "{json}");
    let back: Tally = serde_json::from_str(&json).expect("reads back");
    assert_eq!(back, tally);
}

#[test]
fn hostile_counts_read_from_redis_never_overflow() {
    let max = u64::MAX;
    let stored = format!(
        r#"{{"samples":{max},"lengths":{{"5":{max},"6":7}},"languages":{{"en":{max},"pt":3}},"reply_s":{{"40":{max},"60":{max}}},"turns":{max},"emoji":{max}}}"#
    );
    let mut hostile: Tally = serde_json::from_str(&stored).expect("a tally");
    let p = hostile.profile();
    assert_eq!(p.median_chars, 5.0);
    assert_eq!(p.languages, ["en"]);
    let mut more = Tally::default();
    more.add_chat(&[theirs(0, "hi"), mine(40_000, "haha 😂 ok")]);
    hostile.merge(&more);
    assert_eq!(hostile.profile().samples, max, "saturated, not wrapped");
    hostile.subtract(&more);
    hostile.subtract(&hostile.clone());
    assert_eq!(hostile, Tally::default(), "nothing left, no key at 0");
}

/// Texts mixing what the measures look for with anything at all.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "Hey! how are you?",
            "haha ok 😂",
            "bom dia, tudo bem com você?",
            "see you later xx",
            "¿qué tal? jajaja",
            "ok...",
            "Fine.",
            "👍🏽👍🏽",
            "kkkkk",
            "love you ❤️",
            "",
        ])
        .prop_map(str::to_owned),
        any::<String>(),
    ]
}

/// A chat: lines in time order, any author and kind.
fn chat() -> impl Strategy<Value = Vec<ChatLine>> {
    let kind = prop::sample::select(vec![
        LineKind::Text,
        LineKind::Text,
        LineKind::Media,
        LineKind::Deleted,
    ]);
    prop::collection::vec(
        (0i64..3 * REPLY_WINDOW_MS / 2, any::<bool>(), kind, text()),
        0..25,
    )
    .prop_map(|raw| {
        let mut ts = 0;
        raw.into_iter()
            .map(|(gap, me, kind, text)| {
                ts += gap;
                line_of(ts, me, kind, &text)
            })
            .collect()
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn merging_two_chats_tallies_is_counting_both(a in chat(), b in chat()) {
        let mut one = Tally::default();
        one.add_chat(&a);
        let mut two = Tally::default();
        two.add_chat(&b);
        let mut both = Tally::default();
        both.add_chat(&a);
        both.add_chat(&b);
        let mut merged = one.clone();
        merged.merge(&two);
        prop_assert_eq!(merged.profile(), both.profile());
        prop_assert_eq!(&merged, &both);
        two.merge(&one);
        prop_assert_eq!(two.profile(), both.profile());
    }

    #[test]
    fn merging_texts_is_the_profile_of_them_all(texts in prop::collection::vec(text(), 0..30), cut in any::<prop::sample::Index>()) {
        let at = cut.index(texts.len() + 1);
        let mut head = Tally::default();
        head.add_texts(texts[..at].iter().map(String::as_str));
        let mut tail = Tally::default();
        tail.add_texts(texts[at..].iter().map(String::as_str));
        let mut all = Tally::default();
        all.add_texts(texts.iter().map(String::as_str));
        head.merge(&tail);
        prop_assert_eq!(head.profile(), all.profile());
    }

    #[test]
    fn counts_kept_line_by_line_are_the_whole_chats(lines in chat(), cut in any::<prop::sample::Index>()) {
        // Appended one line at a time, from the last lines before each...
        let mut kept = Tally::default();
        for (i, line) in lines.iter().enumerate() {
            kept.merge(&Tally::appended(&lines[..i], line));
        }
        let mut whole = Tally::default();
        whole.add_chat(&lines);
        prop_assert_eq!(&kept, &whole);
        // ...then the oldest dropped, from the lines after them.
        let at = cut.index(lines.len() + 1);
        kept.subtract(&Tally::dropped(&lines[..at], &lines[at..]));
        let mut rest = Tally::default();
        rest.add_chat(&lines[at..]);
        prop_assert_eq!(kept, rest);
    }

    #[test]
    fn a_profile_is_sane_for_any_chat(lines in chat()) {
        let mut tally = Tally::default();
        tally.add_chat(&lines);
        let p = tally.profile();
        let texts = lines.iter().filter(|l| l.me && l.kind == LineKind::Text).count() as u64;
        prop_assert_eq!(p.samples, texts);
        prop_assert!(p.median_chars <= p.p90_chars);
        for share in [p.starts_lowercase, p.ends_with_period, p.ellipsis_share, p.several_in_a_row] {
            prop_assert!((0.0..=1.0).contains(&share));
        }
        prop_assert!(p.top_emoji.len() <= 5 && p.top_laughter.len() <= 5);
        prop_assert!(p.reply_time_median_s.is_none_or(|s| (0.0..=86_400.0).contains(&s)));
        let back: Tally = serde_json::from_str(&serde_json::to_string(&tally).unwrap_or_default()).unwrap_or_default();
        prop_assert_eq!(back, tally);
    }
}
