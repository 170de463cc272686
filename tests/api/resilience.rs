//! The router against every upstream fault the mock can script: what is
//! retried, what fails over, what ends in a degraded answer and what in a
//! clear status; which attempts were made, what the client saw, and that the
//! session holds exactly the one turn that completed, or none. Time moves only
//! through the manual clock: backoffs are passed as they start, timeouts when
//! the test has seen the stall.

use std::time::Duration;

use agentd::pb::chat_response::Event;
use agentd::pb::retrieval_service_client::RetrievalServiceClient;
use agentd::pb::{
    AskRequest, ChatRequest, DegradationReason, Document, IngestDocumentsRequest, TurnOptions,
    TurnOutcome, turn_options::ModelChoice,
};
use agentd_mock_llm::{Completion, Fault, Gate, Hold, MockLlm, Reply, ScriptedError};
use tonic::Code;
use tonic_types::StatusExt;

use crate::agent::session;
use crate::helpers::{TestApp, manual_clock, mock_llm, spawn_agent_with_llm};

/// The provider's idle timeout (helpers::llm_config).
pub const IDLE: Duration = Duration::from_secs(1);
/// Longer than any backoff the tests' retry config draws (base_delay, one
/// retry), shorter than every timeout: what the clock driver passes alone.
pub const BACKOFF_LIMIT: Duration = Duration::from_millis(100);

/// `[llm]` keys of the tests: a route over a target that is down and the
/// mock, ending in the extractive answerer.
pub const LLM_KEYS: &str = r#"routes = { "with-fallback" = { targets = ["down-model", "mock-model"] }, "keyed" = { targets = ["mock-model", "backup"] } }"#;

/// The rest of the tests' config: two attempts per target, a short backoff, a
/// budget and breakers that never interfere (their own tests set them).
pub fn extra(down: &MockLlm) -> String {
    format!(
        r#"
[llm.retry]
max_attempts = 2
base_delay = "100ms"
max_delay = "5s"
budget_min_per_second = 1000
[llm.breaker]
min_calls = 1000
[llm.providers.down]
base_url = "{}"
api_key = "sk-test"
idle_timeout = "1s"
[llm.models.down-model]
provider = "down"
context_window = 16000
max_output_tokens = 1000
[llm.models.backup]
provider = "mock"
upstream_model = "gpt-4o"
context_window = 16000
max_output_tokens = 1000
"#,
        down.base_url()
    )
}

/// A server on `mock` (model `mock-model`) and `down` (model `down-model`),
/// on a manual clock, with a handbook page to quote.
pub async fn resilient_app(
    mock: &MockLlm,
    down: &MockLlm,
    llm_keys: &str,
    clock: &agentd::clock::Clock,
) -> TestApp {
    let clock = clock.clone();
    let app = spawn_agent_with_llm(mock, llm_keys, &extra(down), |app| app.clock(clock)).await;
    ingest_handbook(&app).await;
    app
}

/// Ingests the handbook page the extractive answerer quotes.
pub async fn ingest_handbook(app: &TestApp) {
    RetrievalServiceClient::new(app.channel.clone())
        .ingest_documents(IngestDocumentsRequest {
            collection: String::new(),
            documents: vec![Document {
                doc_id: "eng/release.md".into(),
                text: "Releases ship on Tuesdays. The freeze window starts 48 hours before \
                       each release."
                    .into(),
                metadata: Default::default(),
                source_uri: String::new(),
            }],
        })
        .await
        .unwrap();
}

/// Passes every short timer (a backoff) as soon as it starts, forever.
pub async fn pass_backoffs(clock: &agentd::clock::Clock) {
    loop {
        let ahead = clock.next_timer_within(BACKOFF_LIMIT).await;
        clock.advance(ahead);
    }
}

/// When the test passes the idle timeout.
#[derive(Clone)]
enum Stall {
    /// Never.
    None,
    /// Once the mock holds a request at this gate.
    Held(Gate),
    /// Once the client has the first delta.
    AfterFirstDelta,
}

/// Every event of a Chat call and how it ended, the clock driven as `stall`
/// says and every backoff passed.
async fn drive_chat(
    app: &TestApp,
    clock: &agentd::clock::Clock,
    request: ChatRequest,
    stall: Stall,
) -> (Vec<Event>, Result<(), tonic::Status>) {
    let pass_idle = || async {
        clock.wait_for_timer(IDLE).await;
        clock.advance(IDLE);
    };
    let chat = async {
        let mut stream = match app.agent().chat(request).await {
            Ok(response) => response.into_inner(),
            Err(status) => return (Vec::new(), Err(status)),
        };
        let mut events = Vec::new();
        let mut stall_pending = matches!(stall, Stall::AfterFirstDelta);
        loop {
            match stream.message().await {
                Ok(Some(response)) => {
                    let event = response.event.unwrap();
                    if stall_pending && matches!(event, Event::Delta(_)) {
                        stall_pending = false;
                        pass_idle().await;
                    }
                    events.push(event);
                }
                Ok(None) => return (events, Ok(())),
                Err(status) => return (events, Err(status)),
            }
        }
    };
    let held = async {
        if let Stall::Held(gate) = &stall {
            gate.reached(1).await;
            pass_idle().await;
        }
        std::future::pending::<()>().await;
    };
    tokio::select! {
        ended = chat => ended,
        () = held => unreachable!(),
        () = pass_backoffs(clock) => unreachable!(),
    }
}

pub fn attempts(outcome: &TurnOutcome) -> Vec<String> {
    outcome
        .attempts
        .iter()
        .map(|a| format!("{}:{}", a.model, a.outcome))
        .collect()
}

/// Turn options naming `model` (a model or route).
pub fn model_options(model: &str) -> Option<TurnOptions> {
    Some(TurnOptions {
        model_choice: Some(ModelChoice::Model(model.into())),
        ..TurnOptions::default()
    })
}

/// An Ask of `message` on `model`, starting a session.
pub fn ask(message: &str, model: &str) -> AskRequest {
    AskRequest {
        message: message.into(),
        session_id: String::new(),
        options: model_options(model),
    }
}

enum End {
    /// Answered by this model: the deltas the client saw make this text.
    Answer {
        model: &'static str,
        text: &'static str,
    },
    /// Answered degraded by the extractive answerer.
    Degraded(DegradationReason),
    /// A status with this ErrorInfo reason.
    Status(Code, &'static str),
}

struct Case {
    name: &'static str,
    route: &'static str,
    replies: Vec<Reply>,
    stall: Stall,
    /// The upstream requests the call makes.
    requests: usize,
    attempts: &'static [&'static str],
    end: End,
}

fn error(status: u16) -> Reply {
    ScriptedError::new(status, "upstream says no").into()
}

fn ok(text: &'static str) -> Reply {
    Reply::Completion(Completion::text([text]))
}

fn broken(fault: Fault) -> Reply {
    Reply::Completion(Completion {
        fault: Some(fault),
        ..Completion::text(["partial ", "answer ", "that ", "never ", "ends"])
    })
}

fn cases() -> Vec<Case> {
    let retried = |name, first: Reply, outcome| Case {
        name,
        route: "mock-model",
        replies: vec![first, ok("second try")],
        stall: Stall::None,
        requests: 2,
        attempts: outcome,
        end: End::Answer {
            model: "mock-model",
            text: "second try",
        },
    };
    let gate = Gate::new();
    vec![
        retried(
            "HTTP 500",
            error(500),
            &["mock-model:unavailable", "mock-model:ok"],
        ),
        retried(
            "HTTP 502",
            error(502),
            &["mock-model:unavailable", "mock-model:ok"],
        ),
        retried(
            "HTTP 503",
            error(503),
            &["mock-model:unavailable", "mock-model:ok"],
        ),
        retried(
            "HTTP 429 without retry-after",
            error(429),
            &["mock-model:rate_limited", "mock-model:ok"],
        ),
        retried(
            "a reset before the first chunk",
            broken(Fault::ResetAfter(0)),
            &["mock-model:connection", "mock-model:ok"],
        ),
        retried(
            "a dropped connection before the status line",
            Reply::Drop,
            &["mock-model:connection", "mock-model:ok"],
        ),
        Case {
            stall: Stall::Held(gate.clone()),
            ..retried(
                "a stall before the first token",
                Reply::Completion(Completion::text(["late"]).held(Hold::before_headers(&gate))),
                &["mock-model:timeout", "mock-model:ok"],
            )
        },
        Case {
            name: "a reset after a streamed delta",
            route: "mock-model",
            replies: vec![broken(Fault::ResetAfter(2))],
            stall: Stall::None,
            requests: 1,
            attempts: &["mock-model:connection"],
            end: End::Status(Code::Unavailable, "UPSTREAM_CONNECTION"),
        },
        Case {
            name: "a stall mid-stream",
            route: "mock-model",
            replies: vec![broken(Fault::StallAfter(2))],
            stall: Stall::AfterFirstDelta,
            requests: 1,
            attempts: &["mock-model:timeout"],
            end: End::Status(Code::Unavailable, "UPSTREAM_TIMEOUT"),
        },
        Case {
            name: "a malformed chunk after a delta",
            route: "mock-model",
            replies: vec![broken(Fault::MalformedAfter(2))],
            stall: Stall::None,
            requests: 1,
            attempts: &["mock-model:protocol"],
            end: End::Status(Code::Unavailable, "UPSTREAM_PROTOCOL"),
        },
        Case {
            name: "a missing [DONE]",
            route: "mock-model",
            replies: vec![broken(Fault::NoDone)],
            stall: Stall::None,
            requests: 1,
            attempts: &["mock-model:truncated"],
            end: End::Status(Code::Unavailable, "UPSTREAM_TRUNCATED"),
        },
        Case {
            name: "HTTP 400",
            route: "mock-model",
            replies: vec![error(400)],
            stall: Stall::None,
            requests: 1,
            attempts: &["mock-model:rejected"],
            end: End::Status(Code::FailedPrecondition, "UPSTREAM_REJECTED"),
        },
        Case {
            // The key is refused: no retry; the route has no other target, so
            // the extractive answerer searches, then answers from what it
            // found without calling the refusing model again.
            name: "HTTP 401",
            route: "mock-model",
            replies: vec![error(401)],
            stall: Stall::None,
            requests: 1,
            attempts: &["mock-model:unauthorized", "extractive:ok", "extractive:ok"],
            end: End::Degraded(DegradationReason::UpstreamFailed),
        },
        Case {
            name: "HTTP 401 on a route with a second model: failed over, not degraded",
            route: "keyed",
            replies: vec![error(401), ok("from the backup")],
            stall: Stall::None,
            requests: 2,
            attempts: &["mock-model:unauthorized", "backup:ok"],
            end: End::Answer {
                model: "backup",
                text: "from the backup",
            },
        },
        Case {
            name: "a malformed chunk before the first token: failed over",
            route: "keyed",
            replies: vec![broken(Fault::MalformedAfter(0)), ok("well formed")],
            stall: Stall::None,
            requests: 2,
            attempts: &["mock-model:protocol", "backup:ok"],
            end: End::Answer {
                model: "backup",
                text: "well formed",
            },
        },
        Case {
            name: "connection refused, failed over to the next target",
            route: "with-fallback",
            replies: vec![ok("from the second target")],
            stall: Stall::None,
            requests: 1,
            attempts: &[
                "down-model:connection",
                "down-model:connection",
                "mock-model:ok",
            ],
            end: End::Answer {
                model: "mock-model",
                text: "from the second target",
            },
        },
    ]
}

#[tokio::test]
async fn each_upstream_fault_is_retried_failed_over_degraded_or_a_clear_status() {
    let mock = mock_llm().await;
    let down = mock_llm().await;
    down.refuse_connections().await;
    let clock = manual_clock();
    let app = resilient_app(&mock, &down, LLM_KEYS, &clock).await;
    let mut session_id = String::new();
    let mut turns = 0;
    let scrape_attempts = |scrape: &str, route: &str| -> Vec<(String, f64)> {
        scrape
            .lines()
            .filter(|line| line.starts_with("agentd_llm_attempts_total{"))
            .filter(|line| line.contains(&format!("route=\"{route}\"")))
            .filter_map(|line| {
                let (series, value) = line.rsplit_once(' ')?;
                Some((series.to_owned(), value.parse().ok()?))
            })
            .collect()
    };
    for case in cases() {
        let before = mock.requests().len();
        let counted_before = scrape_attempts(&app.metrics().await, case.route);
        mock.script(case.replies);
        let request = ChatRequest {
            message: "When does the freeze window start?".into(),
            session_id: session_id.clone(),
            options: model_options(case.route),
        };
        let (events, end) = drive_chat(&app, &clock, request, case.stall).await;
        let name = case.name;
        assert_eq!(
            mock.requests().len() - before,
            case.requests,
            "{name}: upstream requests"
        );
        // agentd_llm_attempts_total{route,target,outcome} grew by the attempts.
        let counted_after = scrape_attempts(&app.metrics().await, case.route);
        let mut grew: Vec<String> = Vec::new();
        for (series, value) in &counted_after {
            let earlier = counted_before
                .iter()
                .find(|(s, _)| s == series)
                .map_or(0.0, |(_, v)| *v);
            let label = |key: &str| {
                let start = series
                    .find(&format!("{key}=\""))
                    .map(|i| i + key.len() + 2)?;
                let end = series[start..].find('"')? + start;
                Some(series[start..end].to_owned())
            };
            if let (Some(target), Some(outcome)) = (label("target"), label("outcome")) {
                for _ in 0..(value - earlier).round() as usize {
                    grew.push(format!("{target}:{outcome}"));
                }
            }
        }
        let mut expected: Vec<String> = case.attempts.iter().map(|a| (*a).to_owned()).collect();
        expected.sort();
        grew.sort();
        assert_eq!(grew, expected, "{name}: agentd_llm_attempts_total");
        assert!(
            matches!(events.first(), Some(Event::Started(_))),
            "{name}: {events:?}"
        );
        let deltas: String = events
            .iter()
            .filter_map(|e| match e {
                Event::Delta(d) => Some(d.text.as_str()),
                _ => None,
            })
            .collect();
        match case.end {
            End::Status(code, reason) => {
                let status = end.expect_err(name);
                assert_eq!(status.code(), code, "{name}: {status:?}");
                let info = status.get_details_error_info().expect(name);
                assert_eq!(info.reason, reason, "{name}");
                assert!(
                    !status.message().contains("upstream says no"),
                    "{name}: the provider's message leaked"
                );
                assert!(
                    !events.iter().any(|e| matches!(e, Event::Completed(_))),
                    "{name}"
                );
                // What the client saw before the failure is the failed
                // attempt's own text: nothing was replaced.
                assert!(
                    "partial answer that never ends".starts_with(&deltas),
                    "{name}: {deltas}"
                );
            }
            End::Answer { model, text } => {
                end.expect(name);
                let Some(Event::Completed(outcome)) = events.last() else {
                    panic!("{name}: {events:?}")
                };
                assert_eq!(outcome.model, model, "{name}");
                assert_eq!(outcome.route, case.route, "{name}");
                assert_eq!(attempts(outcome), case.attempts, "{name}");
                assert!(!outcome.degraded, "{name}");
                // Only the attempt that answered reached the client.
                assert_eq!(deltas, text, "{name}");
                assert_eq!(outcome.answer, text, "{name}");
                session_id.clone_from(&outcome.session_id);
                turns += 1;
            }
            End::Degraded(reason) => {
                end.expect(name);
                let Some(Event::Completed(outcome)) = events.last() else {
                    panic!("{name}: {events:?}")
                };
                assert_eq!(outcome.model, "extractive", "{name}");
                assert!(outcome.degraded, "{name}");
                assert_eq!(outcome.degradation_reason(), reason, "{name}");
                assert_eq!(attempts(outcome), case.attempts, "{name}");
                assert!(
                    outcome.answer.contains("freeze window starts 48 hours"),
                    "{name}: {}",
                    outcome.answer
                );
                assert!(
                    outcome.answer.contains("language model is unavailable"),
                    "{name}"
                );
                session_id.clone_from(&outcome.session_id);
                turns += 1;
            }
        }
        if !session_id.is_empty() {
            let stored = session(&app, &session_id).await.unwrap();
            assert_eq!(stored.turns, turns, "{name}: the session's turns");
        }
    }
}

#[tokio::test]
async fn ask_retries_a_call_that_failed_mid_stream_and_keeps_only_the_answer() {
    let mock = mock_llm().await;
    let down = mock_llm().await;
    let clock = manual_clock();
    let app = resilient_app(&mock, &down, LLM_KEYS, &clock).await;
    for (name, fault) in [
        ("a reset after a delta", broken(Fault::ResetAfter(2))),
        ("a missing [DONE]", broken(Fault::NoDone)),
    ] {
        mock.script([fault, ok("the whole answer")]);
        let mut client = app.agent();
        let ask = client.ask(AskRequest {
            message: "Hello?".into(),
            session_id: String::new(),
            options: model_options("mock-model"),
        });
        let answer = tokio::select! {
            answer = ask => answer.expect(name).into_inner(),
            () = pass_backoffs(&clock) => unreachable!(),
        };
        let outcome = answer.outcome.unwrap();
        // The partial text of the failed attempt is gone.
        assert_eq!(outcome.answer, "the whole answer", "{name}");
        assert_eq!(
            outcome.attempts.len(),
            2,
            "{name}: {:?}",
            attempts(&outcome)
        );
        assert_eq!(outcome.attempts[1].outcome, "ok", "{name}");
        let stored = session(&app, &outcome.session_id).await.unwrap();
        assert_eq!(stored.turns, 1, "{name}");
        assert_eq!(stored.messages.len(), 2, "{name}");
    }
}

#[tokio::test]
async fn retry_after_is_waited_for_exactly_when_it_fits() {
    let mock = mock_llm().await;
    let down = mock_llm().await;
    let clock = manual_clock();
    let app = resilient_app(&mock, &down, LLM_KEYS, &clock).await;
    mock.script([
        ScriptedError::new(429, "slow down").retry_after(3).into(),
        ok("after the wait"),
    ]);
    let mut client = app.agent();
    let chat = client.ask(AskRequest {
        message: "Hello?".into(),
        session_id: String::new(),
        options: model_options("mock-model"),
    });
    let wait = async {
        // The retry waits exactly the 3 s the provider asked for (no jitter),
        // and the mock sees nothing more until then.
        clock.wait_for_timer(Duration::from_secs(3)).await;
        assert_eq!(mock.requests().len(), 1);
        clock.advance(Duration::from_secs(3));
        std::future::pending::<()>().await;
    };
    let answer = tokio::select! {
        answer = chat => answer.unwrap().into_inner(),
        () = wait => unreachable!(),
    };
    let outcome = answer.outcome.unwrap();
    assert_eq!(outcome.answer, "after the wait");
    assert_eq!(
        attempts(&outcome),
        ["mock-model:rate_limited", "mock-model:ok"]
    );

    // A retry-after longer than max_delay (5 s) is not waited for: the target
    // is failed over at once (here to the degraded end).
    mock.script([ScriptedError::new(429, "slow down").retry_after(60).into()]);
    let answer = app
        .agent()
        .ask(AskRequest {
            message: "When does the freeze window start?".into(),
            session_id: String::new(),
            options: model_options("mock-model"),
        })
        .await
        .unwrap()
        .into_inner();
    let outcome = answer.outcome.unwrap();
    assert!(outcome.degraded);
    assert_eq!(
        attempts(&outcome),
        ["mock-model:rate_limited", "extractive:ok", "extractive:ok"]
    );
}
