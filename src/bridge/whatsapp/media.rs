//! Voice notes, audio and photos of incoming messages. Every such entry names
//! its media (`mediaType`, `mediaSeconds`) and holds its caption, never a
//! placeholder, so the worker never answers a guess. The bytes are fetched for
//! enabled contacts only (members of `OPTIN:contacts` when the message
//! arrives), within the size limit and the batch's time, and written to
//! `MEDIA:{messageId}` before the entry. Media not fetched (a stranger's, the
//! person's own, too large or of unknown size, view-once, a failed or late
//! download) has no bytes: the worker finds it unreadable.

use std::time::Duration;

use anyhow::{Context, Result};
use redis::AsyncCommands as _;
use tokio::time::Instant;

use super::link::{Inbound, MediaOffer, MediaSink, MediaSource};
use crate::connection::Con;
use crate::schema::media::{MEDIA_SECONDS_FIELD, MEDIA_TTL_MS, MEDIA_TYPE_FIELD};
use crate::schema::{self, QueueMessage};

/// Longest one download may take: the messages after it wait for it.
pub const DOWNLOAD_TIMEOUT: Duration = Duration::from_secs(30);

/// Longest the downloads of one batch may take together: the chat waits for
/// them, so media still missing then is written without its bytes.
pub const BATCH_TIMEOUT: Duration = Duration::from_secs(60);

/// What the gateway fetches: how large, and how long it may wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest file, bytes (the `media_max_mb` setting).
    pub max_bytes: usize,
    /// Longest one download may take.
    pub download: Duration,
    /// Longest the downloads of one batch may take together.
    pub batch: Duration,
}

impl Limits {
    /// Files of at most `max_bytes`, with the default times.
    pub fn new(max_bytes: usize) -> Self {
        Self {
            max_bytes,
            download: DOWNLOAD_TIMEOUT,
            batch: BATCH_TIMEOUT,
        }
    }
}

/// Why offered media is not fetched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    /// Sent from the person's own phone.
    FromMe,
    /// View-once, or not described well enough to fetch.
    NotFetchable,
    /// WhatsApp did not say how large it is.
    SizeUnknown,
    /// Larger than the limit.
    TooLarge,
    /// The contact is not enabled.
    NotEnabled,
}

/// Fetches the media of `batch` that may be fetched, one at a time (so one
/// file at most is in memory) within the batch's time, and writes each to
/// `MEDIA:{messageId}`. An `Err` is Redis failing: the batch must not be
/// acknowledged, so WhatsApp delivers it again.
pub async fn store(
    con: &Con,
    source: &impl MediaSource,
    limits: &Limits,
    batch: &[Inbound],
) -> Result<()> {
    let deadline = Instant::now() + limits.batch;
    for inbound in batch {
        let Some(offer) = &inbound.media else {
            continue;
        };
        let message = &inbound.message;
        if let Some(refusal) = refusal(con, message, offer, limits.max_bytes).await? {
            tracing::debug!(
                message_id = %message.message_id,
                "whatsapp gateway: media not fetched ({refusal:?})"
            );
            continue;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            tracing::warn!(
                message_id = %message.message_id,
                "whatsapp gateway: media not fetched (the batch's {}s for media are spent); \
                 the entry has no bytes",
                limits.batch.as_secs()
            );
            continue;
        }
        let wait = limits.download.min(left);
        let Some(bytes) = fetch(source, offer, limits.max_bytes, wait, &message.message_id).await
        else {
            continue;
        };
        write(con, &message.message_id, &bytes).await?;
    }
    Ok(())
}

/// Why `offer` must not be fetched, or `None` when it may be. The contact's
/// opt-in is read now, as the message arrives.
async fn refusal(
    con: &Con,
    message: &QueueMessage,
    offer: &MediaOffer,
    max_bytes: usize,
) -> Result<Option<Refusal>> {
    if message.from_me {
        return Ok(Some(Refusal::FromMe));
    }
    if offer.location.is_none() {
        return Ok(Some(Refusal::NotFetchable));
    }
    let Some(length) = offer.file_length else {
        return Ok(Some(Refusal::SizeUnknown));
    };
    if usize::try_from(length).map_or(true, |n| n > max_bytes) {
        return Ok(Some(Refusal::TooLarge));
    }
    let mut con = con.clone();
    let enabled: bool = con
        .sismember(schema::optin_contacts(), &message.contact_id)
        .await
        .with_context(|| format!("cannot read {}", schema::optin_contacts()))?;
    Ok((!enabled).then_some(Refusal::NotEnabled))
}

/// The bytes of `offer`, or `None` (logged with the message id only) when the
/// download fails, takes longer than `wait` or brings more than `max_bytes`
/// (refused by the sink as they come, never held whole).
async fn fetch(
    source: &impl MediaSource,
    offer: &MediaOffer,
    max_bytes: usize,
    wait: Duration,
    message_id: &str,
) -> Option<Vec<u8>> {
    let sink = MediaSink::new(max_bytes, offer.file_length.unwrap_or(0));
    let abandon = sink.abandon_handle();
    let failure = match tokio::time::timeout(wait, source.download(offer, sink)).await {
        Ok(Ok(sink)) => return Some(sink.into_bytes()),
        // The library's error may name the file's address: it is not logged.
        Ok(Err(_)) => "the download failed or brought more than the limit".to_owned(),
        Err(_) => {
            // A download still running elsewhere stops at its next write.
            abandon.abandon();
            format!("no answer in {}ms", wait.as_millis())
        }
    };
    tracing::warn!(
        %message_id,
        kind = ?offer.kind,
        "whatsapp gateway: cannot fetch the media ({failure}); the entry has no bytes"
    );
    None
}

/// `SET MEDIA:{messageId} bytes PX` [`MEDIA_TTL_MS`].
async fn write(con: &Con, message_id: &str, bytes: &[u8]) -> Result<()> {
    let key = schema::media_key(message_id);
    let mut con = con.clone();
    redis::cmd("SET")
        .arg(&key)
        .arg(bytes)
        .arg("PX")
        .arg(MEDIA_TTL_MS)
        .exec_async(&mut con)
        .await
        .with_context(|| format!("cannot write {key}"))
}

/// The entry fields naming the media (`mediaType`, `mediaSeconds`), after the
/// seed's fields, whether its bytes were fetched or not; none without media.
pub fn entry_fields(media: Option<&MediaOffer>) -> Vec<(&'static str, String)> {
    let Some(offer) = media else {
        return Vec::new();
    };
    let mut fields = vec![(MEDIA_TYPE_FIELD, offer.mime.clone())];
    if let Some(seconds) = offer.seconds {
        fields.push((MEDIA_SECONDS_FIELD, seconds.to_string()));
    }
    fields
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::media::MediaKind;

    fn offer(kind: MediaKind, mime: &str, seconds: Option<u32>) -> MediaOffer {
        MediaOffer {
            kind,
            mime: mime.into(),
            seconds,
            file_length: None,
            location: None,
        }
    }

    #[test]
    fn every_medium_names_its_type_and_length_fetched_or_not() {
        let voice = offer(MediaKind::Voice, "audio/ogg; codecs=opus", Some(12));
        assert_eq!(
            entry_fields(Some(&voice)),
            vec![
                ("mediaType", "audio/ogg; codecs=opus".to_owned()),
                ("mediaSeconds", "12".to_owned())
            ]
        );
        let photo = offer(MediaKind::Photo, "image/jpeg", None);
        assert_eq!(
            entry_fields(Some(&photo)),
            vec![("mediaType", "image/jpeg".to_owned())]
        );
        assert!(entry_fields(None).is_empty());
    }

    #[test]
    fn the_times_are_thirty_seconds_a_download_and_a_minute_a_batch() {
        let limits = Limits::new(1_000);
        assert_eq!(limits.max_bytes, 1_000);
        assert_eq!(limits.download, Duration::from_secs(30));
        assert_eq!(limits.batch, Duration::from_secs(60));
    }
}
