//! The tower layers every gRPC call passes through, outer to inner (assembled in
//! `app.rs`): observe (request id, span, metrics, access log, error details) →
//! catch panic → auth → load shed → deadline → request size limit → drain of
//! open streams.

pub mod auth;
pub mod body;
pub mod catch_panic;
pub mod deadline;
pub mod drain;
pub mod load_shed;
mod malformed;
pub mod observe;
pub mod request_limit;

use std::task::{Context, Poll};

use futures::future::{BoxFuture, FutureExt};
use http::{Request, Response};
use tonic::body::Body;
use tower::{Layer, Service};

use crate::error::AppError;

/// Services that stay open without auth and outside the concurrency limit: probes
/// and debugging must work even when the server is busy or the caller has no key.
pub const OPEN_SERVICES: [&str; 3] = [
    "grpc.health.v1.Health",
    "grpc.reflection.v1.ServerReflection",
    "grpc.reflection.v1alpha.ServerReflection",
];

/// The gRPC service of a request path `/package.Service/Method`; empty when the
/// path has another shape.
pub fn service_of(path: &str) -> &str {
    path.strip_prefix('/')
        .and_then(|rest| rest.split_once('/'))
        .map_or("", |(service, _)| service)
}

/// Whether calls to `path` belong to an open service.
pub fn is_open(path: &str) -> bool {
    OPEN_SERVICES.contains(&service_of(path))
}

/// A complete gRPC error response (trailers-only) for `err`.
pub fn error_response(err: AppError) -> Response<Body> {
    tonic::Status::from(err).into_http()
}

/// Answers a call at once with `response`, without calling the next stage.
pub fn respond<E: Send + 'static>(
    response: Response<Body>,
) -> BoxFuture<'static, Result<Response<Body>, E>> {
    futures::future::ready(Ok(response)).boxed()
}

/// One step of the call pipeline: it sees the request, and either answers it
/// itself or passes it to `next`, possibly wrapping the response.
pub trait Stage: Clone + Send + Sync + 'static {
    /// Handles one call.
    fn handle<S>(
        &self,
        request: Request<Body>,
        next: &mut S,
    ) -> BoxFuture<'static, Result<Response<Body>, S::Error>>
    where
        S: Service<Request<Body>, Response = Response<Body>>,
        S::Future: Send + 'static,
        S::Error: Send + 'static;
}

/// The tower layer of a [`Stage`].
#[derive(Clone, Debug)]
pub struct StageLayer<M>(M);

impl<M> StageLayer<M> {
    /// A layer running `stage` before the services it wraps.
    pub fn new(stage: M) -> Self {
        Self(stage)
    }
}

impl<S, M: Clone> Layer<S> for StageLayer<M> {
    type Service = StageService<S, M>;

    fn layer(&self, inner: S) -> Self::Service {
        StageService {
            inner,
            stage: self.0.clone(),
        }
    }
}

/// The tower service of a [`Stage`] in front of `S`.
#[derive(Clone, Debug)]
pub struct StageService<S, M> {
    inner: S,
    stage: M,
}

impl<S, M> Service<Request<Body>> for StageService<S, M>
where
    M: Stage,
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
        self.stage.handle(request, &mut self.inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_names_come_from_the_path() {
        assert_eq!(
            service_of("/agentd.v1.AdminService/GetStatus"),
            "agentd.v1.AdminService"
        );
        assert_eq!(service_of("/nonsense"), "");
        assert!(is_open("/grpc.health.v1.Health/Check"));
        assert!(!is_open("/agentd.v1.AdminService/GetStatus"));
    }
}
