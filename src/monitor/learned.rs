//! What the twin learned for the selected contact, for the control room: its
//! style profile (the contact's own, else the overall one) and its last eval,
//! read when the selection changes and every few seconds (`store::learned`),
//! handed to the dashboard as plain figures. A failed read sends nothing, so
//! the panel keeps what it showed.

use std::time::Duration;

use crate::connection::Con;
use secondme_ui::Event;
use secondme_ui::model::{LastEval, LearnedProfile, LearnedView, Measure};
use tokio::sync::mpsc::UnboundedSender;
use tokio::sync::watch;

use crate::learn::StyleProfile;
use crate::learn::eval::EvalReport;
use crate::store::learned;

/// How often the selected contact's learned data is re-read: live messages
/// and an eval change it, seldom.
const REFRESH: Duration = Duration::from_secs(3);

/// Reads what was learned for the contact `selected` names, at once when it
/// changes and every [`REFRESH`], until the receiver or the selection goes away.
pub async fn watch(
    mut con: Con,
    mut selected: watch::Receiver<Option<String>>,
    tx: UnboundedSender<Event>,
) {
    loop {
        let contact = selected.borrow_and_update().clone();
        if let Some(contact) = contact
            && let Some(view) = read(&mut con, &contact).await
            && tx.send(Event::Learned(view)).is_err()
        {
            return;
        }
        tokio::select! {
            changed = selected.changed() => if changed.is_err() { return },
            () = tokio::time::sleep(REFRESH) => {},
        }
    }
}

/// What was learned for `contact_id`; `None` when Redis could not be asked.
pub async fn read(con: &mut Con, contact_id: &str) -> Option<LearnedView> {
    let profile = match profile(con, contact_id).await {
        Ok(p) => p,
        Err(e) => {
            tracing::debug!("learned profile not read: {e:#}");
            return None;
        }
    };
    let eval = match learned::last_eval(con, contact_id).await {
        Ok(eval) => eval.and_then(last_eval),
        Err(e) => {
            tracing::debug!("last eval not read: {e:#}");
            return None;
        }
    };
    Some(LearnedView {
        contact_id: contact_id.to_owned(),
        profile,
        eval,
    })
}

/// The contact's own profile, else the overall one marked so.
async fn profile(con: &mut Con, contact_id: &str) -> anyhow::Result<Option<LearnedProfile>> {
    if let Some(p) = learned::profile(con, Some(contact_id)).await? {
        return Ok(Some(to_ui(p, true)));
    }
    Ok(learned::profile(con, None).await?.map(|p| to_ui(p, false)))
}

/// The profile's figures the panel shows.
pub fn to_ui(p: StyleProfile, from_contact: bool) -> LearnedProfile {
    LearnedProfile {
        from_contact,
        samples: p.samples,
        median_chars: p.median_chars,
        starts_lowercase: p.starts_lowercase,
        ends_with_period: p.ends_with_period,
        emoji_per_message: p.emoji_per_message,
        top_emoji: p.top_emoji,
        laughter_per_message: p.laughter_per_message,
        top_laughter: p.top_laughter,
        reply_time_median_s: p.reply_time_median_s,
    }
}

/// The last eval's figures (`LEARN:eval:{contactId}`, the JSON of `secondme
/// eval --json`); `None` when the stored JSON is not one.
pub fn last_eval(v: serde_json::Value) -> Option<LastEval> {
    let e: EvalReport = match serde_json::from_value(v) {
        Ok(e) => e,
        Err(e) => {
            tracing::debug!("last eval unreadable: {e}");
            return None;
        }
    };
    Some(LastEval {
        at_ms: Some(e.at),
        holdout: e.holdout as u64,
        twin_distance: e.twin.style_distance,
        baseline_distance: Some(e.baseline.style_distance),
        measures: e
            .twin
            .rows
            .into_iter()
            .map(|r| Measure {
                name: r.measure,
                owner: r.owner,
                twin: r.generated,
            })
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_eval_as_secondme_eval_writes_it_reads_as_bars() {
        let v = serde_json::json!({
            "contact": "mom",
            "holdout": 20,
            "twin": {"style_distance": 0.18, "rows": [
                {"measure": "starts_lowercase", "owner": 0.85, "generated": 0.72, "distance": 0.13}
            ]},
            "baseline": {"style_distance": 0.42, "rows": []},
            "at": 1_700_000_000_000_i64
        });
        let e = last_eval(v).expect("an eval");
        assert_eq!(e.holdout, 20);
        assert_eq!(e.twin_distance, 0.18);
        assert_eq!(e.baseline_distance, Some(0.42));
        assert_eq!(e.at_ms, Some(1_700_000_000_000));
        assert_eq!(
            e.measures,
            vec![Measure {
                name: "starts_lowercase".into(),
                owner: 0.85,
                twin: 0.72
            }]
        );
        assert!(last_eval(serde_json::json!({"twin": 3})).is_none());
        assert!(last_eval(serde_json::json!("x")).is_none());
    }
}
