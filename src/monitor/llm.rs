//! The language model's figures for the control room, re-read every two
//! seconds (`store::llm_figures`) and handed to the dashboard as plain data.

use std::time::Duration;

use crate::connection::Con;
use secondme_ui::Event;
use secondme_ui::llm::{BreakerOpen, LlmFigures, ModelFigures};
use tokio::sync::mpsc::UnboundedSender;

use crate::store::{self, llm_figures};

/// How often the figures are re-read: as often as workers write them.
const REFRESH: Duration = Duration::from_secs(2);

/// Reads the figures until the receiver goes away. A key that cannot be read is
/// named once in the event log; a failed read keeps the last figures.
pub async fn watch(mut con: Con, tx: UnboundedSender<Event>) {
    let mut odd_seen: Vec<String> = Vec::new();
    loop {
        if let Some(events) = read(&mut con, &mut odd_seen).await {
            for ev in events {
                if tx.send(ev).is_err() {
                    return;
                }
            }
        }
        tokio::time::sleep(REFRESH).await;
    }
}

/// One read as dashboard events: the figures, then a log line for each key not
/// read before; `None` when Redis could not be asked.
pub async fn read(con: &mut Con, odd_seen: &mut Vec<String>) -> Option<Vec<Event>> {
    let (figures, odd) = match llm_figures::read(con).await {
        Ok(read) => read,
        Err(e) => {
            tracing::debug!("language model figures not read: {e:#}");
            return None;
        }
    };
    let mut events = vec![Event::Llm(figures.map(to_ui))];
    for key in odd.iter().filter(|k| !odd_seen.contains(k)) {
        events.push(Event::Log(secondme_ui::LogEntry {
            at_ms: store::now_ms(),
            kind: secondme_ui::LogKind::Info,
            text: format!("cannot read {key} (another program's?)"),
        }));
    }
    *odd_seen = odd;
    Some(events)
}

/// The store's figures in the dashboard's terms.
pub fn to_ui(f: llm_figures::Figures) -> LlmFigures {
    LlmFigures {
        models: f
            .models
            .into_iter()
            .map(|m| ModelFigures {
                name: m.name,
                calls: m.calls,
                errors: m.errors,
                prompt_tokens: m.prompt_tokens,
                completion_tokens: m.completion_tokens,
                cost_micro_usd: m.cost_micro_usd,
                p50_ms: m.p50_ms,
                p95_ms: m.p95_ms,
            })
            .collect(),
        breaker: f.breaker.map(|b| BreakerOpen {
            reason: b.reason,
            until_ms: b.until_ms,
        }),
        replies_per_min: f.minutes.iter().map(|m| m.replies).collect(),
        tokens_per_min: f.minutes.iter().map(|m| m.tokens).collect(),
    }
}
