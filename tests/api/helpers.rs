//! `spawn_app()` and the clients and waits the tests share.

use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::Duration;

use agentd::app::{App, AppBuilder, ShutdownHandle};
use agentd::config::{Config, KeyHash};
use agentd::pb::admin_service_client::AdminServiceClient;
use agentd::pb::agent_service_client::AgentServiceClient;
use agentd_mock_llm::{Behaviour, MockLlm};
use bytes::Bytes;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::task::JoinHandle;
use tonic::transport::Channel;
use tonic_health::pb::health_client::HealthClient;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// The span exporter every test's server reports into (one per process).
pub fn spans() -> &'static InMemorySpanExporter {
    static EXPORTER: OnceLock<InMemorySpanExporter> = OnceLock::new();
    EXPORTER.get_or_init(|| {
        let exporter = InMemorySpanExporter::default();
        let provider = SdkTracerProvider::builder()
            .with_simple_exporter(exporter.clone())
            .build();
        let otel = tracing_opentelemetry::layer().with_tracer(provider.tracer("agentd-tests"));
        let logs = std::env::var_os("TEST_LOG")
            .map(|_| tracing_subscriber::fmt::layer().with_test_writer());
        let filter = tracing_subscriber::EnvFilter::new("info");
        tracing_subscriber::registry()
            .with(filter)
            .with(otel)
            .with(logs)
            .try_init()
            .ok();
        exporter
    })
}

/// Finished spans of one trace.
pub fn spans_of_trace(trace_id: opentelemetry::trace::TraceId) -> Vec<SpanData> {
    spans()
        .get_finished_spans()
        .unwrap()
        .into_iter()
        .filter(|span| span.span_context.trace_id() == trace_id)
        .collect()
}

/// An API key of the test configs: (key, its hash).
pub fn key(name: &str) -> (String, String) {
    let key = format!("test-key-{name}");
    let hash = KeyHash::of_key(&key).to_hex();
    (key, hash)
}

/// Config with auth on and three keys: `admin` (admin role, tenant ops),
/// `agent` (agent role, tenant acme) and `operator` (operator role, tenant
/// platform).
pub fn auth_config() -> String {
    let (_, admin) = key("admin");
    let (_, agent) = key("agent");
    let (_, operator) = key("operator");
    format!(
        r#"[auth]
enabled = true
keys = [
  {{ name = "ops-admin", tenant = "ops", roles = ["admin"], sha256 = "{admin}" }},
  {{ name = "acme-agent", tenant = "acme", roles = ["agent"], sha256 = "{agent}" }},
  {{ name = "platform-operator", tenant = "platform", roles = ["operator"], sha256 = "{operator}" }},
]
"#
    )
}

/// A running in-process server.
pub struct TestApp {
    pub grpc_addr: SocketAddr,
    pub metrics_addr: SocketAddr,
    pub health_addr: Option<SocketAddr>,
    pub shutdown: ShutdownHandle,
    pub server: JoinHandle<anyhow::Result<()>>,
    pub channel: Channel,
    data_dir: Option<tempfile::TempDir>,
}

impl Drop for TestApp {
    #[allow(
        clippy::print_stderr,
        reason = "test output, shown for failed tests only"
    )]
    fn drop(&mut self) {
        // A failed assertion unwinds past the server, which the runtime drops
        // later: the embedded store then flushes into its directory, and a
        // second panic there (directory gone) would abort the whole test binary.
        if std::thread::panicking()
            && let Some(dir) = self.data_dir.take()
        {
            let kept = dir.keep();
            eprintln!(
                "test failed; its data directory is kept at {}",
                kept.display()
            );
        }
    }
}

/// A server with the default config.
pub async fn spawn_app() -> TestApp {
    spawn_app_with("").await
}

/// A server with the defaults overlaid by `toml`, on ephemeral loopback ports and a
/// fresh data directory.
pub async fn spawn_app_with(toml: &str) -> TestApp {
    spawn_app_built(toml, |builder| builder).await
}

/// Like [`spawn_app_with`], with the app's seams (clock, extra tools, call
/// chain) set by `seams`.
pub async fn spawn_app_built(toml: &str, seams: impl FnOnce(AppBuilder) -> AppBuilder) -> TestApp {
    spans();
    let mut config = Config::from_toml(toml).unwrap();
    if !toml.contains("drain_delay") {
        // Stopping a test server need not wait for load balancers.
        config.server.drain_delay = Duration::ZERO;
    }
    let data_dir = tempfile::tempdir().unwrap();
    config.server.grpc_addr = "127.0.0.1:0".parse().unwrap();
    config.server.metrics_addr = "127.0.0.1:0".parse().unwrap();
    config.storage.data_dir = data_dir.path().join("data");
    use_external_qdrant(&mut config);
    let tls = config.server.tls.files().is_some();
    let app = seams(App::builder(config)).build().await.unwrap();
    let grpc_addr = app.grpc_addr();
    let metrics_addr = app.metrics_addr();
    let health_addr = app.health_addr();
    let shutdown = app.shutdown_handle();
    let server = tokio::spawn(app.run_until_stopped());
    // The listener is bound already, so connecting cannot race the server's start.
    // A TLS listener refuses this plaintext channel: its tests make their own.
    let endpoint = Channel::from_shared(format!("http://{grpc_addr}")).unwrap();
    let channel = if tls {
        endpoint.connect_lazy()
    } else {
        endpoint.connect().await.unwrap()
    };
    TestApp {
        grpc_addr,
        metrics_addr,
        health_addr,
        shutdown,
        server,
        channel,
        data_dir: Some(data_dir),
    }
}

/// With `AGENTD_TEST_QDRANT_URL` set, a server that would use the embedded
/// vector store uses that Qdrant instead, its collections under a prefix of its
/// own, so tests running at once never see each other's documents. (The
/// retrieval, knowledge and grounded-answer tests run unchanged that way; tests
/// of the embedded store itself, such as its listening address, do not apply.)
fn use_external_qdrant(config: &mut Config) {
    if let Ok(url) = std::env::var("AGENTD_TEST_QDRANT_URL")
        && config.retrieval.qdrant_url == "embedded"
    {
        config.retrieval.qdrant_url = url;
        config.retrieval.qdrant_collection_prefix = format!("t{}_", uuid::Uuid::now_v7().simple());
    }
}

/// A mock upstream on an ephemeral port with the default behaviour.
pub async fn mock_llm() -> MockLlm {
    MockLlm::start("127.0.0.1:0".parse().unwrap(), Behaviour::default())
        .await
        .unwrap()
}

/// Config for one provider `mock` at `mock`, serving model `mock-model`
/// (upstream id gpt-4o-mini, 16k context, 1000 output tokens) as the default.
pub fn llm_config(mock: &MockLlm) -> String {
    llm_config_with(mock, "")
}

/// [`llm_config`] with `keys` (lines of `key = value`) added to `[llm]`.
pub fn llm_config_with(mock: &MockLlm, keys: &str) -> String {
    format!(
        r#"[llm]
default_model = "mock-model"
{keys}
[llm.providers.mock]
base_url = "{}"
api_key = "sk-test"
idle_timeout = "1s"
[llm.models.mock-model]
provider = "mock"
upstream_model = "gpt-4o-mini"
context_window = 16000
max_output_tokens = 1000
"#,
        mock.base_url()
    )
}

/// Like [`spawn_agent_built`], with `llm_keys` added to `[llm]`.
pub async fn spawn_agent_with_llm(
    mock: &MockLlm,
    llm_keys: &str,
    extra: &str,
    seams: impl FnOnce(AppBuilder) -> AppBuilder,
) -> TestApp {
    spawn_app_built(
        &format!("{}\n{extra}", llm_config_with(mock, llm_keys)),
        seams,
    )
    .await
}

/// A server whose LLM is `mock`, with `extra` config appended.
pub async fn spawn_agent(mock: &MockLlm, extra: &str) -> TestApp {
    spawn_app_with(&format!("{}\n{extra}", llm_config(mock))).await
}

/// Like [`spawn_agent`], with the app's seams set by `seams`.
pub async fn spawn_agent_built(
    mock: &MockLlm,
    extra: &str,
    seams: impl FnOnce(AppBuilder) -> AppBuilder,
) -> TestApp {
    spawn_app_built(&format!("{}\n{extra}", llm_config(mock)), seams).await
}

/// A manual clock for a test: time moves only when the test advances it.
pub fn manual_clock() -> agentd::clock::Clock {
    agentd::clock::Clock::manual(std::time::SystemTime::now())
}

impl TestApp {
    pub fn admin(&self) -> AdminServiceClient<Channel> {
        AdminServiceClient::new(self.channel.clone())
    }

    pub fn agent(&self) -> AgentServiceClient<Channel> {
        AgentServiceClient::new(self.channel.clone())
    }

    pub fn health(&self) -> HealthClient<Channel> {
        HealthClient::new(self.channel.clone())
    }

    /// GetStatus, as the (unauthenticated or admin) caller sees it.
    pub async fn status(&self) -> agentd::pb::GetStatusResponse {
        let request = agentd::pb::GetStatusRequest {};
        let response = self.admin().get_status(request).await.unwrap();
        response.into_inner()
    }

    /// What `grpc.health.v1` says of `service` now.
    pub async fn serving_status(
        &self,
        service: &str,
    ) -> tonic_health::pb::health_check_response::ServingStatus {
        let request = tonic_health::pb::HealthCheckRequest {
            service: service.into(),
        };
        let response = self.health().check(request).await.unwrap();
        response.into_inner().status()
    }

    /// The `/metrics` text.
    pub async fn metrics(&self) -> String {
        let (status, body) = http_get(self.metrics_addr, "/metrics").await;
        assert_eq!(status, 200, "{body}");
        body
    }

    /// The value of one sample line of `/metrics` (`name{labels}`), if present.
    pub async fn metric(&self, sample: &str) -> Option<f64> {
        let text = self.metrics().await;
        text.lines()
            .find_map(|line| line.strip_prefix(sample)?.strip_prefix(' ')?.parse().ok())
    }

    /// Waits until GetStatus calls in flight equal `n`, as the server counts them.
    pub async fn wait_for_in_flight(&self, n: f64) {
        self.wait_for_in_flight_of("agentd.v1.AdminService", "GetStatus", n)
            .await;
    }

    /// Waits until `n` calls of `service`/`method` are in flight.
    pub async fn wait_for_in_flight_of(&self, service: &str, method: &str, n: f64) {
        let sample =
            format!(r#"grpc_server_in_flight{{grpc_service="{service}",grpc_method="{method}"}}"#);
        eventually(|| async { self.metric(&sample).await == Some(n) }).await;
    }
}

/// A request carrying `authorization: Bearer <key>`.
pub fn with_key<T>(message: T, key: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {key}").parse().unwrap());
    request
}

/// Polls `condition` until it holds, failing after 10 s. This waits on state the
/// server exposes; it is not a fixed sleep.
pub async fn eventually<F, Fut>(mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let mut tick = tokio::time::interval(Duration::from_millis(5));
    let waited = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            tick.tick().await;
            if condition().await {
                return;
            }
        }
    })
    .await;
    assert!(waited.is_ok(), "condition not met within 10 s");
}

/// A plain HTTP/1.0 GET (close-delimited, so the body arrives unchunked).
pub async fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut raw = String::new();
    stream.read_to_string(&mut raw).await.unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, body.to_owned())
}

/// A gRPC message frame: flag, big-endian length, payload.
pub fn grpc_frame(payload: &[u8]) -> Bytes {
    let mut frame = vec![0u8];
    frame.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    frame.extend_from_slice(payload);
    frame.into()
}

/// A protobuf message of exactly `len` bytes made of one unknown bytes field
/// (number 15), which a decoder must skip: a valid but large request.
pub fn padded_message(len: usize) -> Vec<u8> {
    assert!(
        (3..=129).contains(&len),
        "keep the length varint to one byte"
    );
    let payload = len - 2;
    let mut message = vec![(15 << 3) | 2, payload as u8];
    message.extend(std::iter::repeat_n(b'x', payload));
    message
}

/// A unary call over a raw HTTP/2 connection whose request body is held back, so
/// that the call stays in flight at the server until `finish` sends it.
pub struct HeldCall {
    body: h2::SendStream<Bytes>,
    response: h2::client::ResponseFuture,
    _connection: JoinHandle<()>,
}

/// The outcome of a raw call: HTTP status, headers, body bytes, trailers.
pub struct RawResponse {
    pub headers: http::HeaderMap,
    pub body: Bytes,
    pub trailers: http::HeaderMap,
}

impl RawResponse {
    /// The call's gRPC status, from trailers or a trailers-only response.
    pub fn status(&self) -> tonic::Status {
        tonic::Status::from_header_map(&self.trailers)
            .or_else(|| tonic::Status::from_header_map(&self.headers))
            .expect("response without grpc-status")
    }
}

impl HeldCall {
    /// Opens `path` with `metadata` and sends the headers only.
    pub async fn open(addr: SocketAddr, path: &str, metadata: &[(&str, &str)]) -> Self {
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (client, connection) = h2::client::handshake(tcp).await.unwrap();
        let connection = tokio::spawn(async move {
            let _ = connection.await;
        });
        let mut client = client.ready().await.unwrap();
        let mut request = http::Request::post(format!("http://{addr}{path}"))
            .header("content-type", "application/grpc")
            .header("te", "trailers");
        for (name, value) in metadata {
            request = request.header(*name, *value);
        }
        let (response, body) = client
            .send_request(request.body(()).unwrap(), false)
            .unwrap();
        Self {
            body,
            response,
            _connection: connection,
        }
    }

    /// Sends `payload` as the one request message and reads the whole response.
    pub async fn finish(mut self, payload: &[u8]) -> RawResponse {
        self.body.send_data(grpc_frame(payload), true).unwrap();
        self.response().await
    }

    /// Reads the whole response without sending anything more.
    pub async fn response(self) -> RawResponse {
        let response = self.response.await.unwrap();
        let (parts, mut body) = response.into_parts();
        let mut bytes = Vec::new();
        while let Some(chunk) = body.data().await {
            let chunk = chunk.unwrap();
            body.flow_control().release_capacity(chunk.len()).unwrap();
            bytes.extend_from_slice(&chunk);
        }
        let trailers = body.trailers().await.unwrap().unwrap_or_default();
        RawResponse {
            headers: parts.headers,
            body: bytes.into(),
            trailers,
        }
    }
}

/// The `agentd serve` binary running on ephemeral ports with its JSON log on a pipe.
pub struct ServerProcess {
    pub child: tokio::process::Child,
    pub grpc_addr: SocketAddr,
    pub log: tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>,
    /// The "listening" log entry.
    pub listening: serde_json::Value,
    data_dir: tempfile::TempDir,
}

/// `agentd` with no AGENTD_*, OPENAI_* or OTEL_* variables inherited from the
/// developer's shell.
pub fn agentd_command() -> tokio::process::Command {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_agentd"));
    for (name, _) in std::env::vars() {
        if name.starts_with("AGENTD")
            || name.starts_with("OPENAI_")
            || name.starts_with("OTEL_")
            || name.starts_with("TOKIO_")
            || name == "RUST_LOG"
        {
            command.env_remove(name);
        }
    }
    command.kill_on_drop(true);
    command
}

impl ServerProcess {
    /// Starts `agentd serve` with extra environment `env` and waits for its
    /// "listening" log line.
    pub async fn start(env: &[(&str, &str)]) -> Self {
        Self::start_in(tempfile::tempdir().unwrap(), env).await
    }

    /// Like [`ServerProcess::start`], with the given data directory.
    pub async fn start_in(data_dir: tempfile::TempDir, env: &[(&str, &str)]) -> Self {
        use tokio::io::AsyncBufReadExt;
        let mut command = agentd_command();
        command
            .arg("serve")
            .env("AGENTD__SERVER__GRPC_ADDR", "127.0.0.1:0")
            .env("AGENTD__SERVER__METRICS_ADDR", "127.0.0.1:0")
            .env("AGENTD__STORAGE__DATA_DIR", data_dir.path())
            // No load balancer to wait for (a test may set its own).
            .env("AGENTD__SERVER__DRAIN_DELAY", "0s")
            .envs(env.iter().copied())
            .stdout(std::process::Stdio::piped());
        let mut child = command.spawn().unwrap();
        let mut log = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
        let listening = loop {
            let line = log
                .next_line()
                .await
                .unwrap()
                .expect("exited before listening");
            let entry: serde_json::Value = serde_json::from_str(&line).expect("log line is JSON");
            if entry["fields"]["message"] == "listening" {
                break entry;
            }
        };
        let grpc_addr = listening["fields"]["grpc_addr"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        Self {
            child,
            grpc_addr,
            log,
            listening,
            data_dir,
        }
    }

    /// The next log entry whose message is `message`.
    pub async fn log_entry(&mut self, message: &str) -> serde_json::Value {
        loop {
            let line = self.log.next_line().await.unwrap().expect("log ended");
            let entry: serde_json::Value = serde_json::from_str(&line).unwrap();
            if entry["fields"]["message"] == message {
                return entry;
            }
        }
    }

    async fn channel(&self) -> Channel {
        Channel::from_shared(format!("http://{}", self.grpc_addr))
            .unwrap()
            .connect()
            .await
            .unwrap()
    }

    pub async fn admin(&self) -> AdminServiceClient<Channel> {
        AdminServiceClient::new(self.channel().await)
    }

    pub async fn agent(&self) -> AgentServiceClient<Channel> {
        AgentServiceClient::new(self.channel().await)
    }

    /// Kills the process with SIGKILL and returns its data directory.
    pub async fn kill(mut self) -> tempfile::TempDir {
        self.child.kill().await.unwrap();
        self.data_dir
    }

    /// Sends SIGTERM and returns the exit code.
    pub async fn terminate(mut self) -> Option<i32> {
        let pid = self.child.id().unwrap().to_string();
        let killed = tokio::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .await
            .unwrap();
        assert!(killed.success());
        let status = tokio::time::timeout(Duration::from_secs(20), self.child.wait())
            .await
            .expect("agentd did not exit after SIGTERM")
            .unwrap();
        status.code()
    }
}
