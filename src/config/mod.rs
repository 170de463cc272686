//! Typed configuration: the embedded defaults (`config/default.toml`), then a TOML
//! file, then `AGENTD__SECTION__KEY` environment variables. Unknown keys and invalid
//! values are errors that name the key.

mod agent;
pub mod cost;
pub mod guardrails;
mod retrieval;
mod routes;
mod secret;
mod server;
mod state;

use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Toml};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub use agent::{
    AgentConfig, BUILTIN_TOOLS, ENV_DEFAULT_MODEL, HttpVersion, LlmConfig, ModelConfig, OpenAiEnv,
    ProviderConfig, SessionsConfig, Tier, ToolsConfig,
};
pub use retrieval::{EmbeddingsConfig, RetrievalConfig};
pub use routes::{
    BreakerConfig, Degraded, MAX_FALLBACK_DEPTH, RetryConfig, RouteConfig, implicit_route,
};
pub use secret::{Secret, SecretSource};
pub use server::{MAX_WORKER_THREADS, ServerConfig, TlsConfig, TlsFiles};
pub use state::{MAX_REDIS_POOL_SIZE, StateBackend, StateConfig, redacted_url};

use crate::identity::Role;
use crate::ids::TenantId;

/// The default configuration, with a comment on every key.
pub const DEFAULT_TOML: &str = include_str!("../../config/default.toml");

/// Prefix of the environment variables that override config keys.
pub const ENV_PREFIX: &str = "AGENTD__";

/// The whole configuration of one agentd instance.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Listeners, limits and shutdown.
    pub server: ServerConfig,
    /// Local state.
    pub storage: StorageConfig,
    /// Where shared state lives: embedded or Redis.
    pub state: StateConfig,
    /// API keys, tenants and roles.
    pub auth: AuthConfig,
    /// Log format and filter.
    pub log: LogConfig,
    /// LLM providers and models.
    pub llm: LlmConfig,
    /// The agent loop.
    pub agent: AgentConfig,
    /// Tools offered to the model.
    pub tools: ToolsConfig,
    /// Stored conversations.
    pub sessions: SessionsConfig,
    /// Documents and search.
    pub retrieval: RetrievalConfig,
    /// Budgets and rate limits.
    pub cost: cost::CostConfig,
    /// What leaves for models and what returns to users.
    #[serde(default)]
    pub guardrails: guardrails::GuardrailsConfig,
}

/// `[storage]`: local state.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StorageConfig {
    /// Directory for local state.
    pub data_dir: PathBuf,
}

/// `[auth]`: API keys, tenants and roles.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// Whether calls need an API key.
    pub enabled: bool,
    /// The accepted keys.
    pub keys: Vec<ApiKeyConfig>,
}

/// One accepted API key, stored as the SHA-256 of the key.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyConfig {
    /// A label for logs.
    pub name: String,
    /// The tenant the key acts for.
    pub tenant: TenantId,
    /// The roles the key holds.
    pub roles: Vec<Role>,
    /// The SHA-256 of the key, hex encoded (a secret).
    pub sha256: KeyHash,
}

/// The SHA-256 of an API key, read from a secret; prints as `***`.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "SecretSource")]
pub struct KeyHash([u8; 32]);

impl KeyHash {
    /// The hash of `key`, as `agentd keys hash` prints it and the auth layer compares it.
    pub fn of_key(key: &str) -> Self {
        Self(Sha256::digest(key.as_bytes()).into())
    }

    /// The raw digest.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The digest in lowercase hex.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl TryFrom<SecretSource> for KeyHash {
    type Error = String;

    fn try_from(source: SecretSource) -> Result<Self, Self::Error> {
        let secret = source.resolve()?;
        let mut digest = [0u8; 32];
        hex::decode_to_slice(secret.expose().trim(), &mut digest).map_err(|_| {
            "not a SHA-256 digest: expected 64 hex characters as printed by `agentd keys hash`"
                .to_owned()
        })?;
        Ok(Self(digest))
    }
}

impl std::fmt::Debug for KeyHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

impl Serialize for KeyHash {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str("***")
    }
}

/// `[log]`: log format and filter.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// Output format.
    pub format: LogFormat,
    /// EnvFilter directives.
    pub level: String,
}

/// How log lines are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Pretty on a terminal, JSON otherwise.
    Auto,
    /// One JSON object per line.
    Json,
    /// Human-readable, multi-line.
    Pretty,
}

/// Why a configuration was rejected: one line per problem, each naming its key.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration:\n  - {}", .problems.join("\n  - "))]
pub struct ConfigError {
    /// The problems found.
    pub problems: Vec<String>,
}

impl Config {
    /// Loads the defaults, then `file` (which must exist when given), then the
    /// `AGENTD__*` environment variables, then the OpenAI defaults (see
    /// [`LlmConfig::apply_env`]), and validates the result.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let mut figment = Figment::from(Toml::string(DEFAULT_TOML));
        if let Some(file) = file {
            figment = figment.merge(Toml::file_exact(file));
        }
        Self::from_figment(
            figment.merge(Env::prefixed(ENV_PREFIX).split("__")),
            &OpenAiEnv::from_process(),
        )
    }

    /// The defaults overlaid with a TOML document; the environment is not read.
    pub fn from_toml(toml: &str) -> Result<Self, ConfigError> {
        Self::from_toml_with_env(toml, &OpenAiEnv::default())
    }

    /// Like [`Config::from_toml`], with the given OpenAI environment variables.
    pub fn from_toml_with_env(toml: &str, env: &OpenAiEnv) -> Result<Self, ConfigError> {
        Self::from_figment(
            Figment::from(Toml::string(DEFAULT_TOML)).merge(Toml::string(toml)),
            env,
        )
    }

    fn from_figment(figment: Figment, env: &OpenAiEnv) -> Result<Self, ConfigError> {
        let mut config: Config = figment.extract().map_err(|err| ConfigError {
            problems: err.into_iter().map(describe_figment_error).collect(),
        })?;
        config.llm.apply_env(env);
        let problems = config.problems();
        if problems.is_empty() {
            Ok(config)
        } else {
            Err(ConfigError { problems })
        }
    }

    /// Rules that span several keys or that serde cannot express.
    fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        problems.extend(self.server.problems(std::time::SystemTime::now()));
        if self.storage.data_dir.as_os_str().is_empty() {
            problems.push("storage.data_dir: must not be empty".to_owned());
        }
        if let Err(err) = tracing_subscriber::EnvFilter::try_new(&self.log.level) {
            problems.push(format!(
                "log.level: invalid filter {:?}: {err}",
                self.log.level
            ));
        }
        problems.extend(self.auth_problems());
        problems.extend(self.llm.problems());
        problems.extend(self.agent.problems());
        problems.extend(self.tools.problems());
        problems.extend(self.sessions.problems());
        problems.extend(self.retrieval.problems());
        problems.extend(self.state.problems());
        let mut tenants: std::collections::BTreeSet<TenantId> =
            self.auth.keys.iter().map(|k| k.tenant.clone()).collect();
        if !self.auth.enabled {
            tenants.insert(TenantId::default_tenant());
        }
        let keys = self.auth.keys.iter().map(|k| k.name.clone()).collect();
        let routes = self
            .llm
            .models
            .keys()
            .chain(self.llm.routes.keys())
            .cloned()
            .collect();
        problems.extend(self.cost.problems(&tenants, &keys, &routes));
        let providers = self.llm.providers.keys().cloned().collect();
        problems.extend(self.guardrails.problems(&tenants, &providers));
        if self.state.backend == StateBackend::Redis && self.retrieval.qdrant_url == "embedded" {
            problems.push(
                "retrieval.qdrant_url: \"embedded\" cannot go with state.backend = \"redis\": \
                 the processes sharing Redis would each search their own vector store. Point \
                 them all at one external Qdrant (its gRPC URL, e.g. \"http://qdrant:6334\")"
                    .to_owned(),
            );
        }
        problems
    }

    fn auth_problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        let auth = &self.auth;
        if auth.enabled {
            if auth.keys.is_empty() {
                problems.push(
                    "auth.keys: auth is enabled but no key is configured; add one with the \
                     hash printed by `agentd keys hash`"
                        .to_owned(),
                );
            }
        } else {
            let listeners = [
                ("server.grpc_addr", self.server.grpc_addr),
                ("server.metrics_addr", self.server.metrics_addr),
            ];
            for (key, addr) in listeners {
                if !addr.ip().is_loopback() {
                    problems.push(format!(
                        "{key}: {addr} is not a loopback address and auth is disabled; agentd \
                         refuses to serve unauthenticated calls beyond this machine. Set \
                         auth.enabled = true with at least one entry in auth.keys (hash a key \
                         with `agentd keys hash`), or bind 127.0.0.1"
                    ));
                }
            }
        }
        for (i, key) in auth.keys.iter().enumerate() {
            if key.name.trim().is_empty() {
                problems.push(format!("auth.keys[{i}].name: must not be empty"));
            }
            if key.roles.is_empty() {
                problems.push(format!(
                    "auth.keys[{i}].roles: must name at least one of agent, ingest, admin, operator"
                ));
            }
            if auth.keys[..i]
                .iter()
                .any(|other| other.sha256 == key.sha256)
            {
                problems.push(format!(
                    "auth.keys[{i}].sha256: the same key hash is configured twice"
                ));
            }
        }
        problems
    }

    /// The config as JSON, every secret shown as `"***"`.
    pub fn redacted_json(&self) -> serde_json::Value {
        // Serializing plain data structs into a JSON value cannot fail: every map key
        // is a string and no Serialize impl here returns an error.
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }
}

fn describe_figment_error(err: figment::Error) -> String {
    let key = err.path.join(".");
    let source = err
        .metadata
        .as_ref()
        .and_then(|meta| meta.source.as_ref())
        .map(|source| format!(" (from {source})"))
        .unwrap_or_default();
    if key.is_empty() {
        format!("{}{source}", err.kind)
    } else {
        format!("{key}: {}{source}", err.kind)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn default_config_parses_and_validates() {
        let config = Config::from_toml("").unwrap();
        assert_eq!(config.server.grpc_addr, "127.0.0.1:50051".parse().unwrap());
        assert_eq!(
            config.server.metrics_addr,
            "127.0.0.1:9464".parse().unwrap()
        );
        assert_eq!(config.server.shutdown_grace, Duration::from_secs(30));
        assert_eq!(config.server.drain_delay, Duration::from_secs(5));
        assert_eq!(config.storage.data_dir, PathBuf::from("./data"));
        assert!(!config.auth.enabled);
    }

    #[test]
    fn every_key_of_the_default_file_has_a_comment() {
        let mut previous = "";
        for line in DEFAULT_TOML.lines() {
            let line = line.trim();
            let is_key = !line.is_empty() && !line.starts_with('#') && !line.starts_with('[');
            assert!(
                !is_key || previous.starts_with('#'),
                "key without a comment above it: {line}"
            );
            previous = line;
        }
    }

    #[test]
    fn unknown_keys_are_named() {
        let err = Config::from_toml("[server]\ngrpc_adr = \"127.0.0.1:1\"").unwrap_err();
        let text = err.to_string();
        assert!(text.contains("server.grpc_adr"), "{text}");
    }

    #[test]
    fn invalid_values_are_named() {
        let err = Config::from_toml("[server]\nshutdown_grace = \"soon\"").unwrap_err();
        assert!(err.to_string().contains("server.shutdown_grace"), "{err}");
        let err = Config::from_toml("[auth]\nkeys = [{ name = \"k\", tenant = \"a b\", roles = [\"agent\"], sha256 = \"00\" }]").unwrap_err();
        assert!(err.to_string().contains("auth.keys"), "{err}");
    }

    #[test]
    fn the_embedded_qdrant_serves_loopback_only() {
        let err = Config::from_toml("[retrieval]\nembedded_addr = \"0.0.0.0:6334\"").unwrap_err();
        assert!(err.to_string().contains("retrieval.embedded_addr"), "{err}");
        let config = Config::from_toml("[retrieval]\nembedded_addr = \"[::1]:0\"").unwrap();
        assert!(config.retrieval.embedded_addr.ip().is_loopback());
    }

    #[test]
    fn a_collection_prefix_must_be_a_safe_name_part() {
        for bad in ["a b", "{x}", "a/b", &"x".repeat(65)] {
            let toml = format!("[retrieval]\nqdrant_collection_prefix = {bad:?}");
            let err = Config::from_toml(&toml).unwrap_err();
            assert!(
                err.to_string()
                    .contains("retrieval.qdrant_collection_prefix"),
                "{err}"
            );
        }
        let config =
            Config::from_toml("[retrieval]\nqdrant_collection_prefix = \"prod_\"").unwrap();
        assert_eq!(config.retrieval.qdrant_collection_prefix, "prod_");
    }

    #[test]
    fn non_loopback_without_auth_is_refused_with_the_way_out() {
        let err = Config::from_toml("[server]\ngrpc_addr = \"0.0.0.0:50051\"").unwrap_err();
        let text = err.to_string();
        assert!(text.contains("server.grpc_addr"), "{text}");
        assert!(text.contains("auth.enabled = true"), "{text}");
    }

    #[test]
    fn redacted_json_hides_key_hashes() {
        let hash = KeyHash::of_key("k1").to_hex();
        let toml = format!(
            "[auth]\nenabled = true\nkeys = [{{ name = \"a\", tenant = \"t\", roles = [\"admin\"], sha256 = \"{hash}\" }}]"
        );
        let json = Config::from_toml(&toml)
            .unwrap()
            .redacted_json()
            .to_string();
        assert!(!json.contains(&hash), "{json}");
        assert!(json.contains("\"sha256\":\"***\""), "{json}");
    }
}
