//! Token counting with tiktoken-rs. A leaf: it depends on tiktoken-rs only, so
//! the agent (context windows, usage estimates) and retrieval (chunking) share
//! it without depending on each other.

use std::sync::atomic::{AtomicBool, Ordering};

use tiktoken_rs::CoreBPE;
use tiktoken_rs::tokenizer::Tokenizer;

/// A BPE encoding, chosen per model family.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    /// GPT-4o, o-series, GPT-4.1 and later.
    O200k,
    /// GPT-4, GPT-3.5 and older families.
    Cl100k,
}

/// Which encodings have their tables loaded, indexed by `Encoding as usize`.
static LOADED: [AtomicBool; 2] = [AtomicBool::new(false), AtomicBool::new(false)];

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

    /// Whether tiktoken knows `model`: its count is then the model's own, not
    /// an estimate with another model's encoding.
    pub fn knows(model: &str) -> bool {
        tiktoken_rs::tokenizer::get_tokenizer(model).is_some()
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
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert!(Encoding::O200k.is_loaded());
    }
}
