//! agentd: a production AI agent service over gRPC.
//!
//! The request path, the layout and the decisions behind them are in
//! `docs/architecture.md`; the entry point for embedding and tests is
//! [`app::App`].
//!
//! Dependencies point one way: `app` → `grpc`, `middleware` → `error`
//! (every domain error becomes an `AppError` there), `status`, `health` →
//! `agent` → `llm` → `retrieval` → `telemetry` → `config` → `identity` →
//! `ids`, with `clock` and `tokenizer` used by all and using nothing.

pub mod agent;
pub mod app;
pub mod cli;
pub mod clock;
pub mod config;
pub mod cost;
pub mod error;
pub mod grpc;
pub mod guardrails;
pub mod health;
pub mod identity;
pub mod ids;
pub mod llm;
pub mod middleware;
pub mod retrieval;
pub mod state;
pub mod status;
pub mod telemetry;
pub mod tls;
pub mod tokenizer;

/// The generated types of the `agentd.v1` protobuf package.
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod pb {
    tonic::include_proto!("agentd.v1");

    /// The encoded file descriptor set of `agentd.v1`, for server reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        include_bytes!(concat!(env!("OUT_DIR"), "/agentd_descriptor.bin"));
}
