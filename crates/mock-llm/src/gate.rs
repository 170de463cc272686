//! Gates: where a scripted reply waits until its test releases it, so tests
//! wait on events (a reply reached its gate) instead of on time.

use std::sync::Arc;

use tokio::sync::watch;

/// A point a scripted reply stops at until its test releases it: the test waits
/// on the event (the reply reached the gate), not on time.
#[derive(Clone, Debug)]
pub struct Gate(Arc<GateState>);

#[derive(Debug)]
struct GateState {
    /// Replies that have reached the gate so far.
    reached: watch::Sender<usize>,
    /// Whether the gate is open.
    open: watch::Sender<bool>,
}

impl Default for Gate {
    fn default() -> Self {
        Self::new()
    }
}

impl Gate {
    /// A closed gate.
    pub fn new() -> Self {
        Self(Arc::new(GateState {
            reached: watch::Sender::new(0),
            open: watch::Sender::new(false),
        }))
    }

    /// Waits until `n` replies have reached the gate (they are held there until
    /// [`Gate::release`]).
    pub async fn reached(&self, n: usize) {
        let mut reached = self.0.reached.subscribe();
        // The sender lives in `self`, so the channel cannot close while we wait.
        let _ = reached.wait_for(|count| *count >= n).await;
    }

    /// Opens the gate: every reply held at it goes on, and later ones pass.
    pub fn release(&self) {
        self.0.open.send_replace(true);
    }

    /// Called by a reply at the gate: counts it, then waits until it is open.
    pub(crate) async fn pass(&self) {
        self.0.reached.send_modify(|count| *count += 1);
        let mut open = self.0.open.subscribe();
        let _ = open.wait_for(|open| *open).await;
    }
}

/// Where a reply waits at its gate.
#[derive(Clone, Debug)]
pub struct Hold {
    /// `None`: before the response headers; `Some(n)`: after the first `n`
    /// server-sent events of a streamed reply (the first is the role chunk, then
    /// one per text piece).
    pub after_events: Option<usize>,
    /// The gate.
    pub gate: Gate,
}

impl Hold {
    /// Held before the response headers.
    pub fn before_headers(gate: &Gate) -> Self {
        Self {
            after_events: None,
            gate: gate.clone(),
        }
    }

    /// Held after the first `n` events of the stream.
    pub fn after_events(n: usize, gate: &Gate) -> Self {
        Self {
            after_events: Some(n),
            gate: gate.clone(),
        }
    }
}
