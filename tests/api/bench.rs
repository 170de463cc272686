//! The benchmark tool runs and reports (a smoke test: no assertion on timing).

use crate::helpers::{mock_llm, spawn_agent};

/// `agentd-bench SUBCOMMAND ARGS... --json --agentd <app> --upstream <mock>`,
/// which must succeed; its JSON report.
async fn bench_against(
    args: &[&str],
    app: &crate::helpers::TestApp,
    mock: &agentd_mock_llm::MockLlm,
) -> serde_json::Value {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_agentd-bench"))
        .args(args)
        .args(["--json", "--agentd"])
        .arg(format!("http://{}", app.grpc_addr))
        .arg("--upstream")
        .arg(mock.base_url())
        .output()
        .await
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    serde_json::from_slice(&output.stdout).unwrap()
}

#[tokio::test]
async fn agentd_bench_ttft_reports_both_paths_and_the_difference() {
    let mock = mock_llm().await;
    let app = spawn_agent(&mock, "").await;
    let report = bench_against(&["ttft", "--requests", "5", "--warmup", "1"], &app, &mock).await;
    assert_eq!(report["requests"], 5);
    assert_eq!(report["errors"]["agentd"], 0);
    assert_eq!(report["errors"]["direct"], 0);
    for target in ["agentd", "direct", "added"] {
        for measure in ["ttft_ms", "total_ms"] {
            assert!(report[target][measure]["p99"].is_number(), "{report}");
        }
    }
    // 6 requests each way reached the upstream.
    assert_eq!(mock.requests().len(), 12);
}

#[tokio::test]
async fn agentd_bench_search_fills_two_collections_and_reports_ratios() {
    let app = crate::helpers::spawn_app().await;
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_agentd-bench"))
        .args([
            "search",
            "--chunks",
            "200",
            "--queries",
            "5",
            "--warmup",
            "1",
            "--json",
            "--agentd",
        ])
        .arg(format!("http://{}", app.grpc_addr))
        .output()
        .await
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["queries"], 5);
    assert!(
        report["large"]["chunks"].as_u64().unwrap() >= 200,
        "{report}"
    );
    assert!(report["small"]["chunks"].as_u64().unwrap() >= 2, "{report}");
    for row in ["health", "small", "large"] {
        assert_eq!(report[row]["errors"], 0, "{report}");
        assert!(report[row]["latency_ms"]["p99"].is_number(), "{report}");
    }
    assert!(
        report["large"]["mean_hits"].as_f64().unwrap() > 0.0,
        "{report}"
    );
    assert!(report["large_over_health"]["p50"].is_number(), "{report}");
}

async fn load(args: &[&str]) -> serde_json::Value {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_agentd-bench"))
        .arg("load")
        .args(args)
        .output()
        .await
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    serde_json::from_slice(&output.stdout).unwrap()
}

#[tokio::test]
async fn agentd_bench_load_drives_every_target_open_and_closed_loop() {
    let mock = mock_llm().await;
    let app = spawn_agent(&mock, "").await;
    let agentd = format!("http://{}", app.grpc_addr);
    let pid = std::process::id().to_string();
    let watch = format!("tests={pid}");
    // Open loop, streamed, with the mock standing in for a peer gateway. Each
    // slice (two per target) ends after 10 requests, long before its duration:
    // the counts do not depend on how fast this machine is.
    let report = load(&[
        "--targets",
        "agentd,direct,peer",
        "--rate",
        "200",
        "--duration",
        "60s",
        "--requests",
        "10",
        "--warmup",
        "0s",
        "--json",
        "--agentd",
        &agentd,
        "--upstream",
        &mock.base_url(),
        "--peer",
        &mock.base_url(),
        "--watch",
        &watch,
    ])
    .await;
    for target in ["agentd", "direct", "litellm"] {
        let t = &report["targets"][target];
        assert_eq!(t["requests"], 20, "{report}");
        assert_eq!(t["ok"], 20, "{report}");
        assert!(
            t["resources"]["tests"]["rss_max_mb"].as_f64().unwrap() > 1.0,
            "{report}"
        );
    }
    for row in [
        "agentd",
        "direct",
        "litellm",
        "agentd added",
        "litellm added",
    ] {
        assert!(
            report["latency"][row]["ttft_ms"]["p99"].is_number(),
            "{report}"
        );
    }

    // Closed loop, unary Ask; and streams cancelled half-way.
    let report = load(&[
        "--targets",
        "agentd,direct",
        "--method",
        "ask",
        "--concurrency",
        "4",
        "--duration",
        "60s",
        "--requests",
        "8",
        "--rounds",
        "1",
        "--warmup",
        "0s",
        "--json",
        "--agentd",
        &agentd,
        "--upstream",
        &mock.base_url(),
    ])
    .await;
    assert_eq!(report["targets"]["agentd"]["ok"], 8, "{report}");
    assert_eq!(report["targets"]["agentd"]["errors"], serde_json::json!({}));
    let report = load(&[
        "--targets",
        "agentd",
        "--concurrency",
        "2",
        "--duration",
        "10s",
        "--requests",
        "6",
        "--rounds",
        "1",
        "--warmup",
        "0s",
        "--cancel-after",
        "16",
        "--json",
        "--agentd",
        &agentd,
    ])
    .await;
    assert_eq!(report["targets"]["agentd"]["ok"], 6, "{report}");
}

#[tokio::test]
async fn agentd_bench_cancel_reports_how_soon_each_path_sees_a_cancel() {
    use agentd_mock_llm::{Completion, Gate, Hold, Reply};
    let mock = mock_llm().await;
    // Every reply stops after four text pieces and is never released: only the
    // client's cancel can end it.
    let gate = Gate::new();
    mock.script((0..6).map(|_| {
        Reply::Completion(
            Completion::text(["a ", "b ", "c ", "d ", "e "]).held(Hold::after_events(5, &gate)),
        )
    }));
    let app = spawn_agent(&mock, "").await;
    let report = bench_against(&["cancel", "--requests", "3", "--after", "4"], &app, &mock).await;
    assert_eq!(
        report["errors"],
        serde_json::json!({"agentd": 0, "direct": 0})
    );
    for target in ["agentd", "direct", "added"] {
        assert!(report[target]["cancel_ms"]["p50"].is_number(), "{report}");
    }
    // Three streams each way, every one dropped by its client.
    let ends = mock.stream_ends();
    assert_eq!(ends.len(), 6);
    assert!(
        ends.iter()
            .all(|end| matches!(end, agentd_mock_llm::StreamEnd::Dropped(_))),
        "{ends:?}"
    );
}
