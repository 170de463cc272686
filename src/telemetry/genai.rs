//! Metrics of the agent, named by OpenTelemetry's GenAI semantic conventions
//! where one exists (`gen_ai_client_*`), `agentd_*` otherwise.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

/// Token-count buckets, powers of 4 from 1 to 4M (as the GenAI conventions advise).
const TOKEN_BUCKETS: [f64; 12] = [
    1.0,
    4.0,
    16.0,
    64.0,
    256.0,
    1024.0,
    4096.0,
    16384.0,
    65536.0,
    262_144.0,
    1_048_576.0,
    4_194_304.0,
];

/// Seconds, from 10 ms to 5 minutes: model calls and first tokens.
const SECONDS_BUCKETS: [f64; 15] = [
    0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92, 300.0,
];

/// Seconds, from 100 µs to a minute: tool calls (a local tool takes microseconds).
const TOOL_SECONDS_BUCKETS: [f64; 14] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 10.0, 60.0,
];

/// Seconds, from 100 µs to 10 s: a durable session write (one fsync'ed commit,
/// shared with the writes queued alongside it).
const WRITE_SECONDS_BUCKETS: [f64; 13] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.25, 1.0, 10.0,
];

/// Agent steps (model calls) per turn.
const STEP_BUCKETS: [f64; 8] = [1.0, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 16.0];

/// Labels of one model operation.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OperationLabels {
    /// `chat`.
    pub gen_ai_operation_name: String,
    /// The configured provider name.
    pub gen_ai_provider_name: String,
    /// The upstream model id requested.
    pub gen_ai_request_model: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TokenLabels {
    gen_ai_operation_name: String,
    gen_ai_provider_name: String,
    gen_ai_request_model: String,
    gen_ai_token_type: &'static str,
    /// The tenant (from config, so bounded).
    tenant: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DurationLabels {
    gen_ai_operation_name: String,
    gen_ai_provider_name: String,
    gen_ai_request_model: String,
    error_type: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ToolLabels {
    gen_ai_tool_name: String,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AnswerLabels {
    grounded: &'static str,
    cited: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DegradedLabels {
    reason: &'static str,
}

/// How the durable write of a completed turn ended: the `outcome` label of
/// `agentd_session_write_seconds`. A closed set, so alerts can name its values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SessionWriteOutcome {
    /// Stored (and confirmed by the replicas asked for).
    Ok,
    /// Stored on the primary; the replicas did not confirm in time.
    Unconfirmed,
    /// Another turn of the session was stored first.
    Conflict,
    /// The store could not be reached.
    Unavailable,
    /// The store is out of memory.
    Full,
    /// The write timed out: it may or may not have been stored.
    Unknown,
    /// Any other failure.
    Error,
}

impl SessionWriteOutcome {
    /// Every outcome.
    pub const ALL: [Self; 7] = [
        Self::Ok,
        Self::Unconfirmed,
        Self::Conflict,
        Self::Unavailable,
        Self::Full,
        Self::Unknown,
        Self::Error,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Unconfirmed => "unconfirmed",
            Self::Conflict => "conflict",
            Self::Unavailable => "unavailable",
            Self::Full => "full",
            Self::Unknown => "unknown",
            Self::Error => "error",
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WriteLabels {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ModelLabels {
    gen_ai_request_model: String,
}

/// The agent's metrics.
#[derive(Debug)]
pub struct GenAiMetrics {
    token_usage: Family<TokenLabels, Histogram>,
    operation_duration: Family<DurationLabels, Histogram>,
    time_to_first_token: Family<ModelLabels, Histogram>,
    tool_calls: Family<ToolLabels, Counter>,
    tool_duration: Family<ToolLabels, Histogram>,
    agent_steps: Family<ModelLabels, Histogram>,
    session_write: Family<WriteLabels, Histogram>,
    sessions_expired: Counter,
    answers: Family<AnswerLabels, Counter>,
    degraded_answers: Family<DegradedLabels, Counter>,
}

impl GenAiMetrics {
    /// Registers the metrics in `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        let tokens = || Histogram::new(TOKEN_BUCKETS);
        let seconds = || Histogram::new(SECONDS_BUCKETS);
        let steps = || Histogram::new(STEP_BUCKETS);
        let metrics = Self {
            token_usage: Family::new_with_constructor(tokens),
            operation_duration: Family::new_with_constructor(seconds),
            time_to_first_token: Family::new_with_constructor(seconds),
            tool_calls: Family::default(),
            tool_duration: Family::new_with_constructor(|| Histogram::new(TOOL_SECONDS_BUCKETS)),
            agent_steps: Family::new_with_constructor(steps),
            session_write: Family::new_with_constructor(|| Histogram::new(WRITE_SECONDS_BUCKETS)),
            sessions_expired: Counter::default(),
            answers: Family::default(),
            degraded_answers: Family::default(),
        };
        registry.register(
            "agentd_answers",
            "Completed turns by whether the answer drew on retrieved knowledge (grounded) \
             and whether it names one of those sources (cited)",
            metrics.answers.clone(),
        );
        // Every reason starts at 0, so the first degraded answer is an
        // increase an alert sees.
        for reason in [
            "upstream_failed",
            "breaker_open",
            "deadline",
            "vector_store_unavailable",
            "budget_downgrade",
        ] {
            metrics
                .degraded_answers
                .get_or_create(&DegradedLabels { reason })
                .inc_by(0);
        }
        registry.register(
            "agentd_degraded_answers",
            "Completed turns whose answer is degraded, by reason: upstream_failed, breaker_open \
             and deadline (the extractive answerer quoted the knowledge base instead of a model), \
             vector_store_unavailable (answered without the knowledge base), budget_downgrade \
             (a budget was exhausted and the tenant's cheaper downgrade_to route answered)",
            metrics.degraded_answers.clone(),
        );
        registry.register(
            "gen_ai_client_token_usage",
            "Tokens used per model call, by token type (input, output)",
            metrics.token_usage.clone(),
        );
        registry.register_with_unit(
            "gen_ai_client_operation_duration",
            "Duration of each model call, to its last chunk or its error",
            Unit::Seconds,
            metrics.operation_duration.clone(),
        );
        registry.register_with_unit(
            "agentd_time_to_first_token",
            "Time from the start of a turn to its first answer token sent to the client",
            Unit::Seconds,
            metrics.time_to_first_token.clone(),
        );
        registry.register(
            "agentd_tool_calls",
            "Tool calls by tool and outcome (ok, error, invalid_arguments, timeout, refused)",
            metrics.tool_calls.clone(),
        );
        registry.register_with_unit(
            "agentd_tool_duration",
            "Duration of each tool call, argument validation included, by tool and outcome",
            Unit::Seconds,
            metrics.tool_duration.clone(),
        );
        registry.register(
            "agentd_agent_steps",
            "Model calls per completed turn",
            metrics.agent_steps.clone(),
        );
        registry.register_with_unit(
            "agentd_session_write",
            "Time to store a completed turn durably, by outcome (ok, conflict, error)",
            Unit::Seconds,
            metrics.session_write.clone(),
        );
        registry.register(
            "agentd_sessions_expired",
            "Sessions deleted from the store because they passed sessions.max_age",
            metrics.sessions_expired.clone(),
        );
        metrics
    }

    /// Counts one completed turn: `grounded` when knowledge was given to the
    /// model, `cited` when the answer names a source.
    pub fn answer(&self, grounded: bool, cited: bool) {
        let flag = |b: bool| if b { "true" } else { "false" };
        self.answers
            .get_or_create(&AnswerLabels {
                grounded: flag(grounded),
                cited: flag(cited),
            })
            .inc();
    }

    /// Counts one completed turn whose answer is degraded, by why.
    pub fn degraded_answer(&self, reason: &'static str) {
        self.degraded_answers
            .get_or_create(&DegradedLabels { reason })
            .inc();
    }

    /// Counts sessions deleted for their age.
    pub fn sessions_expired(&self, count: usize) {
        self.sessions_expired
            .inc_by(u64::try_from(count).unwrap_or(u64::MAX));
    }

    /// Records one model call: its duration, its outcome (`error_type`, "" when it
    /// succeeded) and, when known, its token usage.
    pub fn model_call(
        &self,
        operation: &OperationLabels,
        elapsed: Duration,
        error_type: &str,
        tokens: Option<(u32, u32, &crate::ids::TenantId)>,
    ) {
        self.operation_duration
            .get_or_create(&DurationLabels {
                gen_ai_operation_name: operation.gen_ai_operation_name.clone(),
                gen_ai_provider_name: operation.gen_ai_provider_name.clone(),
                gen_ai_request_model: operation.gen_ai_request_model.clone(),
                error_type: error_type.to_owned(),
            })
            .observe(elapsed.as_secs_f64());
        if let Some((input, output, tenant)) = tokens {
            for (token_type, count) in [("input", input), ("output", output)] {
                self.token_usage
                    .get_or_create(&TokenLabels {
                        gen_ai_operation_name: operation.gen_ai_operation_name.clone(),
                        gen_ai_provider_name: operation.gen_ai_provider_name.clone(),
                        gen_ai_request_model: operation.gen_ai_request_model.clone(),
                        gen_ai_token_type: token_type,
                        tenant: tenant.to_string(),
                    })
                    .observe(f64::from(count));
            }
        }
    }

    /// Records the time to a turn's first token.
    pub fn first_token(&self, model: &str, elapsed: Duration) {
        self.time_to_first_token
            .get_or_create(&ModelLabels {
                gen_ai_request_model: model.to_owned(),
            })
            .observe(elapsed.as_secs_f64());
    }

    /// Counts one tool call and records its duration.
    pub fn tool_call(&self, tool: &str, outcome: &'static str, elapsed: Duration) {
        let labels = ToolLabels {
            gen_ai_tool_name: tool.to_owned(),
            outcome,
        };
        self.tool_calls.get_or_create(&labels).inc();
        self.tool_duration
            .get_or_create(&labels)
            .observe(elapsed.as_secs_f64());
    }

    /// Records the steps of a completed turn.
    pub fn steps(&self, model: &str, steps: u32) {
        self.agent_steps
            .get_or_create(&ModelLabels {
                gen_ai_request_model: model.to_owned(),
            })
            .observe(f64::from(steps));
    }

    /// Records the time a turn's session write took, by its outcome.
    pub fn session_write(&self, outcome: SessionWriteOutcome, elapsed: Duration) {
        self.session_write
            .get_or_create(&WriteLabels {
                outcome: outcome.as_str(),
            })
            .observe(elapsed.as_secs_f64());
    }
}
