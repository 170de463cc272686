//! One turn of a conversation as the domain sees it: what the caller asks, and
//! the events the agent streams back.

use std::time::Duration;

use super::models::ModelChoice;
use crate::llm::ToolCall;

/// What the caller asks in one turn, before validation.
#[derive(Clone, Debug, PartialEq)]
pub struct TurnRequest {
    /// The user's message.
    pub message: String,
    /// The session to continue; empty starts a new one.
    pub session_id: String,
    /// Which model answers.
    pub model: ModelChoice,
    /// Cap on output tokens per model call.
    pub max_output_tokens: Option<u32>,
    /// Sampling temperature.
    pub temperature: Option<f32>,
    /// The tools offered; empty offers the defaults.
    pub tools: Vec<String>,
}

/// How one tool call ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ToolOutcome {
    /// It returned a result.
    Ok,
    /// It ran and failed.
    Error,
    /// Its arguments were invalid.
    InvalidArguments,
    /// It did not finish in time.
    Timeout,
    /// It was not offered for this turn, does not exist, or was not run.
    Refused,
}

impl ToolOutcome {
    /// The label used in metrics and spans.
    pub fn as_str(self) -> &'static str {
        match self {
            ToolOutcome::Ok => "ok",
            ToolOutcome::Error => "error",
            ToolOutcome::InvalidArguments => "invalid_arguments",
            ToolOutcome::Timeout => "timeout",
            ToolOutcome::Refused => "refused",
        }
    }
}

/// Why a turn ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TurnFinish {
    /// The model finished.
    Stop,
    /// The output cap was reached.
    Length,
    /// The provider's content filter stopped the answer.
    ContentFilter,
    /// The model still wanted tools after `agent.max_steps` calls.
    MaxSteps,
}

/// Tokens a turn used.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TurnUsage {
    /// Prompt tokens, summed over model calls.
    pub input_tokens: u32,
    /// Completion tokens, summed over model calls.
    pub output_tokens: u32,
    /// Whether any count is a tiktoken estimate.
    pub estimated: bool,
}

/// The result of a completed turn.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TurnOutcome {
    /// Every text delta, concatenated.
    pub answer: String,
    /// Why it ended.
    pub finish: TurnFinish,
    /// The session holding the turn.
    pub session_id: String,
    /// The public model name.
    pub model: String,
}

/// One event of a running turn, in the order the client receives them.
#[derive(Clone, Debug, PartialEq)]
pub enum AgentEvent {
    /// The turn was accepted.
    Started {
        /// The call's request id.
        request_id: String,
        /// The public model name.
        model: String,
        /// Fingerprint of the system prompt.
        system_prompt_version: String,
        /// The session (new or continued).
        session_id: String,
    },
    /// Answer text.
    Delta(String),
    /// The model called a tool.
    ToolCall(ToolCall),
    /// A tool call ended.
    ToolResult {
        /// The call's id.
        call_id: String,
        /// How it ended.
        outcome: ToolOutcome,
        /// Result or error, at most 200 characters.
        summary: String,
        /// Time it took.
        latency: Duration,
    },
    /// Tokens used by the turn.
    Usage(TurnUsage),
    /// The turn is complete and stored.
    Completed(TurnOutcome),
}
