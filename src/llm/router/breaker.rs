//! A circuit breaker per target, on the injectable clock.
//!
//! Closed, it lets every call through and keeps the outcomes of the last
//! `window` in ten buckets; once at least `min_calls` calls ended in the window
//! and `failure_ratio` of them failed, it opens. Open, it refuses every call
//! (the router goes straight down the fallback chain, no upstream touched)
//! until `cool_down` has passed; then it is half-open and lets
//! `half_open_probes` calls through. One probe failing opens it again; all of
//! them succeeding closes it with an empty window. A probe that ends with
//! neither (its caller left) frees its place for the next one.
//!
//! Hand-written rather than taken from a crate: the registry's breakers read
//! time from a thread-local or `std::time::Instant` (failsafe,
//! tower-resilience-circuitbreaker, recloser), so a test cannot move their
//! cool-down with the app's clock, and some let any number of calls through
//! while half-open (failsafe) or fix the window at compile time
//! (reliakit-circuit).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use crate::clock::Clock;
use crate::config::BreakerConfig;
use crate::telemetry::resilience::RouterMetrics;

/// Buckets of the sliding window.
const BUCKETS: u32 = 10;

/// Where a breaker stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BreakerState {
    /// Calls go through.
    Closed,
    /// Calls are refused until the cool-down has passed.
    Open,
    /// A bounded number of probe calls go through.
    HalfOpen,
}

impl BreakerState {
    /// The name used in metrics, logs and the admin API.
    pub fn as_str(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::Open => "open",
            BreakerState::HalfOpen => "half_open",
        }
    }

    /// The value of the `agentd_llm_breaker_state` gauge.
    fn gauge(self) -> i64 {
        match self {
            BreakerState::Closed => 0,
            BreakerState::HalfOpen => 1,
            BreakerState::Open => 2,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    start: Instant,
    ok: u32,
    failed: u32,
}

#[derive(Debug)]
struct Inner {
    state: BreakerState,
    buckets: VecDeque<Bucket>,
    /// When the breaker last opened.
    opened_at: Instant,
    /// Probes let through and not ended yet, and probes that succeeded.
    probes_out: u32,
    probes_ok: u32,
    /// Counts state changes: a permit of an earlier state is ignored.
    generation: u64,
}

/// One target's breaker; see the module docs.
#[derive(Debug)]
pub struct Breaker {
    target: String,
    config: BreakerConfig,
    clock: Clock,
    metrics: RouterMetrics,
    inner: Mutex<Inner>,
}

/// A call the breaker let through. Report its end with [`Permit::record`];
/// dropped unrecorded, it counts as neither success nor failure.
#[derive(Debug)]
pub struct Permit {
    breaker: Arc<Breaker>,
    probe: bool,
    generation: u64,
    recorded: bool,
}

impl Permit {
    /// Reports how the call ended.
    pub fn record(mut self, success: bool) {
        self.recorded = true;
        self.breaker
            .record(self.probe, self.generation, Some(success));
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        if !self.recorded {
            self.breaker.record(self.probe, self.generation, None);
        }
    }
}

impl Breaker {
    /// A closed breaker for `target`.
    pub fn new(target: &str, config: BreakerConfig, clock: Clock, metrics: RouterMetrics) -> Self {
        metrics.breaker_state(target, BreakerState::Closed.gauge());
        metrics.breaker_known(target);
        Self {
            target: target.to_owned(),
            inner: Mutex::new(Inner {
                state: BreakerState::Closed,
                buckets: VecDeque::new(),
                opened_at: clock.now(),
                probes_out: 0,
                probes_ok: 0,
                generation: 0,
            }),
            config,
            clock,
            metrics,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // Every change below is made whole under the lock, so a poisoned lock
        // still guards consistent counts.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The state now (an open breaker whose cool-down has passed reads
    /// half-open).
    pub fn state(&self) -> BreakerState {
        let mut inner = self.lock();
        self.cool(&mut inner);
        inner.state
    }

    /// The outcomes in the window: (succeeded, failed).
    pub fn window(&self) -> (u32, u32) {
        let mut inner = self.lock();
        self.prune(&mut inner);
        inner
            .buckets
            .iter()
            .fold((0, 0), |(ok, failed), b| (ok + b.ok, failed + b.failed))
    }

    /// Lets a call through, or refuses it while open (or while every probe
    /// place of a half-open breaker is taken).
    pub fn try_acquire(self: &Arc<Self>) -> Option<Permit> {
        let mut inner = self.lock();
        self.cool(&mut inner);
        let probe = match inner.state {
            BreakerState::Closed => false,
            BreakerState::Open => return None,
            BreakerState::HalfOpen => {
                if inner.probes_out + inner.probes_ok >= self.config.half_open_probes {
                    return None;
                }
                inner.probes_out += 1;
                true
            }
        };
        Some(Permit {
            breaker: self.clone(),
            probe,
            generation: inner.generation,
            recorded: false,
        })
    }

    /// Closes the breaker with an empty window (an operator's reset).
    pub fn reset(&self) -> BreakerState {
        let mut inner = self.lock();
        let before = inner.state;
        self.cool(&mut inner);
        inner.buckets.clear();
        inner.probes_out = 0;
        inner.probes_ok = 0;
        self.transition(&mut inner, BreakerState::Closed);
        before
    }

    /// Turns an open breaker whose cool-down has passed half-open.
    fn cool(&self, inner: &mut Inner) {
        if inner.state == BreakerState::Open
            && self.clock.now() >= inner.opened_at + self.config.cool_down
        {
            inner.probes_out = 0;
            inner.probes_ok = 0;
            self.transition(inner, BreakerState::HalfOpen);
        }
    }

    fn record(&self, probe: bool, generation: u64, success: Option<bool>) {
        let mut inner = self.lock();
        if probe {
            // A probe of an earlier half-open period (the breaker opened or
            // was reset since) is ignored.
            if inner.generation != generation || inner.state != BreakerState::HalfOpen {
                return;
            }
            inner.probes_out = inner.probes_out.saturating_sub(1);
            match success {
                Some(false) => self.open(&mut inner),
                Some(true) => {
                    inner.probes_ok += 1;
                    if inner.probes_ok >= self.config.half_open_probes {
                        inner.buckets.clear();
                        self.transition(&mut inner, BreakerState::Closed);
                    }
                }
                None => {}
            }
            return;
        }
        let Some(success) = success else { return };
        if inner.state != BreakerState::Closed {
            // A call let through before the breaker opened ends late: the
            // breaker already decided.
            return;
        }
        self.prune(&mut inner);
        let now = self.clock.now();
        let width = self.config.window / BUCKETS;
        let fresh = match inner.buckets.back() {
            Some(last) => now >= last.start + width,
            None => true,
        };
        if fresh {
            inner.buckets.push_back(Bucket {
                start: now,
                ok: 0,
                failed: 0,
            });
        }
        if let Some(bucket) = inner.buckets.back_mut() {
            if success {
                bucket.ok += 1;
            } else {
                bucket.failed += 1;
            }
        }
        let (ok, failed) = inner.buckets.iter().fold((0u32, 0u32), |(ok, failed), b| {
            (ok + b.ok, failed + b.failed)
        });
        let calls = ok + failed;
        if !success
            && calls >= self.config.min_calls
            && f64::from(failed) >= self.config.failure_ratio * f64::from(calls)
        {
            self.open(&mut inner);
        }
    }

    fn open(&self, inner: &mut Inner) {
        inner.opened_at = self.clock.now();
        inner.probes_out = 0;
        inner.probes_ok = 0;
        self.transition(inner, BreakerState::Open);
    }

    /// Drops the buckets that ended before the window.
    fn prune(&self, inner: &mut Inner) {
        let now = self.clock.now();
        let width = self.config.window / BUCKETS;
        while let Some(first) = inner.buckets.front() {
            if first.start + width + self.config.window <= now {
                inner.buckets.pop_front();
            } else {
                break;
            }
        }
    }

    fn transition(&self, inner: &mut Inner, to: BreakerState) {
        let from = inner.state;
        if from == to {
            return;
        }
        inner.state = to;
        inner.generation += 1;
        self.metrics
            .breaker_transition(&self.target, from.as_str(), to.as_str());
        self.metrics.breaker_state(&self.target, to.gauge());
        match to {
            BreakerState::Open => tracing::warn!(
                target_model = %self.target,
                from = from.as_str(),
                cool_down = %humantime::format_duration(self.config.cool_down),
                "circuit breaker opened: calls to this target go down the fallback chain"
            ),
            BreakerState::HalfOpen | BreakerState::Closed => tracing::info!(
                target_model = %self.target,
                from = from.as_str(),
                to = to.as_str(),
                "circuit breaker state changed"
            ),
        }
    }

    /// How long until an open breaker lets a probe through; zero otherwise.
    pub fn retry_in(&self) -> Duration {
        let inner = self.lock();
        match inner.state {
            BreakerState::Open => (inner.opened_at + self.config.cool_down)
                .saturating_duration_since(self.clock.now()),
            BreakerState::Closed | BreakerState::HalfOpen => Duration::ZERO,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breaker(clock: &Clock) -> Arc<Breaker> {
        Arc::new(Breaker::new(
            "m",
            BreakerConfig {
                failure_ratio: 0.5,
                window: Duration::from_secs(30),
                min_calls: 4,
                cool_down: Duration::from_secs(10),
                half_open_probes: 2,
            },
            clock.clone(),
            RouterMetrics::default(),
        ))
    }

    fn call(breaker: &Arc<Breaker>, success: bool) {
        breaker.try_acquire().expect("let through").record(success);
    }

    #[test]
    fn it_opens_on_the_failure_ratio_once_the_window_has_enough_calls() {
        let clock = Clock::manual(std::time::SystemTime::UNIX_EPOCH);
        let breaker = breaker(&clock);
        call(&breaker, false);
        call(&breaker, false);
        call(&breaker, false);
        // Three failures out of three: below min_calls, still closed.
        assert_eq!(breaker.state(), BreakerState::Closed);
        call(&breaker, false);
        assert_eq!(breaker.state(), BreakerState::Open);
        assert!(breaker.try_acquire().is_none());
        assert_eq!(breaker.retry_in(), Duration::from_secs(10));
    }

    #[test]
    fn successes_keep_it_closed_and_old_failures_leave_the_window() {
        let clock = Clock::manual(std::time::SystemTime::UNIX_EPOCH);
        let breaker = breaker(&clock);
        for _ in 0..3 {
            call(&breaker, true);
        }
        call(&breaker, false);
        call(&breaker, false);
        // 2 of 5 failed: below the ratio.
        assert_eq!(breaker.state(), BreakerState::Closed);
        clock.advance(Duration::from_secs(40));
        assert_eq!(breaker.window(), (0, 0));
        call(&breaker, false);
        call(&breaker, true);
        call(&breaker, true);
        call(&breaker, true);
        assert_eq!(breaker.state(), BreakerState::Closed);
    }

    #[test]
    fn half_open_lets_a_bounded_number_of_probes_through_and_closes_when_they_succeed() {
        let clock = Clock::manual(std::time::SystemTime::UNIX_EPOCH);
        let breaker = breaker(&clock);
        for _ in 0..4 {
            call(&breaker, false);
        }
        clock.advance(Duration::from_secs(10));
        assert_eq!(breaker.state(), BreakerState::HalfOpen);
        let first = breaker.try_acquire().expect("probe 1");
        let second = breaker.try_acquire().expect("probe 2");
        assert!(breaker.try_acquire().is_none(), "only two probes at once");
        // A probe whose caller left frees its place.
        drop(second);
        let second = breaker.try_acquire().expect("probe 2 again");
        first.record(true);
        assert_eq!(breaker.state(), BreakerState::HalfOpen);
        assert!(breaker.try_acquire().is_none(), "one probe out, one ok");
        second.record(true);
        assert_eq!(breaker.state(), BreakerState::Closed);
        assert_eq!(breaker.window(), (0, 0));
    }

    #[test]
    fn a_failed_probe_opens_it_again_for_a_whole_cool_down() {
        let clock = Clock::manual(std::time::SystemTime::UNIX_EPOCH);
        let breaker = breaker(&clock);
        for _ in 0..4 {
            call(&breaker, false);
        }
        clock.advance(Duration::from_secs(10));
        call(&breaker, false);
        assert_eq!(breaker.state(), BreakerState::Open);
        clock.advance(Duration::from_secs(9));
        assert!(breaker.try_acquire().is_none());
        clock.advance(Duration::from_secs(1));
        assert_eq!(breaker.state(), BreakerState::HalfOpen);
    }

    #[test]
    fn a_probe_of_an_earlier_half_open_period_does_not_count_in_the_next() {
        let clock = Clock::manual(std::time::SystemTime::UNIX_EPOCH);
        let breaker = breaker(&clock);
        for _ in 0..4 {
            call(&breaker, false);
        }
        clock.advance(Duration::from_secs(10));
        let slow = breaker.try_acquire().expect("probe A");
        breaker.try_acquire().expect("probe B").record(false);
        assert_eq!(breaker.state(), BreakerState::Open);
        clock.advance(Duration::from_secs(10));
        let first = breaker.try_acquire().expect("probe C");
        let second = breaker.try_acquire().expect("probe D");
        // A ends late: it neither closes the breaker nor takes C's place.
        slow.record(true);
        assert!(breaker.try_acquire().is_none(), "two probes out");
        first.record(true);
        assert_eq!(breaker.state(), BreakerState::HalfOpen);
        second.record(true);
        assert_eq!(breaker.state(), BreakerState::Closed);
    }

    #[test]
    fn a_reset_closes_it_and_forgets_the_window() {
        let clock = Clock::manual(std::time::SystemTime::UNIX_EPOCH);
        let breaker = breaker(&clock);
        for _ in 0..4 {
            call(&breaker, false);
        }
        assert_eq!(breaker.reset(), BreakerState::Open);
        assert_eq!(breaker.state(), BreakerState::Closed);
        assert_eq!(breaker.window(), (0, 0));
        call(&breaker, true);
    }
}
