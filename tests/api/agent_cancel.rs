//! Cancellation and bounds: a client's cancel or a passing deadline aborts the
//! upstream request; tool calls run concurrently, each under its own timeout,
//! and none outlives its turn. Every test waits on events (the mock's gates and
//! stream ends, the probe tool's reports) and moves time by hand on a manual
//! clock; none sleeps or measures a delay (the cancellation latency is a
//! figure in BENCHMARKS.md).

use std::sync::Arc;
use std::time::Duration;

use agentd::agent::tools::{Tool, ToolContext, ToolError, ToolOutput};
use agentd::pb::chat_response::Event;
use agentd::pb::{ChatRequest, ToolOutcome, TurnOptions};
use agentd_mock_llm::{Completion, Gate, Hold, MockToolCall, Reply, StreamEnd};
use tokio::sync::mpsc;
use tonic::Code;

use crate::agent::{chat, run_chat, session};
use crate::helpers::{
    llm_config, manual_clock, mock_llm, spawn_agent, spawn_agent_built, spawn_app_built,
};

/// A reply that sends its first text piece, then waits at `gate`.
fn held_reply(gate: &Gate) -> Reply {
    Reply::Completion(Completion::text(["one ", "two ", "three"]).held(Hold::after_events(2, gate)))
}

#[tokio::test]
async fn a_client_cancel_closes_the_upstream_request() {
    let mock = mock_llm().await;
    let gate = Gate::new();
    mock.script([held_reply(&gate)]);
    let app = spawn_agent(&mock, "").await;
    let mut stream = app.agent().chat(chat("count")).await.unwrap().into_inner();
    let Some(Event::Started(started)) = stream.message().await.unwrap().unwrap().event else {
        panic!("no started event")
    };
    let Some(Event::Delta(_)) = stream.message().await.unwrap().unwrap().event else {
        panic!("no first delta")
    };
    drop(stream);
    // The gate is never opened: only a closed connection can end the stream.
    let end = mock.wait_for_stream_end(1).await;
    assert!(matches!(end, StreamEnd::Dropped(_)), "{end:?}");
    app.wait_for_in_flight_of("agentd.v1.AgentService", "Chat", 0.0)
        .await;
    // The cancelled turn stored nothing: its new session does not exist.
    let status = session(&app, &started.session_id).await.unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
}

#[tokio::test]
async fn a_passing_deadline_fails_the_call_and_closes_the_upstream_request() {
    let mock = mock_llm().await;
    let gate = Gate::new();
    mock.script([held_reply(&gate)]);
    let clock = manual_clock();
    // The upstream's idle timeout is longer than the deadline, so only the
    // deadline can end the call.
    let config = llm_config(&mock).replace("idle_timeout = \"1s\"", "idle_timeout = \"120s\"");
    let app = spawn_app_built(&config, |app| app.clock(clock.clone())).await;
    let mut request = tonic::Request::new(chat("count"));
    // The client's own timer never fires: the server's clock is advanced past
    // the deadline long before a minute of real time.
    request.set_timeout(Duration::from_secs(60));
    let mut stream = app.agent().chat(request).await.unwrap().into_inner();
    let Some(Event::Started(started)) = stream.message().await.unwrap().unwrap().event else {
        panic!("no started event")
    };
    let Some(Event::Delta(_)) = stream.message().await.unwrap().unwrap().event else {
        panic!("no first delta")
    };
    clock.advance(Duration::from_secs(60));
    let status = loop {
        match stream.message().await {
            Ok(Some(_)) => continue,
            Ok(None) => panic!("the stream ended without a status"),
            Err(status) => break status,
        }
    };
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
    let end = mock.wait_for_stream_end(1).await;
    assert!(matches!(end, StreamEnd::Dropped(_)), "{end:?}");
    let status = session(&app, &started.session_id).await.unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
}

/// What the probe tool reports to its test.
#[derive(Debug, PartialEq, Eq)]
enum Report {
    Started,
    Finished,
    Abandoned,
}

/// A tool that reports when it starts and when its work ends or is dropped
/// unfinished; it waits on a shared barrier (so calls finish only when run
/// concurrently) or forever.
#[derive(Debug)]
struct Probe {
    barrier: Option<Arc<tokio::sync::Barrier>>,
    reports: mpsc::UnboundedSender<Report>,
}

struct Reporter(mpsc::UnboundedSender<Report>, bool);

impl Drop for Reporter {
    fn drop(&mut self) {
        let report = if self.1 {
            Report::Finished
        } else {
            Report::Abandoned
        };
        let _ = self.0.send(report);
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
        let mut reporter = Reporter(self.reports.clone(), false);
        let _ = self.reports.send(Report::Started);
        match &self.barrier {
            Some(barrier) => {
                barrier.wait().await;
            }
            None => std::future::pending::<()>().await,
        }
        reporter.1 = true;
        Ok(ToolOutput::from("done".to_owned()))
    }
}

fn probe(barrier: Option<usize>) -> (Arc<Probe>, mpsc::UnboundedReceiver<Report>) {
    let (reports, received) = mpsc::unbounded_channel();
    let probe = Probe {
        barrier: barrier.map(|n| Arc::new(tokio::sync::Barrier::new(n))),
        reports,
    };
    (Arc::new(probe), received)
}

fn probe_calls(n: usize) -> Reply {
    Reply::Completion(Completion::tool_calls((0..n).map(|i| MockToolCall {
        id: format!("call_{i}"),
        name: "probe".into(),
        arguments: "{}".into(),
        fragments: 2,
    })))
}

fn probe_chat() -> ChatRequest {
    ChatRequest {
        options: Some(TurnOptions {
            tools: vec!["probe".into()],
            ..TurnOptions::default()
        }),
        ..chat("go")
    }
}

fn outcomes(events: &[Event]) -> Vec<ToolOutcome> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::ToolResult(result) => Some(result.outcome()),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn parallel_tool_calls_run_concurrently() {
    let mock = mock_llm().await;
    mock.script([probe_calls(3), Reply::Completion(Completion::text(["ok"]))]);
    // Each call waits until all three have started: run one after another, the
    // first would wait forever and time out (tools.timeout, a safety net only).
    let (probe, mut reports) = probe(Some(3));
    let app = spawn_agent_built(&mock, "[tools]\ntimeout = \"30s\"", |app| app.tool(probe)).await;
    let (events, end) = run_chat(&app, probe_chat()).await;
    end.unwrap();
    assert_eq!(outcomes(&events), [ToolOutcome::Ok; 3]);
    // Each call's work ended before its result was sent.
    let mut received = Vec::new();
    while let Ok(report) = reports.try_recv() {
        received.push(report);
    }
    let finished = received.iter().filter(|r| **r == Report::Finished).count();
    assert_eq!((received.len(), finished), (6, 3), "{received:?}");
}

#[tokio::test]
async fn a_slow_tool_times_out_into_a_tool_result_and_is_stopped() {
    let mock = mock_llm().await;
    mock.script([
        probe_calls(1),
        Reply::Completion(Completion::text(["sorry"])),
    ]);
    let (probe, mut reports) = probe(None);
    let clock = manual_clock();
    let app = spawn_agent_built(&mock, "[tools]\ntimeout = \"500ms\"", |app| {
        app.tool(probe).clock(clock.clone())
    })
    .await;
    let running = tokio::spawn({
        let app_channel = app.channel.clone();
        async move {
            let mut client = agentd::pb::agent_service_client::AgentServiceClient::new(app_channel);
            let mut stream = client.chat(probe_chat()).await.unwrap().into_inner();
            let mut events = Vec::new();
            while let Some(response) = stream.message().await.unwrap() {
                events.push(response.event.unwrap());
            }
            events
        }
    });
    assert_eq!(reports.recv().await, Some(Report::Started));
    clock.advance(Duration::from_millis(500));
    assert_eq!(reports.recv().await, Some(Report::Abandoned));
    let events = running.await.unwrap();
    assert_eq!(outcomes(&events), [ToolOutcome::Timeout]);
    let fed_back = &mock.requests()[1].body["messages"][3]["content"];
    assert!(
        fed_back.as_str().unwrap().contains("tools.timeout"),
        "{fed_back}"
    );
    assert!(matches!(events.last(), Some(Event::Completed(_))));
}

#[tokio::test]
async fn cancelling_a_turn_stops_its_running_tools() {
    let mock = mock_llm().await;
    mock.script([probe_calls(2)]);
    let (probe, mut reports) = probe(None);
    let app = spawn_agent_built(&mock, "", |app| app.tool(probe)).await;
    let stream = app.agent().chat(probe_chat()).await.unwrap().into_inner();
    for _ in 0..2 {
        assert_eq!(reports.recv().await, Some(Report::Started));
    }
    drop(stream);
    for _ in 0..2 {
        assert_eq!(reports.recv().await, Some(Report::Abandoned));
    }
}
