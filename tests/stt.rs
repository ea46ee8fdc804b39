//! The transcription client against a fake transcription server speaking real
//! HTTP on 127.0.0.1 (a paid endpoint cannot run here): the multipart form it
//! sends, read back by the fake's own parser; the retry policy and deadline;
//! the circuit breaker; what counts as nothing said; the key kept out of errors.

#[path = "common/big_allocs.rs"]
mod big_allocs;
#[path = "common/fake_llm.rs"]
mod fake_llm;
#[path = "common/logs.rs"]
mod logs;

use std::time::{Duration, Instant};

use fake_llm::{FakeLlm, FormPart, Step};
use logs::Captured;
use secondme::entry::MAX_CONTENT_BYTES;
use secondme::media::UnderstandError;
use secondme::media::config::{SttConfig, SttSettings};
use secondme::media::stt::{MAX_AUDIO_BYTES, Transcriber, Transcript};

#[global_allocator]
static ALLOCATOR: big_allocs::Counting = big_allocs::Counting;

const KEY: &str = "sk-stt-SECRETKEY-0123456789";

/// Bytes a sloppy form would damage: CRLFs, dashes, a would-be delimiter, every byte value.
fn audio(len: usize) -> Vec<u8> {
    let mut a = b"OggS\0\r\n--\r\n--secondme-\r\n\r\n".to_vec();
    a.extend((0..len as u64).map(|i| (i.wrapping_mul(2_654_435_761) >> 7) as u8));
    a
}

/// A config for the fake at `url`: fast timeouts, two retries.
fn config(url: &str) -> SttConfig {
    let mut c = SttSettings::default()
        .resolve(Some(url.to_owned()))
        .expect("valid")
        .expect("configured");
    c.timeout = Duration::from_secs(3);
    c.connect_timeout = Duration::from_millis(300);
    c.max_retries = 2;
    c
}

fn client(cfg: &SttConfig) -> Transcriber {
    Transcriber::with_key(cfg, Some(KEY.into())).expect("client")
}

fn text(t: &str) -> String {
    serde_json::json!({ "text": t }).to_string()
}

fn permanent(r: Result<Transcript, UnderstandError>) -> String {
    match r {
        Err(UnderstandError::Permanent(text)) => text,
        other => panic!("expected a permanent error, got {other:?}"),
    }
}

fn transient(r: Result<Transcript, UnderstandError>) -> String {
    match r {
        Err(UnderstandError::Transient(text)) => text,
        other => panic!("expected a transient error, got {other:?}"),
    }
}

#[tokio::test]
async fn a_voice_note_goes_as_a_well_formed_form_and_its_words_come_back() {
    let fake = FakeLlm::start(vec![Step::ok(
        r#"{"text":"  ¿vienes el sábado?\n","duration":3.5}"#,
    )])
    .await;
    let mut cfg = config(&fake.url);
    cfg.model = "whisper-large-v3".into();
    cfg.language = Some("es".into());
    let note = audio(5000);
    let t = client(&cfg)
        .transcribe(note.clone(), "audio/ogg; codecs=opus")
        .await
        .expect("transcribed");
    assert_eq!(
        t,
        Transcript {
            text: "¿vienes el sábado?".into(),
            seconds: Some(3.5)
        }
    );
    let reqs = fake.requests();
    assert_eq!(reqs.len(), 1);
    let req = &reqs[0];
    assert_eq!(
        (req.method.as_str(), req.path.as_str()),
        ("POST", "/v1/audio/transcriptions")
    );
    assert_eq!(
        req.header("authorization"),
        Some(format!("Bearer {KEY}").as_str())
    );
    assert_eq!(
        req.header("content-length"),
        Some(req.raw.len().to_string().as_str())
    );
    let mut parts = req.form().expect("a well-formed multipart body");
    parts.sort_by(|a, b| a.name.cmp(&b.name));
    let field = |name: &str, value: &str| FormPart {
        name: name.into(),
        filename: None,
        content_type: None,
        data: value.as_bytes().to_vec(),
    };
    assert_eq!(
        parts,
        vec![
            FormPart {
                name: "file".into(),
                filename: Some("voice.ogg".into()),
                content_type: Some("audio/ogg".into()),
                data: note,
            },
            field("language", "es"),
            field("model", "whisper-large-v3"),
            field("response_format", "json"),
        ]
    );
}

#[tokio::test]
async fn the_key_comes_from_the_named_variable_and_none_is_sent_without_one() {
    let fake = FakeLlm::start(vec![Step::ok(&text("hi")), Step::ok(&text("hi"))]).await;
    // Environment variables are read, never set, here (setting one races the
    // other tests' threads): PATH is set wherever tests run, so it stands for a key.
    let path = std::env::var("PATH").expect("PATH is set");
    let mut cfg = config(&fake.url);
    cfg.api_key_env = "PATH".into();
    Transcriber::new(&cfg)
        .expect("client")
        .transcribe(audio(10), "audio/mpeg")
        .await
        .expect("transcribed");
    cfg.api_key_env = "SECONDME_TEST_STT_KEY_THAT_IS_NEVER_SET".into();
    Transcriber::new(&cfg)
        .expect("client")
        .transcribe(audio(10), "audio/mpeg")
        .await
        .expect("transcribed");
    let reqs = fake.requests();
    assert_eq!(
        reqs[0].header("authorization"),
        Some(format!("Bearer {}", path.trim()).as_str())
    );
    assert_eq!(reqs[1].header("authorization"), None);
    let parts = reqs[1].form().expect("form");
    assert_eq!(parts[0].filename.as_deref(), Some("voice.mp3"));
    assert!(
        parts.iter().all(|p| p.name != "language"),
        "no language configured, none sent"
    );
}

#[tokio::test]
async fn a_500_then_a_200_is_retried_after_the_backoff() {
    let fake = FakeLlm::start(vec![
        Step::status(500, r#"{"error":{"message":"busy"}}"#),
        Step::ok(&text("see you there")),
    ])
    .await;
    let t = client(&config(&fake.url))
        .transcribe(audio(100), "audio/ogg")
        .await
        .expect("transcribed on the retry");
    assert_eq!(t.text, "see you there");
    let reqs = fake.requests();
    assert_eq!(reqs.len(), 2);
    // The first backoff is 500 ms less up to a quarter of jitter.
    let gap = reqs[1].at - reqs[0].at;
    assert!(gap >= Duration::from_millis(370), "{gap:?}");
    assert_eq!(reqs[0].raw, reqs[1].raw, "the same form sent again");
}

#[tokio::test]
async fn retry_after_ms_is_honoured_and_429s_past_the_retries_are_transient() {
    let busy = || {
        Step::with_header(
            429,
            "retry-after-ms",
            "60",
            r#"{"error":{"message":"slow"}}"#,
        )
    };
    let fake = FakeLlm::start(vec![busy(), Step::ok(&text("ok"))]).await;
    let stt = client(&config(&fake.url));
    stt.transcribe(audio(10), "audio/ogg")
        .await
        .expect("transcribed");
    let reqs = fake.requests();
    let gap = reqs[1].at - reqs[0].at;
    // The server's 60 ms, not the backoff's 375 ms or more.
    assert!(
        gap >= Duration::from_millis(60) && gap < Duration::from_millis(350),
        "{gap:?}"
    );

    let fake = FakeLlm::start(vec![busy(), busy(), busy(), Step::ok(&text("late"))]).await;
    let stt = client(&config(&fake.url));
    let e = transient(stt.transcribe(audio(10), "audio/ogg").await);
    assert!(e.contains("429"), "{e}");
    assert_eq!(fake.requests().len(), 3, "the first try and two retries");
    assert!(!stt.breaker_open(), "a busy server is no reason to stop");
}

#[tokio::test]
async fn a_400_is_permanent_without_a_retry_and_leaves_the_breaker_closed() {
    let fake = FakeLlm::start(vec![
        Step::status(400, r#"{"error":{"message":"Invalid file format."}}"#),
        Step::ok(&text("next one")),
    ])
    .await;
    let stt = client(&config(&fake.url));
    let e = permanent(stt.transcribe(audio(10), "audio/x-unknown").await);
    assert!(
        e.contains("400") && e.contains("Invalid file format"),
        "{e}"
    );
    assert_eq!(fake.requests().len(), 1);
    assert!(
        !stt.breaker_open(),
        "one bad audio says nothing of the endpoint"
    );
    stt.transcribe(audio(10), "audio/ogg")
        .await
        .expect("the next audio goes out");
    let parts = fake.requests()[0].form().expect("form");
    assert_eq!(parts[0].filename.as_deref(), Some("voice.bin"));
}

#[tokio::test]
async fn a_401_trips_the_breaker_and_the_next_call_sends_nothing() {
    let fake = FakeLlm::start(vec![
        Step::status(401, r#"{"error":{"message":"Invalid token"}}"#),
        Step::ok(&text("never asked")),
    ])
    .await;
    let mut cfg = config(&fake.url);
    cfg.breaker_cooldown = Duration::from_millis(400);
    let stt = client(&cfg);
    let clone = stt.clone();
    let e = permanent(stt.transcribe(audio(10), "audio/ogg").await);
    assert!(e.contains("401"), "{e}");
    assert!(
        stt.breaker_open() && clone.breaker_open(),
        "clones share it"
    );
    let reason = stt.breaker_state().reason.expect("open");
    assert!(reason.contains("401"), "{reason}");
    let started = Instant::now();
    let e = permanent(clone.transcribe(audio(10), "audio/ogg").await);
    assert!(started.elapsed() < Duration::from_millis(50), "at once");
    assert!(e.contains("off after a permanent error"), "{e}");
    assert_eq!(fake.requests().len(), 1, "no request while open");
    tokio::time::sleep(Duration::from_millis(450)).await;
    let t = stt
        .transcribe(audio(10), "audio/ogg")
        .await
        .expect("tried again after the cool-down");
    assert_eq!(t.text, "never asked");
    assert!(!stt.breaker_open());
}

#[tokio::test]
async fn a_stalled_server_is_transient_once_the_time_is_over() {
    let fake = FakeLlm::start(vec![Step::Silent, Step::Silent]).await;
    let mut cfg = config(&fake.url);
    cfg.timeout = Duration::from_millis(300);
    let stt = client(&cfg);
    let started = Instant::now();
    let e = transient(stt.transcribe(audio(1000), "audio/ogg").await);
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(300) && took < Duration::from_millis(900),
        "{took:?}"
    );
    assert!(e.contains("did not answer"), "{e}");
    assert_eq!(fake.requests().len(), 1, "no time is left for a retry");
    assert!(!stt.breaker_open());
}

#[tokio::test]
async fn nothing_said_and_an_unreadable_answer_are_permanent_and_quote_nothing() {
    let fake = FakeLlm::start(vec![
        Step::ok(&text("  \n")),
        Step::ok(&text("[BLANK_AUDIO]")),
        Step::ok(r#"{"transcript":"meet me at the secret place"}"#),
        Step::ok(r#"{"text": 42, "note": "meet me at the secret place"}"#),
    ])
    .await;
    let stt = client(&config(&fake.url));
    for _ in 0..2 {
        let e = permanent(stt.transcribe(audio(10), "audio/ogg").await);
        assert!(e.contains("nothing was said"), "{e}");
    }
    for _ in 0..2 {
        let e = permanent(stt.transcribe(audio(10), "audio/ogg").await);
        assert!(e.contains("cannot be read"), "{e}");
        assert!(!e.contains("secret"), "{e}");
    }
    assert_eq!(fake.requests().len(), 4, "none retried");
    assert!(!stt.breaker_open());
}

#[tokio::test]
async fn the_key_never_appears_in_an_error() {
    let quoted = format!(r#"{{"error":{{"message":"Incorrect API key provided: {KEY}"}}}}"#);
    let fake = FakeLlm::start(vec![
        Step::status(500, &quoted),
        Step::with_header(307, "location", &format!("/v1/{KEY}/x?key={KEY}"), "{}"),
        Step::status(401, &quoted),
    ])
    .await;
    let mut cfg = config(&fake.url);
    cfg.max_retries = 0;
    let stt = client(&cfg);
    let mut errors = Vec::new();
    errors.push(transient(stt.transcribe(audio(10), "audio/ogg").await));
    errors.push(permanent(stt.transcribe(audio(10), "audio/ogg").await));
    // The redirect opened the breaker; a new client meets the 401.
    let stt = client(&cfg);
    errors.push(permanent(stt.transcribe(audio(10), "audio/ogg").await));
    errors.push(permanent(stt.transcribe(audio(10), "audio/ogg").await));
    errors.extend(stt.breaker_state().reason);
    let refused = Transcriber::with_key(&config("http://10.1.2.3:9000"), Some(KEY.into()))
        .expect_err("a key in clear to another machine");
    errors.push(refused.to_string());
    assert_eq!(errors.len(), 6);
    for e in &errors {
        assert!(!e.contains(KEY) && !e.contains("SECRETKEY"), "{e}");
    }
    assert!(errors[0].contains("[redacted]"), "{}", errors[0]);
    assert!(errors[1].contains("redirected (307)"), "{}", errors[1]);
    assert!(errors[3].contains("off after"), "{}", errors[3]);
    assert!(errors[5].contains("allow_insecure_http"), "{}", errors[5]);
}

#[tokio::test]
async fn a_key_goes_in_clear_only_to_this_machine_or_when_allowed() {
    let mut cfg = config("http://10.1.2.3:9000");
    assert!(Transcriber::with_key(&cfg, None).is_ok(), "no key, no risk");
    assert!(Transcriber::with_key(&cfg, Some(KEY.into())).is_err());
    cfg.allow_insecure_http = true;
    assert!(Transcriber::with_key(&cfg, Some(KEY.into())).is_ok());
    for url in ["https://api.openai.com", "http://localhost:8080"] {
        assert!(
            Transcriber::with_key(&config(url), Some(KEY.into())).is_ok(),
            "{url}"
        );
    }
}

#[tokio::test]
async fn sixteen_mib_arrive_whole_and_over_25_mib_is_never_sent() {
    let fake = FakeLlm::start(vec![Step::ok(&text("long one"))]).await;
    let stt = client(&config(&fake.url));
    let big = audio(16 << 20);
    stt.transcribe(big.clone(), "audio/mp4")
        .await
        .expect("transcribed");
    let parts = fake.requests()[0].form().expect("form");
    let file = parts.iter().find(|p| p.name == "file").expect("file part");
    assert_eq!(file.filename.as_deref(), Some("voice.m4a"));
    assert!(file.data == big, "the exact bytes");

    let too_big = vec![0u8; MAX_AUDIO_BYTES + 1];
    let e = permanent(stt.transcribe(too_big, "audio/ogg").await);
    assert!(e.contains("over the"), "{e}");
    assert_eq!(fake.requests().len(), 1, "never sent");
    assert!(!stt.breaker_open());
}

/// The note's own buffer becomes the form: no large block is taken for it,
/// and a retry sends the same bytes again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_voice_note_is_sent_from_its_own_buffer_without_a_copy() {
    let fake = FakeLlm::start(vec![
        Step::status(500, r#"{"error":{"message":"busy"}}"#),
        Step::ok(&text("see you there")),
    ])
    .await;
    let stt = client(&config(&fake.url));
    let note = audio(4 << 20);
    let expected = note.clone();
    let (t, taken) = big_allocs::measure(stt.transcribe(note, "audio/ogg")).await;
    assert_eq!(t.map(|t| t.text), Ok("see you there".into()));
    let reqs = fake.requests();
    assert_eq!(reqs.len(), 2);
    assert!(reqs[0].raw == reqs[1].raw, "the same form sent again");
    let parts = reqs[1].form().expect("form");
    assert!(parts[0].data == expected, "the exact bytes");
    assert!(
        taken < big_allocs::LARGE,
        "{taken} bytes taken in large blocks for a note of {}",
        expected.len()
    );
}

/// A transcript goes where a typed message goes (HISTORY, events, prompts):
/// no longer than a message may be, cut between characters.
#[tokio::test]
async fn a_transcript_longer_than_a_message_is_cut_to_its_limit() {
    // 7 bytes a round, characters of 1, 2 and 3 bytes: the limit falls inside a `ñ`.
    let said = "añ€ ".repeat(200_000 / 7 + 1);
    assert!(said.len() > 200_000);
    let fake = FakeLlm::start(vec![Step::ok(&text(&said))]).await;
    let t = client(&config(&fake.url))
        .transcribe(audio(10), "audio/ogg")
        .await
        .expect("transcribed");
    assert!(t.text.len() <= MAX_CONTENT_BYTES, "{} bytes", t.text.len());
    assert!(
        t.text.len() > MAX_CONTENT_BYTES - 4,
        "{} bytes",
        t.text.len()
    );
    assert!(std::str::from_utf8(t.text.as_bytes()).is_ok());
    assert!(said.starts_with(&t.text), "the start of what was said");
    assert_eq!(MAX_CONTENT_BYTES, 65_536);
}

/// The retry loop and the breaker are the model's client's: what they log and
/// return for a transcription names transcription, never the language model.
#[tokio::test(flavor = "current_thread")]
async fn the_log_and_the_errors_name_transcription_not_the_model() {
    let captured = Captured::start(tracing::Level::TRACE);
    let fake = FakeLlm::start(vec![
        Step::status(500, r#"{"error":{"message":"busy"}}"#),
        Step::status(401, r#"{"error":{"message":"Invalid token"}}"#),
    ])
    .await;
    let stt = client(&config(&fake.url));
    let first = permanent(stt.transcribe(audio(10), "audio/ogg").await);
    let second = permanent(stt.transcribe(audio(10), "audio/ogg").await);
    assert_eq!(
        fake.requests().len(),
        2,
        "a retry, then the breaker refuses"
    );
    let log = captured.text();
    for (what, text) in [
        ("the log", &log),
        ("the first error", &first),
        ("the second error", &second),
    ] {
        assert!(
            !text.contains("model server") && !text.contains("language model"),
            "{what}:\n{text}"
        );
    }
    assert!(
        log.contains("transcription failed (the transcription server answered 500 (transient)"),
        "the retry:\n{log}"
    );
    assert!(
        log.contains("transcription is off for"),
        "the breaker:\n{log}"
    );
    assert!(
        first.contains("transcription server answered 401"),
        "{first}"
    );
    assert!(
        second.contains("transcription is off after a permanent error"),
        "{second}"
    );
}
