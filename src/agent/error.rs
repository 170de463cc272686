//! How a turn fails, in the domain's words. The inputs the agent rejects are
//! named by [`TurnField`], never by a transport's field path: the gRPC layer
//! knows where each one sits in its requests, and `error.rs` turns every
//! [`TurnError`] into the one application error.

use super::sessions::SessionError;
use crate::ids::{CollectionName, TenantId};
use crate::llm::LlmError;
use crate::retrieval::store::StoreError;
use crate::telemetry::traced::ErrorType;

/// A part of a turn's request that the agent checks against its configuration
/// or state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TurnField {
    /// The user's message.
    Message,
    /// The model (or tier) asked for.
    Model,
    /// The cap on output tokens.
    MaxOutputTokens,
    /// The `i`-th tool named.
    Tool(usize),
    /// The collections named, as a whole.
    Collections,
}

/// One rejected input and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// The input.
    pub field: TurnField,
    /// Why, for the caller.
    pub reason: String,
}

impl Problem {
    /// A problem with `field`.
    pub fn new(field: TurnField, reason: impl Into<String>) -> Self {
        Self {
            field,
            reason: reason.into(),
        }
    }
}

/// Why a turn did not complete.
#[derive(Debug, thiserror::Error)]
pub enum TurnError {
    /// Inputs that do not fit the configuration; each is listed.
    #[error("invalid turn: {}", describe(.0))]
    Invalid(Vec<Problem>),
    /// The caller's tenant may not use a tool the request names.
    #[error("tenant {tenant} may not use tool {tool:?}")]
    ToolNotAllowed {
        /// Where the tool is named.
        field: TurnField,
        /// The tool.
        tool: String,
        /// The caller's tenant.
        tenant: TenantId,
    },
    /// A collection the request names does not exist.
    #[error("collection {0} not found")]
    CollectionNotFound(CollectionName),
    /// The session does not exist for the caller's tenant (or has expired), the
    /// store failed, or another turn completed on the session first.
    #[error(transparent)]
    Session(#[from] SessionError),
    /// The knowledge store could not be asked about the request's collections.
    #[error(transparent)]
    Knowledge(#[from] StoreError),
    /// A model call failed.
    #[error("LLM provider {provider:?}: {error}")]
    Upstream {
        /// The configured provider name.
        provider: String,
        /// What went wrong.
        error: LlmError,
    },
    /// The turn's deadline passed during a model call.
    #[error("deadline of {} exceeded", humantime::format_duration(*.0))]
    DeadlineExceeded(std::time::Duration),
    /// Tool results outgrew the model's context window mid-turn.
    #[error("tool results outgrew the context window: {0}")]
    ContextExhausted(String),
    /// Cost control refused the turn before it started (a request-rate limit).
    #[error(transparent)]
    Limited(crate::cost::Limited),
    /// The guardrails refused the turn's message.
    #[error(transparent)]
    Guardrail(crate::guardrails::GuardrailError),
    /// Work on a blocking thread failed (a panic there, most likely).
    #[error("blocking work failed: {0}")]
    Blocking(#[from] tokio::task::JoinError),
}

fn describe(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(|p| format!("{:?}: {}", p.field, p.reason))
        .collect::<Vec<_>>()
        .join("; ")
}

impl TurnError {
    /// One invalid input.
    pub fn invalid(field: TurnField, reason: impl Into<String>) -> Self {
        Self::Invalid(vec![Problem::new(field, reason)])
    }
}

impl ErrorType for TurnError {
    fn error_type(&self) -> &'static str {
        match self {
            TurnError::Invalid(_) => "invalid_argument",
            TurnError::ToolNotAllowed { .. } => "tool_not_allowed",
            TurnError::CollectionNotFound(_) => "collection_not_found",
            TurnError::Session(SessionError::NotFound(_)) => "session_not_found",
            TurnError::Session(SessionError::Conflict(_)) => "session_conflict",
            TurnError::Session(SessionError::Unavailable(_)) => "state_store_unavailable",
            TurnError::Session(SessionError::Full(_)) => "state_store_full",
            TurnError::Session(SessionError::WriteUnknown(_)) => "state_store_write_unknown",
            TurnError::Session(
                SessionError::Storage(_) | SessionError::UnsupportedFormat { .. },
            ) => "session_store",
            TurnError::Knowledge(_) => "vector_store",
            TurnError::Upstream { error, .. } => error.error_type(),
            TurnError::DeadlineExceeded(_) => "deadline_exceeded",
            TurnError::ContextExhausted(_) => "context_exhausted",
            TurnError::Blocking(_) => "internal",
            TurnError::Limited(limited) => {
                crate::llm::LlmError::Limited(limited.clone()).error_type()
            }
            TurnError::Guardrail(refused) => {
                crate::llm::LlmError::Guardrail(refused.clone()).error_type()
            }
        }
    }
}
