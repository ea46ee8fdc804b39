//! Where WhatsApp's messages enter Redis: the durability hook's commit. WhatsApp
//! is acknowledged only after [`Inbox::commit`] returns `Ok`, so a message is
//! either in `QUEUE:messages` (and, with `replicas_to_wait`, on that many
//! replicas) or will be delivered again. A voice note, audio or photo it
//! fetched is at `MEDIA:{messageId}` before its entry is added ([`Inbox::receive`]).
//!
//! The inbox also keeps the [`Directory`]: which address answers which contact
//! id. It lives in a private file beside the device store, never in Redis,
//! because addresses are phone numbers.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::connection::Con;
use anyhow::{Context, Result};

use super::link::{Inbound, MediaSource};
use super::media;
use crate::private_file;
use crate::schema::{self, QueueMessage};
use crate::store::durability::{self, Confirmer, Mark, WAIT_TIMEOUT};
use crate::store::queue;

/// Contact id to address, kept in a 0600 JSON file.
#[derive(Debug, Clone)]
pub struct Directory {
    path: PathBuf,
    map: Arc<Mutex<HashMap<String, String>>>,
}

impl Directory {
    /// The directory stored at `path` (empty when the file does not exist yet).
    pub fn open(path: PathBuf) -> Result<Self> {
        let map = read_map(&path)?;
        Ok(Self {
            path,
            map: Arc::new(Mutex::new(map)),
        })
    }

    /// Adds the addresses the file holds and this directory lacks: another
    /// gateway of the account (a `secondme login`, a second host sharing the
    /// data directory) may have met a contact first.
    pub fn reload(&self) -> Result<()> {
        let stored = read_map(&self.path)?;
        let mut map = self
            .map
            .lock()
            .map_err(|_| anyhow::anyhow!("contact directory lock poisoned"))?;
        for (id, address) in stored {
            map.entry(id).or_insert(address);
        }
        Ok(())
    }

    /// The address of `contact_id`, if the gateway has seen that contact.
    pub fn address(&self, contact_id: &str) -> Option<String> {
        self.map.lock().ok()?.get(contact_id).cloned()
    }

    /// Records addresses; rewrites the file only when something is new.
    pub fn remember<'a>(&self, pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Result<()> {
        let snapshot = {
            let mut map = self
                .map
                .lock()
                .map_err(|_| anyhow::anyhow!("contact directory lock poisoned"))?;
            let mut changed = false;
            for (id, address) in pairs {
                if map.get(id).map(String::as_str) != Some(address) {
                    map.insert(id.to_owned(), address.to_owned());
                    changed = true;
                }
            }
            if !changed {
                return Ok(());
            }
            serde_json::to_vec(&*map)?
        };
        write_private(&self.path, &snapshot)
    }
}

/// The directory file's map (empty when there is no file yet).
fn read_map(path: &std::path::Path) -> Result<HashMap<String, String>> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .with_context(|| format!("{} is not a contact directory", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(HashMap::new()),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// Writes `bytes` to `path` through a private temporary file and a rename, so a
/// crash leaves the old file or the new one.
fn write_private(path: &std::path::Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent() {
        private_file::create_dir(dir)?;
    }
    let tmp = path.with_extension("tmp");
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(private_file::FILE_MODE)
        .open(&tmp)
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))
}

/// The durable commit of incoming messages.
#[derive(Debug, Clone)]
pub struct Inbox {
    con: Con,
    acked_trim: bool,
    directory: Directory,
    /// Replicas that must hold a batch before WhatsApp is told we have it.
    replicas_to_wait: u32,
    /// Which server connection `con` was last seen on, for the `WAIT`s.
    confirmer: Confirmer,
    /// What voice notes, audio and photos are fetched: how large, how long.
    media: media::Limits,
}

impl Inbox {
    /// An inbox writing through `con`; `acked_trim` on Redis 8.2+.
    pub fn new(con: Con, acked_trim: bool, directory: Directory) -> Self {
        Self {
            con,
            acked_trim,
            directory,
            replicas_to_wait: 0,
            confirmer: Confirmer::default(),
            media: media::Limits::new(schema::media::DEFAULT_MAX_BYTES),
        }
    }

    /// The same inbox, fetching media of at most `max_bytes` (the `media_max_mb` setting).
    pub fn with_media_limit(mut self, max_bytes: usize) -> Self {
        self.media.max_bytes = max_bytes;
        self
    }

    /// The same inbox, giving up a download after `download`, and the media
    /// of a batch after `batch` in all (the defaults are
    /// [`media::DOWNLOAD_TIMEOUT`] and [`media::BATCH_TIMEOUT`]).
    pub fn with_media_times(mut self, download: Duration, batch: Duration) -> Self {
        self.media.download = download;
        self.media.batch = batch;
        self
    }

    /// The same inbox, confirming each batch on `replicas` replicas (`WAIT`)
    /// before [`Self::commit`] returns `Ok`, on a connection of its own then
    /// (a `WAIT` holds up its connection, which the lease's renewal must not share).
    pub fn waiting_for(mut self, replicas: u32) -> Self {
        if replicas > 0 && self.replicas_to_wait == 0 {
            self.con = durability::own_connection(&self.con, replicas);
            self.confirmer = Confirmer::default();
        }
        self.replicas_to_wait = replicas;
        self
    }

    /// The contact directory.
    pub fn directory(&self) -> &Directory {
        &self.directory
    }

    /// Adds the batch to `QUEUE:messages` (one atomic round trip), records
    /// names and addresses, and waits for the replicas to hold it. `Ok` means
    /// WhatsApp may forget the messages; an `Err` has them delivered again, so
    /// a batch the replicas did not confirm comes back (the worker answers a
    /// message written twice once).
    pub async fn commit(&self, batch: &[Inbound]) -> Result<()> {
        let mark = self.begin().await;
        self.commit_after(mark, batch).await
    }

    /// Commits a batch as it comes from WhatsApp: the media of enabled
    /// contacts fetched through `source` and written to `MEDIA:{messageId}`
    /// first ([`media::store`]), then [`Self::commit`]. An `Err` (Redis) has
    /// WhatsApp deliver the whole batch again.
    pub async fn receive(&self, batch: Vec<Inbound>, source: &impl MediaSource) -> Result<()> {
        let mark = self.begin().await;
        media::store(&self.con, source, &self.media, &batch).await?;
        self.commit_after(mark, &batch).await
    }

    /// Notes which connection the writes to confirm go on, before them.
    async fn begin(&self) -> Mark {
        let mut con = self.con.clone();
        let key = schema::queue_messages();
        self.confirmer
            .begin(&mut con, key, self.replicas_to_wait)
            .await
    }

    /// Writes `batch` and confirms on the replicas everything written since
    /// `mark` was taken.
    async fn commit_after(&self, mark: Mark, batch: &[Inbound]) -> Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        self.write(batch).await?;
        let mut con = self.con.clone();
        self.confirmer
            .confirm(
                &mark,
                &mut con,
                schema::queue_messages(),
                self.replicas_to_wait,
                WAIT_TIMEOUT,
            )
            .await
            .with_context(|| {
                format!(
                    "{} messages in {} but not on the replicas; WhatsApp delivers them again",
                    batch.len(),
                    schema::queue_messages()
                )
            })?;
        Ok(())
    }

    /// The batch into `QUEUE:messages` and the directory, without waiting for replicas.
    async fn write(&self, batch: &[Inbound]) -> Result<()> {
        self.directory.remember(
            batch
                .iter()
                .map(|m| (m.message.contact_id.as_str(), m.address.as_str())),
        )?;
        let mut pipe = redis::pipe();
        pipe.atomic();
        for m in batch {
            let mut xadd = queue::xadd(&m.message, self.acked_trim);
            for (name, value) in media::entry_fields(m.media.as_ref()) {
                xadd.arg(name).arg(value);
            }
            pipe.add_command(xadd).ignore();
            if let Some(name) = m.push_name.as_deref().filter(|n| !n.is_empty()) {
                pipe.hset(schema::contact_names(), &m.message.contact_id, name)
                    .ignore();
            }
        }
        let mut con = self.con.clone();
        pipe.exec_async(&mut con)
            .await
            .with_context(|| format!("cannot add to {}", schema::queue_messages()))
    }

    /// Adds the echo of a reply the gateway sent, as WhatsApp would show it.
    /// Nothing waits for its replicas: WhatsApp does not send it again, and a
    /// failover that loses it loses a line of the history, not a reply.
    pub async fn commit_echo(&self, echo: &QueueMessage) -> Result<()> {
        self.write(&[Inbound {
            message: echo.clone(),
            address: self
                .directory()
                .address(&echo.contact_id)
                .unwrap_or_default(),
            push_name: None,
            media: None,
        }])
        .await
    }
}
