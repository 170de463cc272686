//! The models callers can choose, by public name, each bound to its provider,
//! upstream id, context window and token encoding.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::context::{ContextWindow, Encoding};
use crate::config::{LlmConfig, Tier};
use crate::llm::LlmProvider;
use crate::llm::openai::{OpenAiProvider, OpenAiSettings};

/// A model ready to be called.
#[derive(Clone, Debug)]
pub struct Model {
    /// The public name callers use.
    pub name: String,
    /// The provider's id of the model.
    pub upstream_id: String,
    /// The provider serving it.
    pub provider: Arc<dyn LlmProvider>,
    /// Tokens it accepts, input and output together.
    pub context_window: u32,
    /// Most output tokens per answer.
    pub max_output_tokens: u32,
    /// How its tokens are counted.
    pub encoding: Encoding,
}

impl Model {
    /// The window for answers of at most `max_output` tokens.
    pub fn window(&self, max_output: u32) -> ContextWindow {
        ContextWindow {
            context_tokens: self.context_window as usize,
            reserved_output: max_output as usize,
        }
    }
}

/// How a request chooses its model.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ModelChoice {
    /// The configured default.
    Default,
    /// A public model name.
    Named(String),
    /// A tier hint.
    Tier(Tier),
}

/// Every configured model.
#[derive(Debug, Default)]
pub struct ModelCatalog {
    models: BTreeMap<String, Model>,
    default: Option<String>,
    tiers: BTreeMap<Tier, String>,
}

/// Why a model could not be chosen.
#[derive(Debug, PartialEq, Eq)]
pub enum ModelLookupError {
    /// No model is configured at all.
    NoneConfigured,
    /// The named model is not configured; the known names are listed.
    Unknown(String),
}

impl ModelCatalog {
    /// Builds a provider (with its own connection pool) per configured provider
    /// and binds each model to it. The config must have been validated.
    pub fn from_config(config: &LlmConfig) -> anyhow::Result<Self> {
        let mut providers: BTreeMap<&str, Arc<dyn LlmProvider>> = BTreeMap::new();
        for (name, provider) in &config.providers {
            let built = OpenAiProvider::new(OpenAiSettings {
                name: name.clone(),
                base_url: provider.base_url.clone(),
                api_key: provider.api_key.clone(),
                connect_timeout: provider.connect_timeout,
                idle_timeout: provider.idle_timeout,
                pool_max_idle_per_host: provider.pool_max_idle_per_host,
                pool_idle_timeout: provider.pool_idle_timeout,
                http_version: provider.http_version,
            })
            .map_err(|err| anyhow::anyhow!("llm.providers.{name}: {err}"))?;
            providers.insert(name, Arc::new(built));
        }
        let mut models = BTreeMap::new();
        for (name, model) in &config.models {
            let provider = providers
                .get(model.provider.as_str())
                .ok_or_else(|| anyhow::anyhow!("llm.models.{name}.provider: unknown provider"))?;
            let upstream_id = model.upstream_id(name).to_owned();
            models.insert(
                name.clone(),
                Model {
                    name: name.clone(),
                    encoding: Encoding::for_model(&upstream_id),
                    upstream_id,
                    provider: provider.clone(),
                    context_window: model.context_window,
                    max_output_tokens: model.max_output_tokens,
                },
            );
        }
        Ok(Self {
            models,
            default: config.default_model_name().map(str::to_owned),
            tiers: config.tiers.clone(),
        })
    }

    /// A catalog of the given models (for tests and embedding), the first the default.
    pub fn of(models: Vec<Model>) -> Self {
        Self {
            default: models.first().map(|m| m.name.clone()),
            models: models.into_iter().map(|m| (m.name.clone(), m)).collect(),
            tiers: BTreeMap::new(),
        }
    }

    /// Whether any model is configured.
    pub fn is_empty(&self) -> bool {
        self.models.is_empty()
    }

    /// Every configured model.
    pub fn models(&self) -> impl Iterator<Item = &Model> {
        self.models.values()
    }

    /// The model a request chose.
    pub fn choose(&self, choice: &ModelChoice) -> Result<&Model, ModelLookupError> {
        if self.models.is_empty() {
            return Err(ModelLookupError::NoneConfigured);
        }
        let name = match choice {
            ModelChoice::Named(name) => Some(name),
            ModelChoice::Tier(tier) => self.tiers.get(tier).or(self.default.as_ref()),
            ModelChoice::Default => self.default.as_ref(),
        };
        let known = || self.models.keys().cloned().collect::<Vec<_>>().join(", ");
        match name {
            Some(name) => self
                .models
                .get(name)
                .ok_or_else(|| ModelLookupError::Unknown(known())),
            None => Err(ModelLookupError::Unknown(known())),
        }
    }
}
