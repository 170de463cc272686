//! The tower layers every gRPC call passes through, outer to inner (assembled in
//! `app.rs`): observe (request id, span, metrics, access log, error details) →
//! auth → load shed → deadline → request size limit → drain of open streams.

pub mod auth;
pub mod body;
pub mod deadline;
pub mod drain;
pub mod load_shed;
pub mod observe;
pub mod request_limit;

use http::Response;
use tonic::body::Body;

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
