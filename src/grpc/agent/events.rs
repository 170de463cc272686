//! Agent events and stored sessions as protobuf: the domain's values on their
//! way out to the caller.

use super::super::convert;
use crate::agent::sessions::{Session, SessionMessage};
use crate::agent::turn::{AgentEvent, Source, ToolOutcome, TurnFinish, TurnOutcome, TurnUsage};
use crate::guardrails::decisions::{Action, Decision, Place};
use crate::llm::router::report::DegradationReason;
use crate::llm::{ChatMessage, ToolCall};
use crate::pb;

impl From<AgentEvent> for pb::chat_response::Event {
    fn from(event: AgentEvent) -> Self {
        use pb::chat_response::Event;
        match event {
            AgentEvent::Started {
                request_id,
                turn_id,
                model,
                system_prompt_version,
                session_id,
            } => Event::Started(pb::Started {
                request_id,
                model,
                system_prompt_version,
                session_id: session_id.into(),
                turn_id: turn_id.into(),
            }),
            AgentEvent::Delta(text) => Event::Delta(pb::Delta { text }),
            AgentEvent::ToolCall(call) => Event::ToolCall(call.into()),
            AgentEvent::ToolResult {
                call_id,
                outcome,
                summary,
                latency,
            } => Event::ToolResult(pb::ToolResult {
                call_id,
                outcome: pb::ToolOutcome::from(outcome).into(),
                summary,
                latency: Some(convert::duration(latency)),
            }),
            AgentEvent::Sources(sources) => Event::Sources(pb::Sources {
                sources: sources.into_iter().map(Into::into).collect(),
            }),
            AgentEvent::Usage(usage) => Event::Usage(usage.into()),
            AgentEvent::Completed(outcome) => Event::Completed(outcome.into()),
        }
    }
}

impl From<ToolCall> for pb::ToolCall {
    fn from(call: ToolCall) -> Self {
        Self {
            call_id: call.id,
            tool_name: call.name,
            arguments_json: call.arguments,
        }
    }
}

impl From<ToolOutcome> for pb::ToolOutcome {
    fn from(outcome: ToolOutcome) -> Self {
        match outcome {
            ToolOutcome::Ok => Self::Ok,
            ToolOutcome::Error => Self::Error,
            ToolOutcome::InvalidArguments => Self::InvalidArguments,
            ToolOutcome::Timeout => Self::Timeout,
            ToolOutcome::Refused => Self::Refused,
        }
    }
}

impl From<TurnUsage> for pb::Usage {
    fn from(usage: TurnUsage) -> Self {
        Self {
            input_tokens: usage.input_tokens,
            output_tokens: usage.output_tokens,
            estimated: usage.estimated,
            cost_nano_usd: i64::try_from(usage.cost.nanos()).unwrap_or(i64::MAX),
            budgets: usage
                .budgets
                .into_iter()
                .map(|used| pb::BudgetLeft {
                    subject: if used.kind.is_session() {
                        "session".to_owned()
                    } else {
                        used.owner.to_string()
                    },
                    budget: used.kind.as_str().to_owned(),
                    limit: used.limit,
                    remaining: used.limit.saturating_sub(used.used),
                })
                .collect(),
        }
    }
}

impl From<TurnOutcome> for pb::TurnOutcome {
    fn from(outcome: TurnOutcome) -> Self {
        let finish = match outcome.finish {
            TurnFinish::Stop => pb::FinishReason::Stop,
            TurnFinish::Length => pb::FinishReason::Length,
            TurnFinish::ContentFilter => pb::FinishReason::ContentFilter,
            TurnFinish::MaxSteps => pb::FinishReason::MaxSteps,
            TurnFinish::Guardrail => pb::FinishReason::Guardrail,
        };
        Self {
            answer: outcome.answer,
            finish_reason: finish.into(),
            session_id: outcome.session_id.into(),
            model: outcome.model,
            sources: outcome.sources.into_iter().map(Into::into).collect(),
            turn_id: outcome.turn_id.into(),
            replication_unconfirmed: outcome.replication_unconfirmed,
            usage: Some(outcome.usage.into()),
            guardrails: outcome.guardrails.into_iter().map(decision).collect(),
            route: outcome.route,
            attempts: outcome
                .attempts
                .into_iter()
                .map(|attempt| pb::ModelAttempt {
                    model: attempt.target,
                    outcome: attempt.outcome,
                    latency: prost_types::Duration::try_from(attempt.latency).ok(),
                })
                .collect(),
            degraded: outcome.degraded.is_some(),
            degradation_reason: outcome
                .degraded
                .map_or(pb::DegradationReason::Unspecified, |reason| match reason {
                    DegradationReason::UpstreamFailed => pb::DegradationReason::UpstreamFailed,
                    DegradationReason::BreakerOpen => pb::DegradationReason::BreakerOpen,
                    DegradationReason::VectorStoreUnavailable => {
                        pb::DegradationReason::VectorStoreUnavailable
                    }
                    DegradationReason::Deadline => pb::DegradationReason::Deadline,
                    DegradationReason::BudgetDowngrade => pb::DegradationReason::BudgetDowngrade,
                })
                .into(),
        }
    }
}

impl From<Source> for pb::Source {
    fn from(source: Source) -> Self {
        Self {
            collection: source.collection,
            doc_id: source.doc_id,
            source_uri: source.source_uri,
            chunks: source
                .chunks
                .into_iter()
                .map(|chunk| pb::SourceChunk {
                    chunk_index: chunk.chunk_index,
                    text: chunk.text,
                    score: chunk.score,
                })
                .collect(),
            cited: source.cited,
        }
    }
}

impl From<Session> for pb::Session {
    fn from(session: Session) -> Self {
        let time = |ms: i64| {
            let at = std::time::UNIX_EPOCH
                + std::time::Duration::from_millis(u64::try_from(ms).unwrap_or(0));
            Some(convert::timestamp(at))
        };
        Self {
            session_id: session.id.as_str().to_owned(),
            turns: session.turns,
            create_time: time(session.created_at_ms),
            update_time: time(session.updated_at_ms),
            messages: session.messages.into_iter().map(Into::into).collect(),
        }
    }
}

impl From<SessionMessage> for pb::SessionMessage {
    fn from(stored: SessionMessage) -> Self {
        let (role, content, tool_calls, tool_call_id) = match stored.message {
            // The system prompt is never stored; mapped for completeness.
            ChatMessage::System { content } => {
                (pb::MessageRole::Unspecified, content, vec![], String::new())
            }
            ChatMessage::User { content } => {
                (pb::MessageRole::User, content, vec![], String::new())
            }
            ChatMessage::Assistant {
                content,
                tool_calls,
            } => (
                pb::MessageRole::Assistant,
                content,
                tool_calls.into_iter().map(Into::into).collect(),
                String::new(),
            ),
            ChatMessage::Tool { call_id, content } => {
                (pb::MessageRole::Tool, content, vec![], call_id)
            }
        };
        Self {
            role: role.into(),
            content,
            tool_calls,
            tool_call_id,
            turn_id: stored.turn_id.map(String::from).unwrap_or_default(),
        }
    }
}

/// One guardrail decision in the contract's terms.
fn decision(decision: Decision) -> pb::GuardrailDecision {
    pb::GuardrailDecision {
        r#type: decision.kind.to_owned(),
        action: match decision.action {
            Action::Flag => pb::GuardrailAction::Flag,
            Action::Mask => pb::GuardrailAction::Mask,
            Action::Redact => pb::GuardrailAction::Redact,
            Action::Block => pb::GuardrailAction::Block,
            Action::Strip => pb::GuardrailAction::Strip,
        }
        .into(),
        place: match decision.place {
            Place::Message => pb::GuardrailPlace::Message,
            Place::History => pb::GuardrailPlace::History,
            Place::Passage => pb::GuardrailPlace::Passage,
            Place::ToolResult => pb::GuardrailPlace::ToolResult,
            Place::Answer => pb::GuardrailPlace::Answer,
        }
        .into(),
        score: decision.score,
        count: decision.count,
        detail: decision.detail,
    }
}
