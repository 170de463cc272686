//! Metrics of the guardrails: their decisions and the webhooks they ask.
//! Every label value comes from a closed set or from config, so series stay
//! bounded.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DecisionLabels {
    r#type: String,
    action: String,
    r#where: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WebhookLabels {
    webhook: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WebhookName {
    webhook: String,
}

/// Guardrail metrics; cheap to clone (clones share the series).
#[derive(Clone, Debug)]
pub struct GuardrailMetrics {
    decisions: Family<DecisionLabels, Counter>,
    webhook_calls: Family<WebhookLabels, Counter>,
    webhook_seconds: Family<WebhookName, Histogram>,
}

impl Default for GuardrailMetrics {
    fn default() -> Self {
        Self {
            decisions: Family::default(),
            webhook_calls: Family::default(),
            webhook_seconds: Family::new_with_constructor(|| {
                Histogram::new([0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0])
            }),
        }
    }
}

/// What became of one webhook request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WebhookOutcome {
    /// It answered and did not flag the text.
    Passed,
    /// It answered and flagged the text.
    Flagged,
    /// It failed, timed out or answered something unreadable.
    Error,
}

impl WebhookOutcome {
    fn as_str(self) -> &'static str {
        match self {
            WebhookOutcome::Passed => "passed",
            WebhookOutcome::Flagged => "flagged",
            WebhookOutcome::Error => "error",
        }
    }
}

impl GuardrailMetrics {
    /// Registers the metrics in `registry`, with a zero series for each PII
    /// type masked in a message (what zero configuration does).
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self::default();
        for kind in crate::guardrails::pii::PiiKind::ALL {
            metrics
                .decisions
                .get_or_create(&DecisionLabels {
                    r#type: kind.as_str().to_owned(),
                    action: "mask".to_owned(),
                    r#where: "message".to_owned(),
                })
                .inc_by(0);
        }
        metrics
            .decisions
            .get_or_create(&DecisionLabels {
                r#type: "PROMPT_INJECTION".to_owned(),
                action: "flag".to_owned(),
                r#where: "message".to_owned(),
            })
            .inc_by(0);
        registry.register(
            "agentd_guardrail_decisions",
            "Guardrail decisions, by what was found (a PII type, PROMPT_INJECTION, DENY_LIST, \
             WEBHOOK, UNKNOWN_PLACEHOLDER), what was done and where",
            metrics.decisions.clone(),
        );
        registry.register(
            "agentd_guardrail_webhook_requests",
            "Requests to guardrail webhooks, by outcome (passed, flagged, error)",
            metrics.webhook_calls.clone(),
        );
        registry.register(
            "agentd_guardrail_webhook_duration_seconds",
            "Time a guardrail webhook took to answer",
            metrics.webhook_seconds.clone(),
        );
        metrics
    }

    /// Starts the series of the webhook `name` at zero.
    pub fn webhook_known(&self, name: &str) {
        for outcome in [
            WebhookOutcome::Passed,
            WebhookOutcome::Flagged,
            WebhookOutcome::Error,
        ] {
            self.webhook_calls
                .get_or_create(&WebhookLabels {
                    webhook: name.to_owned(),
                    outcome: outcome.as_str().to_owned(),
                })
                .inc_by(0);
        }
    }

    /// Counts one decision.
    pub fn decision(&self, kind: &str, action: &str, place: &str) {
        self.decisions
            .get_or_create(&DecisionLabels {
                r#type: kind.to_owned(),
                action: action.to_owned(),
                r#where: place.to_owned(),
            })
            .inc();
    }

    /// Counts one webhook request and its time.
    pub fn webhook(&self, name: &str, outcome: WebhookOutcome, seconds: f64) {
        self.webhook_calls
            .get_or_create(&WebhookLabels {
                webhook: name.to_owned(),
                outcome: outcome.as_str().to_owned(),
            })
            .inc();
        self.webhook_seconds
            .get_or_create(&WebhookName {
                webhook: name.to_owned(),
            })
            .observe(seconds);
    }
}
