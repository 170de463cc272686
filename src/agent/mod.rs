//! The agent: token counting and context windows, tools and their registry.
//! (The orchestrator, sessions and the AgentService arrive with the rest of the
//! agent work; these parts are complete and tested on their own.)

pub mod context;
pub mod sessions;
pub mod tools;
