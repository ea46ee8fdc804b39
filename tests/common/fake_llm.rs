//! A fake language-model server that speaks real HTTP/1.1 on a local port: each
//! request gets the next scripted step, which may answer, stall, drip or reset.
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
    /// When it arrived.
    pub at: Instant,
}

impl Recorded {
    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
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
    let body = req.body.clone();
    seen.lock().expect("lock").push(req);
    let step = script
        .lock()
        .expect("lock")
        .pop_front()
        .unwrap_or_else(|| Step::status(500, r#"{"error":{"message":"script over"}}"#));
    let step = match step {
        Step::Compute(pick) => pick(&body),
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
        Step::Compute(_) => {
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

async fn read_request(stream: &mut TcpStream) -> Option<Recorded> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
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
    while buf.len() < header_end + len {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let body = serde_json::from_slice(&buf[header_end..header_end + len]).unwrap_or_default();
    Some(Recorded {
        method,
        path,
        headers,
        body,
        at: Instant::now(),
    })
}
