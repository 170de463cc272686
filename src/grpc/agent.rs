//! `agentd.v1.AgentService`: converts requests into turns for the orchestrator
//! and its events back into protobuf. The `agent` role is enforced by the auth
//! layer; the caller's tenant scopes every session.

use std::sync::Arc;

use futures::StreamExt;
use futures::stream::BoxStream;
use tonic::{Request, Response, Status};

use super::convert;
use crate::agent::models::ModelChoice;
use crate::agent::orchestrator::Orchestrator;
use crate::agent::sessions::{Session, SessionId, SessionStore};
use crate::agent::turn::{
    AgentEvent, Source, ToolOutcome, TurnFinish, TurnOutcome, TurnRequest, TurnUsage,
};
use crate::config::Tier;
use crate::error::AppError;
use crate::identity::Caller;
use crate::llm::{ChatMessage, ToolCall};
use crate::middleware::observe::RequestId;
use crate::pb;
use crate::pb::agent_service_server::AgentService;

/// The AgentService implementation.
#[derive(Debug)]
pub struct AgentApi {
    orchestrator: Arc<Orchestrator>,
    sessions: Arc<dyn SessionStore>,
}

impl AgentApi {
    /// The service over one orchestrator and its session store.
    pub fn new(orchestrator: Arc<Orchestrator>, sessions: Arc<dyn SessionStore>) -> Self {
        Self {
            orchestrator,
            sessions,
        }
    }

    /// Validates and prepares a turn, then runs it.
    async fn start<T>(
        &self,
        request: Request<T>,
        into_turn: impl FnOnce(T) -> Result<TurnRequest, AppError>,
    ) -> Result<BoxStream<'static, Result<AgentEvent, AppError>>, AppError> {
        let caller = caller(&request)?;
        let request_id = request
            .extensions()
            .get::<RequestId>()
            .map(|id| id.0.clone())
            .unwrap_or_default();
        let turn = into_turn(request.into_inner())?;
        let turn = self
            .orchestrator
            .prepare(&caller.tenant, request_id, turn)
            .await?;
        Ok(self.orchestrator.clone().run(turn))
    }
}

/// The authenticated caller, put there by the auth layer.
fn caller<T>(request: &Request<T>) -> Result<Caller, AppError> {
    request
        .extensions()
        .get::<Caller>()
        .cloned()
        .ok_or_else(|| AppError::Internal(anyhow::anyhow!("no caller on an authenticated call")))
}

fn session_id(value: String) -> Result<SessionId, AppError> {
    if value.is_empty() {
        return Err(AppError::invalid("session_id", "is required"));
    }
    SessionId::try_from(value).map_err(|reason| AppError::invalid("session_id", reason))
}

#[tonic::async_trait]
impl AgentService for AgentApi {
    type ChatStream = BoxStream<'static, Result<pb::ChatResponse, Status>>;

    async fn chat(
        &self,
        request: Request<pb::ChatRequest>,
    ) -> Result<Response<Self::ChatStream>, Status> {
        let events = self
            .start(request, |r| {
                turn_request(r.message, r.session_id, r.options)
            })
            .await?;
        let responses = events.map(|event| {
            event
                .map(|event| pb::ChatResponse {
                    event: Some(event.into()),
                })
                .map_err(Status::from)
        });
        Ok(Response::new(responses.boxed()))
    }

    async fn ask(
        &self,
        request: Request<pb::AskRequest>,
    ) -> Result<Response<pb::AskResponse>, Status> {
        let mut events = self
            .start(request, |r| {
                turn_request(r.message, r.session_id, r.options)
            })
            .await?;
        let mut usage = None;
        while let Some(event) = events.next().await {
            match event? {
                AgentEvent::Usage(reported) => usage = Some(reported.into()),
                AgentEvent::Completed(outcome) => {
                    return Ok(Response::new(pb::AskResponse {
                        outcome: Some(outcome.into()),
                        usage,
                    }));
                }
                AgentEvent::Started { .. }
                | AgentEvent::Sources(_)
                | AgentEvent::Delta(_)
                | AgentEvent::ToolCall(_)
                | AgentEvent::ToolResult { .. } => {}
            }
        }
        Err(AppError::Internal(anyhow::anyhow!("the turn ended without completing")).into())
    }

    async fn get_session(
        &self,
        request: Request<pb::GetSessionRequest>,
    ) -> Result<Response<pb::GetSessionResponse>, Status> {
        let caller = caller(&request)?;
        let id = session_id(request.into_inner().session_id)?;
        let session = self
            .sessions
            .load(&caller.tenant, &id)
            .await
            .map_err(|err| AppError::Internal(err.into()))?
            .ok_or_else(|| AppError::SessionNotFound(id.as_str().to_owned()))?;
        Ok(Response::new(pb::GetSessionResponse {
            session: Some(session.into()),
        }))
    }

    async fn delete_session(
        &self,
        request: Request<pb::DeleteSessionRequest>,
    ) -> Result<Response<pb::DeleteSessionResponse>, Status> {
        let caller = caller(&request)?;
        let id = session_id(request.into_inner().session_id)?;
        let deleted = self
            .sessions
            .delete(&caller.tenant, &id)
            .await
            .map_err(|err| AppError::Internal(err.into()))?;
        if !deleted {
            return Err(AppError::SessionNotFound(id.as_str().to_owned()).into());
        }
        Ok(Response::new(pb::DeleteSessionResponse {}))
    }
}

/// The domain request of a Chat or Ask call. Range checks that depend on the
/// configuration (models, tools) are the orchestrator's.
fn turn_request(
    message: String,
    session_id: String,
    options: Option<pb::TurnOptions>,
) -> Result<TurnRequest, AppError> {
    let options = options.unwrap_or_default();
    let model = match options.model_choice {
        None => ModelChoice::Default,
        Some(pb::turn_options::ModelChoice::Model(name)) if name.is_empty() => {
            return Err(AppError::invalid(
                "options.model",
                "must not be empty when set",
            ));
        }
        Some(pb::turn_options::ModelChoice::Model(name)) => ModelChoice::Named(name),
        Some(pb::turn_options::ModelChoice::Tier(tier)) => match pb::ModelTier::try_from(tier) {
            Ok(pb::ModelTier::Unspecified) => ModelChoice::Default,
            Ok(pb::ModelTier::Fast) => ModelChoice::Tier(Tier::Fast),
            Ok(pb::ModelTier::Balanced) => ModelChoice::Tier(Tier::Balanced),
            Ok(pb::ModelTier::Strong) => ModelChoice::Tier(Tier::Strong),
            Err(_) => {
                return Err(AppError::invalid(
                    "options.tier",
                    format!("unknown tier {tier}"),
                ));
            }
        },
    };
    Ok(TurnRequest {
        message,
        session_id,
        model,
        max_output_tokens: options.max_output_tokens,
        temperature: options.temperature,
        tools: options.tools,
        collections: options.collections,
    })
}

impl From<AgentEvent> for pb::chat_response::Event {
    fn from(event: AgentEvent) -> Self {
        use pb::chat_response::Event;
        match event {
            AgentEvent::Started {
                request_id,
                model,
                system_prompt_version,
                session_id,
            } => Event::Started(pb::Started {
                request_id,
                model,
                system_prompt_version,
                session_id,
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
        };
        Self {
            answer: outcome.answer,
            finish_reason: finish.into(),
            session_id: outcome.session_id,
            model: outcome.model,
            sources: outcome.sources.into_iter().map(Into::into).collect(),
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

impl From<ChatMessage> for pb::SessionMessage {
    fn from(message: ChatMessage) -> Self {
        let (role, content, tool_calls, tool_call_id) = match message {
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
        }
    }
}
