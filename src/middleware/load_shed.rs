//! Concurrency limit with load shedding: past `server.max_concurrent_calls` calls
//! in flight (open streams included), a new call is refused at once with
//! RESOURCE_EXHAUSTED and RetryInfo. Nothing waits in an unbounded queue.

use std::sync::Arc;

use futures::future::{BoxFuture, FutureExt};
use http::{Request, Response};
use tokio::sync::Semaphore;
use tonic::body::Body;
use tower::Service;

use super::body::GuardedBody;
use super::{Stage, error_response, is_open, respond};
use crate::error::AppError;

/// Sheds calls beyond a fixed number in flight.
#[derive(Clone, Debug)]
pub struct LoadShed {
    permits: Arc<Semaphore>,
    limit: usize,
}

impl LoadShed {
    /// A stage admitting at most `limit` calls at once.
    pub fn new(limit: usize) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(limit)),
            limit,
        }
    }
}

impl Stage for LoadShed {
    fn handle<S>(
        &self,
        request: Request<Body>,
        next: &mut S,
    ) -> BoxFuture<'static, Result<Response<Body>, S::Error>>
    where
        S: Service<Request<Body>, Response = Response<Body>>,
        S::Future: Send + 'static,
        S::Error: Send + 'static,
    {
        if is_open(request.uri().path()) {
            return next.call(request).boxed();
        }
        let Ok(permit) = self.permits.clone().try_acquire_owned() else {
            return respond(error_response(AppError::Overloaded { limit: self.limit }));
        };
        let call = next.call(request);
        async move {
            let response = call.await?;
            // The permit lives as long as the response body, so a stream counts
            // against the limit until it ends.
            Ok(response.map(|body| Body::new(GuardedBody::new(body, permit))))
        }
        .boxed()
    }
}
