//! The read-ahead's connection when Redis is reached in plain text (TCP or a Unix
//! socket): it writes `XREADGROUP` itself and walks each reply straight from the
//! socket's bytes into entries. redis-rs first builds a tree of values, which took
//! about 6.5 ms for a 1,000-entry reply whose bytes arrive in about 1 ms; at
//! 50,000 messages a second that parse let a gateway's `MAXLEN ~ 1000` overtake
//! the reader. `rediss://` keeps the redis-rs connection (see `read_ahead`).

use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use redis::{ConnectionAddr, ConnectionInfo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UnixStream};

use super::batch::{RawEntry, Triaged, triage_raw};
use crate::resp::{self, Cursor, FrameScan, Item};
use crate::schema;

/// Longest wait for a connection or for the reply to a handshake command.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Longest silence from Redis, beyond a read's own block time, while a reply is
/// awaited (as redis-rs's command timeout).
const REPLY_SILENCE: Duration = Duration::from_secs(3);
/// Bytes asked of the socket at a time.
const READ_CHUNK: usize = 64 * 1024;
/// Buffer kept between replies: a reply of long messages may take far more, and
/// the buffer gives that back once it is parsed.
const KEPT_BUFFER: usize = 4 * 1024 * 1024;
/// About the most one reply should hold: a read's `COUNT` shrinks when entries are
/// long, so 2048 messages of 64 KiB never arrive as one 130 MB reply (the entries
/// read ahead have their own budget; the bytes of a reply in flight do not).
const REPLY_BYTES: usize = 4 * 1024 * 1024;
/// Fewest entries a read asks for, however long they are.
const MIN_COUNT: usize = 16;
/// Bytes per entry assumed before any reply has been seen: the longest message's,
/// as a backlog of them may be waiting (after a restart, say).
const FIRST_ENTRY_BYTES: usize = crate::entry::MAX_CONTENT_BYTES + 1024;

/// A plain-text socket to Redis.
enum Socket {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Socket {
    async fn read_into(&mut self, buf: &mut Vec<u8>) -> std::io::Result<usize> {
        match self {
            Socket::Tcp(s) => s.read_buf(buf).await,
            Socket::Unix(s) => s.read_buf(buf).await,
        }
    }

    async fn write_all(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        match self {
            Socket::Tcp(s) => s.write_all(bytes).await,
            Socket::Unix(s) => s.write_all(bytes).await,
        }
    }
}

/// What a read asks for.
pub(super) struct ReadRequest<'a> {
    /// Consumer group.
    pub group: &'a str,
    /// This consumer.
    pub consumer: &'a str,
    /// Most entries one read may take (fewer when messages are long).
    pub count: usize,
    /// How long one read waits for new entries.
    pub block: Duration,
}

/// A connection that sends `XREADGROUP ... >` and hands back the entries of each
/// reply, in the order the reads were sent.
pub(super) struct RawReader {
    socket: Socket,
    buf: Vec<u8>,
    /// Where the reply at the front of `buf` ends, as far as it has arrived.
    scan: FrameScan,
    group: String,
    consumer: String,
    block_ms: String,
    /// Most entries one read asks for.
    max_count: usize,
    /// Bytes of a reply per entry, as recent replies had them.
    entry_bytes: usize,
    in_flight: usize,
    /// Longest silence while a reply is awaited.
    silence: Duration,
    /// Set by any error of the connection itself: nothing more is sent or read.
    broken: bool,
}

impl RawReader {
    /// Connects and logs in as `info` says; `None` for a TLS address, which this
    /// reader does not speak.
    pub(super) async fn connect(
        info: &ConnectionInfo,
        read: &ReadRequest<'_>,
    ) -> Result<Option<Self>> {
        let socket = match info.addr() {
            ConnectionAddr::Tcp(host, port) => {
                let s = within(CONNECT_TIMEOUT, TcpStream::connect((host.as_str(), *port)))
                    .await
                    .with_context(|| format!("cannot connect to Redis at {host}:{port}"))?;
                s.set_nodelay(true)?;
                Socket::Tcp(s)
            }
            ConnectionAddr::Unix(path) => Socket::Unix(
                within(CONNECT_TIMEOUT, UnixStream::connect(path))
                    .await
                    .with_context(|| format!("cannot connect to Redis at {}", path.display()))?,
            ),
            _ => return Ok(None),
        };
        let mut reader = Self {
            socket,
            buf: Vec::with_capacity(READ_CHUNK),
            scan: FrameScan::default(),
            group: read.group.to_owned(),
            consumer: read.consumer.to_owned(),
            block_ms: read.block.as_millis().to_string(),
            max_count: read.count,
            entry_bytes: FIRST_ENTRY_BYTES,
            in_flight: 0,
            silence: read.block + REPLY_SILENCE,
            broken: false,
        };
        reader.log_in(info).await?;
        Ok(Some(reader))
    }

    /// Sends `AUTH` and `SELECT` as the URL asks.
    async fn log_in(&mut self, info: &ConnectionInfo) -> Result<()> {
        let settings = info.redis_settings();
        if let Some(password) = settings.password() {
            let mut args: Vec<&[u8]> = vec![b"AUTH"];
            if let Some(user) = settings.username() {
                args.push(user.as_bytes());
            }
            args.push(password.as_bytes());
            self.handshake(&args).await.context("AUTH failed")?;
        }
        if settings.db() != 0 {
            let db = settings.db().to_string();
            self.handshake(&[b"SELECT", db.as_bytes()])
                .await
                .context("SELECT failed")?;
        }
        Ok(())
    }

    async fn handshake(&mut self, args: &[&[u8]]) -> Result<()> {
        self.socket.write_all(&resp::command(args)).await?;
        let len = self.frame(CONNECT_TIMEOUT).await?;
        let answer = match Cursor::new(&self.buf[..len]).next_item()? {
            Item::Simple(_) => Ok(()),
            Item::Error(e) => Err(anyhow!("{}", String::from_utf8_lossy(e))),
            other => Err(anyhow!("unexpected reply {other:?}")),
        };
        self.buf.drain(..len);
        answer
    }

    /// Sends one more read; its reply comes after those of the reads before it.
    pub(super) async fn send(&mut self) -> Result<()> {
        anyhow::ensure!(!self.broken, "the stream-reading connection failed earlier");
        let count = read_count(self.max_count, self.entry_bytes).to_string();
        let request = resp::command(&[
            b"XREADGROUP",
            b"GROUP",
            self.group.as_bytes(),
            self.consumer.as_bytes(),
            b"COUNT",
            count.as_bytes(),
            b"BLOCK",
            self.block_ms.as_bytes(),
            b"STREAMS",
            schema::QUEUE_MESSAGES.as_bytes(),
            b">",
        ]);
        if let Err(e) = self.socket.write_all(&request).await {
            self.broken = true;
            return Err(anyhow::Error::new(e).context("cannot send a read to Redis"));
        }
        self.in_flight += 1;
        Ok(())
    }

    /// Reads sent whose reply has not been taken yet.
    pub(super) fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// The entries of the oldest read in flight. An error of the connection itself
    /// (closed, silent, or a reply that breaks the protocol) ends it: the reads
    /// still in flight count as lost, and what they delivered stays pending in the
    /// group for the worker's recovery of its own pending entries.
    pub(super) async fn next(&mut self) -> Result<Triaged> {
        anyhow::ensure!(self.in_flight > 0, "no read in flight");
        let len = match self.frame(self.silence).await {
            Ok(len) => len,
            Err(e) => {
                self.broken = true;
                self.in_flight = 0;
                return Err(e.context("reading QUEUE:messages failed"));
            }
        };
        self.in_flight -= 1;
        let entries = read_reply(&self.buf[..len]).context("XREADGROUP on QUEUE:messages");
        let read = entries.as_ref().map_or(0, Triaged::len);
        if let Some(seen) = len.checked_div(read) {
            self.entry_bytes = next_entry_bytes(self.entry_bytes, seen);
        }
        self.buf.drain(..len);
        if self.buf.capacity() > KEPT_BUFFER {
            self.buf.shrink_to(KEPT_BUFFER.max(self.buf.len()));
        }
        entries
    }

    /// Waits until `buf` starts with a whole reply, as long as Redis is never
    /// silent for longer than `silence`; returns the reply's length.
    async fn frame(&mut self, silence: Duration) -> Result<usize> {
        loop {
            if let Some(len) = self.scan.advance(&self.buf)? {
                return Ok(len);
            }
            self.buf.reserve(READ_CHUNK);
            if within(silence, self.socket.read_into(&mut self.buf)).await? == 0 {
                bail!("Redis closed the connection");
            }
        }
    }
}

/// Entries a read asks for when a reply takes about `entry_bytes` per entry.
fn read_count(max: usize, entry_bytes: usize) -> usize {
    (REPLY_BYTES / entry_bytes.max(1)).clamp(MIN_COUNT.min(max), max)
}

/// The bytes-per-entry estimate after a reply that took `seen` per entry: it
/// follows longer entries at once, so the next reads shrink before a second large
/// reply, and shorter ones by halves, so reads grow back to full size within a
/// few replies.
fn next_entry_bytes(estimate: usize, seen: usize) -> usize {
    seen.max(estimate / 2)
}

/// `f`, or an error once `limit` passes without an answer.
async fn within<T, E>(limit: Duration, f: impl Future<Output = Result<T, E>>) -> Result<T>
where
    anyhow::Error: From<E>,
{
    match tokio::time::timeout(limit, f).await {
        Ok(r) => Ok(r?),
        Err(_) => Err(anyhow!(
            "no answer from Redis within {} ms",
            limit.as_millis()
        )),
    }
}

/// The entries of one `XREADGROUP` reply: nil when the read timed out, else
/// `[[stream, [[id, [field, value, ...]], ...]]]`.
fn read_reply(reply: &[u8]) -> Result<Triaged> {
    let mut c = Cursor::new(reply);
    let streams = match c.next_item()? {
        Item::Nil => return Ok(Triaged::default()),
        Item::Array(n) => n,
        Item::Error(e) => return Err(read_error(e)),
        other => bail!("unexpected reply to XREADGROUP: {other:?}"),
    };
    let mut entries = Vec::new();
    for _ in 0..streams {
        expect_array(&mut c, 2)?;
        c.bulk()?;
        let Item::Array(n) = c.next_item()? else {
            bail!("XREADGROUP: a stream without a list of entries");
        };
        entries.reserve(n);
        for _ in 0..n {
            entries.push(entry(&mut c)?);
        }
    }
    Ok(triage_raw(&entries))
}

/// `[id, [field, value, ...]]`; the fields are nil for an entry deleted while pending.
fn entry<'a>(c: &mut Cursor<'a>) -> Result<RawEntry<'a>> {
    expect_array(c, 2)?;
    let id = std::str::from_utf8(c.bulk()?).context("XREADGROUP: an entry id that is not text")?;
    let fields = match c.next_item()? {
        Item::Nil => Vec::new(),
        Item::Array(n) => {
            let mut pairs = Vec::with_capacity(n / 2);
            for _ in 0..n / 2 {
                pairs.push((c.bulk()?, c.bulk()?));
            }
            // A name without a value is dropped, as the redis-rs path does.
            if n % 2 == 1 {
                c.bulk()?;
            }
            pairs
        }
        other => bail!("XREADGROUP: entry {id} has fields {other:?}"),
    };
    Ok(RawEntry { id, fields })
}

fn expect_array(c: &mut Cursor<'_>, len: usize) -> Result<()> {
    match c.next_item()? {
        Item::Array(n) if n == len => Ok(()),
        other => bail!("XREADGROUP: expected an array of {len}, got {other:?}"),
    }
}

/// An error reply, explained as the redis-rs path explains it.
fn read_error(e: &[u8]) -> anyhow::Error {
    let text = String::from_utf8_lossy(e);
    if text.starts_with("NOGROUP") {
        anyhow!("the consumer group is gone (Redis lost its data?); recreating it")
    } else {
        anyhow!("reading QUEUE:messages failed: {text}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reply_becomes_parsed_entries_and_dead_letters() {
        let good = [
            ("messageId", "m1"),
            ("contactId", "c1"),
            ("content", "hi"),
            ("timestamp", "1704931200000"),
            ("direction", "incoming"),
            ("fromMe", "false"),
        ];
        let mut fields: Vec<&[u8]> = Vec::new();
        for (k, v) in good {
            fields.push(k.as_bytes());
            fields.push(v.as_bytes());
        }
        let mut reply = b"*1\r\n*2\r\n$14\r\nQUEUE:messages\r\n*3\r\n".to_vec();
        reply.extend_from_slice(b"*2\r\n$3\r\n1-0\r\n");
        reply.extend_from_slice(&resp::command(&fields));
        reply.extend_from_slice(b"*2\r\n$3\r\n2-0\r\n*2\r\n$7\r\ncontent\r\n$2\r\nyo\r\n");
        reply.extend_from_slice(b"*2\r\n$3\r\n3-0\r\n*-1\r\n");
        let t = read_reply(&reply).expect("a valid reply");
        assert_eq!(t.len(), 3);
        let ids: Vec<&str> = t.stream_ids().collect();
        assert_eq!(ids, ["1-0", "2-0", "3-0"]);
        let letters = t.as_dead_letters("unused");
        assert!(
            letters[0].reason.contains("`messageId` is missing"),
            "{:?}",
            letters[0]
        );
        assert_eq!(letters[0].fields, [("content".to_owned(), "yo".to_owned())]);
        assert!(letters[1].reason.starts_with("entry 3-0: field"));
    }

    #[test]
    fn long_entries_make_reads_smaller() {
        assert_eq!(
            read_count(2048, 250),
            2048,
            "short messages: the full count"
        );
        assert_eq!(read_count(2048, 66_000), 63);
        assert_eq!(read_count(2048, 100_000_000), MIN_COUNT);
        assert_eq!(read_count(8, 100_000_000), 8, "never above the maximum");
        assert_eq!(read_count(2048, FIRST_ENTRY_BYTES), 63, "before any reply");
        assert_eq!(next_entry_bytes(250, 66_000), 66_000, "longer: at once");
        assert_eq!(next_entry_bytes(66_000, 250), 33_000, "shorter: by halves");
        let mut estimate = FIRST_ENTRY_BYTES;
        for _ in 0..8 {
            estimate = next_entry_bytes(estimate, 250);
        }
        assert_eq!(
            read_count(2048, estimate),
            2048,
            "full reads after 8 short replies"
        );
    }

    #[test]
    fn a_timeout_is_no_entries_and_an_error_is_explained() {
        assert_eq!(read_reply(b"*-1\r\n").expect("nil").len(), 0);
        let Err(gone) = read_reply(b"-NOGROUP No such key\r\n") else {
            panic!("NOGROUP is an error");
        };
        assert!(
            gone.to_string().contains("consumer group is gone"),
            "{gone}"
        );
        assert!(read_reply(b":1\r\n").is_err());
        assert!(read_reply(b"*1\r\n*2\r\n$1\r\ns\r\n*1\r\n*2\r\n$3\r\n1-0\r\n:1\r\n").is_err());
        let odd = read_reply(b"*1\r\n*2\r\n$1\r\ns\r\n*1\r\n*2\r\n$3\r\n1-0\r\n*1\r\n$1\r\na\r\n")
            .expect("a field without a value is dropped");
        assert_eq!(odd.as_dead_letters("unused")[0].fields, []);
    }
}
