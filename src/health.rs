//! Health and readiness: one table of which condition flips which
//! `grpc.health.v1` service (docs/architecture.md, "Health and readiness").
//!
//! | condition            | ""  | AgentService | RetrievalService | AdminService |
//! |----------------------|-----|--------------|------------------|--------------|
//! | draining (shutdown)  | NOT | NOT          | NOT              | NOT          |
//! | session store down   | —   | NOT          | —                | —            |
//! | vector store down    | —   | —            | NOT              | —            |
//! | no route can answer  | —   | NOT          | —                | —            |
//!
//! "No route can answer": every route's chain has its models' circuit
//! breakers open and ends in `UNAVAILABLE` rather than the extractive answer
//! (a route that can answer extractively keeps AgentService serving). It
//! clears by itself when a breaker's cool-down lets probes through.
//!
//! The overall service `""` (what a Kubernetes readiness probe asks) turns
//! NOT_SERVING only while draining: a dependency every replica shares going
//! down must not take every replica out of the load balancer at once, which
//! would turn a partial outage (agent turns still answer without the vector
//! store) into a total one. Dependency health shows per service and in
//! GetStatus. Later work adds rows here, not exceptions elsewhere.

use std::sync::Mutex;

use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

/// The health services agentd reports, besides the overall `""`.
pub const AGENT_SERVICE: &str = "agentd.v1.AgentService";
/// See [`AGENT_SERVICE`].
pub const RETRIEVAL_SERVICE: &str = "agentd.v1.RetrievalService";
/// See [`AGENT_SERVICE`].
pub const ADMIN_SERVICE: &str = "agentd.v1.AdminService";

/// What the health of the instance depends on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conditions {
    /// The instance is shutting down.
    pub draining: bool,
    /// The session store answers.
    pub session_store_up: bool,
    /// The vector store answers.
    pub vector_store_up: bool,
    /// Some route can produce an answer.
    pub routes_up: bool,
}

impl Default for Conditions {
    fn default() -> Self {
        Self {
            draining: false,
            session_store_up: true,
            vector_store_up: true,
            routes_up: true,
        }
    }
}

impl Conditions {
    /// The table: whether each health service is serving.
    pub fn serving(&self) -> [(&'static str, bool); 4] {
        let up = !self.draining;
        [
            ("", up),
            (AGENT_SERVICE, up && self.session_store_up && self.routes_up),
            (RETRIEVAL_SERVICE, up && self.vector_store_up),
            (ADMIN_SERVICE, up),
        ]
    }
}

/// The instance's health: its conditions, published to the health service.
#[derive(Debug)]
pub struct Health {
    reporter: HealthReporter,
    conditions: Mutex<Conditions>,
}

impl Health {
    /// Health published through `reporter`; call [`Health::publish`] once to
    /// set the first statuses.
    pub fn new(reporter: HealthReporter) -> Self {
        Self {
            reporter,
            conditions: Mutex::new(Conditions::default()),
        }
    }

    /// The current conditions.
    pub fn conditions(&self) -> Conditions {
        // Conditions are plain copies; a poisoned lock still holds a whole value.
        *self
            .conditions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Changes the conditions and publishes the statuses the table gives.
    pub async fn update(&self, change: impl FnOnce(&mut Conditions)) {
        let (before, after) = {
            let mut conditions = self
                .conditions
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let before = *conditions;
            change(&mut conditions);
            (before, *conditions)
        };
        if before != after {
            tracing::warn!(?before, ?after, "health conditions changed");
            self.publish().await;
        }
    }

    /// Publishes the statuses of the current conditions.
    pub async fn publish(&self) {
        for (service, serving) in self.conditions().serving() {
            let status = if serving {
                ServingStatus::Serving
            } else {
                ServingStatus::NotServing
            };
            self.reporter.set_service_status(service, status).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn serving(conditions: Conditions) -> Vec<bool> {
        conditions.serving().iter().map(|(_, up)| *up).collect()
    }

    #[test]
    fn only_draining_takes_the_whole_instance_out() {
        let healthy = Conditions::default();
        assert_eq!(serving(healthy), [true, true, true, true]);
        let no_vectors = Conditions {
            vector_store_up: false,
            ..healthy
        };
        assert_eq!(serving(no_vectors), [true, true, false, true]);
        let no_sessions = Conditions {
            session_store_up: false,
            ..healthy
        };
        assert_eq!(serving(no_sessions), [true, false, true, true]);
        let no_routes = Conditions {
            routes_up: false,
            ..healthy
        };
        assert_eq!(serving(no_routes), [true, false, true, true]);
        let draining = Conditions {
            draining: true,
            ..healthy
        };
        assert_eq!(serving(draining), [false, false, false, false]);
    }
}
