//! The gRPC transport: one file per service. Handlers validate, convert proto to
//! domain types, call the domain and map errors; no business logic lives here.

pub mod admin;
pub mod agent;
pub mod codec;
mod convert;
pub mod retrieval;
