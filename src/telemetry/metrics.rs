//! The Prometheus registry, the gRPC server metrics and the `/metrics` endpoint.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Latency buckets (seconds) for call durations, from sub-millisecond admin calls
/// to multi-minute agent streams.
const DURATION_BUCKETS: [f64; 17] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0, 300.0,
];

/// Labels naming a gRPC method.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MethodLabels {
    /// Fully qualified service, or "unknown" for paths no service serves.
    pub grpc_service: String,
    /// Method name, or "unknown".
    pub grpc_method: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CodeLabels {
    grpc_service: String,
    grpc_method: String,
    grpc_code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DependencyLabels {
    dependency: String,
}

/// Whether each dependency answered its last health check: 1 up, 0 down.
#[derive(Clone, Debug, Default)]
pub struct DependencyMetrics {
    up: Family<DependencyLabels, Gauge>,
}

impl DependencyMetrics {
    /// Records one dependency's state from its latest check.
    pub fn set(&self, dependency: &str, up: bool) {
        self.up
            .get_or_create(&DependencyLabels {
                dependency: dependency.to_owned(),
            })
            .set(i64::from(up));
    }
}

/// TLS certificate reloads, failed handshakes and the served certificate's expiry.
#[derive(Clone, Debug, Default)]
pub struct TlsMetrics {
    reloads: Family<OutcomeLabels, Counter>,
    handshake_failures: Family<ReasonLabels, Counter>,
    expiry: Family<ListenerLabels, Gauge>,
}

impl TlsMetrics {
    /// TLS is on: every series starts at zero, so the first failure is an
    /// increase an alert can see, not a series that appears.
    pub fn start(&self, not_after: std::time::SystemTime) {
        // Getting a series creates it, at zero.
        for outcome in ["ok", "error"] {
            drop(self.reloads.get_or_create(&OutcomeLabels {
                outcome: outcome.to_owned(),
            }));
        }
        for reason in ["handshake", "timeout"] {
            drop(self.handshake_failures.get_or_create(&ReasonLabels {
                reason: reason.to_owned(),
            }));
        }
        self.set_not_after(not_after);
    }

    /// Counts one reload of changed TLS files, used (`ok`) or refused (`error`).
    pub fn reloaded(&self, ok: bool) {
        let outcome = if ok { "ok" } else { "error" };
        self.reloads
            .get_or_create(&OutcomeLabels {
                outcome: outcome.to_owned(),
            })
            .inc();
    }

    /// Counts a connection refused during the handshake (`handshake`: the
    /// client spoke no TLS, did not trust the server, or, with mutual TLS,
    /// sent no valid certificate) or that did not finish it in time (`timeout`).
    pub fn handshake_failed(&self, timed_out: bool) {
        let reason = if timed_out { "timeout" } else { "handshake" };
        self.handshake_failures
            .get_or_create(&ReasonLabels {
                reason: reason.to_owned(),
            })
            .inc();
    }

    /// Records when the served certificate expires.
    pub fn set_not_after(&self, not_after: std::time::SystemTime) {
        let seconds = not_after
            .duration_since(std::time::SystemTime::UNIX_EPOCH)
            .map_or(0, |since| {
                i64::try_from(since.as_secs()).unwrap_or(i64::MAX)
            });
        self.expiry
            .get_or_create(&ListenerLabels {
                listener: "grpc".to_owned(),
            })
            .set(seconds);
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ListenerLabels {
    listener: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: String,
    git_commit: String,
}

/// The gRPC server metrics, named as in go-grpc-prometheus, and agentd's count
/// of requests it could not read.
#[derive(Debug)]
pub struct GrpcMetrics {
    started: Family<MethodLabels, Counter>,
    handled: Family<CodeLabels, Counter>,
    handling: Family<MethodLabels, Histogram>,
    in_flight: Family<MethodLabels, Gauge>,
    /// `agentd_malformed_requests_total`. The issue asked for `{grpc_method}`;
    /// it carries `grpc_service` too because method names repeat across
    /// services and the P1 alert's rule keeps only agentd's own services.
    malformed: Family<MethodLabels, Counter>,
}

impl GrpcMetrics {
    fn register(registry: &mut Registry) -> Self {
        let metrics = Self {
            started: Family::default(),
            handled: Family::default(),
            handling: Family::new_with_constructor(|| {
                Histogram::new(DURATION_BUCKETS.iter().copied())
            }),
            in_flight: Family::default(),
            malformed: Family::default(),
        };
        registry.register(
            "grpc_server_started",
            "RPCs started on the server",
            metrics.started.clone(),
        );
        registry.register(
            "grpc_server_handled",
            "RPCs completed on the server, by gRPC status code",
            metrics.handled.clone(),
        );
        registry.register_with_unit(
            "grpc_server_handling",
            "Time from receiving an RPC to its final status",
            Unit::Seconds,
            metrics.handling.clone(),
        );
        registry.register(
            "grpc_server_in_flight",
            "RPCs started and not yet completed",
            metrics.in_flight.clone(),
        );
        registry.register(
            "agentd_malformed_requests",
            "Calls whose request could not be read (a message that does not parse, broken gRPC framing); each also counts in grpc_server_handled_total as Internal",
            metrics.malformed.clone(),
        );
        metrics
    }

    /// Creates the malformed-request series of `methods` at zero, so that the
    /// first malformed request is an increase a rule can see.
    pub fn start_malformed(&self, methods: impl IntoIterator<Item = MethodLabels>) {
        for method in methods {
            // Getting a series creates it, at zero.
            drop(self.malformed.get_or_create(&method));
        }
    }

    /// Counts a call whose request could not be read.
    pub fn malformed(&self, method: &MethodLabels) {
        self.malformed.get_or_create(method).inc();
    }

    /// Counts a call that has started.
    pub fn started(&self, method: &MethodLabels) {
        self.started.get_or_create(method).inc();
        self.in_flight.get_or_create(method).inc();
    }

    /// Counts a call that has ended with `code` after `elapsed`.
    pub fn handled(&self, method: &MethodLabels, code: tonic::Code, elapsed: Duration) {
        self.in_flight.get_or_create(method).dec();
        let labels = CodeLabels {
            grpc_service: method.grpc_service.clone(),
            grpc_method: method.grpc_method.clone(),
            grpc_code: code_name(code).to_owned(),
        };
        self.handled.get_or_create(&labels).inc();
        self.handling
            .get_or_create(method)
            .observe(elapsed.as_secs_f64());
    }
}

/// The registry with every metric agentd exports.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// gRPC server metrics.
    pub grpc: GrpcMetrics,
    /// Agent and model-call metrics.
    pub genai: std::sync::Arc<super::genai::GenAiMetrics>,
    /// Dependency health, as the health watcher last saw it.
    pub dependencies: DependencyMetrics,
    /// TLS certificate reloads and expiry.
    pub tls: TlsMetrics,
    /// Model-router attempts and circuit breakers.
    pub router: super::resilience::RouterMetrics,
    /// Spend, budgets and rate limits.
    pub cost: super::cost::CostMetrics,
    /// Guardrail decisions and webhooks.
    pub guardrails: super::guardrails::GuardrailMetrics,
}

impl Metrics {
    /// Registers all metrics, including the build-info gauge.
    pub fn new(version: &str, git_commit: &str) -> Self {
        let mut registry = Registry::default();
        let grpc = GrpcMetrics::register(&mut registry);
        let genai = std::sync::Arc::new(super::genai::GenAiMetrics::register(&mut registry));
        let router = super::resilience::RouterMetrics::register(&mut registry);
        let cost = super::cost::CostMetrics::register(&mut registry);
        let guardrails = super::guardrails::GuardrailMetrics::register(&mut registry);
        let build_info = Family::<BuildLabels, Gauge>::default();
        build_info
            .get_or_create(&BuildLabels {
                version: version.to_owned(),
                git_commit: git_commit.to_owned(),
            })
            .set(1);
        registry.register(
            "agentd_build_info",
            "Always 1; labels carry the version and git commit",
            build_info,
        );
        let dependencies = DependencyMetrics::default();
        registry.register(
            "agentd_dependency_up",
            "1 if the dependency (session_store, vector_store) answered its last health check, else 0",
            dependencies.up.clone(),
        );
        let tls = TlsMetrics::default();
        registry.register(
            "agentd_tls_reloads",
            "Changed TLS files on the gRPC listener, by outcome: ok (now served) or error (refused, or the files became unreadable; the previous certificate still served)",
            tls.reloads.clone(),
        );
        registry.register(
            "agentd_tls_handshake_failures",
            "Connections on the TLS listener that failed the handshake, by reason: handshake (refused) or timeout",
            tls.handshake_failures.clone(),
        );
        registry.register(
            "agentd_tls_certificate_expiry_timestamp_seconds",
            "When the certificate served on the listener expires, in Unix seconds (only with TLS on)",
            tls.expiry.clone(),
        );
        Self {
            registry,
            grpc,
            genai,
            dependencies,
            tls,
            router,
            cost,
            guardrails,
        }
    }

    /// The metrics in the OpenMetrics text format.
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)?;
        Ok(text)
    }
}

/// The gRPC status code's name as used in metric labels, e.g. `DeadlineExceeded`.
pub fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code::*;
    match code {
        Ok => "OK",
        Cancelled => "Canceled",
        Unknown => "Unknown",
        InvalidArgument => "InvalidArgument",
        DeadlineExceeded => "DeadlineExceeded",
        NotFound => "NotFound",
        AlreadyExists => "AlreadyExists",
        PermissionDenied => "PermissionDenied",
        ResourceExhausted => "ResourceExhausted",
        FailedPrecondition => "FailedPrecondition",
        Aborted => "Aborted",
        OutOfRange => "OutOfRange",
        Unimplemented => "Unimplemented",
        Internal => "Internal",
        Unavailable => "Unavailable",
        DataLoss => "DataLoss",
        Unauthenticated => "Unauthenticated",
    }
}

/// Serves `GET /metrics` on `listener` until `shutdown` is cancelled.
pub async fn serve(
    listener: TcpListener,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let router = Router::new().route(
        "/metrics",
        get(move || {
            let metrics = metrics.clone();
            async move {
                match metrics.encode() {
                    Ok(text) => (
                        StatusCode::OK,
                        [(
                            header::CONTENT_TYPE,
                            "application/openmetrics-text; version=1.0.0; charset=utf-8",
                        )],
                        text,
                    )
                        .into_response(),
                    Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
                }
            }
        }),
    );
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
}
