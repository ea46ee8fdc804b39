//! The messages the twin chose not to answer, for the control room: the counts
//! (`SECONDME:unanswered` plus `SECONDME:unheard`, the voice notes and photos it
//! could not understand) read every second, and at once when the operator
//! dismissed one, handed to the dashboard whole. A failed read is said once in
//! the event log and the screen keeps what it showed; a key of another type is
//! said once and shows no counts of its own (the other's still show).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use secondme_ui::{Event, LogEntry, LogKind};
use tokio::sync::Notify;
use tokio::sync::mpsc::UnboundedSender;

use crate::connection::Con;
use crate::store::{self, unanswered};

/// How often the counts are re-read: two small hashes, a round trip each.
const REFRESH: Duration = Duration::from_secs(1);

/// Reads the counts until the receiver goes away: at once, on each `wake`,
/// and every [`REFRESH`].
pub async fn watch(mut con: Con, wake: Arc<Notify>, tx: UnboundedSender<Event>) {
    let mut failing = false;
    loop {
        let (counts, problem) = reading(unanswered::read(&mut con).await);
        if let Some(counts) = counts
            && tx.send(Event::Unanswered(counts)).is_err()
        {
            return;
        }
        match problem {
            // Said once until a read succeeds: the status bar already shows a lost link.
            Some((kind, text)) if !failing => {
                failing = true;
                tracing::warn!("{text}");
                let entry = LogEntry {
                    at_ms: store::now_ms(),
                    kind,
                    text,
                };
                if tx.send(Event::Log(entry)).is_err() {
                    return;
                }
            }
            Some(_) => {}
            None => failing = false,
        }
        tokio::select! {
            () = wake.notified() => {},
            () = tokio::time::sleep(REFRESH) => {},
        }
    }
}

/// The counts to show (`None`: keep what is shown) and the problem to say.
type Reading = (Option<HashMap<String, u64>>, Option<(LogKind, String)>);

/// What a read gives the screen: the counts, without those of a key of
/// another type (said as such); nothing new when Redis did not answer (said as
/// a failure).
pub fn reading(read: unanswered::Result<unanswered::Counts>) -> Reading {
    match read {
        Ok(counts) => {
            let said: Vec<String> = counts.foreign.iter().map(ToString::to_string).collect();
            let problem = (!said.is_empty()).then(|| (LogKind::Info, said.join("; ")));
            (Some(counts.by_contact), problem)
        }
        Err(e) => (
            None,
            Some((
                LogKind::Connection,
                format!("unanswered counts not read: {:#}", anyhow::Error::new(e)),
            )),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_foreign_key_is_said_the_others_counts_show_and_a_failure_keeps_the_screen() {
        let counts = HashMap::from([("a".to_owned(), 2)]);
        let (shown, problem) = reading(Ok(unanswered::Counts {
            by_contact: counts.clone(),
            foreign: Vec::new(),
        }));
        assert_eq!(shown, Some(counts.clone()));
        assert!(problem.is_none());

        let (shown, problem) = reading(Ok(unanswered::Counts {
            by_contact: counts.clone(),
            foreign: vec![unanswered::Error::Foreign {
                key: "K".into(),
                kind: "list".into(),
            }],
        }));
        assert_eq!(shown, Some(counts), "the other key's counts still show");
        let (kind, text) = problem.expect("said");
        assert_eq!(kind, LogKind::Info);
        assert!(text.contains("K holds a list, not a hash"), "{text}");

        let refused = redis::RedisError::from((redis::ErrorKind::Io, "link down"));
        let (shown, problem) = reading(Err(unanswered::Error::Redis {
            what: "read",
            key: "K".into(),
            source: refused,
        }));
        assert_eq!(shown, None);
        let (kind, text) = problem.expect("said");
        assert_eq!(kind, LogKind::Connection);
        assert!(text.contains("cannot read K"), "{text}");
        assert!(text.contains("link down"), "{text}");
    }
}
