//! The models callers can choose, by public name, each bound to its provider
//! (an upstream behind the per-call chain), upstream id, context window and
//! token encoding. Providers are built here, by [`build_provider`], the one
//! constructor that later work (the router) wraps.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::chain::{CallChain, Chained};
use super::extractive::{self, ExtractiveProvider};
use super::openai::{OpenAiProvider, OpenAiSettings};
use super::{LlmError, LlmProvider};
use crate::clock::Clock;
use crate::config::{LlmConfig, ProviderConfig, Tier};
use crate::tokenizer::Encoding;

/// A model ready to be called.
#[derive(Clone, Debug)]
pub struct Model {
    /// The public name callers use.
    pub name: String,
    /// The provider's id of the model.
    pub upstream_id: String,
    /// The provider serving it, behind the per-call chain.
    pub provider: Arc<dyn LlmProvider>,
    /// Tokens it accepts, input and output together.
    pub context_window: u32,
    /// Most output tokens per answer.
    pub max_output_tokens: u32,
    /// How its tokens are counted.
    pub encoding: Encoding,
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

/// A model name the catalog does not have.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown model; configured models: {known}")]
pub struct UnknownModel {
    /// The configured names, comma-separated.
    pub known: String,
}

/// Every configured model; never empty.
#[derive(Debug)]
pub struct ModelCatalog {
    models: BTreeMap<String, Model>,
    default: String,
    tiers: BTreeMap<Tier, String>,
}

/// The provider for one `[llm.providers.NAME]` entry: an OpenAI-compatible
/// server with its own connection pool, its timeouts on `clock`.
pub fn build_provider(
    name: &str,
    config: &ProviderConfig,
    clock: &Clock,
) -> Result<Arc<dyn LlmProvider>, LlmError> {
    let provider = OpenAiProvider::new(OpenAiSettings {
        name: name.to_owned(),
        base_url: config.base_url.clone(),
        api_key: config.api_key.clone(),
        connect_timeout: config.connect_timeout,
        idle_timeout: config.idle_timeout,
        pool_max_idle_per_host: config.pool_max_idle_per_host,
        pool_idle_timeout: config.pool_idle_timeout,
        http_version: config.http_version,
        clock: clock.clone(),
    })?;
    Ok(Arc::new(provider))
}

impl ModelCatalog {
    /// Builds a provider per configured provider, each behind `chain`, and binds
    /// each model to its provider. With no model configured, the catalog holds
    /// the extractive answerer alone (DESIGN: the embedded default answers from
    /// the knowledge base). The config must have been validated.
    pub fn from_config(
        config: &LlmConfig,
        clock: &Clock,
        chain: &CallChain,
    ) -> anyhow::Result<Self> {
        let mut providers: BTreeMap<&str, Arc<dyn LlmProvider>> = BTreeMap::new();
        for (name, provider) in &config.providers {
            let upstream = build_provider(name, provider, clock)
                .map_err(|err| anyhow::anyhow!("llm.providers.{name}: {err}"))?;
            providers.insert(name, Arc::new(Chained::new(chain.clone(), upstream)));
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
        if models.is_empty() {
            return Ok(Self::extractive(chain));
        }
        let default = match config.default_model_name() {
            Some(name) => name.to_owned(),
            None => anyhow::bail!("llm.default_model: no default model among several"),
        };
        Ok(Self {
            models,
            default,
            tiers: config.tiers.clone(),
        })
    }

    /// The catalog of an instance with no LLM: the extractive answerer.
    fn extractive(chain: &CallChain) -> Self {
        let provider: Arc<dyn LlmProvider> = Arc::new(Chained::new(
            chain.clone(),
            Arc::new(ExtractiveProvider::default()),
        ));
        let model = Model {
            name: extractive::MODEL.to_owned(),
            upstream_id: extractive::MODEL.to_owned(),
            provider,
            context_window: 128_000,
            max_output_tokens: 4_096,
            encoding: Encoding::O200k,
        };
        Self {
            default: model.name.clone(),
            models: BTreeMap::from([(model.name.clone(), model)]),
            tiers: BTreeMap::new(),
        }
    }

    /// Every configured model.
    pub fn models(&self) -> impl Iterator<Item = &Model> {
        self.models.values()
    }

    /// The model a request chose. A tier the configuration does not map falls
    /// back to the default model.
    pub fn choose(&self, choice: &ModelChoice) -> Result<&Model, UnknownModel> {
        let name = match choice {
            ModelChoice::Named(name) => name,
            ModelChoice::Tier(tier) => self.tiers.get(tier).unwrap_or(&self.default),
            ModelChoice::Default => &self.default,
        };
        self.models.get(name).ok_or_else(|| UnknownModel {
            known: self.models.keys().cloned().collect::<Vec<_>>().join(", "),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    #[test]
    fn with_no_llm_configured_the_extractive_answerer_is_the_default() {
        let config = Config::from_toml("").unwrap();
        let catalog =
            ModelCatalog::from_config(&config.llm, &Clock::system(), &CallChain::default())
                .unwrap();
        let model = catalog.choose(&ModelChoice::Default).unwrap();
        assert_eq!(model.name, extractive::MODEL);
        assert_eq!(
            catalog.choose(&ModelChoice::Tier(Tier::Fast)).unwrap().name,
            extractive::MODEL
        );
        let unknown = catalog
            .choose(&ModelChoice::Named("gpt-5".into()))
            .unwrap_err();
        assert_eq!(unknown.known, "extractive");
    }
}
