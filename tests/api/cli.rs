//! The `agentd` binary: config check/default, keys hash, serve and its exit codes.

use std::process::Stdio;

use tokio::io::AsyncWriteExt;
use tokio::process::Command;

use crate::helpers::ServerProcess;

fn agentd() -> Command {
    crate::helpers::agentd_command()
}

async fn run(command: &mut Command) -> (i32, String, String) {
    let output = command.output().await.unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8(output.stdout).unwrap(),
        String::from_utf8(output.stderr).unwrap(),
    )
}

#[tokio::test]
async fn config_check_accepts_the_defaults() {
    let (code, stdout, _) = run(agentd().args(["config", "check"])).await;
    assert_eq!(code, 0);
    assert!(stdout.contains("valid"));
}

#[tokio::test]
async fn config_default_prints_a_commented_config_that_checks() {
    let (code, stdout, _) = run(agentd().args(["config", "default"])).await;
    assert_eq!(code, 0);
    assert!(stdout.contains("# Address of the gRPC listener"));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agentd.toml");
    std::fs::write(&path, &stdout).unwrap();
    let (code, _, stderr) = run(agentd().args(["config", "check", "--config"]).arg(&path)).await;
    assert_eq!(code, 0, "{stderr}");
}

#[tokio::test]
async fn a_malformed_config_file_exits_64_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("broken.toml");
    std::fs::write(&path, "[server\ngrpc_addr = ").unwrap();
    let (code, _, stderr) = run(agentd().args(["config", "check", "--config"]).arg(&path)).await;
    assert_eq!(code, 64);
    assert!(stderr.contains("broken.toml"), "{stderr}");
}

#[tokio::test]
async fn a_missing_config_file_exits_64() {
    let (code, _, stderr) =
        run(agentd().args(["config", "check", "--config", "/nonexistent/agentd.toml"])).await;
    assert_eq!(code, 64);
    assert!(stderr.contains("/nonexistent/agentd.toml"), "{stderr}");
}

#[tokio::test]
async fn an_unknown_key_exits_64_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agentd.toml");
    std::fs::write(&path, "[server]\nmax_request_byte = 10\n").unwrap();
    let (code, _, stderr) = run(agentd().args(["config", "check", "--config"]).arg(&path)).await;
    assert_eq!(code, 64);
    assert!(stderr.contains("server.max_request_byte"), "{stderr}");

    let (code, _, stderr) = run(agentd()
        .args(["config", "check"])
        .env("AGENTD__SERVER__BOGUS", "1"))
    .await;
    assert_eq!(code, 64);
    assert!(stderr.contains("server.bogus"), "{stderr}");
}

#[tokio::test]
async fn agentd_config_names_the_file_like_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agentd.toml");
    std::fs::write(&path, "[storage]\ndata_directory = \"/tmp\"\n").unwrap();
    let (code, _, stderr) = run(agentd()
        .args(["config", "check"])
        .env("AGENTD_CONFIG", &path))
    .await;
    assert_eq!(code, 64);
    assert!(stderr.contains("storage.data_directory"), "{stderr}");
}

#[tokio::test]
async fn a_secret_can_come_from_an_environment_variable() {
    let hash = agentd::config::KeyHash::of_key("k").to_hex();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agentd.toml");
    std::fs::write(
        &path,
        "[auth]\nenabled = true\nkeys = [{ name = \"a\", tenant = \"t\", roles = [\"admin\"], sha256 = { env = \"ORDERS_KEY_SHA256\" } }]\n",
    )
    .unwrap();
    let check = || {
        let mut command = agentd();
        command.args(["config", "check", "--config"]).arg(&path);
        command
    };
    let (code, _, stderr) = run(check().env("ORDERS_KEY_SHA256", &hash)).await;
    assert_eq!(code, 0, "{stderr}");

    let (code, _, stderr) = run(check().env_remove("ORDERS_KEY_SHA256")).await;
    assert_eq!(code, 64);
    assert!(stderr.contains("auth.keys"), "{stderr}");
    assert!(stderr.contains("ORDERS_KEY_SHA256"), "{stderr}");

    // A malformed secret is reported without echoing its value.
    let (code, _, stderr) = run(check().env("ORDERS_KEY_SHA256", "hunter2-not-a-hash")).await;
    assert_eq!(code, 64);
    assert!(!stderr.contains("hunter2"), "{stderr}");
}

#[tokio::test]
async fn an_invalid_value_from_the_environment_exits_64_naming_the_key() {
    let (code, _, stderr) = run(agentd()
        .args(["config", "check"])
        .env("AGENTD__SERVER__MAX_CONCURRENT_CALLS", "0"))
    .await;
    assert_eq!(code, 64);
    assert!(stderr.contains("server.max_concurrent_calls"), "{stderr}");
}

#[tokio::test]
async fn worker_threads_sets_the_runtime_size_and_0_means_one_per_core() {
    let one = ServerProcess::start(&[("AGENTD__SERVER__WORKER_THREADS", "1")]).await;
    assert_eq!(one.listening["fields"]["workers"], 1);
    let three = ServerProcess::start(&[("AGENTD__SERVER__WORKER_THREADS", "3")]).await;
    assert_eq!(three.listening["fields"]["workers"], 3);
    let cores = std::thread::available_parallelism().unwrap().get();
    let default = ServerProcess::start(&[]).await;
    assert_eq!(default.listening["fields"]["workers"], cores);

    let (code, _, stderr) = run(agentd()
        .args(["config", "check"])
        .env("AGENTD__SERVER__WORKER_THREADS", "5000"))
    .await;
    assert_eq!(code, 64);
    assert!(stderr.contains("server.worker_threads"), "{stderr}");
    assert!(stderr.contains("more than 1024"), "{stderr}");
}

#[tokio::test]
async fn serving_beyond_loopback_without_auth_is_refused() {
    let (code, _, stderr) = run(agentd()
        .arg("serve")
        .env("AGENTD__SERVER__GRPC_ADDR", "0.0.0.0:0"))
    .await;
    assert_eq!(code, 64);
    assert!(stderr.contains("server.grpc_addr"), "{stderr}");
    assert!(stderr.contains("auth.enabled = true"), "{stderr}");
    assert!(stderr.contains("agentd keys hash"), "{stderr}");
}

#[tokio::test]
async fn keys_hash_prints_the_sha256_of_stdin() {
    let mut child = agentd()
        .args(["keys", "hash"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"s3cret\n")
        .await
        .unwrap();
    let output = child.wait_with_output().await.unwrap();
    assert!(output.status.success());
    assert_eq!(
        String::from_utf8(output.stdout).unwrap().trim(),
        agentd::config::KeyHash::of_key("s3cret").to_hex()
    );
}

#[tokio::test]
async fn serve_logs_its_addresses_as_json_and_exits_0_on_sigterm() {
    let mut server = ServerProcess::start(&[]).await;
    let mut admin = server.admin().await;
    admin
        .get_status(agentd::pb::GetStatusRequest {})
        .await
        .unwrap();

    // The access log line of that call carries its method, tenant, code and latency.
    let access = server.log_entry("call finished").await;
    assert_eq!(access["fields"]["grpc_code"], "OK");
    assert!(access["fields"]["latency_ms"].is_number());
    assert_eq!(access["span"]["rpc.method"], "GetStatus");
    assert_eq!(access["span"]["tenant"], "default");
    assert!(access["span"]["request_id"].is_string());

    assert_eq!(server.terminate().await, Some(0));
}

#[tokio::test]
async fn health_exits_0_only_for_serving() {
    // A vector store nobody serves: RetrievalService is NOT_SERVING, the rest SERVING.
    let app =
        crate::helpers::spawn_app_with("[retrieval]\nqdrant_url = \"http://127.0.0.1:9\"").await;
    let addr = app.grpc_addr.to_string();
    let health = |service: &str| {
        let mut command = agentd();
        command.args(["health", "--addr", &addr, "--service", service]);
        command
    };
    let (code, stdout, _) = run(&mut health("")).await;
    assert_eq!(code, 0, "{stdout}");
    assert_eq!(stdout, "the server: SERVING\n");
    let (code, stdout, _) = run(&mut health("agentd.v1.AgentService")).await;
    assert_eq!(code, 0, "{stdout}");
    crate::helpers::eventually(|| async {
        let (code, _, stderr) = run(&mut health("agentd.v1.RetrievalService")).await;
        code == 1 && stderr.contains("agentd.v1.RetrievalService: NOT_SERVING")
    })
    .await;
    let (code, _, stderr) = run(&mut health("no.such.Service")).await;
    assert_eq!(code, 1);
    assert!(stderr.contains("NotFound"), "{stderr}");
    // Nothing listening: a clear failure, not a hang.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let (code, _, stderr) = run(agentd().args([
        "health",
        "--addr",
        &format!("http://127.0.0.1:{port}"),
        "--timeout",
        "2s",
    ]))
    .await;
    assert_eq!(code, 1);
    assert!(stderr.contains("cannot connect"), "{stderr}");
    let (code, _, stderr) = run(agentd().args(["health", "--addr", "not an address"])).await;
    assert_eq!(code, 1);
    assert!(stderr.contains("is not an address"), "{stderr}");
    let (code, _, _) = run(agentd().args(["health", "--timeout", "soon"])).await;
    assert_eq!(code, 2, "clap's usage error");
}
