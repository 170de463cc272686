//! The agent: the orchestrator and its agent loop, models, tools, sessions and
//! the context window.

pub mod context;
pub mod models;
pub mod orchestrator;
pub mod sessions;
pub mod tools;
pub mod turn;
