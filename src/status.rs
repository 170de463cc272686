//! What an instance reports about itself: build, uptime, whether it is
//! draining, the effective config (the caller's share of it) and the health of
//! its dependencies.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::time::Instant;

use crate::agent::sessions::SessionStore;
use crate::clock::Clock;
use crate::config::Config;
use crate::health::Health;
use crate::identity::AdminScope;
use crate::llm::router::{Router, TargetHealth};
use crate::retrieval::store::KnowledgeStore;

/// The crate version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The git commit the binary was built from, or "" when unknown at build time.
pub const GIT_COMMIT: &str = env!("AGENTD_GIT_COMMIT");

/// The name of this instance for the admin API: `HOSTNAME` (the pod's name on
/// Kubernetes), else the kernel's host name, else "unknown".
pub fn instance_name() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "unknown".to_owned())
}

/// How long a dependency check may take before the dependency counts as unhealthy.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

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
    /// Whether the instance is shutting down.
    pub draining: bool,
    /// Effective config with secrets redacted, limited to the caller's scope.
    pub effective_config: serde_json::Value,
    /// Dependency health, in a stable order.
    pub dependencies: Vec<DependencyHealth>,
    /// What each listener is bound to (`grpc`, `metrics`, `embedded_qdrant`);
    /// empty for a caller whose scope is one tenant.
    pub bound_addresses: BTreeMap<String, SocketAddr>,
    /// Every model's health on this instance.
    pub models: Vec<TargetHealth>,
}

/// The dependencies whose health an instance reports.
#[derive(Debug, Clone)]
pub struct Dependencies {
    /// Where conversations are kept.
    pub sessions: Arc<dyn SessionStore>,
    /// Where documents are kept.
    pub knowledge: KnowledgeStore,
    /// The models, through their routes.
    pub router: Arc<Router>,
}

impl Dependencies {
    /// The health of each dependency, checked now, in a stable order.
    pub async fn check(&self, clock: &Clock) -> Vec<DependencyHealth> {
        let (sessions, knowledge) = tokio::join!(
            checked(clock, "session_store", async {
                self.sessions.check().await.map_err(|err| err.to_string())
            }),
            checked(clock, "vector_store", async {
                self.knowledge
                    .healthy()
                    .await
                    .map_err(|err| err.to_string())
            }),
        );
        vec![sessions, knowledge]
    }
}

/// The health of one dependency from its check, bounded by [`CHECK_TIMEOUT`].
async fn checked(
    clock: &Clock,
    name: &str,
    check: impl std::future::Future<Output = Result<(), String>>,
) -> DependencyHealth {
    let (state, detail) = match clock.timeout(CHECK_TIMEOUT, check).await {
        Ok(Ok(())) => (DependencyState::Healthy, String::new()),
        Ok(Err(err)) => (DependencyState::Unhealthy, err),
        Err(_) => (
            DependencyState::Unhealthy,
            format!(
                "no answer within {}",
                humantime::format_duration(CHECK_TIMEOUT)
            ),
        ),
    };
    DependencyHealth {
        name: name.to_owned(),
        state,
        detail,
        checked_at: clock.wall(),
    }
}

/// The source of [`StatusReport`]s for one running instance.
#[derive(Debug)]
pub struct InstanceStatus {
    start_time: SystemTime,
    started: Instant,
    effective_config: serde_json::Value,
    bound_addresses: BTreeMap<String, SocketAddr>,
    dependencies: Dependencies,
    health: Arc<Health>,
    clock: Clock,
}

impl InstanceStatus {
    /// Status of an instance starting now with `config`, its listeners bound to
    /// `bound_addresses`.
    pub fn new(
        config: &Config,
        bound_addresses: BTreeMap<String, SocketAddr>,
        dependencies: Dependencies,
        health: Arc<Health>,
        clock: Clock,
    ) -> Self {
        Self {
            start_time: clock.wall(),
            started: clock.now(),
            effective_config: config.redacted_json(),
            bound_addresses,
            dependencies,
            health,
            clock,
        }
    }

    /// The current status as `scope` may see it; dependencies are checked now.
    pub async fn report(&self, scope: &AdminScope) -> StatusReport {
        StatusReport {
            version: VERSION,
            git_commit: GIT_COMMIT,
            start_time: self.start_time,
            uptime: self.clock.now().saturating_duration_since(self.started),
            draining: self.health.conditions().draining,
            effective_config: scoped(self.effective_config.clone(), scope),
            dependencies: self.dependencies.check(&self.clock).await,
            models: self
                .dependencies
                .router
                .targets()
                .map(|target| target.health())
                .collect(),
            bound_addresses: match scope {
                AdminScope::All => self.bound_addresses.clone(),
                AdminScope::Tenant(_) => BTreeMap::new(),
            },
        }
    }
}

/// The part of the effective config `scope` may see. An `operator` sees all of
/// it. An `admin` sees only what is its tenant's, built from an allowlist (a
/// section added later stays hidden until it is added here): its keys
/// (`auth.keys`), the tools it is offered (`tools.default`) and may use
/// (`tools.tenants`, its entry; no entry means every tool). Later per-tenant
/// sections (budgets) join this list.
fn scoped(config: serde_json::Value, scope: &AdminScope) -> serde_json::Value {
    let AdminScope::Tenant(tenant) = scope else {
        return config;
    };
    let own_keys: Vec<serde_json::Value> = config
        .pointer("/auth/keys")
        .and_then(serde_json::Value::as_array)
        .into_iter()
        .flatten()
        .filter(|key| key["tenant"] == tenant.as_str())
        .cloned()
        .collect();
    let mut own_tools = serde_json::Map::new();
    if let Some(allowed) = config.pointer(&format!("/tools/tenants/{tenant}")) {
        own_tools.insert(tenant.to_string(), allowed.clone());
    }
    serde_json::json!({
        "auth": {"keys": own_keys},
        "tools": {
            "default": config.pointer("/tools/default").cloned().unwrap_or_default(),
            "tenants": own_tools,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::TenantId;

    #[test]
    fn an_admin_sees_only_its_own_tenants_keys_and_tools() {
        let config = serde_json::json!({
            "auth": {"keys": [
                {"name": "a", "tenant": "acme", "sha256": "***"},
                {"name": "g", "tenant": "globex", "sha256": "***"},
            ]},
            "tools": {"default": ["current_time"], "tenants": {"acme": [], "globex": []}},
            "llm": {"providers": {"openai": {"base_url": "https://api.openai.com/v1"}}},
        });
        let acme = AdminScope::Tenant(TenantId::try_from("acme").unwrap());
        let seen = scoped(config.clone(), &acme);
        assert_eq!(
            seen,
            serde_json::json!({
                "auth": {"keys": [{"name": "a", "tenant": "acme", "sha256": "***"}]},
                "tools": {"default": ["current_time"], "tenants": {"acme": []}},
            })
        );
        assert_eq!(scoped(config.clone(), &AdminScope::All), config);
    }
}
