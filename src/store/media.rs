//! `MEDIA:{messageId}`: the bytes of a message's voice note or photo, written by
//! the gateway before the entry and read here by the worker, which deletes them
//! once the entry is handled (the gateway's one-hour expiry covers a crash in
//! between).

use crate::connection::Con;

use crate::schema;

/// Keys deleted per `UNLINK`.
const SLICE: usize = 500;

/// Why a message's bytes could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// Another program keeps another type under the key: these bytes are not ours.
    #[error("{key} holds a {kind}, not a string (another program's?): the media is not read")]
    Foreign {
        /// The key.
        key: String,
        /// The type it holds.
        kind: String,
    },
    /// Redis did not answer.
    #[error("cannot read {key}: {source}")]
    Redis {
        /// The key.
        key: String,
        /// What Redis said.
        source: redis::RedisError,
    },
}

/// The bytes of message `message_id`, `None` when gone (expired, never written)
/// or larger than `max_bytes` (`STRLEN` first, so a huge value is never read).
pub async fn read(
    con: &mut Con,
    message_id: &str,
    max_bytes: usize,
) -> Result<Option<Vec<u8>>, ReadError> {
    let key = schema::media_key(message_id);
    let redis_err = |source: redis::RedisError| ReadError::Redis {
        key: key.clone(),
        source,
    };
    let len: Result<usize, redis::RedisError> =
        redis::cmd("STRLEN").arg(&key).query_async(con).await;
    let len = match len {
        Ok(len) => len,
        Err(e) if e.code() == Some("WRONGTYPE") => return Err(foreign(con, &key).await),
        Err(e) => return Err(redis_err(e)),
    };
    if len == 0 || len > max_bytes {
        return Ok(None);
    }
    let bytes: Result<Option<Vec<u8>>, redis::RedisError> =
        redis::cmd("GET").arg(&key).query_async(con).await;
    match bytes {
        Ok(b) => Ok(b.filter(|b| !b.is_empty() && b.len() <= max_bytes)),
        Err(e) if e.code() == Some("WRONGTYPE") => Err(foreign(con, &key).await),
        Err(e) => Err(redis_err(e)),
    }
}

/// The error for a key of another type, naming the type when Redis says it.
async fn foreign(con: &mut Con, key: &str) -> ReadError {
    let kind: String = redis::cmd("TYPE")
        .arg(key)
        .query_async(con)
        .await
        .unwrap_or_else(|_| "value of another type".to_owned());
    ReadError::Foreign {
        key: key.to_owned(),
        kind,
    }
}

/// Deletes the bytes of these messages (`UNLINK`: a 16 MB value is freed off
/// Redis's main thread). A key of another type under such a name is deleted
/// too: it sits where only media belongs.
pub async fn forget<'a>(
    con: &mut Con,
    message_ids: impl IntoIterator<Item = &'a str>,
) -> redis::RedisResult<()> {
    let keys: Vec<String> = message_ids.into_iter().map(schema::media_key).collect();
    for slice in keys.chunks(SLICE) {
        redis::cmd("UNLINK")
            .arg(slice)
            .query_async::<()>(con)
            .await?;
    }
    Ok(())
}
