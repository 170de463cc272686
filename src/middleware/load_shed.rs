//! Concurrency limit with load shedding: past `server.max_concurrent_calls` calls
//! in flight (open streams included), a new call is refused at once with
//! RESOURCE_EXHAUSTED and RetryInfo. Nothing waits in an unbounded queue.

use std::sync::Arc;
use std::task::{Context, Poll};

use futures::future::{BoxFuture, FutureExt};
use http::{Request, Response};
use tokio::sync::Semaphore;
use tonic::body::Body;
use tower::{Layer, Service};

use super::body::GuardedBody;
use super::{error_response, is_open};
use crate::error::AppError;

/// Layer that sheds calls beyond a fixed number in flight.
#[derive(Clone, Debug)]
pub struct LoadShedLayer {
    permits: Arc<Semaphore>,
    limit: usize,
}

impl LoadShedLayer {
    /// A layer admitting at most `limit` calls at once.
    pub fn new(limit: usize) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(limit)),
            limit,
        }
    }
}

impl<S> Layer<S> for LoadShedLayer {
    type Service = LoadShed<S>;

    fn layer(&self, inner: S) -> Self::Service {
        LoadShed {
            inner,
            permits: self.permits.clone(),
            limit: self.limit,
        }
    }
}

/// The service made by [`LoadShedLayer`].
#[derive(Clone, Debug)]
pub struct LoadShed<S> {
    inner: S,
    permits: Arc<Semaphore>,
    limit: usize,
}

impl<S> Service<Request<Body>> for LoadShed<S>
where
    S: Service<Request<Body>, Response = Response<Body>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Response<Body>, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        if is_open(request.uri().path()) {
            return self.inner.call(request).boxed();
        }
        let Ok(permit) = self.permits.clone().try_acquire_owned() else {
            let response = error_response(AppError::Overloaded { limit: self.limit });
            return futures::future::ready(Ok(response)).boxed();
        };
        let call = self.inner.call(request);
        async move {
            let response = call.await?;
            // The permit lives as long as the response body, so a stream counts
            // against the limit until it ends.
            Ok(response.map(|body| Body::new(GuardedBody::new(body, permit))))
        }
        .boxed()
    }
}
