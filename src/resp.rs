//! Just enough of the Redis protocol (RESP2) to write a command and walk a reply
//! in place, without building a tree of values. Used where replies are large and
//! frequent: the worker's stream reads (see `worker::raw_read`).

use thiserror::Error;

/// Deepest nesting accepted: stream replies nest four levels; anything far deeper
/// is not a reply this code asked for.
const MAX_DEPTH: usize = 16;
/// Longest bulk string Redis sends (its `proto-max-bulk-len` default).
const MAX_BULK: usize = 512 * 1024 * 1024;

/// A reply that breaks the protocol.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[error("malformed reply from Redis at byte {at}: {problem}")]
pub struct RespError {
    /// Offset in the reply.
    pub at: usize,
    /// What is wrong.
    pub problem: &'static str,
}

/// Encodes a command as a RESP array of bulk strings.
pub fn command(args: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + args.iter().map(|a| a.len() + 16).sum::<usize>());
    out.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// Finds where a reply ends as its bytes arrive, resuming where it stopped: a
/// large reply arrives in many reads, and walking it from the start after each
/// would make the work grow with the square of its size.
#[derive(Debug, Default)]
pub struct FrameScan {
    /// Bytes of whole items walked so far.
    pos: usize,
    /// Items still expected by each array opened and not finished, outermost first.
    open: Vec<usize>,
}

impl FrameScan {
    /// Walks the whole items `buf` holds past the last call's; the reply's length
    /// once it is complete (and the scan starts over for the next one), else `None`.
    /// `buf` must start with the same bytes at each call.
    pub fn advance(&mut self, buf: &[u8]) -> Result<Option<usize>, RespError> {
        loop {
            let mut c = Cursor { buf, pos: self.pos };
            let item = match c.item() {
                Ok(item) => item,
                Err(Walk::Incomplete) => return Ok(None),
                Err(Walk::Bad(e)) => return Err(e),
            };
            self.pos = c.pos;
            if let Item::Array(n) = item
                && n > 0
            {
                if self.open.len() >= MAX_DEPTH {
                    return Err(c.bad("nesting too deep"));
                }
                self.open.push(n);
                continue;
            }
            // A whole item: it may finish the arrays around it, innermost first.
            loop {
                let Some(left) = self.open.last_mut() else {
                    let len = self.pos;
                    self.pos = 0;
                    return Ok(Some(len));
                };
                *left -= 1;
                if *left > 0 {
                    break;
                }
                self.open.pop();
            }
        }
    }
}

/// Why a walk stopped.
#[derive(Debug)]
enum Walk {
    Incomplete,
    Bad(RespError),
}

/// One item of a reply, as the cursor meets it.
#[derive(Debug, PartialEq, Eq)]
pub enum Item<'a> {
    /// `*n`: an array of `n` items follows.
    Array(usize),
    /// `$n` with its bytes.
    Bulk(&'a [u8]),
    /// `*-1` or `$-1`.
    Nil,
    /// `+text`.
    Simple(&'a [u8]),
    /// `-text`: an error reply.
    Error(&'a [u8]),
    /// `:n`.
    Int(i64),
}

/// A position in a complete reply (found with [`FrameScan`] first).
pub struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    /// A cursor at the start of `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    /// The next item; an error at the end of the bytes.
    pub fn next_item(&mut self) -> Result<Item<'a>, RespError> {
        self.item().map_err(|w| match w {
            Walk::Bad(e) => e,
            Walk::Incomplete => self.bad("the reply ends early"),
        })
    }

    /// The next item, which must be bulk bytes.
    pub fn bulk(&mut self) -> Result<&'a [u8], RespError> {
        match self.next_item()? {
            Item::Bulk(b) => Ok(b),
            _ => Err(self.bad("expected a bulk string")),
        }
    }

    fn bad(&self, problem: &'static str) -> RespError {
        RespError {
            at: self.pos,
            problem,
        }
    }

    fn item(&mut self) -> Result<Item<'a>, Walk> {
        let kind = *self.buf.get(self.pos).ok_or(Walk::Incomplete)?;
        self.pos += 1;
        let line = self.line()?;
        match kind {
            b'*' => match self.length(line)? {
                None => Ok(Item::Nil),
                Some(n) => Ok(Item::Array(n)),
            },
            b'$' => match self.length(line)? {
                None => Ok(Item::Nil),
                Some(n) if n > MAX_BULK => Err(Walk::Bad(self.bad("a bulk string too long"))),
                Some(n) => {
                    let end = self.pos.checked_add(n).ok_or(Walk::Incomplete)?;
                    let bytes = self.buf.get(self.pos..end).ok_or(Walk::Incomplete)?;
                    match self.buf.get(end..end + 2) {
                        Some(b"\r\n") => {}
                        Some(_) => return Err(Walk::Bad(self.bad("a bulk string overruns"))),
                        None => return Err(Walk::Incomplete),
                    }
                    self.pos = end + 2;
                    Ok(Item::Bulk(bytes))
                }
            },
            b'+' => Ok(Item::Simple(line)),
            b'-' => Ok(Item::Error(line)),
            b':' => parse_int(line)
                .map(Item::Int)
                .ok_or_else(|| Walk::Bad(self.bad("an integer that is not one"))),
            _ => Err(Walk::Bad(RespError {
                at: self.pos - 1,
                problem: "an unknown type byte",
            })),
        }
    }

    /// The rest of the current line, without its `\r\n`.
    fn line(&mut self) -> Result<&'a [u8], Walk> {
        let rest = &self.buf[self.pos..];
        let cr = rest
            .iter()
            .position(|&b| b == b'\r')
            .ok_or(Walk::Incomplete)?;
        match rest.get(cr + 1) {
            Some(b'\n') => {}
            Some(_) => return Err(Walk::Bad(self.bad("a line without \\n after \\r"))),
            None => return Err(Walk::Incomplete),
        }
        self.pos += cr + 2;
        Ok(&rest[..cr])
    }

    fn length(&self, line: &[u8]) -> Result<Option<usize>, Walk> {
        match parse_int(line) {
            Some(-1) => Ok(None),
            Some(n) => usize::try_from(n)
                .map(Some)
                .map_err(|_| Walk::Bad(self.bad("a negative length"))),
            None => Err(Walk::Bad(self.bad("a length that is not a number"))),
        }
    }
}

fn parse_int(line: &[u8]) -> Option<i64> {
    std::str::from_utf8(line).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The length of the first complete reply in `buf`, scanned in one go.
    fn frame_len(buf: &[u8]) -> Result<Option<usize>, RespError> {
        FrameScan::default().advance(buf)
    }

    const READ_REPLY: &[u8] =
        b"*1\r\n*2\r\n$1\r\ns\r\n*2\r\n*2\r\n$3\r\n1-0\r\n*2\r\n$1\r\na\r\n$2\r\nhi\r\n*2\r\n$3\r\n2-0\r\n*-1\r\n";

    #[test]
    fn encodes_a_command() {
        assert_eq!(
            command(&[b"GET", b"k y"]),
            b"*2\r\n$3\r\nGET\r\n$3\r\nk y\r\n".to_vec()
        );
    }

    #[test]
    fn finds_the_end_of_a_reply_only_once_it_is_all_there() {
        for cut in 0..READ_REPLY.len() {
            assert_eq!(frame_len(&READ_REPLY[..cut]), Ok(None), "cut at {cut}");
        }
        let mut two = READ_REPLY.to_vec();
        two.extend_from_slice(b"+OK\r\n");
        assert_eq!(frame_len(&two), Ok(Some(READ_REPLY.len())));
    }

    #[test]
    fn walks_a_reply_in_place() {
        let mut c = Cursor::new(READ_REPLY);
        assert_eq!(c.next_item(), Ok(Item::Array(1)));
        assert_eq!(c.next_item(), Ok(Item::Array(2)));
        assert_eq!(c.bulk(), Ok(&b"s"[..]));
        assert_eq!(c.next_item(), Ok(Item::Array(2)));
        assert_eq!(c.next_item(), Ok(Item::Array(2)));
        assert_eq!(c.bulk(), Ok(&b"1-0"[..]));
        assert_eq!(c.next_item(), Ok(Item::Array(2)));
        assert_eq!(c.bulk(), Ok(&b"a"[..]));
        assert_eq!(c.bulk(), Ok(&b"hi"[..]));
        assert_eq!(c.next_item(), Ok(Item::Array(2)));
        assert_eq!(c.bulk(), Ok(&b"2-0"[..]));
        assert_eq!(c.next_item(), Ok(Item::Nil));
        assert!(c.next_item().is_err(), "past the end is an error");
    }

    #[test]
    fn other_items() {
        let mut c = Cursor::new(b"-NOGROUP gone\r\n+OK\r\n:42\r\n$-1\r\n$0\r\n\r\n");
        assert_eq!(c.next_item(), Ok(Item::Error(b"NOGROUP gone")));
        assert_eq!(c.next_item(), Ok(Item::Simple(b"OK")));
        assert_eq!(c.next_item(), Ok(Item::Int(42)));
        assert_eq!(c.next_item(), Ok(Item::Nil));
        assert_eq!(c.bulk(), Ok(&b""[..]));
    }

    #[test]
    fn bulk_bytes_may_hold_anything() {
        let reply = b"$7\r\na\r\n\x1b[2J\r\n";
        assert_eq!(frame_len(reply), Ok(Some(reply.len())));
        assert_eq!(Cursor::new(reply).bulk(), Ok(&b"a\r\n\x1b[2J"[..]));
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for bad in [
            &b"?x\r\n"[..],
            b"*x\r\n",
            b"*-2\r\n",
            b"$3\r\nabcde\r\n",
            b":1.5\r\n",
            b"+a\rb\r\n",
        ] {
            assert!(frame_len(bad).is_err(), "{bad:?}");
        }
        let deep = b"*1\r\n".repeat(MAX_DEPTH + 2);
        assert!(frame_len(&deep).is_err());
        assert!(frame_len(b"$99999999999\r\nab").is_err());
        assert_eq!(frame_len(b"$9999\r\nab"), Ok(None));
    }

    #[test]
    fn a_scan_resumes_as_bytes_arrive_and_starts_over_after_a_reply() {
        let mut two = READ_REPLY.to_vec();
        two.extend_from_slice(b"*0\r\n");
        let mut scan = FrameScan::default();
        for cut in 0..READ_REPLY.len() {
            assert_eq!(scan.advance(&two[..cut]), Ok(None), "cut at {cut}");
        }
        assert_eq!(scan.advance(&two), Ok(Some(READ_REPLY.len())));
        let rest = &two[READ_REPLY.len()..];
        assert_eq!(scan.advance(rest), Ok(Some(rest.len())), "an empty array");
    }

    // Property tests: replies of any shape, mutated the ways a broken or hostile
    // peer could send them, and bytes of no shape at all. The scanner must never
    // panic, never hold more than `MAX_DEPTH` open arrays whatever lengths a reply
    // declares, and agree with the cursor about where a reply ends, since the raw
    // reader walks with the cursor exactly the bytes the scanner framed.

    use proptest::prelude::*;
    use proptest::sample::Index;

    /// Few cases, no regression files: these run with every `cargo test` on a
    /// small machine; a failure found is kept as a plain test instead.
    fn config() -> ProptestConfig {
        ProptestConfig {
            cases: 256,
            failure_persistence: None,
            ..ProptestConfig::default()
        }
    }

    /// A reply as a tree, to write valid replies of any shape.
    #[derive(Debug, Clone, PartialEq, Eq)]
    enum Reply {
        Array(Vec<Reply>),
        Bulk(Vec<u8>),
        Nil,
        Simple(Vec<u8>),
        Error(Vec<u8>),
        Int(i64),
    }

    impl Reply {
        fn write(&self, out: &mut Vec<u8>) {
            match self {
                Reply::Array(items) => {
                    out.extend_from_slice(format!("*{}\r\n", items.len()).as_bytes());
                    for item in items {
                        item.write(out);
                    }
                }
                Reply::Bulk(b) => {
                    out.extend_from_slice(format!("${}\r\n", b.len()).as_bytes());
                    out.extend_from_slice(b);
                    out.extend_from_slice(b"\r\n");
                }
                Reply::Nil => out.extend_from_slice(b"$-1\r\n"),
                Reply::Simple(s) | Reply::Error(s) => {
                    out.push(if matches!(self, Reply::Simple(_)) {
                        b'+'
                    } else {
                        b'-'
                    });
                    out.extend_from_slice(s);
                    out.extend_from_slice(b"\r\n");
                }
                Reply::Int(n) => out.extend_from_slice(format!(":{n}\r\n").as_bytes()),
            }
        }

        fn bytes(&self) -> Vec<u8> {
            let mut out = Vec::new();
            self.write(&mut out);
            out
        }

        /// Non-empty arrays open around the deepest item: what `MAX_DEPTH` counts.
        fn depth(&self) -> usize {
            match self {
                Reply::Array(items) if !items.is_empty() => {
                    1 + items.iter().map(Reply::depth).max().unwrap_or(0)
                }
                _ => 0,
            }
        }
    }

    /// Text of a simple or error line: anything but `\r`.
    fn line_text() -> impl Strategy<Value = Vec<u8>> {
        prop::collection::vec(any::<u8>().prop_filter("no CR", |b| *b != b'\r'), 0..12)
    }

    fn reply() -> impl Strategy<Value = Reply> {
        let leaf = prop_oneof![
            prop::collection::vec(any::<u8>(), 0..24).prop_map(Reply::Bulk),
            Just(Reply::Nil),
            line_text().prop_map(Reply::Simple),
            line_text().prop_map(Reply::Error),
            any::<i64>().prop_map(Reply::Int),
        ];
        leaf.prop_recursive(6, 64, 5, |inner| {
            prop::collection::vec(inner, 0..5).prop_map(Reply::Array)
        })
    }

    /// A reply nested `levels` deep, the way a stream reply nests.
    fn nested(levels: usize, inner: Reply) -> Reply {
        (0..levels).fold(inner, |r, _| Reply::Array(vec![r]))
    }

    /// Lengths a hostile peer may declare.
    const HOSTILE_LENGTHS: &[&str] = &[
        "1099511627776",        // 2^40
        "536870913",            // one past MAX_BULK
        "536870912",            // MAX_BULK itself
        "9223372036854775807",  // i64::MAX
        "9223372036854775808",  // past i64
        "18446744073709551616", // past u64
        "-9223372036854775808",
        "-2",
        "-0",
        "+5",
        " 5",
        "5 ",
        "0x10",
        "",
        "0000000000000000000000000000000000000001",
    ];

    /// Ways bytes get broken on the way.
    #[derive(Debug, Clone)]
    enum Mutation {
        Truncate(Index),
        Flip(Index, u8),
        Insert(Index, Vec<u8>),
        Remove(Index, usize),
        /// A `*` or `$` length replaced by one of [`HOSTILE_LENGTHS`].
        HugeLength(Index, Index),
        /// The reply wrapped in this many one-item arrays.
        Nest(usize),
    }

    fn mutation() -> impl Strategy<Value = Mutation> {
        prop_oneof![
            any::<Index>().prop_map(Mutation::Truncate),
            (any::<Index>(), 1..=255u8).prop_map(|(i, x)| Mutation::Flip(i, x)),
            (
                any::<Index>(),
                prop::collection::vec(
                    prop::sample::select(b"*$+-:\r\n0123456789-x".to_vec()),
                    1..8
                )
            )
                .prop_map(|(i, b)| Mutation::Insert(i, b)),
            (any::<Index>(), 1..8usize).prop_map(|(i, n)| Mutation::Remove(i, n)),
            (any::<Index>(), any::<Index>()).prop_map(|(i, l)| Mutation::HugeLength(i, l)),
            (0..40usize).prop_map(Mutation::Nest),
        ]
    }

    fn mutate(mut buf: Vec<u8>, m: &Mutation) -> Vec<u8> {
        // Positions index the bytes plus one, so the end is reachable too.
        let at = |i: &Index, len: usize| i.index(len + 1);
        match m {
            Mutation::Truncate(i) => buf.truncate(at(i, buf.len())),
            Mutation::Flip(i, x) => {
                if !buf.is_empty() {
                    let i = i.index(buf.len());
                    buf[i] ^= x;
                }
            }
            Mutation::Insert(i, bytes) => {
                let i = at(i, buf.len());
                buf.splice(i..i, bytes.iter().copied());
            }
            Mutation::Remove(i, n) => {
                let i = at(i, buf.len());
                let end = (i + n).min(buf.len());
                buf.drain(i..end);
            }
            Mutation::HugeLength(i, l) => {
                let headers: Vec<usize> = (0..buf.len())
                    .filter(|&p| matches!(buf[p], b'*' | b'$'))
                    .collect();
                if !headers.is_empty() {
                    let start = headers[i.index(headers.len())] + 1;
                    let digits = buf[start..]
                        .iter()
                        .take_while(|b| b.is_ascii_digit() || **b == b'-')
                        .count();
                    let length = HOSTILE_LENGTHS[l.index(HOSTILE_LENGTHS.len())];
                    buf.splice(start..start + digits, length.bytes());
                }
            }
            Mutation::Nest(n) => {
                buf.splice(0..0, b"*1\r\n".repeat(*n));
            }
        }
        buf
    }

    /// Scans `buf` as it would arrive cut at `cuts` (ascending), stopping at the
    /// first answer that is not "incomplete", and checks the scanner's state after
    /// each step: never more than `MAX_DEPTH` open arrays kept, in a vector that
    /// never grew past that.
    fn scan_in_pieces(buf: &[u8], cuts: &[Index]) -> Result<Option<usize>, RespError> {
        let mut ends: Vec<usize> = cuts.iter().map(|c| c.index(buf.len() + 1)).collect();
        ends.push(buf.len());
        ends.sort_unstable();
        let mut scan = FrameScan::default();
        for end in ends {
            let got = scan.advance(&buf[..end]);
            assert!(
                scan.open.len() <= MAX_DEPTH,
                "{} arrays open",
                scan.open.len()
            );
            assert!(
                scan.open.capacity() <= MAX_DEPTH,
                "{}",
                scan.open.capacity()
            );
            if got != Ok(None) {
                return got;
            }
        }
        Ok(None)
    }

    /// Reads one whole reply with the cursor, as a tree (depth bounded as the
    /// scanner bounds it).
    fn read_tree(c: &mut Cursor<'_>, depth: usize) -> Result<Reply, RespError> {
        Ok(match c.next_item()? {
            Item::Array(n) => {
                assert!(
                    n == 0 || depth <= MAX_DEPTH,
                    "the cursor went deeper than the scanner"
                );
                let mut items = Vec::new();
                for _ in 0..n {
                    items.push(read_tree(c, depth + 1)?);
                }
                Reply::Array(items)
            }
            Item::Bulk(b) => Reply::Bulk(b.to_vec()),
            Item::Nil => Reply::Nil,
            Item::Simple(s) => Reply::Simple(s.to_vec()),
            Item::Error(e) => Reply::Error(e.to_vec()),
            Item::Int(n) => Reply::Int(n),
        })
    }

    /// What must hold for any bytes: scanning whole and in pieces agree, and a
    /// reply the scanner frames is one the cursor reads to exactly its end.
    fn check_any_bytes(
        buf: &[u8],
        cuts: &[Index],
    ) -> Result<Result<Option<usize>, RespError>, TestCaseError> {
        let whole = scan_in_pieces(buf, &[]);
        prop_assert_eq!(&scan_in_pieces(buf, cuts), &whole, "scanned in pieces");
        if let Ok(Some(len)) = whole {
            prop_assert!(len <= buf.len() && len > 0);
            let mut c = Cursor::new(&buf[..len]);
            let read = read_tree(&mut c, 1);
            prop_assert!(read.is_ok(), "framed but unreadable: {:?}", read);
            prop_assert_eq!(c.pos, len, "the cursor stopped elsewhere");
        }
        // Walking any bytes item by item ends in an error, never a panic: each
        // item takes at least three bytes, so this ends.
        let mut c = Cursor::new(buf);
        while c.next_item().is_ok() {}
        Ok(whole)
    }

    proptest! {
        #![proptest_config(config())]

        #[test]
        fn any_valid_reply_is_framed_exactly_and_read_back(
            reply in reply(),
            levels in 0..20usize,
            trailing in prop::collection::vec(any::<u8>(), 0..8),
            cuts in prop::collection::vec(any::<Index>(), 0..6),
        ) {
            let reply = nested(levels, reply);
            let bytes = reply.bytes();
            let mut buf = bytes.clone();
            buf.extend_from_slice(&trailing);
            let got = check_any_bytes(&buf, &cuts)?;
            if reply.depth() <= MAX_DEPTH {
                prop_assert_eq!(got, Ok(Some(bytes.len())));
                prop_assert_eq!(read_tree(&mut Cursor::new(&buf), 1), Ok(reply));
                for cut in &cuts {
                    let cut = cut.index(bytes.len());
                    prop_assert_eq!(scan_in_pieces(&bytes[..cut], &[]), Ok(None), "cut at {}", cut);
                }
            } else {
                prop_assert_eq!(got.map_err(|e| e.problem), Err("nesting too deep"));
            }
        }

        #[test]
        fn a_mutated_reply_is_an_error_or_a_wait_never_a_panic(
            reply in reply(),
            levels in 0..5usize,
            mutations in prop::collection::vec(mutation(), 1..4),
            cuts in prop::collection::vec(any::<Index>(), 0..6),
        ) {
            let mut buf = nested(levels, reply).bytes();
            for m in &mutations {
                buf = mutate(buf, m);
            }
            let _scanned = check_any_bytes(&buf, &cuts)?;
        }

        #[test]
        fn bytes_of_no_shape_are_an_error_or_a_wait_never_a_panic(
            buf in prop_oneof![
                prop::collection::vec(any::<u8>(), 0..64),
                prop::collection::vec(prop::sample::select(b"*$+-:\r\n0123456789-".to_vec()), 0..64),
            ],
            cuts in prop::collection::vec(any::<Index>(), 0..6),
        ) {
            let _scanned = check_any_bytes(&buf, &cuts)?;
        }
    }

    #[test]
    fn declared_lengths_reserve_nothing() {
        // A bulk string past Redis's own limit is refused at its header, before
        // any of it is awaited or kept.
        for huge in ["536870913", "1099511627776", "9223372036854775807"] {
            let reply = format!("${huge}\r\nab");
            assert_eq!(
                frame_len(reply.as_bytes()).map_err(|e| e.problem),
                Err("a bulk string too long"),
                "{huge}"
            );
        }
        // An array's count is only counted down: 2^40 and i64::MAX items nested to
        // the limit keep `MAX_DEPTH` numbers, and the reply is awaited.
        for huge in ["1099511627776", "9223372036854775807"] {
            let reply = format!("*{huge}\r\n").repeat(MAX_DEPTH);
            let mut scan = FrameScan::default();
            assert_eq!(scan.advance(reply.as_bytes()), Ok(None), "{huge}");
            assert_eq!(scan.open.len(), MAX_DEPTH);
            assert!(scan.open.capacity() <= MAX_DEPTH);
            let deeper = format!("{reply}*{huge}\r\n");
            assert!(
                scan.advance(deeper.as_bytes()).is_err(),
                "one level too deep"
            );
        }
        for past in ["9223372036854775808", "18446744073709551616", "-2"] {
            assert!(
                frame_len(format!("*{past}\r\n").as_bytes()).is_err(),
                "{past}"
            );
            assert!(
                frame_len(format!("${past}\r\n").as_bytes()).is_err(),
                "{past}"
            );
        }
    }

    #[test]
    fn nesting_stops_at_the_stated_depth() {
        let at_limit = nested(MAX_DEPTH, Reply::Int(1)).bytes();
        assert_eq!(frame_len(&at_limit), Ok(Some(at_limit.len())));
        let past = nested(MAX_DEPTH + 1, Reply::Int(1)).bytes();
        assert_eq!(
            frame_len(&past).map_err(|e| e.problem),
            Err("nesting too deep")
        );
        // Empty arrays finish at once and open nothing, however many.
        let flat = nested(
            MAX_DEPTH - 1,
            Reply::Array(vec![Reply::Array(Vec::new()); 64]),
        )
        .bytes();
        assert_eq!(frame_len(&flat), Ok(Some(flat.len())));
    }
}
