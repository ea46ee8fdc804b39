//! Transcription against a real offline recogniser (opt-in): set
//! `SECONDME_TEST_STT_URL` to an OpenAI-compatible transcription server and
//! `SECONDME_TEST_STT_SAMPLE` to a spoken WAV whose words are in the `.txt` file
//! beside it, and the same words as a WhatsApp voice note (Ogg Opus) beside it
//! as `.ogg` (or at `SECONDME_TEST_STT_SAMPLE_OGG`); `scripts/stt-local.sh`
//! installs pocketsphinx and PyAV and makes both, and
//! `.venv/stt/bin/python scripts/stt-server.py` serves them. Without them each
//! test says why and passes. They check the path end to end with real speech,
//! not the quality of a small recogniser: one word heard right is enough.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::streams::workers_pending;
use common::worker::Running;
use common::{Harness, incoming, media};
use redis::AsyncCommands;
use secondme::learn::LearnConfig;
use secondme::media::UnderstandError;
use secondme::media::config::{MediaConfig, SttConfig, SttSettings};
use secondme::media::stt::Transcriber;
use secondme::reply::persona_engine::PersonaEngine;
use secondme::schema;
use secondme::worker::WorkerConfig;

/// WhatsApp's voice notes.
const OPUS: &str = "audio/ogg; codecs=opus";

/// A spoken sample and the server to hear it.
struct Real {
    url: String,
    wav: Vec<u8>,
    /// The same words as an Ogg Opus voice note, when there is one.
    ogg: Option<Vec<u8>>,
    /// The words the sample says, lowercase, from the `.txt` beside it.
    said: Vec<String>,
}

/// The variables' server and sample, or `None` (with the reason printed) when unset.
fn real() -> Option<Real> {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
    let Some(url) = var("SECONDME_TEST_STT_URL") else {
        eprintln!(
            "skipped: SECONDME_TEST_STT_URL is not set (scripts/stt-local.sh, then .venv/stt/bin/python scripts/stt-server.py)"
        );
        return None;
    };
    let Some(sample) = var("SECONDME_TEST_STT_SAMPLE") else {
        eprintln!(
            "skipped: SECONDME_TEST_STT_SAMPLE is not set (scripts/stt-local.sh speaks one into .venv/stt/sample.wav)"
        );
        return None;
    };
    let sample = PathBuf::from(sample);
    let wav = std::fs::read(&sample)
        .unwrap_or_else(|e| panic!("SECONDME_TEST_STT_SAMPLE {}: {e}", sample.display()));
    let text_file = sample.with_extension("txt");
    let text = std::fs::read_to_string(&text_file).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (the words the sample says go beside it)",
            text_file.display()
        )
    });
    Some(Real {
        url,
        wav,
        ogg: voice_note(&sample, var("SECONDME_TEST_STT_SAMPLE_OGG")),
        said: words(&text),
    })
}

/// The Ogg Opus sample: at `named` if set (it must be there), else beside the
/// WAV as `.ogg`, or `None` with the reason printed.
fn voice_note(wav: &Path, named: Option<String>) -> Option<Vec<u8>> {
    if let Some(path) = named {
        let ogg = std::fs::read(&path)
            .unwrap_or_else(|e| panic!("SECONDME_TEST_STT_SAMPLE_OGG {path}: {e}"));
        return Some(ogg);
    }
    let path = wav.with_extension("ogg");
    match std::fs::read(&path) {
        Ok(ogg) => Some(ogg),
        Err(e) => {
            eprintln!(
                "no Ogg Opus sample at {} ({e}): scripts/stt-local.sh makes one, or set SECONDME_TEST_STT_SAMPLE_OGG",
                path.display()
            );
            None
        }
    }
}

/// The words of `text`, lowercase, letters only.
fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphabetic() && c != '\'')
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

/// The words of `said` worth matching (short ones like "to" are heard by chance)
/// that are in `heard`.
fn matched(said: &[String], heard: &str) -> Vec<String> {
    let heard = words(heard);
    said.iter()
        .filter(|w| w.chars().count() >= 4 && heard.contains(w))
        .cloned()
        .collect()
}

/// A WAV file's length in seconds, from its `fmt ` and `data` chunks.
fn wav_seconds(wav: &[u8]) -> f64 {
    assert_eq!(&wav[..4], b"RIFF", "the sample is a WAV file");
    assert_eq!(&wav[8..12], b"WAVE", "the sample is a WAV file");
    let u32_at = |i: usize| u32::from_le_bytes([wav[i], wav[i + 1], wav[i + 2], wav[i + 3]]);
    let (mut at, mut bytes_per_second, mut data) = (12, None, None);
    while at + 8 <= wav.len() {
        let size = u32_at(at + 4) as usize;
        match &wav[at..at + 4] {
            b"fmt " => bytes_per_second = Some(u32_at(at + 8 + 8)),
            b"data" => data = Some(size.min(wav.len() - at - 8)),
            _ => {}
        }
        at += 8 + size + size % 2;
    }
    let rate = bytes_per_second.expect("a fmt chunk");
    data.expect("a data chunk") as f64 / f64::from(rate)
}

/// An Ogg Opus file's length in seconds: its last page's granule position (in
/// 48 kHz samples, whatever the input rate) less the pre-skip of its `OpusHead`.
fn ogg_opus_seconds(ogg: &[u8]) -> f64 {
    let (mut at, mut pre_skip, mut granule) = (0, None, None);
    while at + 27 <= ogg.len() {
        assert_eq!(&ogg[at..at + 4], b"OggS", "an Ogg page at byte {at}");
        let segments = usize::from(ogg[at + 26]);
        let table = &ogg[at + 27..at + 27 + segments];
        let body = at + 27 + segments;
        let size: usize = table.iter().map(|&b| usize::from(b)).sum();
        if ogg[body..].starts_with(b"OpusHead") {
            pre_skip = Some(u16::from_le_bytes([ogg[body + 10], ogg[body + 11]]));
        }
        let position = i64::from_le_bytes(ogg[at + 6..at + 14].try_into().expect("8 bytes"));
        if position >= 0 {
            granule = Some(position);
        }
        at = body + size;
    }
    assert_eq!(at, ogg.len(), "the file ends with a whole page");
    let samples = granule.expect("a granule position") - i64::from(pre_skip.expect("an OpusHead"));
    samples as f64 / 48_000.0
}

/// A client of `url` for a slow CPU recogniser: a long deadline, no retries.
fn stt_config(url: &str) -> SttConfig {
    SttSettings {
        timeout: Some("120s".into()),
        max_retries: Some(0),
        ..SttSettings::default()
    }
    .resolve(Some(url.to_owned()))
    .expect("stt settings")
    .expect("an endpoint")
}

/// Transcribes `audio` of type `mime` with `transcriber`, prints what was
/// heard and how fast, and checks a word of the sample was heard and the
/// server measured `length` seconds.
async fn heard(transcriber: &Transcriber, real: &Real, audio: &[u8], mime: &str, length: f64) {
    let started = Instant::now();
    let transcript = transcriber
        .transcribe(audio.to_vec(), mime)
        .await
        .unwrap_or_else(|e| panic!("transcription of {mime}: {e}"));
    let took = started.elapsed();
    eprintln!(
        "{mime}: heard {:?} in {:.2} s ({length:.2} s of audio, {} bytes); the sample says {:?}",
        transcript.text,
        took.as_secs_f64(),
        audio.len(),
        real.said.join(" ")
    );
    let right = matched(&real.said, &transcript.text);
    assert!(
        !right.is_empty(),
        "{mime}: no word of {:?} was heard in {:?}",
        real.said,
        transcript.text
    );
    eprintln!("{mime}: words heard right: {right:?}");
    let seconds = transcript
        .seconds
        .expect("the server says how long the audio is");
    assert!(
        (seconds - length).abs() < 0.05,
        "{mime}: the server's {seconds} s against the file's {length} s"
    );
}

#[tokio::test]
async fn real_speech_is_transcribed_from_wav_and_from_a_whatsapp_voice_note() {
    let Some(real) = real() else { return };
    let transcriber = Transcriber::new(&stt_config(&real.url)).expect("client");
    heard(
        &transcriber,
        &real,
        &real.wav,
        "audio/wav",
        wav_seconds(&real.wav),
    )
    .await;
    match &real.ogg {
        Some(ogg) => heard(&transcriber, &real, ogg, OPUS, ogg_opus_seconds(ogg)).await,
        None => eprintln!("skipped the Ogg Opus half: no sample"),
    }
}

/// `n` bytes of a fixed pseudo-random sequence (xorshift), audio of nothing.
fn noise(n: usize) -> Vec<u8> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x.to_be_bytes()[0]
        })
        .collect()
}

#[tokio::test]
async fn bytes_that_are_no_audio_are_refused_for_good_and_transcription_stays_on() {
    let Some(real) = real() else { return };
    let transcriber = Transcriber::new(&stt_config(&real.url)).expect("client");
    match transcriber.transcribe(noise(4096), OPUS).await {
        Err(UnderstandError::Permanent(why)) => {
            assert!(why.contains("415"), "{why}");
            eprintln!("random bytes labelled {OPUS}: {why}");
        }
        other => panic!("random bytes: {other:?}"),
    }
    // One unreadable note is that note's failure, not the server's: the next is heard.
    assert!(!transcriber.breaker_open(), "the breaker stays closed");
    let next = transcriber
        .transcribe(real.wav.clone(), "audio/wav")
        .await
        .unwrap_or_else(|e| panic!("the next transcription: {e}"));
    assert!(
        !matched(&real.said, &next.text).is_empty(),
        "no word of {:?} in {:?}",
        real.said,
        next.text
    );
}

const SECOND: Duration = Duration::from_secs(1);

fn worker_config(h: &Harness, url: &str) -> WorkerConfig {
    let mut cfg = media::worker_config(h, "w1");
    // A transcription takes seconds on a shared CPU: nothing is reclaimed meanwhile.
    cfg.claim_idle = 300 * SECOND;
    cfg.media = MediaConfig {
        stt: Some(stt_config(url)),
        max_bytes: schema::media::DEFAULT_MAX_BYTES,
    };
    cfg
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_voice_note_is_answered_and_its_transcript_kept() {
    let Some(real) = real() else { return };
    let Some(ogg) = &real.ogg else {
        eprintln!(
            "skipped: the worker is sent a WhatsApp voice note, and there is no Ogg Opus sample"
        );
        return;
    };
    // What the recogniser hears in the note, asked directly: its decoding is
    // the same for the same audio, so the worker must keep exactly this.
    let direct = Transcriber::new(&stt_config(&real.url))
        .expect("client")
        .transcribe(ogg.clone(), OPUS)
        .await
        .unwrap_or_else(|e| panic!("transcription: {e}"));
    assert!(
        !matched(&real.said, &direct.text).is_empty(),
        "no word of {:?} in {:?}",
        real.said,
        direct.text
    );

    let mut h = Harness::start().await;
    h.allow(&["alice"]).await;
    let engine = PersonaEngine::new(&LearnConfig::default());
    let w = Running::start(&h.server.url(), engine, worker_config(&h, &real.url)).await;
    let started = Instant::now();
    // No `mediaSeconds`: the length is the server's.
    media::send(&mut h, &incoming("v1", "alice", ""), OPUS, None, ogg).await;
    let verdict = media::handled_within(&h, "v1", 120 * SECOND)
        .await
        .expect("the voice note was handled in time");
    eprintln!(
        "the worker handled the voice note ({verdict}) in {:.2} s",
        started.elapsed().as_secs_f64()
    );
    assert_eq!(verdict, "answered");

    let responses = h.responses().await;
    assert_eq!(responses.len(), 1, "one reply: {responses:?}");
    assert_eq!(responses[0]["inReplyTo"], "v1");
    assert_eq!(responses[0]["contactId"], "alice");
    let heard = media::history(&mut h, "alice").await;
    let note = heard
        .iter()
        .find(|e| e.message_id == "v1")
        .expect("the voice note is in the history");
    assert_eq!(
        note.content, direct.text,
        "the history keeps the transcript"
    );
    let mark = note.media.as_ref().expect("marked as media");
    assert_eq!(mark.kind, schema::media::MediaKind::Voice);
    assert!(!mark.unread, "{mark:?}");
    let length = ogg_opus_seconds(ogg).round() as u32;
    assert_eq!(mark.seconds, Some(length), "the length the server measured");
    let left: bool = h.con.exists(schema::media_key("v1")).await.expect("EXISTS");
    assert!(!left, "the bytes are deleted");
    assert_eq!(workers_pending(&mut h.con).await, 0, "acknowledged");
    w.stop().await;
}

#[test]
fn the_loose_match_needs_a_whole_word_of_four_letters_or_more() {
    let said = words("Hello, are you coming to dinner tomorrow?");
    assert_eq!(
        matched(&said, "below are you coming to dinner tomorrow"),
        ["coming", "dinner", "tomorrow"]
    );
    assert!(matched(&said, "are you to go").is_empty());
    assert!(matched(&said, "becoming dinners").is_empty());
}

#[test]
fn a_wavs_length_is_read_from_its_header() {
    let mut wav = b"RIFF\0\0\0\0WAVE".to_vec();
    wav.extend(b"fmt ");
    wav.extend(16u32.to_le_bytes());
    wav.extend(1u16.to_le_bytes()); // PCM
    wav.extend(2u16.to_le_bytes()); // channels
    wav.extend(8000u32.to_le_bytes()); // rate
    wav.extend(32000u32.to_le_bytes()); // bytes a second
    wav.extend(4u16.to_le_bytes());
    wav.extend(16u16.to_le_bytes());
    wav.extend(b"LIST");
    wav.extend(3u32.to_le_bytes());
    wav.extend(b"abc\0"); // odd size, padded
    wav.extend(b"data");
    wav.extend(48000u32.to_le_bytes());
    wav.extend(vec![0u8; 48000]);
    assert!((wav_seconds(&wav) - 1.5).abs() < 1e-9);
}

/// An Ogg page of `granule` holding `body` (CRC not set: it is not read here).
fn ogg_page(granule: i64, body: &[u8]) -> Vec<u8> {
    let mut page = b"OggS\0\0".to_vec();
    page.extend(granule.to_le_bytes());
    page.extend([0u8; 12]); // serial, sequence, CRC
    let mut lacing = vec![255u8; body.len() / 255];
    lacing.push((body.len() % 255) as u8);
    page.push(lacing.len() as u8);
    page.extend(lacing);
    page.extend(body);
    page
}

#[test]
fn an_ogg_opus_length_is_read_from_its_pages() {
    let mut head = b"OpusHead\x01\x01".to_vec();
    head.extend(312u16.to_le_bytes()); // pre-skip
    head.extend(16000u32.to_le_bytes()); // the input's rate, not the granule's
    head.extend([0, 0, 0]);
    let mut ogg = ogg_page(0, &head);
    ogg.extend(ogg_page(0, b"OpusTags\0\0\0\0\0\0\0\0"));
    ogg.extend(ogg_page(24_000, &[7; 300]));
    ogg.extend(ogg_page(-1, &[7; 600])); // a packet that goes on to the next page
    ogg.extend(ogg_page(72_312, &[7; 10]));
    assert!((ogg_opus_seconds(&ogg) - 1.5).abs() < 1e-9);
}
