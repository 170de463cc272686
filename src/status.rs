//! What an instance reports about itself: build, uptime, effective config and the
//! health of its dependencies.

use std::time::{Duration, SystemTime};

use tokio::time::Instant;

use crate::config::Config;
use crate::retrieval::store::KnowledgeStore;

/// The crate version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The git commit the binary was built from, or "" when unknown at build time.
pub const GIT_COMMIT: &str = env!("AGENTD_GIT_COMMIT");

/// Whether a dependency is usable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DependencyState {
    /// Answers normally.
    Healthy,
    /// Answers, but slowly or partially.
    Degraded,
    /// Does not answer, or answers with errors.
    Unhealthy,
}

/// The last known health of one dependency.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DependencyHealth {
    /// Stable name, e.g. "vector_store".
    pub name: String,
    /// Current state.
    pub state: DependencyState,
    /// Explanation; empty when healthy.
    pub detail: String,
    /// When the state was determined.
    pub checked_at: SystemTime,
}

/// A snapshot of the instance's status.
#[derive(Clone, Debug)]
pub struct StatusReport {
    /// Crate version.
    pub version: &'static str,
    /// Git commit, or "".
    pub git_commit: &'static str,
    /// When serving started.
    pub start_time: SystemTime,
    /// Time since then.
    pub uptime: Duration,
    /// Effective config with secrets redacted.
    pub effective_config: serde_json::Value,
    /// Dependency health, in a stable order.
    pub dependencies: Vec<DependencyHealth>,
}

/// The source of [`StatusReport`]s for one running instance.
#[derive(Debug)]
pub struct InstanceStatus {
    start_time: SystemTime,
    started: Instant,
    effective_config: serde_json::Value,
    vector_store: Option<KnowledgeStore>,
}

/// How long a dependency check may take before the dependency counts as unhealthy.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// The health of the vector store, checked now.
pub async fn vector_store_health(store: &KnowledgeStore) -> DependencyHealth {
    let (state, detail) = match tokio::time::timeout(CHECK_TIMEOUT, store.healthy()).await {
        Ok(Ok(())) => (DependencyState::Healthy, String::new()),
        Ok(Err(err)) => (DependencyState::Unhealthy, err.to_string()),
        Err(_) => (
            DependencyState::Unhealthy,
            format!(
                "no answer within {}",
                humantime::format_duration(CHECK_TIMEOUT)
            ),
        ),
    };
    DependencyHealth {
        name: "vector_store".to_owned(),
        state,
        detail,
        checked_at: SystemTime::now(),
    }
}

impl InstanceStatus {
    /// Status of an instance starting now with `config`.
    pub fn new(config: &Config, vector_store: Option<KnowledgeStore>) -> Self {
        Self {
            start_time: SystemTime::now(),
            started: Instant::now(),
            effective_config: config.redacted_json(),
            vector_store,
        }
    }

    /// The current status; dependencies are checked now.
    pub async fn report(&self) -> StatusReport {
        let mut dependencies = Vec::new();
        if let Some(store) = &self.vector_store {
            dependencies.push(vector_store_health(store).await);
        }
        StatusReport {
            version: VERSION,
            git_commit: GIT_COMMIT,
            start_time: self.start_time,
            uptime: self.started.elapsed(),
            effective_config: self.effective_config.clone(),
            dependencies,
        }
    }
}
