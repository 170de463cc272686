//! The gRPC transport: one module per service. Handlers convert requests into
//! domain values (`TryFrom<pb::X>`, which owns the proto field paths of the
//! problems it finds), call the domain, and convert the results back; errors
//! become statuses through `AppError`. Roles are checked by the auth layer, not
//! here, and no business logic lives here.

pub mod admin;
pub mod agent;
pub mod codec;
mod convert;
mod cost;
pub mod retrieval;

use tonic::Request;

use crate::error::AppError;
use crate::identity::Caller;

/// The field paths of an invalid-argument error (for the conversions' tests).
#[cfg(test)]
fn invalid_fields(err: AppError) -> Vec<String> {
    match err {
        AppError::InvalidArgument(problems) => problems.into_iter().map(|p| p.field).collect(),
        other => panic!("not an invalid argument: {other:?}"),
    }
}

/// The authenticated caller, put in the request by the auth layer.
fn caller<T>(request: &Request<T>) -> Result<Caller, AppError> {
    request
        .extensions()
        .get::<Caller>()
        .cloned()
        .ok_or_else(|| AppError::Internal(anyhow::anyhow!("no caller on an authenticated call")))
}
