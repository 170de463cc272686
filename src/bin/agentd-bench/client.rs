//! One request of each kind the benchmarks send, timed the same way: through
//! agentd (`Chat` streamed, `Ask` unary) and over the OpenAI HTTP API (to the
//! mock upstream directly, or to a peer gateway such as LiteLLM).
//!
//! Time to first token runs from just before the request is sent to the first
//! `delta` event (agentd) or the first SSE chunk with non-empty
//! `choices[0].delta.content` (HTTP); total runs to the end of the gRPC stream
//! after `completed`, or to `data: [DONE]` and the end of the body. A unary call's
//! first token is its whole answer. With `cancel_after` set, a stream is dropped
//! (the client's cancel) after that many text pieces.

use std::time::{Duration, Instant};

use agentd::pb::agent_service_client::AgentServiceClient;
use agentd::pb::chat_response::Event;
use agentd::pb::turn_options::ModelChoice;
use agentd::pb::{AskRequest, ChatRequest, TurnOptions};
use anyhow::Context;
use futures::StreamExt;
use tonic::transport::Channel;

/// The user message of every request, on every path, unless `--message-file`
/// names another.
pub const MESSAGE: &str = "Say something.";

/// The message every request sends: set once before the load starts.
static CHOSEN: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// Sends `text` instead of [`MESSAGE`] from now on (the first call wins).
pub fn choose_message(text: String) {
    let _ = CHOSEN.set(text);
}

/// The message every request sends.
pub fn message() -> &'static str {
    CHOSEN.get().map_or(MESSAGE, String::as_str)
}

/// One successful request's timings.
#[derive(Clone, Copy, Debug)]
pub struct Sample {
    /// To the first text.
    pub ttft: Duration,
    /// To the end (or to the cancel).
    pub total: Duration,
}

/// Why a request failed, as a label for the error table: the gRPC code name,
/// `http NNN`, `timeout`, `connect` or `protocol`.
#[derive(Clone, Debug)]
pub struct Failure {
    /// The label.
    pub label: String,
    /// The whole error, for the first one reported.
    pub detail: String,
}

impl Failure {
    fn new(label: impl Into<String>, detail: impl std::fmt::Display) -> Self {
        Self {
            label: label.into(),
            detail: detail.to_string(),
        }
    }

    fn protocol(detail: impl std::fmt::Display) -> Self {
        Self::new("protocol", detail)
    }
}

impl From<tonic::Status> for Failure {
    fn from(status: tonic::Status) -> Self {
        Self::new(format!("{:?}", status.code()), status.message())
    }
}

impl From<reqwest::Error> for Failure {
    fn from(error: reqwest::Error) -> Self {
        let label = match error.status() {
            Some(status) => format!("http {}", status.as_u16()),
            None if error.is_timeout() => "timeout".to_owned(),
            None if error.is_connect() => "connect".to_owned(),
            None => "http transport".to_owned(),
        };
        Self::new(label, format!("{error:#}"))
    }
}

fn with_key<T>(message: T, api_key: Option<&str>) -> Result<tonic::Request<T>, Failure> {
    let mut request = tonic::Request::new(message);
    if let Some(key) = api_key {
        let value = format!("Bearer {key}")
            .parse()
            .map_err(|_| Failure::new("client", "the API key is not a valid header value"))?;
        request.metadata_mut().insert("authorization", value);
    }
    Ok(request)
}

/// A streamed `AgentService.Chat`.
/// The turn's options: the server's default model, or `model` (a model or
/// route name).
fn options(model: Option<&str>) -> TurnOptions {
    TurnOptions {
        model_choice: model.map(|name| ModelChoice::Model(name.to_owned())),
        ..TurnOptions::default()
    }
}

pub async fn agentd_chat(
    agent: &mut AgentServiceClient<Channel>,
    api_key: Option<&str>,
    cancel_after: Option<u32>,
    model: Option<&str>,
) -> Result<Sample, Failure> {
    let request = with_key(
        ChatRequest {
            message: message().into(),
            session_id: String::new(),
            // No tools named: the server's default tools, as a plain client gets.
            options: Some(options(model)),
        },
        api_key,
    )?;
    let started = Instant::now();
    let mut stream = agent.chat(request).await?.into_inner();
    let (mut ttft, mut completed, mut deltas) = (None, false, 0);
    while let Some(response) = stream.message().await? {
        match response.event {
            Some(Event::Delta(_)) => {
                ttft.get_or_insert_with(|| started.elapsed());
                deltas += 1;
                if cancel_after.is_some_and(|n| deltas >= n) {
                    drop(stream);
                    return Ok(Sample {
                        ttft: ttft.unwrap_or_default(),
                        total: started.elapsed(),
                    });
                }
            }
            Some(Event::Completed(_)) => completed = true,
            _ => {}
        }
    }
    let total = started.elapsed();
    match (ttft, completed) {
        (Some(ttft), true) => Ok(Sample { ttft, total }),
        (None, _) => Err(Failure::protocol("agentd's stream had no delta")),
        (Some(_), false) => Err(Failure::protocol("agentd's stream ended without completed")),
    }
}

/// A unary `AgentService.Ask`.
pub async fn agentd_ask(
    agent: &mut AgentServiceClient<Channel>,
    api_key: Option<&str>,
    model: Option<&str>,
) -> Result<Sample, Failure> {
    let request = with_key(
        AskRequest {
            message: message().into(),
            session_id: String::new(),
            options: Some(options(model)),
        },
        api_key,
    )?;
    let started = Instant::now();
    let reply = agent.ask(request).await?.into_inner();
    let total = started.elapsed();
    match reply.outcome {
        Some(outcome) if !outcome.answer.is_empty() => Ok(Sample { ttft: total, total }),
        _ => Err(Failure::protocol("Ask returned no answer")),
    }
}

/// `POST {endpoint}` (an OpenAI chat-completions URL), streamed or not.
pub async fn http_chat(
    http: &reqwest::Client,
    endpoint: &str,
    model: &str,
    api_key: Option<&str>,
    stream: bool,
    cancel_after: Option<u32>,
) -> Result<Sample, Failure> {
    let mut body = serde_json::json!({
        "model": model,
        "stream": stream,
        "messages": [{"role": "user", "content": message()}],
    });
    if stream {
        body["stream_options"] = serde_json::json!({"include_usage": true});
    }
    let mut request = http.post(endpoint).json(&body);
    if let Some(key) = api_key {
        request = request.bearer_auth(key);
    }
    let started = Instant::now();
    let response = request.send().await?.error_for_status()?;
    if !stream {
        let reply: serde_json::Value = response.json().await?;
        let total = started.elapsed();
        return match reply["choices"][0]["message"]["content"].as_str() {
            Some(text) if !text.is_empty() => Ok(Sample { ttft: total, total }),
            _ => Err(Failure::protocol("the reply had no content")),
        };
    }
    let mut bytes = response.bytes_stream();
    // Bytes, not text: a network chunk may end inside a multi-byte character.
    let (mut buffer, mut ttft, mut done, mut pieces) = (Vec::new(), None, None, 0);
    while let Some(chunk) = bytes.next().await {
        buffer.extend_from_slice(&chunk?);
        while let Some(newline) = buffer.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = buffer.drain(..=newline).collect();
            let line = std::str::from_utf8(&line)
                .map_err(Failure::protocol)?
                .trim_end_matches(['\n', '\r']);
            let Some(data) = line.strip_prefix("data:").map(str::trim) else {
                continue;
            };
            if data == "[DONE]" {
                done.get_or_insert_with(|| started.elapsed());
                continue;
            }
            if done.is_some() {
                continue;
            }
            let chunk: serde_json::Value = serde_json::from_str(data)
                .with_context(|| format!("a chunk that is not JSON: {data}"))
                .map_err(Failure::protocol)?;
            let content = &chunk["choices"][0]["delta"]["content"];
            if content.as_str().is_some_and(|text| !text.is_empty()) {
                ttft.get_or_insert_with(|| started.elapsed());
                pieces += 1;
                if cancel_after.is_some_and(|n| pieces >= n) {
                    drop(bytes);
                    return Ok(Sample {
                        ttft: ttft.unwrap_or_default(),
                        total: started.elapsed(),
                    });
                }
            }
        }
    }
    // The body is read to its end even after `[DONE]`, so the connection goes back
    // to the pool for the next request.
    match (ttft, done) {
        (Some(ttft), Some(_)) => Ok(Sample {
            ttft,
            total: started.elapsed(),
        }),
        (None, _) => Err(Failure::protocol("the stream had no content")),
        (Some(_), None) => Err(Failure::protocol("the stream ended without [DONE]")),
    }
}
