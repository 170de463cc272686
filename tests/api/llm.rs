//! The OpenAI-compatible provider against the mock upstream: the wire format,
//! tool-call assembly, every fault, and cancellation. Timeouts run on a manual
//! clock that the tests advance once the mock holds its reply at a gate.

use std::time::Duration;

use agentd::clock::Clock;
use agentd::config::{HttpVersion, SecretSource};
use agentd::llm::openai::{OpenAiProvider, OpenAiSettings};
use agentd::llm::{
    CallContext, ChatMessage, FinishReason, LlmError, LlmEvent, LlmProvider, LlmRequest, ToolSpec,
    Usage,
};
use agentd_mock_llm::{
    Behaviour, Completion, Fault, Gate, Hold, MockLlm, MockToolCall, Reply, StreamEnd,
};
use futures::StreamExt;

async fn mock() -> MockLlm {
    MockLlm::start("127.0.0.1:0".parse().unwrap(), Behaviour::default())
        .await
        .unwrap()
}

/// The idle timeout of the providers here, on their manual clock.
const IDLE: Duration = Duration::from_secs(5);

/// A provider of `mock` whose timeouts run on a manual clock, never advanced
/// unless a test does.
fn provider(mock: &MockLlm) -> OpenAiProvider {
    provider_on(
        mock,
        HttpVersion::Auto,
        Clock::manual(std::time::SystemTime::now()),
    )
}

fn provider_on(mock: &MockLlm, http_version: HttpVersion, clock: Clock) -> OpenAiProvider {
    OpenAiProvider::new(OpenAiSettings {
        name: "mock".into(),
        base_url: mock.base_url(),
        api_key: Some(SecretSource::Inline("sk-test".into()).resolve().unwrap()),
        connect_timeout: Duration::from_secs(2),
        idle_timeout: IDLE,
        pool_max_idle_per_host: 4,
        pool_idle_timeout: Duration::from_secs(30),
        http_version,
        clock,
    })
    .unwrap()
}

fn call() -> CallContext {
    CallContext::detached(Clock::system())
}

fn request() -> LlmRequest {
    LlmRequest {
        model: "gpt-4o-mini".into(),
        messages: vec![
            ChatMessage::System {
                content: "Be brief.".into(),
            },
            ChatMessage::User {
                content: "What time is it?".into(),
            },
        ],
        tools: vec![ToolSpec {
            name: "current_time".into(),
            description: "The current time".into(),
            parameters: serde_json::json!({"type": "object", "properties": {}}).into(),
        }],
        max_output_tokens: Some(100),
        temperature: Some(0.2),
    }
}

async fn collect(provider: &OpenAiProvider) -> Result<Vec<LlmEvent>, LlmError> {
    let mut stream = provider.stream_chat(&call(), request()).await?;
    let mut events = Vec::new();
    while let Some(event) = stream.next().await {
        events.push(event?);
    }
    Ok(events)
}

#[tokio::test]
async fn text_streams_as_deltas_with_the_providers_usage() {
    let mock = mock().await;
    mock.script([Reply::Completion(Completion {
        usage: Some((21, 3)),
        ..Completion::text(["Hel", "lo", "!"])
    })]);
    let events = collect(&provider(&mock)).await.unwrap();
    assert_eq!(
        events,
        [
            LlmEvent::ResponseModel("gpt-4o-mini".into()),
            LlmEvent::TextDelta("Hel".into()),
            LlmEvent::TextDelta("lo".into()),
            LlmEvent::TextDelta("!".into()),
            LlmEvent::Usage(Usage {
                input_tokens: 21,
                output_tokens: 3,
                cached_tokens: 0,
            }),
            LlmEvent::Finished(FinishReason::Stop),
        ]
    );
    let sent = &mock.requests()[0];
    assert_eq!(sent.authorization.as_deref(), Some("Bearer sk-test"));
    assert_eq!(sent.body["stream"], true);
    assert_eq!(sent.body["stream_options"]["include_usage"], true);
    assert_eq!(sent.body["model"], "gpt-4o-mini");
    assert_eq!(sent.body["max_completion_tokens"], 100);
    assert_eq!(sent.body["messages"][0]["role"], "system");
    assert_eq!(sent.body["messages"][1]["content"], "What time is it?");
    assert_eq!(sent.body["tools"][0]["function"]["name"], "current_time");
}

#[tokio::test]
async fn http_version_picks_http1_or_http2_by_prior_knowledge_over_cleartext() {
    let mock = mock().await;
    let versions = [
        (HttpVersion::Auto, http::Version::HTTP_11),
        (HttpVersion::Http1, http::Version::HTTP_11),
        (HttpVersion::Http2, http::Version::HTTP_2),
    ];
    for (configured, _) in versions {
        mock.script([Reply::Completion(Completion::text(["Hel", "lo"]))]);
        let provider = provider_on(&mock, configured, Clock::system());
        let events = collect(&provider).await.unwrap();
        assert!(
            events.contains(&LlmEvent::TextDelta("lo".into())),
            "{configured:?}: {events:?}"
        );
    }
    let seen: Vec<_> = mock.requests().iter().map(|r| r.version).collect();
    let expected: Vec<_> = versions.iter().map(|(_, version)| *version).collect();
    assert_eq!(seen, expected);
}

#[tokio::test]
async fn parallel_tool_calls_are_assembled_from_many_fragments() {
    let mock = mock().await;
    let call = |id: &str, tz: &str| MockToolCall {
        id: id.into(),
        name: "current_time".into(),
        arguments: format!(r#"{{"timezone": "{tz}", "format": "rfc3339"}}"#),
        fragments: 9,
    };
    mock.script([Reply::Completion(Completion::tool_calls([
        call("call_a", "Europe/Paris"),
        call("call_b", "Asia/Tokyo"),
    ]))]);
    let events = collect(&provider(&mock)).await.unwrap();
    let calls = events
        .iter()
        .find_map(|e| match e {
            LlmEvent::ToolCalls(calls) => Some(calls.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[0].id, "call_a");
    assert_eq!(calls[1].id, "call_b");
    let args: serde_json::Value = serde_json::from_str(&calls[1].arguments).unwrap();
    assert_eq!(args["timezone"], "Asia/Tokyo");
    assert_eq!(
        events.last(),
        Some(&LlmEvent::Finished(FinishReason::ToolCalls))
    );
}

#[tokio::test]
async fn conversation_with_tool_results_round_trips_the_wire_format() {
    let mock = mock().await;
    let mut request = request();
    request.messages.push(ChatMessage::Assistant {
        content: String::new(),
        tool_calls: vec![agentd::llm::ToolCall {
            id: "call_1".into(),
            name: "current_time".into(),
            arguments: "{}".into(),
        }],
    });
    request.messages.push(ChatMessage::Tool {
        call_id: "call_1".into(),
        content: "2026-11-23T10:00:00Z".into(),
    });
    let provider = provider(&mock);
    let mut stream = provider.stream_chat(&call(), request).await.unwrap();
    while stream.next().await.is_some() {}
    let sent = &mock.requests()[0].body["messages"];
    assert_eq!(sent[2]["role"], "assistant");
    assert_eq!(sent[2]["tool_calls"][0]["id"], "call_1");
    assert_eq!(sent[2]["tool_calls"][0]["function"]["name"], "current_time");
    assert_eq!(sent[3]["role"], "tool");
    assert_eq!(sent[3]["tool_call_id"], "call_1");
}

fn http_error(status: u16, retry_after: Option<u64>) -> Reply {
    Reply::HttpError {
        status,
        retry_after,
        message: format!("upstream says {status}"),
    }
}

#[tokio::test]
async fn http_errors_map_to_typed_errors() {
    let mock = mock().await;
    let provider = provider(&mock);

    mock.script([http_error(500, None)]);
    let err = collect(&provider).await.unwrap_err();
    assert!(
        matches!(err, LlmError::Unavailable { status: 500, .. }),
        "{err:?}"
    );
    assert!(err.is_retryable());

    mock.script([http_error(429, Some(7))]);
    let err = collect(&provider).await.unwrap_err();
    let LlmError::RateLimited {
        retry_after,
        message,
    } = &err
    else {
        panic!("{err:?}")
    };
    assert_eq!(*retry_after, Some(Duration::from_secs(7)));
    assert_eq!(message, "upstream says 429");

    mock.script([http_error(401, None)]);
    let err = collect(&provider).await.unwrap_err();
    assert!(
        matches!(err, LlmError::Unauthorized { status: 401, .. }),
        "{err:?}"
    );
    assert!(!err.is_retryable());
    // No hidden retries: one request per call.
    assert_eq!(mock.requests().len(), 3);
}

async fn fault(fault: Fault) -> LlmError {
    let mock = mock().await;
    mock.script([Reply::Completion(Completion {
        fault: Some(fault),
        ..Completion::text(["a", "b", "c", "d"])
    })]);
    collect(&provider(&mock)).await.unwrap_err()
}

#[tokio::test]
async fn no_first_byte_within_the_idle_timeout_is_a_timeout() {
    let mock = mock().await;
    let gate = Gate::new();
    mock.script([Reply::Completion(
        Completion::text(["a"]).held(Hold::before_headers(&gate)),
    )]);
    let clock = Clock::manual(std::time::SystemTime::now());
    let provider = provider_on(&mock, HttpVersion::Auto, clock.clone());
    let call = call();
    let started = provider.stream_chat(&call, request());
    tokio::pin!(started);
    // Poll the call (which sets its timer) until the mock holds the request.
    tokio::select! {
        answered = &mut started => panic!("answered before the gate opened: {:?}", answered.err()),
        () = gate.reached(1) => {}
    }
    clock.advance(IDLE);
    let Err(err) = started.await else {
        panic!("the call succeeded")
    };
    assert!(matches!(err, LlmError::Timeout(d) if d == IDLE), "{err:?}");
}

#[tokio::test]
async fn a_stall_mid_stream_is_a_timeout() {
    let mock = mock().await;
    let gate = Gate::new();
    // The role chunk and "a", then nothing until the gate opens.
    mock.script([Reply::Completion(
        Completion::text(["a", "b"]).held(Hold::after_events(2, &gate)),
    )]);
    let clock = Clock::manual(std::time::SystemTime::now());
    let provider = provider_on(&mock, HttpVersion::Auto, clock.clone());
    let mut stream = provider.stream_chat(&call(), request()).await.unwrap();
    assert!(matches!(
        stream.next().await,
        Some(Ok(LlmEvent::ResponseModel(_)))
    ));
    assert_eq!(
        stream.next().await.unwrap().unwrap(),
        LlmEvent::TextDelta("a".into())
    );
    let next = stream.next();
    tokio::pin!(next);
    assert!(futures::poll!(next.as_mut()).is_pending());
    clock.advance(IDLE);
    let end = next.await.unwrap();
    assert!(matches!(end, Err(LlmError::Timeout(_))), "{end:?}");
}

#[tokio::test]
async fn a_reset_mid_stream_is_a_connection_error() {
    let err = fault(Fault::ResetAfter(2)).await;
    assert!(matches!(err, LlmError::Connection(_)), "{err:?}");
}

#[tokio::test]
async fn a_malformed_chunk_is_a_protocol_error() {
    let err = fault(Fault::MalformedAfter(2)).await;
    assert!(matches!(err, LlmError::Protocol(_)), "{err:?}");
}

#[tokio::test]
async fn a_stream_without_done_is_truncated() {
    let err = fault(Fault::NoDone).await;
    assert!(matches!(err, LlmError::Truncated), "{err:?}");
}

#[tokio::test]
async fn dropping_the_stream_closes_the_upstream_connection() {
    let mock = mock().await;
    let gate = Gate::new();
    mock.script([Reply::Completion(
        Completion::text((0..100).map(|i| format!("t{i} "))).held(Hold::after_events(3, &gate)),
    )]);
    let provider = provider(&mock);
    let mut stream = provider.stream_chat(&call(), request()).await.unwrap();
    for _ in 0..3 {
        stream.next().await.unwrap().unwrap();
    }
    drop(stream);
    // The gate never opens: only the closed connection can end the stream.
    let end = mock.wait_for_stream_end(1).await;
    assert!(matches!(end, StreamEnd::Dropped(_)), "{end:?}");
}
