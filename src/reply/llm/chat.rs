//! What both protocols share: a conversation to complete, how its body is
//! written (an image encoded straight into it), and what came back.

use super::error::LlmError;

/// A role in the conversation sent to the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The contact's words.
    User,
    /// The person's (or the twin's) words.
    Assistant,
}

impl Role {
    /// The wire name, the same in both protocols.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::Assistant => "assistant",
        }
    }
}

/// One turn.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Turn {
    /// Who speaks.
    pub role: Role,
    /// What they said.
    pub text: String,
}

/// A completion to ask for.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatRequest {
    /// Model name.
    pub model: String,
    /// The instructions.
    pub system: String,
    /// The conversation, oldest first, ending with the contact's message.
    pub turns: Vec<Turn>,
    /// Token cap of the answer.
    pub max_tokens: u32,
    /// Sampling temperature.
    pub temperature: f32,
}

/// A picture shown to the model with the conversation's last user turn: its
/// media type and its bytes, borrowed. Its base64 is written straight into the
/// request's body, never held beside it. Its `Debug` shows no byte.
#[derive(Clone, PartialEq, Eq)]
pub struct ImagePart<'a> {
    /// The media type, lowercase, without parameters (`image/jpeg`).
    pub media_type: String,
    /// The bytes.
    pub bytes: &'a [u8],
}

/// Shortest run of base64 that [`scrub`] takes for a piece of the image.
const SCRUBBED_MIN_CHARS: usize = 16;

impl<'a> ImagePart<'a> {
    /// The picture of `bytes` typed `mime` (`image/jpeg`, `IMAGE/PNG; q=1`;
    /// `image/jpg` is read as `image/jpeg`), or `None` when `mime` names no
    /// image type or there are no bytes.
    pub fn new(mime: &str, bytes: &'a [u8]) -> Option<Self> {
        let media_type = image_media_type(mime)?;
        (!bytes.is_empty()).then_some(Self { media_type, bytes })
    }

    /// The length of its base64, padding included.
    pub fn base64_len(&self) -> usize {
        self.bytes.len().div_ceil(3) * 4
    }

    /// Its bytes in standard base64 with padding, as Anthropic's source takes them.
    pub fn base64(&self) -> Base64<'a> {
        Base64(self.bytes)
    }

    /// `data:{media type};base64,{data}`, as OpenAI's `image_url` takes it.
    pub fn data_url(&self) -> DataUrl<'_> {
        DataUrl(self)
    }
}

impl std::fmt::Debug for ImagePart<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImagePart")
            .field("media_type", &self.media_type)
            .field("bytes", &self.bytes.len())
            .finish()
    }
}

/// Bytes in standard base64 with padding, encoded as they are written (to a
/// JSON string: serde_json's `collect_str` escapes the pieces in place).
#[derive(Clone, Copy)]
pub struct Base64<'a>(&'a [u8]);

impl std::fmt::Display for Base64<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let engine = &base64::engine::general_purpose::STANDARD;
        base64::display::Base64Display::new(self.0, engine).fmt(f)
    }
}

impl serde::Serialize for Base64<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// An image as a data URL, encoded as it is written.
#[derive(Clone, Copy)]
pub struct DataUrl<'a>(&'a ImagePart<'a>);

impl std::fmt::Display for DataUrl<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "data:{};base64,{}", self.0.media_type, self.0.base64())
    }
}

impl serde::Serialize for DataUrl<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// `text` with every run of 16 or more base64 characters found in `sent` (the
/// request's body, where the image's base64 is) replaced: a server's error
/// may quote the request it refused.
pub fn scrub(text: &str, sent: &[u8]) -> String {
    let is_b64 = |c: char| c.is_ascii_alphanumeric() || matches!(c, '+' | '/' | '=');
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find(is_b64) {
        out.push_str(&rest[..start]);
        let tail = &rest[start..];
        let end = tail.find(|c| !is_b64(c)).unwrap_or(tail.len());
        let run = &tail[..end];
        if run.len() >= SCRUBBED_MIN_CHARS && occurs(sent, run.as_bytes()) {
            out.push_str("[image data]");
        } else {
            out.push_str(run);
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

/// Whether `needle` (not empty) occurs in `haystack`.
fn occurs(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// The media type of an image `mime`, lowercase and without parameters; `None`
/// unless it is `image/` and a subtype of token characters, which a data URL
/// and a JSON field carry as they are.
fn image_media_type(mime: &str) -> Option<String> {
    let essence = mime
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let sub = essence.strip_prefix("image/")?;
    let token = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '+' | '-');
    if sub.is_empty() || !sub.chars().all(token) {
        return None;
    }
    Some(if sub == "jpg" {
        "image/jpeg".to_owned()
    } else {
        essence
    })
}

/// A message as both protocols write it; `I` is the protocol's image block.
#[derive(serde::Serialize)]
pub struct Message<'a, I> {
    /// `system`, `user` or `assistant`.
    pub role: &'static str,
    /// Its text, or its parts once an image is beside the text.
    pub content: Content<'a, I>,
}

/// What a message holds.
#[derive(serde::Serialize)]
#[serde(untagged)]
pub enum Content<'a, I> {
    /// A plain text.
    Text(&'a str),
    /// A text block and an image block.
    Parts(Vec<Part<'a, I>>),
}

/// One block of a message's parts.
#[derive(serde::Serialize)]
#[serde(untagged)]
pub enum Part<'a, I> {
    /// `{"type": "text", "text": ...}`, the same in both protocols.
    Text(TextBlock<'a>),
    /// The protocol's image block.
    Image(I),
}

/// A text block.
#[derive(serde::Serialize)]
pub struct TextBlock<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    text: &'a str,
}

/// Puts `block` (a protocol's image block) in the last of `messages` when it
/// is the user's, whose text becomes a text block beside it (`image_first`:
/// after the image); a conversation ending otherwise gets a user message of
/// the image alone.
pub fn attach_image<'a, I>(messages: &mut Vec<Message<'a, I>>, block: I, image_first: bool) {
    match messages.last_mut() {
        Some(last) if last.role == Role::User.as_str() => {
            let mut parts = match std::mem::replace(&mut last.content, Content::Parts(Vec::new())) {
                Content::Text(text) => vec![Part::Text(TextBlock { kind: "text", text })],
                Content::Parts(parts) => parts,
            };
            if image_first {
                parts.insert(0, Part::Image(block));
            } else {
                parts.push(Part::Image(block));
            }
            last.content = Content::Parts(parts);
        }
        _ => messages.push(Message {
            role: Role::User.as_str(),
            content: Content::Parts(vec![Part::Image(block)]),
        }),
    }
}

/// `body` as JSON in one buffer, sized up front for `req` and `image` so
/// that it is never grown (which would hold two copies of a photo at once).
pub fn to_json<T: serde::Serialize>(
    body: &T,
    req: &ChatRequest,
    image: Option<&ImagePart<'_>>,
) -> Result<Vec<u8>, LlmError> {
    let mut out = Vec::with_capacity(room(req, image));
    serde_json::to_writer(&mut out, body)
        .map_err(|e| LlmError::Config(format!("the request cannot be written as JSON: {e}")))?;
    Ok(out)
}

/// Room for the body of `req` and `image`: escaping may double a text, and
/// each message adds its keys and quotes.
fn room(req: &ChatRequest, image: Option<&ImagePart<'_>>) -> usize {
    let text: usize = req.system.len() + req.turns.iter().map(|t| t.text.len()).sum::<usize>();
    2 * text
        + 128 * (req.turns.len() + 4)
        + req.model.len()
        + image.map_or(0, |i| i.base64_len() + i.media_type.len())
}

/// What the model answered.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Completion {
    /// The text, think blocks removed (may be empty).
    pub text: String,
    /// Why it stopped, as the server says it (any value is accepted).
    pub finish_reason: Option<String>,
    /// Tokens of the prompt.
    pub prompt_tokens: u64,
    /// Tokens of the answer.
    pub completion_tokens: u64,
}

/// Merges consecutive turns of the same role (joined by a newline) and drops
/// leading assistant turns, so turns alternate starting with the user.
pub fn alternate(turns: &[Turn]) -> Vec<Turn> {
    let mut out: Vec<Turn> = Vec::with_capacity(turns.len());
    for t in turns {
        if t.text.trim().is_empty() {
            continue;
        }
        match out.last_mut() {
            Some(last) if last.role == t.role => {
                last.text.push('\n');
                last.text.push_str(&t.text);
            }
            None if t.role == Role::Assistant => {}
            _ => out.push(t.clone()),
        }
    }
    out
}

/// Removes `<think>...</think>` sections; an unclosed `<think>` hides the rest.
/// Tags match in any case. Time is linear in the text, whatever it holds: a
/// hostile server may send a megabyte of empty tag pairs.
pub fn strip_think_tags(text: &str) -> String {
    const OPEN: &str = "<think>";
    const CLOSE: &str = "</think>";
    // ASCII lowercasing keeps every byte where it was, so an offset found in
    // `lower` cuts `text` at the same place (and on a char boundary).
    let lower = text.to_ascii_lowercase();
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    loop {
        let Some(start) = lower[at..].find(OPEN).map(|i| at + i) else {
            out.push_str(&text[at..]);
            break;
        };
        out.push_str(&text[at..start]);
        let after = start + OPEN.len();
        match lower[after..].find(CLOSE) {
            Some(end) => at = after + end + CLOSE.len(),
            None => break,
        }
    }
    // A model that starts with the closing tag (its template opened the block).
    match out.to_ascii_lowercase().find(CLOSE) {
        Some(end) => out[end + CLOSE.len()..].trim().to_owned(),
        None => out.trim().to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(role: Role, text: &str) -> Turn {
        Turn {
            role,
            text: text.into(),
        }
    }

    #[test]
    fn turns_alternate_and_start_with_the_user() {
        let turns = [
            t(Role::Assistant, "earlier me"),
            t(Role::User, "hi"),
            t(Role::User, "you there?"),
            t(Role::Assistant, "yes"),
            t(Role::Assistant, " "),
            t(Role::Assistant, "what's up"),
            t(Role::User, "dinner?"),
        ];
        let out = alternate(&turns);
        assert_eq!(
            out,
            [
                t(Role::User, "hi\nyou there?"),
                t(Role::Assistant, "yes\nwhat's up"),
                t(Role::User, "dinner?"),
            ]
        );
    }

    #[test]
    fn an_image_part_is_typed_and_encoded_where_written() {
        let part = ImagePart::new("IMAGE/JPG; q=1", b"\xff\xd8\xff").expect("an image");
        assert_eq!(part.media_type, "image/jpeg");
        assert_eq!(part.data_url().to_string(), "data:image/jpeg;base64,/9j/");
        assert_eq!(
            serde_json::to_string(&part.base64()).expect("json"),
            "\"/9j/\""
        );
        assert_eq!(
            ImagePart::new("image/svg+xml", b"<svg/>").map(|p| p.media_type),
            Some("image/svg+xml".into())
        );
        for mime in ["audio/ogg", "image/", "image/png\"x", "imagejpeg", ""] {
            assert_eq!(ImagePart::new(mime, b"x"), None, "{mime}");
        }
        assert_eq!(ImagePart::new("image/png", b""), None);
        for len in 1..8 {
            let bytes = vec![7u8; len];
            let part = ImagePart::new("image/png", &bytes).expect("an image");
            assert_eq!(part.base64().to_string().len(), part.base64_len(), "{len}");
        }
    }

    #[test]
    fn the_image_data_stays_out_of_debug_and_scrubbed_texts() {
        use base64::Engine as _;
        let bytes: Vec<u8> = (0..=255).collect();
        let part = ImagePart::new("image/png", &bytes).expect("an image");
        let data = base64::engine::general_purpose::STANDARD.encode(&bytes);
        let debug = format!("{part:?}");
        assert!(!debug.contains(&data[..16]), "{debug}");
        assert!(debug.contains("256"), "{debug}");
        let sent = format!(r#"{{"url":"{}"}}"#, part.data_url());
        let quoted = format!("bad image at {} near 'x'", &data[40..90]);
        assert_eq!(
            scrub(&quoted, sent.as_bytes()),
            "bad image at [image data] near 'x'"
        );
        // Words that are no piece of what was sent stay.
        assert_eq!(
            scrub(
                "Could not process image: unsupportedformat",
                sent.as_bytes()
            ),
            "Could not process image: unsupportedformat"
        );
    }

    #[test]
    fn a_body_is_written_in_one_buffer_sized_up_front() {
        let req = ChatRequest {
            model: "m".into(),
            system: "line\n\"quoted\"\t".repeat(50),
            turns: vec![t(Role::User, "\u{1}\n".repeat(20).as_str())],
            max_tokens: 10,
            temperature: 0.5,
        };
        let bytes = vec![1u8; 3000];
        let image = ImagePart::new("image/png", &bytes).expect("an image");
        let mut messages: Vec<Message<'_, DataUrl<'_>>> = vec![Message {
            role: "user",
            content: Content::Text(&req.turns[0].text),
        }];
        attach_image(&mut messages, image.data_url(), false);
        let json = to_json(&messages, &req, Some(&image)).expect("json");
        assert_eq!(json.capacity(), room(&req, Some(&image)), "never grown");
        assert!(json.len() > image.base64_len());
        let value: serde_json::Value = serde_json::from_slice(&json).expect("json");
        assert_eq!(value[0]["content"][0]["text"], req.turns[0].text.as_str());
        assert!(
            value[0]["content"][1]
                .as_str()
                .is_some_and(|u| u.starts_with("data:image/png;base64,AQEB"))
        );
    }

    #[test]
    fn think_tags_are_removed() {
        assert_eq!(strip_think_tags("<think>hmm</think>\nsure!"), "sure!");
        assert_eq!(strip_think_tags("a <THINK>x</THINK>b"), "a b");
        assert_eq!(strip_think_tags("<think>never closed"), "");
        assert_eq!(strip_think_tags("reasoning...</think> ok then"), "ok then");
        assert_eq!(strip_think_tags("plain"), "plain");
        assert_eq!(strip_think_tags("é<Think>x</tHiNk>ü ok"), "éü ok");
        assert_eq!(strip_think_tags("<think>a</think>b</think>c"), "c");
    }

    /// The old search lowercased what was left of the text at every tag, which
    /// made a megabyte of empty pairs cost minutes in a debug build.
    #[test]
    fn a_megabyte_of_empty_think_pairs_strips_within_seconds() {
        let pair = "<think></think>";
        let text = pair.repeat((1 << 20) / pair.len()) + "ok";
        let started = std::time::Instant::now();
        let out = strip_think_tags(&text);
        let took = started.elapsed();
        assert_eq!(out, "ok");
        assert!(
            took < std::time::Duration::from_secs(2),
            "took {took:?} for {} bytes",
            text.len()
        );
    }
}
