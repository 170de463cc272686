//! A Python client generated from `proto/` with grpcio-tools (installed by
//! `.ci/tools`) streams a Chat, asks in the same session and reads it back.

use std::path::PathBuf;

use agentd_mock_llm::{Completion, Reply};

use crate::agent::call;
use crate::helpers::{mock_llm, spawn_agent};

/// `$AGENTD_PYTHON`, else the virtualenv `.ci/tools` creates.
fn python() -> PathBuf {
    std::env::var_os("AGENTD_PYTHON").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".tools/venv/bin/python"),
        PathBuf::from,
    )
}

#[tokio::test]
async fn a_generated_python_client_chats_asks_and_reads_the_session() {
    let mock = mock_llm().await;
    mock.script([
        Reply::Completion(Completion::tool_calls([call("call_1", "{}")])),
        Reply::Completion(Completion::text(["It is ", "noon."])),
        Reply::Completion(Completion::text(["Still noon."])),
    ]);
    let app = spawn_agent(&mock, "").await;
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let output = tokio::process::Command::new(python())
        .arg(root.join("tests/clients/python_chat.py"))
        .arg(root.join("proto"))
        .arg(app.grpc_addr.to_string())
        .arg("What time is it?")
        .output()
        .await
        .unwrap_or_else(|err| panic!("cannot run python ({err}); run `.ci/tools` to install it"));
    let stdout = String::from_utf8(output.stdout).unwrap();
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(output.status.success(), "{stdout}\n{stderr}");
    let replies: Vec<serde_json::Value> = stdout
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let kinds: Vec<&str> = replies
        .iter()
        .map(|r| r.as_object().unwrap().keys().next().unwrap().as_str())
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
            "completed",
            "outcome",
            "session"
        ],
        "{stdout}"
    );
    assert_eq!(replies[6]["completed"]["answer"], "It is noon.");
    assert_eq!(replies[7]["outcome"]["answer"], "Still noon.");
    assert_eq!(
        replies[7]["outcome"]["sessionId"],
        replies[6]["completed"]["sessionId"]
    );
    assert_eq!(replies[8]["session"]["turns"], "2");
}
