//! The OpenAI chat-completions wire format, as the mock writes it: streamed
//! `chat.completion.chunk` objects and plain `chat.completion` objects.

use serde_json::{Value, json};

/// Fields every chunk of one completion shares.
#[derive(Clone, Debug)]
pub struct ChunkHeader {
    /// Completion id, e.g. `chatcmpl-mock-1`.
    pub id: String,
    /// The model named in the request.
    pub model: String,
    /// Unix seconds.
    pub created: u64,
}

impl ChunkHeader {
    fn chunk(&self, choices: Value) -> Value {
        json!({
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "system_fingerprint": "fp_mock",
            "choices": choices,
        })
    }

    /// The first chunk: the assistant role with empty content.
    pub fn role(&self) -> Value {
        self.chunk(json!([{
            "index": 0,
            "delta": {"role": "assistant", "content": ""},
            "logprobs": null,
            "finish_reason": null,
        }]))
    }

    /// A piece of answer text.
    pub fn content(&self, text: &str) -> Value {
        self.chunk(json!([{
            "index": 0,
            "delta": {"content": text},
            "logprobs": null,
            "finish_reason": null,
        }]))
    }

    /// The opening delta of tool call `index`: id, type and name, no arguments yet.
    pub fn tool_call_start(&self, index: usize, id: &str, name: &str) -> Value {
        self.chunk(json!([{
            "index": 0,
            "delta": {"tool_calls": [{
                "index": index,
                "id": id,
                "type": "function",
                "function": {"name": name, "arguments": ""},
            }]},
            "logprobs": null,
            "finish_reason": null,
        }]))
    }

    /// A fragment of tool call `index`'s arguments.
    pub fn tool_call_arguments(&self, index: usize, fragment: &str) -> Value {
        self.chunk(json!([{
            "index": 0,
            "delta": {"tool_calls": [{"index": index, "function": {"arguments": fragment}}]},
            "logprobs": null,
            "finish_reason": null,
        }]))
    }

    /// The last choice chunk, carrying the finish reason.
    pub fn finish(&self, reason: &str) -> Value {
        self.chunk(json!([{
            "index": 0,
            "delta": {},
            "logprobs": null,
            "finish_reason": reason,
        }]))
    }

    /// The usage chunk sent when the request asked for `stream_options.include_usage`.
    pub fn usage(&self, prompt_tokens: u32, completion_tokens: u32) -> Value {
        let mut chunk = self.chunk(json!([]));
        chunk["usage"] = usage(prompt_tokens, completion_tokens);
        chunk
    }

    /// A complete non-streaming `chat.completion`.
    pub fn completion(
        &self,
        text: &str,
        tool_calls: &[(String, String, String)],
        finish_reason: &str,
        prompt_tokens: u32,
        completion_tokens: u32,
    ) -> Value {
        let mut message = json!({"role": "assistant", "content": text, "refusal": null});
        if !tool_calls.is_empty() {
            message["content"] = Value::Null;
            message["tool_calls"] = tool_calls
                .iter()
                .map(|(id, name, arguments)| {
                    json!({"id": id, "type": "function", "function": {"name": name, "arguments": arguments}})
                })
                .collect();
        }
        json!({
            "id": self.id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.model,
            "system_fingerprint": "fp_mock",
            "choices": [{"index": 0, "message": message, "logprobs": null, "finish_reason": finish_reason}],
            "usage": usage(prompt_tokens, completion_tokens),
        })
    }
}

fn usage(prompt_tokens: u32, completion_tokens: u32) -> Value {
    json!({
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    })
}

/// An OpenAI-style error body.
pub fn error_body(message: &str, kind: &str, code: Option<&str>) -> Value {
    json!({"error": {"message": message, "type": kind, "param": null, "code": code}})
}

/// One server-sent event line carrying `value`.
pub fn sse(value: &Value) -> String {
    format!("data: {value}\n\n")
}

/// The terminating server-sent event.
pub const SSE_DONE: &str = "data: [DONE]\n\n";
