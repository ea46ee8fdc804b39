//! The chat inside a zip exported "with media": the end record and the
//! central directory read from the file's end, then only the `_chat.txt` entry
//! (or the one `.txt`), inflated and checked against its CRC. The attachments
//! are never read, so a zip of gigabytes of photos costs the chat's size in
//! memory. Zip64 archives (over 4 GiB or 65,535 files) are refused, said so.

use std::io::{Read, Seek, SeekFrom};

/// The zip's local file header signature, at the start of every zip file.
const LOCAL_SIG: u32 = 0x0403_4b50;
const CENTRAL_SIG: u32 = 0x0201_4b50;
const END_SIG: u32 = 0x0605_4b50;
/// The end record without its comment.
const END_LEN: usize = 22;
const CENTRAL_LEN: usize = 46;
const LOCAL_LEN: usize = 30;
/// The largest chat read, inflated or not (a zip bomb is refused, not
/// swallowed): a lifetime of messages is a few tens of MiB.
pub const MAX_CHAT_BYTES: u64 = 256 << 20;

/// The bytes look like a zip.
pub fn is_zip(bytes: &[u8]) -> bool {
    bytes.len() >= 4 && le32(bytes, 0) == Some(LOCAL_SIG)
}

fn le16(b: &[u8], at: usize) -> Option<u16> {
    let s = b.get(at..at.checked_add(2)?)?;
    Some(u16::from_le_bytes([s[0], s[1]]))
}

fn le32(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}

/// One file listed in the central directory.
#[derive(Debug, Clone)]
struct Entry {
    name: String,
    flags: u16,
    method: u16,
    crc: u32,
    compressed: u64,
    size: u64,
    local: u64,
}

/// Where the central directory lies (offset, size) and how many entries it
/// lists, from the file's last bytes `tail`.
fn end_record(tail: &[u8]) -> Result<(u64, u64, usize), String> {
    if tail.len() < END_LEN {
        return Err("not a zip: too short".to_owned());
    }
    let at = (0..=tail.len() - END_LEN)
        .rev()
        .find(|&i| le32(tail, i) == Some(END_SIG))
        .ok_or("not a zip: no end of central directory (truncated?)")?;
    let count = le16(tail, at + 10).ok_or("broken zip: end record")?;
    let size = le32(tail, at + 12).ok_or("broken zip: end record")?;
    let offset = le32(tail, at + 16).ok_or("broken zip: end record")?;
    if count == u16::MAX || offset == u32::MAX || size == u32::MAX {
        return Err("zip64 archives are not supported".to_owned());
    }
    Ok((u64::from(offset), u64::from(size), usize::from(count)))
}

/// Every entry of the central directory `cd`.
fn entries(cd: &[u8], count: usize) -> Result<Vec<Entry>, String> {
    let mut at = 0;
    let mut found = Vec::with_capacity(count.min(cd.len() / CENTRAL_LEN));
    for _ in 0..count {
        let broken = || format!("broken zip: central directory entry at byte {at}");
        if le32(cd, at) != Some(CENTRAL_SIG) {
            return Err(broken());
        }
        let field16 = |o: usize| le16(cd, at + o).ok_or_else(broken);
        let field32 = |o: usize| le32(cd, at + o).ok_or_else(broken);
        let (name_len, extra_len, comment_len) = (field16(28)?, field16(30)?, field16(32)?);
        let name_at = at + CENTRAL_LEN;
        let name = cd
            .get(name_at..name_at + usize::from(name_len))
            .ok_or_else(broken)?;
        found.push(Entry {
            name: String::from_utf8_lossy(name).into_owned(),
            flags: field16(8)?,
            method: field16(10)?,
            crc: field32(16)?,
            compressed: u64::from(field32(20)?),
            size: u64::from(field32(24)?),
            local: u64::from(field32(42)?),
        });
        at = name_at + usize::from(name_len) + usize::from(extra_len) + usize::from(comment_len);
    }
    Ok(found)
}

/// The chat's entry: `_chat.txt`, else the only `.txt` (macOS metadata aside).
fn chat_entry(entries: &[Entry]) -> Result<&Entry, String> {
    let base = |e: &Entry| e.name.rsplit('/').next().unwrap_or_default().to_owned();
    if let Some(e) = entries.iter().find(|e| base(e) == "_chat.txt") {
        return Ok(e);
    }
    let texts: Vec<&Entry> = entries
        .iter()
        .filter(|e| !e.name.starts_with("__MACOSX/"))
        .filter(|e| base(e).to_ascii_lowercase().ends_with(".txt"))
        .collect();
    match texts.as_slice() {
        [one] => Ok(one),
        [] => Err(format!(
            "no chat in the zip: no _chat.txt or .txt among its {} files",
            entries.len()
        )),
        many => Err(format!(
            "{} .txt files in the zip and none named _chat.txt: export the chat again",
            many.len()
        )),
    }
}

/// `len` bytes of `file` from `at`, or why not.
fn read_at<R: Read + Seek>(file: &mut R, at: u64, len: u64, what: &str) -> Result<Vec<u8>, String> {
    let cut = || format!("broken zip: {what} is cut short (truncated?)");
    file.seek(SeekFrom::Start(at)).map_err(|_| cut())?;
    let mut out = Vec::new();
    file.take(len)
        .read_to_end(&mut out)
        .map_err(|e| format!("cannot read the zip: {e}"))?;
    if out.len() as u64 != len {
        return Err(cut());
    }
    Ok(out)
}

/// The entry's stored or deflated bytes, read from `file` (`len` bytes long),
/// inflated and checked.
fn contents<R: Read + Seek>(file: &mut R, len: u64, e: &Entry) -> Result<Vec<u8>, String> {
    if e.flags & 1 != 0 {
        return Err(format!("{} is encrypted", e.name));
    }
    if e.size > MAX_CHAT_BYTES || e.compressed > MAX_CHAT_BYTES {
        return Err(format!(
            "{} is too large ({} bytes; at most {MAX_CHAT_BYTES})",
            e.name,
            e.size.max(e.compressed)
        ));
    }
    let broken = || format!("broken zip: the local header of {}", e.name);
    if e.local.saturating_add(LOCAL_LEN as u64) > len {
        return Err(broken());
    }
    let header = read_at(file, e.local, LOCAL_LEN as u64, &e.name)?;
    if le32(&header, 0) != Some(LOCAL_SIG) {
        return Err(broken());
    }
    let name_len = u64::from(le16(&header, 26).ok_or_else(broken)?);
    let extra_len = u64::from(le16(&header, 28).ok_or_else(broken)?);
    let start = e.local + LOCAL_LEN as u64 + name_len + extra_len;
    if start.saturating_add(e.compressed) > len {
        return Err(format!("broken zip: {} is cut short (truncated?)", e.name));
    }
    let data = read_at(file, start, e.compressed, &e.name)?;
    let out = match e.method {
        0 => data,
        8 => inflate(&data, e)?,
        m => {
            return Err(format!(
                "{} uses compression method {m}, not stored or deflate",
                e.name
            ));
        }
    };
    if out.len() as u64 != e.size {
        return Err(format!(
            "broken zip: {} holds {} bytes, its header says {}",
            e.name,
            out.len(),
            e.size
        ));
    }
    if crc32fast::hash(&out) != e.crc {
        return Err(format!("broken zip: {} fails its CRC check", e.name));
    }
    Ok(out)
}

fn inflate(data: &[u8], e: &Entry) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    flate2::read::DeflateDecoder::new(data)
        .take(e.size + 1)
        .read_to_end(&mut out)
        .map_err(|err| format!("broken zip: {} does not inflate: {err}", e.name))?;
    Ok(out)
}

/// The chat text's bytes in the zip export `file`; why not, in plain words.
pub fn chat_bytes<R: Read + Seek>(file: &mut R) -> Result<Vec<u8>, String> {
    let len = file
        .seek(SeekFrom::End(0))
        .map_err(|e| format!("cannot read the zip: {e}"))?;
    let tail_len = len.min((END_LEN + usize::from(u16::MAX)) as u64);
    let tail = read_at(file, len - tail_len, tail_len, "the end record")?;
    let (cd_at, cd_len, count) = end_record(&tail)?;
    if cd_at.saturating_add(cd_len) > len {
        return Err("broken zip: the central directory is cut short (truncated?)".to_owned());
    }
    let cd = read_at(file, cd_at, cd_len, "the central directory")?;
    let entries = entries(&cd, count)?;
    let entry = chat_entry(&entries)?;
    contents(file, len, entry)
}

#[cfg(test)]
pub(crate) mod tests {
    use std::io::{Cursor, Write};

    use super::*;

    /// The chat of a zip held in memory.
    fn chat_of(zip: &[u8]) -> Result<Vec<u8>, String> {
        chat_bytes(&mut Cursor::new(zip))
    }

    /// A minimal zip writer for the tests: each file stored or deflated.
    pub(crate) fn build(files: &[(&str, &[u8], bool)]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut central = Vec::new();
        for &(name, data, deflate) in files {
            let body = if deflate {
                let mut enc =
                    flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
                enc.write_all(data).expect("deflate in memory");
                enc.finish().expect("deflate in memory")
            } else {
                data.to_vec()
            };
            let crc = crc32fast::hash(data);
            let method: u16 = if deflate { 8 } else { 0 };
            let local = out.len() as u32;
            let mut common = Vec::new();
            common.extend_from_slice(&20u16.to_le_bytes());
            common.extend_from_slice(&0u16.to_le_bytes());
            common.extend_from_slice(&method.to_le_bytes());
            common.extend_from_slice(&[0; 4]);
            common.extend_from_slice(&crc.to_le_bytes());
            common.extend_from_slice(&(body.len() as u32).to_le_bytes());
            common.extend_from_slice(&(data.len() as u32).to_le_bytes());
            common.extend_from_slice(&(name.len() as u16).to_le_bytes());
            common.extend_from_slice(&0u16.to_le_bytes());
            out.extend_from_slice(&LOCAL_SIG.to_le_bytes());
            out.extend_from_slice(&common);
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(&body);
            central.extend_from_slice(&CENTRAL_SIG.to_le_bytes());
            central.extend_from_slice(&20u16.to_le_bytes());
            central.extend_from_slice(&common);
            central.extend_from_slice(&[0; 10]);
            central.extend_from_slice(&local.to_le_bytes());
            central.extend_from_slice(name.as_bytes());
        }
        let central_at = out.len() as u32;
        out.extend_from_slice(&central);
        out.extend_from_slice(&END_SIG.to_le_bytes());
        out.extend_from_slice(&[0; 4]);
        out.extend_from_slice(&(files.len() as u16).to_le_bytes());
        out.extend_from_slice(&(files.len() as u16).to_le_bytes());
        out.extend_from_slice(&(central.len() as u32).to_le_bytes());
        out.extend_from_slice(&central_at.to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes());
        out
    }

    const CHAT: &[u8] =
        "[15/01/2020, 02:22:56] Ana: hola\n[15/01/2020, 02:23:10] Bo: qué tal\n".as_bytes();

    #[test]
    fn the_chat_is_found_stored_or_deflated_and_photos_are_ignored() {
        for deflate in [false, true] {
            let zip = build(&[
                (
                    "00000012-PHOTO-2020-01-15-02-22-56.jpg",
                    b"\xff\xd8 not read",
                    deflate,
                ),
                ("_chat.txt", CHAT, deflate),
            ]);
            assert!(is_zip(&zip));
            assert_eq!(chat_of(&zip).as_deref(), Ok(CHAT));
        }
    }

    #[test]
    fn a_single_txt_is_the_chat() {
        let zip = build(&[
            ("__MACOSX/._WhatsApp Chat with Ana.txt", b"junk", false),
            ("WhatsApp Chat with Ana.txt", CHAT, true),
        ]);
        assert_eq!(chat_of(&zip).as_deref(), Ok(CHAT));
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig {
            cases: 256,
            failure_persistence: None,
            ..proptest::prelude::ProptestConfig::default()
        })]

        #[test]
        fn damaged_zips_never_panic(
            deflate in proptest::prelude::any::<bool>(),
            cut in 0usize..400,
            flips in proptest::collection::vec((0usize..400, 1u8..=255), 0..4),
        ) {
            let mut zip = build(&[("a.jpg", b"jpeg", deflate), ("_chat.txt", CHAT, deflate)]);
            for (at, x) in flips {
                let at = at % zip.len();
                zip[at] ^= x;
            }
            zip.truncate(zip.len().saturating_sub(cut % 40));
            if let Ok(bytes) = chat_of(&zip) {
                proptest::prop_assert_eq!(crc32fast::hash(&bytes), crc32fast::hash(CHAT));
            }
        }
    }

    #[test]
    fn a_chat_over_256_mib_is_refused_unread() {
        let mut zip = build(&[("_chat.txt", CHAT, true)]);
        let central = (0..zip.len())
            .find(|&i| le32(&zip, i) == Some(CENTRAL_SIG))
            .expect("a central directory");
        let huge = u32::try_from(MAX_CHAT_BYTES + 1).expect("fits");
        zip[central + 24..central + 28].copy_from_slice(&huge.to_le_bytes());
        let why = chat_of(&zip).expect_err("too large");
        assert!(why.contains("too large"), "{why}");
    }

    #[test]
    fn broken_zips_say_why() {
        let good = build(&[("_chat.txt", CHAT, false)]);
        let mut bad_crc = good.clone();
        bad_crc[LOCAL_LEN + "_chat.txt".len() + 3] ^= 0x20;
        let check = |bytes: &[u8], expected: &str| match chat_of(bytes) {
            Err(why) => assert!(why.contains(expected), "{why:?} lacks {expected:?}"),
            Ok(_) => panic!("read a broken zip; expected {expected:?}"),
        };
        check(&bad_crc, "CRC");
        check(&good[..good.len() / 2], "no end of central directory");
        check(b"PK\x03\x04", "too short");
        let mut cut = good.clone();
        cut.drain(LOCAL_LEN..LOCAL_LEN + 20);
        check(&cut, "broken zip");
        check(&build(&[("a.jpg", b"x", false)]), "no chat in the zip");
        check(
            &build(&[("a.txt", CHAT, false), ("b.txt", CHAT, false)]),
            "2 .txt files",
        );
        let mut not_deflate = build(&[("_chat.txt", CHAT, true)]);
        let start = LOCAL_LEN + "_chat.txt".len();
        not_deflate[start] = 0xFF;
        not_deflate[start + 1] = 0xFF;
        assert!(chat_of(&not_deflate).is_err());
    }
}
