//! Cancellation and bounds: a client's cancel or deadline aborts the upstream
//! request at once; tool calls run concurrently, each under its own timeout, and
//! none outlives its turn.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use agentd::agent::context::Encoding;
use agentd::agent::models::{Model, ModelCatalog, ModelChoice};
use agentd::agent::orchestrator::Orchestrator;
use agentd::agent::sessions::{RedbSessionStore, SessionLimits};
use agentd::agent::tools::{Tool, ToolContext, ToolError, ToolOutput, ToolRegistry};
use agentd::agent::turn::{AgentEvent, ToolOutcome, TurnRequest};
use agentd::config::{Config, HttpVersion, SecretSource};
use agentd::identity::TenantId;
use agentd::llm::LlmProvider;
use agentd::llm::openai::{OpenAiProvider, OpenAiSettings};
use agentd::mock_llm::{Completion, MockLlm, MockToolCall, Reply, StreamEnd};
use agentd::pb::chat_response::Event;
use agentd::telemetry::genai::GenAiMetrics;
use futures::StreamExt;
use tokio::time::Instant;
use tonic::Code;

use crate::agent::{chat, session};
use crate::helpers::{mock_llm, spawn_agent};

fn slow_reply() -> Reply {
    Reply::Completion(Completion {
        token_delay: Duration::from_millis(500),
        ..Completion::text(["one ", "two ", "three ", "four ", "five"])
    })
}

#[tokio::test]
async fn a_client_cancel_closes_the_upstream_request_within_100ms() {
    let mock = mock_llm().await;
    mock.script([slow_reply()]);
    let app = spawn_agent(&mock, "").await;
    let mut stream = app.agent().chat(chat("count")).await.unwrap().into_inner();
    let Some(Event::Started(started)) = stream.message().await.unwrap().unwrap().event else {
        panic!("no started event")
    };
    let Some(Event::Delta(_)) = stream.message().await.unwrap().unwrap().event else {
        panic!("no first delta")
    };
    let cancelled_at = Instant::now();
    drop(stream);
    let StreamEnd::Dropped(seen_at) = mock.wait_for_stream_end(1).await else {
        panic!("the upstream stream completed instead of being cut")
    };
    let delay = seen_at.saturating_duration_since(cancelled_at);
    eprintln!("the upstream saw the connection close {delay:?} after the client's cancel");
    assert!(
        delay < Duration::from_millis(100),
        "upstream closed {delay:?} after the cancel"
    );
    app.wait_for_in_flight_of("agentd.v1.AgentService", "Chat", 0.0)
        .await;
    // The cancelled turn stored nothing: its new session does not exist.
    let status = session(&app, &started.session_id).await.unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
}

#[tokio::test]
async fn a_passing_deadline_fails_the_call_and_closes_the_upstream_request() {
    let mock = mock_llm().await;
    mock.script([slow_reply()]);
    let app = spawn_agent(&mock, "").await;
    let mut request = tonic::Request::new(chat("count"));
    request.set_timeout(Duration::from_millis(1200));
    let mut stream = app.agent().chat(request).await.unwrap().into_inner();
    let status = loop {
        match stream.message().await {
            Ok(Some(_)) => continue,
            Ok(None) => panic!("the stream ended without a status"),
            Err(status) => break status,
        }
    };
    let failed_at = Instant::now();
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
    let StreamEnd::Dropped(seen_at) = mock.wait_for_stream_end(1).await else {
        panic!("the upstream stream completed instead of being cut")
    };
    let gap = if seen_at > failed_at {
        seen_at - failed_at
    } else {
        failed_at - seen_at
    };
    eprintln!("the upstream saw the connection close {gap:?} from the deadline's status");
    assert!(
        gap < Duration::from_millis(100),
        "upstream closed {gap:?} from the deadline"
    );
}

/// A tool that waits on a shared barrier (so calls finish only when run
/// concurrently) or sleeps, and records whether its work was dropped unfinished.
#[derive(Debug)]
struct Probe {
    barrier: Option<Arc<tokio::sync::Barrier>>,
    sleep: Duration,
    abandoned: Arc<AtomicBool>,
}

struct DropFlag(Arc<AtomicBool>, bool);

impl Drop for DropFlag {
    fn drop(&mut self) {
        if !self.1 {
            self.0.store(true, Ordering::SeqCst);
        }
    }
}

#[async_trait::async_trait]
impl Tool for Probe {
    fn name(&self) -> &str {
        "probe"
    }
    fn description(&self) -> &str {
        "Waits, then answers."
    }
    fn parameters(&self) -> serde_json::Value {
        serde_json::json!({"type": "object", "properties": {}})
    }
    async fn execute(
        &self,
        _: &ToolContext,
        _: serde_json::Value,
    ) -> Result<ToolOutput, ToolError> {
        let mut flag = DropFlag(self.abandoned.clone(), false);
        if let Some(barrier) = &self.barrier {
            barrier.wait().await;
        }
        tokio::time::sleep(self.sleep).await;
        flag.1 = true;
        Ok(ToolOutput::from("done".to_owned()))
    }
}

/// An orchestrator over `mock` with the probe tool and a 500 ms tool timeout.
fn orchestrator(mock: &MockLlm, probe: Probe) -> (tempfile::TempDir, Arc<Orchestrator>) {
    let provider = OpenAiProvider::new(OpenAiSettings {
        name: "mock".into(),
        base_url: mock.base_url(),
        api_key: Some(SecretSource::Inline("sk".into()).resolve().unwrap()),
        connect_timeout: Duration::from_secs(2),
        idle_timeout: Duration::from_secs(5),
        pool_max_idle_per_host: 2,
        pool_idle_timeout: Duration::from_secs(30),
        http_version: HttpVersion::Auto,
    })
    .unwrap();
    orchestrator_with(Arc::new(provider), Arc::new(probe))
}

/// An orchestrator whose one model (`m`, upstream gpt-4o-mini) is served by
/// `provider`, with `tool` beside the built-ins and a 500 ms tool timeout.
pub fn orchestrator_with(
    provider: Arc<dyn LlmProvider>,
    tool: Arc<dyn Tool>,
) -> (tempfile::TempDir, Arc<Orchestrator>) {
    let catalog = ModelCatalog::of(vec![Model {
        name: "m".into(),
        upstream_id: "gpt-4o-mini".into(),
        provider,
        context_window: 16_000,
        max_output_tokens: 1_000,
        encoding: Encoding::O200k,
    }]);
    let mut tools = ToolRegistry::with_builtins().unwrap();
    tools.register(tool).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let sessions = RedbSessionStore::open(
        &dir.path().join("s.redb"),
        SessionLimits {
            max_age: Duration::from_secs(60),
            max_messages: 100,
        },
    )
    .unwrap();
    let config = Config::from_toml("[tools]\ntimeout = \"500ms\"").unwrap();
    let mut registry = prometheus_client::registry::Registry::default();
    let orchestrator = Orchestrator::new(
        catalog,
        tools,
        Arc::new(sessions),
        config.agent,
        config.tools,
        Arc::new(GenAiMetrics::register(&mut registry)),
    );
    (dir, Arc::new(orchestrator))
}

fn probe_calls(n: usize) -> Reply {
    Reply::Completion(Completion::tool_calls((0..n).map(|i| MockToolCall {
        id: format!("call_{i}"),
        name: "probe".into(),
        arguments: "{}".into(),
        fragments: 2,
    })))
}

async fn start(
    orchestrator: &Arc<Orchestrator>,
) -> futures::stream::BoxStream<'static, Result<AgentEvent, agentd::error::AppError>> {
    start_turn(orchestrator, "go", "probe").await
}

/// Prepares and runs a turn of `message` offering `tool`.
pub async fn start_turn(
    orchestrator: &Arc<Orchestrator>,
    message: &str,
    tool: &str,
) -> futures::stream::BoxStream<'static, Result<AgentEvent, agentd::error::AppError>> {
    let turn = orchestrator
        .prepare(
            &TenantId::default_tenant(),
            "req".into(),
            TurnRequest {
                message: message.into(),
                session_id: String::new(),
                model: ModelChoice::Default,
                max_output_tokens: None,
                temperature: None,
                tools: vec![tool.into()],
                collections: Vec::new(),
            },
        )
        .await
        .unwrap();
    orchestrator.clone().run(turn)
}

fn outcomes(events: &[AgentEvent]) -> Vec<ToolOutcome> {
    events
        .iter()
        .filter_map(|e| match e {
            AgentEvent::ToolResult { outcome, .. } => Some(*outcome),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn parallel_tool_calls_run_concurrently() {
    let mock = mock_llm().await;
    mock.script([probe_calls(3), Reply::Completion(Completion::text(["ok"]))]);
    let abandoned = Arc::new(AtomicBool::new(false));
    // Each call waits until all three have started: run one after another, the
    // first would time out.
    let (_dir, orchestrator) = orchestrator(
        &mock,
        Probe {
            barrier: Some(Arc::new(tokio::sync::Barrier::new(3))),
            sleep: Duration::ZERO,
            abandoned: abandoned.clone(),
        },
    );
    let events: Vec<_> = start(&orchestrator)
        .await
        .map(Result::unwrap)
        .collect()
        .await;
    assert_eq!(outcomes(&events), [ToolOutcome::Ok; 3]);
    assert!(!abandoned.load(Ordering::SeqCst));
}

#[tokio::test]
async fn a_slow_tool_times_out_into_a_tool_result_and_is_stopped() {
    let mock = mock_llm().await;
    mock.script([
        probe_calls(1),
        Reply::Completion(Completion::text(["sorry"])),
    ]);
    let abandoned = Arc::new(AtomicBool::new(false));
    let (_dir, orchestrator) = orchestrator(
        &mock,
        Probe {
            barrier: None,
            sleep: Duration::from_secs(30),
            abandoned: abandoned.clone(),
        },
    );
    let events: Vec<_> = start(&orchestrator)
        .await
        .map(Result::unwrap)
        .collect()
        .await;
    assert_eq!(outcomes(&events), [ToolOutcome::Timeout]);
    assert!(
        abandoned.load(Ordering::SeqCst),
        "the timed-out tool kept running"
    );
    let fed_back = &mock.requests()[1].body["messages"][3]["content"];
    assert!(
        fed_back.as_str().unwrap().contains("tools.timeout"),
        "{fed_back}"
    );
    assert!(matches!(events.last(), Some(AgentEvent::Completed(_))));
}

#[tokio::test]
async fn cancelling_a_turn_stops_its_running_tools() {
    let mock = mock_llm().await;
    mock.script([probe_calls(2)]);
    let abandoned = Arc::new(AtomicBool::new(false));
    let (_dir, orchestrator) = orchestrator(
        &mock,
        Probe {
            barrier: None,
            sleep: Duration::from_secs(30),
            abandoned: abandoned.clone(),
        },
    );
    let mut events = start(&orchestrator).await;
    let mut calls = 0;
    while let Some(event) = events.next().await {
        if matches!(event.unwrap(), AgentEvent::ToolCall(_)) {
            calls += 1;
            if calls == 2 {
                break;
            }
        }
    }
    // Poll once more so the tool calls start, then cancel.
    let _ = tokio::time::timeout(Duration::from_millis(50), events.next()).await;
    drop(events);
    assert!(
        abandoned.load(Ordering::SeqCst),
        "a tool kept running after the cancel"
    );
}
