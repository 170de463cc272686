//! Hedging: a route's first target races a second attempt, on the next target
//! of the chain, started once `hedge_after` has passed without a first piece
//! of answer. The first attempt to produce one wins; the other is dropped,
//! which closes its upstream connection (its attempt is recorded
//! `cancelled`). A hedged attempt spends the route's retry budget like a
//! retry; without budget there is no hedge. A call that hedges does not retry
//! the targets it raced: if both fail (or the first fails before the hedge
//! starts), it fails over past them.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tower::retry::budget::Budget;

use super::Target;
use super::attempt::{CallState, Failure, Opened};

/// How a race ended.
pub(super) enum Race {
    /// An attempt produced a first piece of answer; `second` when it was the
    /// hedge's.
    Won { attempt: Box<Opened>, second: bool },
    /// Neither did.
    Lost { failures: Vec<Failure> },
}

impl Race {
    /// The chain links the race used: 2 when the hedge started, else 1.
    pub(super) fn links(hedged: bool) -> usize {
        if hedged { 2 } else { 1 }
    }
}

/// Races `first` against a hedge on `second` started `after` later; returns
/// how it ended and whether the hedge started.
pub(super) async fn race(
    state: &CallState,
    first: &Arc<Target>,
    second: &Arc<Target>,
    after: Duration,
) -> (Race, bool) {
    let started = AtomicBool::new(false);
    let primary = state.attempt(first);
    let hedge = async {
        state.router.clock.sleep(after).await;
        if !state.route.budget.withdraw() {
            return None;
        }
        started.store(true, Ordering::Relaxed);
        Some(state.attempt(second).await)
    };
    tokio::pin!(primary, hedge);
    let race = tokio::select! {
        first = &mut primary => match first {
            Ok(attempt) => Race::Won { attempt: Box::new(attempt), second: false },
            // Failed before the hedge started: no hedge.
            Err(failure) if !started.load(Ordering::Relaxed) => Race::Lost {
                failures: vec![failure],
            },
            Err(failure) => match (&mut hedge).await {
                Some(Ok(attempt)) => Race::Won { attempt: Box::new(attempt), second: true },
                Some(Err(other)) => Race::Lost { failures: vec![failure, other] },
                None => Race::Lost { failures: vec![failure] },
            },
        },
        hedged = &mut hedge => match hedged {
            Some(Ok(attempt)) => Race::Won { attempt: Box::new(attempt), second: true },
            Some(Err(other)) => match (&mut primary).await {
                Ok(attempt) => Race::Won { attempt: Box::new(attempt), second: false },
                Err(failure) => Race::Lost { failures: vec![failure, other] },
            },
            // No budget for a hedge: the first attempt alone.
            None => match (&mut primary).await {
                Ok(attempt) => Race::Won { attempt: Box::new(attempt), second: false },
                Err(failure) => Race::Lost { failures: vec![failure] },
            },
        },
    };
    (race, started.load(Ordering::Relaxed))
}
