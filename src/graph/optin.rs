//! Mirroring the opt-in (`botEnabled`) into the graph when the user changes it.

use crate::connection::Con;
use redis::AsyncCommands;

use super::error::{GraphError, Result};
use super::query::Query;
use super::reply::Cell;
use crate::schema;

/// Sets `botEnabled` of a contact; returns false when the graph has no such
/// contact (it is not created: contacts come from imports).
pub async fn set_bot_enabled(con: &mut Con, contact_id: &str, enabled: bool) -> Result<bool> {
    let what = format!("cannot set botEnabled of `{contact_id}` in the graph");
    // A write query on a missing key would create an empty graph; skip instead.
    let exists: bool = con
        .exists(schema::graph())
        .await
        .map_err(|source| GraphError::Redis {
            what: what.clone(),
            source,
        })?;
    if !exists {
        return Ok(false);
    }
    let reply = Query::new("MATCH (c:Contact {id: $id}) SET c.botEnabled = $on RETURN count(c)")
        .param("id", contact_id)
        .param("on", enabled)
        .write(con, &what)
        .await?;
    Ok(reply
        .rows
        .first()
        .and_then(|row| Cell::at(row, 0).int())
        .is_some_and(|n| n > 0))
}
