//! The engine a process runs: the template engine (free, offline, the default)
//! or the language model when one is configured.

use super::llm::config::LlmConfig;
use super::llm::{LlmEngine, LlmShared};
use super::persona_engine::PersonaEngine;
use super::{ImageInput, Reply, ReplyEngine, ReplyRequest};
use crate::learn::LearnConfig;

/// One of the engines, chosen by the configuration.
#[derive(Debug)]
pub enum Engine {
    /// The embedded persona templates.
    Template(PersonaEngine),
    /// A language model.
    Llm(Box<LlmEngine>),
}

impl Engine {
    /// The language model when `llm` is configured, else the templates; both
    /// with the `[learn]` settings (prompt budget, similarity threshold).
    pub fn from_config(llm: Option<&LlmConfig>, learn: &LearnConfig) -> anyhow::Result<Self> {
        match llm {
            None => Ok(Self::Template(PersonaEngine::new(learn))),
            Some(cfg) => {
                tracing::info!(
                    "replies come from the language model at {} ({}; fast {}, strong {})",
                    cfg.base_url,
                    cfg.provider.as_str(),
                    cfg.fast_model,
                    cfg.strong_model
                );
                let engine = LlmEngine::new(cfg.clone())?.with_learning(learn);
                Ok(Self::Llm(Box::new(engine)))
            }
        }
    }

    /// The language model's shared state (figures, breaker), if it is one.
    pub fn llm(&self) -> Option<LlmShared> {
        match self {
            Self::Template(_) => None,
            Self::Llm(e) => Some(e.shared()),
        }
    }
}

impl ReplyEngine for Engine {
    async fn reply(&self, request: &ReplyRequest<'_>) -> anyhow::Result<Reply> {
        match self {
            Self::Template(e) => e.reply(request).await,
            Self::Llm(e) => e.reply(request).await,
        }
    }

    fn instant(&self) -> bool {
        match self {
            Self::Template(e) => e.instant(),
            Self::Llm(e) => e.instant(),
        }
    }

    fn history_len(&self) -> usize {
        match self {
            Self::Template(e) => e.history_len(),
            Self::Llm(e) => e.history_len(),
        }
    }

    fn takes_images(&self) -> bool {
        match self {
            Self::Template(e) => e.takes_images(),
            Self::Llm(e) => e.takes_images(),
        }
    }

    async fn describe_image(
        &self,
        image: &ImageInput<'_>,
    ) -> Result<String, crate::media::UnderstandError> {
        match self {
            Self::Template(e) => e.describe_image(image).await,
            Self::Llm(e) => e.describe_image(image).await,
        }
    }
}
