//! agentd: a production AI agent service over gRPC.
//!
//! The request path and the reasons behind the layout are in DESIGN.md; the
//! entry point for embedding and tests is [`app::App`].

pub mod agent;
pub mod app;
pub mod cli;
pub mod config;
pub mod error;
pub mod grpc;
pub mod identity;
pub mod llm;
pub mod middleware;
pub mod mock_llm;
pub mod retrieval;
pub mod status;
pub mod telemetry;

/// The generated types of the `agentd.v1` protobuf package.
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod pb {
    tonic::include_proto!("agentd.v1");

    /// The encoded file descriptor set of `agentd.v1`, for server reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        include_bytes!(concat!(env!("OUT_DIR"), "/agentd_descriptor.bin"));
}
