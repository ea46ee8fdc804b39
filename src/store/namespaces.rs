//! The registry of the namespaces a pool of workers serves: the set
//! `SECONDME:namespaces`, outside every namespace. Removing a namespace from it
//! stops serving it and deletes none of its keys.

use redis::{AsyncCommands, RedisError};

use crate::connection::Con;
use crate::schema::{self, NamespaceError};

/// Why the registry could not be read or changed.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The name is not a namespace.
    #[error("invalid namespace {name:?}: {problem}")]
    Invalid {
        /// The name as given.
        name: String,
        /// What is wrong with it.
        problem: NamespaceError,
    },
    /// Another program keeps the registry's key as another type.
    #[error("{key} is a {kind}, not a set of namespaces: another program uses that key")]
    ForeignType {
        /// The registry's key.
        key: &'static str,
        /// The type Redis reports for it.
        kind: String,
    },
    /// Redis refused or could not be reached.
    #[error("cannot {action} the namespace registry {key}")]
    Redis {
        /// What was being done: read or change.
        action: &'static str,
        /// The registry's key.
        key: &'static str,
        /// The client's error.
        #[source]
        source: RedisError,
    },
}

/// Checks a name as the registry holds it.
fn checked(name: &str) -> Result<(), RegistryError> {
    schema::check_namespace(Some(name.to_owned()))
        .map(drop)
        .map_err(|problem| RegistryError::Invalid {
            name: name.to_owned(),
            problem,
        })
}

/// The error for a failed command: a foreign type named, else the client's error.
async fn failure(con: &mut Con, action: &'static str, source: RedisError) -> RegistryError {
    let key = schema::namespaces();
    if source.code() == Some("WRONGTYPE") {
        let kind: Result<String, RedisError> = redis::cmd("TYPE").arg(key).query_async(con).await;
        if let Ok(kind) = kind {
            return RegistryError::ForeignType { key, kind };
        }
    }
    RegistryError::Redis {
        action,
        key,
        source,
    }
}

/// Registers `name`; true when it was not registered yet.
pub async fn add(con: &mut Con, name: &str) -> Result<bool, RegistryError> {
    checked(name)?;
    match con.sadd::<_, _, usize>(schema::namespaces(), name).await {
        Ok(added) => Ok(added == 1),
        Err(e) => Err(failure(con, "change", e).await),
    }
}

/// Unregisters `name` (its keys stay); true when it was registered.
pub async fn remove(con: &mut Con, name: &str) -> Result<bool, RegistryError> {
    checked(name)?;
    match con.srem::<_, _, usize>(schema::namespaces(), name).await {
        Ok(removed) => Ok(removed == 1),
        Err(e) => Err(failure(con, "change", e).await),
    }
}

/// Every registered namespace, sorted. A member that is not a namespace (another
/// program wrote it) is left out with a warning: serving it would build keys
/// outside its hash tag.
pub async fn list(con: &mut Con) -> Result<Vec<String>, RegistryError> {
    let members: Vec<String> = match con.smembers(schema::namespaces()).await {
        Ok(members) => members,
        Err(e) => return Err(failure(con, "read", e).await),
    };
    let (mut valid, refused): (Vec<String>, Vec<String>) =
        members.into_iter().partition(|m| checked(m).is_ok());
    if !refused.is_empty() {
        tracing::warn!(
            "{} member(s) of {} are not namespaces and are left out",
            refused.len(),
            schema::namespaces()
        );
    }
    valid.sort();
    Ok(valid)
}
