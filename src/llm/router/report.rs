//! What the router reports about a turn's model calls: the route, every
//! attempt (target, outcome, latency), the model that answered and, when the
//! answer is degraded, why. Kept in the turn's state
//! ([`crate::llm::TurnContext::with_state`]), so the orchestrator can put it on
//! the response without knowing how it came about.

use std::time::Duration;

/// Why an answer is degraded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DegradationReason {
    /// Every target failed; the extractive answerer answered.
    UpstreamFailed,
    /// Every target's breaker was open, so no upstream was called; the
    /// extractive answerer answered.
    BreakerOpen,
    /// The knowledge base could not be searched.
    VectorStoreUnavailable,
    /// The deadline left no time for another attempt; the extractive answerer
    /// answered in the time kept for it.
    Deadline,
    /// A budget was exhausted on the route asked for, and the tenant's
    /// `downgrade_to` route answered instead.
    BudgetDowngrade,
}

impl DegradationReason {
    /// The name used in logs and span attributes.
    pub fn as_str(self) -> &'static str {
        match self {
            DegradationReason::UpstreamFailed => "upstream_failed",
            DegradationReason::BreakerOpen => "breaker_open",
            DegradationReason::VectorStoreUnavailable => "vector_store_unavailable",
            DegradationReason::Deadline => "deadline",
            DegradationReason::BudgetDowngrade => "budget_downgrade",
        }
    }
}

/// How one attempt ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttemptRecord {
    /// The model tried.
    pub target: String,
    /// `ok`, an error type (`unavailable`, `rate_limited`, ...), `breaker_open`
    /// (skipped: no upstream call) or `cancelled` (a hedge that lost).
    pub outcome: String,
    /// From the attempt's start to its end (or to its first token, for a
    /// hedge that lost); zero when skipped.
    pub latency: Duration,
}

/// The model that answered a call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AnsweredBy {
    /// The model's configured name (or "extractive").
    pub model: String,
    /// Its provider's configured name.
    pub provider: String,
    /// The provider's id of the model.
    pub upstream_model: String,
}

impl AnsweredBy {
    /// `target`.
    pub(super) fn of(target: &super::Target) -> Self {
        Self {
            model: target.name.clone(),
            provider: target.provider_name.clone(),
            upstream_model: target.upstream_id.clone(),
        }
    }

    /// The extractive answerer, the degraded end.
    pub(super) fn extractive() -> Self {
        let name = crate::llm::extractive::MODEL.to_owned();
        Self {
            model: name.clone(),
            provider: name.clone(),
            upstream_model: name,
        }
    }
}

/// The router's account of a turn, across its model calls.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RouteReport {
    /// The route the turn named (or the default).
    pub route: String,
    /// Every attempt of every model call, in order.
    pub attempts: Vec<AttemptRecord>,
    /// The model that answered the last model call.
    pub answered_by: Option<AnsweredBy>,
    /// Why the last model call was answered degraded, if it was.
    pub degraded: Option<DegradationReason>,
    /// Set by the knowledge search when the vector store could not be reached.
    pub vector_store_unavailable: bool,
    /// Set when a model call of the turn was downgraded to the tenant's
    /// `downgrade_to` route because a budget was exhausted.
    pub downgraded: bool,
    /// The last failure of an attempt, over the turn's calls.
    pub last_failure: Option<crate::llm::LlmError>,
}

impl RouteReport {
    /// Why the turn's answer is degraded, if it is: the last model call's
    /// reason first, then an unreachable knowledge base.
    pub fn degradation(&self) -> Option<DegradationReason> {
        self.degraded
            .or(self
                .vector_store_unavailable
                .then_some(DegradationReason::VectorStoreUnavailable))
            .or(self
                .downgraded
                .then_some(DegradationReason::BudgetDowngrade))
    }
}

/// Updates the turn's report.
pub fn update(turn: &crate::llm::TurnContext, f: impl FnOnce(&mut RouteReport)) {
    turn.with_state(|state| {
        if state.get::<RouteReport>().is_none() {
            state.insert(RouteReport::default());
        }
        if let Some(report) = state.get_mut::<RouteReport>() {
            f(report);
        }
    });
}

/// The turn's report, if the router made one.
pub fn of(turn: &crate::llm::TurnContext) -> Option<RouteReport> {
    read(turn, RouteReport::clone)
}

/// `f` of the turn's report, if the router made one, without copying it all.
pub fn read<T>(turn: &crate::llm::TurnContext, f: impl FnOnce(&RouteReport) -> T) -> Option<T> {
    turn.with_state(|state| state.get::<RouteReport>().map(f))
}
