//! Every metric the Helm chart's alert rules and Grafana dashboard query is one
//! agentd exports: after a scripted scenario (a Chat turn with a tool call, an
//! Ask grounded in the knowledge base, a failed call, a call the provider
//! refuses agentd's key for, a refused call; every message checked by a
//! guardrail webhook), each name used in
//! `helm/agentd/files/alerts.yaml` (`expr:`) and
//! `helm/agentd/files/dashboard.json` (panel targets and template variables)
//! is a sample name of the `/metrics` scrape, so a renamed metric cannot
//! silently break an alert or a panel. The label values the queries match on
//! (`grpc_code`, `outcome`, `error_type`, `dependency`, ...) are checked the
//! same way, per metric: a value must be one that metric exports in the
//! scrape, or, where the scenario cannot produce every value, one of the
//! source's closed set ([`closed_set`]).
//!
//! The TLS series come from a second server that serves TLS and rotates its
//! certificate once. Names from elsewhere (`up`, kube-state-metrics) are in
//! [`EXTERNAL`]; recording rules defined in the rules file itself are exempt
//! by definition. The query extraction is in `promql`, the scrape parser in
//! `scrape`.

mod promql;
mod scrape;

use std::collections::{BTreeMap, BTreeSet};

use agentd::pb::AskRequest;
use agentd::telemetry::genai::SessionWriteOutcome;
use agentd_mock_llm::{Completion, MockToolCall, Reply};
use tonic::Code;

use crate::agent::{call, chat, completed, run_chat};
use crate::helpers::{eventually, mock_llm, spawn_agent_with_llm};
use promql::{
    Matcher, dashboard_queries, label_matchers, metric_names, recorded_names, rule_exprs,
};
use scrape::Scrape;

const ALERTS: &str = include_str!("../../helm/agentd/files/alerts.yaml");
const DASHBOARD: &str = include_str!("../../helm/agentd/files/dashboard.json");
/// Where the session write's `outcome` label gets its values.
/// Metrics the rules use that agentd does not export: Prometheus' own `up`
/// and kube-state-metrics. Each must be used (a stale entry fails the test).
const EXTERNAL: [&str; 3] = [
    "up",
    "kube_deployment_spec_replicas",
    "kube_deployment_status_replicas_available",
];

/// Labels whose matched values must be values agentd exports (a renamed
/// outcome breaks a query as surely as a renamed metric).
const CHECKED_LABELS: [&str; 7] = [
    "grpc_code",
    "outcome",
    "error_type",
    "dependency",
    "grounded",
    "cited",
    "gen_ai_token_type",
];

#[tokio::test]
async fn every_metric_and_label_value_the_alerts_and_dashboard_use_is_exported() {
    let scrape = scripted_scenario_scrape().await;
    let scrape = Scrape::parse(&scrape);

    let recorded = recorded_names(ALERTS);
    assert!(
        !recorded.is_empty(),
        "no record: rules found in alerts.yaml"
    );
    let used = used_metric_names();
    // The extraction found the metrics the rules are about, or it is broken.
    for name in [
        "grpc_server_handled_total",
        "agentd_dependency_up",
        "agentd_answers_total",
        "agentd_tool_calls_total",
        "agentd_session_write_seconds_count",
        "gen_ai_client_operation_duration_seconds_count",
        "gen_ai_client_token_usage_sum",
        "agentd_time_to_first_token_seconds_bucket",
        "grpc_server_handling_seconds_bucket",
    ] {
        assert!(used.contains_key(name), "{name} not extracted: {used:?}");
    }

    let problems = unknown_names(&used, &scrape, &recorded);
    assert!(
        problems.is_empty(),
        "metric names in the rules or dashboard that agentd's /metrics lacks:\n{}",
        problems.join("\n")
    );
    for external in EXTERNAL {
        assert!(
            used.contains_key(external),
            "{external} is allowlisted but no rule or panel uses it: drop it"
        );
    }

    let matchers = label_matchers(&all_queries(), &CHECKED_LABELS);
    for (metric, label) in [
        ("grpc_server_handled_total", "grpc_code"),
        ("agentd_dependency_up", "dependency"),
        ("agentd_session_write_seconds_count", "outcome"),
        ("agentd_llm_attempts_total", "outcome"),
    ] {
        assert!(
            matchers
                .iter()
                .any(|m| m.metric == metric && m.label == label),
            "no {metric}{{{label}=...}} matcher extracted: {matchers:?}"
        );
    }
    let problems = unknown_label_values(&matchers, &scrape);
    assert!(
        problems.is_empty(),
        "label values in the rules or dashboard that agentd never exports:\n{}",
        problems.join("\n")
    );
}

/// Runs the scenario against a server on the mock LLM and returns its
/// `/metrics` text.
async fn scripted_scenario_scrape() -> String {
    let mock = mock_llm().await;
    let http_error = |status, message: &str| Reply::HttpError {
        status,
        retry_after: None,
        message: message.into(),
    };
    mock.script([
        // Chat: a tool call, then an answer (not grounded).
        Reply::Completion(Completion::tool_calls([call("call_1", "{}")])),
        Reply::Completion(Completion {
            usage: Some((40, 6)),
            ..Completion::text(["It is ", "noon."])
        }),
        // Ask: a knowledge search, then an answer that cites its source.
        Reply::Completion(Completion::tool_calls([MockToolCall {
            id: "call_2".into(),
            name: "search_knowledge".into(),
            arguments: r#"{"query": "freeze window before a release"}"#.into(),
            fragments: 2,
        }])),
        Reply::Completion(Completion {
            usage: Some((120, 12)),
            ..Completion::text(["The freeze starts 48 hours before (eng/release.md)."])
        }),
        // Ask: the provider fails, a server-side fault; with no retry and no
        // degraded answer, the route is exhausted (UNAVAILABLE). 1 failed
        // attempt of 5: the breaker stays closed.
        http_error(500, "upstream is down"),
        // Ask: the provider refuses the request (FAILED_PRECONDITION; not a
        // failure of the model for its breaker).
        http_error(400, "context too long"),
        // Ask: the provider refuses agentd's key (attempt outcome
        // "unauthorized"; UNAVAILABLE). 2 failed of 6: the breaker opens.
        http_error(401, "invalid api key"),
        // The last Ask finds the breaker open (attempt outcome "breaker_open"),
        // and no request reaches the provider.
    ]);
    let app = spawn_agent_with_llm(
        &mock,
        "degraded_default = \"unavailable\"",
        &format!(
            "[llm.retry]\nmax_attempts = 1\n[llm.breaker]\nmin_calls = 1\nfailure_ratio = 0.3\n\
             [cost.tenants.default]\nbudget_usd_day = 100\n\
             [guardrails.webhooks.moderator]\nurl = \"{}\"\napplies_to = \"input\"\n\
             on_error = \"fail_open\"\n",
            mock.moderation_url()
        ),
        |app| app,
    )
    .await;
    crate::resilience::ingest_handbook(&app).await;

    let (events, end) = run_chat(&app, chat("What time is it?")).await;
    end.unwrap();
    assert_eq!(completed(&events).answer, "It is noon.");

    let ask = |message: &str| AskRequest {
        message: message.into(),
        ..AskRequest::default()
    };
    let asked = app
        .agent()
        .ask(ask("When does the freeze window start?"))
        .await
        .unwrap()
        .into_inner();
    let outcome = asked.outcome.unwrap();
    assert!(
        outcome.sources.iter().any(|s| s.cited),
        "the answer should cite its source: {outcome:?}"
    );

    let failed = app.agent().ask(ask("And now?")).await.unwrap_err();
    assert_eq!(failed.code(), Code::Unavailable, "{failed:?}");
    let rejected = app.agent().ask(ask("And this?")).await.unwrap_err();
    assert_eq!(rejected.code(), Code::FailedPrecondition, "{rejected:?}");
    let unauthorized = app.agent().ask(ask("Once more?")).await.unwrap_err();
    assert_eq!(unauthorized.code(), Code::Unavailable, "{unauthorized:?}");
    let requests = mock.requests().len();
    let skipped = app.agent().ask(ask("Still there?")).await.unwrap_err();
    assert_eq!(skipped.code(), Code::Unavailable, "{skipped:?}");
    assert_eq!(
        mock.requests().len(),
        requests,
        "the open breaker calls nobody"
    );
    let refused = app.agent().ask(AskRequest::default()).await.unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");

    // The dependency gauges appear with the first health check, which runs
    // beside the server, not before it.
    let up = r#"agentd_dependency_up{dependency="vector_store"}"#;
    eventually(|| async { app.metric(up).await.is_some() }).await;
    let mut scrape = app.metrics().await;
    // The TLS metrics exist only with TLS on: a second server serves TLS, and
    // its TLS series join the scrape (a rotation makes the reload counter).
    let ca = crate::tls::TestCa::new("metric names CA");
    let files = crate::tls::ServerFiles::write(&ca.issue(), None);
    let clock = crate::helpers::manual_clock();
    let tls =
        crate::helpers::spawn_app_built(&files.toml(false), |builder| builder.clock(clock.clone()))
            .await;
    files.replace(&ca.issue());
    clock
        .wait_for_timer(std::time::Duration::from_secs(10))
        .await;
    clock.advance(std::time::Duration::from_secs(10));
    let reloaded = r#"agentd_tls_reloads_total{outcome="ok"}"#;
    eventually(|| async { tls.metric(reloaded).await.is_some() }).await;
    let tls_series = tls.metrics().await;
    scrape.extend(
        tls_series
            .lines()
            .filter(|line| line.starts_with("agentd_tls_"))
            .map(|line| format!("{line}\n")),
    );
    scrape
}

/// Every metric name the rules and the dashboard use, with where it is used.
fn used_metric_names() -> BTreeMap<String, String> {
    let mut used = BTreeMap::new();
    for (place, query) in all_queries() {
        for name in metric_names(&query) {
            used.entry(name).or_insert_with(|| place.clone());
        }
    }
    used
}

/// Every PromQL query of the rules file and the dashboard, each with a
/// description of where it is.
fn all_queries() -> Vec<(String, String)> {
    let rules = rule_exprs(ALERTS)
        .into_iter()
        .enumerate()
        .map(|(i, expr)| (format!("alerts.yaml expr #{}", i + 1), expr));
    let dashboard: serde_json::Value = serde_json::from_str(DASHBOARD).unwrap();
    rules.chain(dashboard_queries(&dashboard)).collect()
}

/// The names in `used` that are neither a sample of `scrape`, nor recorded by
/// the rules themselves, nor external, each with why.
fn unknown_names(
    used: &BTreeMap<String, String>,
    scrape: &Scrape,
    recorded: &BTreeSet<String>,
) -> Vec<String> {
    used.iter()
        .filter(|(name, _)| {
            !scrape.samples.contains(name.as_str())
                && !recorded.contains(name.as_str())
                && !EXTERNAL.contains(&name.as_str())
        })
        .map(|(name, place)| match scrape.family_of(name) {
            Some((family, kind)) => format!(
                "{name} (in {place}): `# TYPE {family} {kind}` is exported, but no sample \
                 {name}: a suffix that a {kind} does not have, or a series the scenario \
                 does not produce"
            ),
            None => format!("{name} (in {place}): not in the scrape at all"),
        })
        .collect()
}

/// The values a label of a metric can take that the scenario cannot produce
/// all of, from agentd's own closed sets: every gRPC code name (`code_name`
/// over every code), and the session write outcomes (the scenario stores turns
/// on the embedded store; it cannot fill or stop a Redis). None: the scrape
/// decides.
fn closed_set(metric: &str, label: &str) -> Option<BTreeSet<String>> {
    match label {
        "grpc_code" => Some(
            (0..=16)
                .map(|code| agentd::telemetry::metrics::code_name(Code::from_i32(code)).to_owned())
                .collect(),
        ),
        "outcome" if metric.starts_with("agentd_session_write_seconds") => Some(
            SessionWriteOutcome::ALL
                .iter()
                .map(|outcome| outcome.as_str().to_owned())
                .collect(),
        ),
        _ => None,
    }
}

/// Matchers whose value no series of their metric has in the scrape, and no
/// value of the metric's label closed set either.
fn unknown_label_values(matchers: &BTreeSet<Matcher>, scrape: &Scrape) -> Vec<String> {
    matchers
        .iter()
        .filter(|m| {
            !scrape.has_label_value(&m.metric, &m.label, &m.value)
                && !closed_set(&m.metric, &m.label).is_some_and(|set| set.contains(&m.value))
        })
        .map(|m| format!("{}{{{}=\"{}\"}}", m.metric, m.label, m.value))
        .collect()
}

const SAMPLE_SCRAPE: &str = "\
# HELP agentd_tool_calls Tool calls.
# TYPE agentd_tool_calls counter
agentd_tool_calls_total{gen_ai_tool_name=\"current_time\",outcome=\"ok\"} 1
# TYPE agentd_answers counter
agentd_answers_total{grounded=\"true\",cited=\"false\"} 2
# TYPE agentd_session_write_seconds histogram
# TYPE gen_ai_client_operation_duration_seconds histogram
gen_ai_client_operation_duration_seconds_count{gen_ai_provider_name=\"mock\",error_type=\"unauthorized\"} 1
# TYPE grpc_server_handled counter
grpc_server_handled_total{grpc_service=\"agentd.v1.AgentService\",grpc_method=\"Chat\",grpc_code=\"OK\"} 3
# EOF
";

#[test]
fn a_renamed_metric_or_label_value_in_the_rules_is_reported() {
    let scrape = Scrape::parse(SAMPLE_SCRAPE);
    let used = |query: &str| -> BTreeMap<String, String> {
        metric_names(query)
            .into_iter()
            .map(|name| (name, "test".to_owned()))
            .collect()
    };
    let none = BTreeSet::new();
    assert!(unknown_names(&used("rate(agentd_tool_calls_total[5m])"), &scrape, &none).is_empty());
    // A renamed counter: reported as missing.
    let renamed = unknown_names(&used("rate(agentd_tool_call_total[5m])"), &scrape, &none);
    assert_eq!(renamed.len(), 1, "{renamed:?}");
    assert!(renamed[0].contains("not in the scrape"), "{renamed:?}");
    // A counter's family name without `_total` is no series Prometheus stores.
    let family = unknown_names(&used("rate(agentd_answers[5m])"), &scrape, &none);
    assert!(
        family[0].contains("# TYPE agentd_answers counter"),
        "{family:?}"
    );
    // A histogram declared but never observed in the scenario.
    let unobserved = unknown_names(&used("agentd_session_write_seconds_bucket"), &scrape, &none);
    assert!(unobserved[0].contains("no sample"), "{unobserved:?}");
    // Recorded and external names are exempt.
    let recorded = BTreeSet::from(["ns:x:rate5m".to_owned()]);
    assert!(unknown_names(&used("ns:x:rate5m > 0 or absent(up)"), &scrape, &recorded).is_empty());

    // The same on the real rules file with one metric renamed.
    let broken = ALERTS.replace("agentd_tool_calls_total", "agentd_tool_call_total");
    let broken: BTreeMap<String, String> = rule_exprs(&broken)
        .iter()
        .flat_map(|e| metric_names(e))
        .map(|name| (name, "alerts.yaml".to_owned()))
        .collect();
    let problems = unknown_names(&broken, &scrape, &recorded_names(ALERTS));
    assert!(
        problems
            .iter()
            .any(|p| p.starts_with("agentd_tool_call_total ")),
        "{problems:?}"
    );

    // Label values, per metric: a code name spelled the wrong way, an unknown
    // answer flag, an error type and a session outcome that agentd has not,
    // and an outcome of one metric used on another.
    let queries = [(
        "test".to_owned(),
        r#"x{grpc_code=~"Internal|INTERNAL", job=~"$job"}
           + agentd_answers_total{cited="false"} + agentd_answers_total{cited="maybe"}
           + gen_ai_client_operation_duration_seconds_count{error_type=~"unauthorized|unauthorised"}
           + agentd_session_write_seconds_count{outcome=~"ok|full|error|oom"}
           + agentd_tool_calls_total{outcome=~"ok|full"}"#
            .to_owned(),
    )];
    let matchers = label_matchers(&queries, &CHECKED_LABELS);
    assert_eq!(
        unknown_label_values(&matchers, &scrape),
        [
            "agentd_answers_total{cited=\"maybe\"}",
            "agentd_session_write_seconds_count{outcome=\"oom\"}",
            "agentd_tool_calls_total{outcome=\"full\"}",
            "gen_ai_client_operation_duration_seconds_count{error_type=\"unauthorised\"}",
            "x{grpc_code=\"INTERNAL\"}",
        ]
    );
}

#[test]
fn the_session_write_alert_names_outcomes_agentd_has() {
    // The P1 alert's failure outcomes are all in the closed set (the main
    // test checks every matcher; this names the ones the page relies on).
    let outcomes = closed_set("agentd_session_write_seconds_count", "outcome").unwrap();
    for outcome in ["ok", "conflict", "full", "unavailable", "unknown", "error"] {
        assert!(outcomes.contains(outcome), "{outcome}: {outcomes:?}");
    }
    assert!(!outcomes.contains("oom"));
}
