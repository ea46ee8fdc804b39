//! A hostile or broken model endpoint over real HTTP: a wait too long for a
//! `Duration`, redirects (never followed), a key refused over plain http to
//! another machine, a key echoed back in an error (removed from the error, the
//! breaker's Redis entry and the worker's log), and random headers and bodies
//! that must end in a classified error or a completion, never a panic.

use std::process::{Command, Stdio};
use std::time::Duration;

use crate::common::{Harness, TestDir, eventually, incoming};
use crate::fake_llm::{FakeLlm, Step};
use crate::llm_error;
use crate::logs::Captured;
use crate::openai_ok;
use redis::AsyncCommands;
use secondme::reply::llm::LlmEngine;
use secondme::reply::llm::chat::{ChatRequest, Role, Turn};
use secondme::reply::llm::client::{ApiKey, ModelClient};
use secondme::reply::llm::config::{LlmConfig, Provider};
use secondme::reply::llm::error::LlmError;
use secondme::reply::llm::http::{Http, Proxy};
use secondme::reply::{ReplyEngine, ReplyRequest};
use secondme::schema::{self, PersonaCache};
use tokio::time::Instant;

/// A key of no known shape: only knowing it exactly can remove it.
const KEY: &str = "key-ABCDEF123456";
/// Its distinctive part, for searching texts.
const KEY_PART: &str = "ABCDEF123456";

fn config(provider: Provider, url: &str) -> LlmConfig {
    let mut c = LlmConfig::for_url(provider, url).expect("config");
    c.timeout = Duration::from_secs(5);
    c
}

fn engine(provider: Provider, url: &str) -> LlmEngine {
    LlmEngine::with_key(config(provider, url), Some(KEY.into())).expect("engine")
}

async fn ask(engine: &LlmEngine, text: &str) -> anyhow::Result<secondme::reply::Reply> {
    let message = incoming("m1", "c1", text);
    let persona = PersonaCache {
        style_guide: "Short lowercase messages.".into(),
        tone: "relaxed".into(),
        example_messages: vec!["haha yes".into()],
    };
    engine
        .reply(&ReplyRequest {
            message: &message,
            persona_id: "casual",
            persona: &persona,
            context: None,
            history: &[],
            learned: None,
        })
        .await
}

#[tokio::test]
async fn a_retry_after_too_long_for_a_duration_is_wait_too_long_not_a_panic() {
    for (name, value) in [
        ("retry-after", "1e30"),
        ("retry-after-ms", "1e300"),
        ("retry-after", "inf"),
    ] {
        let fake = FakeLlm::start(vec![Step::with_header(
            429,
            name,
            value,
            r#"{"error":{"message":"slow down"}}"#,
        )])
        .await;
        let e = engine(Provider::OpenAi, &fake.url);
        let err = ask(&e, "what time works for dinner on friday?")
            .await
            .expect_err("no reply");
        assert!(
            matches!(
                llm_error(&err),
                LlmError::WaitTooLong {
                    wait: Duration::MAX
                }
            ),
            "{name}: {value}: {err:#}"
        );
        assert_eq!(fake.requests().len(), 1, "{name}: {value}");
    }
}

#[tokio::test]
async fn a_redirect_is_a_permanent_error_naming_its_target_which_gets_nothing() {
    for (provider, status) in [
        (Provider::OpenAi, 307),
        (Provider::OpenAi, 308),
        (Provider::Anthropic, 302),
    ] {
        let target = FakeLlm::start(vec![Step::ok(&openai_ok("from elsewhere"))]).await;
        let host = target.url.trim_start_matches("http://");
        let location = format!("http://user:pw@{host}/v1/messages?token=t0k3n#frag");
        let fake = FakeLlm::start(vec![Step::with_header(status, "location", &location, "")]).await;
        let e = engine(provider, &fake.url);
        let err = ask(&e, "what time works for dinner on friday?")
            .await
            .expect_err("a redirect is no reply");
        let text = format!("{err:#}");
        assert!(
            matches!(llm_error(&err), LlmError::Redirect { status: s, .. } if *s == status),
            "{text}"
        );
        assert!(
            text.contains(&format!("http://{host}/v1/messages")),
            "names the target: {text}"
        );
        assert!(
            !text.contains("pw") && !text.contains("t0k3n") && !text.contains("frag"),
            "{text}"
        );
        assert!(
            target.requests().is_empty(),
            "the prompt reached the redirect's target"
        );
        assert_eq!(fake.requests().len(), 1, "not retried");
        let reason = e.shared().status().breaker.reason;
        assert!(
            reason.is_some_and(|r| r.contains("redirect")),
            "a redirect turns the engine off until the config changes"
        );
    }
}

#[test]
fn a_key_over_plain_http_to_another_machine_is_refused_unless_allowed() {
    let lan = config(Provider::OpenAi, "http://192.168.1.20:11434");
    let err = LlmEngine::with_key(lan.clone(), Some(KEY.into())).expect_err("refused");
    let text = err.to_string();
    assert!(text.contains("allow_insecure_http"), "{text}");
    assert!(!text.contains(KEY_PART), "{text}");
    assert!(matches!(err, LlmError::Config(_)), "{err:?}");
    // Ollama on the local network, no key: nothing to protect.
    LlmEngine::with_key(lan.clone(), None).expect("keyless");
    LlmEngine::with_key(lan.clone(), Some("   ".into())).expect("a blank key is none");
    let mut allowed = lan;
    allowed.allow_insecure_http = true;
    LlmEngine::with_key(allowed, Some(KEY.into())).expect("allowed");
    for url in [
        "https://192.168.1.20",
        "http://127.0.0.1:8080",
        "http://localhost:8080",
        "http://[::1]:8080",
    ] {
        LlmEngine::with_key(config(Provider::Anthropic, url), Some(KEY.into())).expect(url);
    }

    use secondme::config::{Config, Settings};
    let file: Settings =
        toml::from_str("[llm]\nbase_url = \"http://10.1.2.3:8080\"\nallow_insecure_http = true\n")
            .expect("allow_insecure_http is a key of the [llm] table");
    let llm = Config::resolve(file).expect("resolves").llm.expect("llm");
    LlmEngine::with_key(llm, Some(KEY.into())).expect("allowed by the file");
}

#[test]
fn a_worker_configured_to_send_its_key_in_clear_does_not_start() {
    let dir = TestDir::new("hostile-insecure");
    let config = dir.join("config.toml");
    std::fs::write(
        &config,
        "[llm]\nbase_url = \"http://192.168.77.1:11434\"\napi_key_env = \"SECONDME_TEST_HOSTILE_KEY\"\n",
    )
    .expect("config");
    let out = Command::new(env!("CARGO_BIN_EXE_secondme"))
        .arg("--config")
        .arg(&config)
        // Never reached: the engine is refused before Redis is touched.
        .args(["--redis-url", "redis://127.0.0.1:1", "worker"])
        .env("XDG_CONFIG_HOME", &*dir)
        .env("XDG_STATE_HOME", &*dir)
        .env("SECONDME_TEST_HOSTILE_KEY", KEY)
        .env("NO_COLOR", "1")
        .env_remove("SECONDME_LLM_URL")
        .env_remove("SECONDME_CONFIG")
        .output()
        .expect("run secondme");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("allow_insecure_http"), "{stderr}");
    assert!(!stderr.contains(KEY_PART), "{stderr}");
}

fn echo_401() -> String {
    format!(
        r#"{{"error":{{"message":"Invalid API key {KEY} for this project","code":"invalid_api_key"}}}}"#
    )
}

#[tokio::test(flavor = "current_thread")]
async fn a_key_echoed_by_the_server_reaches_no_error_log_or_breaker_entry() {
    let captured = Captured::start(tracing::Level::TRACE);
    let mut h = Harness::start().await;
    // A retried 503 quoting it too goes through the retry log first.
    let fake = FakeLlm::start(vec![
        Step::status(503, &format!("upstream refused Bearer {KEY}")),
        Step::status(401, &echo_401()),
    ])
    .await;
    let e = engine(Provider::OpenAi, &fake.url);
    let err = ask(&e, "what time works for dinner on friday?")
        .await
        .expect_err("401");
    tracing::error!("no reply: {err:#}");
    assert_eq!(fake.requests().len(), 2);
    assert!(
        matches!(llm_error(&err), LlmError::Status { status: 401, .. }),
        "{err:#}"
    );
    let text = format!("{err:#}");
    assert!(
        text.contains("Invalid API key [redacted]"),
        "the message stays: {text}"
    );
    assert!(!text.contains(KEY_PART), "{text}");

    let shared = e.shared();
    let reason = shared.breaker.state().reason.expect("the breaker is open");
    assert!(!reason.contains(KEY_PART), "{reason}");
    let again = ask(&e, "and saturday?").await.expect_err("breaker open");
    assert!(!format!("{again:#}").contains(KEY_PART), "{again:#}");

    secondme::store::usage::flush(&mut h.con, &shared)
        .await
        .expect("flush");
    let entry: String = h
        .con
        .hget(schema::llm_breakers(), shared.breaker.id())
        .await
        .expect("the breaker's entry");
    assert!(entry.contains("401"), "{entry}");
    assert!(!entry.contains(KEY_PART), "{entry}");
    let log = captured.text();
    assert!(log.contains("401") && log.contains("503"), "logged:\n{log}");
    assert!(!log.contains(KEY_PART), "the key leaked:\n{log}");
}

#[tokio::test]
async fn a_worker_whose_server_echoes_the_key_keeps_it_out_of_its_log_and_redis() {
    let mut h = Harness::start().await;
    let fake = FakeLlm::start(vec![Step::status(401, &echo_401())]).await;
    let dir = TestDir::new("hostile-worker");
    let config = dir.join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[llm]\nbase_url = \"{}\"\napi_key_env = \"SECONDME_TEST_HOSTILE_KEY\"\ntimeout = \"5s\"\n",
            fake.url
        ),
    )
    .expect("config");
    h.allow(&["c1"]).await;
    // Before the worker starts: its group reads the stream from the beginning.
    h.send(&incoming(
        "m1",
        "c1",
        "what time works for dinner on friday?",
    ))
    .await;
    let log = dir.join("worker.log");
    let stderr = std::fs::File::create(&log).expect("log");
    // A proxy the environment names sees a plain-http request in clear: the
    // worker must not send its key through one, even to this machine.
    let proxy = std::net::TcpListener::bind("127.0.0.1:0").expect("a proxy's port");
    proxy.set_nonblocking(true).expect("non-blocking");
    let proxy_url = format!("http://{}", proxy.local_addr().expect("address"));
    let mut child = Command::new(env!("CARGO_BIN_EXE_secondme"))
        .arg("--config")
        .arg(&config)
        .arg("--redis-url")
        .arg(h.server.url())
        .args(["--consumer", "w1", "--claim-idle", "1s", "--review-file"])
        .arg(dir.join("review.jsonl"))
        .arg("worker")
        .env("XDG_CONFIG_HOME", &*dir)
        .env("XDG_STATE_HOME", &*dir)
        .env("SECONDME_TEST_HOSTILE_KEY", KEY)
        .env("SECONDME_LOG", "debug")
        .env("NO_COLOR", "1")
        .env("HTTP_PROXY", &proxy_url)
        .env("http_proxy", &proxy_url)
        .env("ALL_PROXY", &proxy_url)
        .env("all_proxy", &proxy_url)
        .env_remove("NO_PROXY")
        .env_remove("no_proxy")
        .env_remove("SECONDME_LLM_URL")
        .env_remove("SECONDME_REDIS_URL")
        .env_remove("SECONDME_CONSUMER")
        .env_remove("SECONDME_LOG_FILE")
        .env_remove("SECONDME_CONFIG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(stderr))
        .spawn()
        .expect("start secondme worker");
    let con = h.con.clone();
    let entry = eventually(Duration::from_secs(20), || {
        let mut con = con.clone();
        async move {
            let all: std::collections::HashMap<String, String> =
                con.hgetall(schema::llm_breakers()).await.ok()?;
            all.into_values().next()
        }
    })
    .await;
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let stopped = eventually(Duration::from_secs(15), || {
        let exited = child.try_wait().ok().flatten();
        async move { exited }
    })
    .await;
    if stopped.is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
    let log = std::fs::read_to_string(&log).expect("read the log");
    let entry = entry.unwrap_or_else(|| panic!("no breaker entry; the worker's log:\n{log}"));
    assert_eq!(fake.requests().len(), 1, "{log}");
    assert!(
        proxy.accept().is_err(),
        "nothing went through the environment's proxy"
    );
    assert!(entry.contains("401"), "{entry}");
    assert!(!entry.contains(KEY_PART), "{entry}");
    assert!(log.contains("401"), "the failure is logged:\n{log}");
    assert!(!log.contains(KEY_PART), "the key leaked:\n{log}");
}

/// A small deterministic generator (xorshift64*): the same cases every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn chance(&mut self, one_in: usize) -> bool {
        self.below(one_in) == 0
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }

    /// Bytes a header value may hold on the wire: visible ASCII, space, tab and obs-text.
    fn header_value(&mut self) -> Vec<u8> {
        let len = self.below(40);
        (0..len)
            .map(|_| match self.below(10) {
                0 => b'\t',
                1 => 0x80 + self.below(0x80) as u8,
                _ => 0x20 + self.below(0x5f) as u8,
            })
            .collect()
    }

    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }
}

/// One random answer: its status and the raw response.
fn hostile_response(rng: &mut Rng, trap: &str) -> (u16, Vec<u8>, String) {
    let statuses = [
        200, 200, 200, 201, 204, 299, 301, 302, 303, 307, 308, 399, 400, 401, 403, 404, 408, 409,
        413, 422, 429, 429, 499, 500, 502, 503, 529, 599,
    ];
    let status = statuses[rng.below(statuses.len())];
    let body: Vec<u8> = match rng.below(8) {
        0 => openai_ok("sure, friday at 7").into_bytes(),
        1 => {
            let n = rng.pick(&[
                "1e300",
                "18446744073709551616",
                "-5",
                "\"many\"",
                "null",
                "1.5",
            ]);
            let m = rng.pick(&["18446744073709551615", "1e30", "0", "-1e300"]);
            format!(
                r#"{{"choices":[{{"message":{{"content":"ok then"}}}}],"content":[{{"type":"text","text":"ok"}}],"usage":{{"prompt_tokens":{n},"completion_tokens":{m},"input_tokens":{m},"output_tokens":{n},"cache_read_input_tokens":{m}}}}}"#
            )
            .into_bytes()
        }
        2 => {
            let whole = openai_ok("a reply cut somewhere");
            let cut = rng.below(whole.len());
            whole.as_bytes()[..cut].to_vec()
        }
        3 => {
            let len = rng.below(600);
            rng.bytes(len)
        }
        4 => format!(
            r#"{{"error":{{"message":"no: {KEY} Bearer {KEY}","type":"{}"}}}}"#,
            rng.pick(&["insufficient_quota", "rate_limit", "billing_error", ""])
        )
        .into_bytes(),
        5 => "[".repeat(5000).into_bytes(),
        6 => b"<html><body><h1>502 Bad Gateway</h1></body></html>".to_vec(),
        _ => Vec::new(),
    };
    let mut head = format!("HTTP/1.1 {status} Hostile\r\nconnection: close\r\n").into_bytes();
    let mut described = format!("{status}");
    let correct = body.len().to_string();
    let short = (body.len() + 5).to_string();
    let huge_date = "Sun, 06 Nov 99999999999999999 08:49:37 GMT";
    let location_trap = format!("{trap}/v1/chat/completions");
    let location_userinfo = format!(
        "http://u:{KEY}@{}/x?key={KEY}",
        trap.trim_start_matches("http://")
    );
    let choices: [(&str, Vec<&str>); 5] = [
        (
            "retry-after",
            vec![
                "1e30",
                "1e300",
                "inf",
                "-1",
                "NaN",
                "0",
                "0.05",
                "18446744073709551616",
                huge_date,
                "Fri, 31 Dec 9999 23:59:59 GMT",
                "",
            ],
        ),
        (
            "retry-after-ms",
            vec!["1e300", "-0", "1e-300", "5", "1.7976931348623157e308", "x"],
        ),
        (
            "content-length",
            vec![
                correct.as_str(),
                short.as_str(),
                "0",
                "-1",
                "99999999999999999999",
                "18446744073709551615",
                "1048577",
                "abc",
                "10, 10",
            ],
        ),
        (
            "content-type",
            vec![
                "application/json",
                "text/html; charset=utf-8",
                "application/json; charset=\u{ff}",
                "",
            ],
        ),
        (
            "location",
            vec![
                location_trap.as_str(),
                location_userinfo.as_str(),
                "/relative",
                "//elsewhere.invalid/x",
                "not a url",
                "http://[::1",
                "",
            ],
        ),
    ];
    for (name, values) in &choices {
        if !rng.chance(2) {
            continue;
        }
        let value = if rng.chance(4) {
            rng.header_value()
        } else {
            rng.pick(values).as_bytes().to_vec()
        };
        described.push_str(&format!(" {name}={:?}", String::from_utf8_lossy(&value)));
        head.extend_from_slice(name.as_bytes());
        head.extend_from_slice(b": ");
        head.extend_from_slice(&value);
        head.extend_from_slice(b"\r\n");
    }
    head.extend_from_slice(b"\r\n");
    head.extend_from_slice(&body);
    described.push_str(&format!(
        " body={:?}",
        String::from_utf8_lossy(&body[..body.len().min(60)])
    ));
    (status, head, described)
}

/// Sends one request to a server answering `response`, then (with a retry)
/// one more, which the fake answers 500.
async fn hostile_case(
    provider: Provider,
    retries: u32,
    response: Vec<u8>,
) -> (
    Result<secondme::reply::llm::chat::Completion, LlmError>,
    Duration,
    usize,
) {
    let fake = FakeLlm::start(vec![Step::Raw(response)]).await;
    let http = Http::new(Duration::from_secs(1), Proxy::Never).expect("client");
    let client = ModelClient::new(
        http,
        provider,
        &fake.url,
        Some(ApiKey::new(KEY.into())),
        retries,
    );
    let req = ChatRequest {
        model: "m".into(),
        system: "be brief".into(),
        turns: vec![Turn {
            role: Role::User,
            text: "dinner friday?".into(),
        }],
        max_tokens: 20,
        temperature: 0.7,
    };
    let started = Instant::now();
    let result = client
        .complete(&req, started + Duration::from_millis(1500))
        .await;
    (result, started.elapsed(), fake.requests().len())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_headers_and_bodies_end_in_a_classified_error_or_a_completion() {
    let trap = FakeLlm::start(Vec::new()).await;
    let mut rng = Rng(0x5EC0_4D3E_0018_0001);
    // Both protocols, with and without a retry (a retried failure ends in the fake's 500).
    let cases: Vec<(Provider, u32, u16, Vec<u8>, String)> = (0..64)
        .map(|i| {
            let provider = if i % 2 == 0 {
                Provider::OpenAi
            } else {
                Provider::Anthropic
            };
            let (status, raw, described) = hostile_response(&mut rng, &trap.url);
            (provider, (i / 2) % 2, status, raw, described)
        })
        .collect();
    let runs = futures_util::future::join_all(
        cases
            .iter()
            .map(|(provider, retries, _, raw, _)| hostile_case(*provider, *retries, raw.clone())),
    )
    .await;
    let mut seen = std::collections::BTreeSet::new();
    for ((_, _, status, _, described), (result, took, requests)) in cases.iter().zip(runs) {
        let status = *status;
        let case = format!("case {described}: {result:?}");
        assert!(
            took < Duration::from_millis(2500),
            "past the deadline: {case}"
        );
        assert!((1..=2).contains(&requests), "{requests} requests: {case}");
        match &result {
            Ok(_) => assert!((200..300).contains(&status), "{case}"),
            Err(e) => {
                assert!(!e.to_string().contains(KEY_PART), "{case}");
                match e {
                    LlmError::Redirect { .. } => assert!((300..400).contains(&status), "{case}"),
                    LlmError::Status { status: s, .. } => {
                        assert!(*s == status || *s == 500, "{case}");
                        assert!(!(200..400).contains(s), "{case}");
                    }
                    LlmError::WaitTooLong { .. }
                    | LlmError::Connection(_)
                    | LlmError::Decode(_)
                    | LlmError::Timeout(_) => {}
                    other => panic!("not an error of a call: {other:?} in {case}"),
                }
            }
        }
        seen.insert(match &result {
            Ok(_) => "completion",
            Err(LlmError::Redirect { .. }) => "redirect",
            Err(LlmError::Status { .. }) => "status",
            Err(LlmError::WaitTooLong { .. }) => "wait too long",
            Err(LlmError::Connection(_)) => "connection",
            Err(LlmError::Decode(_)) => "decode",
            Err(_) => "other",
        });
    }
    assert!(
        trap.requests().is_empty(),
        "a redirect was followed: {:?}",
        trap.requests()
    );
    // The cases reach every outcome, so the bounds above were exercised.
    for outcome in ["completion", "redirect", "status", "decode", "connection"] {
        assert!(seen.contains(outcome), "no {outcome} among {seen:?}");
    }
}

#[tokio::test]
async fn an_announced_body_past_the_limit_is_refused_before_it_is_read() {
    let fake = FakeLlm::start(vec![Step::Raw(
        b"HTTP/1.1 200 OK\r\ncontent-length: 1000000000000\r\nconnection: close\r\n\r\n{}".to_vec(),
    )])
    .await;
    let e = engine(Provider::OpenAi, &fake.url);
    let err = ask(&e, "what time works for dinner on friday?")
        .await
        .expect_err("refused");
    assert!(matches!(llm_error(&err), LlmError::Decode(_)), "{err:#}");
    assert!(format!("{err:#}").contains("bytes"), "{err:#}");
    assert_eq!(fake.requests().len(), 1, "not retried");
}
