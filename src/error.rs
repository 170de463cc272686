//! The one error type of agentd and its one mapping to a gRPC status with
//! `google.rpc` details (AIP-193): every error carries an ErrorInfo with a stable
//! UPPER_SNAKE reason in domain "agentd"; invalid input carries BadRequest field
//! violations; errors a retry can cure carry RetryInfo.

use std::collections::HashMap;
use std::time::Duration;

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, FieldViolation, StatusExt};

use crate::identity::{Role, TenantId};
use crate::llm::LlmError;

/// The `domain` of every ErrorInfo agentd sends.
pub const ERROR_DOMAIN: &str = "agentd";

/// One problem with one field of a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldProblem {
    /// The field's path, e.g. `message` or `options.temperature`.
    pub field: String,
    /// Why the value was rejected, for the caller.
    pub description: String,
}

impl FieldProblem {
    /// A problem with `field`.
    pub fn new(field: impl Into<String>, description: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            description: description.into(),
        }
    }
}

/// Everything that can go wrong while serving a call.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The request is malformed; each field problem is listed.
    #[error("invalid request: {}", describe(.0))]
    InvalidArgument(Vec<FieldProblem>),
    /// No usable credentials were sent.
    #[error("{0}")]
    Unauthenticated(String),
    /// The caller is known but lacks the role the method needs.
    #[error("API key {key_name:?} lacks the role {role:?} required by {service}")]
    PermissionDenied {
        /// Configured name of the caller's key.
        key_name: String,
        /// The missing role.
        role: Role,
        /// The service called.
        service: String,
    },
    /// The server is at its concurrency limit; the call was shed without queueing.
    #[error("server is at its limit of {limit} concurrent calls; retry shortly")]
    Overloaded {
        /// The configured limit.
        limit: usize,
    },
    /// A request message is larger than the configured maximum.
    #[error("request message of {size} bytes exceeds the limit of {limit} bytes")]
    RequestTooLarge {
        /// Declared size of the message.
        size: usize,
        /// The configured limit.
        limit: usize,
    },
    /// The call's deadline passed before it finished.
    #[error("deadline of {} exceeded", humantime::format_duration(*.timeout))]
    DeadlineExceeded {
        /// The deadline the call had.
        timeout: Duration,
    },
    /// The server is stopping and takes no more work on this call.
    #[error("server is shutting down; retry against another replica")]
    ShuttingDown,
    /// The caller's tenant may not use a tool the request names.
    #[error("{field}: tenant {tenant} may not use tool {tool:?}")]
    ToolNotAllowed {
        /// The request field naming the tool.
        field: String,
        /// The tool.
        tool: String,
        /// The caller's tenant.
        tenant: TenantId,
    },
    /// A session that does not exist for the caller's tenant (or has expired).
    #[error("session {0:?} not found")]
    SessionNotFound(String),
    /// A collection that does not exist.
    #[error("collection {0:?} not found")]
    CollectionNotFound(String),
    /// The vector store (or the embedding endpoint it needs) failed.
    #[error("{0}")]
    VectorStore(String),
    /// Another turn completed on the session while this one ran.
    #[error("session {0:?} changed while this turn ran; retry the turn on the new history")]
    SessionConflict(String),
    /// No model is configured, so the agent cannot answer.
    #[error(
        "no LLM is configured: set OPENAI_API_KEY (and optionally OPENAI_BASE_URL), or \
         configure [llm.providers] and [llm.models]"
    )]
    NoModel,
    /// The LLM provider failed.
    #[error("LLM provider {provider:?}: {}", .error.summary())]
    Upstream {
        /// The configured provider name.
        provider: String,
        /// What went wrong.
        error: LlmError,
    },
    /// A bug or an unexpected failure; the cause is logged, never sent.
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

fn describe(problems: &[FieldProblem]) -> String {
    problems
        .iter()
        .map(|p| format!("{}: {}", p.field, p.description))
        .collect::<Vec<_>>()
        .join("; ")
}

impl AppError {
    /// A single invalid field.
    pub fn invalid(field: impl Into<String>, description: impl Into<String>) -> Self {
        Self::InvalidArgument(vec![FieldProblem::new(field, description)])
    }

    /// The gRPC code of this error.
    pub fn code(&self) -> Code {
        match self {
            AppError::InvalidArgument(_) => Code::InvalidArgument,
            AppError::Unauthenticated(_) => Code::Unauthenticated,
            AppError::PermissionDenied { .. } => Code::PermissionDenied,
            AppError::Overloaded { .. } => Code::ResourceExhausted,
            AppError::RequestTooLarge { .. } => Code::ResourceExhausted,
            AppError::DeadlineExceeded { .. } => Code::DeadlineExceeded,
            AppError::ShuttingDown => Code::Unavailable,
            AppError::ToolNotAllowed { .. } => Code::PermissionDenied,
            AppError::SessionNotFound(_) => Code::NotFound,
            AppError::CollectionNotFound(_) => Code::NotFound,
            AppError::VectorStore(_) => Code::Unavailable,
            AppError::SessionConflict(_) => Code::Aborted,
            AppError::NoModel => Code::FailedPrecondition,
            AppError::Upstream { error, .. } => match error {
                // agentd's own credentials or request were refused: retrying the
                // call cannot help until the operator fixes the configuration.
                LlmError::Unauthorized { .. } | LlmError::Rejected { .. } => {
                    Code::FailedPrecondition
                }
                LlmError::RateLimited { .. }
                | LlmError::Unavailable { .. }
                | LlmError::Timeout(_)
                | LlmError::Connection(_)
                | LlmError::Protocol(_)
                | LlmError::Truncated => Code::Unavailable,
            },
            AppError::Internal(_) => Code::Internal,
        }
    }

    /// The stable, machine-readable reason sent in ErrorInfo.
    pub fn reason(&self) -> &'static str {
        match self {
            AppError::InvalidArgument(_) => "INVALID_ARGUMENT",
            AppError::Unauthenticated(_) => "UNAUTHENTICATED",
            AppError::PermissionDenied { .. } => "PERMISSION_DENIED",
            AppError::Overloaded { .. } => "OVERLOADED",
            AppError::RequestTooLarge { .. } => "REQUEST_TOO_LARGE",
            AppError::DeadlineExceeded { .. } => "DEADLINE_EXCEEDED",
            AppError::ShuttingDown => "SHUTTING_DOWN",
            AppError::ToolNotAllowed { .. } => "TOOL_NOT_ALLOWED",
            AppError::SessionNotFound(_) => "SESSION_NOT_FOUND",
            AppError::CollectionNotFound(_) => "COLLECTION_NOT_FOUND",
            AppError::VectorStore(_) => "VECTOR_STORE_UNAVAILABLE",
            AppError::SessionConflict(_) => "SESSION_CONFLICT",
            AppError::NoModel => "NO_MODEL_CONFIGURED",
            AppError::Upstream { error, .. } => match error {
                LlmError::Unauthorized { .. } => "UPSTREAM_UNAUTHORIZED",
                LlmError::RateLimited { .. } => "UPSTREAM_RATE_LIMITED",
                LlmError::Rejected { .. } => "UPSTREAM_REJECTED",
                LlmError::Unavailable { .. } => "UPSTREAM_UNAVAILABLE",
                LlmError::Timeout(_) => "UPSTREAM_TIMEOUT",
                LlmError::Connection(_) => "UPSTREAM_CONNECTION",
                LlmError::Protocol(_) => "UPSTREAM_PROTOCOL",
                LlmError::Truncated => "UPSTREAM_TRUNCATED",
            },
            AppError::Internal(_) => "INTERNAL",
        }
    }

    /// How long a client should wait before retrying, for errors a retry can cure.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            AppError::Overloaded { .. } => Some(Duration::from_millis(100)),
            AppError::ShuttingDown => Some(Duration::from_millis(0)),
            AppError::SessionConflict(_) => Some(Duration::from_millis(0)),
            AppError::VectorStore(_) => Some(Duration::from_secs(1)),
            AppError::Upstream { error, .. } => match error {
                LlmError::RateLimited { retry_after, .. } => {
                    Some(retry_after.unwrap_or(Duration::from_secs(1)))
                }
                LlmError::Unavailable { .. }
                | LlmError::Timeout(_)
                | LlmError::Connection(_)
                | LlmError::Truncated => Some(Duration::from_secs(1)),
                LlmError::Unauthorized { .. }
                | LlmError::Rejected { .. }
                | LlmError::Protocol(_) => None,
            },
            AppError::InvalidArgument(_)
            | AppError::ToolNotAllowed { .. }
            | AppError::SessionNotFound(_)
            | AppError::CollectionNotFound(_)
            | AppError::NoModel
            | AppError::Unauthenticated(_)
            | AppError::PermissionDenied { .. }
            | AppError::RequestTooLarge { .. }
            | AppError::DeadlineExceeded { .. }
            | AppError::Internal(_) => None,
        }
    }

    fn metadata(&self) -> HashMap<String, String> {
        let pairs: Vec<(&str, String)> = match self {
            AppError::PermissionDenied { role, service, .. } => vec![
                ("required_role", role.to_string()),
                ("service", service.clone()),
            ],
            AppError::Overloaded { limit } => vec![("limit", limit.to_string())],
            AppError::RequestTooLarge { size, limit } => {
                vec![
                    ("size_bytes", size.to_string()),
                    ("limit_bytes", limit.to_string()),
                ]
            }
            AppError::DeadlineExceeded { timeout } => {
                vec![("timeout_ms", timeout.as_millis().to_string())]
            }
            AppError::ToolNotAllowed { tool, tenant, .. } => {
                vec![("tool", tool.clone()), ("tenant", tenant.to_string())]
            }
            AppError::SessionNotFound(id) | AppError::SessionConflict(id) => {
                vec![("session_id", id.clone())]
            }
            AppError::Upstream { provider, error } => {
                let mut pairs = vec![("provider", provider.clone())];
                if let LlmError::Unauthorized { status, .. }
                | LlmError::Rejected { status, .. }
                | LlmError::Unavailable { status, .. } = error
                {
                    pairs.push(("upstream_status", status.to_string()));
                }
                pairs
            }
            AppError::CollectionNotFound(name) => vec![("collection", name.clone())],
            AppError::NoModel | AppError::VectorStore(_) => Vec::new(),
            AppError::InvalidArgument(_)
            | AppError::Unauthenticated(_)
            | AppError::ShuttingDown
            | AppError::Internal(_) => Vec::new(),
        };
        pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
    }
}

impl From<AppError> for Status {
    fn from(err: AppError) -> Self {
        if let AppError::Internal(cause) = &err {
            // The cause stays in the log, inside the call's span (which carries the
            // request id); the client gets the request id in ErrorInfo metadata,
            // added by the observe layer.
            tracing::error!(error = format!("{cause:#}"), "internal error");
        }
        let mut details = ErrorDetails::with_error_info(err.reason(), ERROR_DOMAIN, err.metadata());
        if let AppError::InvalidArgument(problems) = &err {
            let violations = problems
                .iter()
                .map(|p| FieldViolation::new(p.field.clone(), p.description.clone()))
                .collect::<Vec<_>>();
            details.set_bad_request(violations);
        }
        if let Some(delay) = err.retry_after() {
            details.set_retry_info(Some(delay));
        }
        Status::with_error_details(err.code(), err.to_string(), details)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_errors_hide_their_cause() {
        let status = Status::from(AppError::Internal(anyhow::anyhow!("db password wrong")));
        assert_eq!(status.code(), Code::Internal);
        assert!(!status.message().contains("password"));
        let info = status.get_details_error_info().unwrap();
        assert_eq!(info.reason, "INTERNAL");
        assert_eq!(info.domain, ERROR_DOMAIN);
    }

    #[test]
    fn invalid_argument_lists_fields() {
        let status = Status::from(AppError::InvalidArgument(vec![
            FieldProblem::new("message", "must not be empty"),
            FieldProblem::new("options.temperature", "must be between 0 and 2"),
        ]));
        let bad = status.get_details_bad_request().unwrap();
        let fields: Vec<_> = bad
            .field_violations
            .iter()
            .map(|v| v.field.as_str())
            .collect();
        assert_eq!(fields, ["message", "options.temperature"]);
    }

    #[test]
    fn overload_carries_retry_info() {
        let status = Status::from(AppError::Overloaded { limit: 3 });
        assert_eq!(status.code(), Code::ResourceExhausted);
        assert!(status.get_details_retry_info().is_some());
    }
}
