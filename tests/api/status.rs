//! GetStatus and health.

use agentd::pb::GetStatusRequest;
use prost_types::value::Kind;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;

use crate::helpers::{TestApp, auth_config, key, spawn_app, spawn_app_with, with_key};

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
    let status = app.status().await;
    assert_eq!(status.version, env!("CARGO_PKG_VERSION"));
    assert_eq!(status.git_commit, agentd::status::GIT_COMMIT);
    assert!(status.start_time.is_some() && status.uptime.is_some());
    assert!(!status.draining);
    let dependencies: Vec<_> = status
        .dependencies
        .iter()
        .map(|d| (d.name.as_str(), d.state()))
        .collect();
    assert_eq!(
        dependencies,
        [
            ("session_store", agentd::pb::DependencyState::Healthy),
            ("vector_store", agentd::pb::DependencyState::Healthy),
        ]
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

/// The `name` of every key in a GetStatus' `auth.keys`, each checked to show
/// its hash as stars.
fn key_names(config: &prost_types::Struct) -> Vec<String> {
    let Kind::ListValue(keys) = field(config, &["auth", "keys"]) else {
        panic!("auth.keys is not a list")
    };
    keys.values
        .iter()
        .map(|entry| {
            let Some(Kind::StructValue(entry)) = &entry.kind else {
                panic!("key entry is not a struct")
            };
            assert_eq!(field(entry, &["sha256"]), &Kind::StringValue("***".into()));
            let Kind::StringValue(name) = field(entry, &["name"]) else {
                panic!("no name")
            };
            name.clone()
        })
        .collect()
}

/// GetStatus as the test key `key_name` (helpers::auth_config) sees it.
async fn status_as(app: &TestApp, key_name: &str) -> agentd::pb::GetStatusResponse {
    let (key, _) = key(key_name);
    app.admin()
        .get_status(with_key(GetStatusRequest {}, &key))
        .await
        .unwrap()
        .into_inner()
}

#[tokio::test]
async fn get_status_shows_every_secret_as_stars() {
    let app = spawn_app_with(&auth_config()).await;
    let (_, operator_hash) = key("operator");
    let config = status_as(&app, "operator").await.effective_config.unwrap();
    assert_eq!(
        key_names(&config),
        ["ops-admin", "acme-agent", "platform-operator"]
    );
    assert!(!format!("{config:?}").contains(&operator_hash));
}

#[tokio::test]
async fn an_admin_sees_its_own_tenants_configuration_and_an_operator_every_tenants() {
    let tools = "[tools.tenants]\nacme = [\"current_time\"]\nops = []\n";
    let app = spawn_app_with(&format!("{}{tools}", auth_config())).await;
    let tenants = |config: &prost_types::Struct| {
        let Kind::StructValue(tenants) = field(config, &["tools", "tenants"]) else {
            panic!("tools.tenants is not a map")
        };
        let mut names: Vec<String> = tenants.fields.keys().cloned().collect();
        names.sort();
        names
    };
    let admin_status = status_as(&app, "admin").await;
    // Not the instance's addresses either.
    assert!(admin_status.bound_addresses.is_empty(), "{admin_status:?}");
    let admin = admin_status.effective_config.unwrap();
    assert_eq!(key_names(&admin), ["ops-admin"]);
    assert_eq!(tenants(&admin), ["ops"]);
    // Nothing beyond its tenant's share: not the listeners, not the providers.
    let mut sections: Vec<&String> = admin.fields.keys().collect();
    sections.sort();
    assert_eq!(sections, ["auth", "tools"]);
    let operator_status = status_as(&app, "operator").await;
    assert_eq!(operator_status.bound_addresses.len(), 3);
    let operator = operator_status.effective_config.unwrap();
    assert_eq!(key_names(&operator).len(), 3);
    assert_eq!(tenants(&operator), ["acme", "ops"]);
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
    use tonic_health::pb::health_check_response::ServingStatus;
    // Nothing listens on the discard port: connections are refused.
    let app =
        crate::helpers::spawn_app_with("[retrieval]\nqdrant_url = \"http://127.0.0.1:9\"").await;
    let status = app.status().await;
    let store = &status.dependencies[1];
    assert_eq!(store.name, "vector_store");
    assert_eq!(store.state(), agentd::pb::DependencyState::Unhealthy);
    assert!(!store.detail.is_empty());
    let check = |service: &'static str| app.serving_status(service);
    crate::helpers::eventually(|| async {
        check("agentd.v1.RetrievalService").await == ServingStatus::NotServing
    })
    .await;
    let up = |dependency: &str| format!(r#"agentd_dependency_up{{dependency="{dependency}"}}"#);
    assert_eq!(app.metric(&up("vector_store")).await, Some(0.0));
    assert_eq!(app.metric(&up("session_store")).await, Some(1.0));
    // A dependency every replica shares is down: the instance stays in the load
    // balancer (""), and so does the agent, which answers without the store.
    assert_eq!(check("").await, ServingStatus::Serving);
    assert_eq!(
        check("agentd.v1.AgentService").await,
        ServingStatus::Serving
    );
}

#[tokio::test]
async fn the_embedded_qdrant_listens_where_get_status_says_and_serves_other_clients() {
    let app = spawn_app().await;
    let status = app.status().await;
    let bound = &status.bound_addresses;
    assert_eq!(bound["grpc"], app.grpc_addr.to_string());
    assert_eq!(bound["metrics"], app.metrics_addr.to_string());
    let qdrant: std::net::SocketAddr = bound["embedded_qdrant"].parse().unwrap();
    assert!(qdrant.ip().is_loopback() && qdrant.port() != 0, "{qdrant}");
    // Another process's client uses it as an external Qdrant.
    let client = qdrant_client::Qdrant::from_url(&format!("http://{qdrant}"))
        .skip_compatibility_check()
        .build()
        .unwrap();
    client.health_check().await.unwrap();
    client.list_collections().await.unwrap();
}
