//! The end of the sleep hours in `defer` mode: each contact's message kept in
//! `SECONDME:deferred` is answered (or drafted) through the commit step, with the
//! whole night in the history, so the contact gets one reply covering all of it.
//! The commit step ends the deferral in the same atomic step as the reply, so two
//! workers (or one restarted) answer it once.

use std::borrow::Cow;
use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::Result;

use super::Worker;
use super::batch::{BatchOutcome, Drafting, commit, generate};
use super::parsed_entry::ParsedEntry;
use super::verdict::Committed;
use crate::entry::CheckedEntry;
use crate::reply::ReplyEngine;
use crate::schema::Direction;
use crate::schema::deferred::Deferral;
use crate::store::deferred;

/// Contacts answered per look: replies are written inline, and a slow engine
/// must not keep the stream waiting long.
const PER_LOOK: usize = 2;
/// How long a contact whose deferral was tried is left alone (its reply failed,
/// or another worker may be writing it).
const RETRY_AFTER: Duration = Duration::from_secs(60);

/// The deferrals this worker tried lately, so a failing one is not retried at
/// every look.
#[derive(Default)]
pub(super) struct Tried(HashMap<String, Instant>);

impl Tried {
    fn due(&mut self, contact: &str) -> bool {
        self.0.retain(|_, at| at.elapsed() < RETRY_AFTER);
        !self.0.contains_key(contact)
    }
}

impl<E: ReplyEngine> Worker<E> {
    /// Answers up to [`PER_LOOK`] deferred messages; call only outside the sleep hours.
    pub(super) async fn answer_deferred(&mut self) -> Result<()> {
        let kept = deferred::read(&mut self.con).await?;
        let mut outcome = BatchOutcome::default();
        let mut done = 0;
        for (contact, kept) in kept {
            if done == PER_LOOK || !self.deferrals_tried.due(&contact) {
                continue;
            }
            self.deferrals_tried
                .0
                .insert(contact.clone(), Instant::now());
            match kept {
                Ok(d) => {
                    done += 1;
                    self.answer_one(&d, &mut outcome).await;
                }
                Err(why) => {
                    tracing::warn!(
                        "the deferred message of {contact} cannot be read ({why}): dropped, counted as not answered"
                    );
                    deferred::drop_unreadable(&mut self.con, &contact).await?;
                }
            }
        }
        outcome.entries = outcome.answered + outcome.drafted + outcome.skipped + outcome.failed;
        if outcome.entries > 0 && !self.replicated("deferred messages answered").await {
            outcome.unreplicated += 1;
        }
        self.count(&outcome);
        Ok(())
    }

    async fn answer_one(&mut self, d: &Deferral, outcome: &mut BatchOutcome) {
        let m = &d.message;
        let g = ParsedEntry::new(
            &d.stream_id,
            &CheckedEntry {
                message_id: Cow::Borrowed(&m.message_id),
                contact_id: Cow::Borrowed(&m.contact_id),
                content: Cow::Borrowed(&m.content),
                timestamp: m.timestamp,
                direction: Direction::Incoming,
                from_me: false,
                media: None,
            },
        );
        // Understood in the night: what was said or shown is what the reply answers.
        let g = match &m.media {
            Some(mark) => g.understood(None, mark.clone()),
            None => g,
        };
        let written = match self
            .personas
            .for_contact(&mut self.con, &m.contact_id)
            .await
        {
            Ok(persona) => {
                generate(&*self.engine, &mut self.con, &g, &persona, &self.learned).await
            }
            Err(e) => Err(e),
        };
        let w = match written {
            Ok(w) => w,
            Err(e) => {
                outcome.failed += 1;
                tracing::error!(
                    "no reply yet to the night of {} ({}), tried again later: {e:#}",
                    m.contact_id,
                    m.message_id
                );
                return;
            }
        };
        // The reply took time to write: a reply to a newer message may have
        // ended the night meanwhile (checked again here, a moment before the
        // commit, not atomically with it).
        match deferred::holds(&mut self.con, &m.contact_id, &m.message_id).await {
            Ok(true) => {}
            Ok(false) => {
                outcome.skipped += 1;
                return;
            }
            Err(e) => {
                outcome.failed += 1;
                tracing::error!("the night of {} is left for later: {e:#}", m.contact_id);
                return;
            }
        }
        let pair = [(&g, w)];
        let result = commit(
            &mut self.con,
            &self.cfg.group,
            Drafting::of(&self.cfg),
            self.cfg.sleep_mode,
            &pair,
            false,
        )
        .await;
        match result.map(|r| r.items.into_iter().next()) {
            Ok(Some(Committed::Sent)) => outcome.answered += 1,
            Ok(Some(Committed::Drafted)) => outcome.drafted += 1,
            Ok(Some(Committed::Duplicate | Committed::Withheld) | None) => outcome.skipped += 1,
            Ok(Some(Committed::Failed(why))) => {
                outcome.failed += 1;
                tracing::error!(
                    "the night of {} could not be answered, tried again later: {why}",
                    m.contact_id
                );
            }
            Err(e) => {
                outcome.failed += 1;
                tracing::error!(
                    "the night of {} could not be answered, tried again later: {e:#}",
                    m.contact_id
                );
            }
        }
    }
}
