//! The language-model engine: routes a message to the fast or the strong model
//! (or the template engine), builds the prompt, calls an OpenAI-compatible or an
//! Anthropic endpoint, cleans the answer and paces it like a person.

pub mod anthropic;
pub mod breaker;
pub mod chat;
pub mod clean;
pub mod client;
pub mod config;
pub mod error;
pub mod gist;
pub mod http;
pub mod openai;
pub mod prompt;
pub mod route;
pub mod usage;

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::persona_engine::PersonaEngine;
use super::{ImageInput, Reply, ReplyEngine, ReplyRequest, paced_delay_ms};
use crate::learn::{LearnConfig, Learned};
use crate::llm_usage::{Accounts, BreakerState, Pending};
use crate::media::UnderstandError;
use breaker::Breaker;
use chat::{ChatRequest, Completion, ImagePart};
use client::{ApiKey, ModelClient};
use config::{LlmConfig, Provider};
use error::LlmError;
use route::Route;
use usage::Meter;

pub use super::MIN_TYPING_MS;

/// The engine.
#[derive(Debug)]
pub struct LlmEngine {
    cfg: LlmConfig,
    client: ModelClient,
    shared: LlmShared,
    /// The prompt's size limit, tokens.
    prompt_budget_tokens: usize,
    /// The template engine phatic messages may go to.
    templates: PersonaEngine,
}

/// What the engine shares with the side that writes its figures to Redis and
/// shows its state: plain data behind `Arc`s.
#[derive(Debug, Clone)]
pub struct LlmShared {
    /// Counts per model.
    pub meter: Arc<Meter>,
    /// The circuit breaker.
    pub breaker: Arc<Breaker>,
    /// The daily token budget (0: none).
    pub daily_token_budget: u64,
    /// Price per million tokens (input, output) by model.
    pub prices: std::collections::HashMap<String, [f64; 2]>,
}

/// What the control room shows about the engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LlmStatus {
    /// The breaker.
    pub breaker: BreakerState,
    /// Tokens spent today.
    pub spent_today: u64,
    /// The budget (0: none).
    pub budget: u64,
}

impl LlmShared {
    /// The state now.
    pub fn status(&self) -> LlmStatus {
        LlmStatus {
            breaker: self.breaker.state(),
            spent_today: self.meter.spent_today(),
            budget: self.daily_token_budget,
        }
    }
}

impl Accounts for LlmShared {
    fn take_pending(&self) -> Pending {
        self.meter.take_pending()
    }

    fn restore(&self, pending: Pending) {
        self.meter.restore(pending);
    }

    fn set_spent(&self, day: i64, total: u64) {
        self.meter.set_spent(day, total);
    }

    fn breaker_id(&self) -> &str {
        self.breaker.id()
    }

    fn breaker_state(&self) -> BreakerState {
        self.breaker.state()
    }

    fn price(&self, model: &str) -> Option<[f64; 2]> {
        self.prices.get(model).copied()
    }
}

impl LlmEngine {
    /// An engine for `cfg`, its key read from the variable `cfg.api_key_env`.
    pub fn new(cfg: LlmConfig) -> Result<Self, LlmError> {
        let key = std::env::var(&cfg.api_key_env)
            .ok()
            .filter(|k| !k.trim().is_empty());
        if key.is_none() {
            tracing::warn!(
                "no API key in ${}: calling {} without one (fine for a local server)",
                cfg.api_key_env,
                cfg.base_url
            );
        }
        Self::with_key(cfg, key)
    }

    /// An engine for `cfg` with this key; refused when the key would cross a
    /// network in clear and the config does not say `allow_insecure_http`.
    pub fn with_key(cfg: LlmConfig, key: Option<String>) -> Result<Self, LlmError> {
        let key = key.map(|k| k.trim().to_owned()).filter(|k| !k.is_empty());
        let in_clear = cfg
            .check_key_transport(key.is_some())
            .map_err(|e| LlmError::Config(e.to_string()).redacted(key.as_deref()))?;
        if in_clear {
            tracing::warn!(
                "allow_insecure_http = true: the API key goes in clear over plain http:// to {}",
                cfg.base_url
            );
        }
        let http = http::Http::new(cfg.connect_timeout, http::Proxy::for_url(&cfg.base_url))?;
        let client = ModelClient::new(
            http,
            cfg.provider,
            &cfg.base_url,
            key.map(ApiKey::new),
            cfg.max_retries,
        );
        let shared = LlmShared {
            meter: Arc::new(Meter::default()),
            breaker: Arc::new(Breaker::new(cfg.breaker_cooldown)),
            daily_token_budget: cfg.daily_token_budget,
            prices: cfg.prices.clone(),
        };
        let learn = LearnConfig::default();
        Ok(Self {
            cfg,
            client,
            shared,
            prompt_budget_tokens: learn.prompt_budget_tokens,
            templates: PersonaEngine::new(&learn),
        })
    }

    /// The engine with the `[learn]` settings: the prompt's token budget and the
    /// template engine's similarity threshold.
    pub fn with_learning(mut self, learn: &LearnConfig) -> Self {
        self.prompt_budget_tokens = learn.prompt_budget_tokens;
        self.templates = PersonaEngine::new(learn);
        self
    }

    /// The shared state, for the figures and the banner.
    pub fn shared(&self) -> LlmShared {
        self.shared.clone()
    }

    fn model_for(&self, route: Route) -> (&str, u32) {
        match route {
            Route::Phatic => (&self.cfg.fast_model, self.cfg.fast_max_tokens),
            Route::Substantive => (&self.cfg.strong_model, self.cfg.strong_max_tokens),
        }
    }

    /// One call as every call counts: refused while the breaker is open or the
    /// day's budget is spent; its tokens and time, or its error, in the figures;
    /// a permanent error opens the breaker. With the time it took, ms.
    async fn call(
        &self,
        chat: &ChatRequest,
        image: Option<&ImagePart<'_>>,
    ) -> Result<(Completion, u64), LlmError> {
        self.shared.breaker.check()?;
        let budget = self.cfg.daily_token_budget;
        if budget > 0 && self.shared.meter.spent_today() >= budget {
            return Err(LlmError::BudgetSpent { budget });
        }
        let model = chat.model.as_str();
        let started = Instant::now();
        let deadline = started + self.cfg.timeout;
        match self.client.complete_with(chat, image, deadline).await {
            Ok(c) => {
                let ms = started.elapsed().as_millis() as u64;
                self.shared
                    .meter
                    .record_call(model, c.prompt_tokens, c.completion_tokens, ms);
                Ok((c, ms))
            }
            Err(e) => {
                self.shared.meter.record_error(model);
                if e.permanent() {
                    self.shared.breaker.trip(&e.to_string());
                }
                Err(e)
            }
        }
    }

    async fn generate(&self, request: &ReplyRequest<'_>, route: Route) -> Result<String, LlmError> {
        let (model, max_tokens) = self.model_for(route);
        let (system, turns) = prompt::build(&prompt::PromptInput {
            owner: self.cfg.owner_name.as_deref(),
            message: request.message,
            persona: request.persona,
            context: request.context,
            history: request.history,
            history_len: self.cfg.history_messages,
            max_chars: self.cfg.max_reply_chars,
            learned: request.learned,
            budget_tokens: self.prompt_budget_tokens,
        });
        let chat = ChatRequest {
            model: model.to_owned(),
            system,
            turns,
            max_tokens,
            temperature: 0.7,
        };
        let (c, ms) = self.call(&chat, None).await?;
        tracing::info!(
            "{model} answered in {ms} ms ({} + {} tokens, {}; {} past exchanges, {})",
            c.prompt_tokens,
            c.completion_tokens,
            c.finish_reason.as_deref().unwrap_or("no finish reason"),
            request
                .learned
                .map_or(0, |l| l.examples.len() + l.other_chats.len()),
            learned_style(request.learned)
        );
        let mut names = vec![request.persona_id];
        names.extend(self.cfg.owner_name.as_deref());
        // The person's own past replies are in the prompt as examples,
        // which a reply is meant to resemble, beside what this chat's
        // contact wrote then, which a reply may echo: no leak when it does.
        let mut examples = request.persona.example_messages.clone();
        examples.extend(prompt::example_sides(request.learned));
        let guard = clean::Guard {
            names: &names,
            system: &chat.system,
            examples: &examples,
            contact: request.context.and_then(|c| c.name.as_deref()),
            max_chars: self.cfg.max_reply_chars,
        };
        let cut_off = clean::stopped_at_cap(c.finish_reason.as_deref());
        clean::clean(&c.text, &guard, cut_off).map_err(|why| {
            if clean::is_refusal(why) {
                LlmError::Refused(why)
            } else {
                LlmError::Unusable(why)
            }
        })
    }

    /// The photo as the model takes it: refused for good, before any request,
    /// when images are off, the bytes are none, the type is not one the
    /// provider takes or the photo is over the provider's size limit.
    fn image_part<'a>(&self, image: &ImageInput<'a>) -> Result<ImagePart<'a>, UnderstandError> {
        let refuse = |why: String| Err(UnderstandError::Permanent(why));
        if !self.cfg.images {
            return refuse("the language model takes no images ([llm] images = false)".into());
        }
        if image.bytes.is_empty() {
            return refuse("the photo has no bytes".into());
        }
        let Some(part) = ImagePart::new(image.mime, image.bytes) else {
            return refuse(format!("{:?} is not an image type", image.mime));
        };
        match self.cfg.provider {
            Provider::Anthropic if !anthropic::IMAGE_TYPES.contains(&part.media_type.as_str()) => {
                refuse(format!(
                    "Anthropic takes JPEG, PNG, GIF or WebP images, not {}",
                    part.media_type
                ))
            }
            Provider::Anthropic if part.base64_len() > anthropic::MAX_IMAGE_BASE64 => {
                refuse(format!(
                    "the photo is {} bytes, {} in base64, over the {} Anthropic takes",
                    part.bytes.len(),
                    part.base64_len(),
                    anthropic::MAX_IMAGE_BASE64
                ))
            }
            Provider::OpenAi if part.bytes.len() > openai::MAX_IMAGE_BYTES => refuse(format!(
                "the photo is {} bytes, over the {} OpenAI takes",
                part.bytes.len(),
                openai::MAX_IMAGE_BYTES
            )),
            _ => Ok(part),
        }
    }
}

impl ReplyEngine for LlmEngine {
    async fn reply(&self, request: &ReplyRequest<'_>) -> anyhow::Result<Reply> {
        let started = Instant::now();
        let route = route::route(&request.message.content, request.context);
        if route == Route::Phatic && self.cfg.phatic_to_template {
            return self.templates.reply(request).await;
        }
        let content = self.generate(request, route).await?;
        let jitter = jitter(&request.message.message_id);
        let delay_ms = typing_delay_ms(&content, jitter, started.elapsed(), request.learned);
        Ok(Reply { content, delay_ms })
    }

    fn history_len(&self) -> usize {
        self.cfg.history_messages
    }

    fn takes_images(&self) -> bool {
        self.cfg.images
    }

    /// One call to the strong model with the photo and its caption, counted as
    /// a reply's call is; the answer cleaned into a short line ([`gist::clean`]).
    async fn describe_image(&self, image: &ImageInput<'_>) -> Result<String, UnderstandError> {
        let part = self.image_part(image)?;
        let chat = gist::request(
            &self.cfg.strong_model,
            self.cfg.strong_max_tokens,
            image.caption,
        );
        let (c, ms) = self
            .call(&chat, Some(&part))
            .await
            .map_err(gist::understand_error)?;
        tracing::info!(
            "{} described a photo of {} bytes in {ms} ms ({} + {} tokens)",
            chat.model,
            image.bytes.len(),
            c.prompt_tokens,
            c.completion_tokens
        );
        gist::clean(&c.text).map_err(|why| {
            UnderstandError::Permanent(format!(
                "the model's description of the photo was dropped: {why}"
            ))
        })
    }
}

/// A stable number in `0..1` from the message id, for the human pause.
fn jitter(message_id: &str) -> f64 {
    let h = crate::stable_hash::fnv1a64(message_id.as_bytes());
    (h >> 11) as f64 / (1u64 << 53) as f64
}

/// Which profile the prompt carried, for the log.
fn learned_style(learned: Option<&Learned>) -> &'static str {
    match learned.map(|l| (l.profile.is_some(), l.from_contact)) {
        Some((true, true)) => "the contact's learned style",
        Some((true, false)) => "the overall learned style",
        _ => "no learned style",
    }
}

/// The "typing..." time: a person's pace for `content` (toward the owner's own
/// reply time when learned) less the time already spent generating it, never
/// under [`MIN_TYPING_MS`].
pub fn typing_delay_ms(
    content: &str,
    jitter: f64,
    spent: Duration,
    learned: Option<&Learned>,
) -> u64 {
    let human = paced_delay_ms(content, jitter, learned);
    human
        .saturating_sub(spent.as_millis() as u64)
        .max(MIN_TYPING_MS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typing_time_is_the_human_pace_less_the_generation_floored_at_2s() {
        // 10 words: 3000 ms + a 2000 ms pause at jitter 0.
        let text = "one two three four five six seven eight nine ten";
        assert_eq!(typing_delay_ms(text, 0.0, Duration::ZERO, None), 5000);
        assert_eq!(
            typing_delay_ms(text, 0.0, Duration::from_millis(1500), None),
            3500
        );
        assert_eq!(
            typing_delay_ms(text, 0.0, Duration::from_secs(4), None),
            MIN_TYPING_MS
        );
        assert_eq!(
            typing_delay_ms("ok", 1.0, Duration::from_secs(60), None),
            MIN_TYPING_MS
        );
        // The owner answers this contact in 25 s: halfway from 5 s is 15 s.
        let learned = Learned {
            profile: Some(crate::learn::StyleProfile {
                reply_time_median_s: Some(25.0),
                ..crate::learn::StyleProfile::default()
            }),
            ..Learned::default()
        };
        assert_eq!(
            typing_delay_ms(text, 0.0, Duration::from_secs(1), Some(&learned)),
            14_000
        );
    }
}
