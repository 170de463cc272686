//! The tasks that run beside the server: the session sweeper and the
//! dependency watcher.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::agent::sessions::SessionStore;
use crate::clock::Clock;
use crate::health::Health;
use crate::status::Dependencies;
use crate::telemetry::metrics::DependencyMetrics;

/// Deletes expired sessions every `interval` on `clock`, until `stop`.
pub(super) async fn sweep_sessions(
    sessions: Arc<dyn SessionStore>,
    interval: std::time::Duration,
    metrics: Arc<crate::telemetry::genai::GenAiMetrics>,
    clock: Clock,
    stop: CancellationToken,
) {
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = clock.sleep(interval) => {}
        }
        match sessions.sweep_expired().await {
            Ok(0) => {}
            Ok(count) => {
                metrics.sessions_expired(count);
                tracing::info!(count, "expired sessions deleted");
            }
            Err(err) => tracing::warn!(error = %err, "sweeping expired sessions failed"),
        }
    }
}

/// How often the dependencies' health is checked.
const CHECK_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// Keeps the health conditions and `agentd_dependency_up` in step with the
/// dependencies, checked every [`CHECK_EVERY`] on `clock`, until `stop`.
pub(super) async fn watch_dependencies(
    dependencies: Dependencies,
    health: Arc<Health>,
    gauges: DependencyMetrics,
    clock: Clock,
    stop: CancellationToken,
) {
    use crate::status::DependencyState::Healthy;
    loop {
        let checked = tokio::select! {
            () = stop.cancelled() => return,
            checked = dependencies.check(&clock) => checked,
        };
        for dependency in &checked {
            gauges.set(&dependency.name, dependency.state == Healthy);
        }
        let up = |name: &str| checked.iter().any(|d| d.name == name && d.state == Healthy);
        let (session_store_up, vector_store_up) = (up("session_store"), up("vector_store"));
        let routes_up = dependencies.router.can_answer(vector_store_up);
        health
            .update(|conditions| {
                conditions.session_store_up = session_store_up;
                conditions.vector_store_up = vector_store_up;
                conditions.routes_up = routes_up;
            })
            .await;
        tokio::select! {
            () = stop.cancelled() => return,
            () = clock.sleep(CHECK_EVERY) => {}
        }
    }
}
