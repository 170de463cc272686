//! Cost control through the gRPC API: a turn's cost in `usage`, a budget that
//! refuses before any model call, a request-rate limit with its real wait.

use std::time::Duration;

use agentd::pb::set_budget_request::Change;
use agentd::pb::{
    AskRequest, BudgetKind, BudgetOrigin, DegradationReason, GetUsageRequest, SetBudgetRequest,
    UsageGrouping, UsagePeriod,
};
use agentd::retrieval::embedded::EmbeddedStore;
use agentd_mock_llm::{Completion, Gate, Hold, Reply};
use agentd_test_redis::RedisServer;
use futures::StreamExt as _;
use tonic::Code;
use tonic_types::StatusExt;

use crate::helpers::{TestApp, key, mock_llm, spawn_agent, spawn_agent_built, with_key};

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
    assert_eq!(reply.outcome.unwrap().usage, Some(usage.clone()));
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

fn set(kind: BudgetKind, change: Change) -> SetBudgetRequest {
    SetBudgetRequest {
        kind: kind.into(),
        change: Some(change),
        ..Default::default()
    }
}

#[tokio::test]
async fn get_usage_reports_spend_and_set_budget_brakes_it_at_once() {
    let mock = mock_llm().await;
    mock.script([answer((40, 6)), answer((10, 2))]);
    let app = spawn_agent(&mock, "[cost.tenants.default]\nbudget_usd_day = 5").await;
    app.agent().ask(ask("Hello?")).await.unwrap();
    let mut admin = app.admin();
    let usage = admin
        .get_usage(GetUsageRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(usage.tenant, "default");
    assert_eq!(usage.from, usage.to);
    assert_eq!(usage.rows.len(), 1);
    assert_eq!(usage.rows[0].name, "mock-model");
    let total = usage.total.unwrap();
    assert_eq!(
        (total.calls, total.input_tokens, total.output_tokens),
        (1, 40, 6)
    );
    assert_eq!(total.cost_nano_usd, 9_600);
    let day = usage
        .budgets
        .iter()
        .find(|b| b.subject == "tenant" && b.kind() == BudgetKind::UsdDay)
        .unwrap();
    assert_eq!(day.origin(), BudgetOrigin::Config);
    assert_eq!(day.limit, Some(5_000_000_000));
    assert_eq!(day.spent, 9_600);
    assert_eq!(day.remaining, Some(5_000_000_000 - 9_600));

    // The emergency brake: a limit below what is spent stops the next call.
    let braked = admin
        .set_budget(set(BudgetKind::UsdDay, Change::Limit(1)))
        .await
        .unwrap()
        .into_inner()
        .budget
        .unwrap();
    assert_eq!(braked.origin(), BudgetOrigin::Runtime);
    assert_eq!(braked.remaining, Some(0));
    let status = app.agent().ask(ask("More?")).await.unwrap_err();
    assert_eq!(
        status.get_details_error_info().unwrap().reason,
        "BUDGET_EXHAUSTED"
    );
    assert_eq!(mock.requests().len(), 1);
    // Cleared, the configured budget applies again.
    let cleared = admin
        .set_budget(set(BudgetKind::UsdDay, Change::Clear(true)))
        .await
        .unwrap()
        .into_inner()
        .budget
        .unwrap();
    assert_eq!(cleared.origin(), BudgetOrigin::Config);
    app.agent().ask(ask("More?")).await.unwrap();
}

#[tokio::test]
async fn bad_usage_and_budget_requests_name_their_field() {
    let mock = mock_llm().await;
    let app = spawn_agent(&mock, "").await;
    let mut admin = app.admin();
    let field_of = |status: tonic::Status| {
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
        status.get_details_bad_request().unwrap().field_violations[0]
            .field
            .clone()
    };
    let cases = [
        (
            GetUsageRequest {
                tenant: "nobody".into(),
                ..Default::default()
            },
            "tenant",
        ),
        (
            GetUsageRequest {
                key: "stranger".into(),
                ..Default::default()
            },
            "key",
        ),
        (
            GetUsageRequest {
                date: "31/12/2026".into(),
                ..Default::default()
            },
            "date",
        ),
        (
            GetUsageRequest {
                period: 9,
                ..Default::default()
            },
            "period",
        ),
        (
            GetUsageRequest {
                group_by: 9,
                ..Default::default()
            },
            "group_by",
        ),
    ];
    for (request, field) in cases {
        let status = admin.get_usage(request).await.unwrap_err();
        assert_eq!(field_of(status), field);
    }
    let budget_cases = [
        (set(BudgetKind::Unspecified, Change::Limit(1)), "kind"),
        (
            SetBudgetRequest {
                kind: BudgetKind::UsdDay.into(),
                ..Default::default()
            },
            "change",
        ),
        (set(BudgetKind::UsdDay, Change::Clear(false)), "change"),
        (set(BudgetKind::UsdDay, Change::Limit(u64::MAX)), "limit"),
        (set(BudgetKind::TokensDay, Change::Limit(1 << 51)), "limit"),
        (
            SetBudgetRequest {
                key: "anonymous".into(),
                ..set(BudgetKind::SessionUsd, Change::Limit(1))
            },
            "kind",
        ),
    ];
    for (request, field) in budget_cases {
        let status = admin.set_budget(request).await.unwrap_err();
        assert_eq!(field_of(status), field);
    }
    // Nothing was set.
    let usage = admin
        .get_usage(GetUsageRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(usage.budgets.iter().all(|b| b.limit.is_none()), "{usage:?}");
}

#[tokio::test]
async fn an_admin_key_sees_and_sets_its_own_tenant_only() {
    let mock = mock_llm().await;
    let (admin_secret, admin_hash) = key("acme-admin");
    let (operator_secret, operator_hash) = key("operator");
    let app = spawn_agent(
        &mock,
        &format!(
            "[auth]\nenabled = true\nkeys = [\n\
             {{ name = \"acme-admin\", tenant = \"acme\", roles = [\"admin\"], sha256 = \"{admin_hash}\" }},\n\
             {{ name = \"ops\", tenant = \"globex\", roles = [\"operator\"], sha256 = \"{operator_hash}\" }},\n]"
        ),
    )
    .await;
    let mut admin = app.admin();
    let other = GetUsageRequest {
        tenant: "globex".into(),
        ..Default::default()
    };
    let status = admin
        .get_usage(with_key(other.clone(), &admin_secret))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    assert_eq!(
        status.get_details_error_info().unwrap().reason,
        "TENANT_OUT_OF_SCOPE"
    );
    let brake = SetBudgetRequest {
        tenant: "globex".into(),
        ..set(BudgetKind::UsdDay, Change::Limit(0))
    };
    let status = admin
        .set_budget(with_key(brake.clone(), &admin_secret))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    // Its own tenant, and any tenant for an operator.
    let own = admin
        .get_usage(with_key(GetUsageRequest::default(), &admin_secret))
        .await
        .unwrap();
    assert_eq!(own.into_inner().tenant, "acme");
    admin
        .get_usage(with_key(other, &operator_secret))
        .await
        .unwrap();
    let set = admin
        .set_budget(with_key(brake, &operator_secret))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(set.budget.unwrap().limit, Some(0));
}

#[tokio::test]
async fn an_exhausted_budget_downgrades_to_the_tenants_cheaper_route() {
    let mock = mock_llm().await;
    mock.script([answer((40, 6))]);
    // 1,000 nano-USD a day: gpt-4o-mini's reservation (its 1,000 output
    // tokens alone are 600,000) does not fit; the free model's does.
    let app = spawn_agent(
        &mock,
        "[llm.models.cheap]\nprovider = \"mock\"\nupstream_model = \"local-small\"\n\
         context_window = 16000\nmax_output_tokens = 1000\nprice = { input = 0 }\n\
         [cost.tenants.default]\nbudget_usd_day = 0.000001\ndowngrade_to = \"cheap\"",
    )
    .await;
    let reply = app.agent().ask(ask("Hello?")).await.unwrap().into_inner();
    let outcome = reply.outcome.unwrap();
    assert_eq!(outcome.route, "cheap");
    assert!(outcome.degraded);
    assert_eq!(
        outcome.degradation_reason(),
        DegradationReason::BudgetDowngrade
    );
    let requests = mock.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].body["model"], "local-small");
    let usage = reply.usage.unwrap();
    assert_eq!(usage.cost_nano_usd, 0);
    let left = usage
        .budgets
        .iter()
        .find(|b| b.budget == "usd_day")
        .unwrap();
    assert_eq!(
        (left.subject.as_str(), left.limit, left.remaining),
        ("tenant", 1_000, 1_000)
    );
}

async fn qdrant() -> (EmbeddedStore, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::start(dir.path()).await.unwrap();
    (store, dir)
}

fn shared(redis: &RedisServer, qdrant: &EmbeddedStore, cost: &str) -> String {
    format!(
        "[state]\nbackend = \"redis\"\nredis_url = {:?}\n[retrieval]\nqdrant_url = \"http://{}\"\n{cost}",
        redis.url(),
        qdrant.addr()
    )
}

async fn two_servers(
    cost: &str,
) -> (
    TestApp,
    TestApp,
    RedisServer,
    EmbeddedStore,
    tempfile::TempDir,
    agentd_mock_llm::MockLlm,
) {
    let mock = mock_llm().await;
    let (store, dir) = qdrant().await;
    let redis = RedisServer::start().unwrap();
    let config = shared(&redis, &store, cost);
    let one = spawn_agent_built(&mock, &config, |app| app).await;
    let two = spawn_agent_built(&mock, &config, |app| app).await;
    (one, two, redis, store, dir, mock)
}

#[tokio::test]
async fn two_servers_sharing_redis_enforce_one_rate_limit_and_one_budget() {
    let (one, two, _redis, _store, _dir, mock) =
        two_servers("[cost.tenants.default]\nrate_requests = 3\nrate_requests_per = \"1h\"").await;
    mock.script([answer((10, 2)), answer((10, 2)), answer((10, 2))]);
    one.agent().ask(ask("a")).await.unwrap();
    two.agent().ask(ask("b")).await.unwrap();
    one.agent().ask(ask("c")).await.unwrap();
    let status = two.agent().ask(ask("d")).await.unwrap_err();
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
    // Three an hour: one every 20 minutes.
    assert!(
        wait > Duration::from_secs(19 * 60) && wait <= Duration::from_secs(20 * 60),
        "{wait:?}"
    );
    // Usage is shared too, and a brake set on one server holds on the other.
    let usage = two
        .admin()
        .get_usage(GetUsageRequest {
            period: UsagePeriod::Month.into(),
            group_by: UsageGrouping::Day.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(usage.total.unwrap().calls, 3);
    one.admin()
        .set_budget(set(BudgetKind::TokensDay, Change::Limit(0)))
        .await
        .unwrap();
    let budgets = two
        .admin()
        .get_usage(GetUsageRequest::default())
        .await
        .unwrap()
        .into_inner()
        .budgets;
    let tokens = budgets
        .iter()
        .find(|b| b.kind() == BudgetKind::TokensDay)
        .unwrap();
    assert_eq!(
        (tokens.origin(), tokens.limit),
        (BudgetOrigin::Runtime, Some(0))
    );
}

#[tokio::test]
async fn racing_turns_on_two_servers_never_overshoot_the_last_tokens() {
    let (one, two, _redis, _store, _dir, mock) = two_servers("").await;
    let gate = Gate::new();
    mock.script((0..4).map(|_| {
        Reply::Completion(Completion {
            usage: Some((10, 2)),
            ..Completion::text(["held"]).held(Hold::before_headers(&gate))
        })
    }));
    // One turn, held at the model, shows what a reservation is (R tokens:
    // its input bound and its 1,000 output tokens).
    let first = tokio::spawn({
        let mut agent = one.agent();
        async move { agent.ask(ask("race")).await }
    });
    gate.reached(1).await;
    let budget = |usage: &agentd::pb::GetUsageResponse| {
        usage
            .budgets
            .iter()
            .find(|b| b.subject == "tenant" && b.kind() == BudgetKind::TokensDay)
            .cloned()
            .unwrap()
    };
    let usage = one
        .admin()
        .get_usage(GetUsageRequest::default())
        .await
        .unwrap();
    let reservation = budget(&usage.into_inner()).reserved;
    assert!(reservation > 1_000, "{reservation}");
    // Room for three more and a half.
    let limit = reservation * 4 + reservation / 2;
    one.admin()
        .set_budget(set(BudgetKind::TokensDay, Change::Limit(limit)))
        .await
        .unwrap();
    let mut racing: futures::stream::FuturesUnordered<_> = (0..20)
        .map(|i| {
            let mut agent = if i % 2 == 0 { one.agent() } else { two.agent() };
            tokio::spawn(async move { agent.ask(ask("race")).await })
        })
        .collect();
    // 17 are refused while the three winners hold their reservations.
    for _ in 0..17 {
        let refused = racing.next().await.unwrap().unwrap().unwrap_err();
        assert_eq!(
            refused.get_details_error_info().unwrap().reason,
            "BUDGET_EXHAUSTED"
        );
        assert_eq!(
            refused.get_details_quota_failure().unwrap().violations[0].subject,
            "tenant"
        );
    }
    gate.reached(4).await;
    let usage = two
        .admin()
        .get_usage(GetUsageRequest::default())
        .await
        .unwrap();
    let held = budget(&usage.into_inner());
    assert_eq!(held.reserved, 4 * reservation);
    assert!(held.spent + held.reserved <= limit);
    gate.release();
    while let Some(won) = racing.next().await {
        won.unwrap().unwrap();
    }
    first.await.unwrap().unwrap();
    assert_eq!(mock.requests().len(), 4);
    // Settled to what they used: 12 tokens each.
    let usage = one
        .admin()
        .get_usage(GetUsageRequest::default())
        .await
        .unwrap();
    let settled = budget(&usage.into_inner());
    assert_eq!((settled.spent, settled.reserved), (48, 0));
}

#[tokio::test]
async fn redis_down_fails_budgets_closed_and_rate_limits_as_configured() {
    for fail_open in [false, true] {
        let (one, _two, mut redis, _store, _dir, mock) = two_servers(&format!(
            "[cost]\nrate_limits_fail_open = {fail_open}\n\
             [cost.tenants.default]\nrate_requests = 100"
        ))
        .await;
        mock.script([answer((10, 2))]);
        redis.stop();
        let status = one.agent().ask(ask("rate limited only")).await.unwrap_err();
        assert_eq!(status.code(), Code::Unavailable, "{status:?}");
        let reason = status.get_details_error_info().unwrap().reason;
        if fail_open {
            // Past the rate limit and the model (no budget to enforce), the
            // turn fails at its session write: sessions are in Redis too.
            assert_eq!(reason, "STATE_STORE_UNAVAILABLE");
            assert_eq!(mock.requests().len(), 1);
        } else {
            assert_eq!(reason, "BUDGET_LEDGER_UNAVAILABLE");
            assert!(mock.requests().is_empty());
        }
    }
    // A budget always fails closed.
    let (one, _two, mut redis, _store, _dir, mock) = two_servers(
        "[cost]\nrate_limits_fail_open = true\n[cost.tenants.default]\nbudget_usd_day = 5",
    )
    .await;
    redis.stop();
    let status = one.agent().ask(ask("budgeted")).await.unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert_eq!(
        status.get_details_error_info().unwrap().reason,
        "BUDGET_LEDGER_UNAVAILABLE"
    );
    assert!(mock.requests().is_empty());
}

#[tokio::test]
async fn a_client_that_hangs_up_leaves_nothing_reserved_and_is_charged_its_estimate() {
    let mock = mock_llm().await;
    let gate = Gate::new();
    mock.script([Reply::Completion(
        Completion::text(["never", "seen"]).held(Hold::after_events(2, &gate)),
    )]);
    let app = spawn_agent(&mock, "").await;
    let mut stream = app
        .agent()
        .chat(crate::agent::chat("Hello?"))
        .await
        .unwrap()
        .into_inner();
    // The first text arrives; the rest of the answer is held at the model.
    stream.message().await.unwrap();
    gate.reached(1).await;
    let tokens = |usage: agentd::pb::GetUsageResponse| {
        let day = usage
            .budgets
            .into_iter()
            .find(|b| b.kind() == BudgetKind::TokensDay)
            .unwrap();
        (day.spent, day.reserved)
    };
    let usage = app
        .admin()
        .get_usage(GetUsageRequest::default())
        .await
        .unwrap();
    let (spent, reserved) = tokens(usage.into_inner());
    assert_eq!(spent, 0);
    assert!(reserved > 1_000);
    drop(stream);
    // Settled by the drop guard: nothing stays reserved, and the attempt is
    // charged agentd's estimate (its input and the text sent).
    let admin = app.admin();
    crate::helpers::eventually(|| {
        let mut admin = admin.clone();
        async move {
            let usage = admin.get_usage(GetUsageRequest::default()).await.unwrap();
            tokens(usage.into_inner()).1 == 0
        }
    })
    .await;
    let usage = app
        .admin()
        .get_usage(GetUsageRequest::default())
        .await
        .unwrap();
    let usage = usage.into_inner();
    let (spent, _) = tokens(usage.clone());
    assert!(spent > 0 && spent < reserved, "{spent} of {reserved}");
    let total = usage.total.unwrap();
    assert_eq!((total.calls, total.estimated_calls), (1, 1));
    gate.release();
}

#[tokio::test]
async fn embedding_calls_are_priced_per_tenant() {
    let mock = mock_llm().await;
    let app = spawn_agent(
        &mock,
        &format!(
            "[retrieval.embeddings]\nbase_url = \"{}\"\nmodel = \"text-embedding-3-small\"\n\
             dimensions = 64\nprice = {{ input = 1000 }}",
            mock.base_url()
        ),
    )
    .await;
    crate::resilience::ingest_handbook(&app).await;
    // The mock counts a token per word of input.
    let tokens: u64 = mock
        .embedding_requests()
        .iter()
        .map(|r| {
            r.body["input"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t.as_str().unwrap().split_whitespace().count() as u64)
                .sum::<u64>()
        })
        .sum();
    assert!(tokens > 0);
    // $1,000 per 1M tokens is $0.001 a token.
    let sample = r#"agentd_cost_usd_total{tenant="default",route="embeddings",model="text-embedding-3-small"}"#;
    let cost = app.metric(sample).await.unwrap();
    assert!(
        (cost - tokens as f64 * 1e-3).abs() < 1e-9,
        "{cost} for {tokens} tokens"
    );
}

#[test]
fn bad_prices_are_config_errors_naming_the_key() {
    let model = "[llm]\ndefault_model = \"m\"\n[llm.providers.p]\nbase_url = \"http://127.0.0.1:1/v1\"\nkeyless = true\n\
                 [llm.models.m]\nprovider = \"p\"\ncontext_window = 1000\nmax_output_tokens = 100\n";
    for (price, key) in [
        ("price = { input = -1 }", "llm.models.m.price.input"),
        ("price = { input = \"cheap\" }", "llm.models.m.price.input"),
        (
            "price = { input = 1, output = 0.0000000001 }",
            "llm.models.m.price.output",
        ),
        ("price = { input = 1, cost = 2 }", "llm.models.m.price"),
    ] {
        let err = agentd::config::Config::from_toml(&format!("{model}{price}\n"))
            .unwrap_err()
            .to_string();
        assert!(err.contains(key), "{price}: {err}");
    }
    // A price for a model that is not configured.
    let err = agentd::config::Config::from_toml(&format!(
        "{model}[llm.models.unknown.price]\ninput = 1\n"
    ))
    .unwrap_err()
    .to_string();
    assert!(err.contains("llm.models.unknown"), "{err}");
}

#[test]
fn no_provider_may_take_the_extractive_answerers_name() {
    // Its calls are free and pass no budget.
    let err = agentd::config::Config::from_toml(
        "[llm.providers.extractive]\nbase_url = \"http://127.0.0.1:1/v1\"\nkeyless = true\n",
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("llm.providers.extractive: the name is reserved"),
        "{err}"
    );
}

#[tokio::test]
async fn agentd_usage_prints_the_spend_and_the_budgets() {
    let mock = mock_llm().await;
    mock.script([answer((40, 6))]);
    let app = spawn_agent(&mock, "[cost.tenants.default]\nbudget_usd_day = 5").await;
    app.agent().ask(ask("Hello?")).await.unwrap();
    let server = format!("http://{}", app.grpc_addr);
    let output = crate::helpers::agentd_command()
        .args(["usage", "--server", &server, "--group-by", "route"])
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(output.status.success(), "{stdout}");
    assert!(stdout.starts_with("tenant default, "), "{stdout}");
    let route = stdout
        .lines()
        .find(|l| l.starts_with("mock-model"))
        .unwrap();
    // 1 call, 40 in, 0 cached, 6 out, $0.0000096.
    let fields: Vec<&str> = route.split_whitespace().collect();
    assert_eq!(
        fields,
        ["mock-model", "1", "40", "0", "6", "$0.0000096"],
        "{stdout}"
    );
    assert!(
        stdout.contains("tenant       usd_day          limit $5.00 (config), spent $0.0000096"),
        "{stdout}"
    );
    // A server that is not there: a clear failure.
    let output = crate::helpers::agentd_command()
        .args(["usage", "--server", "http://127.0.0.1:1"])
        .output()
        .await
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(stderr.contains("cannot connect"), "{stderr}");
}
