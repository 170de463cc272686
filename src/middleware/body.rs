//! Response-body wrappers shared by the layers.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures::future::BoxFuture;
use http::HeaderMap;
use http_body::Frame;
use tonic::body::Body;

use crate::error::AppError;

/// A response body that ends with the trailers of `error` as soon as `trigger`
/// completes, unless the inner body has a frame ready. Dropping the inner body
/// drops the handler's stream, which cancels its work.
pub struct CutOffBody {
    inner: Body,
    trigger: BoxFuture<'static, ()>,
    error: Option<AppError>,
}

impl CutOffBody {
    /// Wraps `inner`; when `trigger` fires the call ends with `error`.
    pub fn new(inner: Body, trigger: BoxFuture<'static, ()>, error: AppError) -> Self {
        Self {
            inner,
            trigger,
            error: Some(error),
        }
    }
}

impl http_body::Body for CutOffBody {
    type Data = Bytes;
    type Error = tonic::Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if self.error.is_none() {
            return Poll::Ready(None);
        }
        if let Poll::Ready(frame) = Pin::new(&mut self.inner).poll_frame(cx) {
            return Poll::Ready(frame);
        }
        if self.trigger.as_mut().poll(cx).is_pending() {
            return Poll::Pending;
        }
        let Some(error) = self.error.take() else {
            return Poll::Ready(None);
        };
        self.inner = Body::empty();
        let mut trailers = HeaderMap::new();
        match tonic::Status::from(error).add_header(&mut trailers) {
            Ok(()) => Poll::Ready(Some(Ok(Frame::trailers(trailers)))),
            Err(status) => Poll::Ready(Some(Err(status))),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.error.is_none() || self.inner.is_end_stream()
    }
}

/// A response body that keeps `guard` alive until the body is dropped.
pub struct GuardedBody<G> {
    inner: Body,
    _guard: G,
}

impl<G> GuardedBody<G> {
    /// Wraps `inner`, holding `guard` as long as it lives.
    pub fn new(inner: Body, guard: G) -> Self {
        Self {
            inner,
            _guard: guard,
        }
    }
}

impl<G: Unpin> http_body::Body for GuardedBody<G> {
    type Data = Bytes;
    type Error = tonic::Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}
