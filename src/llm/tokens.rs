//! What a request costs in tokens, as OpenAI's published counting recipe
//! counts it: exactly with a model's encoding, or as an upper bound from byte
//! lengths alone. The context fitter and cost control's reservation share it.

use super::{ChatMessage, ToolSpec};
use crate::tokenizer::Encoding;

/// Tokens every message costs beyond its content (role and separators), as in
/// OpenAI's published counting recipe.
pub(crate) const PER_MESSAGE: usize = 3;
/// Tokens that prime the model's reply.
pub(crate) const REPLY_PRIMING: usize = 3;
/// Tokens a tool call or tool definition costs beyond its text.
pub(crate) const PER_TOOL: usize = 3;

/// Tokens one message costs in a request.
pub fn message_tokens(encoding: Encoding, message: &ChatMessage) -> usize {
    message_cost(message, |text| encoding.count(text))
}

/// Tokens the definitions of `tools` cost in a request.
pub fn tools_tokens(encoding: Encoding, tools: &[ToolSpec]) -> usize {
    tools_cost(tools, |text| encoding.count(text))
}

/// The cost of one message, its text measured by `count`: exact with an
/// encoding's `count`, an upper bound with `str::len` (a BPE token covers at
/// least one byte of UTF-8, so a text never has more tokens than bytes).
pub(crate) fn message_cost(message: &ChatMessage, count: impl Fn(&str) -> usize) -> usize {
    PER_MESSAGE
        + match message {
            ChatMessage::System { content } | ChatMessage::User { content } => count(content),
            ChatMessage::Assistant {
                content,
                tool_calls,
            } => {
                count(content)
                    + tool_calls
                        .iter()
                        .map(|call| PER_TOOL + count(&call.name) + count(&call.arguments))
                        .sum::<usize>()
            }
            ChatMessage::Tool { call_id, content } => count(call_id) + count(content),
        }
}

/// The cost of tool definitions, their text measured by `count` (as above).
pub(crate) fn tools_cost(tools: &[ToolSpec], count: impl Fn(&str) -> usize) -> usize {
    tools
        .iter()
        .map(|tool| {
            PER_TOOL
                + count(&tool.name)
                + count(&tool.description)
                + count(&tool.parameters.to_string())
        })
        .sum()
}

/// An upper bound of a request's input tokens from byte lengths alone (see
/// [`message_cost`]): no table, no counting.
pub fn request_bound(messages: &[ChatMessage], tools: &[ToolSpec]) -> usize {
    REPLY_PRIMING
        + tools_cost(tools, str::len)
        + messages
            .iter()
            .map(|m| message_cost(m, str::len))
            .sum::<usize>()
}

/// Input tokens of a request (its messages and tool definitions), counted: the
/// estimate used when the provider reports no usage.
pub fn request_tokens(encoding: Encoding, messages: &[ChatMessage], tools: &[ToolSpec]) -> usize {
    REPLY_PRIMING
        + tools_tokens(encoding, tools)
        + messages
            .iter()
            .map(|m| message_tokens(encoding, m))
            .sum::<usize>()
}
