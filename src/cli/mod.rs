//! Client-side commands of the `agentd` binary.

pub mod ingest;
