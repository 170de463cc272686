//! Token counting with tiktoken-rs and fitting a conversation into a model's
//! context window: history is dropped oldest-first, the system prompt and the
//! current turn are always kept, and a tool call is never separated from its
//! results.

use tiktoken_rs::CoreBPE;
use tiktoken_rs::tokenizer::Tokenizer;

use crate::llm::{ChatMessage, ToolSpec};

/// Tokens every message costs beyond its content (role and separators), as in
/// OpenAI's published counting recipe.
const PER_MESSAGE: usize = 3;
/// Tokens that prime the model's reply.
const REPLY_PRIMING: usize = 3;
/// Tokens a tool call or tool definition costs beyond its text.
const PER_TOOL: usize = 3;

/// A BPE encoding, chosen per model family.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    /// GPT-4o, o-series, GPT-4.1 and later.
    O200k,
    /// GPT-4, GPT-3.5 and older families.
    Cl100k,
}

impl Encoding {
    /// The encoding of an upstream model id. Models tiktoken does not know (open
    /// models behind vLLM or Ollama) are counted with o200k_base: an estimate, which
    /// the provider's reported usage replaces after the call.
    pub fn for_model(model: &str) -> Self {
        match tiktoken_rs::tokenizer::get_tokenizer(model) {
            Some(
                Tokenizer::Cl100kBase
                | Tokenizer::P50kBase
                | Tokenizer::R50kBase
                | Tokenizer::P50kEdit
                | Tokenizer::Gpt2,
            ) => Encoding::Cl100k,
            Some(Tokenizer::O200kBase | Tokenizer::O200kHarmony) | None => Encoding::O200k,
        }
    }

    /// The BPE tables, loaded once per process on first use. Loading takes a
    /// while: call [`Encoding::warm_up`] from a blocking thread at start.
    fn bpe(self) -> &'static CoreBPE {
        match self {
            Encoding::O200k => tiktoken_rs::o200k_base_singleton(),
            Encoding::Cl100k => tiktoken_rs::cl100k_base_singleton(),
        }
    }

    /// Loads the tables now (blocking), so no request pays for it.
    pub fn warm_up(self) {
        self.bpe();
    }

    /// Tokens in `text`; special-token markers in it count as plain text.
    pub fn count(self, text: &str) -> usize {
        self.bpe().encode_ordinary(text).len()
    }

    /// Tokens one message costs in a request.
    pub fn message_tokens(self, message: &ChatMessage) -> usize {
        PER_MESSAGE
            + match message {
                ChatMessage::System { content } | ChatMessage::User { content } => {
                    self.count(content)
                }
                ChatMessage::Assistant {
                    content,
                    tool_calls,
                } => {
                    self.count(content)
                        + tool_calls
                            .iter()
                            .map(|call| {
                                PER_TOOL + self.count(&call.name) + self.count(&call.arguments)
                            })
                            .sum::<usize>()
                }
                ChatMessage::Tool { call_id, content } => self.count(call_id) + self.count(content),
            }
    }

    /// Tokens the definitions of `tools` cost in a request.
    pub fn tools_tokens(self, tools: &[ToolSpec]) -> usize {
        tools
            .iter()
            .map(|tool| {
                PER_TOOL
                    + self.count(&tool.name)
                    + self.count(&tool.description)
                    + self.count(&tool.parameters.to_string())
            })
            .sum()
    }
}

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
    /// Estimated input tokens of `messages` plus the tool definitions.
    pub input_tokens: usize,
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
    /// Tokens available for input.
    pub fn input_budget(&self) -> usize {
        self.context_tokens.saturating_sub(self.reserved_output)
    }

    /// The largest suffix of `history` (in whole units) that fits beside the
    /// system prompt, the tool definitions and the current turn.
    pub fn fit(
        &self,
        encoding: Encoding,
        system: &ChatMessage,
        tools: &[ToolSpec],
        history: &[ChatMessage],
        current: &[ChatMessage],
    ) -> Result<Fitted, ContextOverflow> {
        let fixed = REPLY_PRIMING
            + encoding.message_tokens(system)
            + encoding.tools_tokens(tools)
            + current
                .iter()
                .map(|m| encoding.message_tokens(m))
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
            let cost: usize = unit.iter().map(|m| encoding.message_tokens(m)).sum();
            if used + cost > available {
                break;
            }
            used += cost;
            kept += unit.len();
        }
        let kept_history = &history[history.len() - kept..];
        let mut messages = Vec::with_capacity(1 + kept + current.len());
        messages.push(system.clone());
        messages.extend_from_slice(kept_history);
        messages.extend_from_slice(current);
        Ok(Fitted {
            messages,
            input_tokens: used,
            dropped: history.len() - kept,
        })
    }
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
    fn encodings_follow_the_model_family() {
        assert_eq!(Encoding::for_model("gpt-4o-mini"), Encoding::O200k);
        assert_eq!(Encoding::for_model("gpt-4-0613"), Encoding::Cl100k);
        assert_eq!(Encoding::for_model("gpt-3.5-turbo"), Encoding::Cl100k);
        assert_eq!(Encoding::for_model("llama3.1:8b"), Encoding::O200k);
    }

    #[test]
    fn counts_match_the_reference_tokenizer() {
        // Reference counts from OpenAI's tiktoken for these encodings.
        assert_eq!(Encoding::O200k.count("hello world"), 2);
        assert_eq!(Encoding::Cl100k.count("hello world"), 2);
        assert_eq!(Encoding::O200k.count(""), 0);
        // Special-token markers in user text are ordinary text, not control tokens.
        assert!(Encoding::O200k.count("<|endoftext|>") > 1);
    }

    #[test]
    fn everything_fits_when_there_is_room() {
        let window = ContextWindow {
            context_tokens: 10_000,
            reserved_output: 1_000,
        };
        let system = ChatMessage::System {
            content: "Be brief.".into(),
        };
        let history = [user("a"), assistant("b")];
        let fitted = window
            .fit(Encoding::O200k, &system, &[], &history, &[user("c")])
            .unwrap();
        assert_eq!(fitted.messages.len(), 4);
        assert_eq!(fitted.dropped, 0);
        let expected: usize = REPLY_PRIMING
            + fitted
                .messages
                .iter()
                .map(|m| Encoding::O200k.message_tokens(m))
                .sum::<usize>();
        assert_eq!(fitted.input_tokens, expected);
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
        let cost = |ms: &[ChatMessage]| ms.iter().map(|m| enc.message_tokens(m)).sum::<usize>();
        let fixed = REPLY_PRIMING + enc.message_tokens(&system) + cost(&current);
        // Room for the newest three messages but one token short of the fourth.
        let budget = fixed + cost(&history[1..]) - 1;
        let window = ContextWindow {
            context_tokens: budget + 100,
            reserved_output: 100,
        };
        let fitted = window.fit(enc, &system, &[], &history, &current).unwrap();
        assert_eq!(fitted.dropped, 2);
        assert_eq!(fitted.messages[1..4], history[2..]);
        assert!(fitted.input_tokens <= window.input_budget());

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
