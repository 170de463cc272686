//! The clock everything time-based reads: "what time is it" (session expiry,
//! later budget periods and cache TTLs) and timers (deadlines, provider and tool
//! timeouts, later backoff, breaker cool-downs, hedge delays, the drain delay).
//!
//! Production uses [`Clock::system`]: tokio's timers and the system's wall time.
//! Tests use [`Clock::manual`], whose time moves only when the test calls
//! [`Clock::advance`], so a test of a timeout advances the clock past it instead
//! of sleeping (tokio's paused time cannot do this for a whole server: it
//! advances by itself whenever the runtime idles, which a server waiting on
//! sockets always does). Both the monotonic instants and the wall time of a
//! manual clock move together.
//!
//! Durations measured only to be reported (metric histograms, the `latency` of
//! a tool result) read the real monotonic clock directly: they describe what
//! happened and decide nothing.
//!
//! Hand-written rather than taken from a crate: the mock-clock crates on the
//! registry (e.g. `mock_instant`) fake "now" but have no timers to wake.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, SystemTime};

use tokio::time::Instant;

/// A source of time; cheap to clone (clones share one time).
#[derive(Clone, Debug, Default)]
pub struct Clock(Source);

#[derive(Clone, Debug, Default)]
enum Source {
    #[default]
    System,
    Manual(Arc<Manual>),
}

/// A manual clock's state: how far it has been advanced, and who waits.
#[derive(Debug)]
struct Manual {
    /// The real instant and wall time the clock started at.
    start: Instant,
    start_wall: SystemTime,
    state: Mutex<ManualState>,
    /// Signalled whenever a sleep starts waiting.
    sleeping: tokio::sync::Notify,
}

#[derive(Debug, Default)]
struct ManualState {
    advanced: Duration,
    /// Ids handed to sleeps.
    next_sleep: u64,
    /// Sleeps that are waiting: (sleep id, the instant it waits for, its waker).
    waiting: Vec<(u64, Instant, Waker)>,
}

impl Manual {
    fn state(&self) -> std::sync::MutexGuard<'_, ManualState> {
        // Every critical section is a read, an add or a vector update that cannot
        // panic half-way, so a poisoned lock still holds consistent data.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn now(&self) -> Instant {
        self.start + self.state().advanced
    }
}

impl Clock {
    /// The real clock.
    pub fn system() -> Self {
        Self(Source::System)
    }

    /// A clock that stands still at `wall` until advanced.
    pub fn manual(wall: SystemTime) -> Self {
        Self(Source::Manual(Arc::new(Manual {
            start: Instant::now(),
            start_wall: wall,
            state: Mutex::new(ManualState::default()),
            sleeping: tokio::sync::Notify::new(),
        })))
    }

    /// The current monotonic instant, for deadlines and timers.
    pub fn now(&self) -> Instant {
        match &self.0 {
            Source::System => Instant::now(),
            Source::Manual(manual) => manual.now(),
        }
    }

    /// The current wall-clock time, for anything stored or shown.
    pub fn wall(&self) -> SystemTime {
        match &self.0 {
            Source::System => SystemTime::now(),
            Source::Manual(manual) => manual.start_wall + manual.state().advanced,
        }
    }

    /// Unix milliseconds of the wall-clock time.
    pub fn unix_ms(&self) -> i64 {
        match self.wall().duration_since(SystemTime::UNIX_EPOCH) {
            Ok(since) => i64::try_from(since.as_millis()).unwrap_or(i64::MAX),
            Err(before) => -i64::try_from(before.duration().as_millis()).unwrap_or(i64::MAX),
        }
    }

    /// Moves a manual clock forward by `by`, waking the sleeps that are due.
    /// Does nothing to the system clock (time there moves by itself).
    pub fn advance(&self, by: Duration) {
        let Source::Manual(manual) = &self.0 else {
            return;
        };
        let due: Vec<Waker> = {
            let mut state = manual.state();
            state.advanced += by;
            let now = manual.start + state.advanced;
            let (due, waiting) = std::mem::take(&mut state.waiting)
                .into_iter()
                .partition(|(_, at, _)| *at <= now);
            state.waiting = waiting;
            due.into_iter().map(|(_, _, waker)| waker).collect()
        };
        for waker in due {
            waker.wake();
        }
    }

    /// On a manual clock, waits until a sleep due exactly `after` from now is
    /// waiting: a test's signal that the code under test has started the timer
    /// of that length that the test means to pass (the clock stands still
    /// between the timer's start and the test's advance, so its deadline is
    /// exactly `after` ahead). Returns at once on the system clock.
    pub async fn wait_for_timer(&self, after: Duration) {
        let Source::Manual(manual) = &self.0 else {
            return;
        };
        loop {
            let started = manual.sleeping.notified();
            {
                let state = manual.state();
                let due = manual.start + state.advanced + after;
                if state.waiting.iter().any(|(_, at, _)| *at == due) {
                    return;
                }
            }
            started.await;
        }
    }

    /// On a manual clock, waits until some sleep due at most `limit` from now
    /// is waiting, and returns how far ahead it is due: a test's way to pass
    /// timers whose exact length it cannot know (a backoff with jitter) while
    /// leaving longer ones (timeouts) alone. Returns zero at once on the
    /// system clock.
    pub async fn next_timer_within(&self, limit: Duration) -> Duration {
        let Source::Manual(manual) = &self.0 else {
            return Duration::ZERO;
        };
        loop {
            let started = manual.sleeping.notified();
            {
                let state = manual.state();
                let now = manual.start + state.advanced;
                let soonest = state
                    .waiting
                    .iter()
                    .map(|(_, at, _)| at.saturating_duration_since(now))
                    .filter(|ahead| *ahead <= limit)
                    .min();
                if let Some(ahead) = soonest {
                    return ahead;
                }
            }
            started.await;
        }
    }

    /// A future that completes at `at`.
    pub fn sleep_until(&self, at: Instant) -> Sleep {
        match &self.0 {
            Source::System => Sleep {
                inner: SleepOn::System {
                    sleep: tokio::time::sleep_until(at),
                },
            },
            Source::Manual(manual) => {
                let id = {
                    let mut state = manual.state();
                    state.next_sleep += 1;
                    state.next_sleep
                };
                Sleep {
                    inner: SleepOn::Manual {
                        sleep: ManualSleep {
                            clock: manual.clone(),
                            at,
                            id,
                        },
                    },
                }
            }
        }
    }

    /// A future that completes after `duration`.
    pub fn sleep(&self, duration: Duration) -> Sleep {
        self.sleep_until(self.now() + duration)
    }

    /// Runs `future` until `at`; `Err(Elapsed)` if `at` came first.
    pub async fn timeout_at<F: Future>(
        &self,
        at: Instant,
        future: F,
    ) -> Result<F::Output, Elapsed> {
        let expiry = self.sleep_until(at);
        tokio::pin!(future, expiry);
        // The future first: work that is already done wins over a timer that is due.
        std::future::poll_fn(|cx| {
            if let Poll::Ready(output) = future.as_mut().poll(cx) {
                return Poll::Ready(Ok(output));
            }
            expiry.as_mut().poll(cx).map(|()| Err(Elapsed))
        })
        .await
    }

    /// Runs `future` for at most `duration`; `Err(Elapsed)` if it took longer.
    pub async fn timeout<F: Future>(
        &self,
        duration: Duration,
        future: F,
    ) -> Result<F::Output, Elapsed> {
        self.timeout_at(self.now() + duration, future).await
    }
}

/// A timer ran out before the work it bounded finished.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("deadline elapsed")]
pub struct Elapsed;

pin_project_lite::pin_project! {
    /// The future of [`Clock::sleep`] and [`Clock::sleep_until`].
    #[derive(Debug)]
    pub struct Sleep {
        #[pin]
        inner: SleepOn,
    }
}

pin_project_lite::pin_project! {
    #[project = SleepProjection]
    #[derive(Debug)]
    enum SleepOn {
        System {
            #[pin]
            sleep: tokio::time::Sleep,
        },
        Manual {
            sleep: ManualSleep,
        },
    }
}

/// A sleep on a manual clock: done once the clock reaches `at`.
#[derive(Debug)]
struct ManualSleep {
    clock: Arc<Manual>,
    at: Instant,
    id: u64,
}

impl Drop for ManualSleep {
    fn drop(&mut self) {
        self.clock
            .state()
            .waiting
            .retain(|(id, _, _)| *id != self.id);
    }
}

impl Future for Sleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        match self.project().inner.project() {
            SleepProjection::System { sleep } => sleep.poll(cx),
            SleepProjection::Manual { sleep } => {
                let mut state = sleep.clock.state();
                if sleep.clock.start + state.advanced >= sleep.at {
                    return Poll::Ready(());
                }
                match state.waiting.iter_mut().find(|(id, _, _)| *id == sleep.id) {
                    Some(entry) => entry.2.clone_from(cx.waker()),
                    None => {
                        state.waiting.push((sleep.id, sleep.at, cx.waker().clone()));
                        drop(state);
                        sleep.clock.sleeping.notify_waiters();
                    }
                }
                Poll::Pending
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_manual_clock_moves_only_when_advanced() {
        let epoch = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        let clock = Clock::manual(epoch);
        let start = clock.now();
        assert_eq!(clock.wall(), epoch);
        assert_eq!(clock.unix_ms(), 1_000_000);

        let mut sleep = Box::pin(clock.sleep(Duration::from_secs(5)));
        assert!(futures::poll!(sleep.as_mut()).is_pending());
        clock.advance(Duration::from_secs(4));
        assert!(futures::poll!(sleep.as_mut()).is_pending());
        clock.advance(Duration::from_secs(1));
        assert!(futures::poll!(sleep.as_mut()).is_ready());
        assert_eq!(clock.now() - start, Duration::from_secs(5));
        assert_eq!(clock.wall(), epoch + Duration::from_secs(5));
    }

    #[tokio::test]
    async fn advancing_wakes_a_waiting_task() {
        let clock = Clock::manual(SystemTime::UNIX_EPOCH);
        let at = clock.now() + Duration::from_secs(30);
        let (polled, was_polled) = tokio::sync::oneshot::channel();
        let waiting = tokio::spawn({
            let clock = clock.clone();
            async move {
                let timeout = clock.timeout_at(at, std::future::pending::<()>());
                tokio::pin!(timeout);
                assert!(futures::poll!(timeout.as_mut()).is_pending());
                polled.send(()).unwrap();
                timeout.await
            }
        });
        was_polled.await.unwrap();
        clock.advance(Duration::from_secs(30));
        assert_eq!(waiting.await.unwrap(), Err(Elapsed));
    }

    #[tokio::test]
    async fn a_test_can_wait_for_a_timer_to_start() {
        let clock = Clock::manual(SystemTime::UNIX_EPOCH);
        let timing = tokio::spawn({
            let clock = clock.clone();
            async move {
                clock
                    .timeout(Duration::from_secs(1), std::future::pending::<()>())
                    .await
            }
        });
        clock.wait_for_timer(Duration::from_secs(1)).await;
        clock.advance(Duration::from_secs(1));
        assert_eq!(timing.await.unwrap(), Err(Elapsed));
    }

    #[tokio::test]
    async fn a_dropped_sleep_stops_waiting() {
        let clock = Clock::manual(SystemTime::UNIX_EPOCH);
        let mut sleep = Box::pin(clock.sleep(Duration::from_secs(1)));
        assert!(futures::poll!(sleep.as_mut()).is_pending());
        drop(sleep);
        let Source::Manual(manual) = &clock.0 else {
            unreachable!()
        };
        assert!(manual.state().waiting.is_empty());
    }

    #[tokio::test]
    async fn finished_work_wins_over_a_due_timer() {
        let clock = Clock::manual(SystemTime::UNIX_EPOCH);
        let at = clock.now();
        assert_eq!(clock.timeout_at(at, async { 7 }).await, Ok(7));
        assert_eq!(
            clock.timeout_at(at, std::future::pending::<()>()).await,
            Err(Elapsed)
        );
    }

    #[tokio::test]
    async fn the_system_clock_times_out_real_work() {
        let clock = Clock::system();
        let result = clock
            .timeout(Duration::ZERO, std::future::pending::<()>())
            .await;
        assert_eq!(result, Err(Elapsed));
        // Advancing the system clock does nothing: real time moves by itself.
        let wall = clock.wall();
        clock.advance(Duration::from_secs(3600));
        assert!(clock.wall() < wall + Duration::from_secs(3600));
    }
}
