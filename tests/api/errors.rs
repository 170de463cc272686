//! Request ids and the error details every failure carries.

use agentd::pb::GetStatusRequest;
use tonic::Code;
use tonic_types::StatusExt;

use crate::helpers::{HeldCall, spawn_app};

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
