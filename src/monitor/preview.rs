//! The control room's preview (its `w` key): what the twin would answer the
//! selected contact's last message now, written by the engine the way the
//! worker writes it (`worker::preview`, which `secondme ask` uses too), sent
//! nowhere. The text goes to the screen only, never to the log.

use std::sync::Arc;

use crate::connection::Con;
use secondme_ui::Event;
use tokio::sync::mpsc::UnboundedSender;

use crate::config::Config;
use crate::reply::engine::Engine;
use crate::worker::personas::Personas;
use crate::worker::preview;

/// Computes the preview for `contact_id` in the background; the answer comes
/// back as [`Event::Preview`].
pub fn spawn(con: &Con, config: &Arc<Config>, contact_id: String, tx: &UnboundedSender<Event>) {
    let mut con = con.clone();
    let config = Arc::clone(config);
    let tx = tx.clone();
    tokio::spawn(async move {
        let reply = compute(&mut con, &config, &contact_id).await;
        let _ = tx.send(Event::Preview { contact_id, reply });
    });
}

/// The twin's answer, or why there is none (an engine's error holds no chat text).
async fn compute(con: &mut Con, config: &Config, contact_id: &str) -> Result<String, String> {
    let engine = Engine::from_config(config.llm.as_ref(), &config.learn)
        .map_err(|e| format!("no reply engine: {e:#}"))?;
    let mut personas = Personas::new(&config.default_persona, &config.user_id);
    match preview::reply(con, &engine, &mut personas, &config.learn, contact_id, None).await {
        Ok(Some(p)) => Ok(p.reply.content),
        Ok(None) => Err("no message of theirs to answer yet".to_owned()),
        Err(e) => Err(format!("{e:#}")),
    }
}
