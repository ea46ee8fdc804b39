//! Pending entries as sources of batches: this consumer's own (re-read at every
//! start and at the stop) and other consumers' stale ones (claimed now and then).
//! Both count deliveries, so an entry that keeps failing ends in the dead-letter
//! stream; after a fault of the server, own entries are only peeked at.

use std::collections::HashMap;
use std::time::Instant;

use crate::connection::Con;
use anyhow::Result;

use super::WorkerConfig;
use super::batch::{Triaged, triage};
use super::recovery;
use super::sources::Source;

/// This consumer's pending entries, a batch at a time from the oldest.
pub(super) struct OwnPending {
    cfg: WorkerConfig,
    /// Where the next page starts ("0": from the start); `None` when not reading.
    cursor: Option<String>,
    /// Read without delivering again: after a failure of the server or of a key
    /// every entry shares, waiting was no entry's fault.
    peek: bool,
    /// The last id of the batch handed out.
    last: String,
    current: Triaged,
}

impl OwnPending {
    /// Not reading until [`Self::begin`].
    pub(super) fn new(cfg: &WorkerConfig) -> Self {
        Self {
            cfg: cfg.clone(),
            cursor: None,
            peek: false,
            last: String::new(),
            current: Triaged::default(),
        }
    }

    /// Reads from the oldest entry again; `peek` after a fault.
    pub(super) fn begin(&mut self, peek: bool) {
        self.cursor = Some("0".to_owned());
        self.peek = peek;
    }

    /// Stops reading.
    pub(super) fn end(&mut self) {
        self.cursor = None;
        self.current = Triaged::default();
    }
}

impl Source for OwnPending {
    async fn fill(&mut self, con: &mut Con) -> Result<bool> {
        let Some(cursor) = self.cursor.as_deref() else {
            return Ok(false);
        };
        let entries = if self.peek {
            recovery::peek_own_pending(con, &self.cfg, cursor).await?
        } else {
            recovery::read_own_pending(con, &self.cfg, cursor).await?
        };
        let Some(last) = entries.last() else {
            self.cursor = None;
            return Ok(false);
        };
        self.last = last.id.clone();
        let too_many = if self.peek {
            HashMap::new()
        } else {
            recovery::over_delivered(con, &self.cfg, &entries).await?
        };
        self.current = triage(&entries, &too_many);
        Ok(true)
    }

    fn batch(&mut self) -> Option<&mut Triaged> {
        Some(&mut self.current)
    }

    fn report(&mut self, done: bool) {
        if done && self.cursor.is_some() {
            self.cursor = Some(std::mem::take(&mut self.last));
        }
        self.current = Triaged::default();
    }
}

/// Entries other consumers left pending for longer than the claim time.
pub(super) struct Claims {
    cfg: WorkerConfig,
    last: Instant,
    current: Triaged,
}

impl Claims {
    /// Claims every `cfg.claim_every`, the first time one period from now.
    pub(super) fn new(cfg: &WorkerConfig) -> Self {
        Self {
            cfg: cfg.clone(),
            last: Instant::now(),
            current: Triaged::default(),
        }
    }
}

impl Source for Claims {
    async fn fill(&mut self, con: &mut Con) -> Result<bool> {
        if self.last.elapsed() < self.cfg.claim_every {
            return Ok(false);
        }
        self.last = Instant::now();
        let claimed = recovery::claim(con, &self.cfg).await?;
        if claimed.is_empty() {
            return Ok(false);
        }
        tracing::info!("claimed {} stale pending entries", claimed.len());
        let too_many = recovery::over_delivered(con, &self.cfg, &claimed).await?;
        self.current = triage(&claimed, &too_many);
        Ok(true)
    }

    fn batch(&mut self) -> Option<&mut Triaged> {
        Some(&mut self.current)
    }

    fn report(&mut self, _done: bool) {
        self.current = Triaged::default();
    }
}
