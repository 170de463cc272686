//! GetStatus and health.

use agentd::pb::GetStatusRequest;
use prost_types::value::Kind;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;

use crate::helpers::{auth_config, key, spawn_app, spawn_app_with, with_key};

fn field<'a>(config: &'a prost_types::Struct, path: &[&str]) -> &'a Kind {
    let (last, parents) = path.split_last().unwrap();
    let mut current = config;
    for name in parents {
        match current.fields[*name].kind.as_ref().unwrap() {
            Kind::StructValue(inner) => current = inner,
            other => panic!("{name} is not a struct: {other:?}"),
        }
    }
    current.fields[*last].kind.as_ref().unwrap()
}

#[tokio::test]
async fn get_status_reports_build_uptime_and_effective_config() {
    let app = spawn_app().await;
    let status = app
        .admin()
        .get_status(GetStatusRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(status.version, env!("CARGO_PKG_VERSION"));
    assert_eq!(status.git_commit, agentd::status::GIT_COMMIT);
    assert!(status.start_time.is_some() && status.uptime.is_some());
    assert_eq!(status.dependencies.len(), 1);
    assert_eq!(status.dependencies[0].name, "vector_store");
    assert_eq!(
        status.dependencies[0].state(),
        agentd::pb::DependencyState::Healthy
    );
    let config = status.effective_config.unwrap();
    // The effective config is the one the server runs with, port 0 included.
    assert_eq!(
        field(&config, &["server", "grpc_addr"]),
        &Kind::StringValue("127.0.0.1:0".into())
    );
    assert_eq!(
        field(&config, &["server", "max_concurrent_calls"]),
        &Kind::NumberValue(1024.0)
    );
}

#[tokio::test]
async fn get_status_shows_every_secret_as_stars() {
    let app = spawn_app_with(&auth_config()).await;
    let (admin_key, admin_hash) = key("admin");
    let status = app
        .admin()
        .get_status(with_key(GetStatusRequest {}, &admin_key))
        .await
        .unwrap()
        .into_inner();
    let config = status.effective_config.unwrap();
    let Kind::ListValue(keys) = field(&config, &["auth", "keys"]) else {
        panic!("auth.keys is not a list")
    };
    assert_eq!(keys.values.len(), 2);
    for entry in &keys.values {
        let Some(Kind::StructValue(entry)) = &entry.kind else {
            panic!("key entry is not a struct")
        };
        assert_eq!(field(entry, &["sha256"]), &Kind::StringValue("***".into()));
    }
    assert!(!format!("{config:?}").contains(&admin_hash));
}

#[tokio::test]
async fn health_reports_the_server_and_each_service() {
    let app = spawn_app().await;
    let mut health = app.health();
    for service in ["", "agentd.v1.AdminService"] {
        let reply = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(reply.status(), ServingStatus::Serving, "{service:?}");
    }
    let unknown = health
        .check(HealthCheckRequest {
            service: "agentd.v1.NoSuchService".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), tonic::Code::NotFound);

    let mut watch = health
        .watch(HealthCheckRequest {
            service: "agentd.v1.AdminService".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let first = watch.message().await.unwrap().unwrap();
    assert_eq!(first.status(), ServingStatus::Serving);
}

#[tokio::test]
async fn an_unreachable_vector_store_shows_in_get_status_and_in_retrieval_health() {
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_check_response::ServingStatus;
    // Nothing listens on the discard port: connections are refused.
    let app =
        crate::helpers::spawn_app_with("[retrieval]\nqdrant_url = \"http://127.0.0.1:9\"").await;
    let status = app
        .admin()
        .get_status(GetStatusRequest {})
        .await
        .unwrap()
        .into_inner();
    let store = &status.dependencies[0];
    assert_eq!(store.name, "vector_store");
    assert_eq!(store.state(), agentd::pb::DependencyState::Unhealthy);
    assert!(!store.detail.is_empty());
    crate::helpers::eventually(|| async {
        let reply = app
            .health()
            .check(HealthCheckRequest {
                service: "agentd.v1.RetrievalService".into(),
            })
            .await
            .unwrap()
            .into_inner();
        reply.status() == ServingStatus::NotServing
    })
    .await;
}
