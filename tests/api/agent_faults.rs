//! Bad requests and racing turns: each gets a clear status, and the session is
//! left exactly as it was. Failing upstreams are `resilience`'s.

use agentd::pb::{ChatRequest, ModelTier, TurnOptions, turn_options::ModelChoice};
use agentd_mock_llm::{Completion, Gate, Hold, MockLlm, Reply};
use tonic::Code;
use tonic_types::StatusExt;

use crate::agent::{chat, completed, run_chat, session, untouched};
use crate::helpers::{TestApp, manual_clock, mock_llm, spawn_agent, spawn_agent_built};

/// A session with one completed turn; returns its id.
async fn one_turn(app: &TestApp, mock: &MockLlm) -> String {
    mock.script([Reply::Completion(Completion::text(["first answer"]))]);
    let (events, end) = run_chat(app, chat("first question")).await;
    end.unwrap();
    completed(&events).session_id.clone()
}

fn with_options(options: TurnOptions) -> ChatRequest {
    ChatRequest {
        options: Some(options),
        ..chat("hello")
    }
}

#[tokio::test]
async fn invalid_requests_name_the_field_and_reach_no_upstream() {
    let mock = mock_llm().await;
    let app = spawn_agent(
        &mock,
        r#"
[llm.models.tiny]
provider = "mock"
context_window = 300
max_output_tokens = 100
[agent]
max_message_bytes = 2000
"#,
    )
    .await;
    let session_id = one_turn(&app, &mock).await;
    let calls_before = mock.requests().len();
    let cases: Vec<(&str, ChatRequest, &str)> = vec![
        ("empty message", chat(""), "message"),
        ("blank message", chat(" \n\t"), "message"),
        ("oversized message", chat(&"x".repeat(2001)), "message"),
        (
            "message past the context window",
            ChatRequest {
                options: Some(TurnOptions {
                    model_choice: Some(ModelChoice::Model("tiny".into())),
                    ..TurnOptions::default()
                }),
                ..chat(&"word ".repeat(300))
            },
            "message",
        ),
        (
            "unknown model",
            with_options(TurnOptions {
                model_choice: Some(ModelChoice::Model("gpt-7".into())),
                ..TurnOptions::default()
            }),
            "options.model",
        ),
        (
            "unknown tier",
            with_options(TurnOptions {
                model_choice: Some(ModelChoice::Tier(99)),
                ..TurnOptions::default()
            }),
            "options.tier",
        ),
        (
            "zero max tokens",
            with_options(TurnOptions {
                max_output_tokens: Some(0),
                ..TurnOptions::default()
            }),
            "options.max_output_tokens",
        ),
        (
            "max tokens above the model's",
            with_options(TurnOptions {
                max_output_tokens: Some(1001),
                ..TurnOptions::default()
            }),
            "options.max_output_tokens",
        ),
        (
            "temperature too high",
            with_options(TurnOptions {
                temperature: Some(2.5),
                ..TurnOptions::default()
            }),
            "options.temperature",
        ),
        (
            "negative temperature",
            with_options(TurnOptions {
                temperature: Some(-0.1),
                ..TurnOptions::default()
            }),
            "options.temperature",
        ),
        (
            "NaN temperature",
            with_options(TurnOptions {
                temperature: Some(f32::NAN),
                ..TurnOptions::default()
            }),
            "options.temperature",
        ),
        (
            "unknown tool",
            with_options(TurnOptions {
                tools: vec!["current_time".into(), "rm_rf".into()],
                ..TurnOptions::default()
            }),
            "options.tools[1]",
        ),
        (
            "tool listed twice",
            with_options(TurnOptions {
                tools: vec!["current_time".into(), "current_time".into()],
                ..TurnOptions::default()
            }),
            "options.tools[1]",
        ),
        (
            "malformed session id",
            ChatRequest {
                session_id: "../../etc/passwd".into(),
                ..chat("hello")
            },
            "session_id",
        ),
    ];
    for (case, mut request, field) in cases {
        if request.session_id.is_empty() {
            request.session_id = session_id.clone();
        }
        let (events, end) = run_chat(&app, request).await;
        let status = end.expect_err(case);
        assert!(events.is_empty(), "{case}: {events:?}");
        assert_eq!(status.code(), Code::InvalidArgument, "{case}: {status:?}");
        let violations = status
            .get_details_bad_request()
            .expect(case)
            .field_violations;
        assert!(
            violations.iter().any(|v| v.field == field),
            "{case}: expected a violation of {field}, got {violations:?}"
        );
    }
    // The context-window error names the limit.
    let (_, end) = run_chat(
        &app,
        ChatRequest {
            options: Some(TurnOptions {
                model_choice: Some(ModelChoice::Model("tiny".into())),
                ..TurnOptions::default()
            }),
            ..chat(&"word ".repeat(300))
        },
    )
    .await;
    assert!(end.unwrap_err().message().contains("context window 300"));

    assert_eq!(
        mock.requests().len(),
        calls_before,
        "an invalid request reached the upstream"
    );
    let stored = session(&app, &session_id).await.unwrap();
    assert_eq!(stored.turns, 1);
    assert_eq!(stored.messages.len(), 2);
}

#[tokio::test]
async fn of_two_racing_turns_on_one_session_one_is_stored_and_the_other_aborted() {
    let mock = mock_llm().await;
    mock.script([Reply::Completion(Completion::text(["first"]))]);
    // A clock that stands still: the upstream timeout cannot fire while the
    // answers are held.
    let clock = manual_clock();
    let app = spawn_agent_built(&mock, "", |app| app.clock(clock)).await;
    let (events, end) = run_chat(&app, chat("start")).await;
    end.unwrap();
    let id = completed(&events).session_id.clone();

    // Both turns load the session (one turn stored) before either answers: the
    // answers are held until both requests have reached the upstream.
    let gate = Gate::new();
    let held =
        |word: &str| Reply::Completion(Completion::text([word]).held(Hold::before_headers(&gate)));
    mock.script([held("a"), held("b")]);
    let request = || ChatRequest {
        session_id: id.clone(),
        ..chat("race")
    };
    let release = async {
        gate.reached(2).await;
        gate.release();
    };
    let (a, b, ()) = tokio::join!(
        run_chat(&app, request()),
        run_chat(&app, request()),
        release
    );
    let ends = [a.1, b.1];
    assert_eq!(ends.iter().filter(|end| end.is_ok()).count(), 1, "{ends:?}");
    let status = ends.into_iter().find_map(Result::err).unwrap();
    assert_eq!(status.code(), Code::Aborted, "{status:?}");
    assert_eq!(
        status.get_details_error_info().unwrap().reason,
        "SESSION_CONFLICT"
    );

    // The winner's turn is stored whole, the loser's not at all.
    let stored = session(&app, &id).await.unwrap();
    assert_eq!(stored.turns, 2);
    assert_eq!(stored.messages.len(), 4);
    let outcomes = [("ok", 2.0), ("conflict", 1.0)];
    for (outcome, count) in outcomes {
        let sample = format!(r#"agentd_session_write_seconds_count{{outcome="{outcome}"}}"#);
        assert_eq!(app.metric(&sample).await, Some(count), "{sample}");
    }
}

#[tokio::test]
async fn unknown_sessions_are_not_found_and_nothing_is_created() {
    let mock = mock_llm().await;
    let app = spawn_agent(&mock, "").await;
    let (_, end) = run_chat(
        &app,
        ChatRequest {
            session_id: "no-such-session".into(),
            ..chat("hello")
        },
    )
    .await;
    let status = end.unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    assert_eq!(
        status.get_details_error_info().unwrap().reason,
        "SESSION_NOT_FOUND"
    );
    untouched(&mock);
    assert_eq!(
        session(&app, "no-such-session").await.unwrap_err().code(),
        Code::NotFound
    );
    let status = session(&app, "").await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
}

#[tokio::test]
async fn a_tier_maps_to_its_model_and_an_unmapped_tier_to_the_default() {
    let mock = mock_llm().await;
    let app = spawn_agent(
        &mock,
        r#"
[llm.models.fast-model]
provider = "mock"
upstream_model = "gpt-4.1-nano"
context_window = 16000
max_output_tokens = 1000
[llm.tiers]
fast = "fast-model"
"#,
    )
    .await;
    for (tier, expected) in [
        (ModelTier::Fast, "fast-model"),
        (ModelTier::Strong, "mock-model"),
    ] {
        mock.script([Reply::Completion(Completion::text(["ok"]))]);
        let (events, end) = run_chat(
            &app,
            with_options(TurnOptions {
                model_choice: Some(ModelChoice::Tier(tier.into())),
                ..TurnOptions::default()
            }),
        )
        .await;
        end.unwrap();
        assert_eq!(completed(&events).model, expected);
    }
    assert_eq!(mock.requests()[0].body["model"], "gpt-4.1-nano");
}
