//! What a model call knows besides its request: the turn it serves (tenant,
//! session, turn id, deadline, whether its answer is streamed to the client or
//! delivered whole, and state that stages of the per-call chain and the
//! router keep for the turn) and which attempt
//! of the call it is. Every [`super::LlmProvider`] call gets one.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use crate::clock::Clock;
use crate::ids::{SessionId, TenantId, TurnId};

/// When the caller stops waiting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CallDeadline {
    /// The instant, on the turn's clock.
    pub at: Instant,
    /// The timeout it came from, reported when it passes.
    pub timeout: Duration,
}

/// How the turn's answer reaches the client.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Delivery {
    /// Piece by piece as it is produced (Chat): once a piece of a model call
    /// has gone out, that call cannot be replaced by another attempt.
    #[default]
    Streamed,
    /// In one response at the end (Ask): a call may be retried after a
    /// failure mid-stream, its partial output dropped.
    Whole,
}

/// The turn model calls belong to, shared by every call and attempt of it.
#[derive(Debug)]
pub struct TurnContext {
    /// Whose turn it is; every cost, limit and policy is the tenant's.
    pub tenant: TenantId,
    /// The conversation.
    pub session: SessionId,
    /// The turn, as the server named it.
    pub turn: TurnId,
    /// When the caller stops waiting (on `clock`); `None` for no deadline.
    pub deadline: Option<CallDeadline>,
    /// The clock the deadline and every timer of the turn are read from.
    pub clock: Clock,
    /// How the answer reaches the client.
    pub delivery: Delivery,
    /// The name of the API key the turn was asked with (`anonymous` with auth
    /// off): key budgets and rate limits are its.
    pub key: String,
    /// The route a model call goes to instead when a budget refuses it (the
    /// tenant's `downgrade_to`), if any.
    pub downgrade_to: Option<String>,
    /// Model calls that entered the per-call chain so far.
    calls: AtomicU32,
    state: Mutex<http::Extensions>,
}

impl TurnContext {
    /// The context of a turn starting now.
    pub fn new(
        tenant: TenantId,
        session: SessionId,
        turn: TurnId,
        deadline: Option<CallDeadline>,
        clock: Clock,
    ) -> Self {
        Self {
            tenant,
            session,
            turn,
            deadline,
            clock,
            delivery: Delivery::Streamed,
            key: "anonymous".to_owned(),
            downgrade_to: None,
            calls: AtomicU32::new(0),
            state: Mutex::new(http::Extensions::new()),
        }
    }

    /// The same context, asked with the API key named `key`.
    pub fn keyed(mut self, key: String) -> Self {
        self.key = key;
        self
    }

    /// The same context, downgraded to `route` when a budget refuses a call.
    pub fn downgrading_to(mut self, route: Option<String>) -> Self {
        self.downgrade_to = route;
        self
    }

    /// Numbers the turn's next call through the per-call chain, from 1: every
    /// attempt of every model call of the turn gets its own number.
    pub fn next_call(&self) -> u32 {
        self.calls.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// The same context, its answer delivered as `delivery`.
    pub fn delivered(mut self, delivery: Delivery) -> Self {
        self.delivery = delivery;
        self
    }

    /// Runs `f` on the turn's state: values that stages of the per-call chain
    /// attach to the turn (one per type), seen by every later call of the turn.
    pub fn with_state<T>(&self, f: impl FnOnce(&mut http::Extensions) -> T) -> T {
        // `f` cannot leave the map half-changed (each insert or remove is whole),
        // so a lock poisoned by a panic elsewhere still guards consistent data.
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut state)
    }
}

/// One attempt of one model call.
#[derive(Clone, Debug)]
pub struct CallContext {
    /// The turn it serves.
    pub turn: Arc<TurnContext>,
    /// 1 for the first attempt of a model call; each retry, fallback or hedge
    /// of the same call counts up.
    pub attempt: u32,
    /// The call's number in the turn ([`TurnContext::next_call`]), given by
    /// the per-call chain as the call enters it; 0 before.
    pub seq: u32,
}

impl CallContext {
    /// The first attempt of a model call of `turn`.
    pub fn first(turn: &Arc<TurnContext>) -> Self {
        Self {
            turn: turn.clone(),
            attempt: 1,
            seq: 0,
        }
    }

    /// The next attempt of the same model call.
    pub fn next_attempt(&self) -> Self {
        Self {
            turn: self.turn.clone(),
            attempt: self.attempt + 1,
            seq: 0,
        }
    }

    /// A call outside any caller's turn (tools and tests): the default tenant,
    /// a fresh session and turn, no deadline.
    pub fn detached(clock: Clock) -> Self {
        Self::first(&Arc::new(TurnContext::new(
            TenantId::default_tenant(),
            SessionId::generate(),
            TurnId::generate(),
            None,
            clock,
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Debug, PartialEq)]
    struct Placeholders(Vec<String>);

    #[test]
    fn turn_state_is_shared_by_every_attempt() {
        let first = CallContext::detached(Clock::system());
        let retry = first.next_attempt();
        assert_eq!(retry.attempt, 2);
        first
            .turn
            .with_state(|state| state.insert(Placeholders(vec!["<EMAIL_1>".into()])));
        let seen = retry
            .turn
            .with_state(|state| state.get::<Placeholders>().cloned());
        assert_eq!(seen, Some(Placeholders(vec!["<EMAIL_1>".into()])));
    }
}
