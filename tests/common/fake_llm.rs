//! A fake language-model (or transcription) server that speaks real HTTP/1.1 on
//! a local port: each request gets the next scripted step, which may answer,
//! stall, drip or reset. It records each request's raw body, its JSON when it
//! is JSON, and reads back a multipart form independently of the code under test.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What the server does with one request.
#[derive(Debug, Clone)]
pub enum Step {
    /// A whole response.
    Respond {
        /// Status code.
        status: u16,
        /// Extra headers.
        headers: Vec<(String, String)>,
        /// Body.
        body: String,
    },
    /// Reads the request and never answers.
    Silent,
    /// Sends the headers and `sent` bytes of a `body` promised in full, then stalls.
    StallBody {
        /// The whole body (its length is announced).
        body: String,
        /// Bytes sent before the stall.
        sent: usize,
    },
    /// Sends the response a few bytes at a time, `every` apart.
    Drip {
        /// Body.
        body: String,
        /// Pause between chunks.
        every: Duration,
    },
    /// Closes the connection at once, with a TCP reset.
    Reset,
    /// These bytes as the whole response (status line, headers, body), then
    /// a close: for headers no well-behaved server sends.
    Raw(Vec<u8>),
    /// The step this function picks from the request's JSON body: a model that
    /// reads its prompt.
    Compute(fn(&serde_json::Value) -> Step),
    /// The step this function picks from the whole request (headers, raw
    /// body): a transcription server that reads the audio it is sent.
    ComputeRaw(fn(&Recorded) -> Step),
}

impl Step {
    /// 200 with a JSON body.
    pub fn ok(body: &str) -> Self {
        Self::status(200, body)
    }

    /// A status with a JSON body.
    pub fn status(status: u16, body: &str) -> Self {
        Self::Respond {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            body: body.into(),
        }
    }

    /// A status with a JSON body and one more header.
    pub fn with_header(status: u16, name: &str, value: &str, body: &str) -> Self {
        let mut s = Self::status(status, body);
        if let Self::Respond { headers, .. } = &mut s {
            headers.push((name.into(), value.into()));
        }
        s
    }
}

/// One request as the server read it.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// `POST /v1/...`
    pub method: String,
    /// Path.
    pub path: String,
    /// Headers, names lowercase.
    pub headers: Vec<(String, String)>,
    /// Body as JSON (Null if it was not).
    pub body: serde_json::Value,
    /// The body's bytes as sent.
    pub raw: Vec<u8>,
    /// The `content-type` header, when sent.
    pub content_type: Option<String>,
    /// When it arrived.
    pub at: Instant,
}

/// One part of a `multipart/form-data` body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormPart {
    /// The `name` of its Content-Disposition.
    pub name: String,
    /// The `filename`, for a file.
    pub filename: Option<String>,
    /// Its own `content-type`, when it has one.
    pub content_type: Option<String>,
    /// Its bytes.
    pub data: Vec<u8>,
}

impl Recorded {
    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body read as `multipart/form-data` (RFC 7578): an error says what is malformed.
    pub fn form(&self) -> Result<Vec<FormPart>, String> {
        let ct = self.content_type.as_deref().ok_or("no content-type")?;
        let (kind, params) = ct.split_once(';').ok_or("no boundary parameter")?;
        if !kind.trim().eq_ignore_ascii_case("multipart/form-data") {
            return Err(format!("content-type is {kind}"));
        }
        let boundary = params
            .split(';')
            .filter_map(|p| p.trim().split_once('='))
            .find(|(n, _)| n.eq_ignore_ascii_case("boundary"))
            .map(|(_, v)| v.trim_matches('"'))
            .ok_or("no boundary parameter")?;
        let opening = format!("--{boundary}\r\n");
        let delimiter = format!("\r\n--{boundary}");
        let mut rest = self
            .raw
            .strip_prefix(opening.as_bytes())
            .ok_or("the body does not open with the boundary")?;
        let mut parts = Vec::new();
        loop {
            let end =
                find(rest, delimiter.as_bytes()).ok_or("a part with no delimiter after it")?;
            parts.push(form_part(&rest[..end])?);
            rest = &rest[end + delimiter.len()..];
            if rest == b"--\r\n" || rest == b"--" {
                return Ok(parts);
            }
            rest = rest
                .strip_prefix(b"\r\n")
                .ok_or("a delimiter followed by neither CRLF nor --")?;
        }
    }

    /// The form's text field `name`.
    pub fn form_text(&self, name: &str) -> Option<String> {
        let parts = self.form().ok()?;
        let part = parts.into_iter().find(|p| p.name == name)?;
        String::from_utf8(part.data).ok()
    }
}

/// Where `needle` (not empty) first occurs in `haystack`.
fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    let mut at = 0;
    loop {
        at += haystack.get(at..)?.iter().position(|&b| b == needle[0])?;
        if haystack[at..].starts_with(needle) {
            return Some(at);
        }
        at += 1;
    }
}

/// One part: headers up to a blank line, then its bytes.
fn form_part(part: &[u8]) -> Result<FormPart, String> {
    let head_end = find(part, b"\r\n\r\n").ok_or("a part without a blank line")?;
    let head = std::str::from_utf8(&part[..head_end]).map_err(|_| "headers not UTF-8")?;
    let mut name = None;
    let mut filename = None;
    let mut content_type = None;
    for line in head.split("\r\n") {
        let (n, v) = line
            .split_once(':')
            .ok_or(format!("header line {line:?}"))?;
        match n.trim().to_ascii_lowercase().as_str() {
            "content-disposition" => {
                let mut params = v.split(';').map(str::trim);
                if params.next() != Some("form-data") {
                    return Err(format!("disposition {v:?}"));
                }
                for p in params {
                    let (k, val) = p.split_once('=').ok_or(format!("parameter {p:?}"))?;
                    let val = val
                        .strip_prefix('"')
                        .and_then(|x| x.strip_suffix('"'))
                        .ok_or(format!("unquoted {k}"))?
                        .to_owned();
                    match k {
                        "name" => name = Some(val),
                        "filename" => filename = Some(val),
                        _ => return Err(format!("parameter {k}")),
                    }
                }
            }
            "content-type" => content_type = Some(v.trim().to_owned()),
            other => return Err(format!("unexpected header {other}")),
        }
    }
    Ok(FormPart {
        name: name.ok_or("a part without a name")?,
        filename,
        content_type,
        data: part[head_end + 4..].to_vec(),
    })
}

/// The running server.
pub struct FakeLlm {
    /// `http://127.0.0.1:PORT`
    pub url: String,
    requests: Arc<Mutex<Vec<Recorded>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeLlm {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeLlm {
    /// Starts a server playing `script`, one step per request; past its end, 500.
    pub async fn start(script: Vec<Step>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let script = Arc::new(Mutex::new(VecDeque::from(script)));
        let seen = Arc::clone(&requests);
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let seen = Arc::clone(&seen);
                let script = Arc::clone(&script);
                tokio::spawn(serve(stream, seen, script));
            }
        });
        Self {
            url,
            requests,
            task,
        }
    }

    /// The requests read so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().expect("lock").clone()
    }
}

async fn serve(
    mut stream: TcpStream,
    seen: Arc<Mutex<Vec<Recorded>>>,
    script: Arc<Mutex<VecDeque<Step>>>,
) {
    let Some(req) = read_request(&mut stream).await else {
        return;
    };
    let Ok(req) = req else {
        let _ = stream.write_all(&head(413, &[], 0)).await;
        let _ = stream.shutdown().await;
        return;
    };
    let body = req.body.clone();
    let recorded = req.clone();
    seen.lock().expect("lock").push(req);
    let step = script
        .lock()
        .expect("lock")
        .pop_front()
        .unwrap_or_else(|| Step::status(500, r#"{"error":{"message":"script over"}}"#));
    let step = match step {
        Step::Compute(pick) => pick(&body),
        Step::ComputeRaw(pick) => pick(&recorded),
        step => step,
    };
    match step {
        Step::Respond {
            status,
            headers,
            body,
        } => {
            let _ = stream.write_all(&head(status, &headers, body.len())).await;
            let _ = stream.write_all(body.as_bytes()).await;
            let _ = stream.shutdown().await;
        }
        Step::Silent => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
        }
        Step::StallBody { body, sent } => {
            let _ = stream.write_all(&head(200, &[], body.len())).await;
            let _ = stream
                .write_all(&body.as_bytes()[..sent.min(body.len())])
                .await;
            let _ = stream.flush().await;
            tokio::time::sleep(Duration::from_secs(3600)).await;
        }
        Step::Drip { body, every } => {
            let mut bytes = head(200, &[], body.len());
            bytes.extend_from_slice(body.as_bytes());
            for chunk in bytes.chunks(16) {
                if stream.write_all(chunk).await.is_err() {
                    return;
                }
                let _ = stream.flush().await;
                tokio::time::sleep(every).await;
            }
        }
        Step::Raw(bytes) => {
            let _ = stream.write_all(&bytes).await;
            let _ = stream.shutdown().await;
        }
        // A picked step that picks again is not followed: the connection closes.
        Step::Compute(_) | Step::ComputeRaw(_) => {
            let _ = stream.shutdown().await;
        }
        Step::Reset => {
            // SO_LINGER 0: close sends RST instead of FIN.
            let _ = stream.set_zero_linger();
            drop(stream);
        }
    }
}

fn head(status: u16, headers: &[(String, String)], len: usize) -> Vec<u8> {
    let mut h =
        format!("HTTP/1.1 {status} Scripted\r\ncontent-length: {len}\r\nconnection: close\r\n");
    for (n, v) in headers {
        h.push_str(&format!("{n}: {v}\r\n"));
    }
    h.push_str("\r\n");
    h.into_bytes()
}

/// The largest request body read (an audio file of 25 MiB in a form fits).
const MAX_REQUEST_BODY: usize = 32 << 20;

/// The request, `None` when the connection ends first, `Some(Err)` when its
/// body is over [`MAX_REQUEST_BODY`] (answered 413, unread, unrecorded).
async fn read_request(stream: &mut TcpStream) -> Option<Result<Recorded, ()>> {
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 64 << 10];
    let header_end = loop {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let text = String::from_utf8_lossy(&buf[..header_end]).into_owned();
    let mut lines = text.split("\r\n");
    let mut first = lines.next()?.split(' ');
    let method = first.next()?.to_owned();
    let path = first.next()?.to_owned();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let len: usize = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    if len > MAX_REQUEST_BODY {
        return Some(Err(()));
    }
    buf.reserve((header_end + len).saturating_sub(buf.len()));
    while buf.len() < header_end + len {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let raw = buf[header_end..header_end + len].to_vec();
    let body = serde_json::from_slice(&raw).unwrap_or_default();
    let content_type = headers
        .iter()
        .find(|(n, _)| n == "content-type")
        .map(|(_, v)| v.clone());
    Some(Ok(Recorded {
        method,
        path,
        headers,
        body,
        raw,
        content_type,
        at: Instant::now(),
    }))
}
