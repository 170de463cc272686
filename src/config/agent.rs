//! The agent's sections of the config: `[llm]` (providers, models, tiers),
//! `[agent]`, `[tools]` and `[sessions]`, and the OpenAI-style environment
//! defaults (`OPENAI_API_KEY`, `OPENAI_BASE_URL`).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::Secret;
use crate::ids::TenantId;

/// The model name configured from `OPENAI_API_KEY` / `OPENAI_BASE_URL` alone.
pub const ENV_DEFAULT_MODEL: &str = "gpt-4o-mini";
/// The provider name configured from the environment.
pub const ENV_PROVIDER: &str = "openai";
/// OpenAI's API, the base URL when `OPENAI_BASE_URL` is not set.
pub const OPENAI_BASE_URL: &str = "https://api.openai.com/v1";

/// The names of the built-in tools, for validating `[tools]`.
pub const BUILTIN_TOOLS: &[&str] = &["current_time", "search_knowledge"];

/// `[llm]`: where answers come from.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LlmConfig {
    /// The model of a request that names none; "" picks the only model.
    pub default_model: String,
    /// Tier hint → model name.
    pub tiers: BTreeMap<Tier, String>,
    /// Provider name → how to reach it.
    pub providers: BTreeMap<String, ProviderConfig>,
    /// Public model name → where it runs.
    pub models: BTreeMap<String, ModelConfig>,
    /// Route name → its targets, split and fallback chain.
    #[serde(default)]
    pub routes: super::routes::Routes,
    /// What a route without `degraded` answers with once everything failed.
    #[serde(default)]
    pub degraded_default: super::routes::Degraded,
    /// Time kept for the last link of a fallback chain: no retry or failover
    /// starts once the deadline is closer than this, so the chain's end (the
    /// extractive answer, or a clear status) still fits.
    #[serde(default = "default_fallback_reserve", with = "humantime_serde")]
    pub fallback_reserve: Duration,
    /// Retries of one target.
    #[serde(default)]
    pub retry: super::routes::RetryConfig,
    /// The circuit breakers.
    #[serde(default)]
    pub breaker: super::routes::BreakerConfig,
}

fn default_fallback_reserve() -> Duration {
    Duration::from_secs(2)
}

/// A tier hint's name in `llm.tiers`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Tier {
    /// Cheapest, fastest.
    Fast,
    /// The default trade-off.
    Balanced,
    /// Most capable.
    Strong,
}

fn default_connect_timeout() -> Duration {
    Duration::from_secs(5)
}
fn default_idle_timeout() -> Duration {
    Duration::from_secs(60)
}
fn default_first_token_timeout() -> Duration {
    Duration::from_secs(60)
}
fn default_total_timeout() -> Duration {
    Duration::from_secs(600)
}
fn default_pool_max_idle() -> usize {
    32
}
fn default_pool_idle_timeout() -> Duration {
    Duration::from_secs(90)
}

/// `[llm.providers.NAME]`: one OpenAI-compatible server.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderConfig {
    /// Base URL including the version path, e.g. `https://api.openai.com/v1`.
    pub base_url: String,
    /// Bearer token (a secret).
    #[serde(default)]
    pub api_key: Option<Secret>,
    /// True for servers that need no key (vLLM, Ollama, llama.cpp).
    #[serde(default)]
    pub keyless: bool,
    /// Limit on establishing a connection.
    #[serde(default = "default_connect_timeout", with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// Limit on waiting for the response headers and for each next chunk.
    #[serde(default = "default_idle_timeout", with = "humantime_serde")]
    pub idle_timeout: Duration,
    /// Limit on waiting for the first piece of the answer (text, tool calls
    /// or the end), from the start of the attempt.
    #[serde(default = "default_first_token_timeout", with = "humantime_serde")]
    pub first_token_timeout: Duration,
    /// Limit on a whole attempt, from its start to its last chunk.
    #[serde(default = "default_total_timeout", with = "humantime_serde")]
    pub total_timeout: Duration,
    /// Inside the cluster's trust boundary (vLLM, Ollama on the cluster's own
    /// nodes): reported per target, for guardrails and pricing.
    #[serde(default)]
    pub local: bool,
    /// Idle connections kept open to this provider.
    #[serde(default = "default_pool_max_idle")]
    pub pool_max_idle_per_host: usize,
    /// How long an idle connection is kept.
    #[serde(default = "default_pool_idle_timeout", with = "humantime_serde")]
    pub pool_idle_timeout: Duration,
    /// The HTTP version spoken to the provider.
    #[serde(default)]
    pub http_version: HttpVersion,
}

/// The HTTP version spoken to a provider.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum HttpVersion {
    /// HTTP/2 when the server offers it during the TLS handshake (OpenAI does),
    /// else HTTP/1.1 (always for `http://` URLs).
    #[default]
    Auto,
    /// HTTP/1.1 only: one connection per call in flight.
    Http1,
    /// HTTP/2 without negotiation ("prior knowledge"), also over `http://`: every
    /// call a stream of one shared connection. For servers known to speak it.
    Http2,
}

/// `[llm.models.NAME]`: a model offered under a public name.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// The provider that serves it.
    pub provider: String,
    /// The provider's id of the model; the public name when empty.
    #[serde(default)]
    pub upstream_model: String,
    /// Tokens the model accepts, input and output together.
    pub context_window: u32,
    /// Most output tokens per answer; also reserved out of the context window.
    pub max_output_tokens: u32,
    /// USD per 1M tokens; unset for the built-in price of the upstream id
    /// (`cost::prices`), or 0 (flagged unpriced) when there is none.
    #[serde(default)]
    pub price: Option<crate::cost::prices::PriceConfig>,
}

impl ModelConfig {
    /// The id sent upstream for the model called `name`.
    pub fn upstream_id<'a>(&'a self, name: &'a str) -> &'a str {
        if self.upstream_model.is_empty() {
            name
        } else {
            &self.upstream_model
        }
    }
}

/// `[agent]`: the agent loop.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    /// Sent first on every model call.
    pub system_prompt: String,
    /// Model calls per turn.
    pub max_steps: u32,
    /// Longest user message, in bytes.
    pub max_message_bytes: usize,
}

/// `[tools]`: which tools are offered and how they run.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ToolsConfig {
    /// Offered when a request names none.
    pub default: Vec<String>,
    /// Limit on one tool call.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// Longest tool result fed back to the model, in bytes.
    pub max_result_bytes: usize,
    /// Tenant → the tools it may use; an unlisted tenant may use every tool.
    pub tenants: BTreeMap<TenantId, Vec<String>>,
}

impl ToolsConfig {
    /// Whether `tenant` may use `tool`.
    pub fn allows(&self, tenant: &TenantId, tool: &str) -> bool {
        self.tenants
            .get(tenant)
            .is_none_or(|allowed| allowed.iter().any(|name| name == tool))
    }
}

/// `[sessions]`: stored conversations.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SessionsConfig {
    /// A session untouched this long is gone.
    #[serde(with = "humantime_serde")]
    pub max_age: Duration,
    /// Messages kept per session.
    pub max_messages: usize,
    /// How often expired sessions are deleted from the store.
    #[serde(with = "humantime_serde")]
    pub sweep_interval: Duration,
}

/// The OpenAI SDK environment variables, read once by `Config::load`.
#[derive(Clone, Debug, Default)]
pub struct OpenAiEnv {
    /// `OPENAI_API_KEY`.
    pub api_key: Option<String>,
    /// `OPENAI_BASE_URL`.
    pub base_url: Option<String>,
}

impl OpenAiEnv {
    /// The variables of this process (empty values count as unset).
    pub fn from_process() -> Self {
        let var = |name| std::env::var(name).ok().filter(|v: &String| !v.is_empty());
        Self {
            api_key: var("OPENAI_API_KEY"),
            base_url: var("OPENAI_BASE_URL"),
        }
    }
}

impl LlmConfig {
    /// As the OpenAI SDKs do: with no provider configured, `OPENAI_API_KEY` and
    /// `OPENAI_BASE_URL` configure provider `openai` serving `gpt-4o-mini`.
    pub fn apply_env(&mut self, env: &OpenAiEnv) {
        if !self.providers.is_empty() || (env.api_key.is_none() && env.base_url.is_none()) {
            return;
        }
        self.providers.insert(
            ENV_PROVIDER.to_owned(),
            ProviderConfig {
                base_url: env
                    .base_url
                    .clone()
                    .unwrap_or_else(|| OPENAI_BASE_URL.to_owned()),
                api_key: env.api_key.clone().map(Secret::new),
                keyless: false,
                connect_timeout: default_connect_timeout(),
                idle_timeout: default_idle_timeout(),
                first_token_timeout: default_first_token_timeout(),
                total_timeout: default_total_timeout(),
                local: false,
                pool_max_idle_per_host: default_pool_max_idle(),
                pool_idle_timeout: default_pool_idle_timeout(),
                http_version: HttpVersion::Auto,
            },
        );
        if self.models.is_empty() {
            self.models.insert(
                ENV_DEFAULT_MODEL.to_owned(),
                ModelConfig {
                    provider: ENV_PROVIDER.to_owned(),
                    upstream_model: String::new(),
                    context_window: 128_000,
                    max_output_tokens: 16_384,
                    price: None,
                },
            );
        }
        if self.default_model.is_empty() {
            ENV_DEFAULT_MODEL.clone_into(&mut self.default_model);
        }
    }

    /// The model answering requests that name none, once validated.
    pub fn default_model_name(&self) -> Option<&str> {
        if !self.default_model.is_empty() {
            return Some(&self.default_model);
        }
        match self.models.keys().collect::<Vec<_>>()[..] {
            [only] => Some(only),
            _ => None,
        }
    }

    /// Problems, each naming its key.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        for (name, provider) in &self.providers {
            let key = format!("llm.providers.{name}");
            if name == crate::llm::extractive::MODEL {
                // The extractive answerer's calls are free and pass no budget:
                // no real provider may take its name.
                problems.push(format!("{key}: the name is reserved; choose another"));
            }
            let url_ok = reqwest::Url::parse(&provider.base_url)
                .is_ok_and(|url| matches!(url.scheme(), "http" | "https"));
            if !url_ok {
                problems.push(format!(
                    "{key}.base_url: {:?} is not an http(s) URL",
                    provider.base_url
                ));
            }
            match (&provider.api_key, provider.keyless) {
                (None, false) => problems.push(format!(
                    "{key}.api_key: provider {name:?} has no API key. Set api_key (for example \
                     {{ env = \"OPENAI_API_KEY\" }}), or keyless = true for a local server that \
                     needs none (vLLM, Ollama){}",
                    if name == ENV_PROVIDER {
                        "; when configured from OPENAI_BASE_URL, set OPENAI_API_KEY too"
                    } else {
                        ""
                    }
                )),
                (Some(_), true) => problems.push(format!(
                    "{key}: keyless = true and an api_key are both set; remove one"
                )),
                _ => {}
            }
            if provider.connect_timeout.is_zero()
                || provider.idle_timeout.is_zero()
                || provider.first_token_timeout.is_zero()
                || provider.total_timeout.is_zero()
            {
                problems.push(format!("{key}: timeouts must be longer than 0s"));
            }
        }
        for (name, model) in &self.models {
            let key = format!("llm.models.{name}");
            if !self.providers.contains_key(&model.provider) {
                problems.push(format!(
                    "{key}.provider: no provider {:?} in llm.providers",
                    model.provider
                ));
            }
            if model.max_output_tokens == 0 {
                problems.push(format!("{key}.max_output_tokens: must be at least 1"));
            }
            if model.context_window <= model.max_output_tokens {
                problems.push(format!(
                    "{key}.context_window: must be larger than max_output_tokens ({})",
                    model.max_output_tokens
                ));
            }
        }
        if !self.providers.is_empty() && self.models.is_empty() {
            problems.push(
                "llm.models: providers are configured but no model; add [llm.models.NAME]"
                    .to_owned(),
            );
        }
        if !self.default_model.is_empty() && !self.is_routable(&self.default_model) {
            problems.push(format!(
                "llm.default_model: no model or route {:?} in llm.models or llm.routes",
                self.default_model
            ));
        }
        if self.models.len() > 1 && self.default_model.is_empty() {
            problems.push(
                "llm.default_model: several models are configured; name the default one".to_owned(),
            );
        }
        for (tier, model) in &self.tiers {
            if !self.is_routable(model) {
                problems.push(format!(
                    "llm.tiers.{}: no model or route {model:?} in llm.models or llm.routes",
                    serde_json::to_value(tier)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_owned))
                        .unwrap_or_default()
                ));
            }
        }
        if self.fallback_reserve.is_zero() {
            problems.push("llm.fallback_reserve: must be longer than 0s".to_owned());
        }
        problems.extend(self.route_problems());
        problems
    }
}

impl AgentConfig {
    /// Problems, each naming its key.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.max_steps == 0 {
            problems.push("agent.max_steps: must be at least 1".to_owned());
        }
        if self.max_message_bytes == 0 {
            problems.push("agent.max_message_bytes: must be at least 1".to_owned());
        }
        problems
    }
}

impl ToolsConfig {
    /// Problems, each naming its key.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        let unknown = |name: &String| !BUILTIN_TOOLS.contains(&name.as_str());
        for name in self.default.iter().filter(|n| unknown(n)) {
            problems.push(format!(
                "tools.default: no tool {name:?}; tools are: {}",
                BUILTIN_TOOLS.join(", ")
            ));
        }
        for (tenant, names) in &self.tenants {
            for name in names.iter().filter(|n| unknown(n)) {
                problems.push(format!(
                    "tools.tenants.{tenant}: no tool {name:?}; tools are: {}",
                    BUILTIN_TOOLS.join(", ")
                ));
            }
        }
        if self.timeout.is_zero() {
            problems.push("tools.timeout: must be longer than 0s".to_owned());
        }
        if self.max_result_bytes == 0 {
            problems.push("tools.max_result_bytes: must be at least 1".to_owned());
        }
        problems
    }
}

impl SessionsConfig {
    /// Problems, each naming its key.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.max_age.is_zero() {
            problems.push("sessions.max_age: must be longer than 0s".to_owned());
        }
        if self.max_messages < 2 {
            problems.push("sessions.max_messages: must be at least 2".to_owned());
        }
        if self.sweep_interval.is_zero() {
            problems.push("sessions.sweep_interval: must be longer than 0s".to_owned());
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use crate::config::{Config, OpenAiEnv};

    fn env(api_key: Option<&str>, base_url: Option<&str>) -> OpenAiEnv {
        OpenAiEnv {
            api_key: api_key.map(str::to_owned),
            base_url: base_url.map(str::to_owned),
        }
    }

    #[test]
    fn the_openai_variables_alone_configure_gpt_4o_mini() {
        let config = Config::from_toml_with_env("", &env(Some("sk-1"), None)).unwrap();
        let provider = &config.llm.providers["openai"];
        assert_eq!(provider.base_url, "https://api.openai.com/v1");
        assert_eq!(provider.api_key.as_ref().unwrap().expose(), "sk-1");
        assert_eq!(config.llm.default_model_name(), Some("gpt-4o-mini"));
        assert_eq!(config.llm.models["gpt-4o-mini"].provider, "openai");
        // The key never shows in a dump.
        assert!(!config.redacted_json().to_string().contains("sk-1"));

        let config =
            Config::from_toml_with_env("", &env(Some("sk-1"), Some("http://127.0.0.1:8000/v1")))
                .unwrap();
        assert_eq!(
            config.llm.providers["openai"].base_url,
            "http://127.0.0.1:8000/v1"
        );
    }

    #[test]
    fn configured_providers_take_precedence_over_the_environment() {
        let toml = r#"
[llm.providers.local]
base_url = "http://127.0.0.1:11434/v1"
keyless = true
[llm.models.llama]
provider = "local"
context_window = 8192
max_output_tokens = 1024
"#;
        let config = Config::from_toml_with_env(toml, &env(Some("sk-1"), None)).unwrap();
        assert_eq!(config.llm.providers.len(), 1);
        assert_eq!(config.llm.default_model_name(), Some("llama"));
    }

    #[test]
    fn without_any_llm_config_there_is_no_model() {
        let config = Config::from_toml("").unwrap();
        assert!(config.llm.models.is_empty());
        assert_eq!(config.llm.default_model_name(), None);
    }

    #[test]
    fn model_and_tool_mistakes_are_named() {
        let cases = [
            (
                "[llm.providers.p]\nbase_url = \"ftp://x\"\nkeyless = true\n[llm.models.m]\nprovider = \"p\"\ncontext_window = 10\nmax_output_tokens = 5",
                "llm.providers.p.base_url",
            ),
            (
                "[llm.providers.p]\nbase_url = \"http://x/v1\"\nkeyless = true\n[llm.models.m]\nprovider = \"q\"\ncontext_window = 10\nmax_output_tokens = 5",
                "llm.models.m.provider",
            ),
            (
                "[llm.providers.p]\nbase_url = \"http://x/v1\"\nkeyless = true\n[llm.models.m]\nprovider = \"p\"\ncontext_window = 10\nmax_output_tokens = 10",
                "llm.models.m.context_window",
            ),
            (
                "[llm.providers.p]\nbase_url = \"http://x/v1\"\nkeyless = true\n[llm.models.m]\nprovider = \"p\"\ncontext_window = 10\nmax_output_tokens = 5\n[llm.tiers]\nfast = \"n\"",
                "llm.tiers.fast",
            ),
            (
                "[llm.providers.p]\nbase_url = \"http://x/v1\"\napi_key = { env = \"AGENTD_TEST_UNSET_VARIABLE\" }",
                "llm.providers.p.api_key",
            ),
            ("[tools]\ndefault = [\"rm_rf\"]", "tools.default"),
            ("[tools.tenants]\nacme = [\"rm_rf\"]", "tools.tenants.acme"),
            ("[agent]\nmax_steps = 0", "agent.max_steps"),
            ("[sessions]\nmax_messages = 1", "sessions.max_messages"),
            (
                "[sessions]\nsweep_interval = \"0s\"",
                "sessions.sweep_interval",
            ),
        ];
        for (toml, key) in cases {
            let err = Config::from_toml(toml).unwrap_err().to_string();
            assert!(err.contains(key), "{key}: {err}");
        }
    }
}
