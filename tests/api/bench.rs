//! The benchmark tool runs and reports (a smoke test: no assertion on timing).

use crate::helpers::{mock_llm, spawn_agent};

#[tokio::test]
async fn agentd_bench_ttft_reports_both_paths_and_the_difference() {
    let mock = mock_llm().await;
    let app = spawn_agent(&mock, "").await;
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_agentd-bench"))
        .args([
            "ttft",
            "--requests",
            "5",
            "--warmup",
            "1",
            "--json",
            "--agentd",
        ])
        .arg(format!("http://{}", app.grpc_addr))
        .arg("--upstream")
        .arg(mock.base_url())
        .output()
        .await
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
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
