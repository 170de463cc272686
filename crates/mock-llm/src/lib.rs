//! An OpenAI-compatible mock LLM server, for agentd's tests (scripted per test,
//! in-process) and as the standalone `agentd-mock-llm` binary (benchmarks, local
//! use). It is test support: agentd's production library does not contain it.
//!
//! It speaks the real wire format of `POST /v1/chat/completions`: with
//! `"stream": true`, `data: {chat.completion.chunk}` server-sent events with
//! content deltas or tool-call deltas (index, id, name, argument fragments), a
//! usage chunk when `stream_options.include_usage` is set, and `data: [DONE]`;
//! otherwise one `chat.completion` object. `POST /v1/embeddings` answers with
//! deterministic vectors. It injects faults (HTTP errors with `retry-after` and
//! `retry-after-ms`, connections dropped before any response, refused
//! connections, delays, stalls, connection resets, malformed chunks, a missing
//! `[DONE]`), records every request, and notes when a client drops a stream
//! before its end.
//!
//! Tests never wait on a timing window: a scripted reply can be held at a
//! [`Gate`] (before its headers, or after some chunks) until the test releases
//! it, the test can wait until a reply has reached its gate,
//! [`MockLlm::wait_for_requests`] resolves once requests have arrived, and
//! [`MockLlm::wait_for_stream_end`] reports when a client dropped a stream.

pub mod embeddings;
mod gate;
mod listener;
mod script;
mod stream;
pub mod wire;

pub use gate::{Gate, Hold};
use listener::{DropConnection, Listening};
use script::default_reply;
pub use script::{Behaviour, Completion, Fault, MockToolCall, Reply, ScriptedError};
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
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use wire::ChunkHeader;

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
    /// Chat requests arrived so far (recorded or not), for waiting on them.
    arrived: watch::Sender<usize>,
    stream_ends: Mutex<Vec<StreamEnd>>,
    changed: Notify,
    embedding_requests: Mutex<Vec<RecordedRequest>>,
    embedding_failures: Mutex<VecDeque<u16>>,
    counters: Counters,
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
    router: Router,
    /// The socket being served; `None` while connections are refused. An async
    /// lock: closing and re-binding are awaited, and must not interleave.
    listening: tokio::sync::Mutex<Option<Listening>>,
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
            .route("/mock/moderate", post(moderate))
            .with_state(shared.clone());
        let listening = Listening::spawn(listener, router.clone(), &stop);
        Ok(Self {
            addr,
            shared,
            router,
            listening: tokio::sync::Mutex::new(Some(listening)),
            stop,
        })
    }

    /// The URL of its moderation endpoint (`POST`, agentd's guardrail
    /// webhook contract): it flags nothing.
    pub fn moderation_url(&self) -> String {
        format!("http://{}/mock/moderate", self.addr)
    }

    /// Closes the listening socket: from its return until
    /// [`MockLlm::accept_connections`], connecting to the port is refused (as an
    /// upstream that is down). Idle keep-alive connections are closed too, so
    /// a pooled client cannot go around the refusal; replies under way finish.
    pub async fn refuse_connections(&self) {
        if let Some(listening) = self.listening.lock().await.take() {
            listening.close().await;
        }
    }

    /// Serves again on the same address after [`MockLlm::refuse_connections`]
    /// (nothing to do if serving). Fails if the port was taken in between, which
    /// on an ephemeral loopback port only another process could do.
    pub async fn accept_connections(&self) -> std::io::Result<()> {
        let mut listening = self.listening.lock().await;
        if listening.is_none() {
            let listener = TcpListener::bind(self.addr).await?;
            *listening = Some(Listening::spawn(listener, self.router.clone(), &self.stop));
        }
        Ok(())
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

    /// Waits until `n` chat requests have arrived in all (counted before their
    /// reply is chosen, so a request held at a gate or dropped counts).
    pub async fn wait_for_requests(&self, n: usize) {
        let mut arrived = self.shared.arrived.subscribe();
        // The sender lives in `self.shared`, so the channel cannot close while we wait.
        let _ = arrived.wait_for(|count| *count >= n).await;
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
    shared.arrived.send_modify(|count| *count += 1);
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
            return scripted_error(ScriptedError {
                status,
                retry_after,
                retry_after_ms: None,
                message,
            });
        }
        Reply::Error(error) => return scripted_error(error),
        Reply::Drop => {
            let mut response = StatusCode::INTERNAL_SERVER_ERROR.into_response();
            response.extensions_mut().insert(DropConnection);
            return response;
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

/// A scripted error with its retry headers.
fn scripted_error(error: ScriptedError) -> Response {
    let mut response = http_error(
        error.status,
        error.retry_after,
        &error.message,
        "server_error",
    );
    if let Some(millis) = error.retry_after_ms {
        response
            .headers_mut()
            .insert("retry-after-ms", header::HeaderValue::from(millis));
    }
    response
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

/// A guardrail webhook that lets every text through: for benchmarks of a
/// buffered turn (the webhook's own time is then only the HTTP round trip).
async fn moderate() -> axum::Json<serde_json::Value> {
    axum::Json(serde_json::json!({"flagged": false, "score": 0.0}))
}
