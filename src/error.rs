//! The one error type of agentd, the one place every domain error becomes it,
//! and its one mapping to a gRPC status with `google.rpc` details (AIP-193):
//! every error carries an ErrorInfo with a stable UPPER_SNAKE reason in domain
//! "agentd"; invalid input carries BadRequest field violations; errors a retry
//! can cure carry RetryInfo.
//!
//! Domain errors name the inputs they reject by domain enums
//! ([`TurnField`](crate::agent::error::TurnField),
//! [`RetrievalField`](crate::retrieval::RetrievalField)); the gRPC layer, which owns the proto
//! field paths, implements [`FieldPath`] for them next to its conversions.

use std::collections::HashMap;
use std::time::Duration;

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, FieldViolation, QuotaViolation, StatusExt};

use crate::agent::error::TurnError;
use crate::agent::sessions::SessionError;
use crate::cost::Limited;
use crate::guardrails::GuardrailError;
use crate::identity::Role;
use crate::ids::TenantId;
use crate::llm::LlmError;
use crate::retrieval::RetrievalProblem;
use crate::retrieval::store::StoreError;

/// Where a domain input sits in the caller's request, as the field path that
/// BadRequest violations carry (`options.tools[2]`).
pub trait FieldPath {
    /// The path.
    fn field_path(&self) -> String;
}

/// The `domain` of every ErrorInfo agentd sends.
pub const ERROR_DOMAIN: &str = "agentd";

/// The ErrorInfo reason of a request agentd could not read
/// ([`AppError::MalformedRequest`]); the observe layer counts and logs by it.
pub const MALFORMED_REQUEST: &str = "MALFORMED_REQUEST";

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
    /// The caller is known but holds none of the roles the method needs.
    #[error("API key {key_name:?} holds none of the roles {} that {method} requires", roles_list(.roles))]
    PermissionDenied {
        /// Configured name of the caller's key.
        key_name: String,
        /// The roles that would do, any one of them.
        roles: Vec<Role>,
        /// The method called, `/package.Service/Method`.
        method: String,
    },
    /// The server is at its concurrency limit; the call was shed without queueing.
    #[error("server is at its limit of {limit} concurrent calls; retry shortly")]
    Overloaded {
        /// The configured limit.
        limit: usize,
    },
    /// The request could not be read: its bytes are not a message of the
    /// method's type, or its gRPC framing is broken. The text is the decoder's.
    #[error("{0}")]
    MalformedRequest(String),
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
    /// No configured model has this name.
    #[error("no model {name:?} is configured; models: {known}")]
    ModelNotFound {
        /// The name asked for.
        name: String,
        /// The configured models, comma-separated.
        known: String,
    },
    /// The vector store (or the embedding endpoint it needs) failed.
    #[error("{0}")]
    VectorStore(String),
    /// The collection needs dense vectors and no embedding endpoint is configured.
    #[error("{0}")]
    EmbeddingsRequired(String),
    /// Another turn completed on the session while this one ran.
    #[error("session {0:?} changed while this turn ran; retry the turn on the new history")]
    SessionConflict(String),
    /// The LLM provider failed.
    #[error("LLM provider {provider:?}: {}", .error.summary())]
    Upstream {
        /// The configured provider name.
        provider: String,
        /// What went wrong.
        error: LlmError,
    },
    /// The state store (Redis) cannot be reached or did not answer in time.
    #[error("{0}")]
    StateStoreUnavailable(String),
    /// The state store did not confirm a write in time: it may still land.
    #[error("{0}")]
    StateStoreWriteUnknown(String),
    /// The state store refuses writes: it is out of memory.
    #[error("{0}")]
    StateStoreFull(String),
    /// A stored record is in a format this version cannot read.
    #[error("{0}")]
    UnsupportedRecord(String),
    /// An `admin` key asked about another tenant.
    #[error("key {key_name:?} may act on its own tenant only, not on {tenant}")]
    OutOfScope {
        /// The tenant asked about.
        tenant: TenantId,
        /// Configured name of the caller's key.
        key_name: String,
    },
    /// Cost control refused: a budget is exhausted, a rate limit reached, or
    /// the budget ledger could not be asked.
    #[error(transparent)]
    Limited(crate::cost::Limited),
    /// The guardrails refused the turn (the message), or a webhook that fails
    /// closed could not check it.
    #[error(transparent)]
    Guardrail(crate::guardrails::GuardrailError),
    /// A bug or an unexpected failure; the cause is logged, never sent.
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

fn roles_list(roles: &[Role]) -> String {
    if roles.is_empty() {
        return "(none: the method has no row in the role table)".to_owned();
    }
    roles
        .iter()
        .map(|role| role.as_str())
        .collect::<Vec<_>>()
        .join(" or ")
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
            AppError::PermissionDenied { .. } | AppError::OutOfScope { .. } => {
                Code::PermissionDenied
            }
            AppError::Overloaded { .. } => Code::ResourceExhausted,
            AppError::RequestTooLarge { .. } => Code::ResourceExhausted,
            AppError::DeadlineExceeded { .. } => Code::DeadlineExceeded,
            AppError::ShuttingDown => Code::Unavailable,
            AppError::ToolNotAllowed { .. } => Code::PermissionDenied,
            AppError::SessionNotFound(_) => Code::NotFound,
            AppError::CollectionNotFound(_) | AppError::ModelNotFound { .. } => Code::NotFound,
            AppError::VectorStore(_) => Code::Unavailable,
            AppError::EmbeddingsRequired(_) => Code::FailedPrecondition,
            AppError::SessionConflict(_) => Code::Aborted,
            AppError::StateStoreUnavailable(_) => Code::Unavailable,
            AppError::StateStoreFull(_) => Code::ResourceExhausted,
            // gRPC's code for "may have completed nonetheless"; never retried
            // blindly by clients, unlike UNAVAILABLE.
            AppError::StateStoreWriteUnknown(_) => Code::DeadlineExceeded,
            AppError::UnsupportedRecord(_) => Code::FailedPrecondition,
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
                | LlmError::Truncated
                | LlmError::Exhausted { .. } => Code::Unavailable,
                LlmError::DeadlineExceeded => Code::DeadlineExceeded,
                // What a stage refuses (a budget, a policy) a retry cannot cure
                // until something changes; later stages bring their own codes.
                LlmError::Refused { .. } => Code::FailedPrecondition,
                // Converted to `AppError::Limited` and `AppError::Guardrail`
                // on the way in.
                LlmError::Limited(_) => Code::ResourceExhausted,
                LlmError::Guardrail(GuardrailError::Blocked { .. }) => Code::InvalidArgument,
                LlmError::Guardrail(GuardrailError::Unavailable { .. }) => Code::Unavailable,
            },
            AppError::Limited(Limited::Budget { .. } | Limited::Rate { .. }) => {
                Code::ResourceExhausted
            }
            AppError::Limited(Limited::Unavailable(_)) => Code::Unavailable,
            AppError::Guardrail(GuardrailError::Blocked { .. }) => Code::InvalidArgument,
            AppError::Guardrail(GuardrailError::Unavailable { .. }) => Code::Unavailable,
            // The gRPC spec lists INTERNAL for a message that cannot be parsed
            // (doc/statuscodes.md), and clients expect it; the reason tells it
            // apart from agentd's own failures.
            AppError::MalformedRequest(_) | AppError::Internal(_) => Code::Internal,
        }
    }

    /// The stable, machine-readable reason sent in ErrorInfo.
    pub fn reason(&self) -> &'static str {
        match self {
            AppError::InvalidArgument(_) => "INVALID_ARGUMENT",
            AppError::Unauthenticated(_) => "UNAUTHENTICATED",
            AppError::PermissionDenied { .. } => "PERMISSION_DENIED",
            AppError::OutOfScope { .. } => "TENANT_OUT_OF_SCOPE",
            AppError::Overloaded { .. } => "OVERLOADED",
            AppError::RequestTooLarge { .. } => "REQUEST_TOO_LARGE",
            AppError::DeadlineExceeded { .. } => "DEADLINE_EXCEEDED",
            AppError::ShuttingDown => "SHUTTING_DOWN",
            AppError::ToolNotAllowed { .. } => "TOOL_NOT_ALLOWED",
            AppError::SessionNotFound(_) => "SESSION_NOT_FOUND",
            AppError::CollectionNotFound(_) => "COLLECTION_NOT_FOUND",
            AppError::ModelNotFound { .. } => "MODEL_NOT_FOUND",
            AppError::VectorStore(_) => "VECTOR_STORE_UNAVAILABLE",
            AppError::EmbeddingsRequired(_) => "EMBEDDINGS_NOT_CONFIGURED",
            AppError::SessionConflict(_) => "SESSION_CONFLICT",
            AppError::StateStoreUnavailable(_) => "STATE_STORE_UNAVAILABLE",
            AppError::StateStoreFull(_) => "STATE_STORE_FULL",
            AppError::StateStoreWriteUnknown(_) => "STATE_STORE_WRITE_UNKNOWN",
            AppError::UnsupportedRecord(_) => "RECORD_FORMAT_UNSUPPORTED",
            AppError::Upstream { error, .. } => match error {
                LlmError::Unauthorized { .. } => "UPSTREAM_UNAUTHORIZED",
                LlmError::RateLimited { .. } => "UPSTREAM_RATE_LIMITED",
                LlmError::Rejected { .. } => "UPSTREAM_REJECTED",
                LlmError::Unavailable { .. } => "UPSTREAM_UNAVAILABLE",
                LlmError::Timeout(_) => "UPSTREAM_TIMEOUT",
                LlmError::Connection(_) => "UPSTREAM_CONNECTION",
                LlmError::Protocol(_) => "UPSTREAM_PROTOCOL",
                LlmError::Truncated => "UPSTREAM_TRUNCATED",
                LlmError::DeadlineExceeded => "DEADLINE_EXCEEDED",
                LlmError::Refused { .. } => "CALL_REFUSED",
                LlmError::Exhausted { .. } => "ROUTE_EXHAUSTED",
                LlmError::Limited(_) => "LIMITED",
                LlmError::Guardrail(GuardrailError::Blocked { .. }) => "GUARDRAIL_BLOCKED",
                LlmError::Guardrail(GuardrailError::Unavailable { .. }) => "GUARDRAIL_UNAVAILABLE",
            },
            AppError::Limited(Limited::Budget { .. }) => "BUDGET_EXHAUSTED",
            AppError::Limited(Limited::Rate { .. }) => "RATE_LIMITED",
            AppError::Limited(Limited::Unavailable(_)) => "BUDGET_LEDGER_UNAVAILABLE",
            AppError::Guardrail(GuardrailError::Blocked { .. }) => "GUARDRAIL_BLOCKED",
            AppError::Guardrail(GuardrailError::Unavailable { .. }) => "GUARDRAIL_UNAVAILABLE",
            AppError::MalformedRequest(_) => MALFORMED_REQUEST,
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
            AppError::StateStoreUnavailable(_) => Some(Duration::from_secs(1)),
            AppError::Upstream { error, .. } => match error {
                LlmError::RateLimited { retry_after, .. } => {
                    Some(retry_after.unwrap_or(Duration::from_secs(1)))
                }
                LlmError::Unavailable { .. }
                | LlmError::Timeout(_)
                | LlmError::Connection(_)
                | LlmError::Truncated => Some(Duration::from_secs(1)),
                LlmError::Exhausted { retry_after, .. } => Some(*retry_after),
                LlmError::Unauthorized { .. }
                | LlmError::Rejected { .. }
                | LlmError::Protocol(_)
                | LlmError::DeadlineExceeded
                | LlmError::Refused { .. }
                | LlmError::Limited(_)
                | LlmError::Guardrail(_) => None,
            },
            AppError::Limited(Limited::Rate { wait, .. }) => Some(*wait),
            AppError::Limited(Limited::Unavailable(_)) => Some(Duration::from_secs(1)),
            // A budget refills with the next period or an operator's change,
            // not by waiting a moment.
            AppError::Limited(Limited::Budget { .. }) => None,
            AppError::Guardrail(GuardrailError::Unavailable { .. }) => Some(Duration::from_secs(1)),
            // The same message is blocked again.
            AppError::Guardrail(GuardrailError::Blocked { .. }) => None,
            AppError::InvalidArgument(_)
            | AppError::ToolNotAllowed { .. }
            | AppError::SessionNotFound(_)
            | AppError::CollectionNotFound(_)
            | AppError::ModelNotFound { .. }
            | AppError::EmbeddingsRequired(_)
            | AppError::StateStoreFull(_)
            | AppError::StateStoreWriteUnknown(_)
            | AppError::UnsupportedRecord(_)
            | AppError::Unauthenticated(_)
            | AppError::PermissionDenied { .. }
            | AppError::OutOfScope { .. }
            | AppError::RequestTooLarge { .. }
            | AppError::MalformedRequest(_)
            | AppError::DeadlineExceeded { .. }
            | AppError::Internal(_) => None,
        }
    }

    fn metadata(&self) -> HashMap<String, String> {
        let pairs: Vec<(&str, String)> = match self {
            AppError::PermissionDenied { roles, method, .. } => vec![
                // The first role that would do, as before methods could accept
                // several; `required_roles` lists them all.
                (
                    "required_role",
                    roles.first().map(ToString::to_string).unwrap_or_default(),
                ),
                ("required_roles", roles_list(roles)),
                (
                    "service",
                    method
                        .trim_start_matches('/')
                        .split_once('/')
                        .map_or("", |(service, _)| service)
                        .to_owned(),
                ),
                ("method", method.clone()),
            ],
            AppError::Overloaded { limit } => vec![("limit", limit.to_string())],
            AppError::OutOfScope { tenant, .. } => vec![("tenant", tenant.to_string())],
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
                if let LlmError::Refused { stage, .. } = error {
                    pairs.push(("stage", stage.clone()));
                }
                if let LlmError::Exhausted { route, last, .. } = error {
                    pairs.push(("route", route.clone()));
                    if let Some(last) = last {
                        use crate::telemetry::traced::ErrorType as _;
                        pairs.push(("last_error", last.error_type().to_owned()));
                    }
                }
                pairs
            }
            AppError::Limited(Limited::Budget {
                owner,
                kind,
                limit,
                used,
            }) => vec![
                ("subject", owner.clone()),
                ("budget", kind.as_str().to_owned()),
                ("limit", limit.to_string()),
                ("used", used.to_string()),
                (
                    "unit",
                    if kind.is_usd() { "nano_usd" } else { "tokens" }.to_owned(),
                ),
            ],
            AppError::Limited(Limited::Rate { limit, wait }) => vec![
                ("limit", (*limit).to_owned()),
                ("retry_after_ms", wait.as_millis().to_string()),
            ],
            AppError::Limited(Limited::Unavailable(_)) => vec![("store", "budgets".to_owned())],
            AppError::Guardrail(GuardrailError::Blocked {
                kind,
                place,
                detail,
            }) => {
                let mut pairs = vec![
                    ("type", (*kind).to_owned()),
                    ("where", place.as_str().to_owned()),
                ];
                if !detail.is_empty() {
                    pairs.push(("detail", detail.clone()));
                }
                pairs
            }
            AppError::Guardrail(GuardrailError::Unavailable { webhook }) => {
                vec![("webhook", webhook.clone())]
            }
            AppError::CollectionNotFound(name) => vec![("collection", name.clone())],
            AppError::ModelNotFound { name, .. } => vec![("model", name.clone())],
            AppError::VectorStore(_) | AppError::EmbeddingsRequired(_) => Vec::new(),
            AppError::StateStoreUnavailable(_)
            | AppError::StateStoreFull(_)
            | AppError::StateStoreWriteUnknown(_)
            | AppError::UnsupportedRecord(_) => vec![("store", "sessions".to_owned())],
            AppError::InvalidArgument(_)
            | AppError::Unauthenticated(_)
            | AppError::ShuttingDown
            | AppError::MalformedRequest(_)
            | AppError::Internal(_) => Vec::new(),
        };
        pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
    }
}

impl From<SessionError> for AppError {
    fn from(err: SessionError) -> Self {
        match err {
            SessionError::NotFound(id) => AppError::SessionNotFound(id.to_string()),
            SessionError::Conflict(id) => AppError::SessionConflict(id.to_string()),
            SessionError::Unavailable(_) => AppError::StateStoreUnavailable(err.to_string()),
            SessionError::WriteUnknown(_) => AppError::StateStoreWriteUnknown(err.to_string()),
            SessionError::Full(_) => AppError::StateStoreFull(format!(
                "{err}; nothing was written. The operator must free memory or raise maxmemory"
            )),
            SessionError::UnsupportedFormat { .. } => AppError::UnsupportedRecord(err.to_string()),
            SessionError::Storage(_) => AppError::Internal(err.into()),
        }
    }
}

impl From<StoreError> for AppError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::CollectionNotFound(name) => AppError::CollectionNotFound(name.to_string()),
            StoreError::Invalid(problems) => {
                AppError::InvalidArgument(problems.iter().map(FieldProblem::from).collect())
            }
            StoreError::EmbeddingsRequired(_) => AppError::EmbeddingsRequired(err.to_string()),
            StoreError::Embedding(_) | StoreError::Qdrant(_) => {
                AppError::VectorStore(err.to_string())
            }
        }
    }
}

impl From<&RetrievalProblem> for FieldProblem {
    fn from(problem: &RetrievalProblem) -> Self {
        FieldProblem::new(problem.field.field_path(), problem.reason.clone())
    }
}

impl From<TurnError> for AppError {
    fn from(err: TurnError) -> Self {
        match err {
            TurnError::Invalid(problems) => AppError::InvalidArgument(
                problems
                    .into_iter()
                    .map(|p| FieldProblem::new(p.field.field_path(), p.reason))
                    .collect(),
            ),
            TurnError::ToolNotAllowed {
                field,
                tool,
                tenant,
            } => AppError::ToolNotAllowed {
                field: field.field_path(),
                tool,
                tenant,
            },
            TurnError::CollectionNotFound(name) => AppError::CollectionNotFound(name.to_string()),
            TurnError::Session(err) => err.into(),
            TurnError::Knowledge(err) => err.into(),
            TurnError::Upstream {
                error: LlmError::Limited(limited),
                ..
            } => AppError::Limited(limited),
            TurnError::Upstream {
                error: LlmError::Guardrail(refused),
                ..
            }
            | TurnError::Guardrail(refused) => AppError::Guardrail(refused),
            TurnError::Upstream { provider, error } => AppError::Upstream { provider, error },
            TurnError::Limited(limited) => AppError::Limited(limited),
            TurnError::DeadlineExceeded(timeout) => AppError::DeadlineExceeded { timeout },
            TurnError::ContextExhausted(_) | TurnError::Blocking(_) => {
                AppError::Internal(err.into())
            }
        }
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
        if let AppError::Limited(Limited::Budget { owner, kind, .. }) = &err {
            details.set_quota_failure(vec![QuotaViolation::new(
                owner.clone(),
                format!("budget {} of {owner} is exhausted", kind.as_str()),
            )]);
        }
        Status::with_error_details(err.code(), err.to_string(), details)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::error::TurnField;
    use crate::retrieval::RetrievalField;

    #[test]
    fn internal_errors_hide_their_cause() {
        let status = Status::from(AppError::Internal(anyhow::anyhow!("db password wrong")));
        assert_eq!(status.code(), Code::Internal);
        assert!(!status.message().contains("password"));
        let info = status.get_details_error_info().unwrap();
        assert_eq!(info.reason, "INTERNAL");
        assert_eq!(info.domain, ERROR_DOMAIN);
    }

    /// The field paths of a status' BadRequest violations.
    fn violated_fields(status: &Status) -> Vec<String> {
        let bad = status.get_details_bad_request().unwrap();
        bad.field_violations.into_iter().map(|v| v.field).collect()
    }

    #[test]
    fn invalid_argument_lists_fields() {
        let status = Status::from(AppError::InvalidArgument(vec![
            FieldProblem::new("message", "must not be empty"),
            FieldProblem::new("options.temperature", "must be between 0 and 2"),
        ]));
        assert_eq!(violated_fields(&status), ["message", "options.temperature"]);
    }

    #[test]
    fn a_session_conflict_is_aborted_wherever_it_comes_from() {
        let id = crate::ids::SessionId::try_from("s1").unwrap();
        let direct = Status::from(AppError::from(SessionError::Conflict(id.clone())));
        let in_a_turn = Status::from(AppError::from(TurnError::Session(SessionError::Conflict(
            id,
        ))));
        for status in [direct, in_a_turn] {
            assert_eq!(status.code(), Code::Aborted);
            let info = status.get_details_error_info().unwrap();
            assert_eq!(info.reason, "SESSION_CONFLICT");
            assert_eq!(info.metadata["session_id"], "s1");
            assert!(status.get_details_retry_info().is_some());
        }
        let storage = Status::from(AppError::from(SessionError::Storage("disk".into())));
        assert_eq!(storage.code(), Code::Internal);
        assert!(!storage.message().contains("disk"));
    }

    #[test]
    fn domain_fields_become_proto_paths() {
        let status = Status::from(AppError::from(TurnError::Invalid(vec![
            crate::agent::error::Problem::new(TurnField::Tool(2), "no such tool"),
            crate::agent::error::Problem::new(TurnField::MaxOutputTokens, "too many"),
        ])));
        assert_eq!(
            violated_fields(&status),
            ["options.tools[2]", "options.max_output_tokens"]
        );
        let status = Status::from(AppError::from(StoreError::Invalid(vec![
            RetrievalProblem {
                field: RetrievalField::DocumentText(1),
                reason: "too big".into(),
            },
        ])));
        let bad = status.get_details_bad_request().unwrap();
        assert_eq!(bad.field_violations[0].field, "documents[1].text");
    }

    #[test]
    fn overload_carries_retry_info() {
        let status = Status::from(AppError::Overloaded { limit: 3 });
        assert_eq!(status.code(), Code::ResourceExhausted);
        assert!(status.get_details_retry_info().is_some());
    }
}
