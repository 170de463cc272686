//! Integration tests: the real server, started in-process on 127.0.0.1:0 through
//! `App::build`, called with the generated tonic client, a raw HTTP/2 client,
//! grpcurl and the `agentd` binary. Logs show when TEST_LOG is set.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod agent;
mod agent_cancel;
mod agent_faults;
mod agent_process;
mod agent_telemetry;
mod agent_tenants;
mod auth;
mod bench;
mod cli;
mod cost;
mod embeddings;
mod errors;
mod eval_cli;
mod grounded;
mod grpcurl;
mod guardrails;
mod helpers;
mod ingest_cli;
mod knowledge;
mod limits;
mod llm;
mod metric_names;
mod python_client;
mod qdrant;
mod resilience;
mod resilience_breaker;
mod resilience_hedge;
mod resilience_store;
mod retrieval;
mod shutdown;
mod state_redis;
mod status;
mod store_process;
mod telemetry;
mod tls;
mod turns;
