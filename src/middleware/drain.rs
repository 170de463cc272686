//! Ends the open services' streams (health `Watch`, reflection) once shutdown
//! begins: they are idle by nature and would otherwise hold the drain open for the
//! whole grace period. Each gets the NOT_SERVING update first, then UNAVAILABLE.

use futures::future::{BoxFuture, FutureExt};
use http::{Request, Response};
use tokio_util::sync::CancellationToken;
use tonic::body::Body;
use tower::Service;

use super::body::CutOffBody;
use super::{Stage, is_open};
use crate::error::AppError;

/// Cuts open-service streams when `shutdown` is cancelled.
#[derive(Clone, Debug)]
pub struct Drain {
    shutdown: CancellationToken,
}

impl Drain {
    /// A stage watching `shutdown`.
    pub fn new(shutdown: CancellationToken) -> Self {
        Self { shutdown }
    }
}

impl Stage for Drain {
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
        if !is_open(request.uri().path()) {
            return next.call(request).boxed();
        }
        let shutdown = self.shutdown.clone().cancelled_owned().boxed();
        let call = next.call(request);
        async move {
            let response = call.await?;
            Ok(response
                .map(|body| Body::new(CutOffBody::new(body, shutdown, AppError::ShuttingDown))))
        }
        .boxed()
    }
}
