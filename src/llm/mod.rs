//! LLM access behind one trait: the conversation types the agent speaks, the
//! stream of events a provider returns, the errors it can fail with, the
//! context every call carries, the per-call chain around each upstream, and the
//! catalog of models that builds them.

pub mod call;
pub mod catalog;
pub mod chain;
pub mod extractive;
pub mod openai;
pub mod router;
pub mod tokens;

pub use call::{CallContext, CallDeadline, Delivery, TurnContext};

use std::time::Duration;

use futures::stream::BoxStream;
use serde::{Deserialize, Serialize};

/// One message of a conversation, as sent to a model.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "role", rename_all = "snake_case")]
pub enum ChatMessage {
    /// Instructions for the model.
    System {
        /// The text.
        content: String,
    },
    /// The user's words.
    User {
        /// The text.
        content: String,
    },
    /// The model's reply: text, tool calls, or both.
    Assistant {
        /// The text; may be empty when the model only called tools.
        content: String,
        /// The tools the model called, in order.
        tool_calls: Vec<ToolCall>,
    },
    /// The result of one tool call, fed back to the model.
    Tool {
        /// The id of the call this answers.
        call_id: String,
        /// The result (or error) text.
        content: String,
    },
}

impl ChatMessage {
    /// Bytes of text it carries (content, and tool calls' names and arguments).
    pub fn text_len(&self) -> usize {
        match self {
            ChatMessage::System { content } | ChatMessage::User { content } => content.len(),
            ChatMessage::Assistant {
                content,
                tool_calls,
            } => {
                content.len()
                    + tool_calls
                        .iter()
                        .map(|c| c.id.len() + c.name.len() + c.arguments.len())
                        .sum::<usize>()
            }
            ChatMessage::Tool { call_id, content } => call_id.len() + content.len(),
        }
    }
}

/// A tool call made by the model.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolCall {
    /// The call's id, chosen by the model's provider.
    pub id: String,
    /// The tool's name.
    pub name: String,
    /// The arguments, a JSON document as the model wrote it (maybe invalid).
    pub arguments: String,
}

/// A tool offered to the model.
#[derive(Clone, Debug, PartialEq)]
pub struct ToolSpec {
    /// The tool's name.
    pub name: String,
    /// What it does, for the model.
    pub description: String,
    /// The JSON schema of its arguments, shared: every request offering the tool
    /// carries it, and a deep copy per request was kilobytes per open stream.
    pub parameters: std::sync::Arc<serde_json::Value>,
}

/// One request to a model.
#[derive(Clone, Debug, PartialEq)]
pub struct LlmRequest {
    /// The provider's id of the model.
    pub model: String,
    /// The conversation, system prompt first.
    pub messages: Vec<ChatMessage>,
    /// The tools the model may call.
    pub tools: Vec<ToolSpec>,
    /// Cap on output tokens.
    pub max_output_tokens: Option<u32>,
    /// Sampling temperature.
    pub temperature: Option<f32>,
}

/// Token counts reported by the provider.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    /// Prompt tokens.
    pub input_tokens: u32,
    /// Completion tokens.
    pub output_tokens: u32,
    /// Of the prompt tokens, those read from the provider's prompt cache
    /// (priced at the cached-input rate).
    pub cached_tokens: u32,
}

/// Why the model stopped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FinishReason {
    /// A natural end.
    Stop,
    /// The output token cap was reached.
    Length,
    /// The model called tools and waits for their results.
    ToolCalls,
    /// The provider's content filter cut the answer.
    ContentFilter,
    /// agentd's output guardrails withheld or cut the answer.
    Guardrail,
}

impl FinishReason {
    /// The name used in spans (OpenAI's).
    pub fn as_str(&self) -> &'static str {
        match self {
            FinishReason::Stop => "stop",
            FinishReason::Length => "length",
            FinishReason::ToolCalls => "tool_calls",
            FinishReason::ContentFilter => "content_filter",
            FinishReason::Guardrail => "guardrail",
        }
    }
}

/// One event of a model's streamed answer. A successful stream carries
/// `ResponseModel` when the provider names the model, any number of `TextDelta`,
/// `Usage` when the provider reported it, at most one `ToolCalls` (assembled from
/// every fragment), then `Finished`.
#[derive(Clone, Debug, PartialEq)]
pub enum LlmEvent {
    /// The model that actually answers, as the provider names it.
    ResponseModel(String),
    /// A piece of answer text, as soon as it arrives. An empty one (sent by
    /// the guardrails while they hold text back) only says that the upstream
    /// is answering.
    TextDelta(String),
    /// Every tool call of the answer, complete.
    ToolCalls(Vec<ToolCall>),
    /// Token counts from the provider.
    Usage(Usage),
    /// The end of the answer.
    Finished(FinishReason),
    /// The call failed after some of its events and goes on with another
    /// attempt: drop every event of the call so far. Sent only for a turn
    /// delivered whole ([`Delivery::Whole`]).
    Restart,
}

/// A streamed answer. Dropping it aborts the upstream request.
pub type LlmStream = BoxStream<'static, Result<LlmEvent, LlmError>>;

/// How a call to a provider failed.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum LlmError {
    /// The provider refused the credentials (HTTP 401/403).
    #[error("the provider rejected the credentials (HTTP {status}): {message}")]
    Unauthorized {
        /// HTTP status.
        status: u16,
        /// The provider's message.
        message: String,
    },
    /// The provider is rate limiting (HTTP 429).
    #[error("the provider is rate limiting: {message}")]
    RateLimited {
        /// From the `retry-after` header.
        retry_after: Option<Duration>,
        /// The provider's message.
        message: String,
    },
    /// The provider rejected the request (other HTTP 4xx).
    #[error("the provider rejected the request (HTTP {status}): {message}")]
    Rejected {
        /// HTTP status.
        status: u16,
        /// The provider's message.
        message: String,
    },
    /// The provider failed (HTTP 5xx).
    #[error("the provider failed (HTTP {status}): {message}")]
    Unavailable {
        /// HTTP status.
        status: u16,
        /// The provider's message.
        message: String,
    },
    /// No answer, or no next chunk, within the configured timeout.
    #[error("the provider did not answer within {}", humantime::format_duration(*.0))]
    Timeout(Duration),
    /// The connection failed or broke.
    #[error("the connection to the provider failed: {0}")]
    Connection(String),
    /// The provider sent something that is not the chat-completions format.
    #[error("the provider sent a malformed stream: {0}")]
    Protocol(String),
    /// The stream ended before `[DONE]`.
    #[error("the provider's stream ended before it was complete")]
    Truncated,
    /// The turn's deadline passed before the call finished.
    #[error("the turn's deadline passed before the provider finished")]
    DeadlineExceeded,
    /// No target of the route could answer, and its chain does not end in
    /// an extractive answer (or that had nothing to quote).
    #[error("no model of route {route:?} could answer{}", .last.as_ref().map(|e| format!("; the last failure: {}", e.summary())).unwrap_or_default())]
    Exhausted {
        /// The route called.
        route: String,
        /// The last failure of an attempt, if any attempt was made.
        last: Option<Box<LlmError>>,
        /// When a retry may succeed.
        retry_after: Duration,
    },
    /// A stage of the per-call chain refused the call; nothing reached the
    /// upstream.
    #[error("the call was refused by the {stage} stage: {reason}")]
    Refused {
        /// The stage's name.
        stage: String,
        /// Why, for the caller.
        reason: String,
    },
    /// Cost control refused the call: a budget or rate limit, or the ledger
    /// could not be asked. Nothing reached the upstream.
    #[error(transparent)]
    Limited(crate::cost::Limited),
    /// The guardrails refused the call: the message holds what the tenant's
    /// policy blocks for this provider. Nothing reached the upstream.
    #[error(transparent)]
    Guardrail(crate::guardrails::GuardrailError),
}

impl LlmError {
    /// The error without the provider's own message, which may echo request
    /// content or credentials: what a client of agentd is told. The full error
    /// goes to the log.
    pub fn summary(&self) -> String {
        match self {
            LlmError::Unauthorized { status, .. } => {
                format!("the provider rejected agentd's credentials (HTTP {status})")
            }
            LlmError::RateLimited { retry_after, .. } => match retry_after {
                Some(delay) => format!(
                    "the provider is rate limiting; retry after {}",
                    humantime::format_duration(*delay)
                ),
                None => "the provider is rate limiting".to_owned(),
            },
            LlmError::Rejected { status, .. } => {
                format!("the provider rejected the request (HTTP {status})")
            }
            LlmError::Unavailable { status, .. } => format!("the provider failed (HTTP {status})"),
            LlmError::Timeout(_)
            | LlmError::Connection(_)
            | LlmError::Protocol(_)
            | LlmError::Truncated
            | LlmError::DeadlineExceeded
            | LlmError::Exhausted { .. }
            | LlmError::Refused { .. }
            | LlmError::Limited(_)
            | LlmError::Guardrail(_) => self.to_string(),
        }
    }

    /// Whether retrying the same request later may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            LlmError::RateLimited { .. }
            | LlmError::Unavailable { .. }
            | LlmError::Timeout(_)
            | LlmError::Connection(_)
            | LlmError::Truncated
            | LlmError::Exhausted { .. } => true,
            LlmError::Unauthorized { .. }
            | LlmError::Rejected { .. }
            | LlmError::Protocol(_)
            | LlmError::DeadlineExceeded
            | LlmError::Refused { .. }
            | LlmError::Limited(_)
            | LlmError::Guardrail(_) => false,
        }
    }
}

impl crate::telemetry::traced::ErrorType for LlmError {
    fn error_type(&self) -> &'static str {
        match self {
            LlmError::Unauthorized { .. } => "unauthorized",
            LlmError::RateLimited { .. } => "rate_limited",
            LlmError::Rejected { .. } => "rejected",
            LlmError::Unavailable { .. } => "unavailable",
            LlmError::Timeout(_) => "timeout",
            LlmError::Connection(_) => "connection",
            LlmError::Protocol(_) => "protocol",
            LlmError::Truncated => "truncated",
            LlmError::DeadlineExceeded => "deadline_exceeded",
            LlmError::Refused { .. } => "refused",
            LlmError::Exhausted { .. } => "exhausted",
            LlmError::Limited(crate::cost::Limited::Budget { .. }) => "budget_exhausted",
            LlmError::Limited(crate::cost::Limited::Rate { .. }) => "rate_limited",
            LlmError::Limited(crate::cost::Limited::Unavailable(_)) => "ledger_unavailable",
            LlmError::Guardrail(crate::guardrails::GuardrailError::Blocked { .. }) => {
                "guardrail_blocked"
            }
            LlmError::Guardrail(crate::guardrails::GuardrailError::Unavailable { .. }) => {
                "guardrail_unavailable"
            }
        }
    }
}

/// A source of model answers.
#[async_trait::async_trait]
pub trait LlmProvider: Send + Sync + std::fmt::Debug {
    /// The provider's configured name, for logs, spans and metrics.
    fn name(&self) -> &str;

    /// The model a call of `turn` tries first, when the provider chooses
    /// among several (a route's split); `None` for a single model.
    fn first_target(&self, _turn: &TurnContext) -> Option<String> {
        None
    }

    /// Starts a streamed answer to `request`, one attempt of a model call of
    /// the turn in `call`. Errors before the first byte (HTTP status,
    /// connection) are returned here; later ones arrive on the stream.
    async fn stream_chat(
        &self,
        call: &CallContext,
        request: LlmRequest,
    ) -> Result<LlmStream, LlmError>;
}
