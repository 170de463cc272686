//! The agent's GenAI spans and metrics, read from an in-memory exporter and
//! from /metrics after a run with two tool calls.

use agentd_mock_llm::{Completion, Reply};
use opentelemetry::trace::{SpanId, TraceId};
use opentelemetry::{Key, Value};
use opentelemetry_sdk::trace::SpanData;

use crate::agent::{call, chat, completed};
use crate::helpers::{eventually, mock_llm, spans_of_trace, spawn_agent};

fn attribute(span: &SpanData, key: &str) -> Option<Value> {
    span.attributes
        .iter()
        .find(|kv| kv.key == Key::new(key.to_owned()))
        .map(|kv| kv.value.clone())
}

#[tokio::test]
async fn a_run_with_two_tool_calls_makes_the_genai_span_tree_and_metrics() {
    let mock = mock_llm().await;
    mock.script([
        Reply::Completion(Completion {
            usage: Some((50, 10)),
            ..Completion::tool_calls([call("call_a", "{}"), call("call_b", r#"{"timezone": 1}"#)])
        }),
        Reply::Completion(Completion {
            usage: Some((80, 6)),
            ..Completion::text(["Done."])
        }),
    ]);
    let app = spawn_agent(&mock, "").await;
    let trace_id = TraceId::from_hex("5bf92f3577b34da6a3ce929d0e0e4736").unwrap();
    let parent_id = SpanId::from_hex("10f067aa0ba902b7").unwrap();
    let mut request = tonic::Request::new(chat("What time is it?"));
    request.metadata_mut().insert(
        "traceparent",
        format!("00-{trace_id}-{parent_id}-01").parse().unwrap(),
    );
    let mut stream = app.agent().chat(request).await.unwrap().into_inner();
    let mut events = Vec::new();
    while let Some(response) = stream.message().await.unwrap() {
        events.push(response.event.unwrap());
    }
    let session_id = completed(&events).session_id.clone();

    let named = |name: &str| {
        let name = name.to_owned();
        move || {
            let name = name.clone();
            async move {
                spans_of_trace(trace_id)
                    .iter()
                    .any(|span| span.name == name.as_str())
            }
        }
    };
    eventually(named("invoke_agent agentd")).await;
    eventually(named("agentd.v1.AgentService/Chat")).await;
    let spans = spans_of_trace(trace_id);
    let find = |name: &str| -> Vec<&SpanData> { spans.iter().filter(|s| s.name == name).collect() };

    let server = find("agentd.v1.AgentService/Chat")[0];
    let agent = find("invoke_agent agentd");
    assert_eq!(agent.len(), 1, "{spans:#?}");
    let agent = agent[0];
    assert_eq!(agent.parent_span_id, server.span_context.span_id());
    assert_eq!(
        attribute(agent, "gen_ai.operation.name"),
        Some(Value::from("invoke_agent"))
    );
    assert_eq!(
        attribute(agent, "gen_ai.agent.name"),
        Some(Value::from("agentd"))
    );
    assert_eq!(
        attribute(agent, "gen_ai.conversation.id"),
        Some(Value::from(session_id))
    );
    assert_eq!(
        attribute(agent, "gen_ai.usage.input_tokens"),
        Some(Value::I64(130))
    );
    assert_eq!(
        attribute(agent, "gen_ai.usage.output_tokens"),
        Some(Value::I64(16))
    );
    // gpt-4o-mini: 130 × 150 + 16 × 600 nano-USD.
    let Some(Value::F64(cost)) = attribute(agent, "agentd.cost_usd") else {
        panic!("no cost on the turn's span");
    };
    assert!((cost - 29_100e-9).abs() < 1e-12, "{cost}");

    assert_eq!(
        attribute(agent, "agentd.route"),
        Some(Value::from("mock-model"))
    );
    assert_eq!(attribute(agent, "agentd.attempts"), Some(Value::I64(2)));
    assert_eq!(
        attribute(agent, "gen_ai.response.model"),
        Some(Value::from("mock-model"))
    );
    assert!(attribute(agent, "agentd.degraded").is_none());

    // One model_call span per model call of the loop, each with one chat span
    // per attempt (here one: nothing failed).
    let calls = find("model_call mock-model");
    assert_eq!(calls.len(), 2, "{spans:#?}");
    let chats = find("chat gpt-4o-mini");
    assert_eq!(chats.len(), 2, "{spans:#?}");
    for (call, chat) in calls.iter().zip(&chats) {
        assert_eq!(call.parent_span_id, agent.span_context.span_id());
        assert!(
            calls
                .iter()
                .any(|call| chat.parent_span_id == call.span_context.span_id()),
            "{spans:#?}"
        );
        assert_eq!(
            attribute(call, "agentd.route"),
            Some(Value::from("mock-model"))
        );
        assert_eq!(
            attribute(chat, "agentd.target"),
            Some(Value::from("mock-model"))
        );
        assert_eq!(
            attribute(chat, "agentd.attempt.outcome"),
            Some(Value::from("ok"))
        );
        assert_eq!(
            attribute(chat, "gen_ai.operation.name"),
            Some(Value::from("chat"))
        );
        assert_eq!(
            attribute(chat, "gen_ai.provider.name"),
            Some(Value::from("mock"))
        );
        assert_eq!(
            attribute(chat, "gen_ai.request.model"),
            Some(Value::from("gpt-4o-mini"))
        );
        assert_eq!(
            attribute(chat, "gen_ai.response.model"),
            Some(Value::from("gpt-4o-mini"))
        );
        assert!(attribute(chat, "gen_ai.usage.input_tokens").is_some());
        assert!(
            matches!(attribute(chat, "agentd.cost_usd"), Some(Value::F64(cost)) if cost > 0.0),
            "no cost on the attempt's span"
        );
        assert!(attribute(chat, "error.type").is_none());
    }

    let tools = find("execute_tool current_time");
    assert_eq!(tools.len(), 2, "{spans:#?}");
    let mut ids = Vec::new();
    for tool in &tools {
        assert_eq!(tool.parent_span_id, agent.span_context.span_id());
        assert_eq!(
            attribute(tool, "gen_ai.tool.name"),
            Some(Value::from("current_time"))
        );
        ids.push(attribute(tool, "gen_ai.tool.call.id").unwrap().to_string());
    }
    ids.sort();
    assert_eq!(ids, ["call_a", "call_b"]);
    let failed = tools
        .iter()
        .find(|t| attribute(t, "gen_ai.tool.call.id") == Some(Value::from("call_b")))
        .unwrap();
    assert_eq!(
        attribute(failed, "error.type"),
        Some(Value::from("invalid_arguments"))
    );

    let labels = r#"gen_ai_operation_name="chat",gen_ai_provider_name="mock",gen_ai_request_model="gpt-4o-mini""#;
    let samples = [
        format!(
            r#"gen_ai_client_token_usage_count{{{labels},gen_ai_token_type="input",tenant="default"}}"#
        ),
        format!(
            r#"gen_ai_client_token_usage_sum{{{labels},gen_ai_token_type="output",tenant="default"}}"#
        ),
        format!(r#"gen_ai_client_operation_duration_seconds_count{{{labels},error_type=""}}"#),
        r#"agentd_tool_calls_total{gen_ai_tool_name="current_time",outcome="ok"}"#.to_owned(),
        r#"agentd_tool_calls_total{gen_ai_tool_name="current_time",outcome="invalid_arguments"}"#
            .to_owned(),
        r#"agentd_tool_duration_seconds_count{gen_ai_tool_name="current_time",outcome="ok"}"#
            .to_owned(),
        r#"agentd_agent_steps_sum{gen_ai_request_model="mock-model"}"#.to_owned(),
        r#"agentd_time_to_first_token_seconds_count{gen_ai_request_model="mock-model"}"#.to_owned(),
        r#"agentd_session_write_seconds_count{outcome="ok"}"#.to_owned(),
    ];
    let expected = [2.0, 16.0, 2.0, 1.0, 1.0, 1.0, 2.0, 1.0, 1.0];
    for (sample, value) in samples.iter().zip(expected) {
        assert_eq!(app.metric(sample).await, Some(value), "{sample}");
    }
}
