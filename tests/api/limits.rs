//! Message size, deadlines and the concurrency limit.

use agentd::pb::GetStatusRequest;
use prost::Message;
use tonic::Code;
use tonic_types::StatusExt;

use crate::helpers::{HeldCall, padded_message, spawn_app, spawn_app_with};

const GET_STATUS: &str = "/agentd.v1.AdminService/GetStatus";

#[tokio::test]
async fn a_message_at_the_limit_passes_and_one_byte_more_is_refused() {
    let app = spawn_app_with("[server]\nmax_request_bytes = 64").await;

    let at_limit = HeldCall::open(app.grpc_addr, GET_STATUS, &[]).await;
    let response = at_limit.finish(&padded_message(64)).await;
    assert_eq!(response.status().code(), Code::Ok);
    let body = &response.body[5..];
    assert!(
        !agentd::pb::GetStatusResponse::decode(body)
            .unwrap()
            .version
            .is_empty()
    );

    let over = HeldCall::open(app.grpc_addr, GET_STATUS, &[]).await;
    let status = over.finish(&padded_message(65)).await.status();
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    let info = status.get_details_error_info().unwrap();
    assert_eq!(info.reason, "REQUEST_TOO_LARGE");
    assert_eq!(info.metadata["limit_bytes"], "64");
    assert_eq!(info.metadata["size_bytes"], "65");
}

#[tokio::test]
async fn the_clients_grpc_timeout_is_honoured() {
    let app = spawn_app().await;
    // The request body never arrives, so only the deadline can end the call.
    let call = HeldCall::open(app.grpc_addr, GET_STATUS, &[("grpc-timeout", "50m")]).await;
    let status = call.response().await.status();
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
    let info = status.get_details_error_info().unwrap();
    assert_eq!(info.reason, "DEADLINE_EXCEEDED");
    assert_eq!(info.metadata["timeout_ms"], "50");
}

#[tokio::test]
async fn an_already_expired_deadline_is_refused_at_once() {
    let app = spawn_app().await;
    let call = HeldCall::open(app.grpc_addr, GET_STATUS, &[("grpc-timeout", "0n")]).await;
    let status = call.response().await.status();
    assert_eq!(status.code(), Code::DeadlineExceeded);
}

#[tokio::test]
async fn calls_without_a_deadline_get_the_default() {
    let app = spawn_app_with("[server]\ndefault_timeout = \"80ms\"").await;
    let call = HeldCall::open(app.grpc_addr, GET_STATUS, &[]).await;
    let status = call.response().await.status();
    assert_eq!(status.code(), Code::DeadlineExceeded);
    assert_eq!(
        status.get_details_error_info().unwrap().metadata["timeout_ms"],
        "80"
    );
}

#[tokio::test]
async fn a_malformed_grpc_timeout_is_a_field_violation() {
    let app = spawn_app().await;
    let call = HeldCall::open(app.grpc_addr, GET_STATUS, &[("grpc-timeout", "soon")]).await;
    let status = call.finish(&[]).await.status();
    assert_eq!(status.code(), Code::InvalidArgument);
    let bad = status.get_details_bad_request().unwrap();
    assert_eq!(bad.field_violations[0].field, "grpc-timeout");
}

#[tokio::test]
async fn calls_past_the_concurrency_limit_are_shed_at_once() {
    let app = spawn_app_with("[server]\nmax_concurrent_calls = 1").await;
    let held = HeldCall::open(app.grpc_addr, GET_STATUS, &[]).await;
    app.wait_for_in_flight(1.0).await;

    let err = app
        .admin()
        .get_status(GetStatusRequest {})
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    assert_eq!(err.get_details_error_info().unwrap().reason, "OVERLOADED");
    assert!(err.get_details_retry_info().is_some());

    // Health is never shed, so probes keep working under load.
    app.health()
        .check(tonic_health::pb::HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap();

    // Once the held call completes, its slot is free again.
    assert_eq!(held.finish(&[]).await.status().code(), Code::Ok);
    app.wait_for_in_flight(0.0).await;
    app.admin().get_status(GetStatusRequest {}).await.unwrap();
}

#[tokio::test]
async fn a_response_over_the_limit_fails_with_error_info() {
    // GetStatus carries the whole effective config: far more than 64 bytes.
    let app = spawn_app_with("[server]\nmax_response_bytes = 64").await;
    let err = app
        .admin()
        .get_status(GetStatusRequest {})
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::OutOfRange, "{err:?}");
    assert!(err.message().contains("too large"), "{}", err.message());
    let info = err.get_details_error_info().unwrap();
    assert_eq!(info.reason, "OUT_OF_RANGE");
    assert!(info.metadata.contains_key("request_id"));
}
