//! What can go wrong talking to the graph, typed so callers can fall back to the
//! shipped personas on [`GraphError::NoModule`] and treat the rest as faults.

use std::path::PathBuf;

/// Result of a graph operation.
pub type Result<T, E = GraphError> = std::result::Result<T, E>;

/// A graph failure.
#[derive(Debug, thiserror::Error)]
pub enum GraphError {
    /// The server does not have the FalkorDB module loaded.
    #[error("this Redis has no FalkorDB module: {0}")]
    NoModule(String),
    /// Redis (or FalkorDB) refused or failed a command.
    #[error("{what}: {source}")]
    Redis {
        /// What was being done.
        what: String,
        /// The server's or the link's error.
        #[source]
        source: redis::RedisError,
    },
    /// The reply did not have the shape FalkorDB documents.
    #[error("{what}: unexpected reply from FalkorDB ({detail})")]
    Reply {
        /// What was being done.
        what: String,
        /// What was wrong with it.
        detail: String,
    },
    /// A node the caller named is not in the graph.
    #[error("no {kind} `{id}` in the graph `{graph}`", graph = crate::schema::graph())]
    NotFound {
        /// `persona`, `contact` ...
        kind: &'static str,
        /// The id looked up.
        id: String,
    },
    /// The graph has no user (nothing was imported yet), so nothing resolves.
    #[error(
        "the graph `{graph}` has no user with a default persona: import one with `secondme persona import FILE`",
        graph = crate::schema::graph()
    )]
    NoUser,
    /// A value that cannot be stored (for example a NUL byte in a name).
    #[error("invalid {what}: {detail}")]
    Invalid {
        /// Which value.
        what: String,
        /// Why.
        detail: String,
    },
    /// A graph file that cannot be read or does not hold a valid graph.
    #[error("graph file {}: {detail}", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
}
