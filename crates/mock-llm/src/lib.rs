//! An OpenAI-compatible mock LLM server, for agentd's tests (scripted per test,
//! in-process) and as the standalone `agentd-mock-llm` binary (benchmarks, local
//! use). It is test support: agentd's production library does not contain it.
//!
//! It speaks the real wire format of `POST /v1/chat/completions`: with
//! `"stream": true`, `data: {chat.completion.chunk}` server-sent events with
//! content deltas or tool-call deltas (index, id, name, argument fragments), a
//! usage chunk when `stream_options.include_usage` is set, and `data: [DONE]`;
//! otherwise one `chat.completion` object. `POST /v1/embeddings` answers with
//! deterministic vectors. It injects faults (HTTP errors, delays,
//! stalls, connection resets, malformed chunks, a missing `[DONE]`), records every
//! request, and notes when a client drops a stream before its end.
//!
//! Tests never wait on a timing window: a scripted reply can be held at a
//! [`Gate`] (before its headers, or after some chunks) until the test releases
//! it, the test can wait until a reply has reached its gate, and
//! [`MockLlm::wait_for_stream_end`] reports when a client dropped a stream.

pub mod embeddings;
mod gate;
mod stream;
pub mod wire;

pub use gate::{Gate, Hold};
use stream::stream_response;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Version, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::Bytes;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use wire::ChunkHeader;

/// A fault injected into a reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// After this many chunks, send nothing more and never end.
    StallAfter(usize),
    /// After this many chunks, abort the connection.
    ResetAfter(usize),
    /// After this many chunks, send a chunk that is not valid JSON.
    MalformedAfter(usize),
    /// End the stream after the last chunk without `data: [DONE]`.
    NoDone,
}

/// One tool call the mock makes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MockToolCall {
    /// Call id, e.g. `call_1`.
    pub id: String,
    /// Tool name.
    pub name: String,
    /// Arguments JSON, streamed in `fragments` pieces.
    pub arguments: String,
    /// How many argument fragments to split `arguments` into (at least 1).
    pub fragments: usize,
}

/// A completion the mock sends.
#[derive(Clone, Debug, Default)]
pub struct Completion {
    /// Answer text, one piece per content chunk.
    pub text: Vec<String>,
    /// Tool calls, streamed after the text.
    pub tool_calls: Vec<MockToolCall>,
    /// Delay before the response headers.
    pub first_byte_delay: Duration,
    /// Delay after the headers before the first chunk.
    pub first_token_delay: Duration,
    /// Delay between chunks.
    pub token_delay: Duration,
    /// (prompt, completion) tokens to report; estimated from the request when None.
    pub usage: Option<(u32, u32)>,
    /// A fault to inject.
    pub fault: Option<Fault>,
    /// A gate to wait at.
    pub hold: Option<Hold>,
}

impl Completion {
    /// An answer of the given text pieces.
    pub fn text<S: Into<String>>(pieces: impl IntoIterator<Item = S>) -> Self {
        Self {
            text: pieces.into_iter().map(Into::into).collect(),
            ..Self::default()
        }
    }

    /// A reply that calls the given tools.
    pub fn tool_calls(calls: impl IntoIterator<Item = MockToolCall>) -> Self {
        Self {
            tool_calls: calls.into_iter().collect(),
            ..Self::default()
        }
    }

    /// This completion, held at `hold`.
    pub fn held(self, hold: Hold) -> Self {
        Self {
            hold: Some(hold),
            ..self
        }
    }
}

/// What the mock answers to one request.
#[derive(Clone, Debug)]
pub enum Reply {
    /// A completion, streamed or not as the request asks.
    Completion(Completion),
    /// An HTTP error with an OpenAI-style body.
    HttpError {
        /// HTTP status, e.g. 500, 429, 401.
        status: u16,
        /// Seconds for a `retry-after` header.
        retry_after: Option<u64>,
        /// Error message.
        message: String,
    },
}

/// How the mock answers when no scripted reply is queued.
#[derive(Clone, Debug)]
pub struct Behaviour {
    /// Content chunks per answer.
    pub tokens: usize,
    /// Delay before the response headers.
    pub first_byte_delay: Duration,
    /// Delay before the first chunk.
    pub first_token_delay: Duration,
    /// Delay between chunks.
    pub token_delay: Duration,
    /// When the request offers this tool and the conversation does not end with a
    /// tool result, call it with these arguments instead of answering.
    pub tool_call: Option<(String, String)>,
    /// Reply to every request with this HTTP status instead (e.g. 500, 429, 401).
    pub http_error: Option<u16>,
    /// A fault to inject into every answer.
    pub fault: Option<Fault>,
    /// When set, requests must carry `authorization: Bearer <this>` or get 401.
    pub api_key: Option<String>,
}

impl Default for Behaviour {
    fn default() -> Self {
        Self {
            tokens: 32,
            first_byte_delay: Duration::ZERO,
            first_token_delay: Duration::ZERO,
            token_delay: Duration::ZERO,
            tool_call: None,
            http_error: None,
            fault: None,
            api_key: None,
        }
    }
}

/// A request the mock received.
#[derive(Clone, Debug)]
pub struct RecordedRequest {
    /// The HTTP version it came over.
    pub version: Version,
    /// The JSON body.
    pub body: Value,
    /// The `authorization` header, if any.
    pub authorization: Option<String>,
    /// When it arrived.
    pub received_at: Instant,
}

/// How a streamed response ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamEnd {
    /// Every chunk was sent.
    Completed(Instant),
    /// The client went away (or a fault cut it) before the end.
    Dropped(Instant),
}

#[derive(Debug, Default)]
struct Shared {
    script: Mutex<VecDeque<Reply>>,
    behaviour: Mutex<Behaviour>,
    requests: Mutex<Vec<RecordedRequest>>,
    stream_ends: Mutex<Vec<StreamEnd>>,
    changed: Notify,
    embedding_requests: Mutex<Vec<RecordedRequest>>,
    embedding_failures: Mutex<VecDeque<u16>>,
    counters: Counters,
}

/// Serves HTTP/1.1 and HTTP/2 (also cleartext, by prior knowledge) until `stop`,
/// then lets open connections finish.
async fn serve(listener: TcpListener, router: Router, stop: CancellationToken) {
    let mut http = auto::Builder::new(TokioExecutor::new());
    // Like a provider's edge, take every stream a client multiplexes on one
    // connection; hyper's default of 200 would hold the rest back in the client.
    http.http2().max_concurrent_streams(None);
    let connections = GracefulShutdown::new();
    loop {
        let tcp = tokio::select! {
            () = stop.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((tcp, _)) => tcp,
                Err(err) => {
                    // Out of file descriptors, most likely: wait, do not spin.
                    tracing::warn!(error = %err, "mock LLM cannot accept");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
        };
        // Chunks are small writes: without TCP_NODELAY, Nagle's algorithm meets the
        // client's delayed ACK and holds some of them for ~40 ms.
        if let Err(err) = tcp.set_nodelay(true) {
            tracing::warn!(error = %err, "cannot set TCP_NODELAY");
        }
        let service = TowerToHyperService::new(router.clone());
        let connection = http
            .serve_connection(TokioIo::new(tcp), service)
            .into_owned();
        let connection = connections.watch(connection);
        tokio::spawn(async move {
            if let Err(err) = connection.await {
                tracing::debug!(error = %err, "mock LLM connection ended");
            }
        });
    }
    connections.shutdown().await;
}

/// Running totals, served at `GET /mock/stats` for benchmarks (the recorded
/// requests and stream ends stop growing at [`MAX_RECORDS`]; these do not).
#[derive(Debug, Default)]
struct Counters {
    chat_requests: AtomicU64,
    streams_started: AtomicU64,
    streams_completed: AtomicU64,
    streams_dropped: AtomicU64,
    /// Wall-clock time (Unix µs) of the last stream end, for the cancellation
    /// benchmark, which compares it with when its client dropped the stream.
    last_stream_end_unix_us: AtomicU64,
}

/// Requests and stream ends kept for inspection; later ones are only counted,
/// so a long benchmark does not grow the mock without bound.
pub const MAX_RECORDS: usize = 10_000;

impl Shared {
    fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
        // A panic while holding these locks cannot leave them inconsistent (each
        // critical section is a single push, pop or clone), so poisoning is ignored.
        mutex
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// A running mock server; stops when dropped.
#[derive(Debug)]
pub struct MockLlm {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: CancellationToken,
}

impl Drop for MockLlm {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl MockLlm {
    /// Starts a mock on `addr` (port 0 for an ephemeral port) with `behaviour`.
    pub async fn start(addr: SocketAddr, behaviour: Behaviour) -> std::io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            behaviour: Mutex::new(behaviour),
            ..Shared::default()
        });
        let stop = CancellationToken::new();
        let router = Router::new()
            .route("/v1/chat/completions", post(chat_completions))
            .route("/v1/embeddings", post(embeddings::embeddings))
            .route("/mock/stats", get(stats))
            .with_state(shared.clone());
        tokio::spawn(serve(listener, router, stop.clone()));
        Ok(Self { addr, shared, stop })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The OpenAI base URL of this mock, e.g. `http://127.0.0.1:1234/v1`.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// Queues replies, answered in order before the default behaviour resumes.
    pub fn script(&self, replies: impl IntoIterator<Item = Reply>) {
        Shared::lock(&self.shared.script).extend(replies);
    }

    /// Replaces the default behaviour.
    pub fn set_behaviour(&self, behaviour: Behaviour) {
        *Shared::lock(&self.shared.behaviour) = behaviour;
    }

    /// Every request received so far.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        Shared::lock(&self.shared.requests).clone()
    }

    /// Every embeddings request received, in order.
    pub fn embedding_requests(&self) -> Vec<RecordedRequest> {
        Shared::lock(&self.shared.embedding_requests).clone()
    }

    /// Answers the next embeddings requests with these HTTP statuses, in order.
    pub fn fail_embeddings(&self, statuses: impl IntoIterator<Item = u16>) {
        Shared::lock(&self.shared.embedding_failures).extend(statuses);
    }

    /// How each finished stream ended, in order.
    pub fn stream_ends(&self) -> Vec<StreamEnd> {
        Shared::lock(&self.shared.stream_ends).clone()
    }

    /// Waits until `n` streams have ended and returns how the n-th did.
    pub async fn wait_for_stream_end(&self, n: usize) -> StreamEnd {
        loop {
            let changed = self.shared.changed.notified();
            if let Some(end) = self.stream_ends().get(n - 1) {
                return *end;
            }
            changed.await;
        }
    }
}

/// Sleeps for `delay`; no time at all for zero. (`tokio::time::sleep` of zero
/// still waits for the next timer tick, about a millisecond, which would add ~40 ms
/// to a 32-chunk answer and hide agentd's own costs in benchmarks.)
async fn pause(delay: Duration) {
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
}

fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

/// A rough token estimate (4 characters a token) of the request's messages.
fn estimate_prompt_tokens(body: &Value) -> u32 {
    let chars: usize = body["messages"]
        .as_array()
        .map(|messages| messages.iter().map(|m| m.to_string().len()).sum())
        .unwrap_or_default();
    u32::try_from(chars / 4 + 1).unwrap_or(u32::MAX)
}

const WORDS: [&str; 8] = [
    "The ", "quick ", "brown ", "fox ", "jumps ", "over ", "lazy ", "dogs. ",
];

/// The reply the default behaviour gives to `body`.
fn default_reply(behaviour: &Behaviour, body: &Value, serial: usize) -> Reply {
    if let Some(status) = behaviour.http_error {
        return Reply::HttpError {
            status,
            retry_after: (status == 429).then_some(1),
            message: format!("mock error {status}"),
        };
    }
    let mut completion = Completion {
        first_byte_delay: behaviour.first_byte_delay,
        first_token_delay: behaviour.first_token_delay,
        token_delay: behaviour.token_delay,
        fault: behaviour.fault,
        ..Completion::default()
    };
    let last_is_tool_result = body["messages"]
        .as_array()
        .and_then(|messages| messages.last())
        .is_some_and(|m| m["role"] == "tool");
    let offered = |name: &str| {
        body["tools"]
            .as_array()
            .is_some_and(|tools| tools.iter().any(|t| t["function"]["name"] == name))
    };
    match &behaviour.tool_call {
        Some((name, arguments)) if !last_is_tool_result && offered(name) => {
            completion.tool_calls.push(MockToolCall {
                id: format!("call_mock_{serial}"),
                name: name.clone(),
                arguments: arguments.clone(),
                fragments: 3,
            });
        }
        _ => {
            completion.text = (0..behaviour.tokens)
                .map(|i| WORDS[i % WORDS.len()].to_owned())
                .collect();
        }
    }
    Reply::Completion(completion)
}

/// The JSON body and the `authorization` header of a request.
fn parse_request(
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<(Value, Option<String>), Box<Response>> {
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    serde_json::from_slice::<Value>(body)
        .map(|body| (body, authorization))
        .map_err(|_| {
            Box::new(http_error(
                400,
                None,
                "request body is not valid JSON",
                "invalid_request_error",
            ))
        })
}

/// Records a request (the first [`MAX_RECORDS`] only).
fn record(
    requests: &Mutex<Vec<RecordedRequest>>,
    version: Version,
    body: &Value,
    authorization: &Option<String>,
) {
    let mut requests = Shared::lock(requests);
    if requests.len() < MAX_RECORDS {
        requests.push(RecordedRequest {
            version,
            body: body.clone(),
            authorization: authorization.clone(),
            received_at: Instant::now(),
        });
    }
}

/// `GET /mock/stats`: chat requests received, streams started, completed,
/// dropped by the client (or cut by a fault), and open now.
async fn stats(State(shared): State<Arc<Shared>>) -> axum::Json<Value> {
    let c = &shared.counters;
    let started = c.streams_started.load(Ordering::Relaxed);
    // Acquire: the end times stored before these counts are visible too.
    let completed = c.streams_completed.load(Ordering::Acquire);
    let dropped = c.streams_dropped.load(Ordering::Acquire);
    axum::Json(serde_json::json!({
        "chat_requests": c.chat_requests.load(Ordering::Relaxed),
        "streams_started": started,
        "streams_completed": completed,
        "streams_dropped": dropped,
        "streams_open": started.saturating_sub(completed + dropped),
        "last_stream_end_unix_us": c.last_stream_end_unix_us.load(Ordering::Relaxed),
    }))
}

/// A 401 unless the request carries the key the behaviour requires.
fn check_key(behaviour: &Behaviour, authorization: Option<&str>) -> Result<(), Box<Response>> {
    match &behaviour.api_key {
        Some(key) if authorization != Some(&format!("Bearer {key}")) => Err(Box::new(http_error(
            401,
            None,
            "Incorrect API key provided",
            "invalid_request_error",
        ))),
        _ => Ok(()),
    }
}

async fn chat_completions(
    State(shared): State<Arc<Shared>>,
    version: Version,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (body, authorization) = match parse_request(&headers, &body) {
        Ok(parsed) => parsed,
        Err(response) => return *response,
    };
    record(&shared.requests, version, &body, &authorization);
    let serial = usize::try_from(
        shared
            .counters
            .chat_requests
            .fetch_add(1, Ordering::Relaxed)
            + 1,
    )
    .unwrap_or(usize::MAX);
    if body["model"].as_str().is_none() || body["messages"].as_array().is_none() {
        return http_error(
            400,
            None,
            "`model` and `messages` are required",
            "invalid_request_error",
        );
    }
    let behaviour = Shared::lock(&shared.behaviour).clone();
    if let Err(response) = check_key(&behaviour, authorization.as_deref()) {
        return *response;
    }
    let scripted = Shared::lock(&shared.script).pop_front();
    let reply = scripted.unwrap_or_else(|| default_reply(&behaviour, &body, serial));
    let completion = match reply {
        Reply::HttpError {
            status,
            retry_after,
            message,
        } => {
            return http_error(status, retry_after, &message, "server_error");
        }
        Reply::Completion(completion) => completion,
    };
    pause(completion.first_byte_delay).await;
    if let Some(Hold {
        after_events: None,
        gate,
    }) = &completion.hold
    {
        gate.pass().await;
    }
    let header = ChunkHeader {
        id: format!("chatcmpl-mock-{serial}"),
        model: body["model"].as_str().unwrap_or_default().to_owned(),
        created: now_unix(),
    };
    let prompt_tokens = estimate_prompt_tokens(&body);
    if body["stream"].as_bool() == Some(true) {
        let include_usage = body["stream_options"]["include_usage"].as_bool() == Some(true);
        stream_response(
            shared,
            header,
            completion,
            include_usage.then_some(prompt_tokens),
        )
    } else {
        let (prompt, completion_tokens) = completion
            .usage
            .unwrap_or((prompt_tokens, completion.text.len() as u32));
        let calls: Vec<_> = completion
            .tool_calls
            .iter()
            .map(|c| (c.id.clone(), c.name.clone(), c.arguments.clone()))
            .collect();
        let finish = if calls.is_empty() {
            "stop"
        } else {
            "tool_calls"
        };
        let json = header.completion(
            &completion.text.concat(),
            &calls,
            finish,
            prompt,
            completion_tokens,
        );
        axum::Json(json).into_response()
    }
}

fn http_error(status: u16, retry_after: Option<u64>, message: &str, kind: &str) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = (status, axum::Json(wire::error_body(message, kind, None))).into_response();
    if let Some(seconds) = retry_after
        && let Ok(value) = seconds.to_string().parse()
    {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    response
}
