//! `agentd eval retrieval` on the sample corpus: CI's retrieval-quality gate.
//! The corpus is ingested with `agentd ingest`, the gold set run in sparse mode,
//! and the scores must reach `eval/thresholds-sparse.json`.

use std::path::{Path, PathBuf};

use crate::helpers::{TestApp, agentd_command, spawn_app};

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

async fn eval(app: &TestApp, extra: &[&str]) -> std::process::Output {
    agentd_command()
        .args(["eval", "retrieval", "--server"])
        .arg(format!("http://{}", app.grpc_addr))
        .args(extra)
        .output()
        .await
        .unwrap()
}

#[tokio::test]
async fn the_sample_corpus_meets_the_recorded_sparse_thresholds() {
    let app = spawn_app().await;
    let ingested = agentd_command()
        .args(["ingest", "--server"])
        .arg(format!("http://{}", app.grpc_addr))
        .arg(repo("eval/corpus"))
        .output()
        .await
        .unwrap();
    assert!(ingested.status.success(), "{ingested:?}");

    let gold = repo("eval/gold.jsonl");
    let thresholds = repo("eval/thresholds-sparse.json");
    let output = eval(
        &app,
        &[
            "--gold",
            gold.to_str().unwrap(),
            "--mode",
            "sparse",
            "--json",
            "--thresholds",
            thresholds.to_str().unwrap(),
        ],
    )
    .await;
    let stdout = String::from_utf8(output.stdout).unwrap();
    let stderr = String::from_utf8(output.stderr).unwrap();
    println!("{stdout}");
    assert!(output.status.success(), "{stdout}\n{stderr}");
    let report: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(report["queries"], 364);
    assert_eq!(report["mode"], "sparse");
    for key in ["recall@5", "recall@10", "MRR@10"] {
        let value = report[key].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&value), "{key} = {value}");
    }

    // A threshold above the score fails the run and names the score.
    let dir = tempfile::tempdir().unwrap();
    let strict = dir.path().join("strict.json");
    std::fs::write(&strict, r#"{"MRR@10": 1.01}"#).unwrap();
    let output = eval(
        &app,
        &[
            "--gold",
            gold.to_str().unwrap(),
            "--mode",
            "sparse",
            "--thresholds",
            strict.to_str().unwrap(),
        ],
    )
    .await;
    let stdout = String::from_utf8(output.stdout).unwrap();
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(output.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("recall@5") && stdout.contains("MRR@10"),
        "{stdout}"
    );
    assert!(
        stderr.contains("MRR@10 is") && stderr.contains("below its threshold 1.010"),
        "{stderr}"
    );
}

#[tokio::test]
async fn bad_gold_sets_and_collections_are_reported() {
    let app = spawn_app().await;
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.jsonl");
    std::fs::write(
        &bad,
        "{\"query\": \"q\", \"relevant_doc_ids\": [\"a.md\"]}\n{\"query\": \"q\"}\n",
    )
    .unwrap();
    let output = eval(&app, &["--gold", bad.to_str().unwrap()]).await;
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("line 2"), "{stderr}");

    let gold = repo("eval/gold.jsonl");
    let output = eval(
        &app,
        &[
            "--gold",
            gold.to_str().unwrap(),
            "--collection",
            "nothing-here",
        ],
    )
    .await;
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("NotFound") && stderr.contains("nothing-here"),
        "{stderr}"
    );

    let thresholds = dir.path().join("thresholds.json");
    std::fs::write(&thresholds, r#"{"recall@50": 0.5}"#).unwrap();
    let output = eval(
        &app,
        &[
            "--gold",
            gold.to_str().unwrap(),
            "--thresholds",
            thresholds.to_str().unwrap(),
        ],
    )
    .await;
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(output.status.code(), Some(64), "{stderr}");
    assert!(stderr.contains("recall@50"), "{stderr}");
}
