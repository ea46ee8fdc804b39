//! The chat inside a zip exported "with media": its central directory read
//! here, the `_chat.txt` entry (or the one `.txt`) inflated and checked
//! against its CRC; the attachments are never read.

use std::io::Read;

/// The zip's local file header signature, at the start of every zip file.
const LOCAL_SIG: u32 = 0x0403_4b50;
const CENTRAL_SIG: u32 = 0x0201_4b50;
const END_SIG: u32 = 0x0605_4b50;
/// The end record without its comment.
const END_LEN: usize = 22;
const CENTRAL_LEN: usize = 46;
const LOCAL_LEN: usize = 30;
/// The largest chat inflated (a zip bomb is refused, not swallowed).
const MAX_CHAT_BYTES: u64 = 1 << 30;

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
    local: usize,
}

/// Where the central directory starts and how many entries it lists.
fn end_record(zip: &[u8]) -> Result<(usize, usize), String> {
    if zip.len() < END_LEN {
        return Err("not a zip: too short".to_owned());
    }
    let lowest = zip.len().saturating_sub(END_LEN + usize::from(u16::MAX));
    let at = (lowest..=zip.len() - END_LEN)
        .rev()
        .find(|&i| le32(zip, i) == Some(END_SIG))
        .ok_or("not a zip: no end of central directory (truncated?)")?;
    let count = le16(zip, at + 10).ok_or("broken zip: end record")?;
    let offset = le32(zip, at + 16).ok_or("broken zip: end record")?;
    if count == u16::MAX || offset == u32::MAX {
        return Err("zip64 archives are not supported".to_owned());
    }
    Ok((offset as usize, usize::from(count)))
}

/// Every entry of the central directory.
fn entries(zip: &[u8]) -> Result<Vec<Entry>, String> {
    let (mut at, count) = end_record(zip)?;
    let mut found = Vec::with_capacity(count);
    for _ in 0..count {
        let broken = || format!("broken zip: central directory entry at byte {at}");
        if le32(zip, at) != Some(CENTRAL_SIG) {
            return Err(broken());
        }
        let field16 = |o: usize| le16(zip, at + o).ok_or_else(broken);
        let field32 = |o: usize| le32(zip, at + o).ok_or_else(broken);
        let (name_len, extra_len, comment_len) = (field16(28)?, field16(30)?, field16(32)?);
        let name_at = at + CENTRAL_LEN;
        let name = zip
            .get(name_at..name_at + usize::from(name_len))
            .ok_or_else(broken)?;
        found.push(Entry {
            name: String::from_utf8_lossy(name).into_owned(),
            flags: field16(8)?,
            method: field16(10)?,
            crc: field32(16)?,
            compressed: u64::from(field32(20)?),
            size: u64::from(field32(24)?),
            local: field32(42)? as usize,
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

/// The entry's stored or deflated bytes, inflated and checked.
fn contents(zip: &[u8], e: &Entry) -> Result<Vec<u8>, String> {
    if e.flags & 1 != 0 {
        return Err(format!("{} is encrypted", e.name));
    }
    if e.size > MAX_CHAT_BYTES {
        return Err(format!("{} is too large ({} bytes)", e.name, e.size));
    }
    let broken = || format!("broken zip: the local header of {}", e.name);
    if le32(zip, e.local) != Some(LOCAL_SIG) {
        return Err(broken());
    }
    let name_len = usize::from(le16(zip, e.local + 26).ok_or_else(broken)?);
    let extra_len = usize::from(le16(zip, e.local + 28).ok_or_else(broken)?);
    let start = e.local + LOCAL_LEN + name_len + extra_len;
    let data = usize::try_from(e.compressed)
        .ok()
        .and_then(|len| zip.get(start..start.checked_add(len)?))
        .ok_or_else(|| format!("broken zip: {} is cut short (truncated?)", e.name))?;
    let out = match e.method {
        0 => data.to_vec(),
        8 => inflate(data, e)?,
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

/// The chat text's bytes in a zip export; why not, in plain words.
pub fn chat_bytes(zip: &[u8]) -> Result<Vec<u8>, String> {
    let entries = entries(zip)?;
    let entry = chat_entry(&entries)?;
    contents(zip, entry)
}

#[cfg(test)]
pub(crate) mod tests {
    use std::io::Write;

    use super::*;

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
            assert_eq!(chat_bytes(&zip).as_deref(), Ok(CHAT));
        }
    }

    #[test]
    fn a_single_txt_is_the_chat() {
        let zip = build(&[
            ("__MACOSX/._WhatsApp Chat with Ana.txt", b"junk", false),
            ("WhatsApp Chat with Ana.txt", CHAT, true),
        ]);
        assert_eq!(chat_bytes(&zip).as_deref(), Ok(CHAT));
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
            if let Ok(bytes) = chat_bytes(&zip) {
                proptest::prop_assert_eq!(crc32fast::hash(&bytes), crc32fast::hash(CHAT));
            }
        }
    }

    #[test]
    fn broken_zips_say_why() {
        let good = build(&[("_chat.txt", CHAT, false)]);
        let mut bad_crc = good.clone();
        bad_crc[LOCAL_LEN + "_chat.txt".len() + 3] ^= 0x20;
        let check = |bytes: &[u8], expected: &str| match chat_bytes(bytes) {
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
        assert!(chat_bytes(&not_deflate).is_err());
    }
}
