//! Cost control through the gRPC API: a turn's cost in `usage`, a budget that
//! refuses before any model call, a request-rate limit with its real wait.

use std::time::Duration;

use agentd::pb::AskRequest;
use agentd_mock_llm::{Completion, Reply};
use tonic::Code;
use tonic_types::StatusExt;

use crate::helpers::{mock_llm, spawn_agent};

fn ask(message: &str) -> AskRequest {
    AskRequest {
        message: message.into(),
        ..Default::default()
    }
}

fn answer(usage: (u32, u32)) -> Reply {
    Reply::Completion(Completion {
        usage: Some(usage),
        ..Completion::text(["Fine."])
    })
}

#[tokio::test]
async fn usage_carries_the_turns_cost_at_the_built_in_price() {
    let mock = mock_llm().await;
    mock.script([answer((40, 6))]);
    let app = spawn_agent(&mock, "").await;
    let reply = app.agent().ask(ask("Hello?")).await.unwrap().into_inner();
    let usage = reply.usage.unwrap();
    // gpt-4o-mini: $0.15 and $0.60 per 1M tokens, i.e. 150 and 600 nano-USD
    // a token.
    assert_eq!((usage.input_tokens, usage.output_tokens), (40, 6));
    assert_eq!(usage.cost_nano_usd, 40 * 150 + 6 * 600);
    assert!(!usage.estimated);
}

#[tokio::test]
async fn a_budget_smaller_than_the_reservation_refuses_before_any_model_call() {
    let mock = mock_llm().await;
    // The reservation holds the output cap (1,000 tokens) at least.
    let app = spawn_agent(&mock, "[cost.tenants.default]\nbudget_tokens_day = 500").await;
    let status = app.agent().ask(ask("Hello?")).await.unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    let info = status.get_details_error_info().unwrap();
    assert_eq!(info.reason, "BUDGET_EXHAUSTED");
    assert_eq!(info.metadata["budget"], "tokens_day");
    assert_eq!(info.metadata["subject"], "tenant");
    let quota = status.get_details_quota_failure().unwrap();
    assert_eq!(quota.violations[0].subject, "tenant");
    assert!(mock.requests().is_empty(), "a model was called");
}

#[tokio::test]
async fn a_request_rate_limit_refuses_with_the_real_wait() {
    let mock = mock_llm().await;
    mock.script([answer((10, 2)), answer((10, 2))]);
    // Two an hour: elapsed test time cannot refill it.
    let app = spawn_agent(
        &mock,
        "[cost.tenants.default]\nrate_requests = 2\nrate_requests_per = \"1h\"",
    )
    .await;
    let mut agent = app.agent();
    for _ in 0..2 {
        agent.ask(ask("Hello?")).await.unwrap();
    }
    let status = agent.ask(ask("Hello?")).await.unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert_eq!(
        status.get_details_error_info().unwrap().reason,
        "RATE_LIMITED"
    );
    let wait = status
        .get_details_retry_info()
        .unwrap()
        .retry_delay
        .unwrap();
    // One request every 30 minutes.
    assert!(
        wait > Duration::from_secs(29 * 60) && wait <= Duration::from_secs(30 * 60),
        "{wait:?}"
    );
    assert_eq!(mock.requests().len(), 2);
}
