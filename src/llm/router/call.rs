//! One model call through a route: the chain of targets walked until one
//! answers, and the degraded end when none does.
//!
//! **What may be retried.** A call is retried or failed over only while
//! nothing from it has reached the client. An attempt's events are held back
//! until its first piece of answer (text, tool calls, or the end); a failure
//! before that is retried or failed over. After it, a failure of a streamed
//! turn (Chat) ends the call with that error; a turn delivered whole (Ask)
//! streams nothing to the client, so the router sends [`LlmEvent::Restart`]
//! (the consumer drops the call's output so far) and goes on with the next
//! attempt.
//!
//! **Failures.** Retried on the same target (`[llm.retry]`): connection
//! errors, HTTP 408, 429, 500, 502, 503, 504, a timeout, and a stream cut
//! before its end. Failed over to the next target without a retry: 401/403
//! (agentd's key refused), other 5xx, a malformed stream, an open breaker.
//! Ending the call at once: other 4xx (the request itself is refused), a
//! refusal by a stage of the per-call chain, and the turn's deadline. Every
//! failure but those three counts against the target's breaker.
//!
//! **Time.** Backoff is exponential with full jitter (a uniform draw from zero
//! to the exponential delay); a `retry-after` replaces it when it is at most
//! `max_delay` and fits before the deadline, else the target is failed over.
//! No attempt after the first starts once the deadline is closer than
//! `llm.fallback_reserve`: that time is the degraded end's. Every wait is on
//! the injectable clock.
//!
//! **Budget.** Each call deposits into its route's retry budget (tower's
//! `TpsBudget`) and each retry on the same target withdraws; over budget, a
//! failure fails over instead of retrying. Failing over spends no budget: it
//! moves load off the failing target rather than adding to it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use backon::Retryable;
use futures::StreamExt;
use tokio::time::Instant;
use tower::retry::budget::Budget;
use tracing::Instrument;
use tracing::field::Empty;

use super::breaker::Permit;
use super::hedge::Race;
use super::report::{self, AttemptRecord, DegradationReason};
use super::{Route, Router, Target};
use crate::config::Degraded;
use crate::llm::call::Delivery;
use crate::llm::{CallContext, LlmError, LlmEvent, LlmRequest, LlmStream};
use crate::telemetry::traced::ErrorType;

/// The retry delay sent with `UNAVAILABLE` when nothing better is known.
const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(1);

/// What to do after a failed attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Next {
    /// Retry the same target, then fail over.
    Retry,
    /// Fail over to the next target.
    FailOver,
    /// End the call with this error.
    Stop,
}

fn next_after(error: &LlmError) -> Next {
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
    /// No time left for another attempt.
    OutOfTime,
    /// The attempt failed.
    Failed(LlmError),
}

impl Failure {
    fn retryable(&self) -> bool {
        matches!(self, Failure::Failed(error) if next_after(error) == Next::Retry)
    }
}

/// An attempt that produced its first piece of answer.
pub(super) struct Opened {
    target: Arc<Target>,
    /// The events up to and including the first piece of answer.
    held: Vec<LlmEvent>,
    rest: LlmStream,
    permit: Permit,
    /// When the attempt must end (its total timeout), on the clock.
    ends_at: Instant,
    started: std::time::Instant,
    span: tracing::Span,
}

/// The state of one call, shared by its attempts.
pub(super) struct CallState {
    pub(super) router: Arc<Router>,
    pub(super) route: Arc<Route>,
    call: CallContext,
    request: LlmRequest,
    /// The attempt number of the next attempt.
    attempt: AtomicU32,
    /// Set when the deadline refused a retry.
    out_of_time: std::sync::atomic::AtomicBool,
}

impl CallState {
    /// Whether the deadline leaves time for an attempt starting after `delay`.
    fn has_time(&self, delay: Duration) -> bool {
        match self.call.turn.deadline {
            Some(deadline) => {
                let now = self.router.clock.now();
                now + delay + self.router.reserve < deadline.at
            }
            None => true,
        }
    }

    /// Records an attempt in the metrics, the turn's report and the target's
    /// health.
    fn record(&self, target: &str, outcome: &str, latency: Duration) {
        self.router
            .metrics
            .attempt(&self.route.name, target, outcome);
        report::update(&self.call.turn, |report| {
            report.attempts.push(AttemptRecord {
                target: target.to_owned(),
                outcome: outcome.to_owned(),
                latency,
            });
        });
    }

    fn failed(
        &self,
        target: &Target,
        error: &LlmError,
        permit: Option<Permit>,
        started: std::time::Instant,
    ) {
        if let Some(permit) = permit {
            if counts_against_breaker(error) {
                permit.record(false);
            } else {
                drop(permit);
            }
        }
        target.observe(Err(error), self.router.clock.wall());
        self.record(&target.name, error.error_type(), started.elapsed());
    }

    /// One attempt on `target`, up to its first piece of answer. Dropped
    /// before that (a hedge that lost, a client that left), it is recorded
    /// `cancelled`.
    pub(super) async fn attempt(
        &self,
        target: &Arc<Target>,
        first_of_call: bool,
    ) -> Result<Opened, Failure> {
        if !first_of_call && !self.has_time(Duration::ZERO) {
            return Err(Failure::OutOfTime);
        }
        let Some(permit) = target.breaker.try_acquire() else {
            self.record(&target.name, "breaker_open", Duration::ZERO);
            return Err(Failure::BreakerOpen);
        };
        let number = self.attempt.fetch_add(1, Ordering::Relaxed);
        let call = CallContext {
            turn: self.call.turn.clone(),
            attempt: number,
        };
        let span = tracing::info_span!(
            "chat",
            otel.name = format!("chat {}", target.upstream_id),
            otel.kind = "client",
            otel.status_code = Empty,
            gen_ai.operation.name = "chat",
            gen_ai.provider.name = target.provider_name.as_str(),
            gen_ai.request.model = target.upstream_id.as_str(),
            gen_ai.request.max_tokens = self.request.max_output_tokens.map(i64::from),
            gen_ai.response.model = Empty,
            gen_ai.response.finish_reasons = Empty,
            gen_ai.usage.input_tokens = Empty,
            gen_ai.usage.output_tokens = Empty,
            agentd.route = self.route.name.as_str(),
            agentd.target = target.name.as_str(),
            agentd.attempt = number,
            agentd.attempt.outcome = Empty,
            error.type = Empty,
        );
        let started = std::time::Instant::now();
        let mut pending = Pending {
            state: self,
            target: &target.name,
            span: span.clone(),
            started,
            armed: true,
        };
        let clock = &self.router.clock;
        let ends_at = clock.now() + target.total_timeout;
        let first_by = clock.now() + target.first_token_timeout.min(target.total_timeout);
        let mut request = self.request.clone();
        request.model.clone_from(&target.upstream_id);
        let opening = async {
            let mut stream = target.provider.stream_chat(&call, request).await?;
            let mut held = Vec::new();
            while let Some(event) = stream.next().await {
                let event = event?;
                describe(&span, &event);
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
            .await
            .unwrap_or_else(|_| {
                Err(LlmError::Timeout(
                    target.first_token_timeout.min(target.total_timeout),
                ))
            });
        pending.armed = false;
        match opened {
            Ok((held, rest)) => Ok(Opened {
                target: target.clone(),
                held,
                rest,
                permit,
                ends_at,
                started,
                span,
            }),
            Err(error) => {
                end_span(&span, Err(&error));
                self.failed(target, &error, Some(permit), started);
                Err(Failure::Failed(error))
            }
        }
    }

    /// Attempts on `target` with retries, up to `tries` of them; how many
    /// were made is added to `made`.
    async fn on_target(
        &self,
        target: &Arc<Target>,
        tries: u32,
        first_of_call: bool,
        made: &AtomicU32,
    ) -> Result<Opened, Failure> {
        let retry = &self.router.retry;
        let backoff = super::retry::backoff(retry, tries);
        let clock = self.router.clock.clone();
        let attempt = || {
            let first = first_of_call && made.load(Ordering::Relaxed) == 0;
            made.fetch_add(1, Ordering::Relaxed);
            self.attempt(target, first)
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

/// An attempt under way; recorded `cancelled` if dropped before it ended.
struct Pending<'a> {
    state: &'a CallState,
    target: &'a str,
    span: tracing::Span,
    started: std::time::Instant,
    armed: bool,
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.span.record("agentd.attempt.outcome", "cancelled");
            self.state
                .record(self.target, "cancelled", self.started.elapsed());
        }
    }
}

/// Records on an attempt's span what `event` says about the answer.
fn describe(span: &tracing::Span, event: &LlmEvent) {
    match event {
        LlmEvent::ResponseModel(model) => {
            span.record("gen_ai.response.model", model.as_str());
        }
        LlmEvent::Usage(usage) => {
            span.record("gen_ai.usage.input_tokens", i64::from(usage.input_tokens));
            span.record("gen_ai.usage.output_tokens", i64::from(usage.output_tokens));
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

fn end_span(span: &tracing::Span, outcome: Result<(), &LlmError>) {
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

/// The stream of one model call through `route`; see the module docs.
pub(super) fn route_call(
    router: Arc<Router>,
    route: Arc<Route>,
    call: CallContext,
    request: LlmRequest,
) -> LlmStream {
    route.budget.deposit();
    let plan = route.plan(&call.turn);
    report::update(&call.turn, |report| {
        route.name.clone_into(&mut report.route);
        report.degraded = None;
        report.answered_by = None;
    });
    let whole = call.turn.delivery == Delivery::Whole;
    let state = CallState {
        attempt: AtomicU32::new(call.attempt),
        out_of_time: std::sync::atomic::AtomicBool::new(false),
        router,
        route,
        call,
        request,
    };
    let stream = async_stream::stream! {
        let mut tries: Vec<u32> = vec![state.router.retry.max_attempts; plan.len()];
        let mut link = 0;
        let mut first_of_call = true;
        let mut last_error: Option<LlmError> = None;
        let mut breaker_open = false;
        let mut out_of_time = false;
        let mut hedge = state.route.hedge_after.filter(|_| plan.len() > 1);
        loop {
            // 1. The next attempt that produces a first piece of answer: the
            //    hedged race first, if the route hedges, then down the chain.
            let mut opened = None;
            if let Some(after) = hedge.take() {
                let (race, hedged) = super::hedge::race(&state, &plan[0], &plan[1], after).await;
                first_of_call = false;
                tries[0] = 0;
                if hedged {
                    tries[1] = 0;
                }
                match race {
                    Race::Won { attempt, second } => {
                        link = usize::from(second);
                        opened = Some(attempt);
                    }
                    Race::Lost { failures } => {
                        link = Race::links(hedged);
                        for failure in failures {
                            match failure {
                                Failure::BreakerOpen => breaker_open = true,
                                Failure::OutOfTime => out_of_time = true,
                                Failure::Failed(error) if next_after(&error) == Next::Stop => {
                                    yield Err(error);
                                    return;
                                }
                                Failure::Failed(error) => last_error = Some(error),
                            }
                        }
                    }
                }
            }
            while opened.is_none() && !out_of_time && link < plan.len() {
                let made = AtomicU32::new(0);
                let result = state.on_target(&plan[link], tries[link], first_of_call, &made).await;
                let made = made.load(Ordering::Relaxed);
                tries[link] = tries[link].saturating_sub(made);
                first_of_call &= made == 0;
                match result {
                    Ok(attempt) => {
                        opened = Some(attempt);
                        break;
                    }
                    Err(Failure::BreakerOpen) => breaker_open = true,
                    Err(Failure::OutOfTime) => {
                        out_of_time = true;
                        break;
                    }
                    Err(Failure::Failed(error)) => {
                        if next_after(&error) == Next::Stop {
                            yield Err(error);
                            return;
                        }
                        last_error = Some(error);
                    }
                }
                link += 1;
            }
            let Some(mut attempt) = opened else { break };

            // 2. Its events, as they come.
            let mut failure = None;
            for event in std::mem::take(&mut attempt.held) {
                yield Ok(event);
            }
            loop {
                let next = state
                    .router
                    .clock
                    .timeout_at(attempt.ends_at, attempt.rest.next().instrument(attempt.span.clone()))
                    .await;
                match next {
                    Ok(Some(Ok(event))) => {
                        describe(&attempt.span, &event);
                        yield Ok(event);
                    }
                    Ok(None) => break,
                    Ok(Some(Err(error))) => {
                        failure = Some(error);
                        break;
                    }
                    Err(_) => {
                        failure = Some(LlmError::Timeout(attempt.target.total_timeout));
                        break;
                    }
                }
            }
            let Opened { target, permit, started, span, .. } = attempt;
            let Some(error) = failure else {
                end_span(&span, Ok(()));
                permit.record(true);
                target.observe(Ok(()), state.router.clock.wall());
                state.record(&target.name, "ok", started.elapsed());
                report::update(&state.call.turn, |report| {
                    report.answered_by = Some(target.name.clone());
                });
                return;
            };
            end_span(&span, Err(&error));
            state.failed(&target, &error, Some(permit), started);
            if !whole || next_after(&error) == Next::Stop {
                // Part of the answer reached the client: no other answer may
                // replace it.
                yield Err(error);
                return;
            }
            // Delivered whole: the output so far is dropped, and the call goes on.
            yield Ok(LlmEvent::Restart);
            let retry_here = next_after(&error) == Next::Retry
                && tries[link] > 0
                && state.route.budget.withdraw();
            if !retry_here {
                link += 1;
            }
            last_error = Some(error);
        }

        // 3. The degraded end.
        out_of_time |= state.out_of_time.load(Ordering::Relaxed);
        let reason = if out_of_time {
            DegradationReason::Deadline
        } else if breaker_open && last_error.is_none() {
            DegradationReason::BreakerOpen
        } else {
            DegradationReason::UpstreamFailed
        };
        let exhausted = || LlmError::Exhausted {
            route: state.route.name.clone(),
            last: last_error.clone().map(Box::new),
            retry_after: retry_after(&plan, last_error.as_ref()),
        };
        if state.route.degraded == Degraded::Unavailable {
            yield Err(if out_of_time { LlmError::DeadlineExceeded } else { exhausted() });
            return;
        }
        let started = std::time::Instant::now();
        let call = CallContext {
            turn: state.call.turn.clone(),
            attempt: state.attempt.fetch_add(1, Ordering::Relaxed),
        };
        let mut request = state.request.clone();
        crate::llm::extractive::MODEL.clone_into(&mut request.model);
        let answered = match state.router.extractive.stream_chat(&call, request).await {
            Ok(stream) => stream.collect::<Vec<_>>().await.into_iter().collect::<Result<Vec<_>, _>>(),
            Err(error) => Err(error),
        };
        match answered {
            Ok(events) => {
                state.record(crate::llm::extractive::MODEL, "ok", started.elapsed());
                report::update(&state.call.turn, |report| {
                    report.answered_by = Some(crate::llm::extractive::MODEL.to_owned());
                    report.degraded = Some(reason);
                });
                tracing::warn!(
                    route = %state.route.name,
                    reason = reason.as_str(),
                    "every target failed; answered by the extractive answerer (degraded)"
                );
                for event in events {
                    yield Ok(event);
                }
            }
            Err(error) => {
                state.record(crate::llm::extractive::MODEL, error.error_type(), started.elapsed());
                yield Err(if out_of_time { LlmError::DeadlineExceeded } else { exhausted() });
            }
        }
    };
    stream.boxed()
}

/// When a client should retry a call no target could answer: when the first
/// open breaker of the chain lets a probe through, else what the last failure
/// asked for, else [`DEFAULT_RETRY_AFTER`].
fn retry_after(plan: &[Arc<Target>], last: Option<&LlmError>) -> Duration {
    let breakers = plan
        .iter()
        .map(|t| t.breaker.retry_in())
        .filter(|d| !d.is_zero())
        .min();
    let asked = match last {
        Some(LlmError::RateLimited {
            retry_after: Some(after),
            ..
        }) => Some(*after),
        _ => None,
    };
    breakers.or(asked).unwrap_or(DEFAULT_RETRY_AFTER)
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
