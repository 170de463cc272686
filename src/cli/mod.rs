//! Client-side commands of the `agentd` binary.

pub mod eval;
pub mod health;
pub mod ingest;
pub mod usage;
