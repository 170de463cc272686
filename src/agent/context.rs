//! Fitting a conversation into a model's context window: history is dropped
//! oldest-first, the system prompt and the current turn are always kept, and a
//! tool call is never separated from its results. Tokens are counted with the
//! model's encoding ([`crate::tokenizer`]); the counts of messages and tool
//! definitions follow OpenAI's published recipe.

use crate::agent::error::TurnError;
use crate::llm::tokens::{
    REPLY_PRIMING, message_cost, message_tokens, request_tokens, tools_cost, tools_tokens,
};
use crate::llm::{ChatMessage, ToolSpec};
use crate::tokenizer::Encoding;

/// Why a conversation cannot be sent to a model.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "the message needs {needed} tokens but the model's context window leaves {available} \
     (context window {context_tokens} minus {reserved_output} reserved for the answer)"
)]
pub struct ContextOverflow {
    /// Tokens of the system prompt, tools and current turn.
    pub needed: usize,
    /// Tokens available for input.
    pub available: usize,
    /// The model's context window.
    pub context_tokens: usize,
    /// Tokens reserved for output.
    pub reserved_output: usize,
}

/// A model's context window and the part of it reserved for the answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ContextWindow {
    /// Total tokens the model accepts (input and output).
    pub context_tokens: usize,
    /// Tokens kept free for the model's output.
    pub reserved_output: usize,
}

/// The messages to send, and what fitting them cost.
#[derive(Clone, Debug, PartialEq)]
pub struct Fitted {
    /// System prompt, kept history, current turn.
    pub messages: Vec<ChatMessage>,
    /// Input tokens of `messages` plus the tool definitions, as counted with the
    /// model's encoding; `None` when the byte bound proved the fit and nothing
    /// was counted.
    pub input_tokens: Option<usize>,
    /// History messages left out.
    pub dropped: usize,
}

/// Splits history into units that are kept or dropped whole: a message together
/// with the tool results that follow it. A tool result with no call before it
/// (which a well-formed history never has) forms a unit of its own and is dropped.
fn units(history: &[ChatMessage]) -> Vec<&[ChatMessage]> {
    let mut units = Vec::new();
    let mut start = 0;
    for i in 1..=history.len() {
        if i == history.len() || !matches!(history[i], ChatMessage::Tool { .. }) {
            units.push(&history[start..i]);
            start = i;
        }
    }
    units.retain(|unit| !matches!(unit.first(), Some(ChatMessage::Tool { .. })));
    units
}

impl ContextWindow {
    /// The window of a model of `context_tokens` answering in at most
    /// `max_output` tokens.
    pub fn of(context_tokens: u32, max_output: u32) -> Self {
        Self {
            context_tokens: context_tokens as usize,
            reserved_output: max_output as usize,
        }
    }

    /// Tokens available for input.
    pub fn input_budget(&self) -> usize {
        self.context_tokens.saturating_sub(self.reserved_output)
    }

    /// The whole conversation, when its byte length alone proves that it fits
    /// (see [`message_cost`]): no token is counted and no BPE table is needed.
    /// `None` when only counting can tell.
    pub fn fit_by_bytes(
        &self,
        system: &ChatMessage,
        tools: &[ToolSpec],
        history: &[ChatMessage],
        current: &[ChatMessage],
    ) -> Option<Fitted> {
        let units = units(history);
        let bound = REPLY_PRIMING
            + tools_cost(tools, str::len)
            + [system]
                .into_iter()
                .chain(units.iter().copied().flatten())
                .chain(current)
                .map(|m| message_cost(m, str::len))
                .sum::<usize>();
        if bound > self.input_budget() {
            return None;
        }
        let kept: usize = units.iter().map(|unit| unit.len()).sum();
        Some(assemble(system, history, kept, current, None))
    }

    /// The largest suffix of `history` (in whole units) that fits beside the
    /// system prompt, the tool definitions and the current turn. Counts tokens
    /// (CPU work, and it may load the encoding's tables) unless
    /// [`ContextWindow::fit_by_bytes`] already proves the fit.
    pub fn fit(
        &self,
        encoding: Encoding,
        system: &ChatMessage,
        tools: &[ToolSpec],
        history: &[ChatMessage],
        current: &[ChatMessage],
    ) -> Result<Fitted, ContextOverflow> {
        if let Some(fitted) = self.fit_by_bytes(system, tools, history, current) {
            return Ok(fitted);
        }
        let fixed = REPLY_PRIMING
            + message_tokens(encoding, system)
            + tools_tokens(encoding, tools)
            + current
                .iter()
                .map(|m| message_tokens(encoding, m))
                .sum::<usize>();
        let available = self.input_budget();
        if fixed > available {
            return Err(ContextOverflow {
                needed: fixed,
                available,
                context_tokens: self.context_tokens,
                reserved_output: self.reserved_output,
            });
        }
        let mut used = fixed;
        let mut kept = 0;
        for unit in units(history).iter().rev() {
            let cost: usize = unit.iter().map(|m| message_tokens(encoding, m)).sum();
            if used + cost > available {
                break;
            }
            used += cost;
            kept += unit.len();
        }
        Ok(assemble(system, history, kept, current, Some(used)))
    }
}

/// The system prompt, the newest `kept` messages of `history` and the current turn.
fn assemble(
    system: &ChatMessage,
    history: &[ChatMessage],
    kept: usize,
    current: &[ChatMessage],
    input_tokens: Option<usize>,
) -> Fitted {
    let mut messages = Vec::with_capacity(1 + kept + current.len());
    messages.push(system.clone());
    messages.extend_from_slice(&history[history.len() - kept..]);
    messages.extend_from_slice(current);
    Fitted {
        messages,
        input_tokens,
        dropped: history.len() - kept,
    }
}

/// Fits the conversation: by its byte length when that proves the fit (cheap,
/// no table needed), else by counting tokens on a blocking thread, since that is
/// CPU work and the first count loads the encoding's tables.
pub async fn fit(
    encoding: Encoding,
    window: ContextWindow,
    system: ChatMessage,
    tools: Vec<ToolSpec>,
    history: Vec<ChatMessage>,
    current: Vec<ChatMessage>,
) -> Result<Result<Fitted, ContextOverflow>, TurnError> {
    if let Some(fitted) = window.fit_by_bytes(&system, &tools, &history, &current) {
        return Ok(Ok(fitted));
    }
    Ok(tokio::task::spawn_blocking(move || {
        window.fit(encoding, &system, &tools, &history, &current)
    })
    .await?)
}

/// Token usage of a model call whose provider reported none: the input counted
/// at fit time or now, the output counted from the `answer`. On a blocking
/// thread.
pub async fn estimate_usage(
    encoding: Encoding,
    counted_input: Option<usize>,
    uncounted: Option<Vec<ChatMessage>>,
    tools: Vec<ToolSpec>,
    answer: ChatMessage,
) -> Result<(usize, usize), TurnError> {
    Ok(tokio::task::spawn_blocking(move || {
        let input = counted_input.unwrap_or_else(|| {
            request_tokens(encoding, uncounted.as_deref().unwrap_or(&[]), &tools)
        });
        (input, message_tokens(encoding, &answer))
    })
    .await?)
}

/// A count as the `u32` of the contract, saturating.
pub fn saturate(count: usize) -> u32 {
    u32::try_from(count).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::ToolCall;

    fn user(text: &str) -> ChatMessage {
        ChatMessage::User {
            content: text.into(),
        }
    }

    fn assistant(text: &str) -> ChatMessage {
        ChatMessage::Assistant {
            content: text.into(),
            tool_calls: vec![],
        }
    }

    fn tool_round(id: &str) -> [ChatMessage; 2] {
        [
            ChatMessage::Assistant {
                content: String::new(),
                tool_calls: vec![ToolCall {
                    id: id.into(),
                    name: "current_time".into(),
                    arguments: "{}".into(),
                }],
            },
            ChatMessage::Tool {
                call_id: id.into(),
                content: "2026-11-23T10:00:00Z".into(),
            },
        ]
    }

    #[test]
    fn a_conversation_whose_bytes_fit_is_not_counted() {
        let window = ContextWindow {
            context_tokens: 10_000,
            reserved_output: 1_000,
        };
        let system = ChatMessage::System {
            content: "Be brief.".into(),
        };
        let mut history = vec![user("a"), assistant("b")];
        history.extend(tool_round("call_1"));
        let fitted = window
            .fit(Encoding::O200k, &system, &[], &history, &[user("c")])
            .unwrap();
        assert_eq!(fitted.messages.len(), 6);
        assert_eq!(fitted.dropped, 0);
        assert_eq!(fitted.input_tokens, None);
    }

    #[test]
    fn when_the_bytes_do_not_prove_the_fit_the_tokens_are_counted() {
        let system = ChatMessage::System {
            content: "sys".into(),
        };
        // 600 bytes of text, about 100 tokens.
        let history = [user(&"hello world ".repeat(50)), assistant("ok")];
        let current = [user("and now?")];
        let exact = request_tokens(
            Encoding::O200k,
            &[&[system.clone()][..], &history, &current].concat(),
            &[],
        );
        let window = ContextWindow {
            context_tokens: exact + 100,
            reserved_output: 100,
        };
        assert!(
            window
                .fit_by_bytes(&system, &[], &history, &current)
                .is_none()
        );
        let fitted = window
            .fit(Encoding::O200k, &system, &[], &history, &current)
            .unwrap();
        assert_eq!(fitted.dropped, 0);
        assert_eq!(fitted.input_tokens, Some(exact));
    }

    #[test]
    fn the_byte_bound_never_undercounts() {
        let texts = [
            "hello world",
            "Grüße aus Köln, naïve café",
            "日本語のテキストとemoji 🦀🦀🦀",
            "    indented\n\tcode { x: [1, 2, 3] }",
            "<|endoftext|> is plain text here",
            "",
        ];
        for encoding in [Encoding::O200k, Encoding::Cl100k] {
            for text in texts {
                let message = user(text);
                assert!(
                    message_tokens(encoding, &message) <= message_cost(&message, str::len),
                    "{encoding:?} {text:?}"
                );
            }
        }
    }

    #[test]
    fn history_is_dropped_oldest_first_and_tool_rounds_stay_whole() {
        let system = ChatMessage::System {
            content: "sys".into(),
        };
        let current = [user("now")];
        let mut history = vec![user(&"old ".repeat(50)), assistant("old answer")];
        history.extend(tool_round("call_1"));
        history.push(assistant("recent"));
        let enc = Encoding::O200k;
        let cost = |ms: &[ChatMessage]| ms.iter().map(|m| message_tokens(enc, m)).sum::<usize>();
        let fixed = REPLY_PRIMING + message_tokens(enc, &system) + cost(&current);
        // Room for the newest three messages but one token short of the fourth.
        let budget = fixed + cost(&history[1..]) - 1;
        let window = ContextWindow {
            context_tokens: budget + 100,
            reserved_output: 100,
        };
        let fitted = window.fit(enc, &system, &[], &history, &current).unwrap();
        assert_eq!(fitted.dropped, 2);
        assert_eq!(fitted.messages[1..4], history[2..]);
        assert!(fitted.input_tokens.unwrap() <= window.input_budget());

        // One token less and the tool round no longer fits: it goes whole.
        let window = ContextWindow {
            context_tokens: budget - cost(&history[1..2]) + 100 - 1,
            ..window
        };
        let fitted = window.fit(enc, &system, &[], &history, &current).unwrap();
        assert_eq!(fitted.messages[1..], [assistant("recent"), user("now")]);
    }

    #[test]
    fn a_current_turn_that_cannot_fit_is_an_overflow_naming_the_limit() {
        let window = ContextWindow {
            context_tokens: 50,
            reserved_output: 20,
        };
        let system = ChatMessage::System {
            content: "sys".into(),
        };
        let err = window
            .fit(
                Encoding::O200k,
                &system,
                &[],
                &[],
                &[user(&"word ".repeat(100))],
            )
            .unwrap_err();
        assert_eq!(err.available, 30);
        assert!(err.needed > 30);
        assert!(err.to_string().contains("context window 50"), "{err}");
    }

    #[test]
    fn orphan_tool_results_are_never_sent() {
        let history = [
            ChatMessage::Tool {
                call_id: "x".into(),
                content: "orphan".into(),
            },
            user("a"),
        ];
        assert_eq!(units(&history).len(), 1);
    }
}
