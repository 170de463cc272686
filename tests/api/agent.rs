//! AgentService end to end against the mock upstream: the event stream, tool
//! round trips, max steps, sessions and Ask.

use agentd::pb::chat_response::Event;
use agentd::pb::{
    AskRequest, ChatRequest, DeleteSessionRequest, FinishReason, GetSessionRequest, MessageRole,
    ToolOutcome, TurnOptions,
};
use agentd_mock_llm::{Completion, MockLlm, MockToolCall, Reply};
use tonic::Code;

use crate::helpers::{TestApp, mock_llm, spawn_agent};

pub fn chat(message: &str) -> ChatRequest {
    ChatRequest {
        message: message.into(),
        ..ChatRequest::default()
    }
}

/// Every event of a Chat call, and how the stream ended.
pub async fn run_chat(
    app: &TestApp,
    request: ChatRequest,
) -> (Vec<Event>, Result<(), tonic::Status>) {
    let mut stream = match app.agent().chat(request).await {
        Ok(response) => response.into_inner(),
        Err(status) => return (Vec::new(), Err(status)),
    };
    let mut events = Vec::new();
    loop {
        match stream.message().await {
            Ok(Some(response)) => events.push(response.event.unwrap()),
            Ok(None) => return (events, Ok(())),
            Err(status) => return (events, Err(status)),
        }
    }
}

pub fn completed(events: &[Event]) -> &agentd::pb::TurnOutcome {
    match events.last() {
        Some(Event::Completed(outcome)) => outcome,
        other => panic!("the stream did not end with completed: {other:?}"),
    }
}

pub fn call(id: &str, arguments: &str) -> MockToolCall {
    MockToolCall {
        id: id.into(),
        name: "current_time".into(),
        arguments: arguments.into(),
        fragments: 3,
    }
}

pub async fn session(app: &TestApp, id: &str) -> Result<agentd::pb::Session, tonic::Status> {
    app.agent()
        .get_session(GetSessionRequest {
            session_id: id.into(),
        })
        .await
        .map(|r| r.into_inner().session.unwrap())
}

#[tokio::test]
async fn chat_streams_started_deltas_usage_and_one_completed() {
    let mock = mock_llm().await;
    mock.script([Reply::Completion(Completion {
        usage: Some((21, 3)),
        ..Completion::text(["Hel", "lo", "!"])
    })]);
    let app = spawn_agent(&mock, "").await;

    let (events, end) = run_chat(&app, chat("Say hello")).await;
    end.unwrap();
    let Some(Event::Started(started)) = events.first() else {
        panic!("first event is not started: {events:?}")
    };
    assert_eq!(started.model, "mock-model");
    assert!(started.system_prompt_version.starts_with("sha256:"));
    assert!(!started.request_id.is_empty());
    let deltas: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            Event::Delta(d) => Some(d.text.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(deltas, ["Hel", "lo", "!"]);
    let Some(Event::Usage(usage)) = events.get(events.len() - 2) else {
        panic!("usage does not precede completed: {events:?}")
    };
    assert_eq!((usage.input_tokens, usage.output_tokens), (21, 3));
    assert!(!usage.estimated);
    let outcome = completed(&events);
    assert_eq!(outcome.answer, "Hello!");
    assert_eq!(outcome.finish_reason(), FinishReason::Stop);
    assert_eq!(outcome.session_id, started.session_id);
    assert_eq!(
        events
            .iter()
            .filter(|e| matches!(e, Event::Completed(_)))
            .count(),
        1
    );

    // The upstream got the system prompt, then the user's message, as gpt-4o-mini.
    let sent = &mock.requests()[0].body;
    assert_eq!(sent["model"], "gpt-4o-mini");
    assert_eq!(sent["messages"][0]["role"], "system");
    assert_eq!(sent["messages"][1]["content"], "Say hello");
    assert_eq!(sent["tools"][0]["function"]["name"], "current_time");

    let stored = session(&app, &outcome.session_id).await.unwrap();
    assert_eq!(stored.turns, 1);
    let roles: Vec<_> = stored.messages.iter().map(|m| m.role()).collect();
    assert_eq!(roles, [MessageRole::User, MessageRole::Assistant]);
    assert_eq!(stored.messages[1].content, "Hello!");
}

#[tokio::test]
async fn a_session_continues_with_its_history() {
    let mock = mock_llm().await;
    mock.script([
        Reply::Completion(Completion::text(["Nice to meet you, Ada."])),
        Reply::Completion(Completion::text(["Your name is Ada."])),
    ]);
    let app = spawn_agent(&mock, "").await;
    let (events, end) = run_chat(&app, chat("My name is Ada.")).await;
    end.unwrap();
    let session_id = completed(&events).session_id.clone();

    let (events, end) = run_chat(
        &app,
        ChatRequest {
            session_id: session_id.clone(),
            ..chat("What is my name?")
        },
    )
    .await;
    end.unwrap();
    assert_eq!(completed(&events).session_id, session_id);
    let messages = mock.requests()[1].body["messages"]
        .as_array()
        .unwrap()
        .clone();
    let texts: Vec<_> = messages.iter().map(|m| m["content"].clone()).collect();
    assert_eq!(texts[1], "My name is Ada.");
    assert_eq!(texts[2], "Nice to meet you, Ada.");
    assert_eq!(texts[3], "What is my name?");
    assert_eq!(session(&app, &session_id).await.unwrap().turns, 2);

    app.agent()
        .delete_session(DeleteSessionRequest {
            session_id: session_id.clone(),
        })
        .await
        .unwrap();
    assert_eq!(
        session(&app, &session_id).await.unwrap_err().code(),
        Code::NotFound
    );
    let err = app
        .agent()
        .delete_session(DeleteSessionRequest { session_id })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
}

#[tokio::test]
async fn tool_calls_are_run_validated_and_fed_back() {
    let mock = mock_llm().await;
    mock.script([
        Reply::Completion(Completion::tool_calls([
            call("call_a", r#"{"timezone": "Asia/Tokyo"}"#),
            call("call_b", r#"{"timezone": 42}"#),
        ])),
        Reply::Completion(Completion::text(["It is late in Tokyo."])),
    ]);
    let app = spawn_agent(&mock, "").await;
    let (events, end) = run_chat(&app, chat("What time is it in Tokyo?")).await;
    end.unwrap();

    let calls: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            Event::ToolCall(c) => Some((c.call_id.as_str(), c.tool_name.as_str())),
            _ => None,
        })
        .collect();
    assert_eq!(
        calls,
        [("call_a", "current_time"), ("call_b", "current_time")]
    );
    let mut results: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            Event::ToolResult(r) => Some((r.call_id.clone(), r.outcome(), r.summary.clone())),
            _ => None,
        })
        .collect();
    results.sort();
    assert_eq!(results[0].1, ToolOutcome::Ok);
    assert!(results[0].2.contains("Asia/Tokyo"), "{:?}", results[0]);
    assert_eq!(results[1].1, ToolOutcome::InvalidArguments);
    assert!(results[1].2.contains("/timezone"), "{:?}", results[1]);
    assert_eq!(completed(&events).answer, "It is late in Tokyo.");

    // The second upstream call carries the assistant's calls and both results.
    let messages = mock.requests()[1].body["messages"]
        .as_array()
        .unwrap()
        .clone();
    let assistant = &messages[2];
    assert_eq!(assistant["tool_calls"][0]["id"], "call_a");
    assert_eq!(
        assistant["tool_calls"][1]["function"]["arguments"],
        r#"{"timezone": 42}"#
    );
    assert_eq!(messages[3]["role"], "tool");
    assert_eq!(messages[3]["tool_call_id"], "call_a");
    assert_eq!(messages[4]["tool_call_id"], "call_b");
    assert!(
        messages[4]["content"]
            .as_str()
            .unwrap()
            .contains("invalid arguments"),
        "{}",
        messages[4]
    );

    let stored = session(&app, &completed(&events).session_id).await.unwrap();
    let roles: Vec<_> = stored.messages.iter().map(|m| m.role()).collect();
    assert_eq!(
        roles,
        [
            MessageRole::User,
            MessageRole::Assistant,
            MessageRole::Tool,
            MessageRole::Tool,
            MessageRole::Assistant
        ]
    );
    assert_eq!(stored.messages[1].tool_calls.len(), 2);
}

#[tokio::test]
async fn hitting_max_steps_ends_with_its_own_finish_reason() {
    let mock = mock_llm().await;
    mock.script([
        Reply::Completion(Completion::tool_calls([call("call_1", "{}")])),
        Reply::Completion(Completion::tool_calls([call("call_2", "{}")])),
        Reply::Completion(Completion::text(["never sent"])),
    ]);
    let app = spawn_agent(&mock, "[agent]\nmax_steps = 2\n").await;
    let (events, end) = run_chat(&app, chat("Loop forever")).await;
    end.unwrap();
    assert_eq!(completed(&events).finish_reason(), FinishReason::MaxSteps);
    assert_eq!(mock.requests().len(), 2);
    let outcomes: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            Event::ToolResult(r) => Some(r.outcome()),
            _ => None,
        })
        .collect();
    // The first call ran; the second was not run, as the turn had no step left.
    assert_eq!(outcomes, [ToolOutcome::Ok, ToolOutcome::Refused]);
    // The stored history stays well formed: every call has its result.
    let stored = session(&app, &completed(&events).session_id).await.unwrap();
    assert_eq!(stored.messages.last().unwrap().role(), MessageRole::Tool);
}

#[tokio::test]
async fn a_tool_not_offered_is_refused_and_reported_to_the_model() {
    let mock = mock_llm().await;
    mock.script([
        Reply::Completion(Completion::tool_calls([call("call_1", "{}")])),
        Reply::Completion(Completion::text(["I cannot tell the time."])),
    ]);
    // No tool is offered by default.
    let app = spawn_agent(&mock, "[tools]\ndefault = []\n").await;
    let (events, end) = run_chat(&app, chat("What time is it?")).await;
    end.unwrap();
    assert!(mock.requests()[0].body.get("tools").is_none());
    let refused = events.iter().any(|e| {
        matches!(e, Event::ToolResult(r) if r.outcome() == ToolOutcome::Refused
            && r.summary.contains("not available"))
    });
    assert!(refused, "{events:?}");
    let fed_back = &mock.requests()[1].body["messages"][3];
    assert_eq!(fed_back["role"], "tool");
    assert!(
        fed_back["content"]
            .as_str()
            .unwrap()
            .contains("not available")
    );
}

#[tokio::test]
async fn ask_returns_the_outcome_and_usage() {
    let mock = mock_llm().await;
    mock.script([
        Reply::Completion(Completion::tool_calls([call("call_1", "{}")])),
        Reply::Completion(Completion {
            usage: Some((40, 5)),
            ..Completion::text(["It is ", "noon."])
        }),
    ]);
    let app = spawn_agent(&mock, "").await;
    let reply = app
        .agent()
        .ask(AskRequest {
            message: "What time is it?".into(),
            session_id: String::new(),
            options: Some(TurnOptions {
                max_output_tokens: Some(200),
                temperature: Some(0.3),
                tools: vec!["current_time".into()],
                ..TurnOptions::default()
            }),
        })
        .await
        .unwrap()
        .into_inner();
    let outcome = reply.outcome.unwrap();
    assert_eq!(outcome.answer, "It is noon.");
    assert_eq!(outcome.model, "mock-model");
    let usage = reply.usage.unwrap();
    // Both model calls' usage, summed: the first one's usage is the mock's estimate.
    assert!(usage.input_tokens > 40, "{usage:?}");
    assert!(usage.output_tokens >= 5, "{usage:?}");
    let sent = &mock.requests()[0].body;
    assert_eq!(sent["max_completion_tokens"], 200);
    assert!((sent["temperature"].as_f64().unwrap() - 0.3).abs() < 1e-6);
}

#[tokio::test]
async fn without_an_llm_the_agent_answers_from_the_knowledge_base() {
    // No [llm] config and no OPENAI_* variables: the extractive provider answers,
    // searching the (still empty) knowledge base first.
    let app = crate::helpers::spawn_app().await;
    let (events, end) = run_chat(&app, chat("How many vacation days do we get?")).await;
    end.unwrap();
    let Some(Event::Started(started)) = events.first() else {
        panic!("{events:?}")
    };
    assert_eq!(started.model, "extractive");
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Event::ToolCall(c) if c.tool_name == "search_knowledge"))
    );
    let outcome = completed(&events);
    assert!(
        outcome.answer.contains("found nothing"),
        "{}",
        outcome.answer
    );
}

/// A mock is unused by a test that fails before reaching the upstream.
pub fn untouched(mock: &MockLlm) {
    assert!(mock.requests().is_empty(), "the upstream was called");
}
