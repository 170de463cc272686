//! `agentd.v1.AgentService`: every handler converts its request (`requests`),
//! calls the orchestrator or the session store for the caller's tenant, and
//! converts the result back (`events`). Roles are the auth layer's; errors
//! become statuses through `AppError`.

mod events;
mod requests;

use std::sync::Arc;

use futures::StreamExt;
use futures::stream::BoxStream;
use tonic::{Request, Response, Status};

use super::caller;
use crate::agent::orchestrator::Orchestrator;
use crate::agent::sessions::SessionStore;
use crate::agent::turn::{AgentEvent, TurnOrigin, TurnRequest};
use crate::error::AppError;
use crate::ids::SessionId;
use crate::llm::{CallDeadline, Delivery};
use crate::middleware::deadline::Deadline;
use crate::middleware::observe::RequestId;
use crate::pb;
use crate::pb::agent_service_server::AgentService;

pub use requests::MAX_COLLECTIONS;

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

    /// Converts, prepares and runs a turn, its answer delivered as `delivery`.
    async fn start<T>(
        &self,
        request: Request<T>,
        delivery: Delivery,
    ) -> Result<BoxStream<'static, Result<AgentEvent, AppError>>, AppError>
    where
        TurnRequest: TryFrom<T, Error = AppError>,
    {
        let caller = caller(&request)?;
        let origin = TurnOrigin {
            tenant: caller.tenant,
            key: caller.key_name,
            request_id: request
                .extensions()
                .get::<RequestId>()
                .map(|id| id.0.clone())
                .unwrap_or_default(),
            deadline: request
                .extensions()
                .get::<Deadline>()
                .map(|d| CallDeadline {
                    at: d.at,
                    timeout: d.timeout,
                }),
            delivery,
        };
        let turn = TurnRequest::try_from(request.into_inner())?;
        let turn = self.orchestrator.prepare(origin, turn).await?;
        Ok(self
            .orchestrator
            .clone()
            .run(turn)
            .map(|event| event.map_err(AppError::from))
            .boxed())
    }
}

#[tonic::async_trait]
impl AgentService for AgentApi {
    type ChatStream = BoxStream<'static, Result<pb::ChatResponse, Status>>;

    async fn chat(
        &self,
        request: Request<pb::ChatRequest>,
    ) -> Result<Response<Self::ChatStream>, Status> {
        let events = self.start(request, Delivery::Streamed).await?;
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
        let mut events = self.start(request, Delivery::Whole).await?;
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
        let id = SessionId::try_from(request.into_inner())?;
        let session = self
            .sessions
            .get(&caller.tenant, &id)
            .await
            .map_err(AppError::from)?;
        Ok(Response::new(pb::GetSessionResponse {
            session: Some(session.into()),
        }))
    }

    async fn delete_session(
        &self,
        request: Request<pb::DeleteSessionRequest>,
    ) -> Result<Response<pb::DeleteSessionResponse>, Status> {
        let caller = caller(&request)?;
        let id = SessionId::try_from(request.into_inner())?;
        self.sessions
            .remove(&caller.tenant, &id)
            .await
            .map_err(AppError::from)?;
        Ok(Response::new(pb::DeleteSessionResponse {}))
    }
}
