//! Request ids and the error details every failure carries.

use agentd::pb::GetStatusRequest;
use tonic::Code;
use tonic_types::StatusExt;

use crate::helpers::{HeldCall, ServerProcess, spawn_app};

#[tokio::test]
async fn every_response_carries_a_request_id_and_echoes_the_callers() {
    let app = spawn_app().await;
    let reply = app.admin().get_status(GetStatusRequest {}).await.unwrap();
    let generated = reply
        .metadata()
        .get("x-request-id")
        .unwrap()
        .to_str()
        .unwrap();
    assert!(uuid::Uuid::parse_str(generated).is_ok(), "{generated}");

    let mut request = tonic::Request::new(GetStatusRequest {});
    request
        .metadata_mut()
        .insert("x-request-id", "caller-chosen-42".parse().unwrap());
    let reply = app.admin().get_status(request).await.unwrap();
    assert_eq!(
        reply.metadata().get("x-request-id").unwrap(),
        "caller-chosen-42"
    );
}

#[tokio::test]
async fn an_invalid_request_id_is_a_field_violation() {
    let app = spawn_app().await;
    let mut request = tonic::Request::new(GetStatusRequest {});
    request
        .metadata_mut()
        .insert("x-request-id", "x".repeat(200).parse().unwrap());
    let err = app.admin().get_status(request).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    let bad = err.get_details_bad_request().unwrap();
    assert_eq!(bad.field_violations[0].field, "x-request-id");
    // The error still names the (generated) id the call ran under.
    let id = err
        .metadata()
        .get("x-request-id")
        .unwrap()
        .to_str()
        .unwrap();
    assert_eq!(
        err.get_details_error_info().unwrap().metadata["request_id"],
        id
    );
}

#[tokio::test]
async fn an_unknown_method_gets_unimplemented_with_error_info() {
    let app = spawn_app().await;
    let call = HeldCall::open(app.grpc_addr, "/agentd.v1.AdminService/NoSuchMethod", &[]).await;
    let status = call.finish(&[]).await.status();
    assert_eq!(status.code(), Code::Unimplemented);
    let info = status.get_details_error_info().unwrap();
    assert_eq!(info.reason, "UNIMPLEMENTED");
    assert_eq!(info.domain, "agentd");
}

/// A payload that never parses: field number 0 is invalid in every message.
const UNDECODABLE: [u8; 1] = [0x00];
const ASK: &str = "/agentd.v1.AgentService/Ask";

#[tokio::test]
async fn an_undecodable_request_is_internal_malformed_request_and_counted() {
    let app = spawn_app().await;
    let chat = r#"agentd_malformed_requests_total{grpc_service="agentd.v1.AgentService",grpc_method="Chat"}"#;
    let ask = r#"agentd_malformed_requests_total{grpc_service="agentd.v1.AgentService",grpc_method="Ask"}"#;
    assert_eq!(
        app.metric(ask).await,
        Some(0.0),
        "series exist from the start"
    );

    let call = HeldCall::open(app.grpc_addr, ASK, &[]).await;
    let response = call.finish(&UNDECODABLE).await;
    let status = response.status();
    assert_eq!(status.code(), Code::Internal, "as the gRPC spec lists it");
    assert_eq!(
        status.message(),
        "failed to decode Protobuf message: invalid tag value: 0"
    );
    let info = status.get_details_error_info().unwrap();
    assert_eq!(info.reason, "MALFORMED_REQUEST");
    assert_eq!(info.domain, "agentd");
    assert_eq!(
        info.metadata["request_id"],
        response.headers["x-request-id"].to_str().unwrap()
    );

    // Counted before the status went out, for that method only.
    assert_eq!(app.metric(ask).await, Some(1.0));
    assert_eq!(app.metric(chat).await, Some(0.0));
    let handled = r#"grpc_server_handled_total{grpc_service="agentd.v1.AgentService",grpc_method="Ask",grpc_code="Internal"}"#;
    assert_eq!(app.metric(handled).await, Some(1.0));

    // The server answers the next, well-formed call as usual.
    app.admin().get_status(GetStatusRequest {}).await.unwrap();
}

#[tokio::test]
async fn an_undecodable_request_is_logged_at_warn_with_its_decode_error_and_peer() {
    let mut server = ServerProcess::start(&[]).await;
    let call = HeldCall::open(server.grpc_addr, ASK, &[("x-request-id", "garbage-1")]).await;
    let status = call.finish(&UNDECODABLE).await.status();
    assert_eq!(status.code(), Code::Internal);

    let access = server.log_entry("call finished").await;
    assert_eq!(access["level"], "WARN", "{access}");
    assert_eq!(access["fields"]["grpc_code"], "Internal");
    assert_eq!(
        access["fields"]["decode_error"],
        "failed to decode Protobuf message: invalid tag value: 0"
    );
    let peer = access["fields"]["peer"].as_str().unwrap();
    assert!(peer.starts_with("127.0.0.1:"), "{peer}");
    assert_eq!(access["span"]["request_id"], "garbage-1");
    assert_eq!(access["span"]["rpc.method"], "Ask");

    assert_eq!(server.terminate().await, Some(0));
}
