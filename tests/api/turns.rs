//! What every turn shares through the real server: a server-generated turn id
//! (in `started`, `completed` and the stored messages), the per-call chain every
//! model call passes with its turn's context, and time read from the server's
//! clock.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use agentd::llm::chain::{CallChain, CallEnd, CallStage, Slot};
use agentd::llm::{CallContext, LlmError, LlmRequest, LlmStream};
use agentd::pb::ChatRequest;
use agentd::pb::chat_response::Event;
use agentd_mock_llm::{Completion, Reply};
use tonic::Code;
use tonic_types::StatusExt;

use crate::agent::{call, chat, completed, run_chat, session, untouched};
use crate::helpers::{manual_clock, mock_llm, spawn_agent_built};

fn started(events: &[Event]) -> &agentd::pb::Started {
    match events.first() {
        Some(Event::Started(started)) => started,
        other => panic!("no started event first: {other:?}"),
    }
}

#[tokio::test]
async fn every_turn_has_a_server_turn_id_in_its_events_and_its_stored_messages() {
    let mock = mock_llm().await;
    mock.script([
        Reply::Completion(Completion::text(["one"])),
        Reply::Completion(Completion::text(["two"])),
    ]);
    let app = spawn_agent_built(&mock, "", |app| app).await;
    let mut request = tonic::Request::new(chat("first"));
    request
        .metadata_mut()
        .insert("x-request-id", "caller-chosen-id".parse().unwrap());
    let mut stream = app.agent().chat(request).await.unwrap().into_inner();
    let mut first = Vec::new();
    while let Some(response) = stream.message().await.unwrap() {
        first.push(response.event.unwrap());
    }
    let turn_1 = started(&first).turn_id.clone();
    // The caller's request id is for correlation; the turn id is the server's.
    assert_eq!(started(&first).request_id, "caller-chosen-id");
    assert_eq!(completed(&first).turn_id, turn_1);
    let uuid = uuid::Uuid::parse_str(&turn_1).unwrap();
    assert_eq!(uuid.get_version_num(), 7);

    let (second, end) = run_chat(
        &app,
        ChatRequest {
            session_id: completed(&first).session_id.clone(),
            ..chat("second")
        },
    )
    .await;
    end.unwrap();
    let turn_2 = started(&second).turn_id.clone();
    assert_ne!(turn_2, turn_1);
    assert_eq!(completed(&second).turn_id, turn_2);

    let stored = session(&app, &completed(&second).session_id).await.unwrap();
    let turns: Vec<&str> = stored.messages.iter().map(|m| m.turn_id.as_str()).collect();
    assert_eq!(turns, [&turn_1, &turn_1, &turn_2, &turn_2]);
    // Neither answer drew on retrieved knowledge.
    let ungrounded = r#"agentd_answers_total{grounded="false",cited="false"}"#;
    assert_eq!(app.metric(ungrounded).await, Some(2.0));
}

/// A stage that records what it sees of each call, and may refuse every call.
#[derive(Debug)]
struct Recorder {
    name: &'static str,
    seen: Arc<Mutex<Vec<String>>>,
    refuse: bool,
}

#[async_trait::async_trait]
impl CallStage for Recorder {
    fn name(&self) -> &str {
        self.name
    }

    async fn before(
        &self,
        call: &CallContext,
        request: LlmRequest,
    ) -> Result<LlmRequest, LlmError> {
        let turn = &call.turn;
        self.seen.lock().unwrap().push(format!(
            "{} before: tenant {} session {} turn {} attempt {} deadline {}",
            self.name,
            turn.tenant,
            turn.session,
            turn.turn,
            call.attempt,
            turn.deadline.is_some()
        ));
        if self.refuse {
            return Err(LlmError::Refused {
                stage: self.name.to_owned(),
                reason: "refused by a stage".into(),
            });
        }
        Ok(request)
    }

    fn after(&self, _: &CallContext, stream: LlmStream) -> LlmStream {
        stream
    }

    fn settle(&self, call: &CallContext, end: &CallEnd) {
        let end = match end {
            CallEnd::Completed { usage } => format!("completed, usage {}", usage.is_some()),
            CallEnd::Failed(err) => format!("failed: {err}"),
            CallEnd::Cancelled => "cancelled".to_owned(),
        };
        self.seen.lock().unwrap().push(format!(
            "{} settle: turn {} {end}",
            self.name, call.turn.turn
        ));
    }
}

fn recording_chain(seen: &Arc<Mutex<Vec<String>>>, refuse: bool) -> CallChain {
    let stage = |name, refuse| {
        Arc::new(Recorder {
            name,
            seen: seen.clone(),
            refuse,
        })
    };
    CallChain::pass_through()
        .with(Slot::Admission, stage("admission", false))
        .with(Slot::Guard, stage("guard", refuse))
}

#[tokio::test]
async fn every_model_call_passes_the_call_chain_with_its_turns_context() {
    let mock = mock_llm().await;
    mock.script([
        Reply::Completion(Completion::tool_calls([call("call_1", "{}")])),
        Reply::Completion(Completion::text(["done"])),
    ]);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let chain = recording_chain(&seen, false);
    let app = spawn_agent_built(&mock, "", |app| app.call_chain(chain)).await;
    let (events, end) = run_chat(&app, chat("what time is it?")).await;
    end.unwrap();
    let started = started(&events);
    let before = |stage: &str| {
        format!(
            "{stage} before: tenant default session {} turn {} attempt 1 deadline true",
            started.session_id, started.turn_id
        )
    };
    let settle = |stage: &str| {
        format!(
            "{stage} settle: turn {} completed, usage true",
            started.turn_id
        )
    };
    let one_call = [
        before("admission"),
        before("guard"),
        settle("guard"),
        settle("admission"),
    ];
    // Two model calls (the tool call, then the answer), each through the chain.
    let expected: Vec<String> = one_call.iter().chain(&one_call).cloned().collect();
    assert_eq!(*seen.lock().unwrap(), expected);
}

#[tokio::test]
async fn a_stage_can_refuse_a_call_before_it_reaches_the_upstream() {
    let mock = mock_llm().await;
    let seen = Arc::new(Mutex::new(Vec::new()));
    let chain = recording_chain(&seen, true);
    let app = spawn_agent_built(&mock, "", |app| app.call_chain(chain)).await;
    let (_, end) = run_chat(&app, chat("hello")).await;
    let status = end.unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    let info = status.get_details_error_info().unwrap();
    assert_eq!(info.reason, "CALL_REFUSED");
    assert_eq!(info.metadata["stage"], "guard");
    assert!(
        status.message().contains("refused by a stage"),
        "{status:?}"
    );
    untouched(&mock);
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 3, "{seen:?}");
    assert!(seen[2].starts_with("admission settle"), "{seen:?}");
    assert!(seen[2].ends_with("refused by a stage"), "{seen:?}");
}

#[tokio::test]
async fn sessions_expire_on_the_servers_clock() {
    let mock = mock_llm().await;
    mock.script([Reply::Completion(Completion::text(["hi"]))]);
    let clock = manual_clock();
    let config = "[sessions]\nmax_age = \"1h\"\nsweep_interval = \"2h\"";
    let app = spawn_agent_built(&mock, config, |app| app.clock(clock.clone())).await;
    let (events, end) = run_chat(&app, chat("hello")).await;
    end.unwrap();
    let id = completed(&events).session_id.clone();
    clock.advance(Duration::from_secs(3600));
    assert_eq!(session(&app, &id).await.unwrap().turns, 1);
    clock.advance(Duration::from_millis(1));
    assert_eq!(session(&app, &id).await.unwrap_err().code(), Code::NotFound);
    // Invisible at once; deleted from the store by the next sweep.
    clock.advance(Duration::from_secs(3600));
    crate::helpers::eventually(|| async {
        app.metric("agentd_sessions_expired_total").await == Some(1.0)
    })
    .await;
}
