//! One attempt of a model call on one target: what the breaker lets through,
//! the time it may take, how it is recorded (metrics, the turn's report, the
//! target's health, its `chat` span), and the retries on the same target.

use crate::cost::prices::{Price, TokenCount};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use backon::Retryable;
use futures::StreamExt;
use tokio::time::Instant;
use tower::retry::budget::Budget;
use tracing::Instrument;
use tracing::field::Empty;

use super::breaker::Permit;
use super::report::{self, AttemptRecord};
use super::{Route, Router, Target};
use crate::config::Degraded;
use crate::llm::{CallContext, LlmError, LlmEvent, LlmRequest, LlmStream, TurnContext};
use crate::telemetry::resilience::RouterMetrics;
use crate::telemetry::traced::ErrorType;

/// What to do after a failed attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Next {
    /// Retry the same target, then fail over.
    Retry,
    /// Fail over to the next target.
    FailOver,
    /// End the call with this error.
    Stop,
}

/// The issue's list: what is retried, what fails over, what ends the call.
pub(super) fn next_after(error: &LlmError) -> Next {
    match error {
        LlmError::RateLimited { .. }
        | LlmError::Timeout(_)
        | LlmError::Connection(_)
        | LlmError::Truncated => Next::Retry,
        LlmError::Unavailable {
            status: 500 | 502 | 503 | 504,
            ..
        } => Next::Retry,
        LlmError::Rejected { status: 408, .. } => Next::Retry,
        LlmError::Unauthorized { .. } | LlmError::Unavailable { .. } | LlmError::Protocol(_) => {
            Next::FailOver
        }
        LlmError::Rejected { .. }
        | LlmError::DeadlineExceeded
        | LlmError::Refused { .. }
        | LlmError::Limited(_)
        | LlmError::Guardrail(_)
        | LlmError::Exhausted { .. } => Next::Stop,
    }
}

/// Whether the failure counts against the target's breaker.
fn counts_against_breaker(error: &LlmError) -> bool {
    next_after(error) != Next::Stop || matches!(error, LlmError::Rejected { status: 408, .. })
}

/// How an attempt failed before its first piece of answer.
#[derive(Debug)]
pub(super) enum Failure {
    /// The breaker refused the call; no upstream was touched.
    BreakerOpen,
    /// No time left for it, or for the rest of it: the deadline minus the
    /// reserve has come.
    OutOfTime,
    /// The attempt failed.
    Failed(LlmError),
}

impl Failure {
    fn retryable(&self) -> bool {
        matches!(self, Failure::Failed(error) if next_after(error) == Next::Retry)
    }
}

/// Where attempts are recorded: the metrics, and the turn's report.
#[derive(Clone, Debug)]
pub(super) struct Recorder {
    metrics: RouterMetrics,
    route: String,
    turn: Arc<TurnContext>,
}

impl Recorder {
    pub(super) fn record(&self, target: &str, outcome: &str, latency: Duration) {
        self.metrics.attempt(&self.route, target, outcome);
        report::update(&self.turn, |report| {
            report.attempts.push(AttemptRecord {
                target: target.to_owned(),
                outcome: outcome.to_owned(),
                latency,
            });
        });
    }
}

/// An attempt under way: recorded `cancelled` if dropped before it ended (a
/// hedge that lost, a client that left, before or after its first token).
pub(super) struct Unfinished {
    recorder: Recorder,
    target: String,
    pub(super) span: tracing::Span,
    pub(super) started: std::time::Instant,
    armed: bool,
}

impl Unfinished {
    /// The attempt ended; the caller records how.
    pub(super) fn finish(mut self) -> (tracing::Span, std::time::Instant) {
        self.armed = false;
        (self.span.clone(), self.started)
    }
}

impl Drop for Unfinished {
    fn drop(&mut self) {
        if self.armed {
            self.span.record("agentd.attempt.outcome", "cancelled");
            self.recorder
                .record(&self.target, "cancelled", self.started.elapsed());
        }
    }
}

/// An attempt that produced its first piece of answer.
pub(super) struct Opened {
    pub(super) target: Arc<Target>,
    /// The events up to and including the first piece of answer.
    pub(super) held: Vec<LlmEvent>,
    pub(super) rest: LlmStream,
    pub(super) permit: Permit,
    /// When the attempt must end (its total timeout), on the clock.
    pub(super) ends_at: Instant,
    pub(super) unfinished: Unfinished,
}

/// The state of one call, shared by its attempts.
pub(super) struct CallState {
    pub(super) router: Arc<Router>,
    pub(super) route: Arc<Route>,
    pub(super) call: CallContext,
    pub(super) request: LlmRequest,
    pub(super) recorder: Recorder,
    /// The attempt number of the next attempt.
    pub(super) attempt: AtomicU32,
    /// Whether the next attempt is the turn's first, which starts whatever
    /// the deadline (a turn with less time than the reserve still tries).
    first_of_turn: AtomicBool,
    /// Set when the deadline refused a retry, cleared when an attempt starts.
    pub(super) out_of_time: AtomicBool,
    /// The last failure of an attempt.
    pub(super) last_failure: Mutex<Option<LlmError>>,
}

impl CallState {
    /// The state of `call` through `route`; `first_of_turn` when no attempt
    /// of the turn was made yet.
    pub(super) fn new(
        router: Arc<Router>,
        route: Arc<Route>,
        call: CallContext,
        request: LlmRequest,
        first_of_turn: bool,
    ) -> Self {
        Self {
            recorder: Recorder {
                metrics: router.metrics.clone(),
                route: route.name.clone(),
                turn: call.turn.clone(),
            },
            attempt: AtomicU32::new(call.attempt),
            first_of_turn: AtomicBool::new(first_of_turn),
            out_of_time: AtomicBool::new(false),
            last_failure: Mutex::new(None),
            router,
            route,
            call,
            request,
        }
    }

    /// The last failure of an attempt of this call.
    pub(super) fn last_failure(&self) -> Option<LlmError> {
        self.last_failure
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Whether the deadline leaves time for an attempt starting after `delay`.
    pub(super) fn has_time(&self, delay: Duration) -> bool {
        match self.call.turn.deadline {
            Some(deadline) => {
                let now = self.router.clock.now();
                now + delay + self.router.reserve < deadline.at
            }
            None => true,
        }
    }

    /// The attempt's span: `chat {upstream model}`, a client span.
    pub(super) fn span(
        &self,
        target: &str,
        upstream: &str,
        provider: &str,
        number: u32,
    ) -> tracing::Span {
        tracing::info_span!(
            "chat",
            otel.name = format!("chat {upstream}"),
            otel.kind = "client",
            otel.status_code = Empty,
            gen_ai.operation.name = "chat",
            gen_ai.provider.name = provider,
            gen_ai.request.model = upstream,
            gen_ai.request.max_tokens = self.request.max_output_tokens.map(i64::from),
            gen_ai.response.model = Empty,
            gen_ai.response.finish_reasons = Empty,
            gen_ai.usage.input_tokens = Empty,
            gen_ai.usage.output_tokens = Empty,
            agentd.route = self.route.name.as_str(),
            agentd.target = target,
            agentd.attempt = number,
            agentd.attempt.outcome = Empty,
            agentd.cost_usd = Empty,
            error.type = Empty,
        )
    }

    /// Records a failed attempt everywhere, and the breaker's verdict.
    pub(super) fn failed(
        &self,
        target: &Target,
        error: &LlmError,
        permit: Permit,
        span: &tracing::Span,
        started: std::time::Instant,
    ) {
        if counts_against_breaker(error) {
            permit.record(false);
        } else {
            drop(permit);
        }
        end_span(span, Err(error));
        target.observe(Err(error), self.router.clock.wall());
        self.recorder
            .record(&target.name, error.error_type(), started.elapsed());
        *self
            .last_failure
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(error.clone());
        report::update(&self.call.turn, |report| {
            report.last_failure = Some(error.clone());
        });
    }

    /// One attempt on `target`, up to its first piece of answer.
    pub(super) async fn attempt(&self, target: &Arc<Target>) -> Result<Opened, Failure> {
        let exempt = self.first_of_turn.swap(false, Ordering::Relaxed);
        if !exempt && !self.has_time(Duration::ZERO) {
            return Err(Failure::OutOfTime);
        }
        self.out_of_time.store(false, Ordering::Relaxed);
        let Some(permit) = target.breaker.try_acquire() else {
            self.recorder
                .record(&target.name, "breaker_open", Duration::ZERO);
            return Err(Failure::BreakerOpen);
        };
        let number = self.attempt.fetch_add(1, Ordering::Relaxed);
        let call = CallContext {
            turn: self.call.turn.clone(),
            attempt: number,
            seq: 0,
        };
        let span = self.span(
            &target.name,
            &target.upstream_id,
            &target.provider_name,
            number,
        );
        let unfinished = Unfinished {
            recorder: self.recorder.clone(),
            target: target.name.clone(),
            span: span.clone(),
            started: std::time::Instant::now(),
            armed: true,
        };
        let clock = &self.router.clock;
        let now = clock.now();
        let ends_at = now + target.total_timeout;
        let first_token = target.first_token_timeout.min(target.total_timeout);
        let mut first_by = now + first_token;
        // A route that ends extractively keeps the reserve for that end: an
        // attempt still waiting for its first token then is given up.
        let reserve_at = self
            .call
            .turn
            .deadline
            .filter(|_| self.route.degraded == Degraded::Extractive)
            .and_then(|deadline| deadline.at.checked_sub(self.router.reserve))
            .filter(|at| *at > now && *at < first_by);
        if let Some(at) = reserve_at {
            first_by = at;
        }
        let mut request = self.request.clone();
        request.model.clone_from(&target.upstream_id);
        let opening = async {
            let mut stream = target.provider.stream_chat(&call, request).await?;
            let mut held = Vec::new();
            while let Some(event) = stream.next().await {
                let event = event?;
                describe(&span, &event, &target.price);
                let first = matches!(
                    event,
                    LlmEvent::TextDelta(_) | LlmEvent::ToolCalls(_) | LlmEvent::Finished(_)
                );
                held.push(event);
                if first {
                    return Ok((held, stream));
                }
            }
            Err(LlmError::Truncated)
        };
        let opened = clock
            .timeout_at(first_by, opening.instrument(span.clone()))
            .await;
        let error = match opened {
            Ok(Ok((held, rest))) => {
                return Ok(Opened {
                    target: target.clone(),
                    held,
                    rest,
                    permit,
                    ends_at,
                    unfinished,
                });
            }
            Ok(Err(error)) => error,
            Err(_) if reserve_at.is_some() => {
                // The reserve's doing, not the target's: no breaker verdict.
                let (span, started) = unfinished.finish();
                drop(permit);
                end_span(&span, Err(&LlmError::DeadlineExceeded));
                self.recorder
                    .record(&target.name, "deadline_exceeded", started.elapsed());
                return Err(Failure::OutOfTime);
            }
            Err(_) => LlmError::Timeout(first_token),
        };
        let (span, started) = unfinished.finish();
        self.failed(target, &error, permit, &span, started);
        Err(Failure::Failed(error))
    }

    /// Attempts on `target` with retries, up to `tries` of them; how many
    /// were made is added to `made`.
    pub(super) async fn on_target(
        &self,
        target: &Arc<Target>,
        tries: u32,
        made: &AtomicU32,
    ) -> Result<Opened, Failure> {
        let retry = &self.router.retry;
        let backoff = super::retry::backoff(retry, tries);
        let clock = self.router.clock.clone();
        let attempt = || {
            made.fetch_add(1, Ordering::Relaxed);
            self.attempt(target)
        };
        attempt
            .retry(backoff)
            .sleep(move |delay| clock.sleep(delay))
            .when(Failure::retryable)
            .adjust(|failure, next| {
                let asked = match failure {
                    Failure::Failed(LlmError::RateLimited { retry_after, .. }) => *retry_after,
                    _ => None,
                };
                // A retry-after too long for max_delay fails the target over.
                let delay = super::retry::delay(retry, next?, asked)?;
                if !self.has_time(delay) {
                    self.out_of_time.store(true, Ordering::Relaxed);
                    return None;
                }
                // Spent last: a retry the deadline forbids costs no budget.
                self.route.budget.withdraw().then_some(delay)
            })
            .await
    }
}

/// Records on an attempt's span what `event` says about the answer.
pub(super) fn describe(span: &tracing::Span, event: &LlmEvent, price: &Price) {
    match event {
        LlmEvent::ResponseModel(model) => {
            span.record("gen_ai.response.model", model.as_str());
        }
        LlmEvent::Usage(usage) => {
            span.record("gen_ai.usage.input_tokens", i64::from(usage.input_tokens));
            span.record("gen_ai.usage.output_tokens", i64::from(usage.output_tokens));
            let cost = price.cost(&TokenCount {
                input: u64::from(usage.input_tokens),
                cached_input: u64::from(usage.cached_tokens),
                output: u64::from(usage.output_tokens),
            });
            span.record("agentd.cost_usd", cost.to_f64_usd());
        }
        LlmEvent::Finished(reason) => {
            span.record(
                "gen_ai.response.finish_reasons",
                format!("[\"{}\"]", reason.as_str()),
            );
        }
        LlmEvent::TextDelta(_) | LlmEvent::ToolCalls(_) | LlmEvent::Restart => {}
    }
}

/// Records how an attempt ended on its span.
pub(super) fn end_span(span: &tracing::Span, outcome: Result<(), &LlmError>) {
    match outcome {
        Ok(()) => {
            span.record("agentd.attempt.outcome", "ok");
        }
        Err(error) => {
            span.record("agentd.attempt.outcome", error.error_type());
            span.record("error.type", error.error_type());
            span.record("otel.status_code", "ERROR");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retryable_failures_match_the_issue_list() {
        let unavailable = |status| LlmError::Unavailable {
            status,
            message: String::new(),
        };
        let rejected = |status| LlmError::Rejected {
            status,
            message: String::new(),
        };
        for status in [500, 502, 503, 504] {
            assert_eq!(next_after(&unavailable(status)), Next::Retry, "{status}");
        }
        assert_eq!(next_after(&unavailable(501)), Next::FailOver);
        assert_eq!(next_after(&rejected(408)), Next::Retry);
        assert_eq!(next_after(&rejected(400)), Next::Stop);
        assert!(!counts_against_breaker(&rejected(400)));
        assert!(counts_against_breaker(&rejected(408)));
        let unauthorized = LlmError::Unauthorized {
            status: 401,
            message: String::new(),
        };
        assert_eq!(next_after(&unauthorized), Next::FailOver);
        assert!(counts_against_breaker(&unauthorized));
        assert!(!counts_against_breaker(&LlmError::DeadlineExceeded));
    }
}
