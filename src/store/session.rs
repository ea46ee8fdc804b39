//! The WhatsApp session hash `SESSION:{userId}` with its sealed token.

use crate::connection::Con;
use anyhow::{Context, Result};
use redis::AsyncCommands;
use serde::Serialize;

use crate::schema;
use crate::seal::{self, SessionKey};

/// What a dashboard may know about a session: never the token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionInfo {
    /// When the gateway logged in, ms.
    pub connected_at: i64,
    /// When the session expires, ms.
    pub expires_at: i64,
}

/// Seals `plain_token` and writes the session with its 24 hour TTL, atomically.
pub async fn write(
    con: &mut Con,
    user_id: &str,
    key: &SessionKey,
    plain_token: &[u8],
    connected_at: i64,
) -> Result<SessionInfo> {
    write_at(con, user_id, key, plain_token, connected_at, connected_at).await
}

/// [`write`] at `now`: a refresh of a session connected at `connected_at`, so
/// `expiresAt` moves with the TTL.
pub async fn write_at(
    con: &mut Con,
    user_id: &str,
    key: &SessionKey,
    plain_token: &[u8],
    connected_at: i64,
    now: i64,
) -> Result<SessionInfo> {
    let name = schema::session_key(user_id);
    let token = seal::seal(key, plain_token, &name)?;
    let expires_at = now + schema::SESSION_TTL_S * 1000;
    redis::pipe()
        .atomic()
        .del(&name)
        .hset_multiple(
            &name,
            &[
                ("token", token),
                ("connectedAt", connected_at.to_string()),
                ("expiresAt", expires_at.to_string()),
            ],
        )
        .expire(&name, schema::SESSION_TTL_S)
        .exec_async(con)
        .await
        .with_context(|| format!("cannot write {name}"))?;
    Ok(SessionInfo {
        connected_at,
        expires_at,
    })
}

/// The session's times, or `None` when there is no session.
pub async fn info(con: &mut Con, user_id: &str) -> Result<Option<SessionInfo>> {
    let name = schema::session_key(user_id);
    let (connected, expires): (Option<i64>, Option<i64>) = con
        .hmget(&name, &["connectedAt", "expiresAt"])
        .await
        .with_context(|| format!("cannot read {name}"))?;
    Ok(match (connected, expires) {
        (Some(connected_at), Some(expires_at)) => Some(SessionInfo {
            connected_at,
            expires_at,
        }),
        _ => None,
    })
}

/// Opens the stored token; a wrong key or a tampered token is a clear error.
pub async fn open_token(con: &mut Con, user_id: &str, key: &SessionKey) -> Result<Option<Vec<u8>>> {
    let name = schema::session_key(user_id);
    let token: Option<String> = con
        .hget(&name, "token")
        .await
        .with_context(|| format!("cannot read {name}"))?;
    match token {
        None => Ok(None),
        Some(t) => {
            Ok(Some(seal::open(key, &t, &name).with_context(|| {
                format!("cannot open the token in {name}")
            })?))
        }
    }
}

/// Logs out: removes the session.
pub async fn remove(con: &mut Con, user_id: &str) -> Result<()> {
    let name = schema::session_key(user_id);
    let _: i64 = con
        .del(&name)
        .await
        .with_context(|| format!("cannot delete {name}"))?;
    Ok(())
}
