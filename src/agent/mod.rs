//! The agent: the orchestrator and its agent loop, tools, sessions, the
//! context window, and how a turn fails.

pub mod context;
pub mod error;
pub mod orchestrator;
pub mod sessions;
pub mod tools;
pub mod turn;
