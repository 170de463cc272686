//! A stream run inside a span: the span is entered on every poll, an error ends
//! it as failed with `error.type` set, and a drop before the end marks it
//! `cancelled`. The agent's `invoke_agent` and `chat` spans are such streams:
//! their work happens while the response stream is polled, not in one future.

use std::pin::Pin;
use std::task::{Context, Poll};

use futures::Stream;

/// An error that names its kind for the `error.type` attribute of spans and
/// the `error_type` label of metrics: a short, stable, low-cardinality word.
pub trait ErrorType {
    /// The kind, e.g. `timeout`, `rate_limited`, `session_conflict`.
    fn error_type(&self) -> &'static str;
}

pin_project_lite::pin_project! {
    /// See the module docs.
    pub struct Traced<S> {
        #[pin]
        inner: S,
        mark: EndMark,
    }
}

struct EndMark {
    span: tracing::Span,
    ended: bool,
}

impl Drop for EndMark {
    fn drop(&mut self) {
        if !self.ended {
            self.span.record("error.type", "cancelled");
        }
    }
}

impl<S> Traced<S> {
    /// `inner`, run inside `span`.
    pub fn new(inner: S, span: tracing::Span) -> Self {
        Self {
            inner,
            mark: EndMark { span, ended: false },
        }
    }
}

impl<S, T, E> Stream for Traced<S>
where
    S: Stream<Item = Result<T, E>>,
    E: ErrorType,
{
    type Item = S::Item;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.project();
        let polled = {
            let _entered = this.mark.span.enter();
            this.inner.poll_next(cx)
        };
        match &polled {
            Poll::Ready(None) => this.mark.ended = true,
            Poll::Ready(Some(Err(err))) => {
                this.mark.ended = true;
                this.mark.span.record("error.type", err.error_type());
                this.mark.span.record("otel.status_code", "ERROR");
            }
            Poll::Ready(Some(Ok(_))) | Poll::Pending => {}
        }
        polled
    }
}
