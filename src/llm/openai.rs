//! The OpenAI-compatible provider: any server that speaks `POST /chat/completions`
//! (OpenAI, Azure OpenAI, vLLM, Ollama, llama.cpp, another gateway).
//!
//! Requests and stream chunks are async-openai's wire types. The HTTP transport is
//! reqwest driven directly rather than async-openai's `create_stream`: on native
//! targets that function pumps the SSE stream from a detached task into an
//! unbounded channel, so dropping the stream would not close the upstream
//! connection until the upstream's next event (never, if it stalls), and it cannot
//! tell `[DONE]` from a cut connection. Here the response body lives inside the
//! returned stream: dropping the stream aborts the request at once. async-openai's
//! built-in retries are avoided too; retry policy belongs to the router.
//!
//! The idle timeout runs on the injected clock rather than as reqwest's read
//! timeout, so tests can pass it by advancing the clock. It bounds the whole
//! `send` (connecting, sending the request, waiting for the response headers;
//! request bodies are kilobytes), then the wait for each next chunk.

use std::collections::BTreeMap;
use std::time::Duration;

use async_openai::types::chat::{
    ChatCompletionMessageToolCall, ChatCompletionMessageToolCalls,
    ChatCompletionRequestAssistantMessage, ChatCompletionRequestAssistantMessageContent,
    ChatCompletionRequestMessage, ChatCompletionRequestSystemMessage,
    ChatCompletionRequestSystemMessageContent, ChatCompletionRequestToolMessage,
    ChatCompletionRequestToolMessageContent, ChatCompletionRequestUserMessage,
    ChatCompletionRequestUserMessageContent, ChatCompletionStreamOptions, ChatCompletionTool,
    ChatCompletionTools, CreateChatCompletionRequest, CreateChatCompletionStreamResponse,
    FinishReason as WireFinishReason, FunctionCall, FunctionObject,
};
use eventsource_stream::Eventsource;
use futures::StreamExt;

use super::{
    CallContext, ChatMessage, FinishReason, LlmError, LlmEvent, LlmProvider, LlmRequest, LlmStream,
    ToolCall, Usage,
};
use crate::clock::Clock;
use crate::config::HttpVersion;
use crate::config::Secret;

/// Most bytes of an error body kept for the error message.
const ERROR_BODY_LIMIT: usize = 8 * 1024;

/// How to reach one OpenAI-compatible server.
#[derive(Clone, Debug)]
pub struct OpenAiSettings {
    /// Configured provider name.
    pub name: String,
    /// Base URL including the version path, e.g. `https://api.openai.com/v1`.
    pub base_url: String,
    /// Bearer token; None for keyless local servers.
    pub api_key: Option<Secret>,
    /// Limit on establishing a connection.
    pub connect_timeout: Duration,
    /// Limit on waiting for any next bytes: the response headers, then each chunk.
    pub idle_timeout: Duration,
    /// Idle connections kept per host.
    pub pool_max_idle_per_host: usize,
    /// How long an idle connection is kept.
    pub pool_idle_timeout: Duration,
    /// The HTTP version spoken.
    pub http_version: HttpVersion,
    /// The clock the idle timeout runs on.
    pub clock: Clock,
}

/// A provider for one OpenAI-compatible server.
#[derive(Debug)]
pub struct OpenAiProvider {
    name: String,
    endpoint: String,
    api_key: Option<Secret>,
    idle: IdleTimeout,
    http: reqwest::Client,
}

/// The limit on waiting for the next bytes of a response.
#[derive(Clone, Debug)]
struct IdleTimeout {
    limit: Duration,
    clock: Clock,
}

impl IdleTimeout {
    /// `future`, failed with [`LlmError::Timeout`] if it takes longer than the limit.
    async fn bound<T>(&self, future: impl std::future::Future<Output = T>) -> Result<T, LlmError> {
        self.clock
            .timeout(self.limit, future)
            .await
            .map_err(|_| LlmError::Timeout(self.limit))
    }
}

impl OpenAiProvider {
    /// A provider with its own connection pool.
    pub fn new(settings: OpenAiSettings) -> Result<Self, LlmError> {
        let http = reqwest::Client::builder()
            .connect_timeout(settings.connect_timeout)
            .pool_max_idle_per_host(settings.pool_max_idle_per_host)
            .pool_idle_timeout(settings.pool_idle_timeout)
            .tcp_nodelay(true)
            .user_agent(concat!("agentd/", env!("CARGO_PKG_VERSION")));
        let http = match settings.http_version {
            HttpVersion::Auto => http,
            HttpVersion::Http1 => http.http1_only(),
            HttpVersion::Http2 => http.http2_prior_knowledge(),
        };
        let http = http
            .build()
            .map_err(|err| LlmError::Connection(format!("cannot build the HTTP client: {err}")))?;
        Ok(Self {
            endpoint: format!(
                "{}/chat/completions",
                settings.base_url.trim_end_matches('/')
            ),
            name: settings.name,
            api_key: settings.api_key,
            idle: IdleTimeout {
                limit: settings.idle_timeout,
                clock: settings.clock,
            },
            http,
        })
    }
}

#[async_trait::async_trait]
impl LlmProvider for OpenAiProvider {
    fn name(&self) -> &str {
        &self.name
    }

    async fn stream_chat(
        &self,
        _call: &CallContext,
        request: LlmRequest,
    ) -> Result<LlmStream, LlmError> {
        // The body stays allocated until the response headers arrive (the client
        // keeps it to resend on a redirect), so it is sized to fit.
        let mut body = serde_json::to_vec(&wire_request(request))
            .map_err(|err| LlmError::Protocol(format!("cannot encode the request: {err}")))?;
        body.shrink_to_fit();
        let mut call = self
            .http
            .post(&self.endpoint)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body);
        if let Some(key) = &self.api_key {
            call = call.bearer_auth(key.expose());
        }
        let response = self
            .idle
            .bound(call.send())
            .await?
            .map_err(|err| transport_error(&err))?;
        if !response.status().is_success() {
            return Err(http_error(response, &self.idle).await);
        }
        Ok(assemble(response, self.idle.clone()))
    }
}

/// The chat-completions request for `request`, always streamed with usage.
fn wire_request(request: LlmRequest) -> CreateChatCompletionRequest {
    let tools = (!request.tools.is_empty()).then(|| {
        request
            .tools
            .into_iter()
            .map(|tool| {
                ChatCompletionTools::Function(ChatCompletionTool {
                    function: FunctionObject {
                        name: tool.name,
                        description: Some(tool.description),
                        parameters: Some(serde_json::Value::clone(&tool.parameters)),
                        strict: None,
                    },
                })
            })
            .collect()
    });
    CreateChatCompletionRequest {
        model: request.model,
        messages: request.messages.into_iter().map(wire_message).collect(),
        tools,
        max_completion_tokens: request.max_output_tokens,
        temperature: request.temperature,
        stream: Some(true),
        stream_options: Some(ChatCompletionStreamOptions {
            include_usage: Some(true),
            include_obfuscation: None,
        }),
        ..CreateChatCompletionRequest::default()
    }
}

fn wire_message(message: ChatMessage) -> ChatCompletionRequestMessage {
    match message {
        ChatMessage::System { content } => {
            ChatCompletionRequestMessage::System(ChatCompletionRequestSystemMessage {
                content: ChatCompletionRequestSystemMessageContent::Text(content),
                name: None,
            })
        }
        ChatMessage::User { content } => {
            ChatCompletionRequestMessage::User(ChatCompletionRequestUserMessage {
                content: ChatCompletionRequestUserMessageContent::Text(content),
                name: None,
            })
        }
        ChatMessage::Assistant {
            content,
            tool_calls,
        } => {
            let tool_calls = (!tool_calls.is_empty()).then(|| {
                tool_calls
                    .into_iter()
                    .map(|call| {
                        ChatCompletionMessageToolCalls::Function(ChatCompletionMessageToolCall {
                            id: call.id,
                            function: FunctionCall {
                                name: call.name,
                                arguments: call.arguments,
                            },
                        })
                    })
                    .collect()
            });
            ChatCompletionRequestMessage::Assistant(ChatCompletionRequestAssistantMessage {
                content: (!content.is_empty())
                    .then_some(ChatCompletionRequestAssistantMessageContent::Text(content)),
                tool_calls,
                ..ChatCompletionRequestAssistantMessage::default()
            })
        }
        ChatMessage::Tool { call_id, content } => {
            ChatCompletionRequestMessage::Tool(ChatCompletionRequestToolMessage {
                content: ChatCompletionRequestToolMessageContent::Text(content),
                tool_call_id: call_id,
            })
        }
    }
}

fn transport_error(err: &reqwest::Error) -> LlmError {
    LlmError::Connection(error_chain(err))
}

fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// `retry-after-ms` or `retry-after` (in seconds), when present and a
/// duration (`inf`, `NaN` or an absurd number count as absent; an HTTP date is
/// not read).
pub fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let seconds = |name: &str, scale: f64| {
        let number = headers
            .get(name)?
            .to_str()
            .ok()?
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|number| number.is_finite())?;
        Duration::try_from_secs_f64(number.max(0.0) / scale).ok()
    };
    seconds("retry-after-ms", 1000.0).or_else(|| seconds("retry-after", 1.0))
}

/// The error for a non-2xx response, with the provider's message (as much of
/// it as arrives within the idle timeout).
async fn http_error(mut response: reqwest::Response, idle: &IdleTimeout) -> LlmError {
    let status = response.status().as_u16();
    let retry_after = retry_after(response.headers());
    let mut body = Vec::new();
    while body.len() < ERROR_BODY_LIMIT {
        match idle.bound(response.chunk()).await {
            Ok(Ok(Some(chunk))) => body.extend_from_slice(&chunk),
            Ok(Ok(None) | Err(_)) | Err(_) => break,
        }
    }
    body.truncate(ERROR_BODY_LIMIT);
    let message = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|json| json["error"]["message"].as_str().map(str::to_owned))
        .unwrap_or_else(|| String::from_utf8_lossy(&body).chars().take(500).collect());
    match status {
        401 | 403 => LlmError::Unauthorized { status, message },
        429 => LlmError::RateLimited {
            retry_after,
            message,
        },
        500.. => LlmError::Unavailable { status, message },
        _ => LlmError::Rejected { status, message },
    }
}

/// A tool call being assembled from its fragments.
#[derive(Default)]
struct PartialCall {
    id: String,
    name: String,
    arguments: String,
}

/// Turns the SSE body into [`LlmEvent`]s: text as it arrives; tool calls, usage
/// and the finish reason once `[DONE]` confirms the answer is complete.
fn assemble(response: reqwest::Response, idle: IdleTimeout) -> LlmStream {
    let mut events = response.bytes_stream().eventsource();
    let stream = async_stream::try_stream! {
        let mut calls: BTreeMap<u32, PartialCall> = BTreeMap::new();
        let mut finish = None;
        let mut usage = None;
        let mut done = false;
        let mut model_named = false;
        while let Some(event) = idle.bound(events.next()).await? {
            let event = event.map_err(|err| match err {
                eventsource_stream::EventStreamError::Transport(err) => transport_error(&err),
                other => LlmError::Protocol(other.to_string()),
            })?;
            if event.data == "[DONE]" {
                done = true;
                break;
            }
            let chunk: CreateChatCompletionStreamResponse = serde_json::from_str(&event.data)
                .map_err(|err| LlmError::Protocol(format!("chunk is not a chat.completion.chunk: {err}")))?;
            if !model_named && !chunk.model.is_empty() {
                model_named = true;
                yield LlmEvent::ResponseModel(chunk.model.clone());
            }
            if let Some(reported) = chunk.usage {
                usage = Some(Usage {
                    input_tokens: reported.prompt_tokens,
                    output_tokens: reported.completion_tokens,
                    cached_tokens: reported
                        .prompt_tokens_details
                        .and_then(|details| details.cached_tokens)
                        .unwrap_or(0),
                });
            }
            for choice in chunk.choices.into_iter().filter(|c| c.index == 0) {
                if let Some(text) = choice.delta.content.filter(|t| !t.is_empty()) {
                    yield LlmEvent::TextDelta(text);
                }
                for fragment in choice.delta.tool_calls.unwrap_or_default() {
                    let call = calls.entry(fragment.index).or_default();
                    if let Some(id) = fragment.id {
                        call.id = id;
                    }
                    if let Some(function) = fragment.function {
                        if let Some(name) = function.name {
                            call.name.push_str(&name);
                        }
                        if let Some(arguments) = function.arguments {
                            call.arguments.push_str(&arguments);
                        }
                    }
                }
                if let Some(reason) = choice.finish_reason {
                    finish = Some(reason);
                }
            }
        }
        if !done {
            Err(LlmError::Truncated)?;
        }
        if let Some(usage) = usage {
            yield LlmEvent::Usage(usage);
        }
        if !calls.is_empty() {
            let calls = calls
                .into_values()
                .map(|call| {
                    if call.id.is_empty() || call.name.is_empty() {
                        Err(LlmError::Protocol("a tool call came without an id or a name".into()))
                    } else {
                        Ok(ToolCall { id: call.id, name: call.name, arguments: call.arguments })
                    }
                })
                .collect::<Result<Vec<_>, _>>()?;
            yield LlmEvent::ToolCalls(calls);
        }
        let reason = match finish {
            Some(WireFinishReason::Length) => FinishReason::Length,
            Some(WireFinishReason::ContentFilter) => FinishReason::ContentFilter,
            Some(WireFinishReason::ToolCalls | WireFinishReason::FunctionCall) => FinishReason::ToolCalls,
            Some(WireFinishReason::Stop) | None => FinishReason::Stop,
        };
        yield LlmEvent::Finished(reason);
    };
    stream.boxed()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_reads_milliseconds_then_seconds_and_ignores_what_is_no_duration() {
        let headers = |pairs: &[(&'static str, &'static str)]| {
            let mut map = reqwest::header::HeaderMap::new();
            for (name, value) in pairs {
                map.insert(*name, reqwest::header::HeaderValue::from_static(value));
            }
            map
        };
        assert_eq!(
            retry_after(&headers(&[
                ("retry-after-ms", "1500"),
                ("retry-after", "9")
            ])),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(
            retry_after(&headers(&[("retry-after", "2")])),
            Some(Duration::from_secs(2))
        );
        for bad in ["inf", "NaN", "1e300", "Wed, 21 Oct 2026 07:28:00 GMT"] {
            assert_eq!(
                retry_after(&headers(&[("retry-after", bad)])),
                None,
                "{bad}"
            );
        }
    }
}
