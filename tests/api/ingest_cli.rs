//! `agentd ingest` against a running server, then a grounded answer with no LLM:
//! the README walk-through as a test.

use agentd::pb::chat_response::Event;
use agentd::pb::retrieval_service_client::RetrievalServiceClient;
use agentd::pb::{ChatRequest, SearchRequest};

use crate::helpers::{agentd_command, spawn_app};

#[tokio::test]
async fn ingest_sends_md_and_txt_files_skips_non_utf8_and_grounds_answers() {
    let app = spawn_app().await;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir_all(root.join("engineering")).unwrap();
    std::fs::create_dir_all(root.join("people")).unwrap();
    std::fs::write(
        root.join("engineering/release.md"),
        "# Releases\\n\\nReleases ship every Tuesday. The freeze window starts 48 hours before \
         each release.",
    )
    .unwrap();
    std::fs::write(
        root.join("people/vacation.txt"),
        "Everyone gets 25 days of paid vacation a year.",
    )
    .unwrap();
    std::fs::write(root.join("people/broken.md"), [0xff, 0xfe, 0x00, 0x41]).unwrap();
    std::fs::write(root.join("logo.png"), [0x89, 0x50]).unwrap();

    let output = agentd_command()
        .args(["ingest", "--server"])
        .arg(format!("http://{}", app.grpc_addr))
        .arg(root)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8(output.stdout).unwrap();
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(output.status.success(), "{stdout}\\n{stderr}");
    assert!(
        stdout.contains("ingested 2 documents") && stdout.contains("collection default"),
        "{stdout}"
    );
    assert!(
        stderr.contains("broken.md") && stderr.contains("not valid UTF-8"),
        "{stderr}"
    );

    let hits = RetrievalServiceClient::new(app.channel.clone())
        .search(SearchRequest {
            query: "paid vacation days".into(),
            ..SearchRequest::default()
        })
        .await
        .unwrap()
        .into_inner()
        .hits;
    assert_eq!(hits[0].doc_id, "people/vacation.txt");

    let mut stream = app
        .agent()
        .chat(ChatRequest {
            message: "When does the freeze window start?".into(),
            ..ChatRequest::default()
        })
        .await
        .unwrap()
        .into_inner();
    let mut answer = String::new();
    while let Some(response) = stream.message().await.unwrap() {
        if let Some(Event::Completed(outcome)) = response.event {
            answer = outcome.answer;
        }
    }
    assert!(answer.contains("48 hours before each release"), "{answer}");
    assert!(answer.contains("engineering/release.md"), "{answer}");
}

#[tokio::test]
async fn ingest_without_a_server_fails_clearly() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.md"), "text").unwrap();
    let output = agentd_command()
        .args(["ingest", "--server", "http://127.0.0.1:9"])
        .arg(dir.path())
        .output()
        .await
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(
        stderr.contains("cannot connect to http://127.0.0.1:9"),
        "{stderr}"
    );
}
