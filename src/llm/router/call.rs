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
//! failure but those three counts against the target's breaker
//! (`attempt.rs`).
//!
//! **Time.** Backoff is exponential with full jitter (a uniform draw from zero
//! to the exponential delay); a `retry-after` replaces it when it is at most
//! `max_delay` and fits before the deadline, else the target is failed over.
//! No attempt but the turn's first starts once the deadline is closer than
//! `llm.fallback_reserve`, and on a route that ends extractively an attempt
//! still waiting for its first token then is given up: that time is the
//! degraded end's. Every wait is on the injectable clock.
//!
//! **Budget.** Each call deposits into its route's retry budget (tower's
//! `TpsBudget`) and each retry on the same target withdraws; over budget, a
//! failure fails over instead of retrying. Failing over spends no budget: it
//! moves load off the failing target rather than adding to it.
//!
//! **A degraded turn.** The extractive answerer answers in two model calls: a
//! search, then the answer. When a turn's call ended degraded with that
//! search, the next call goes straight to the degraded end instead of walking
//! the failing chain a second time.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use futures::StreamExt;
use tower::retry::budget::Budget;
use tracing::Instrument;

use super::attempt::{CallState, Failure, Next, Opened, describe, end_span, next_after};
use super::hedge::Race;
use super::report::{self, AnsweredBy, DegradationReason};
use super::{Route, Router, Target};
use crate::config::Degraded;
use crate::llm::call::Delivery;
use crate::llm::extractive;
use crate::llm::{CallContext, LlmError, LlmEvent, LlmRequest, LlmStream};
use crate::telemetry::traced::ErrorType;

/// The retry delay sent with `UNAVAILABLE` when nothing better is known.
const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(1);

/// The stream of one model call through `route`; see the module docs.
pub(super) fn route_call(
    router: Arc<Router>,
    route: Arc<Route>,
    call: CallContext,
    request: LlmRequest,
) -> LlmStream {
    route.budget.deposit();
    // What the turn's earlier calls left: whether an attempt was made, and
    // how the last call ended.
    let (first_of_turn, degraded, earlier_failure) = report::read(&call.turn, |report| {
        (
            report.attempts.is_empty(),
            report.degraded,
            report.last_failure.clone(),
        )
    })
    .unwrap_or((true, None, None));
    // The answer step of an extractive degraded answer: straight to the end.
    let continued = degraded.filter(|_| extractive::continues_search(&request.messages));
    let plan = if continued.is_some() {
        Vec::new()
    } else {
        route.plan(&call.turn)
    };
    report::update(&call.turn, |report| {
        route.name.clone_into(&mut report.route);
        report.degraded = None;
        report.answered_by = None;
    });
    let whole = call.turn.delivery == Delivery::Whole;
    let state = CallState::new(router, route, call, request, first_of_turn);
    let stream = async_stream::stream! {
        let mut tries: Vec<u32> = vec![state.router.retry.max_attempts; plan.len()];
        let mut link = 0;
        let mut breaker_open = false;
        let mut out_of_time = false;
        let mut hedge = state.route.hedge_after.filter(|_| plan.len() > 1);
        loop {
            // 1. The next attempt that produces a first piece of answer: the
            //    hedged race first, if the route hedges, then down the chain.
            let mut opened = None;
            if let Some(after) = hedge.take() {
                let (race, hedged) = super::hedge::race(&state, &plan[0], &plan[1], after).await;
                tries[0] = 0;
                if hedged {
                    tries[1] = 0;
                }
                match race {
                    Race::Won { attempt, second } => {
                        link = usize::from(second);
                        opened = Some(*attempt);
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
                                Failure::Failed(_) => {}
                            }
                        }
                    }
                }
            }
            while opened.is_none() && !out_of_time && link < plan.len() {
                if tries[link] == 0 {
                    link += 1;
                    continue;
                }
                let made = AtomicU32::new(0);
                let result = state.on_target(&plan[link], tries[link], &made).await;
                tries[link] = tries[link].saturating_sub(made.load(Ordering::Relaxed));
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
            // One timer for the whole attempt (not one per chunk), and no
            // span entered per chunk: this loop is on every streamed token.
            let total = state.router.clock.sleep_until(attempt.ends_at);
            futures::pin_mut!(total);
            loop {
                let next = tokio::select! {
                    biased;
                    next = attempt.rest.next() => Some(next),
                    () = &mut total => None,
                };
                match next {
                    Some(Some(Ok(event))) => {
                        describe(&attempt.unfinished.span, &event, &attempt.target.price);
                        yield Ok(event);
                    }
                    Some(None) => break,
                    Some(Some(Err(error))) => {
                        failure = Some(error);
                        break;
                    }
                    None => {
                        failure = Some(LlmError::Timeout(attempt.target.total_timeout));
                        break;
                    }
                }
            }
            let Opened { target, permit, unfinished, .. } = attempt;
            let (span, started) = unfinished.finish();
            let Some(error) = failure else {
                end_span(&span, Ok(()));
                permit.record(true);
                target.observe(Ok(()), state.router.clock.wall());
                state.recorder.record(&target.name, "ok", started.elapsed());
                report::update(&state.call.turn, |report| {
                    report.answered_by = Some(AnsweredBy::of(&target));
                });
                return;
            };
            state.failed(&target, &error, permit, &span, started);
            if !whole || next_after(&error) == Next::Stop {
                // Part of the answer reached the client: no other answer may
                // replace it.
                yield Err(error);
                return;
            }
            // Delivered whole: the output so far is dropped, and the call goes
            // on, after a backoff when it retries the same target.
            yield Ok(LlmEvent::Restart);
            let retry = &state.router.retry;
            let delay = super::retry::delay(retry, retry.base_delay, None).unwrap_or_default();
            if next_after(&error) == Next::Retry
                && tries[link] > 0
                && state.has_time(delay)
                && state.route.budget.withdraw()
            {
                state.router.clock.sleep(delay).await;
            } else {
                link += 1;
            }
        }

        // 3. The degraded end.
        out_of_time |= state.out_of_time.load(Ordering::Relaxed);
        // A continued degraded turn reports what failed in its earlier call.
        let last_error = state
            .last_failure()
            .or_else(|| continued.and(earlier_failure.clone()));
        let reason = continued.unwrap_or(if out_of_time {
            DegradationReason::Deadline
        } else if breaker_open && last_error.is_none() {
            DegradationReason::BreakerOpen
        } else {
            DegradationReason::UpstreamFailed
        });
        let exhausted = || LlmError::Exhausted {
            route: state.route.name.clone(),
            last: last_error.clone().map(Box::new),
            retry_after: retry_after(&plan, last_error.as_ref()),
        };
        if state.route.degraded == Degraded::Unavailable {
            yield Err(if out_of_time { LlmError::DeadlineExceeded } else { exhausted() });
            return;
        }
        let number = state.attempt.fetch_add(1, Ordering::Relaxed);
        let span = state.span(extractive::MODEL, extractive::MODEL, extractive::MODEL, number);
        let started = std::time::Instant::now();
        let call = CallContext {
            turn: state.call.turn.clone(),
            attempt: number,
            seq: 0,
        };
        let mut request = state.request.clone();
        extractive::MODEL.clone_into(&mut request.model);
        let answered = async {
            let stream = state.router.extractive.stream_chat(&call, request).await?;
            stream.collect::<Vec<_>>().await.into_iter().collect::<Result<Vec<_>, _>>()
        }
        .instrument(span.clone())
        .await;
        match answered {
            Ok(events) => {
                end_span(&span, Ok(()));
                state.recorder.record(extractive::MODEL, "ok", started.elapsed());
                report::update(&state.call.turn, |report| {
                    report.answered_by = Some(AnsweredBy::extractive());
                    report.degraded = Some(reason);
                });
                if continued.is_none() {
                    tracing::warn!(
                        route = %state.route.name,
                        reason = reason.as_str(),
                        "no model of the route could answer; the extractive answerer answers (degraded)"
                    );
                }
                for event in events {
                    describe(&span, &event, &crate::cost::prices::Price::FREE);
                    yield Ok(event);
                }
            }
            Err(error) => {
                end_span(&span, Err(&error));
                state.recorder.record(extractive::MODEL, error.error_type(), started.elapsed());
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
