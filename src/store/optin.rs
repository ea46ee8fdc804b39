//! Which contacts the twin may answer (`OPTIN:contacts`).

use crate::connection::Con;
use anyhow::{Context, Result};
use redis::AsyncCommands;

use crate::schema;

/// Enables or disables the twin for each contact; returns how many changed.
pub async fn set_enabled(con: &mut Con, contact_ids: &[String], enabled: bool) -> Result<usize> {
    if contact_ids.is_empty() {
        return Ok(0);
    }
    for id in contact_ids {
        super::ensure_contact_id(id)?;
    }
    let changed: usize = if enabled {
        con.sadd(schema::optin_contacts(), contact_ids).await
    } else {
        con.srem(schema::optin_contacts(), contact_ids).await
    }
    .context("cannot update OPTIN:contacts")?;
    Ok(changed)
}

/// Every enabled contact, sorted.
pub async fn enabled(con: &mut Con) -> Result<Vec<String>> {
    let mut ids: Vec<String> = con
        .smembers(schema::optin_contacts())
        .await
        .context("cannot read OPTIN:contacts")?;
    ids.sort();
    Ok(ids)
}
