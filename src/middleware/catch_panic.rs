//! Turns a panic while handling a call into INTERNAL for that call alone, logged
//! with its request id, instead of a reset stream. (A panic later, while a stream
//! body is being polled, still resets that one stream.)

use std::panic::AssertUnwindSafe;

use futures::future::{BoxFuture, FutureExt};
use http::{Request, Response};
use tonic::body::Body;
use tower::Service;

use super::{Stage, error_response, respond};
use crate::error::AppError;

/// The panic-catching stage.
#[derive(Clone, Copy, Debug, Default)]
pub struct CatchPanic;

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a non-string panic payload".to_owned())
}

fn internal(payload: &(dyn std::any::Any + Send)) -> Response<Body> {
    let message = panic_message(payload);
    error_response(AppError::Internal(anyhow::anyhow!(
        "handler panicked: {message}"
    )))
}

impl Stage for CatchPanic {
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
        let call = match std::panic::catch_unwind(AssertUnwindSafe(|| next.call(request))) {
            Ok(call) => call,
            Err(payload) => return respond(internal(payload.as_ref())),
        };
        async move {
            match AssertUnwindSafe(call).catch_unwind().await {
                Ok(result) => result,
                Err(payload) => Ok(internal(payload.as_ref())),
            }
        }
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use tower::{Layer, ServiceExt};

    use super::*;
    use crate::middleware::StageLayer;

    #[tokio::test]
    async fn a_panicking_handler_answers_internal() {
        let handler = tower::service_fn(|_: Request<Body>| async {
            panic!("boom");
            #[allow(unreachable_code)]
            Ok::<Response<Body>, Infallible>(Response::new(Body::empty()))
        });
        let service = StageLayer::new(CatchPanic).layer(handler);
        let response = service.oneshot(Request::new(Body::empty())).await.unwrap();
        let status = tonic::Status::from_header_map(response.headers()).unwrap();
        assert_eq!(status.code(), tonic::Code::Internal);
        assert!(!status.message().contains("boom"), "{}", status.message());
    }

    #[tokio::test]
    async fn a_healthy_handler_is_untouched() {
        let handler = tower::service_fn(|_: Request<Body>| async {
            Ok::<_, Infallible>(Response::new(Body::empty()))
        });
        let service = StageLayer::new(CatchPanic).layer(handler);
        let response = service.oneshot(Request::new(Body::empty())).await.unwrap();
        assert!(tonic::Status::from_header_map(response.headers()).is_none());
    }
}
