//! A simulated WhatsApp gateway for the demo: rotating login codes until the code
//! is "scanned", then scripted traffic from `assets/demo-script.json` at human pace
//! (with a takeover and a burst that trips the rate limit), and a sender that
//! "delivers" the twin's replies and echoes them back as `fromMe` the way WhatsApp does.

use std::time::Duration;

use crate::connection::Con;
use anyhow::{Context, Result};
use base64::Engine;
use redis::AsyncCommands;
use redis::streams::{StreamReadOptions, StreamReadReply};
use serde::Deserialize;
use tokio::sync::watch;

use super::Gateway;
use crate::schema::{self, Direction, QrEvent, QueueMessage, media};
use crate::seal::SessionKey;
use crate::store::{self, queue, session};

/// One scripted message.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Step {
    /// Wait before it, ms.
    pub after_ms: u64,
    /// Contact id.
    pub contact: String,
    /// Text.
    pub content: String,
    /// Typed by the person on the phone (a takeover).
    #[serde(default)]
    pub from_me: bool,
    /// Send it this many times in a row (a burst).
    #[serde(default)]
    pub burst: Option<u32>,
    /// A voice note this long, seconds, with `content` as its caption: the
    /// demo writes its bytes as the gateway does (they hold no speech, so
    /// without a transcription endpoint it is left to the operator).
    #[serde(default)]
    pub voice_seconds: Option<u32>,
}

/// The demo script.
#[derive(Debug, Clone, Deserialize)]
pub struct Script {
    /// Contacts in the demo.
    pub contacts: Vec<String>,
    /// Contacts the twin may answer.
    pub enabled: Vec<String>,
    /// The traffic, replayed in a loop.
    pub steps: Vec<Step>,
}

impl Script {
    /// The shipped demo script.
    pub fn shipped() -> Result<Self> {
        serde_json::from_str(include_str!("../../assets/demo-script.json"))
            .context("assets/demo-script.json is invalid")
    }
}

/// The MIME type of WhatsApp's voice notes.
const VOICE_NOTE_TYPE: &str = "audio/ogg; codecs=opus";

/// Writes a voice note's bytes before its entry, as the gateway does: an Ogg
/// page header then silence, about as long as a real note of that length.
async fn store_voice_note(con: &mut Con, message_id: &str, seconds: u32) -> Result<()> {
    let mut bytes = b"OggS".to_vec();
    bytes.resize(4 + 2_000 * seconds.max(1) as usize, 0);
    let _: () = redis::cmd("SET")
        .arg(schema::media_key(message_id))
        .arg(bytes)
        .arg("PX")
        .arg(media::MEDIA_TTL_MS)
        .query_async(con)
        .await?;
    Ok(())
}

/// The simulated gateway.
pub struct Simulator {
    con: Con,
    user_id: String,
    key: SessionKey,
    script: Script,
    /// How long after the first code the simulated phone scans it.
    pub scan_after: Duration,
    acked_trim: bool,
}

impl Simulator {
    /// A simulator writing to `con` for `user_id`.
    pub fn new(con: Con, user_id: &str, script: Script, acked_trim: bool) -> Self {
        Self {
            con,
            user_id: user_id.to_owned(),
            key: SessionKey::generate(),
            script,
            scan_after: Duration::from_secs(8),
            acked_trim,
        }
    }

    async fn login(&mut self) -> Result<()> {
        let started = tokio::time::Instant::now();
        let mut n = 0u32;
        while started.elapsed() < self.scan_after {
            // WhatsApp's rotation: the first code lasts about 60 s, later ones about 20 s.
            let expires_in = if n == 0 { 60 } else { 20 };
            let code = format!(
                "2@{},{},{}",
                random_token(24),
                random_token(32),
                random_token(16)
            );
            let payload = serde_json::to_string(&QrEvent {
                qr_code: base64::engine::general_purpose::STANDARD.encode(code),
                expires_in,
            })?;
            let _: () = self
                .con
                .pset_ex(
                    schema::qr_key(&self.user_id),
                    &payload,
                    u64::from(expires_in) * 1000,
                )
                .await?;
            let _: i64 = self.con.publish(schema::channel_qr(), payload).await?;
            n += 1;
            let wait = Duration::from_secs(u64::from(expires_in)).min(self.scan_after);
            tokio::time::sleep(wait.saturating_sub(started.elapsed().min(wait))).await;
        }
        session::write(
            &mut self.con,
            &self.user_id,
            &self.key,
            random_token(48).as_bytes(),
            store::now_ms(),
        )
        .await?;
        let _: () = self.con.del(schema::qr_key(&self.user_id)).await?;
        Ok(())
    }

    async fn traffic(mut con: Con, script: Script, acked: bool) -> Result<()> {
        if script.steps.is_empty() {
            // Nothing to replay; an empty loop would spin without ever yielding.
            return std::future::pending().await;
        }
        let mut seq = 0u64;
        loop {
            for step in &script.steps {
                tokio::time::sleep(Duration::from_millis(step.after_ms)).await;
                for _ in 0..step.burst.unwrap_or(1) {
                    seq += 1;
                    let message = QueueMessage {
                        message_id: format!("sim_{}_{seq}", store::now_ms()),
                        contact_id: step.contact.clone(),
                        content: step.content.clone(),
                        timestamp: store::now_ms(),
                        direction: if step.from_me {
                            Direction::Outgoing
                        } else {
                            Direction::Incoming
                        },
                        from_me: step.from_me,
                    };
                    let mut xadd = queue::xadd(&message, acked);
                    if let Some(seconds) = step.voice_seconds {
                        store_voice_note(&mut con, &message.message_id, seconds).await?;
                        xadd.arg(media::MEDIA_TYPE_FIELD)
                            .arg(VOICE_NOTE_TYPE)
                            .arg(media::MEDIA_SECONDS_FIELD)
                            .arg(seconds);
                    }
                    let _: String = xadd.query_async(&mut con).await?;
                }
            }
        }
    }

    /// Reads the twin's replies, "sends" them after their typing delay (shortened
    /// for the demo), records them in `SENT:{id}` and echoes them as WhatsApp does.
    async fn sender(mut con: Con, acked: bool) -> Result<()> {
        let mut last = "$".to_owned();
        loop {
            let opts = StreamReadOptions::default().count(100).block(1000);
            let reply: Option<StreamReadReply> = con
                .xread_options(&[schema::queue_responses()], &[last.as_str()], &opts)
                .await?;
            for entry in reply
                .map(|r| r.keys)
                .unwrap_or_default()
                .into_iter()
                .flat_map(|k| k.ids)
            {
                last = entry.id.clone();
                let get = |f: &str| entry.get::<String>(f).unwrap_or_default();
                let delay: u64 = get(schema::response_fields::DELAY_MS).parse().unwrap_or(0);
                tokio::time::sleep(Duration::from_millis(delay / 8)).await;
                let wa_id = format!("wa_{}", get(schema::response_fields::REPLY_ID));
                let _: () = con
                    .set_ex(schema::sent_key(&wa_id), 1, schema::SENT_TTL_S as u64)
                    .await?;
                let echo = QueueMessage {
                    message_id: wa_id,
                    contact_id: get(schema::response_fields::CONTACT_ID),
                    content: get(schema::response_fields::CONTENT),
                    timestamp: store::now_ms(),
                    direction: Direction::Outgoing,
                    from_me: true,
                };
                let _: String = queue::xadd(&echo, acked).query_async(&mut con).await?;
            }
        }
    }
}

impl Simulator {
    /// Resolves when the session is gone (logged out, expired, or Redis lost it).
    async fn session_gone(mut con: Con, user_id: String) {
        let key = schema::session_key(&user_id);
        loop {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let exists: redis::RedisResult<bool> = con.exists(&key).await;
            if let Ok(false) = exists {
                tracing::info!("simulated gateway: {key} is gone; showing login codes again");
                return;
            }
        }
    }
}

impl Gateway for Simulator {
    async fn run(mut self, mut stop: watch::Receiver<bool>) -> Result<()> {
        let work = async {
            // Like WhatsApp: no traffic while logged out; a lost session brings the codes back.
            loop {
                while let Err(e) = self.login().await {
                    tracing::warn!("simulated gateway (login): {e:#}; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                let (con, script, acked) = (self.con.clone(), self.script.clone(), self.acked_trim);
                let traffic = retry("traffic", || {
                    Self::traffic(con.clone(), script.clone(), acked)
                });
                let sender = retry("sender", || Self::sender(con.clone(), acked));
                tokio::select! {
                    _ = async { tokio::join!(traffic, sender) } => {}
                    _ = Self::session_gone(con.clone(), self.user_id.clone()) => {}
                }
            }
        };
        tokio::select! {
            r = work => r,
            _ = stop.changed() => Ok(()),
        }
    }
}

/// Runs `task` again a second after each failure (Redis away): the demo goes on.
async fn retry<F, Fut>(what: &str, mut task: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<()>>,
{
    loop {
        match task().await {
            Ok(()) => return,
            Err(e) => {
                tracing::warn!("simulated gateway ({what}): {e:#}; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

/// Random URL-safe text of `len` characters (for simulated codes and tokens).
fn random_token(len: usize) -> String {
    use aes_gcm::aead::rand_core::RngCore;
    let mut bytes = vec![0u8; len];
    aes_gcm::aead::OsRng.fill_bytes(&mut bytes);
    let mut text = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    text.truncate(len);
    text
}
