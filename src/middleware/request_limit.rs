//! Request message size limit: reads the 5-byte gRPC frame header of each request
//! message as it arrives and refuses one whose declared length exceeds
//! `server.max_request_bytes`, before its body is buffered. The error is a
//! `Status` with details, which tonic passes through to the client unchanged.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use futures::future::{BoxFuture, FutureExt};
use http::{Request, Response};
use http_body::Frame;
use tonic::body::Body;
use tower::Service;

use super::Stage;
use crate::error::AppError;

/// Limits the size of each request message.
#[derive(Clone, Copy, Debug)]
pub struct RequestLimit {
    max_bytes: usize,
}

impl RequestLimit {
    /// A stage refusing messages over `max_bytes`.
    pub fn new(max_bytes: usize) -> Self {
        Self { max_bytes }
    }
}

impl Stage for RequestLimit {
    fn handle<S>(
        &self,
        request: Request<Body>,
        next: &mut S,
    ) -> BoxFuture<'static, Result<Response<Body>, S::Error>>
    where
        S: Service<Request<Body>, Response = Response<Body>>,
        S::Future: Send + 'static,
        S::Error: Send + 'static,
    {
        let framing = Framing::new(self.max_bytes);
        next.call(request.map(|body| {
            Body::new(LimitedBody {
                inner: body,
                framing,
            })
        }))
        .boxed()
    }
}

/// Tracks where the stream of gRPC frames stands: inside a header or a payload.
#[derive(Debug)]
struct Framing {
    max_bytes: usize,
    header: [u8; 5],
    header_filled: usize,
    payload_left: usize,
}

impl Framing {
    fn new(max_bytes: usize) -> Self {
        Self {
            max_bytes,
            header: [0; 5],
            header_filled: 0,
            payload_left: 0,
        }
    }

    /// Advances over one chunk of the request body.
    fn advance(&mut self, mut chunk: &[u8]) -> Result<(), AppError> {
        while !chunk.is_empty() {
            if self.payload_left > 0 {
                let step = self.payload_left.min(chunk.len());
                self.payload_left -= step;
                chunk.advance(step);
                continue;
            }
            let step = (5 - self.header_filled).min(chunk.len());
            self.header[self.header_filled..self.header_filled + step]
                .copy_from_slice(&chunk[..step]);
            self.header_filled += step;
            chunk.advance(step);
            if self.header_filled == 5 {
                let [_, a, b, c, d] = self.header;
                let size = u32::from_be_bytes([a, b, c, d]) as usize;
                if size > self.max_bytes {
                    return Err(AppError::RequestTooLarge {
                        size,
                        limit: self.max_bytes,
                    });
                }
                self.header_filled = 0;
                self.payload_left = size;
            }
        }
        Ok(())
    }
}

struct LimitedBody {
    inner: Body,
    framing: Framing,
}

impl http_body::Body for LimitedBody {
    type Data = Bytes;
    type Error = tonic::Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        let frame = std::task::ready!(Pin::new(&mut this.inner).poll_frame(cx));
        if let Some(Ok(frame)) = &frame
            && let Some(data) = frame.data_ref()
            && let Err(err) = this.framing.advance(data)
        {
            return Poll::Ready(Some(Err(err.into())));
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(len: usize) -> Vec<u8> {
        let mut bytes = vec![0u8];
        bytes.extend_from_slice(&(len as u32).to_be_bytes());
        bytes.extend(std::iter::repeat_n(7u8, len));
        bytes
    }

    #[test]
    fn messages_at_the_limit_pass_in_any_chunking() {
        let mut stream = frame(10);
        stream.extend(frame(0));
        stream.extend(frame(3));
        for chunk_size in 1..=stream.len() {
            let mut framing = Framing::new(10);
            for chunk in stream.chunks(chunk_size) {
                framing.advance(chunk).unwrap();
            }
            assert_eq!((framing.header_filled, framing.payload_left), (0, 0));
        }
    }

    #[test]
    fn an_oversized_header_is_refused_before_its_payload() {
        let stream = frame(11);
        let mut framing = Framing::new(10);
        let err = framing.advance(&stream[..5]).unwrap_err();
        assert!(matches!(
            err,
            AppError::RequestTooLarge {
                size: 11,
                limit: 10
            }
        ));
    }
}
