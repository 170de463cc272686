//! What the mock answers: scripted replies (completions, HTTP errors, dropped
//! connections) with their faults and gates, and the default behaviour used
//! when no reply is scripted.

use std::time::Duration;

use serde_json::Value;

use crate::gate::Hold;

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
    /// An HTTP error with an OpenAI-style body. Kept for the tests that build
    /// it field by field; [`Reply::Error`] can also carry `retry-after-ms`.
    HttpError {
        /// HTTP status, e.g. 500, 429, 401.
        status: u16,
        /// Seconds for a `retry-after` header.
        retry_after: Option<u64>,
        /// Error message.
        message: String,
    },
    /// An HTTP error built with [`ScriptedError`], which can also carry
    /// `retry-after-ms`.
    Error(ScriptedError),
    /// Close the connection once the request is read, before any response: no
    /// status line, no headers (over HTTP/2, the stream is reset and the
    /// connection's other streams go on). Unlike [`Fault::ResetAfter`]`(0)`,
    /// which sends a 200 and its headers first.
    Drop,
}

impl From<ScriptedError> for Reply {
    fn from(error: ScriptedError) -> Self {
        Self::Error(error)
    }
}

/// An HTTP error with an OpenAI-style body, as [`Reply::Error`]. Built with
/// [`ScriptedError::new`] and its builders: it is `non_exhaustive` so that a new
/// header does not break the tests that script one (as a new field of
/// [`Reply::HttpError`] would).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ScriptedError {
    /// HTTP status, e.g. 500, 429, 401.
    pub status: u16,
    /// Seconds for a `retry-after` header.
    pub retry_after: Option<u64>,
    /// Milliseconds for a `retry-after-ms` header (sent by OpenAI and Azure
    /// OpenAI, and preferred over `retry-after` by their SDKs).
    pub retry_after_ms: Option<u64>,
    /// Error message.
    pub message: String,
}

impl ScriptedError {
    /// An error of this status and message, without retry headers.
    pub fn new(status: u16, message: impl Into<String>) -> Self {
        Self {
            status,
            retry_after: None,
            retry_after_ms: None,
            message: message.into(),
        }
    }

    /// This error with `retry-after: seconds`.
    pub fn retry_after(self, seconds: u64) -> Self {
        Self {
            retry_after: Some(seconds),
            ..self
        }
    }

    /// This error with `retry-after-ms: millis`.
    pub fn retry_after_ms(self, millis: u64) -> Self {
        Self {
            retry_after_ms: Some(millis),
            ..self
        }
    }
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

const WORDS: [&str; 8] = [
    "The ", "quick ", "brown ", "fox ", "jumps ", "over ", "lazy ", "dogs. ",
];

/// The reply the default behaviour gives to `body`.
pub(crate) fn default_reply(behaviour: &Behaviour, body: &Value, serial: usize) -> Reply {
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
