//! Draft mode for the control room: the waiting drafts and the reply modes,
//! read at start, whenever `events:drafts` says something changed (or an
//! action of this control room did) and every few seconds (another control
//! room's or the CLI's mode change announces nothing), handed to the dashboard
//! whole. A failed read is said once in the event log and the screen keeps
//! what it showed.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use crate::connection::Con;
use secondme_ui::model::{self as ui, DraftChange, DraftsRead};
use secondme_ui::{Event, LogEntry, LogKind};
use tokio::sync::Notify;
use tokio::sync::mpsc::UnboundedSender;

use crate::schema::drafts::{DEFAULT_MODE_FIELD, Draft, ReplyMode, events};
use crate::store::{self, drafts};

/// How often the drafts and modes are re-read without a word from the channel.
const REFRESH: Duration = Duration::from_secs(3);

/// Reads the drafts and modes until the receiver goes away: at once, on each
/// `wake`, and every [`REFRESH`]. `setting` is the `reply_mode` setting, the
/// mode of contacts without one when `SECONDME:modes` holds no default.
pub async fn watch(
    mut con: Con,
    wake: Arc<Notify>,
    setting: ReplyMode,
    tx: UnboundedSender<Event>,
) {
    let mut failing = false;
    loop {
        let sent = match read(&mut con, setting).await {
            Ok(read) => {
                failing = false;
                tx.send(Event::Drafts(read))
            }
            // Said once per outage: the status bar already shows a lost link.
            Err(e) if !failing => {
                failing = true;
                tx.send(Event::Log(LogEntry {
                    at_ms: store::now_ms(),
                    kind: LogKind::Connection,
                    text: format!("drafts not read: {e:#}"),
                }))
            }
            Err(_) => Ok(()),
        };
        if sent.is_err() {
            return;
        }
        tokio::select! {
            () = wake.notified() => {},
            () = tokio::time::sleep(REFRESH) => {},
        }
    }
}

/// The drafts and modes as the dashboard takes them.
pub async fn read(con: &mut Con, setting: ReplyMode) -> anyhow::Result<DraftsRead> {
    let waiting = drafts::list(con).await?;
    let modes = drafts::modes(con).await?;
    Ok(to_ui(waiting, modes, setting))
}

/// The dashboard's view of what was read: each contact's own mode, and the
/// default (`*`, else the setting).
pub fn to_ui(
    waiting: Vec<Draft>,
    mut modes: HashMap<String, ReplyMode>,
    setting: ReplyMode,
) -> DraftsRead {
    let default_mode = modes.remove(DEFAULT_MODE_FIELD).unwrap_or(setting);
    DraftsRead {
        drafts: waiting.into_iter().map(draft).collect(),
        modes: modes.into_iter().map(|(c, m)| (c, mode(m))).collect(),
        default_mode: mode(default_mode),
    }
}

fn draft(d: Draft) -> ui::Draft {
    ui::Draft {
        draft_id: d.draft_id,
        contact_id: d.contact_id,
        content: d.content,
        in_reply_to: d.in_reply_to,
        created_at_ms: d.created_at,
        expires_at_ms: d.expires_at,
    }
}

/// The dashboard's mode for the engine's.
pub fn mode(m: ReplyMode) -> ui::ReplyMode {
    match m {
        ReplyMode::Auto => ui::ReplyMode::Auto,
        ReplyMode::Draft => ui::ReplyMode::Draft,
    }
}

/// The engine's mode for the dashboard's.
pub fn engine_mode(m: ui::ReplyMode) -> ReplyMode {
    match m {
        ui::ReplyMode::Auto => ReplyMode::Auto,
        ui::ReplyMode::Draft => ReplyMode::Draft,
    }
}

/// The change an `events:drafts` type names; `None` for one this control
/// room does not know.
pub fn change(kind: &str) -> Option<DraftChange> {
    Some(match kind {
        events::CREATED => DraftChange::Created,
        events::REPLACED => DraftChange::Replaced,
        events::APPROVED => DraftChange::Approved,
        events::DISCARDED => DraftChange::Discarded,
        events::EXPIRED => DraftChange::Expired,
        events::REGENERATE => DraftChange::Regenerate,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_star_is_the_default_and_the_setting_stands_in_for_it() {
        let modes = HashMap::from([
            ("a".to_owned(), ReplyMode::Draft),
            (DEFAULT_MODE_FIELD.to_owned(), ReplyMode::Auto),
        ]);
        let read = to_ui(Vec::new(), modes, ReplyMode::Draft);
        assert_eq!(read.default_mode, ui::ReplyMode::Auto);
        assert_eq!(read.modes, vec![("a".to_owned(), ui::ReplyMode::Draft)]);
        let read = to_ui(Vec::new(), HashMap::new(), ReplyMode::Draft);
        assert_eq!(read.default_mode, ui::ReplyMode::Draft);
    }

    #[test]
    fn every_event_type_is_a_change_and_modes_round_trip() {
        for kind in [
            events::CREATED,
            events::REPLACED,
            events::APPROVED,
            events::DISCARDED,
            events::EXPIRED,
            events::REGENERATE,
        ] {
            assert!(change(kind).is_some(), "{kind}");
        }
        assert_eq!(change("sent"), None);
        for m in [ReplyMode::Auto, ReplyMode::Draft] {
            assert_eq!(engine_mode(mode(m)), m);
        }
    }
}
