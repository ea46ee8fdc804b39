//! The read-ahead's connection when Redis is reached in plain text (TCP or a Unix
//! socket): it writes `XREADGROUP` itself and walks each reply straight from the
//! socket's bytes into entries. redis-rs first builds a tree of values, which took
//! about 6.5 ms for a 1,000-entry reply whose bytes arrive in about 1 ms; at
//! 50,000 messages a second that parse let a gateway's `MAXLEN ~ 1000` overtake
//! the reader. `rediss://` keeps the redis-rs connection (see `read_ahead`).

use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use redis::{ConnectionAddr, ConnectionInfo};

use crate::connection::{PrimaryWatch, StreamNode};
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
    /// On Sentinel: tells when the node read stops being the primary.
    primary: Option<PrimaryWatch>,
}

impl RawReader {
    /// Connects to `node` and logs in as it says; `None` for a TLS address, which
    /// this reader does not speak.
    pub(super) async fn connect(node: &StreamNode, read: &ReadRequest<'_>) -> Result<Option<Self>> {
        let info = node.info();
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
            primary: node.watch(),
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
        // On Sentinel, a demoted primary would go on answering with nothing new.
        anyhow::ensure!(
            !self.primary.as_ref().is_some_and(PrimaryWatch::moved),
            "the primary moved: the stream reader connects again"
        );
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
            schema::queue_messages().as_bytes(),
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

/// Fewest bytes an entry takes in a reply (`*2\r\n$0\r\n\r\n*-1\r\n`).
const MIN_ENTRY_BYTES: usize = 15;
/// Fewest bytes a field and its value take (`$0\r\n\r\n`, twice).
const MIN_PAIR_BYTES: usize = 12;

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
        // A count is only what the reply declares: room is made for no more
        // entries than its bytes can hold, so a count of 2^40 cannot ask for 40 TiB.
        entries.reserve(n.min(reply.len() / MIN_ENTRY_BYTES));
        for _ in 0..n {
            entries.push(entry(&mut c, reply.len())?);
        }
    }
    Ok(triage_raw(&entries))
}

/// `[id, [field, value, ...]]`; the fields are nil for an entry deleted while pending.
/// `reply_len` bounds the room made for the fields, as in [`read_reply`].
fn entry<'a>(c: &mut Cursor<'a>, reply_len: usize) -> Result<RawEntry<'a>> {
    expect_array(c, 2)?;
    let id = std::str::from_utf8(c.bulk()?).context("XREADGROUP: an entry id that is not text")?;
    let fields = match c.next_item()? {
        Item::Nil => Vec::new(),
        Item::Array(n) => {
            let mut pairs = Vec::with_capacity((n / 2).min(reply_len / MIN_PAIR_BYTES));
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

    // Property tests of the raw path's parsing (`read_reply`), and the same
    // entries read through both read paths, in memory and from a real Redis:
    // the raw reader and redis-rs must give every entry the same verdict.

    use std::collections::{BTreeMap, HashMap};

    use proptest::prelude::*;
    use proptest::sample::Index;
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    use redis::streams::StreamReadOptions;
    use redis::{FromRedisValue, Value};

    use super::super::batch::triage;
    use super::super::entries::ReadEntries;
    use crate::entry::strategies::{good_value, value};
    use crate::server::{GraphModule, RedisServer, find_binary};

    /// Few cases, no regression files: these run with every `cargo test` on a
    /// small machine; a failure found is kept as a plain test instead.
    fn config() -> ProptestConfig {
        ProptestConfig {
            cases: 256,
            failure_persistence: None,
            ..ProptestConfig::default()
        }
    }

    const NAMES: [&str; 6] = [
        "messageId",
        "contactId",
        "content",
        "timestamp",
        "direction",
        "fromMe",
    ];

    /// An entry's fields as written: names and values, in order.
    type Fields = Vec<(Vec<u8>, Vec<u8>)>;

    /// An entry as written: its id and its fields, `None` once deleted while pending.
    #[derive(Debug, Clone)]
    struct Written {
        id: String,
        fields: Option<Fields>,
    }

    impl Written {
        /// True when the dead-letter fields must match too: a repeated name or one
        /// that is not UTF-8 is kept by the raw path and merged or dropped by the
        /// map redis-rs's path builds (the verdicts agree all the same).
        fn plain_names(&self) -> bool {
            let Some(fields) = &self.fields else {
                return true;
            };
            let mut seen = std::collections::HashSet::new();
            fields
                .iter()
                .all(|(k, _)| std::str::from_utf8(k).is_ok() && seen.insert(k))
        }
    }

    impl Written {
        /// The fields, short enough to read in a failure.
        fn describe(&self) -> String {
            let Some(fields) = &self.fields else {
                return "nil (deleted while pending)".into();
            };
            let show = |b: &[u8]| {
                let text = String::from_utf8_lossy(&b[..b.len().min(40)]).into_owned();
                format!("{text:?} ({} bytes)", b.len())
            };
            let pairs: Vec<String> = fields
                .iter()
                .map(|(k, v)| format!("{} = {}", show(k), show(v)))
                .collect();
            pairs.join(", ")
        }
    }

    /// A `payload` value of the original gateway's form: its JSON object built from
    /// values good or bad, with keys left out, of the wrong JSON type, or not JSON.
    fn payload_value() -> BoxedStrategy<Vec<u8>> {
        let text = |name: &'static str| {
            value(name)
                .prop_map(|v| serde_json::Value::String(String::from_utf8_lossy(&v).into_owned()))
        };
        let key = |name: &'static str, v: BoxedStrategy<serde_json::Value>| {
            prop::option::weighted(0.9, v).prop_map(move |v| (name, v))
        };
        let object = (
            key("messageId", text("messageId").boxed()),
            key("contactId", prop_oneof![4 => Just(serde_json::json!("123456789@c.us")), 1 => text("contactId")].boxed()),
            key("content", text("content").boxed()),
            key(
                "timestamp",
                prop_oneof![
                    3 => (1_000_000_000_000i64..2_000_000_000_000).prop_map(serde_json::Value::from),
                    1 => text("timestamp"),
                    1 => Just(serde_json::json!(-1)),
                    1 => Just(serde_json::json!(1.5)),
                ]
                .boxed(),
            ),
            prop::option::weighted(0.2, prop_oneof![Just(serde_json::json!("outgoing")), Just(serde_json::json!(7))]),
            prop::option::weighted(0.2, prop_oneof![Just(serde_json::json!(false)), Just(serde_json::json!("true")), Just(serde_json::json!(true))]),
            prop::option::weighted(0.8, prop_oneof![Just(serde_json::json!(false)), Just(serde_json::json!("no"))]),
        )
            .prop_map(|(mid, cid, content, ts, dir, from_me, media)| {
                let mut o = serde_json::Map::new();
                for (k, v) in [mid, cid, content, ts] {
                    if let Some(v) = v {
                        o.insert(k.into(), v);
                    }
                }
                for (k, v) in [("direction", dir), ("fromMe", from_me), ("hasMedia", media)] {
                    if let Some(v) = v {
                        o.insert(k.into(), v);
                    }
                }
                o.insert("contactName".into(), serde_json::json!("Ann"));
                o.insert("type".into(), serde_json::json!("chat"));
                serde_json::Value::Object(o).to_string().into_bytes()
            });
        prop_oneof![
            6 => object,
            1 => Just(b"{not json".to_vec()),
            1 => Just(b"{\"messageId\":\"m\"}\xff".to_vec()),
        ]
        .boxed()
    }

    fn pair() -> impl Strategy<Value = (Vec<u8>, Vec<u8>)> {
        prop_oneof![
            6 => prop::sample::select(NAMES.to_vec()).prop_map(|n| n.as_bytes().to_vec()),
            1 => Just(b"content\xff".to_vec()),
            1 => Just(b"note".to_vec()),
            1 => Just(crate::entry::PAYLOAD.as_bytes().to_vec()),
        ]
        .prop_flat_map(|n| {
            if n == crate::entry::PAYLOAD.as_bytes() {
                return (Just(n), payload_value()).boxed();
            }
            let field = NAMES.iter().find(|f| f.as_bytes() == n.as_slice());
            (Just(n), value(field.copied().unwrap_or("content"))).boxed()
        })
    }

    /// An entry's fields: often the six good ones, then pairs put in anywhere (a
    /// repeated name among them) and some taken out; never none (`XADD` needs one).
    fn field_list() -> impl Strategy<Value = Fields> {
        let base: Vec<_> = NAMES
            .iter()
            .map(|n| (Just(n.as_bytes().to_vec()), good_value(n)))
            .collect();
        // The seed's six fields, or the original gateway's one `payload`, or nothing.
        let base = prop_oneof![
            5 => base.prop_map(Some),
            2 => payload_value().prop_map(|p| Some(vec![(crate::entry::PAYLOAD.as_bytes().to_vec(), p)])),
            3 => Just(None),
        ];
        (
            base,
            prop::collection::vec((any::<Index>(), pair()), 0..4),
            prop::collection::vec(any::<Index>(), 0..2),
        )
            .prop_map(|(base, extra, removed)| {
                let mut list = base.unwrap_or_default();
                for (at, p) in extra {
                    list.insert(at.index(list.len() + 1), p);
                }
                for at in removed {
                    if list.len() > 1 {
                        list.remove(at.index(list.len()));
                    }
                }
                if list.is_empty() {
                    list.push((b"note".to_vec(), b"alone".to_vec()));
                }
                list
            })
    }

    fn written() -> impl Strategy<Value = Vec<Written>> {
        prop::collection::vec(prop::option::weighted(0.9, field_list()), 0..6).prop_map(|entries| {
            entries
                .into_iter()
                .enumerate()
                .map(|(i, fields)| Written {
                    id: format!("{}-{i}", 1_704_931_200_000u64 + i as u64),
                    fields,
                })
                .collect()
        })
    }

    fn bulk(b: &[u8]) -> Vec<u8> {
        let mut out = format!("${}\r\n", b.len()).into_bytes();
        out.extend_from_slice(b);
        out.extend_from_slice(b"\r\n");
        out
    }

    /// The RESP2 reply Redis sends for these entries of `QUEUE:messages`.
    fn reply_bytes(entries: &[Written]) -> Vec<u8> {
        let mut out = b"*1\r\n*2\r\n".to_vec();
        out.extend(bulk(schema::queue_messages().as_bytes()));
        out.extend(format!("*{}\r\n", entries.len()).into_bytes());
        for e in entries {
            out.extend_from_slice(b"*2\r\n");
            out.extend(bulk(e.id.as_bytes()));
            match &e.fields {
                None => out.extend_from_slice(b"*-1\r\n"),
                Some(fields) => {
                    out.extend(format!("*{}\r\n", fields.len() * 2).into_bytes());
                    for (k, v) in fields {
                        out.extend(bulk(k));
                        out.extend(bulk(v));
                    }
                }
            }
        }
        out
    }

    /// The same reply as redis-rs hands it over on a RESP3 connection.
    fn reply_value(entries: &[Written]) -> Value {
        let list = entries
            .iter()
            .map(|e| {
                let fields = match &e.fields {
                    None => Value::Nil,
                    Some(fields) => Value::Array(
                        fields
                            .iter()
                            .flat_map(|(k, v)| {
                                [Value::BulkString(k.clone()), Value::BulkString(v.clone())]
                            })
                            .collect(),
                    ),
                };
                Value::Array(vec![Value::BulkString(e.id.clone().into_bytes()), fields])
            })
            .collect();
        Value::Map(vec![(
            Value::BulkString(schema::queue_messages().as_bytes().to_vec()),
            Value::Array(list),
        )])
    }

    /// A verdict as the rest of the worker sees it.
    #[derive(Debug, Clone, PartialEq, Eq)]
    enum Verdict {
        /// Parsed, to be decided; its fields as parsed.
        Good(Vec<(String, String)>),
        /// Dead-lettered with this reason, and these fields copied.
        Dead(String, Vec<(String, String)>),
    }

    /// Every entry's verdict by stream id.
    fn verdicts(t: &Triaged) -> BTreeMap<String, Verdict> {
        // No reason of a rejected entry ends with a NUL: this marks the parsed ones.
        const GOOD: &str = "parsed\0";
        t.as_dead_letters(GOOD)
            .into_iter()
            .map(|d| {
                let v = if d.reason.ends_with(GOOD) {
                    Verdict::Good(d.fields)
                } else {
                    Verdict::Dead(d.reason, d.fields)
                };
                (d.stream_id, v)
            })
            .collect()
    }

    /// Asserts both paths agree on every entry of `written`: the same verdict and
    /// reason, and the same fields where the names allow (see `plain_names`).
    fn assert_same_verdicts(
        written: &[Written],
        raw: &BTreeMap<String, Verdict>,
        redis_rs: &BTreeMap<String, Verdict>,
    ) {
        assert_eq!(raw.len(), written.len(), "raw path: one verdict per entry");
        assert_eq!(
            redis_rs.len(),
            written.len(),
            "redis-rs: one verdict per entry"
        );
        for w in written {
            let (a, b) = (&raw[&w.id], &redis_rs[&w.id]);
            match (a, b) {
                (Verdict::Dead(ra, _), Verdict::Dead(rb, _)) if !w.plain_names() => {
                    assert_eq!(ra, rb, "entry {}", w.id);
                }
                _ => assert_eq!(a, b, "entry {} written as {}", w.id, w.describe()),
            }
        }
    }

    /// What the redis-rs path makes of a reply (`read_ahead`'s TLS source and the
    /// worker's own pending reads).
    fn redis_rs_triage(v: Value) -> Triaged {
        let ReadEntries(entries) = ReadEntries::from_redis_value(v).expect("a valid reply");
        triage(&entries, &HashMap::new())
    }

    /// Lengths a hostile peer may declare.
    const HOSTILE_COUNTS: &[&str] = &[
        "1099511627776",
        "2305843009213693952",
        "9223372036854775807",
        "536870913",
        "-2",
        "",
    ];

    proptest! {
        #![proptest_config(config())]

        #[test]
        fn a_reply_gets_the_same_verdicts_as_through_redis_rs(written in written()) {
            let raw = read_reply(&reply_bytes(&written)).expect("a valid reply");
            let redis_rs = redis_rs_triage(reply_value(&written));
            assert_same_verdicts(&written, &verdicts(&raw), &verdicts(&redis_rs));
        }

        #[test]
        fn a_broken_reply_is_an_error_never_a_panic(
            written in written(),
            cut in any::<Index>(),
            flips in prop::collection::vec((any::<Index>(), 1..=255u8), 0..3),
            huge in prop::option::of((any::<Index>(), any::<Index>())),
        ) {
            let mut buf = reply_bytes(&written);
            if let Some((at, count)) = huge {
                let headers: Vec<usize> = (0..buf.len()).filter(|&p| buf[p] == b'*').collect();
                let start = headers[at.index(headers.len())] + 1;
                let digits = buf[start..].iter().take_while(|b| **b != b'\r').count();
                let count = HOSTILE_COUNTS[count.index(HOSTILE_COUNTS.len())];
                buf.splice(start..start + digits, count.bytes());
            }
            for (at, x) in flips {
                let at = at.index(buf.len());
                buf[at] ^= x;
            }
            buf.truncate(cut.index(buf.len() + 1));
            // As the reader does: only a reply the scanner framed is walked...
            if let Ok(Some(len)) = FrameScan::default().advance(&buf) {
                let _ = read_reply(&buf[..len]);
            }
            // ...and, should that ever change, any bytes at all are no panic either.
            let _ = read_reply(&buf);
        }
    }

    #[test]
    fn declared_counts_reserve_only_what_the_reply_can_hold() {
        // Counts a reply cannot hold: 2^40 entries, or fields, would ask the
        // allocator for 40 TiB (an abort), larger ones overflow the capacity (a
        // panic). Reservations are bounded by the bytes of the reply.
        for count in HOSTILE_COUNTS {
            let entries = format!("*1\r\n*2\r\n$1\r\ns\r\n*{count}\r\n*2\r\n$3\r\n1-0\r\n*-1\r\n");
            assert!(read_reply(entries.as_bytes()).is_err(), "{count} entries");
            let fields = format!("*1\r\n*2\r\n$1\r\ns\r\n*1\r\n*2\r\n$3\r\n1-0\r\n*{count}\r\n");
            assert!(read_reply(fields.as_bytes()).is_err(), "{count} fields");
        }
    }

    /// Entries written by hand for the cases issue 10 names, by label.
    fn named_cases() -> Vec<(&'static str, Fields)> {
        let good = |content: &[u8]| -> Fields {
            [
                ("messageId", &b"m1"[..]),
                ("contactId", b"c1"),
                ("content", content),
                ("timestamp", b"1704931200000"),
                ("direction", b"incoming"),
                ("fromMe", b"false"),
            ]
            .iter()
            .map(|(k, v)| (k.as_bytes().to_vec(), v.to_vec()))
            .collect()
        };
        let with = |content: &[u8], name: &[u8], value: &[u8]| {
            let mut f = good(content);
            f.push((name.to_vec(), value.to_vec()));
            f
        };
        let without = |name: &str| {
            let mut f = good(b"hi");
            f.retain(|(k, _)| k != name.as_bytes());
            f
        };
        let sixty_kb = "é".repeat(30_000).into_bytes();
        vec![
            ("good", good(b"hi")),
            ("good, 60 KB of content", good(&sixty_kb)),
            ("content past the limit", good(&vec![b'y'; 65_537])),
            ("content not UTF-8", good(b"caf\xe9")),
            (
                "a 60 KB message id",
                with(b"hi", b"messageId", &vec![b'm'; 60_000]),
            ),
            (
                "a 60 KB timestamp",
                with(b"hi", b"timestamp", &vec![b'9'; 60_000]),
            ),
            ("a 60 KB field name", with(b"hi", &vec![b'n'; 60_000], b"v")),
            ("repeated content, the last good", {
                let mut f = vec![(b"content".to_vec(), b"\xff".to_vec())];
                f.extend(good(b"second"));
                f
            }),
            (
                "repeated content, the last bad",
                with(b"hi", b"content", b"\xff\xfe"),
            ),
            (
                "repeated contact, the last empty",
                with(b"hi", b"contactId", b""),
            ),
            ("a name not UTF-8 for content", {
                let mut f = without("content");
                f.push((b"content\xff".to_vec(), b"hi".to_vec()));
                f
            }),
            ("missing fromMe", without("fromMe")),
            (
                "missing everything",
                vec![(b"note".to_vec(), b"x".to_vec())],
            ),
            ("from me yet incoming", with(b"hi", b"fromMe", b"true")),
            (
                "a contact id with a newline",
                with(b"hi", b"contactId", b"c\n1"),
            ),
            ("the original gateway's payload", vec![(b"payload".to_vec(), br#"{"messageId":"false_1@c.us_A","contactId":"123456789@c.us","contactName":"Ann","content":"hi","timestamp":1704931200000,"hasMedia":false,"type":"chat"}"#.to_vec())]),
            ("a payload without its content", vec![(b"payload".to_vec(), br#"{"messageId":"m2","contactId":"123456789@c.us","timestamp":1704931200000}"#.to_vec())]),
            ("a payload that is not JSON", vec![(b"payload".to_vec(), b"{\"messageId\"".to_vec())]),
            ("deleted while pending, good", good(b"bye")),
            ("deleted while pending, bad", without("timestamp")),
        ]
    }

    /// Sends `XREADGROUP` for `from` on the raw reader's own connection and parses
    /// the reply as it does: the raw reader itself only ever reads `>`.
    async fn raw_read_from(reader: &mut RawReader, from: &str) -> Triaged {
        let request = resp::command(&[
            b"XREADGROUP",
            b"GROUP",
            reader.group.as_bytes(),
            reader.consumer.as_bytes(),
            b"COUNT",
            b"100000",
            b"STREAMS",
            schema::queue_messages().as_bytes(),
            from.as_bytes(),
        ]);
        reader.socket.write_all(&request).await.expect("send");
        let len = reader
            .frame(Duration::from_secs(10))
            .await
            .expect("a reply");
        let t = read_reply(&reader.buf[..len]).expect("a valid reply");
        reader.buf.drain(..len);
        t
    }

    #[tokio::test]
    async fn a_real_stream_gets_the_same_verdicts_through_both_readers() {
        let server =
            RedisServer::start(find_binary().expect("a redis-server"), GraphModule::Without)
                .expect("start redis-server");
        // The settings the worker's reader gets (RESP3, as the redis-rs reads have).
        let client = crate::connection::open_client(&server.url()).expect("client");
        let mut shared = crate::connection::manager(&client, None)
            .await
            .expect("connect");
        let node = client
            .stream_node(&mut shared, schema::queue_messages())
            .await
            .expect("a node");
        let client = redis::Client::open(node.info().clone()).expect("client");
        let mut con = client
            .get_multiplexed_async_connection()
            .await
            .expect("connect");

        // The named cases, then entries drawn at random (the same ones each run).
        let mut lists = named_cases();
        let mut runner = TestRunner::deterministic();
        let drawn = prop::collection::vec(field_list(), 120)
            .new_tree(&mut runner)
            .expect("draw entries")
            .current();
        lists.extend(drawn.into_iter().map(|f| ("drawn", f)));
        let mut pipe = redis::pipe();
        for (_, fields) in &lists {
            let mut cmd = redis::cmd("XADD");
            cmd.arg(schema::queue_messages()).arg("*");
            for (k, v) in fields {
                cmd.arg(k.as_slice()).arg(v.as_slice());
            }
            pipe.add_command(cmd);
        }
        let ids: Vec<String> = pipe.query_async(&mut con).await.expect("XADD");
        let mut written: Vec<Written> = ids
            .into_iter()
            .zip(&lists)
            .map(|(id, (_, fields))| Written {
                id,
                fields: Some(fields.clone()),
            })
            .collect();
        for group in ["raw", "redis-rs"] {
            let _: () = redis::cmd("XGROUP")
                .arg("CREATE")
                .arg(schema::queue_messages())
                .arg(group)
                .arg("0")
                .query_async(&mut con)
                .await
                .expect("XGROUP CREATE");
        }

        // New entries (`>`): the raw reader as the read-ahead runs it, redis-rs
        // as its TLS source and the worker's own reads do.
        let read = ReadRequest {
            group: "raw",
            consumer: "c",
            count: 2048,
            block: Duration::from_millis(50),
        };
        let mut reader = RawReader::connect(&node, &read)
            .await
            .expect("connect")
            .expect("a plain-text address");
        let mut raw = Triaged::default();
        loop {
            reader.send().await.expect("send a read");
            let t = reader.next().await.expect("a read");
            if t.len() == 0 {
                break;
            }
            raw.append(t);
        }
        let opts = StreamReadOptions::default()
            .group("redis-rs", "c")
            .count(100_000)
            .block(50);
        let entries = super::super::blocking_read::read_new(&mut con, &opts)
            .await
            .expect("read");
        let redis_rs = triage(&entries, &HashMap::new());
        let (raw, redis_rs) = (verdicts(&raw), verdicts(&redis_rs));
        assert_same_verdicts(&written, &raw, &redis_rs);
        for (w, (label, _)) in written.iter().zip(&lists) {
            let good = matches!(raw[&w.id], Verdict::Good(_));
            let expected = label.starts_with("good")
                || *label == "the original gateway's payload"
                || *label == "a 60 KB field name"
                || *label == "repeated content, the last good"
                || *label == "deleted while pending, good";
            if *label != "drawn" {
                assert_eq!(good, expected, "{label}: {:?}", raw[&w.id]);
            }
        }
        let goods = raw
            .values()
            .filter(|v| matches!(v, Verdict::Good(_)))
            .count();
        assert!(goods > 20 && goods < written.len() - 20, "{goods} parsed");

        // Deleted while pending: read again from the pending lists (`0`), both
        // see nil fields for those entries, and the same verdicts for all.
        let deleted: Vec<&str> = written
            .iter()
            .zip(&lists)
            .filter(|(_, (label, _))| label.starts_with("deleted"))
            .map(|(w, _)| w.id.as_str())
            .collect();
        let n: usize = redis::cmd("XDEL")
            .arg(schema::queue_messages())
            .arg(&deleted)
            .query_async(&mut con)
            .await
            .expect("XDEL");
        assert_eq!(n, 2);
        let deleted: Vec<String> = deleted.into_iter().map(str::to_owned).collect();
        for w in &mut written {
            if deleted.contains(&w.id) {
                w.fields = None;
            }
        }
        let raw = verdicts(&raw_read_from(&mut reader, "0").await);
        let opts = StreamReadOptions::default()
            .group("redis-rs", "c")
            .count(100_000);
        let ReadEntries(entries) = redis::AsyncCommands::xread_options(
            &mut con,
            &[schema::queue_messages()],
            &["0"],
            &opts,
        )
        .await
        .expect("read pending");
        let redis_rs = verdicts(&triage(&entries, &HashMap::new()));
        assert_same_verdicts(&written, &raw, &redis_rs);
        for id in &deleted {
            assert_eq!(
                raw[id],
                Verdict::Dead(
                    format!("entry {id}: field `messageId` is missing"),
                    Vec::new()
                ),
                "deleted while pending"
            );
        }
    }
}
