//! The Qdrant gRPC services of the embedded store, over the engine: the subset
//! agentd uses is served faithfully to Qdrant's semantics, every other method
//! answers UNIMPLEMENTED naming itself. Engine calls run on blocking threads.
//! One file per Qdrant service: `Qdrant` here, `Collections` and `Points`
//! beside it.

mod collections;
mod points;

use std::sync::Arc;
use std::time::Instant;

use qdrant_client::qdrant as grpc;
use qdrant_client::qdrant::qdrant_server::Qdrant;
use qdrant_edge as edge;
use tonic::{Request, Response, Status};

use super::engine::{Collection, Engine, EngineError};

/// The services, sharing one engine.
#[derive(Clone, Debug)]
pub struct EmbeddedQdrant {
    engine: Arc<Engine>,
}

impl EmbeddedQdrant {
    /// The services over `engine`.
    pub fn new(engine: Arc<Engine>) -> Self {
        Self { engine }
    }

    fn collection(&self, name: &str) -> Result<Arc<Collection>, Status> {
        self.engine
            .get(name)
            .ok_or_else(|| Status::not_found(format!("Collection `{name}` doesn't exist!")))
    }
}

fn not_served(method: &str) -> Status {
    Status::unimplemented(format!(
        "qdrant.{method} is not served by agentd's embedded Qdrant; use an external Qdrant \
         (retrieval.qdrant_url) for it"
    ))
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, Status> + Send + 'static,
) -> Result<T, Status> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|err| Status::internal(format!("engine task failed: {err}")))?
}

fn engine_error(err: EngineError) -> Status {
    match err {
        EngineError::Exists(_) => Status::already_exists(err.to_string()),
        EngineError::Invalid(_) => Status::invalid_argument(err.to_string()),
        EngineError::Storage(_) => Status::internal(err.to_string()),
    }
}

fn operation_error(err: edge::OperationError) -> Status {
    match err {
        edge::OperationError::ServiceError { .. }
        | edge::OperationError::InconsistentStorage { .. }
        | edge::OperationError::OutOfMemory { .. } => Status::internal(err.to_string()),
        edge::OperationError::Cancelled { .. } => Status::cancelled(err.to_string()),
        edge::OperationError::Timeout { .. } => Status::deadline_exceeded(err.to_string()),
        _ => Status::invalid_argument(err.to_string()),
    }
}

fn seconds(started: Instant) -> f64 {
    started.elapsed().as_secs_f64()
}

fn completed(started: Instant) -> grpc::PointsOperationResponse {
    grpc::PointsOperationResponse {
        result: Some(grpc::UpdateResult {
            operation_id: None,
            status: grpc::UpdateStatus::Completed as i32,
        }),
        time: seconds(started),
        usage: None,
    }
}

#[tonic::async_trait]
impl Qdrant for EmbeddedQdrant {
    async fn health_check(
        &self,
        _request: Request<grpc::HealthCheckRequest>,
    ) -> Result<Response<grpc::HealthCheckReply>, Status> {
        Ok(Response::new(grpc::HealthCheckReply {
            title: "agentd embedded qdrant (qdrant-edge 0.7.0)".to_owned(),
            version: "0.7.0".to_owned(),
            commit: None,
        }))
    }
}
