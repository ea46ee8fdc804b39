//! Whether the server has FalkorDB at all, so callers can fall back to the
//! shipped personas instead of failing every lookup.

use crate::connection::Con;

use super::error::{GraphError, Result};

/// True when the server knows `GRAPH.QUERY` (FalkorDB is loaded). False when it
/// does not, or when the server cannot be asked.
pub async fn available(con: &mut Con) -> bool {
    match require(con).await {
        Ok(()) => true,
        Err(e) => {
            tracing::debug!("FalkorDB not available: {e}");
            false
        }
    }
}

/// Ok when FalkorDB is loaded; [`GraphError::NoModule`] when the server lacks it.
pub async fn require(con: &mut Con) -> Result<()> {
    // `COMMAND INFO` is allowed to ordinary ACL users, unlike `MODULE LIST`.
    let info: Vec<redis::Value> = redis::cmd("COMMAND")
        .arg("INFO")
        .arg("GRAPH.QUERY")
        .query_async(con)
        .await
        .map_err(|source| GraphError::Redis {
            what: "cannot ask Redis whether FalkorDB is loaded".into(),
            source,
        })?;
    match info.first() {
        Some(redis::Value::Nil) | None => Err(GraphError::NoModule(
            "GRAPH.QUERY is not a command of this server; start redis-server with \
             `--loadmodule /path/to/falkordb.so` (scripts/setup.sh installs Redis with \
             FalkorDB into .venv/redis)"
                .into(),
        )),
        Some(_) => Ok(()),
    }
}
