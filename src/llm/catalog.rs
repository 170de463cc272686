//! The models and routes callers can choose, by public name. Providers are
//! built here, by [`build_provider`], each behind the per-call chain; every
//! model and route is then a [`RouteProvider`] of the [`Router`], so each name
//! answers through its route's retries, breakers and fallbacks.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::chain::{CallChain, Chained};
use super::extractive::{self, ExtractiveProvider};
use super::openai::{OpenAiProvider, OpenAiSettings};
use super::router::{RouteProvider, Router, TargetSpec};
use super::{LlmError, LlmProvider};
use crate::clock::Clock;
use crate::config::{LlmConfig, ProviderConfig, Tier};
use crate::telemetry::resilience::RouterMetrics;
use crate::tokenizer::Encoding;

/// A model or route ready to be called.
#[derive(Clone, Debug)]
pub struct Model {
    /// The public name callers use.
    pub name: String,
    /// The provider's id of the model (for a route, of its first target; each
    /// attempt sends its own target's).
    pub upstream_id: String,
    /// The provider serving it: its route.
    pub provider: Arc<dyn LlmProvider>,
    /// Tokens it accepts, input and output together (for a route, the
    /// smallest of its chain, so a request fitted for it fits every target).
    pub context_window: u32,
    /// Most output tokens per answer (for a route, the smallest of its chain).
    pub max_output_tokens: u32,
    /// How its tokens are counted (for a route, as its first target counts).
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

/// Every configured model and route; never empty.
#[derive(Debug)]
pub struct ModelCatalog {
    models: BTreeMap<String, Model>,
    default: String,
    tiers: BTreeMap<Tier, String>,
    router: Arc<Router>,
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
    /// Builds a provider per configured provider, each behind `chain`, the
    /// router over them, and a route provider per model and route. With no
    /// model configured, the catalog holds the extractive answerer alone
    /// (DESIGN: the embedded default answers from the knowledge base). The
    /// config must have been validated.
    pub fn from_config(
        config: &LlmConfig,
        clock: &Clock,
        chain: &CallChain,
        metrics: RouterMetrics,
    ) -> anyhow::Result<Self> {
        if config.models.is_empty() {
            return Ok(Self::extractive(config, clock, chain, metrics));
        }
        let mut providers = BTreeMap::new();
        for (name, provider) in &config.providers {
            let upstream = build_provider(name, provider, clock)
                .map_err(|err| anyhow::anyhow!("llm.providers.{name}: {err}"))?;
            providers.insert(
                name.clone(),
                TargetSpec {
                    provider: Arc::new(Chained::new(chain.for_provider(name), upstream)),
                    provider_name: name.clone(),
                    local: provider.local,
                    first_token_timeout: provider.first_token_timeout,
                    total_timeout: provider.total_timeout,
                },
            );
        }
        let extractive: Arc<dyn LlmProvider> = Arc::new(Chained::new(
            chain.for_provider(extractive::MODEL),
            Arc::new(ExtractiveProvider::fallback()),
        ));
        let router = Arc::new(Router::new(config, &providers, extractive, clock, metrics)?);
        let mut models = BTreeMap::new();
        for route in router.routes() {
            let Some(first) = route.targets.first() else {
                anyhow::bail!("llm.routes.{}: no target", route.name);
            };
            let smallest = |f: fn(&super::router::Target) -> u32| {
                route.chain.iter().map(|t| f(t)).min().unwrap_or(0)
            };
            models.insert(
                route.name.clone(),
                Model {
                    name: route.name.clone(),
                    upstream_id: first.upstream_id.clone(),
                    provider: Arc::new(RouteProvider::new(router.clone(), route.clone())),
                    context_window: smallest(|t| t.context_window),
                    max_output_tokens: smallest(|t| t.max_output_tokens),
                    encoding: first.encoding,
                },
            );
        }
        let default = match config.default_model_name() {
            Some(name) => name.to_owned(),
            None => anyhow::bail!("llm.default_model: no default model among several"),
        };
        Ok(Self {
            models,
            default,
            tiers: config.tiers.clone(),
            router,
        })
    }

    /// The catalog of an instance with no LLM: the extractive answerer, as
    /// the only target of the only route.
    fn extractive(
        config: &LlmConfig,
        clock: &Clock,
        chain: &CallChain,
        metrics: RouterMetrics,
    ) -> Self {
        let spec = TargetSpec {
            provider: Arc::new(Chained::new(
                chain.for_provider(extractive::MODEL),
                Arc::new(ExtractiveProvider::default()),
            )),
            provider_name: extractive::MODEL.to_owned(),
            local: true,
            first_token_timeout: std::time::Duration::from_secs(60),
            total_timeout: std::time::Duration::from_secs(600),
        };
        let router = Arc::new(Router::extractive_only(&spec, config, clock, metrics));
        let mut models = BTreeMap::new();
        for route in router.routes() {
            models.insert(
                route.name.clone(),
                Model {
                    name: route.name.clone(),
                    upstream_id: extractive::MODEL.to_owned(),
                    provider: Arc::new(RouteProvider::new(router.clone(), route.clone())),
                    context_window: 128_000,
                    max_output_tokens: 4_096,
                    encoding: Encoding::O200k,
                },
            );
        }
        Self {
            default: extractive::MODEL.to_owned(),
            models,
            tiers: BTreeMap::new(),
            router,
        }
    }

    /// The configured provider name of the model (a route's target) `target`.
    pub fn provider_of(&self, target: &str) -> Option<String> {
        self.router()
            .targets()
            .find(|t| t.name == target)
            .map(|t| t.provider_name.clone())
    }

    /// The router over every model and route.
    pub fn router(&self) -> &Arc<Router> {
        &self.router
    }

    /// Every configured model and route.
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
        let catalog = ModelCatalog::from_config(
            &config.llm,
            &Clock::system(),
            &CallChain::default(),
            RouterMetrics::default(),
        )
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
