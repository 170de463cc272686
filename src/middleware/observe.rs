//! The outermost layer: gives each call a request id and a server span (continuing
//! the caller's W3C trace), counts it in the gRPC metrics, writes one access-log
//! line when it ends, and makes sure every error status carries an ErrorInfo in
//! domain "agentd" whose metadata names the request id — also for errors that
//! tonic itself produces (unknown method, undecodable message).

use std::collections::{HashMap, HashSet};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures::future::{BoxFuture, FutureExt};
use http::{HeaderMap, HeaderValue, Request, Response};
use http_body::Frame;
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use prost::Message;
use tokio::time::Instant;
use tonic::Code;
use tonic::body::Body;
use tonic_types::StatusExt;
use tower::Service;
use tracing::Instrument;
use tracing::field::Empty;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use super::{Stage, error_response};
use crate::error::{AppError, ERROR_DOMAIN};
use crate::telemetry::HeaderExtractor;
use crate::telemetry::metrics::{MethodLabels, Metrics, code_name};

/// Metadata key of the request id, read from requests and set on responses.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// The id of one call, in the request's extensions for handlers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestId(pub String);

/// The gRPC methods this server serves, so that metric labels stay bounded: a path
/// outside this set is labelled "unknown".
#[derive(Debug, Default)]
pub struct KnownMethods(HashSet<String>);

impl KnownMethods {
    /// Collects `/package.Service/Method` paths from encoded descriptor sets.
    pub fn from_descriptor_sets(sets: &[&[u8]]) -> Result<Self, prost::DecodeError> {
        let mut paths = HashSet::new();
        for set in sets {
            for file in prost_types::FileDescriptorSet::decode(*set)?.file {
                let package = file.package();
                for service in &file.service {
                    for method in &service.method {
                        paths.insert(format!("/{package}.{}/{}", service.name(), method.name()));
                    }
                }
            }
        }
        Ok(Self(paths))
    }

    /// The given `/package.Service/Method` paths.
    pub fn of(paths: impl IntoIterator<Item = impl Into<String>>) -> Self {
        Self(paths.into_iter().map(Into::into).collect())
    }

    /// Whether the server serves `path` (`/package.Service/Method`).
    pub fn contains(&self, path: &str) -> bool {
        self.0.contains(path)
    }

    fn labels(&self, path: &str) -> MethodLabels {
        let known = self
            .0
            .contains(path)
            .then(|| path.strip_prefix('/').and_then(|rest| rest.split_once('/')))
            .flatten();
        let (service, method) = known.unwrap_or(("unknown", "unknown"));
        MethodLabels {
            grpc_service: service.to_owned(),
            grpc_method: method.to_owned(),
        }
    }
}

/// The client's request id if it sent a valid one; an error if it sent an invalid one.
fn supplied_request_id(headers: &HeaderMap) -> Result<Option<String>, AppError> {
    let Some(value) = headers.get(REQUEST_ID_HEADER) else {
        return Ok(None);
    };
    let valid = value
        .to_str()
        .ok()
        .filter(|id| (1..=128).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_graphic()));
    match valid {
        Some(id) => Ok(Some(id.to_owned())),
        None => Err(AppError::invalid(
            REQUEST_ID_HEADER,
            "must be 1 to 128 visible ASCII characters without spaces",
        )),
    }
}

/// `DeadlineExceeded` → `DEADLINE_EXCEEDED`: the ErrorInfo reason for an error
/// status that arrived without one.
fn default_reason(code: Code) -> String {
    let mut reason = String::new();
    for (i, c) in format!("{code:?}").chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            reason.push('_');
        }
        reason.push(c.to_ascii_uppercase());
    }
    reason
}

/// Reads the call's final status from `headers` (trailers, or the headers of a
/// trailers-only response) and, for an error, ensures its ErrorInfo is present and
/// carries the request id. `None` when `headers` carry no status.
fn finalize_status(headers: &mut HeaderMap, request_id: &str) -> Option<Code> {
    let status = tonic::Status::from_header_map(headers)?;
    let code = status.code();
    if code == Code::Ok {
        return Some(code);
    }
    let mut details = status.get_error_details();
    let (reason, domain, mut metadata) = match details.error_info() {
        Some(info) => (
            info.reason.clone(),
            info.domain.clone(),
            info.metadata.clone(),
        ),
        None => (
            default_reason(code),
            ERROR_DOMAIN.to_owned(),
            HashMap::new(),
        ),
    };
    metadata.insert("request_id".to_owned(), request_id.to_owned());
    details.set_error_info(reason, domain, metadata);
    let enriched = tonic::Status::with_error_details(code, status.message(), details);
    if enriched.add_header(headers).is_err() {
        tracing::warn!("could not encode the details of an error status");
    }
    Some(code)
}

/// Whether a final status is the server's failure rather than the caller's, by the
/// OpenTelemetry RPC conventions.
fn is_server_error(code: Code) -> bool {
    matches!(
        code,
        Code::Unknown
            | Code::DeadlineExceeded
            | Code::Unimplemented
            | Code::Internal
            | Code::Unavailable
            | Code::DataLoss
    )
}

/// Observes every call; see the module docs.
#[derive(Clone, Debug)]
pub struct Observe {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    metrics: Arc<Metrics>,
    methods: Arc<KnownMethods>,
    propagator: TraceContextPropagator,
}

impl Observe {
    /// A stage recording into `metrics`, labelling only `methods` by name.
    pub fn new(metrics: Arc<Metrics>, methods: Arc<KnownMethods>) -> Self {
        Self {
            shared: Arc::new(Shared {
                metrics,
                methods,
                propagator: TraceContextPropagator::new(),
            }),
        }
    }
}

impl Stage for Observe {
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
        let start = Instant::now();
        let labels = self.shared.methods.labels(request.uri().path());
        let supplied = supplied_request_id(request.headers());
        let request_id = match &supplied {
            Ok(Some(id)) => id.clone(),
            Ok(None) | Err(_) => uuid::Uuid::now_v7().to_string(),
        };
        let span = tracing::info_span!(
            "grpc",
            otel.name = format!("{}/{}", labels.grpc_service, labels.grpc_method),
            otel.kind = "server",
            otel.status_code = Empty,
            rpc.system = "grpc",
            rpc.service = %labels.grpc_service,
            rpc.method = %labels.grpc_method,
            rpc.grpc.status_code = Empty,
            error.type = Empty,
            request_id = %request_id,
            tenant = Empty,
            api_key = Empty,
        );
        let parent = self
            .shared
            .propagator
            .extract(&HeaderExtractor(request.headers()));
        // A missing or invalid traceparent simply starts a new trace.
        let _ = span.set_parent(parent);

        self.shared.metrics.grpc.started(&labels);
        let mut record = CallRecord {
            metrics: self.shared.metrics.clone(),
            labels,
            start,
            span: span.clone(),
            request_id,
            finished: false,
        };
        request
            .extensions_mut()
            .insert(RequestId(record.request_id.clone()));
        let call = match supplied {
            Err(err) => futures::future::ready(Ok(error_response(err))).left_future(),
            Ok(_) => span.in_scope(|| next.call(request)).right_future(),
        };
        async move {
            let mut response = match call.instrument(span).await {
                Ok(response) => response,
                Err(err) => {
                    record.finish(Code::Unknown);
                    return Err(err);
                }
            };
            // The id was validated or generated above, so it is a valid header value.
            if let Ok(value) = HeaderValue::from_str(&record.request_id) {
                response.headers_mut().insert(REQUEST_ID_HEADER, value);
            }
            if let Some(code) = finalize_status(response.headers_mut(), &record.request_id) {
                record.finish(code);
                return Ok(response);
            }
            Ok(response.map(|body| {
                Body::new(ObservedBody {
                    inner: body,
                    record,
                })
            }))
        }
        .boxed()
    }
}

/// One call in flight: finished exactly once, with its final code, or as
/// CANCELLED when the response is dropped before its trailers were sent.
struct CallRecord {
    metrics: Arc<Metrics>,
    labels: MethodLabels,
    start: Instant,
    span: tracing::Span,
    request_id: String,
    finished: bool,
}

impl CallRecord {
    fn finish(&mut self, code: Code) {
        if std::mem::replace(&mut self.finished, true) {
            return;
        }
        let elapsed = self.start.elapsed();
        self.metrics.grpc.handled(&self.labels, code, elapsed);
        self.span.record("rpc.grpc.status_code", code as i32);
        if is_server_error(code) {
            self.span.record("otel.status_code", "ERROR");
            self.span.record("error.type", code_name(code));
        }
        let _entered = self.span.enter();
        let latency_ms = elapsed.as_secs_f64() * 1000.0;
        let grpc_code = code_name(code);
        match code {
            Code::Internal | Code::Unknown | Code::DataLoss => {
                tracing::error!(grpc_code, latency_ms, "call finished");
            }
            Code::DeadlineExceeded | Code::Unavailable | Code::ResourceExhausted => {
                tracing::warn!(grpc_code, latency_ms, "call finished");
            }
            _ => tracing::info!(grpc_code, latency_ms, "call finished"),
        }
    }
}

impl Drop for CallRecord {
    fn drop(&mut self) {
        self.finish(Code::Cancelled);
    }
}

struct ObservedBody {
    inner: Body,
    record: CallRecord,
}

impl http_body::Body for ObservedBody {
    type Data = Bytes;
    type Error = tonic::Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        let polled = {
            let _entered = this.record.span.enter();
            std::task::ready!(Pin::new(&mut this.inner).poll_frame(cx))
        };
        match polled {
            Some(Ok(mut frame)) => {
                if let Some(trailers) = frame.trailers_mut() {
                    let code = finalize_status(trailers, &this.record.request_id);
                    this.record.finish(code.unwrap_or(Code::Unknown));
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Some(Err(status)) => {
                this.record.finish(status.code());
                Poll::Ready(Some(Err(status)))
            }
            None => {
                this.record.finish(Code::Unknown);
                Poll::Ready(None)
            }
        }
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

    #[test]
    fn default_reasons_are_upper_snake() {
        assert_eq!(default_reason(Code::DeadlineExceeded), "DEADLINE_EXCEEDED");
        assert_eq!(default_reason(Code::Unimplemented), "UNIMPLEMENTED");
    }

    #[test]
    fn request_ids_are_validated() {
        let mut headers = HeaderMap::new();
        assert_eq!(supplied_request_id(&headers).unwrap(), None);
        headers.insert(REQUEST_ID_HEADER, "abc-123".parse().unwrap());
        assert_eq!(
            supplied_request_id(&headers).unwrap().as_deref(),
            Some("abc-123")
        );
        headers.insert(REQUEST_ID_HEADER, "has space".parse().unwrap());
        assert!(supplied_request_id(&headers).is_err());
        headers.insert(REQUEST_ID_HEADER, "x".repeat(129).parse().unwrap());
        assert!(supplied_request_id(&headers).is_err());
    }

    #[test]
    fn unknown_paths_get_bounded_labels() {
        let methods =
            KnownMethods::from_descriptor_sets(&[tonic_health::pb::FILE_DESCRIPTOR_SET]).unwrap();
        let labels = methods.labels("/grpc.health.v1.Health/Check");
        assert_eq!(labels.grpc_method, "Check");
        let labels = methods.labels("/grpc.health.v1.Health/Nope");
        assert_eq!(labels.grpc_service, "unknown");
    }

    #[test]
    fn errors_without_details_get_error_info_with_the_request_id() {
        let mut headers = HeaderMap::new();
        tonic::Status::unimplemented("no such method")
            .add_header(&mut headers)
            .unwrap();
        assert_eq!(
            finalize_status(&mut headers, "rid-1"),
            Some(Code::Unimplemented)
        );
        let status = tonic::Status::from_header_map(&headers).unwrap();
        let info = status.get_details_error_info().unwrap();
        assert_eq!(info.reason, "UNIMPLEMENTED");
        assert_eq!(info.domain, ERROR_DOMAIN);
        assert_eq!(info.metadata["request_id"], "rid-1");
    }
}
