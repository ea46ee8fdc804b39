//! Reply engines behind one trait: the embedded persona engine (the free offline
//! default) and a language model (`llm`), chosen by [`engine::Engine`].

pub mod engine;
pub mod input;
pub mod llm;
pub mod persona_engine;
pub mod styled;

use std::future::Future;

use input::{ContactContext, HistoryTurn, PersonaCache, QueueMessage};

/// What an engine gets to write one reply.
#[derive(Debug, Clone)]
pub struct ReplyRequest<'a> {
    /// The message to answer.
    pub message: &'a QueueMessage,
    /// Persona id.
    pub persona_id: &'a str,
    /// The persona's style.
    pub persona: &'a PersonaCache,
    /// What the graph knows about the contact, when it knows anything.
    pub context: Option<&'a ContactContext>,
    /// The conversation so far, oldest first (at most [`ReplyEngine::history_len`]
    /// messages; may include `message` itself).
    pub history: &'a [HistoryTurn],
    /// What the twin learned from the person's chats that bears on this reply.
    pub learned: Option<&'a crate::learn::Learned>,
}

/// A written reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// Text to send.
    pub content: String,
    /// How long the gateway shows "typing..." before sending, ms.
    pub delay_ms: u64,
}

/// A photo for the engine to look at, with the caption it came with. Its
/// `Debug` shows the MIME type and the size only: the caption is chat text.
#[derive(Clone, Copy)]
pub struct ImageInput<'a> {
    /// The image's bytes.
    pub bytes: &'a [u8],
    /// Its MIME type (`image/jpeg`).
    pub mime: &'a str,
    /// The caption, possibly empty.
    pub caption: &'a str,
}

impl std::fmt::Debug for ImageInput<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImageInput")
            .field("mime", &self.mime)
            .field("bytes", &self.bytes.len())
            .finish_non_exhaustive()
    }
}

/// Writes replies in the person's style.
pub trait ReplyEngine: Send + Sync + 'static {
    /// Writes the reply to one message.
    fn reply(
        &self,
        request: &ReplyRequest<'_>,
    ) -> impl Future<Output = anyhow::Result<Reply>> + Send;

    /// True when replies are computed locally at no cost (no network, no fee), so
    /// the worker may write them before deciding and send them in the same atomic step.
    fn instant(&self) -> bool {
        false
    }

    /// How many of the contact's latest messages (`HISTORY:{contactId}`) the engine
    /// wants in [`ReplyRequest::history`]; 0 spares the worker reading them.
    fn history_len(&self) -> usize {
        0
    }

    /// True when the engine can look at photos ([`Self::describe_image`]).
    fn takes_images(&self) -> bool {
        false
    }

    /// What a photo shows, in a few words (its gist): what the twin then answers
    /// and the conversation keeps. Engines that take no images refuse for good.
    fn describe_image(
        &self,
        image: &ImageInput<'_>,
    ) -> impl Future<Output = Result<String, crate::media::UnderstandError>> + Send {
        let _ = image;
        async {
            Err(crate::media::UnderstandError::Permanent(
                "the reply engine takes no images".into(),
            ))
        }
    }
}

/// The shortest "typing..." before a reply, ms: the human pace's shortest pause.
pub const MIN_TYPING_MS: u64 = 2_000;

/// The longest "typing..." a learned reply time may ask for, ms: as long as the
/// gateway shows it (`bridge::whatsapp::pacing::MAX_TYPING_DELAY`).
pub const MAX_TYPING_MS: u64 = 60_000;

/// Human pace for sending (upstream design): 300 ms a word plus a 2-5 s pause.
///
/// `jitter` in `0..=1` picks the pause, so the engine stays deterministic.
pub fn human_delay_ms(reply: &str, jitter: f64) -> u64 {
    let words = reply.split_whitespace().count() as u64;
    let pause = 2000.0 + 3000.0 * jitter.clamp(0.0, 1.0);
    words * 300 + pause as u64
}

/// The human pace of `reply` moved halfway toward the owner's own median reply
/// time when it was learned, within [`MIN_TYPING_MS`]..=[`MAX_TYPING_MS`];
/// the human pace alone otherwise. Deterministic for a given `jitter`.
pub fn paced_delay_ms(reply: &str, jitter: f64, learned: Option<&crate::learn::Learned>) -> u64 {
    let human = human_delay_ms(reply, jitter);
    let owner_ms = learned
        .and_then(|l| l.profile.as_ref())
        .and_then(|p| p.reply_time_median_s)
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(|s| s * 1000.0);
    match owner_ms {
        Some(owner) => {
            let toward = (human as f64 + owner) / 2.0;
            (toward.min(MAX_TYPING_MS as f64) as u64).clamp(MIN_TYPING_MS, MAX_TYPING_MS)
        }
        None => human,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::learn::{Learned, StyleProfile};

    fn replying_in(seconds: Option<f64>) -> Learned {
        Learned {
            profile: Some(StyleProfile {
                reply_time_median_s: seconds,
                ..StyleProfile::default()
            }),
            ..Learned::default()
        }
    }

    #[test]
    fn the_typing_time_moves_toward_the_owners_reply_time_within_bounds() {
        let text = "one two three four five six seven eight nine ten";
        // 10 words and no pause: 5000 ms at jitter 0.
        assert_eq!(human_delay_ms(text, 0.0), 5_000);
        assert_eq!(paced_delay_ms(text, 0.0, None), 5_000);
        assert_eq!(paced_delay_ms(text, 0.0, Some(&replying_in(None))), 5_000);
        assert_eq!(
            paced_delay_ms(text, 0.0, Some(&replying_in(Some(15.0)))),
            10_000
        );
        assert_eq!(
            paced_delay_ms(text, 0.0, Some(&replying_in(Some(0.0)))),
            2_500
        );
        assert_eq!(
            paced_delay_ms("ok", 0.0, Some(&replying_in(Some(0.0)))),
            MIN_TYPING_MS
        );
        assert_eq!(
            paced_delay_ms(text, 0.0, Some(&replying_in(Some(3_600.0)))),
            MAX_TYPING_MS
        );
        assert_eq!(
            paced_delay_ms(text, 0.0, Some(&replying_in(Some(f64::NAN)))),
            5_000
        );
    }
}
