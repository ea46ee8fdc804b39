//! A `multipart/form-data` body (RFC 7578), built by hand: the transcription
//! endpoint takes one file and a few text fields, too little for a dependency.

use std::borrow::Cow;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};

/// A form being filled: text fields and files, in order. Text fields are
/// borrowed; a file is taken whole, and its buffer becomes the body.
#[derive(Debug, Default)]
pub struct Form<'a> {
    parts: Vec<Part<'a>>,
}

#[derive(Debug)]
struct Part<'a> {
    /// The part's headers, each line ending in CRLF, names already escaped.
    head: String,
    data: Cow<'a, [u8]>,
}

/// A finished body and the content type naming its boundary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Body {
    /// `multipart/form-data; boundary=...`
    pub content_type: String,
    /// The bytes to send.
    pub bytes: Vec<u8>,
}

impl<'a> Form<'a> {
    /// An empty form.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds the text field `name` = `value`.
    pub fn text(mut self, name: &str, value: &'a str) -> Self {
        self.parts.push(Part {
            head: format!(
                "Content-Disposition: form-data; name=\"{}\"\r\n",
                escape(name)
            ),
            data: Cow::Borrowed(value.as_bytes()),
        });
        self
    }

    /// Adds the file field `name`: `data`, sent as `filename` of type `content_type`
    /// (`application/octet-stream` when that is not a plain `type/subtype`).
    pub fn file(mut self, name: &str, filename: &str, content_type: &str, data: Vec<u8>) -> Self {
        let content_type = if is_media_type(content_type) {
            content_type
        } else {
            "application/octet-stream"
        };
        self.parts.push(Part {
            head: format!(
                "Content-Disposition: form-data; name=\"{}\"; filename=\"{}\"\r\nContent-Type: {content_type}\r\n",
                escape(name),
                escape(filename)
            ),
            data: Cow::Owned(data),
        });
        self
    }

    /// The body, with a random boundary found in none of the parts.
    pub fn build(self) -> Body {
        self.build_with(random_boundary)
    }

    /// The body, with the first boundary from `boundaries` that no part holds.
    /// The largest file's buffer is grown into the body around its bytes, so
    /// that a voice note is never held twice.
    fn build_with(self, mut boundaries: impl FnMut() -> String) -> Body {
        let boundary = loop {
            let b = boundaries();
            let found = self
                .parts
                .iter()
                .any(|p| occurs(p.head.as_bytes(), b.as_bytes()) || occurs(&p.data, b.as_bytes()));
            if !found {
                break b;
            }
        };
        let largest = self
            .parts
            .iter()
            .enumerate()
            .filter(|(_, p)| matches!(p.data, Cow::Owned(_)))
            .max_by_key(|(_, p)| p.data.len())
            .map(|(i, _)| i);
        // What goes before the largest file's bytes, and what after.
        let (mut before, mut after) = (Vec::new(), Vec::new());
        let mut file = Vec::new();
        for (i, p) in self.parts.into_iter().enumerate() {
            let out = if largest.is_some_and(|l| i > l) {
                &mut after
            } else {
                &mut before
            };
            out.extend_from_slice(b"--");
            out.extend_from_slice(boundary.as_bytes());
            out.extend_from_slice(b"\r\n");
            out.extend_from_slice(p.head.as_bytes());
            out.extend_from_slice(b"\r\n");
            if Some(i) == largest {
                file = p.data.into_owned();
                after.extend_from_slice(b"\r\n");
            } else {
                out.extend_from_slice(&p.data);
                out.extend_from_slice(b"\r\n");
            }
        }
        after.extend_from_slice(b"--");
        after.extend_from_slice(boundary.as_bytes());
        after.extend_from_slice(b"--\r\n");
        Body {
            content_type: format!("multipart/form-data; boundary={boundary}"),
            bytes: surround(file, &before, &after),
        }
    }
}

/// `before`, `data`, `after` in `data`'s own buffer: grown once (in place
/// where the allocator can), its bytes moved up within it, never copied out.
fn surround(mut data: Vec<u8>, before: &[u8], after: &[u8]) -> Vec<u8> {
    let len = data.len();
    data.reserve_exact(before.len() + after.len());
    data.resize(len + before.len(), 0);
    data.copy_within(..len, before.len());
    data[..before.len()].copy_from_slice(before);
    data.extend_from_slice(after);
    data
}

/// A quoted name or filename as browsers send it (WHATWG): `"`, CR and LF
/// percent-encoded, so that it can neither end the quotes nor the header line.
fn escape(text: &str) -> String {
    text.replace('"', "%22")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

/// Whether `text` is a bare `type/subtype` of token characters (no parameters).
fn is_media_type(text: &str) -> bool {
    let token = |t: &str| {
        !t.is_empty()
            && t.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(&b))
    };
    text.split_once('/')
        .is_some_and(|(kind, sub)| token(kind) && token(sub))
}

/// Whether `needle` occurs in `haystack`: each place its first byte is found is compared whole.
fn occurs(haystack: &[u8], needle: &[u8]) -> bool {
    let Some((&first, _)) = needle.split_first() else {
        return true;
    };
    let mut at = 0;
    while let Some(i) = haystack[at..].iter().position(|&b| b == first) {
        let start = at + i;
        if haystack[start..].starts_with(needle) {
            return true;
        }
        at = start + 1;
    }
    false
}

/// 32 hex digits from std's randomly keyed hasher; a counter makes each call differ.
fn random_boundary() -> String {
    static CALLS: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let word = |salt: u64| {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(CALLS.fetch_add(1, Ordering::Relaxed));
        h.write_u128(nanos);
        h.write_u64(salt);
        h.finish()
    };
    format!("secondme-{:016x}{:016x}", word(1), word(2))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One part as read back: its header lines and its bytes.
    #[derive(Debug, PartialEq)]
    struct Parsed {
        headers: Vec<String>,
        data: Vec<u8>,
    }

    /// Reads a body back by RFC 2046's rules: the delimiter is CRLF `--boundary`,
    /// the first one without the CRLF, the last one followed by `--`.
    fn parse(body: &Body) -> Vec<Parsed> {
        let boundary = body
            .content_type
            .strip_prefix("multipart/form-data; boundary=")
            .expect("content type");
        let delimiter = format!("\r\n--{boundary}");
        let opening = format!("--{boundary}\r\n");
        let mut rest = body
            .bytes
            .strip_prefix(opening.as_bytes())
            .expect("opening");
        let mut parts = Vec::new();
        loop {
            let end = (0..rest.len())
                .find(|&i| rest[i..].starts_with(delimiter.as_bytes()))
                .expect("a delimiter after each part");
            let part = &rest[..end];
            let head_end = (0..part.len())
                .find(|&i| part[i..].starts_with(b"\r\n\r\n"))
                .expect("headers end");
            let headers = String::from_utf8(part[..head_end].to_vec()).expect("utf-8 headers");
            parts.push(Parsed {
                headers: headers.split("\r\n").map(str::to_owned).collect(),
                data: part[head_end + 4..].to_vec(),
            });
            rest = &rest[end + delimiter.len()..];
            if rest == b"--\r\n" {
                return parts;
            }
            rest = rest.strip_prefix(b"\r\n").expect("CRLF after a delimiter");
        }
    }

    #[test]
    fn fields_and_a_file_read_back_exactly() {
        // Bytes a naive parser would trip on: CRLFs, dashes, a fake delimiter.
        let audio: Vec<u8> = b"OggS\0\r\n--\r\n--secondme-\r\n\r\n\xff\xfe"
            .iter()
            .copied()
            .chain((0..=255u8).cycle().take(3000))
            .collect();
        let body = Form::new()
            .text("model", "whisper-1")
            .file("file", "voice.ogg", "audio/ogg", audio.clone())
            .text("language", "es")
            .build();
        let parts = parse(&body);
        assert_eq!(
            parts,
            vec![
                Parsed {
                    headers: vec!["Content-Disposition: form-data; name=\"model\"".into()],
                    data: b"whisper-1".to_vec(),
                },
                Parsed {
                    headers: vec![
                        "Content-Disposition: form-data; name=\"file\"; filename=\"voice.ogg\""
                            .into(),
                        "Content-Type: audio/ogg".into(),
                    ],
                    data: audio.clone(),
                },
                Parsed {
                    headers: vec!["Content-Disposition: form-data; name=\"language\"".into()],
                    data: b"es".to_vec(),
                },
            ]
        );
        assert_eq!(body.bytes.capacity(), body.bytes.len(), "sized up front");
    }

    #[test]
    fn the_files_buffer_becomes_the_body() {
        let mut audio = Vec::with_capacity(10_000);
        audio.extend((0..5000u32).map(|i| (i % 251) as u8));
        let (at, copy) = (audio.as_ptr(), audio.clone());
        let body = Form::new()
            .text("model", "whisper-1")
            .file("file", "voice.ogg", "audio/ogg", audio)
            .text("language", "es")
            .build();
        assert_eq!(body.bytes.as_ptr(), at, "no copy of the file");
        let parts = parse(&body);
        assert_eq!(parts[1].data, copy);
        assert_eq!(
            (parts[0].data.as_slice(), parts[2].data.as_slice()),
            (&b"whisper-1"[..], &b"es"[..])
        );
        let fields = Form::new().text("a", "1").text("b", "2").build();
        assert_eq!(parse(&fields).len(), 2, "a form without a file");
    }

    #[test]
    fn a_boundary_found_in_the_payload_is_never_used() {
        let audio = b"xx--secondme-one--xx";
        let mut offered = vec!["secondme-two".to_owned(), "secondme-one".to_owned()];
        let body = Form::new()
            .file("file", "a.wav", "audio/wav", audio.to_vec())
            .build_with(|| offered.pop().expect("a boundary"));
        assert_eq!(
            body.content_type,
            "multipart/form-data; boundary=secondme-two"
        );
        assert_eq!(parse(&body)[0].data, audio);
    }

    #[test]
    fn quotes_and_line_breaks_cannot_escape_a_name() {
        let body = Form::new()
            .text("a\"b\r\nX-Injected: 1", "v")
            .file("f", "evil\".ogg\r\n", "audio/ogg\r\nX: 1", b"data".to_vec())
            .build();
        let parts = parse(&body);
        assert_eq!(
            parts[0].headers,
            vec!["Content-Disposition: form-data; name=\"a%22b%0D%0AX-Injected: 1\""]
        );
        assert_eq!(
            parts[1].headers,
            vec![
                "Content-Disposition: form-data; name=\"f\"; filename=\"evil%22.ogg%0D%0A\"",
                "Content-Type: application/octet-stream",
            ]
        );
    }

    #[test]
    fn boundaries_differ_and_are_header_safe() {
        let (a, b) = (random_boundary(), random_boundary());
        assert_ne!(a, b);
        for x in [a, b] {
            assert_eq!(x.len(), "secondme-".len() + 32, "{x}");
            assert!(
                x.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-'),
                "{x}"
            );
        }
    }

    #[test]
    fn occurs_finds_only_the_whole_needle() {
        assert!(occurs(b"abcabd", b"abd"));
        assert!(!occurs(b"abcab", b"abd"));
        assert!(!occurs(b"", b"a"));
        assert!(occurs(b"a", b"a"));
    }
}
