//! Tools the model can call: the [`Tool`] trait, the [`ToolRegistry`] that
//! validates the model's arguments against each tool's JSON schema, and the
//! built-in tools.

pub mod current_time;
pub mod search_knowledge;

use std::collections::BTreeMap;
use std::sync::Arc;

use super::turn::Source;
use crate::clock::Clock;
use crate::ids::{CollectionName, TenantId};
use crate::llm::ToolSpec;

/// What a tool knows about the call it serves.
#[derive(Clone, Debug)]
pub struct ToolContext {
    /// The tenant of the request; tools scope every read and write to it.
    pub tenant: TenantId,
    /// The knowledge collections the request named; empty means the default.
    pub collections: Vec<CollectionName>,
    /// The clock a tool reads "now" from.
    pub clock: Clock,
}

/// What a tool call produced.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ToolOutput {
    /// The result, for the model.
    pub content: String,
    /// The knowledge it gave the model, reported to the caller as sources.
    pub sources: Vec<Source>,
    /// The knowledge base could not be searched: the answer is degraded.
    pub knowledge_unavailable: bool,
}

impl From<String> for ToolOutput {
    fn from(content: String) -> Self {
        Self {
            content,
            ..Self::default()
        }
    }
}

/// Why a tool call produced no result. The text goes back to the model as the
/// tool's result, so the model can correct itself; it never fails the request.
#[derive(Debug, thiserror::Error)]
pub enum ToolError {
    /// The model named a tool that does not exist or is not allowed.
    #[error("tool {0:?} is not available")]
    Unavailable(String),
    /// The arguments are not JSON or do not match the tool's schema.
    #[error("invalid arguments: {0}")]
    InvalidArguments(String),
    /// The tool ran and failed.
    #[error("{0}")]
    Failed(String),
}

/// A capability the model can invoke.
#[async_trait::async_trait]
pub trait Tool: Send + Sync + std::fmt::Debug {
    /// The name the model calls it by: `[a-zA-Z0-9_-]{1,64}`.
    fn name(&self) -> &str;
    /// What it does and when to use it, for the model.
    fn description(&self) -> &str;
    /// The JSON schema of its arguments (an object schema).
    fn parameters(&self) -> serde_json::Value;
    /// Runs the tool on arguments already validated against the schema.
    async fn execute(
        &self,
        context: &ToolContext,
        arguments: serde_json::Value,
    ) -> Result<ToolOutput, ToolError>;
}

/// Why a tool could not be registered.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// Two tools share a name.
    #[error("tool {0:?} is registered twice")]
    Duplicate(String),
    /// The name is not usable by the OpenAI tool-calling API.
    #[error("tool name {0:?} must be 1 to 64 characters from [a-zA-Z0-9_-]")]
    InvalidName(String),
    /// The schema does not compile.
    #[error("tool {name:?} has an invalid parameters schema: {reason}")]
    InvalidSchema {
        /// The tool.
        name: String,
        /// What is wrong.
        reason: String,
    },
}

struct Entry {
    tool: Arc<dyn Tool>,
    spec: ToolSpec,
    validator: jsonschema::Validator,
}

/// Every tool this instance can offer, by name.
#[derive(Default)]
pub struct ToolRegistry {
    tools: BTreeMap<String, Entry>,
}

impl std::fmt::Debug for ToolRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.tools.keys()).finish()
    }
}

impl ToolRegistry {
    /// A registry with the built-in tools.
    pub fn with_builtins() -> Result<Self, RegistryError> {
        let mut registry = Self::default();
        registry.register(Arc::new(current_time::CurrentTime))?;
        Ok(registry)
    }

    /// Adds a tool, compiling its schema once.
    pub fn register(&mut self, tool: Arc<dyn Tool>) -> Result<(), RegistryError> {
        let name = tool.name().to_owned();
        let valid_name = (1..=64).contains(&name.len())
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !valid_name {
            return Err(RegistryError::InvalidName(name));
        }
        if self.tools.contains_key(&name) {
            return Err(RegistryError::Duplicate(name));
        }
        let parameters = tool.parameters();
        let validator =
            jsonschema::validator_for(&parameters).map_err(|err| RegistryError::InvalidSchema {
                name: name.clone(),
                reason: err.to_string(),
            })?;
        let spec = ToolSpec {
            name: name.clone(),
            description: tool.description().to_owned(),
            parameters: parameters.into(),
        };
        self.tools.insert(
            name,
            Entry {
                tool,
                spec,
                validator,
            },
        );
        Ok(())
    }

    /// Whether a tool of that name exists.
    pub fn contains(&self, name: &str) -> bool {
        self.tools.contains_key(name)
    }

    /// Every registered name, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.tools.keys().map(String::as_str)
    }

    /// The definition offered to the model.
    pub fn spec(&self, name: &str) -> Option<&ToolSpec> {
        self.tools.get(name).map(|entry| &entry.spec)
    }

    /// Parses the model's raw arguments and validates them against the tool's
    /// schema; every violation is listed, with its location.
    pub fn parse_arguments(&self, name: &str, raw: &str) -> Result<serde_json::Value, ToolError> {
        let entry = self
            .tools
            .get(name)
            .ok_or_else(|| ToolError::Unavailable(name.to_owned()))?;
        let raw = if raw.trim().is_empty() { "{}" } else { raw };
        let arguments: serde_json::Value = serde_json::from_str(raw)
            .map_err(|err| ToolError::InvalidArguments(format!("not valid JSON: {err}")))?;
        let violations: Vec<String> = entry
            .validator
            .iter_errors(&arguments)
            .map(|err| {
                let at = err.instance_path().to_string();
                if at.is_empty() {
                    err.to_string()
                } else {
                    format!("{at}: {err}")
                }
            })
            .collect();
        if violations.is_empty() {
            Ok(arguments)
        } else {
            Err(ToolError::InvalidArguments(violations.join("; ")))
        }
    }

    /// The tool itself, to execute.
    pub fn tool(&self, name: &str) -> Option<Arc<dyn Tool>> {
        self.tools.get(name).map(|entry| entry.tool.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_are_validated_against_the_schema() {
        let registry = ToolRegistry::with_builtins().unwrap();
        assert!(registry.parse_arguments("current_time", "").is_ok());
        assert!(
            registry
                .parse_arguments("current_time", r#"{"timezone": "Asia/Tokyo"}"#)
                .is_ok()
        );

        let err = registry
            .parse_arguments("current_time", r#"{"timezone": 5}"#)
            .unwrap_err();
        assert!(err.to_string().contains("/timezone"), "{err}");
        let err = registry
            .parse_arguments("current_time", r#"{"tz": "UTC"}"#)
            .unwrap_err();
        assert!(matches!(err, ToolError::InvalidArguments(_)), "{err}");
        let err = registry
            .parse_arguments("current_time", "{not json")
            .unwrap_err();
        assert!(err.to_string().contains("not valid JSON"), "{err}");
        let err = registry.parse_arguments("rm_rf", "{}").unwrap_err();
        assert!(matches!(err, ToolError::Unavailable(_)), "{err}");
    }

    #[derive(Debug)]
    struct Named(&'static str, serde_json::Value);

    #[async_trait::async_trait]
    impl Tool for Named {
        fn name(&self) -> &str {
            self.0
        }
        fn description(&self) -> &str {
            "test tool"
        }
        fn parameters(&self) -> serde_json::Value {
            self.1.clone()
        }
        async fn execute(
            &self,
            _: &ToolContext,
            _: serde_json::Value,
        ) -> Result<ToolOutput, ToolError> {
            Ok(ToolOutput::default())
        }
    }

    #[test]
    fn bad_registrations_are_refused() {
        let mut registry = ToolRegistry::with_builtins().unwrap();
        let object = serde_json::json!({"type": "object"});
        let err = registry
            .register(Arc::new(Named("current_time", object.clone())))
            .unwrap_err();
        assert!(matches!(err, RegistryError::Duplicate(_)));
        let err = registry
            .register(Arc::new(Named("has space", object)))
            .unwrap_err();
        assert!(matches!(err, RegistryError::InvalidName(_)));
        let bad_schema = serde_json::json!({"type": "no-such-type"});
        let err = registry
            .register(Arc::new(Named("x", bad_schema)))
            .unwrap_err();
        assert!(matches!(err, RegistryError::InvalidSchema { .. }), "{err}");
        assert_eq!(registry.names().collect::<Vec<_>>(), ["current_time"]);
    }
}
