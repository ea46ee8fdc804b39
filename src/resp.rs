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
}
