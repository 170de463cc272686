//! Server spans with W3C parents, and the gRPC metrics.

use std::time::Duration;

use agentd::pb::GetStatusRequest;
use opentelemetry::trace::{SpanId, SpanKind, TraceId};
use opentelemetry::{Key, Value};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};

use crate::helpers::{
    ServerProcess, auth_config, eventually, spans_of_trace, spawn_app, spawn_app_with,
};

#[tokio::test]
async fn a_call_continues_the_callers_trace_with_a_server_span() {
    let app = spawn_app().await;
    let trace_id = TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").unwrap();
    let parent_id = SpanId::from_hex("00f067aa0ba902b7").unwrap();
    let mut request = tonic::Request::new(GetStatusRequest {});
    request.metadata_mut().insert(
        "traceparent",
        format!("00-{trace_id}-{parent_id}-01").parse().unwrap(),
    );
    let reply = app.admin().get_status(request).await.unwrap();
    let request_id = reply
        .metadata()
        .get("x-request-id")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();

    eventually(|| async { !spans_of_trace(trace_id).is_empty() }).await;
    let spans = spans_of_trace(trace_id);
    assert_eq!(spans.len(), 1, "{spans:#?}");
    let span = &spans[0];
    assert_eq!(span.name, "agentd.v1.AdminService/GetStatus");
    assert_eq!(span.parent_span_id, parent_id);
    assert_eq!(span.span_kind, SpanKind::Server);
    let attribute = |key: &str| {
        span.attributes
            .iter()
            .find(|kv| kv.key == Key::new(key.to_owned()))
            .map(|kv| kv.value.clone())
    };
    assert_eq!(attribute("rpc.system"), Some(Value::from("grpc")));
    assert_eq!(attribute("rpc.method"), Some(Value::from("GetStatus")));
    assert_eq!(attribute("rpc.grpc.status_code"), Some(Value::I64(0)));
    assert_eq!(attribute("request_id"), Some(Value::from(request_id)));
}

#[tokio::test]
async fn metrics_count_ok_and_failed_calls() {
    let app = spawn_app_with(&auth_config()).await;
    let (admin_key, _) = crate::helpers::key("admin");
    app.admin()
        .get_status(crate::helpers::with_key(GetStatusRequest {}, &admin_key))
        .await
        .unwrap();
    app.admin()
        .get_status(GetStatusRequest {})
        .await
        .unwrap_err();

    let labels = r#"grpc_service="agentd.v1.AdminService",grpc_method="GetStatus""#;
    let handled =
        |code: &str| format!("grpc_server_handled_total{{{labels},grpc_code=\"{code}\"}}");
    // Counted when each call's final status is sent, which the client may see first.
    eventually(|| async { app.metric(&handled("Unauthenticated")).await == Some(1.0) }).await;
    eventually(|| async { app.metric(&handled("OK")).await == Some(1.0) }).await;
    assert_eq!(
        app.metric(&format!("grpc_server_started_total{{{labels}}}"))
            .await,
        Some(2.0)
    );
    assert_eq!(
        app.metric(&format!("grpc_server_handling_seconds_count{{{labels}}}"))
            .await,
        Some(2.0)
    );
    assert_eq!(
        app.metric(&format!("grpc_server_in_flight{{{labels}}}"))
            .await,
        Some(0.0)
    );
    let text = app.metrics().await;
    assert!(text.contains("agentd_build_info{version=\""), "{text}");
}

#[tokio::test]
async fn unknown_methods_do_not_create_new_metric_labels() {
    let app = spawn_app().await;
    let call = crate::helpers::HeldCall::open(app.grpc_addr, "/x.Y/Z", &[]).await;
    assert_eq!(
        call.finish(&[]).await.status().code(),
        tonic::Code::Unimplemented
    );
    let sample = r#"grpc_server_handled_total{grpc_service="unknown",grpc_method="unknown",grpc_code="Unimplemented"}"#;
    eventually(|| async { app.metric(sample).await == Some(1.0) }).await;
    assert!(!app.metrics().await.contains("x.Y"));
}

/// An OTLP/gRPC trace collector that hands every export to the test.
struct Collector(tokio::sync::mpsc::UnboundedSender<ExportTraceServiceRequest>);

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let _ = self.0.send(request.into_inner());
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

#[tokio::test]
async fn otel_env_vars_switch_on_otlp_export_of_server_spans() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let (exports, mut received) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(Collector(exports)))
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
    );

    let server = ServerProcess::start(&[("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint)]).await;
    let trace_id = "0af7651916cd43dd8448eb211c80319c";
    let mut request = tonic::Request::new(GetStatusRequest {});
    request.metadata_mut().insert(
        "traceparent",
        format!("00-{trace_id}-b7ad6b7169203331-01")
            .parse()
            .unwrap(),
    );
    server.admin().await.get_status(request).await.unwrap();
    // Stopping flushes the batch exporter.
    assert_eq!(server.terminate().await, Some(0));

    let found = tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(export) = received.recv().await {
            for resource_spans in export.resource_spans {
                let service_name = resource_spans
                    .resource
                    .iter()
                    .flat_map(|r| &r.attributes)
                    .find(|kv| kv.key == "service.name")
                    .and_then(|kv| kv.value.clone());
                for span in resource_spans.scope_spans.into_iter().flat_map(|s| s.spans) {
                    if hex(&span.trace_id) == trace_id {
                        return (span, service_name);
                    }
                }
            }
        }
        panic!("collector closed before the span arrived")
    })
    .await
    .expect("no span exported within 20 s");
    let (span, service_name) = found;
    assert_eq!(span.name, "agentd.v1.AdminService/GetStatus");
    assert_eq!(hex(&span.parent_span_id), "b7ad6b7169203331");
    let service_name = format!("{service_name:?}");
    assert!(service_name.contains("\"agentd\""), "{service_name}");
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
