//! Metrics of the model router: every attempt by route, target and outcome,
//! and each circuit breaker's state and transitions.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AttemptLabels {
    route: String,
    target: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TargetLabels {
    target: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TransitionLabels {
    target: String,
    from: String,
    to: String,
}

/// The router's metrics; cheap to clone (clones share the series).
#[derive(Clone, Debug, Default)]
pub struct RouterMetrics {
    attempts: Family<AttemptLabels, Counter>,
    breaker_state: Family<TargetLabels, Gauge>,
    breaker_transitions: Family<TransitionLabels, Counter>,
}

impl RouterMetrics {
    /// Registers the metrics in `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self::default();
        registry.register(
            "agentd_llm_attempts",
            "Attempts of model calls by route, target (model) and outcome: ok, a failure kind \
             (rate_limited, unavailable, timeout, connection, truncated, protocol, unauthorized, \
             rejected, deadline_exceeded, refused), breaker_open (skipped, no upstream call) or \
             cancelled (a hedge that lost, a client that left)",
            metrics.attempts.clone(),
        );
        registry.register(
            "agentd_llm_breaker_state",
            "Circuit breaker state per target (a model, or `embeddings` for the embedding endpoint), in this process: 0 closed, 1 half-open, 2 open",
            metrics.breaker_state.clone(),
        );
        registry.register(
            "agentd_llm_breaker_transitions",
            "Circuit breaker state changes per target (a model, or `embeddings`), in this process, by from and to state",
            metrics.breaker_transitions.clone(),
        );
        metrics
    }

    /// Counts one attempt.
    pub fn attempt(&self, route: &str, target: &str, outcome: &str) {
        self.attempts
            .get_or_create(&AttemptLabels {
                route: route.to_owned(),
                target: target.to_owned(),
                outcome: outcome.to_owned(),
            })
            .inc();
    }

    /// Creates a target's transition series at 0, so its first transition is
    /// an increase an alert or a dashboard sees.
    pub fn breaker_known(&self, target: &str) {
        for (from, to) in [
            ("closed", "open"),
            ("open", "half_open"),
            ("half_open", "closed"),
            ("half_open", "open"),
            ("open", "closed"),
        ] {
            self.breaker_transitions
                .get_or_create(&TransitionLabels {
                    target: target.to_owned(),
                    from: from.to_owned(),
                    to: to.to_owned(),
                })
                .inc_by(0);
        }
    }

    /// Sets a breaker's state gauge (0 closed, 1 half-open, 2 open).
    pub fn breaker_state(&self, target: &str, value: i64) {
        self.breaker_state
            .get_or_create(&TargetLabels {
                target: target.to_owned(),
            })
            .set(value);
    }

    /// Counts a breaker's state change.
    pub fn breaker_transition(&self, target: &str, from: &str, to: &str) {
        self.breaker_transitions
            .get_or_create(&TransitionLabels {
                target: target.to_owned(),
                from: from.to_owned(),
                to: to.to_owned(),
            })
            .inc();
    }
}
