//! The vector store unreachable: a turn is not refused for it (no false
//! NOT_FOUND for the collections it names), the knowledge search tells the
//! model the knowledge base is unavailable, and the answer is flagged
//! degraded.

use agentd::pb::{ChatRequest, DegradationReason, TurnOptions};
use agentd_mock_llm::{Completion, MockToolCall, Reply};

use crate::agent::{completed, run_chat, session};
use crate::helpers::{mock_llm, spawn_agent};

#[tokio::test]
async fn with_the_vector_store_down_a_turn_answers_degraded_without_the_knowledge_base() {
    let mock = mock_llm().await;
    // Nothing listens on the discard port: the store's connections are refused.
    let app = spawn_agent(&mock, "[retrieval]\nqdrant_url = \"http://127.0.0.1:9\"").await;
    mock.script([
        Reply::Completion(Completion::tool_calls([MockToolCall {
            id: "call_1".into(),
            name: "search_knowledge".into(),
            arguments: r#"{"query": "freeze window"}"#.into(),
            fragments: 1,
        }])),
        Reply::Completion(Completion::text(["I could not check the handbook."])),
    ]);
    let request = ChatRequest {
        message: "When does the freeze window start?".into(),
        // A collection the store cannot be asked about: not NOT_FOUND.
        options: Some(TurnOptions {
            collections: vec!["handbook".into()],
            ..TurnOptions::default()
        }),
        ..ChatRequest::default()
    };
    let (events, end) = run_chat(&app, request).await;
    end.unwrap();
    let outcome = completed(&events);
    assert!(outcome.degraded);
    assert_eq!(
        outcome.degradation_reason(),
        DegradationReason::VectorStoreUnavailable
    );
    assert_eq!(outcome.model, "mock-model");
    assert!(outcome.sources.is_empty());
    // The model was told, in the tool's result.
    let told = mock.requests()[1].body["messages"].to_string();
    assert!(told.contains("knowledge base is unavailable"), "{told}");
    let stored = session(&app, &outcome.session_id).await.unwrap();
    assert_eq!(stored.turns, 1);
    assert_eq!(
        app.metric(r#"agentd_degraded_answers_total{reason="vector_store_unavailable"}"#)
            .await,
        Some(1.0)
    );
    assert_eq!(
        app.metric(r#"agentd_tool_calls_total{gen_ai_tool_name="search_knowledge",outcome="ok"}"#)
            .await,
        Some(1.0)
    );
}
