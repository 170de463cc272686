//! The vector store unreachable: a turn is not refused for it (no false
//! NOT_FOUND for the collections it names), the knowledge search tells the
//! model the knowledge base is unavailable, and the answer is flagged
//! degraded. And the spans of a retried call.

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

fn attribute(span: &opentelemetry_sdk::trace::SpanData, key: &str) -> Option<opentelemetry::Value> {
    span.attributes
        .iter()
        .find(|kv| kv.key == opentelemetry::Key::new(key.to_owned()))
        .map(|kv| kv.value.clone())
}

#[tokio::test]
async fn a_retried_call_is_one_model_call_span_with_a_chat_span_per_attempt() {
    use opentelemetry::Value;
    use opentelemetry::trace::{SpanId, TraceId};

    let mock = mock_llm().await;
    // Real time: the one backoff is at most 1 ms (base_delay), slept by the
    // server, not by the test.
    let app = spawn_agent(
        &mock,
        "[llm.retry]\nbase_delay = \"1ms\"\nmax_delay = \"2ms\"",
    )
    .await;
    mock.script([
        agentd_mock_llm::ScriptedError::new(503, "busy").into(),
        Reply::Completion(Completion::text(["Recovered."])),
    ]);
    let trace_id = TraceId::from_hex("6cf92f3577b34da6a3ce929d0e0e4736").unwrap();
    let parent_id = SpanId::from_hex("20f067aa0ba902b7").unwrap();
    let mut request = tonic::Request::new(crate::agent::chat("Hello?"));
    request.metadata_mut().insert(
        "traceparent",
        format!("00-{trace_id}-{parent_id}-01").parse().unwrap(),
    );
    let mut stream = app.agent().chat(request).await.unwrap().into_inner();
    while stream.message().await.unwrap().is_some() {}

    crate::helpers::eventually(|| async {
        crate::helpers::spans_of_trace(trace_id)
            .iter()
            .any(|span| span.name == "invoke_agent agentd")
    })
    .await;
    let spans = crate::helpers::spans_of_trace(trace_id);
    let named = |name: &str| spans.iter().filter(|s| s.name == name).collect::<Vec<_>>();
    let agent = named("invoke_agent agentd")[0];
    assert_eq!(attribute(agent, "agentd.attempts"), Some(Value::I64(2)));
    let calls = named("model_call mock-model");
    assert_eq!(calls.len(), 1, "{spans:#?}");
    let chats = named("chat gpt-4o-mini");
    assert_eq!(chats.len(), 2, "{spans:#?}");
    let mut outcomes: Vec<(String, String, Option<Value>)> = chats
        .iter()
        .map(|chat| {
            assert_eq!(chat.parent_span_id, calls[0].span_context.span_id());
            let number = attribute(chat, "agentd.attempt")
                .map(|v| v.to_string())
                .unwrap_or_default();
            let outcome = attribute(chat, "agentd.attempt.outcome")
                .map(|v| v.to_string())
                .unwrap_or_default();
            (number, outcome, attribute(chat, "error.type"))
        })
        .collect();
    outcomes.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        outcomes,
        [
            (
                "1".to_owned(),
                "unavailable".to_owned(),
                Some(Value::from("unavailable"))
            ),
            ("2".to_owned(), "ok".to_owned(), None),
        ]
    );
}
