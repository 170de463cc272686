//! The outermost layer: gives each call a request id and a server span (continuing
//! the caller's W3C trace), counts it in the gRPC metrics, writes one access-log
//! line when it ends, and makes sure every error status carries an ErrorInfo in
//! domain "agentd" whose metadata names the request id — also for errors that
//! tonic itself produces (unknown method, undecodable message).
//!
//! A call whose request could not be read (reason `MALFORMED_REQUEST`, from
//! agentd's codec or given here to tonic's own framing errors) keeps its code,
//! INTERNAL, but is the caller's doing: its access-log line is a WARN with the
//! decode error and the peer's address instead of an ERROR, and it counts in
//! `agentd_malformed_requests_total`, which the P1 alert subtracts.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
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
use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};
use tonic_types::StatusExt;
use tower::Service;
use tracing::Instrument;
use tracing::field::Empty;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use super::malformed::is_unreadable_by_tonic;
use super::{Stage, error_response};
use crate::error::{AppError, ERROR_DOMAIN, MALFORMED_REQUEST};
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

    /// The metric labels of every method.
    pub fn all_labels(&self) -> impl Iterator<Item = MethodLabels> + '_ {
        self.0.iter().map(|path| self.labels(path))
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

/// What the access log and the metrics need of a call's final status.
#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    code: Code,
    /// Why the request could not be read, when that is how the call ended.
    malformed: Option<String>,
}

impl From<Code> for Outcome {
    fn from(code: Code) -> Self {
        Self {
            code,
            malformed: None,
        }
    }
}

/// Reads the call's final status from `headers` (trailers, or the headers of a
/// trailers-only response) and, for an error, ensures its ErrorInfo is present and
/// carries the request id; tonic's own statuses for a request it could not read
/// get the reason `MALFORMED_REQUEST`. `None` when `headers` carry no status.
fn finalize_status(headers: &mut HeaderMap, request_id: &str) -> Option<Outcome> {
    let status = tonic::Status::from_header_map(headers)?;
    let code = status.code();
    if code == Code::Ok {
        return Some(code.into());
    }
    let mut details = status.get_error_details();
    let (reason, domain, mut metadata) = match details.error_info() {
        Some(info) => (
            info.reason.clone(),
            info.domain.clone(),
            info.metadata.clone(),
        ),
        None if is_unreadable_by_tonic(code, status.message()) => (
            MALFORMED_REQUEST.to_owned(),
            ERROR_DOMAIN.to_owned(),
            HashMap::new(),
        ),
        None => (
            default_reason(code),
            ERROR_DOMAIN.to_owned(),
            HashMap::new(),
        ),
    };
    let malformed = (reason == MALFORMED_REQUEST && domain == ERROR_DOMAIN)
        .then(|| status.message().to_owned());
    metadata.insert("request_id".to_owned(), request_id.to_owned());
    details.set_error_info(reason, domain, metadata);
    let enriched = tonic::Status::with_error_details(code, status.message(), details);
    if enriched.add_header(headers).is_err() {
        tracing::warn!("could not encode the details of an error status");
    }
    Some(Outcome { code, malformed })
}

/// The address of the connection `request` came on (a proxy's, behind one).
fn peer_of<B>(request: &Request<B>) -> Option<SocketAddr> {
    let extensions = request.extensions();
    extensions
        .get::<TcpConnectInfo>()
        .and_then(TcpConnectInfo::remote_addr)
        .or_else(|| {
            extensions
                .get::<TlsConnectInfo<TcpConnectInfo>>()
                .and_then(|info| info.get_ref().remote_addr())
        })
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
            peer: peer_of(&request),
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
                    record.finish(Code::Unknown.into());
                    return Err(err);
                }
            };
            // The id was validated or generated above, so it is a valid header value.
            if let Ok(value) = HeaderValue::from_str(&record.request_id) {
                response.headers_mut().insert(REQUEST_ID_HEADER, value);
            }
            if let Some(outcome) = finalize_status(response.headers_mut(), &record.request_id) {
                record.finish(outcome);
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
    /// Logged only for a malformed request, to find the client that sent it.
    peer: Option<SocketAddr>,
    finished: bool,
}

impl CallRecord {
    fn finish(&mut self, outcome: Outcome) {
        if std::mem::replace(&mut self.finished, true) {
            return;
        }
        let code = outcome.code;
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
        if let Some(decode_error) = outcome.malformed {
            self.metrics.grpc.malformed(&self.labels);
            let peer = self.peer.map(tracing::field::display);
            tracing::warn!(grpc_code, latency_ms, decode_error, peer, "call finished");
            return;
        }
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
        self.finish(Code::Cancelled.into());
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
                    let outcome = finalize_status(trailers, &this.record.request_id);
                    this.record
                        .finish(outcome.unwrap_or_else(|| Code::Unknown.into()));
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Some(Err(status)) => {
                this.record.finish(status.code().into());
                Poll::Ready(Some(Err(status)))
            }
            None => {
                this.record.finish(Code::Unknown.into());
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
            Some(Code::Unimplemented.into())
        );
        let status = tonic::Status::from_header_map(&headers).unwrap();
        let info = status.get_details_error_info().unwrap();
        assert_eq!(info.reason, "UNIMPLEMENTED");
        assert_eq!(info.domain, ERROR_DOMAIN);
        assert_eq!(info.metadata["request_id"], "rid-1");
    }

    #[test]
    fn a_request_agentd_could_not_read_is_malformed_and_keeps_its_reason() {
        let mut headers = HeaderMap::new();
        tonic::Status::from(AppError::MalformedRequest(
            "failed to decode Protobuf message: invalid tag value: 0".to_owned(),
        ))
        .add_header(&mut headers)
        .unwrap();
        let outcome = finalize_status(&mut headers, "rid-2").unwrap();
        assert_eq!(outcome.code, Code::Internal);
        assert_eq!(
            outcome.malformed.as_deref(),
            Some("failed to decode Protobuf message: invalid tag value: 0")
        );
        let status = tonic::Status::from_header_map(&headers).unwrap();
        let info = status.get_details_error_info().unwrap();
        assert_eq!(info.reason, MALFORMED_REQUEST);
        assert_eq!(info.metadata["request_id"], "rid-2");
    }

    #[test]
    fn tonics_framing_errors_are_malformed_and_other_internal_errors_are_not() {
        let mut headers = HeaderMap::new();
        tonic::Status::internal("Missing request message.")
            .add_header(&mut headers)
            .unwrap();
        let outcome = finalize_status(&mut headers, "rid-3").unwrap();
        assert_eq!(
            outcome.malformed.as_deref(),
            Some("Missing request message.")
        );
        let status = tonic::Status::from_header_map(&headers).unwrap();
        assert_eq!(
            status.get_details_error_info().unwrap().reason,
            MALFORMED_REQUEST
        );

        let mut headers = HeaderMap::new();
        tonic::Status::from(AppError::Internal(anyhow::anyhow!("a bug")))
            .add_header(&mut headers)
            .unwrap();
        let outcome = finalize_status(&mut headers, "rid-4").unwrap();
        assert_eq!(outcome, Code::Internal.into());
    }

    #[test]
    fn every_known_method_has_labels() {
        let methods = KnownMethods::of(["/a.v1.S/One", "/a.v1.S/Two"]);
        let mut labels: Vec<_> = methods
            .all_labels()
            .map(|l| format!("{}/{}", l.grpc_service, l.grpc_method))
            .collect();
        labels.sort();
        assert_eq!(labels, ["a.v1.S/One", "a.v1.S/Two"]);
    }
}
