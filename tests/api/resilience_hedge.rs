//! Hedging: a first target slow to produce a first token is raced by a second
//! attempt on the next target; the first to answer wins and the loser's
//! upstream request is closed. And the router's own timeouts: first token and
//! total.

use std::time::Duration;

use agentd::pb::AskRequest;
use agentd_mock_llm::{Completion, Gate, Hold, MockLlm, Reply, StreamEnd};

use crate::helpers::{manual_clock, mock_llm, spawn_agent_with_llm};
use crate::resilience::{ask, attempts, extra};

/// Asks; once the mock holds the request at `gate`, passes the timer of
/// `timer` (and every backoff after it).
async fn ask_passing(
    app: &crate::helpers::TestApp,
    clock: &agentd::clock::Clock,
    request: tonic::Request<AskRequest>,
    gate: &Gate,
    timer: Duration,
) -> agentd::pb::TurnOutcome {
    let mut client = app.agent();
    let drive = async {
        gate.reached(1).await;
        clock.wait_for_timer(timer).await;
        clock.advance(timer);
        crate::resilience::pass_backoffs(clock).await;
    };
    let answer = tokio::select! {
        answer = client.ask(request) => answer.unwrap().into_inner(),
        () = drive => unreachable!(),
    };
    answer.outcome.unwrap()
}

/// Fails a test that would otherwise hang; never reached when it passes.
const HANG_GUARD: Duration = Duration::from_secs(30);

#[tokio::test]
async fn a_hedge_on_the_next_target_wins_over_a_slow_first_token_and_the_loser_is_closed() {
    let mock = mock_llm().await;
    let down = mock_llm().await;
    let clock = manual_clock();
    let hedge_after = Duration::from_millis(500);
    let keys =
        r#"routes = { "hedged" = { targets = ["mock-model", "twin"], hedge_after = "500ms" } }"#;
    let config = format!(
        "{}\n[llm.models.twin]\nprovider = \"mock\"\nupstream_model = \"gpt-4o\"\ncontext_window = 8000\nmax_output_tokens = 500",
        extra(&down)
    );
    let app = {
        let clock = clock.clone();
        spawn_agent_with_llm(&mock, keys, &config, |app| app.clock(clock)).await
    };
    // The first target sends its headers and role, then holds its first
    // token; the hedge answers at once.
    let gate = Gate::new();
    mock.script([
        Reply::Completion(Completion::text(["slow"]).held(Hold::after_events(1, &gate))),
        Reply::Completion(Completion::text(["fast"])),
    ]);
    let request = tonic::Request::new(ask("Hello?", "hedged"));
    let outcome = ask_passing(&app, &clock, request, &gate, hedge_after).await;
    assert_eq!(outcome.answer, "fast");
    assert_eq!(outcome.model, "twin");
    assert_eq!(attempts(&outcome), ["mock-model:cancelled", "twin:ok"]);
    let requests = mock.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[0].body["model"], "gpt-4o-mini");
    assert_eq!(requests[1].body["model"], "gpt-4o");
    // The loser's upstream request was closed, not left to finish: of the
    // two streams, one completed and one was dropped (in whichever order the
    // mock saw them end).
    let ends = tokio::time::timeout(HANG_GUARD, async {
        [
            mock.wait_for_stream_end(1).await,
            mock.wait_for_stream_end(2).await,
        ]
    })
    .await
    .expect("both upstream streams end");
    let dropped = ends
        .iter()
        .filter(|end| matches!(end, StreamEnd::Dropped(_)))
        .count();
    assert_eq!(dropped, 1, "{ends:?}");
    gate.release();
}

/// A provider with long idle timeouts, so its first-token (2.5 s) and total
/// (7.3 s) timeouts are what fire (lengths no other timer of the server has).
fn slow_provider(mock: &MockLlm) -> String {
    format!(
        "[llm.providers.slow]\nbase_url = \"{}\"\napi_key = \"sk-test\"\nidle_timeout = \"10s\"\n\
         first_token_timeout = \"2500ms\"\ntotal_timeout = \"7300ms\"\n[llm.models.slow-model]\n\
         provider = \"slow\"\ncontext_window = 16000\nmax_output_tokens = 1000\n",
        mock.base_url()
    )
}

/// A server whose model `slow-model` is on [`slow_provider`], on a manual
/// clock; the second mock (kept alive) serves the tests' other models.
async fn slow_app() -> (
    MockLlm,
    MockLlm,
    agentd::clock::Clock,
    crate::helpers::TestApp,
) {
    let mock = mock_llm().await;
    let down = mock_llm().await;
    let clock = manual_clock();
    let config = format!("{}\n{}", extra(&down), slow_provider(&mock));
    let app = {
        let clock = clock.clone();
        spawn_agent_with_llm(&mock, "", &config, |app| app.clock(clock)).await
    };
    (mock, down, clock, app)
}

#[tokio::test]
async fn the_first_token_timeout_retries_a_silent_start_and_the_total_timeout_ends_a_long_stream() {
    let (mock, _down, clock, app) = slow_app().await;
    let options = crate::resilience::model_options("slow-model");

    // Headers and the role arrive, then nothing: the first-token timeout (not
    // the 10 s idle one) ends the attempt, and the retry answers.
    let gate = Gate::new();
    mock.script([
        Reply::Completion(Completion::text(["late"]).held(Hold::after_events(1, &gate))),
        Reply::Completion(Completion::text(["in time"])),
    ]);
    let first_token = Duration::from_millis(2500);
    let request = tonic::Request::new(ask("Hello?", "slow-model"));
    let outcome = ask_passing(&app, &clock, request, &gate, first_token).await;
    assert_eq!(outcome.answer, "in time");
    assert_eq!(attempts(&outcome), ["slow-model:timeout", "slow-model:ok"]);
    gate.release();

    // A first token, then a stall: the idle timeout is 10 s, but the attempt
    // may last 7.3 s in all. A delta reached the client: the turn fails.
    mock.script([Reply::Completion(agentd_mock_llm::Completion {
        fault: Some(agentd_mock_llm::Fault::StallAfter(2)),
        ..Completion::text(["partial ", "answer"])
    })]);
    let total = Duration::from_millis(7300);
    let chat = crate::agent::run_chat(
        &app,
        agentd::pb::ChatRequest {
            message: "Hello?".into(),
            options,
            ..agentd::pb::ChatRequest::default()
        },
    );
    let drive = async {
        clock.wait_for_timer(total).await;
        clock.advance(total);
        std::future::pending::<()>().await;
    };
    let (events, end) = tokio::select! {
        ended = chat => ended,
        () = drive => unreachable!(),
    };
    let status = end.unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
    assert!(
        events
            .iter()
            .any(|e| matches!(e, agentd::pb::chat_response::Event::Delta(_))),
        "{events:?}"
    );
    assert!(status.message().contains("7s 300ms"), "{status:?}");
}

#[tokio::test]
async fn a_first_token_late_for_the_reserve_gives_way_to_a_degraded_answer_in_time() {
    let (mock, _down, clock, app) = slow_app().await;
    crate::resilience::ingest_handbook(&app).await;
    // The model sends its role and then nothing; its first-token timeout
    // (2.5 s) would end it only after the deadline (4.2 s) minus the reserve
    // (2 s): at 2.2 s the router gives up on it and quotes the handbook.
    let gate = Gate::new();
    mock.script([Reply::Completion(
        Completion::text(["late"]).held(Hold::after_events(1, &gate)),
    )]);
    let mut request = tonic::Request::new(ask("When does the freeze window start?", "slow-model"));
    request.set_timeout(Duration::from_millis(4200));
    let reserve_at = Duration::from_millis(2200);
    let outcome = ask_passing(&app, &clock, request, &gate, reserve_at).await;
    assert!(outcome.degraded);
    assert_eq!(
        outcome.degradation_reason(),
        agentd::pb::DegradationReason::Deadline
    );
    assert_eq!(
        attempts(&outcome),
        [
            "slow-model:deadline_exceeded",
            "extractive:ok",
            "extractive:ok"
        ]
    );
    assert!(outcome.answer.contains("48 hours"), "{}", outcome.answer);
    assert_eq!(mock.requests().len(), 1);
    gate.release();
}
