//! API keys, tenants and roles.

use agentd::pb::GetStatusRequest;
use tonic::Code;
use tonic_health::pb::HealthCheckRequest;
use tonic_types::StatusExt;

use crate::helpers::{auth_config, key, spawn_app_with, with_key};

fn assert_reason(status: &tonic::Status, code: Code, reason: &str) {
    assert_eq!(status.code(), code, "{status:?}");
    let info = status.get_details_error_info().expect("ErrorInfo");
    assert_eq!(info.reason, reason);
    assert_eq!(info.domain, "agentd");
    assert!(info.metadata.contains_key("request_id"), "{info:?}");
}

#[tokio::test]
async fn a_call_without_a_key_is_unauthenticated() {
    let app = spawn_app_with(&auth_config()).await;
    let err = app
        .admin()
        .get_status(GetStatusRequest {})
        .await
        .unwrap_err();
    assert_reason(&err, Code::Unauthenticated, "UNAUTHENTICATED");
    assert!(
        err.message().contains("authorization: Bearer"),
        "{}",
        err.message()
    );
}

#[tokio::test]
async fn an_unknown_or_malformed_key_is_unauthenticated() {
    let app = spawn_app_with(&auth_config()).await;
    let err = app
        .admin()
        .get_status(with_key(GetStatusRequest {}, "not-a-configured-key"))
        .await
        .unwrap_err();
    assert_reason(&err, Code::Unauthenticated, "UNAUTHENTICATED");
    assert_eq!(err.message(), "unknown API key");

    let (admin_key, _) = key("admin");
    let mut request = tonic::Request::new(GetStatusRequest {});
    request.metadata_mut().insert(
        "authorization",
        format!("Basic {admin_key}").parse().unwrap(),
    );
    let err = app.admin().get_status(request).await.unwrap_err();
    assert_reason(&err, Code::Unauthenticated, "UNAUTHENTICATED");
    assert!(err.message().contains("malformed"), "{}", err.message());
}

#[tokio::test]
async fn a_key_without_the_admin_role_is_denied() {
    let app = spawn_app_with(&auth_config()).await;
    let (agent_key, _) = key("agent");
    let err = app
        .admin()
        .get_status(with_key(GetStatusRequest {}, &agent_key))
        .await
        .unwrap_err();
    assert_reason(&err, Code::PermissionDenied, "PERMISSION_DENIED");
    let info = err.get_details_error_info().unwrap();
    assert_eq!(info.metadata["required_role"], "admin");
    assert!(err.message().contains("acme-agent"), "{}", err.message());
}

#[tokio::test]
async fn an_admin_key_may_call_admin_service() {
    let app = spawn_app_with(&auth_config()).await;
    let (admin_key, _) = key("admin");
    let status = app
        .admin()
        .get_status(with_key(GetStatusRequest {}, &admin_key))
        .await
        .unwrap();
    assert!(!status.get_ref().version.is_empty());
}

#[tokio::test]
async fn health_stays_open_with_auth_on() {
    let app = spawn_app_with(&auth_config()).await;
    let reply = app
        .health()
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap();
    assert_eq!(
        reply.into_inner().status(),
        tonic_health::pb::health_check_response::ServingStatus::Serving
    );
}
