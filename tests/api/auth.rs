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

#[tokio::test]
async fn each_method_takes_the_roles_of_its_table_row_and_no_others() {
    use agentd::pb::retrieval_service_client::RetrievalServiceClient;
    use agentd::pb::{ChatRequest, IngestDocumentsRequest, ListCollectionsRequest};

    let app = spawn_app_with(&auth_config()).await;
    let (agent, _) = key("agent");
    let (admin, _) = key("admin");
    let (operator, _) = key("operator");
    let retrieval = || RetrievalServiceClient::new(app.channel.clone());

    // agent: may list collections (agent or ingest), may not ingest (ingest only).
    retrieval()
        .list_collections(with_key(ListCollectionsRequest {}, &agent))
        .await
        .unwrap();
    let err = retrieval()
        .ingest_documents(with_key(IngestDocumentsRequest::default(), &agent))
        .await
        .unwrap_err();
    assert_reason(&err, Code::PermissionDenied, "PERMISSION_DENIED");
    let info = err.get_details_error_info().unwrap();
    assert_eq!(info.metadata["required_roles"], "ingest");
    assert_eq!(
        info.metadata["method"],
        "/agentd.v1.RetrievalService/IngestDocuments"
    );
    assert_eq!(info.metadata["service"], "agentd.v1.RetrievalService");

    // admin and operator: GetStatus, but neither runs the agent (roles do not
    // imply one another).
    for key in [&admin, &operator] {
        app.admin()
            .get_status(with_key(GetStatusRequest {}, key))
            .await
            .unwrap();
        let err = app
            .agent()
            .chat(with_key(ChatRequest::default(), key))
            .await
            .unwrap_err();
        assert_reason(&err, Code::PermissionDenied, "PERMISSION_DENIED");
        let info = err.get_details_error_info().unwrap();
        assert_eq!(info.metadata["required_roles"], "agent");
    }
    let err = app
        .admin()
        .get_status(with_key(GetStatusRequest {}, &agent))
        .await
        .unwrap_err();
    let info = err.get_details_error_info().unwrap();
    assert_eq!(info.metadata["required_roles"], "admin or operator");
}
