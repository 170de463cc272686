//! Ends the open services' streams (health `Watch`, reflection) once shutdown
//! begins: they are idle by nature and would otherwise hold the drain open for the
//! whole grace period. Each gets the NOT_SERVING update first, then UNAVAILABLE.

use std::task::{Context, Poll};

use futures::future::{BoxFuture, FutureExt};
use http::{Request, Response};
use tokio_util::sync::CancellationToken;
use tonic::body::Body;
use tower::{Layer, Service};

use super::body::CutOffBody;
use super::is_open;
use crate::error::AppError;

/// Layer that cuts open-service streams when `shutdown` is cancelled.
#[derive(Clone, Debug)]
pub struct DrainLayer {
    shutdown: CancellationToken,
}

impl DrainLayer {
    /// A layer watching `shutdown`.
    pub fn new(shutdown: CancellationToken) -> Self {
        Self { shutdown }
    }
}

impl<S> Layer<S> for DrainLayer {
    type Service = Drain<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Drain {
            inner,
            shutdown: self.shutdown.clone(),
        }
    }
}

/// The service made by [`DrainLayer`].
#[derive(Clone, Debug)]
pub struct Drain<S> {
    inner: S,
    shutdown: CancellationToken,
}

impl<S> Service<Request<Body>> for Drain<S>
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
        if !is_open(request.uri().path()) {
            return self.inner.call(request).boxed();
        }
        let shutdown = self.shutdown.clone().cancelled_owned().boxed();
        let call = self.inner.call(request);
        async move {
            let response = call.await?;
            Ok(response
                .map(|body| Body::new(CutOffBody::new(body, shutdown, AppError::ShuttingDown))))
        }
        .boxed()
    }
}
