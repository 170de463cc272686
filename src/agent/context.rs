//! Token counting with tiktoken-rs and fitting a conversation into a model's
//! context window: history is dropped oldest-first, the system prompt and the
//! current turn are always kept, and a tool call is never separated from its
//! results.

use std::sync::atomic::{AtomicBool, Ordering};

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

    /// The BPE tables, loaded once per process on first use (tens of MB of heap
    /// and a few hundred ms, so callers that may load them run on a blocking
    /// thread; see [`Encoding::is_loaded`]).
    fn bpe(self) -> &'static CoreBPE {
        let bpe = match self {
            Encoding::O200k => tiktoken_rs::o200k_base_singleton(),
            Encoding::Cl100k => tiktoken_rs::cl100k_base_singleton(),
        };
        LOADED[self as usize].store(true, Ordering::Relaxed);
        bpe
    }

    /// Whether this encoding's tables are in memory, so counting with it is
    /// quick enough for an async task.
    pub fn is_loaded(self) -> bool {
        LOADED[self as usize].load(Ordering::Relaxed)
    }

    /// Tokens in `text`; special-token markers in it count as plain text.
    pub fn count(self, text: &str) -> usize {
        self.bpe().encode_ordinary(text).len()
    }

    /// Tokens one message costs in a request.
    pub fn message_tokens(self, message: &ChatMessage) -> usize {
        message_cost(message, |text| self.count(text))
    }

    /// Tokens the definitions of `tools` cost in a request.
    pub fn tools_tokens(self, tools: &[ToolSpec]) -> usize {
        tools_cost(tools, |text| self.count(text))
    }
}

/// Which encodings have their tables loaded, indexed by `Encoding as usize`.
static LOADED: [AtomicBool; 2] = [AtomicBool::new(false), AtomicBool::new(false)];

/// The cost of one message, its text measured by `count`: exact with an
/// encoding's `count`, an upper bound with `str::len` (a BPE token covers at
/// least one byte of UTF-8, so a text never has more tokens than bytes).
fn message_cost(message: &ChatMessage, count: impl Fn(&str) -> usize) -> usize {
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
fn tools_cost(tools: &[ToolSpec], count: impl Fn(&str) -> usize) -> usize {
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

/// Input tokens of a request (its messages and tool definitions), counted: the
/// estimate used when the provider reports no usage.
pub fn request_tokens(encoding: Encoding, messages: &[ChatMessage], tools: &[ToolSpec]) -> usize {
    REPLY_PRIMING
        + encoding.tools_tokens(tools)
        + messages
            .iter()
            .map(|m| encoding.message_tokens(m))
            .sum::<usize>()
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
                    encoding.message_tokens(&message) <= message_cost(&message, str::len),
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
