//! The real grpcurl 1.8.6 (installed by `.ci/tools`) against the real server:
//! reflection lists the services and GetStatus answers.

use std::path::PathBuf;

use tokio::process::Command;

use crate::helpers::{auth_config, spawn_app, spawn_app_with};

/// `$AGENTD_GRPCURL`, else the copy `.ci/tools` installs, else `grpcurl` on PATH.
fn grpcurl() -> PathBuf {
    if let Some(path) = std::env::var_os("AGENTD_GRPCURL") {
        return path.into();
    }
    let local = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".tools/bin/grpcurl");
    if local.exists() {
        local
    } else {
        "grpcurl".into()
    }
}

async fn grpcurl_output(args: &[&str]) -> String {
    let output = Command::new(grpcurl())
        .args(args)
        .output()
        .await
        .unwrap_or_else(|err| panic!("cannot run grpcurl ({err}); run `.ci/tools` to install it"));
    let stdout = String::from_utf8(output.stdout).unwrap();
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(
        output.status.success(),
        "grpcurl {args:?} failed:\n{stdout}\n{stderr}"
    );
    stdout
}

#[tokio::test]
async fn grpcurl_lists_the_services_through_reflection() {
    let version = Command::new(grpcurl())
        .arg("-version")
        .output()
        .await
        .unwrap();
    let version = String::from_utf8_lossy(&version.stdout).to_string()
        + &String::from_utf8_lossy(&version.stderr);
    assert!(
        version.contains("1.8.6"),
        "expected grpcurl 1.8.6, got {version}"
    );

    let app = spawn_app().await;
    let addr = app.grpc_addr.to_string();
    let listed = grpcurl_output(&["-plaintext", &addr, "list"]).await;
    for service in ["agentd.v1.AdminService", "grpc.health.v1.Health"] {
        assert!(
            listed.lines().any(|line| line == service),
            "{service} missing from:\n{listed}"
        );
    }
    let described =
        grpcurl_output(&["-plaintext", &addr, "describe", "agentd.v1.AdminService"]).await;
    assert!(described.contains("rpc GetStatus"), "{described}");
}

#[tokio::test]
async fn grpcurl_calls_get_status() {
    let app = spawn_app().await;
    let addr = app.grpc_addr.to_string();
    let reply = grpcurl_output(&["-plaintext", &addr, "agentd.v1.AdminService/GetStatus"]).await;
    let json: serde_json::Value = serde_json::from_str(&reply).unwrap();
    assert_eq!(json["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(
        json["effectiveConfig"]["server"]["grpc_addr"],
        "127.0.0.1:0"
    );
}

#[tokio::test]
async fn grpcurl_reflection_works_without_a_key_but_calls_need_one() {
    let app = spawn_app_with(&auth_config()).await;
    let addr = app.grpc_addr.to_string();
    let listed = grpcurl_output(&["-plaintext", &addr, "list"]).await;
    assert!(listed.contains("agentd.v1.AdminService"));

    let (admin_key, _) = crate::helpers::key("admin");
    let header = format!("authorization: Bearer {admin_key}");
    let reply = grpcurl_output(&[
        "-plaintext",
        "-H",
        &header,
        &addr,
        "agentd.v1.AdminService/GetStatus",
    ])
    .await;
    assert!(reply.contains("\"version\""), "{reply}");
}

#[tokio::test]
async fn reflection_v1_lists_the_public_services() {
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

    let app = spawn_app().await;
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut replies = ServerReflectionClient::new(app.channel.clone())
        .server_reflection_info(tokio_stream::once(request))
        .await
        .unwrap()
        .into_inner();
    let reply = replies.message().await.unwrap().unwrap();
    let Some(MessageResponse::ListServicesResponse(list)) = reply.message_response else {
        panic!("unexpected reply {reply:?}")
    };
    let mut names: Vec<_> = list.service.into_iter().map(|s| s.name).collect();
    names.sort();
    assert_eq!(
        names,
        [
            "agentd.v1.AdminService",
            "agentd.v1.AgentService",
            "agentd.v1.RetrievalService",
            "grpc.health.v1.Health",
            "grpc.reflection.v1.ServerReflection",
            "grpc.reflection.v1alpha.ServerReflection",
        ]
    );
}

#[tokio::test]
async fn grpcurl_streams_a_chat_with_a_tool_call() {
    use agentd_mock_llm::{Completion, Reply};
    let mock = crate::helpers::mock_llm().await;
    mock.script([
        Reply::Completion(Completion::tool_calls([crate::agent::call(
            "call_1",
            r#"{"timezone": "Europe/Paris"}"#,
        )])),
        Reply::Completion(Completion::text(["It is ", "tea time."])),
    ]);
    let app = crate::helpers::spawn_agent(&mock, "").await;
    let addr = app.grpc_addr.to_string();
    let reply = grpcurl_output(&[
        "-plaintext",
        "-d",
        r#"{"message": "What time is it in Paris?", "options": {"tools": ["current_time"]}}"#,
        &addr,
        "agentd.v1.AgentService/Chat",
    ])
    .await;
    // grpcurl prints one JSON object per streamed message.
    let events: Vec<serde_json::Value> = serde_json::Deserializer::from_str(&reply)
        .into_iter()
        .collect::<Result<_, _>>()
        .unwrap();
    let kinds: Vec<&str> = events
        .iter()
        .map(|e| e.as_object().unwrap().keys().next().unwrap().as_str())
        .collect();
    assert_eq!(
        kinds,
        [
            "started",
            "toolCall",
            "toolResult",
            "delta",
            "delta",
            "usage",
            "completed"
        ],
        "{reply}"
    );
    assert_eq!(events[2]["toolResult"]["outcome"], "TOOL_OUTCOME_OK");
    assert_eq!(events[6]["completed"]["answer"], "It is tea time.");
    assert_eq!(events[6]["completed"]["finishReason"], "FINISH_REASON_STOP");
}

#[tokio::test]
async fn grpcurl_decodes_the_error_details_of_a_failing_call() {
    let app = spawn_app().await;
    let addr = app.grpc_addr.to_string();
    let output = Command::new(grpcurl())
        .args([
            "-plaintext",
            "-d",
            r#"{"session_id": "not a valid id"}"#,
            &addr,
            "agentd.v1.AgentService/GetSession",
        ])
        .output()
        .await
        .unwrap();
    assert!(!output.status.success(), "the call succeeded: {output:?}");
    // grpcurl prints the status and its details (resolved through reflection).
    let printed = String::from_utf8_lossy(&output.stdout).to_string()
        + &String::from_utf8_lossy(&output.stderr);
    assert!(printed.contains("Code: InvalidArgument"), "{printed}");
    assert!(!printed.contains("not recognized"), "{printed}");
    // Each detail is printed as `N)<tab>{json}`.
    let details: Vec<serde_json::Value> = printed
        .lines()
        .filter_map(|line| line.trim().split_once(")\t"))
        .map(|(_, json)| serde_json::from_str(json).unwrap())
        .collect();
    let detail = |kind: &str| {
        details
            .iter()
            .find(|d| d["@type"] == format!("type.googleapis.com/google.rpc.{kind}"))
            .unwrap_or_else(|| panic!("no {kind} in:\n{printed}"))
    };
    let info = detail("ErrorInfo");
    assert_eq!(info["reason"], "INVALID_ARGUMENT");
    assert_eq!(info["domain"], "agentd");
    assert!(info["metadata"]["request_id"].is_string(), "{info}");
    assert_eq!(
        detail("BadRequest")["fieldViolations"][0]["field"],
        "session_id"
    );
}
