//! Deadlines: every call gets one, from the client's `grpc-timeout` (capped at
//! `server.max_timeout`) or else `server.default_timeout`, on the server's
//! clock. When it passes, the handler is dropped (cancelling its work) and the
//! call ends DEADLINE_EXCEEDED, whether it was still computing or already
//! streaming. The deadline is also put in the request's extensions: the agent
//! hands it to every model call of the turn, which ends at it with the same
//! status.

use std::time::Duration;

use futures::future::{BoxFuture, FutureExt};
use http::{HeaderMap, Request, Response};
use tokio::time::Instant;
use tonic::body::Body;
use tower::Service;

use super::body::CutOffBody;
use super::{Stage, error_response, respond};
use crate::clock::Clock;
use crate::error::AppError;

/// When a call must be finished, on the server's clock, and the timeout it
/// came from; in the request's extensions, where the agent handler reads it for
/// the turn.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Deadline {
    /// The instant.
    pub at: Instant,
    /// The call's timeout.
    pub timeout: Duration,
}

/// Parses a `grpc-timeout` value: up to 8 digits and a unit (H, M, S, m, u, n).
fn parse_grpc_timeout(value: &str) -> Option<Duration> {
    if value.len() < 2 || value.len() > 9 {
        return None;
    }
    let (digits, unit) = value.split_at(value.len() - 1);
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let amount: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(amount * 3600),
        "M" => Duration::from_secs(amount * 60),
        "S" => Duration::from_secs(amount),
        "m" => Duration::from_millis(amount),
        "u" => Duration::from_micros(amount),
        "n" => Duration::from_nanos(amount),
        _ => return None,
    })
}

/// Gives every call a deadline and enforces it.
#[derive(Clone, Debug)]
pub struct Deadlines {
    default: Duration,
    max: Duration,
    clock: Clock,
}

impl Deadlines {
    /// `default` applies when the client sends no deadline; `max` caps any
    /// deadline; time runs on `clock`.
    pub fn new(default: Duration, max: Duration, clock: Clock) -> Self {
        Self {
            default,
            max,
            clock,
        }
    }

    fn timeout_of(&self, headers: &HeaderMap) -> Result<Duration, AppError> {
        let Some(value) = headers.get("grpc-timeout") else {
            return Ok(self.default);
        };
        let timeout = value.to_str().ok().and_then(parse_grpc_timeout).ok_or_else(|| {
            AppError::invalid(
                "grpc-timeout",
                "malformed timeout metadata: expected up to 8 digits and a unit of H, M, S, m, u or n",
            )
        })?;
        Ok(timeout.min(self.max))
    }
}

impl Stage for Deadlines {
    fn handle<S>(
        &self,
        mut request: Request<Body>,
        next: &mut S,
    ) -> BoxFuture<'static, Result<Response<Body>, S::Error>>
    where
        S: Service<Request<Body>, Response = Response<Body>>,
        S::Future: Send + 'static,
        S::Error: Send + 'static,
    {
        let timeout = match self.timeout_of(request.headers()) {
            Ok(timeout) => timeout,
            Err(err) => return respond(error_response(err)),
        };
        if timeout.is_zero() {
            return respond(error_response(AppError::DeadlineExceeded { timeout }));
        }
        let deadline = self.clock.now() + timeout;
        request.extensions_mut().insert(Deadline {
            at: deadline,
            timeout,
        });
        let call = next.call(request);
        let clock = self.clock.clone();
        async move {
            match clock.timeout_at(deadline, call).await {
                Ok(response) => Ok(response?.map(|body| {
                    let expiry = clock.sleep_until(deadline).boxed();
                    Body::new(CutOffBody::new(
                        body,
                        expiry,
                        AppError::DeadlineExceeded { timeout },
                    ))
                })),
                Err(_) => Ok(error_response(AppError::DeadlineExceeded { timeout })),
            }
        }
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_timeouts_parse() {
        assert_eq!(parse_grpc_timeout("2S"), Some(Duration::from_secs(2)));
        assert_eq!(parse_grpc_timeout("150m"), Some(Duration::from_millis(150)));
        assert_eq!(parse_grpc_timeout("1H"), Some(Duration::from_secs(3600)));
        assert_eq!(
            parse_grpc_timeout("99999999n"),
            Some(Duration::from_nanos(99_999_999))
        );
        for bad in ["", "S", "10", "123456789S", "1x", "-1S", "1.5S"] {
            assert_eq!(parse_grpc_timeout(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn client_deadlines_are_capped() {
        let layer = Deadlines::new(
            Duration::from_secs(60),
            Duration::from_secs(600),
            Clock::system(),
        );
        let mut headers = HeaderMap::new();
        assert_eq!(layer.timeout_of(&headers).unwrap(), Duration::from_secs(60));
        headers.insert("grpc-timeout", "5H".parse().unwrap());
        assert_eq!(
            layer.timeout_of(&headers).unwrap(),
            Duration::from_secs(600)
        );
        headers.insert("grpc-timeout", "soon".parse().unwrap());
        assert!(layer.timeout_of(&headers).is_err());
    }
}
