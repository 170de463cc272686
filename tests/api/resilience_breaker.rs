//! The router's guards against a failing upstream: circuit breakers (and the
//! admin calls that show and reset them), the deadline and its reserve, the
//! retry budget, the health row "no route can answer", everything down at
//! once, and sticky weighted splits.

use std::time::Duration;

use agentd::pb::admin_service_client::AdminServiceClient;
use agentd::pb::{
    AskRequest, AskResponse, BreakerState, DegradationReason, DegradedEnd, ListModelsRequest,
    ResetBreakerRequest, TurnOutcome,
};
use agentd_mock_llm::{Completion, MockLlm, Reply, ScriptedError};
use tonic::Code;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_types::StatusExt;

use crate::helpers::{
    TestApp, auth_config, key, manual_clock, mock_llm, spawn_agent_with_llm, with_key,
};
use crate::resilience::{LLM_KEYS, ask, attempts, extra, ingest_handbook, pass_backoffs};

/// The outcome of an Ask that answers.
async fn answer(app: &TestApp, request: AskRequest) -> TurnOutcome {
    app.agent()
        .ask(request)
        .await
        .unwrap()
        .into_inner()
        .outcome
        .unwrap()
}

/// Asks, passing every backoff on the way.
async fn ask_driven(
    app: &TestApp,
    clock: &agentd::clock::Clock,
    request: AskRequest,
) -> Result<AskResponse, tonic::Status> {
    let mut client = app.agent();
    tokio::select! {
        answer = client.ask(request) => answer.map(tonic::Response::into_inner),
        () = pass_backoffs(clock) => unreachable!(),
    }
}

fn unavailable() -> Reply {
    ScriptedError::new(503, "overloaded").into()
}

/// A server on `mock` where one attempt is made per target and a breaker
/// opens on 2 calls that both failed, with a 30 s cool-down.
async fn breaker_app(mock: &MockLlm, down: &MockLlm, clock: &agentd::clock::Clock) -> TestApp {
    let clock = clock.clone();
    let config = extra(down)
        .replace("max_attempts = 2", "max_attempts = 1")
        .replace("min_calls = 1000", "min_calls = 2\ncool_down = \"30s\"");
    let app = spawn_agent_with_llm(mock, LLM_KEYS, &config, |app| app.clock(clock)).await;
    ingest_handbook(&app).await;
    app
}

#[tokio::test]
async fn an_open_breaker_skips_the_upstream_until_a_probe_after_the_cool_down_succeeds() {
    let mock = mock_llm().await;
    let down = mock_llm().await;
    let clock = manual_clock();
    let app = breaker_app(&mock, &down, &clock).await;
    let question = "When does the freeze window start?";

    // Two failed calls (one per turn: the answer step of a degraded turn goes
    // straight to the extractive answerer): the breaker opens.
    mock.script([unavailable(), unavailable()]);
    for _ in 0..2 {
        let degraded = answer(&app, ask(question, "mock-model")).await;
        assert_eq!(
            attempts(&degraded),
            ["mock-model:unavailable", "extractive:ok", "extractive:ok"]
        );
        assert!(degraded.degraded);
        assert_eq!(
            degraded.degradation_reason(),
            DegradationReason::UpstreamFailed
        );
    }
    assert_eq!(mock.requests().len(), 2);
    // Open: no request reaches the upstream, and the single-target route
    // still answers, extractively.
    let requests = mock.requests().len();
    let second = answer(&app, ask(question, "mock-model")).await;
    assert_eq!(mock.requests().len(), requests, "the upstream was called");
    assert_eq!(
        attempts(&second),
        ["mock-model:breaker_open", "extractive:ok", "extractive:ok"]
    );
    assert_eq!(second.degradation_reason(), DegradationReason::BreakerOpen);
    assert!(second.answer.contains("48 hours"), "{}", second.answer);

    // ListModels and GetStatus show it, on the instance that answers.
    let mut admin_client = AdminServiceClient::new(app.channel.clone());
    let listed = admin_client
        .list_models(ListModelsRequest {})
        .await
        .unwrap()
        .into_inner();
    assert!(!listed.instance.is_empty());
    let model = listed
        .models
        .iter()
        .find(|m| m.name == "mock-model")
        .unwrap();
    assert_eq!(model.provider, "mock");
    assert_eq!(model.upstream_model, "gpt-4o-mini");
    assert_eq!(model.context_window, 16000);
    let health = model.health.as_ref().unwrap();
    assert_eq!(health.breaker_state(), BreakerState::Open);
    assert!(
        health.last_error.contains("HTTP 503"),
        "{}",
        health.last_error
    );
    assert!(
        !health.last_error.contains("overloaded"),
        "the provider's message leaked"
    );
    assert_eq!(health.recent_success_ratio, Some(0.0));
    let route = listed
        .routes
        .iter()
        .find(|r| r.name == "with-fallback")
        .unwrap();
    assert_eq!(route.targets, ["down-model", "mock-model"]);
    assert_eq!(route.chain, ["down-model", "mock-model"]);
    assert_eq!(route.degraded(), DegradedEnd::Extractive);
    let status = admin_client
        .get_status(agentd::pb::GetStatusRequest {})
        .await
        .unwrap()
        .into_inner();
    let seen = status
        .models
        .iter()
        .find(|m| m.model == "mock-model")
        .unwrap();
    assert_eq!(seen.breaker_state(), BreakerState::Open);
    assert!(seen.last_error_time.is_some());

    // After the cool-down one probe goes through; its success closes it.
    clock.advance(Duration::from_secs(30));
    mock.script([Reply::Completion(Completion::text(["Back."]))]);
    let third = answer(&app, ask("Hello?", "mock-model")).await;
    assert_eq!(attempts(&third), ["mock-model:ok"]);
    assert_eq!(third.answer, "Back.");
    assert!(!third.degraded);
    assert_eq!(
        app.metric(r#"agentd_llm_breaker_state{target="mock-model"}"#)
            .await,
        Some(0.0)
    );
    for (from, to) in [
        ("closed", "open"),
        ("open", "half_open"),
        ("half_open", "closed"),
    ] {
        let sample = format!(
            r#"agentd_llm_breaker_transitions_total{{target="mock-model",from="{from}",to="{to}"}}"#
        );
        assert_eq!(app.metric(&sample).await, Some(1.0), "{sample}");
    }

    // ResetBreaker closes it at once, on this instance.
    mock.script([unavailable(), unavailable()]);
    for _ in 0..2 {
        answer(&app, ask(question, "mock-model")).await;
    }
    let done = admin_client
        .reset_breaker(ResetBreakerRequest {
            model: "mock-model".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(done.previous_state(), BreakerState::Open);
    assert_eq!(done.instance, listed.instance);
    mock.script([Reply::Completion(Completion::text(["Reset."]))]);
    let after = answer(&app, ask("Hello?", "mock-model")).await;
    assert_eq!(attempts(&after), ["mock-model:ok"]);
}

#[tokio::test]
async fn reset_breaker_needs_the_operator_role_and_a_configured_model() {
    let mock = mock_llm().await;
    let app = spawn_agent_with_llm(&mock, "", &auth_config(), |app| app).await;
    let (operator, _) = key("operator");
    let (admin, _) = key("admin");
    let reset = |model: &str, key: &str| {
        let mut client = AdminServiceClient::new(app.channel.clone());
        let request = with_key(
            ResetBreakerRequest {
                model: model.into(),
            },
            key,
        );
        async move { client.reset_breaker(request).await }
    };
    let refused = reset("mock-model", &admin).await.unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");
    let empty = reset(" ", &operator).await.unwrap_err();
    assert_eq!(empty.code(), Code::InvalidArgument);
    assert_eq!(
        empty.get_details_bad_request().unwrap().field_violations[0].field,
        "model"
    );
    let unknown = reset("gpt-9", &operator).await.unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound, "{unknown:?}");
    assert_eq!(
        unknown.get_details_error_info().unwrap().reason,
        "MODEL_NOT_FOUND"
    );
    assert!(unknown.message().contains("mock-model"), "{unknown:?}");
    let done = reset("mock-model", &operator).await.unwrap().into_inner();
    assert_eq!(done.previous_state(), BreakerState::Closed);
    // An admin key may list models (ListModels is not tenant data).
    let listed = AdminServiceClient::new(app.channel.clone())
        .list_models(with_key(ListModelsRequest {}, &admin))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.models.len(), 1);
}

#[tokio::test]
async fn no_attempt_starts_once_the_deadline_minus_the_reserve_has_passed() {
    let mock = mock_llm().await;
    let down = mock_llm().await;
    let clock = manual_clock();
    // Six attempts allowed, a 2 s reserve, no degraded answer: only the
    // deadline stops the retries.
    let keys = format!("{LLM_KEYS}\ndegraded_default = \"unavailable\"\nfallback_reserve = \"2s\"");
    let config = extra(&down).replace("max_attempts = 2", "max_attempts = 6");
    let app = {
        let clock = clock.clone();
        spawn_agent_with_llm(&mock, &keys, &config, |app| app.clock(clock)).await
    };
    let session_id = one_turn(&app, &mock).await;
    let before = mock.requests().len();
    // Every attempt is told to come back in exactly 3 s (no jitter; unlike
    // any other timer of the server: the provider's 1 s idle timeout, the
    // health checks' 2 s and 5 s), so the test passes only those.
    let wait = Duration::from_secs(3);
    mock.script((0..6).map(|_| ScriptedError::new(429, "slow down").retry_after(3).into()));
    let mut request = tonic::Request::new(AskRequest {
        session_id: session_id.clone(),
        ..ask("Hello?", "mock-model")
    });
    request.set_timeout(Duration::from_secs(13));
    let mut client = app.agent();
    let call = client.ask(request);
    let waits = async {
        loop {
            clock.wait_for_timer(wait).await;
            clock.advance(wait);
        }
    };
    let status = tokio::select! {
        ended = call => ended.unwrap_err(),
        () = waits => unreachable!(),
    };
    // Attempts at 0, 3, 6 and 9 s; one at 12 s would start before the 13 s
    // deadline, but not 2 s before it (the reserve), so it never starts.
    assert_eq!(mock.requests().len() - before, 4);
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
    assert_turns(&app, &session_id, 1).await;
}

/// A session with one completed turn, answered by `mock`; returns its id.
async fn one_turn(app: &TestApp, mock: &MockLlm) -> String {
    mock.script([Reply::Completion(Completion::text(["First."]))]);
    let answer = app
        .agent()
        .ask(ask("First?", "mock-model"))
        .await
        .unwrap()
        .into_inner();
    answer.outcome.unwrap().session_id
}

async fn assert_turns(app: &TestApp, session_id: &str, turns: u64) {
    let stored = crate::agent::session(app, session_id).await.unwrap();
    assert_eq!(stored.turns, turns);
    assert_eq!(stored.messages.len() as u64, 2 * turns);
}

#[tokio::test]
async fn retries_stay_within_the_route_budget() {
    let mock = mock_llm().await;
    let down = mock_llm().await;
    let clock = manual_clock();
    let keys = format!("{LLM_KEYS}\ndegraded_default = \"unavailable\"");
    let config = extra(&down)
        .replace("max_attempts = 2", "max_attempts = 3")
        .replace("budget_min_per_second = 1000", "budget_min_per_second = 0");
    let app = {
        let clock = clock.clone();
        spawn_agent_with_llm(&mock, &keys, &config, |app| app.clock(clock)).await
    };
    const CALLS: usize = 20;
    mock.script((0..CALLS * 3).map(|_| unavailable()));
    for _ in 0..CALLS {
        let status = ask_driven(&app, &clock, ask("Hello?", "mock-model"))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::Unavailable);
        let info = status.get_details_error_info().unwrap();
        assert_eq!(info.reason, "ROUTE_EXHAUSTED");
        assert!(status.get_details_retry_info().is_some());
    }
    // Without a budget: 3 attempts a call. With budget_ratio 0.2: one retry
    // per five calls at most, and some retries do happen.
    let made = mock.requests().len();
    assert!(made > CALLS, "no retry at all: {made}");
    assert!(
        made <= CALLS + CALLS / 5,
        "{made} attempts for {CALLS} calls"
    );
}

#[tokio::test]
async fn when_no_route_can_answer_the_agent_service_is_not_serving_until_a_probe_may_go() {
    let mock = mock_llm().await;
    let down = mock_llm().await;
    let clock = manual_clock();
    let keys = "degraded_default = \"unavailable\"";
    let config = extra(&down)
        .replace("max_attempts = 2", "max_attempts = 1")
        .replace("min_calls = 1000", "min_calls = 1\ncool_down = \"30s\"");
    let app = {
        let clock = clock.clone();
        spawn_agent_with_llm(&mock, keys, &config, |app| app.clock(clock)).await
    };
    let agent_service = "agentd.v1.AgentService";
    assert_eq!(
        app.serving_status(agent_service).await,
        ServingStatus::Serving
    );
    // Every model fails once: their breakers open, and every route ends in
    // UNAVAILABLE.
    down.refuse_connections().await;
    mock.script([unavailable(), unavailable()]);
    for model in ["mock-model", "down-model", "backup"] {
        let status = ask_driven(&app, &clock, ask("Hello?", model))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::Unavailable, "{model}: {status:?}");
    }
    // The health watcher's next round (every 5 s) sees it; the health
    // service's Watch stream says so.
    let mut watch = tonic_health::pb::health_client::HealthClient::new(app.channel.clone())
        .watch(tonic_health::pb::HealthCheckRequest {
            service: agent_service.into(),
        })
        .await
        .unwrap()
        .into_inner();
    let mut next_status = async move || watch.message().await.unwrap().unwrap().status();
    assert_eq!(next_status().await, ServingStatus::Serving);
    clock.wait_for_timer(Duration::from_secs(5)).await;
    clock.advance(Duration::from_secs(5));
    assert_eq!(next_status().await, ServingStatus::NotServing);
    assert_eq!(app.serving_status("").await, ServingStatus::Serving);
    // After the cool-down a probe may go: serving again at the next round
    // (the watch stream itself lives under the server's 1 min deadline).
    clock.advance(Duration::from_secs(30));
    assert_eq!(next_status().await, ServingStatus::Serving);
}

#[tokio::test]
async fn with_every_model_and_the_vector_store_down_the_answer_is_unavailable_and_nothing_is_stored()
 {
    let mock = mock_llm().await;
    let down = mock_llm().await;
    down.refuse_connections().await;
    let clock = manual_clock();
    let config = format!(
        "{}\n[retrieval]\nqdrant_url = \"http://127.0.0.1:9\"",
        extra(&down)
    );
    let app = {
        let clock = clock.clone();
        spawn_agent_with_llm(&mock, LLM_KEYS, &config, |app| app.clock(clock)).await
    };
    let session_id = one_turn(&app, &mock).await;
    mock.refuse_connections().await;
    let status = ask_driven(
        &app,
        &clock,
        AskRequest {
            session_id: session_id.clone(),
            ..ask("When is the freeze?", "with-fallback")
        },
    )
    .await
    .unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    let info = status.get_details_error_info().unwrap();
    assert_eq!(info.reason, "ROUTE_EXHAUSTED", "{status:?}");
    assert_eq!(info.metadata["route"], "with-fallback");
    assert_eq!(info.metadata["last_error"], "connection");
    let retry = status.get_details_retry_info().unwrap();
    assert!(retry.retry_delay.is_some());
    assert_turns(&app, &session_id, 1).await;
}

#[tokio::test]
async fn a_weighted_split_is_sticky_per_session_and_each_response_names_its_arm() {
    let mock = mock_llm().await;
    let down = mock_llm().await;
    let clock = manual_clock();
    // Both targets on the working mock: the split alone decides.
    let keys = r#"routes = { "split" = { targets = ["mock-model", "twin"], weights = [50, 50] } }"#;
    let config = format!(
        "{}\n[llm.models.twin]\nprovider = \"mock\"\nupstream_model = \"gpt-4o\"\ncontext_window = 8000\nmax_output_tokens = 500",
        extra(&down)
    );
    let app = {
        let clock = clock.clone();
        spawn_agent_with_llm(&mock, keys, &config, |app| app.clock(clock)).await
    };
    let split = |session_id: &str, message: &str| agentd::pb::ChatRequest {
        session_id: session_id.into(),
        options: crate::resilience::model_options("split"),
        ..crate::agent::chat(message)
    };
    let upstream = |arm: &str| {
        if arm == "twin" {
            "gpt-4o"
        } else {
            "gpt-4o-mini"
        }
    };
    for _ in 0..12 {
        let (events, end) = crate::agent::run_chat(&app, split("", "Hello?")).await;
        end.unwrap();
        let Some(agentd::pb::chat_response::Event::Started(started)) = events.first() else {
            panic!("{events:?}")
        };
        let outcome = crate::agent::completed(&events).clone();
        assert_eq!(outcome.route, "split");
        assert!(["mock-model", "twin"].contains(&started.model.as_str()));
        assert_eq!(outcome.model, started.model, "the arm answered");
        let sent = mock.requests().last().unwrap().body["model"].clone();
        assert_eq!(
            sent,
            upstream(&outcome.model),
            "the arm's upstream id is sent"
        );
        // The session's next turn lands on the same arm.
        let (events, end) =
            crate::agent::run_chat(&app, split(&outcome.session_id, "Again?")).await;
        end.unwrap();
        assert_eq!(crate::agent::completed(&events).model, outcome.model);
    }
}
