//! The extractive provider: answers with no language model, by quoting the
//! passages a knowledge search returns, each with its source. It is what makes
//! the embedded default useful without an API key: with no model configured it
//! is the only model. It is also the degraded end of every route whose chain
//! ends in it (`llm::router`): [`ExtractiveProvider::fallback`] then fails,
//! rather than answering, when it has nothing to quote.
//!
//! It speaks the same [`LlmProvider`] protocol as a model, so it runs in the
//! ordinary agent loop: given a user question and the `search_knowledge` tool it
//! calls that tool with the question; given the tool's passages it composes the
//! answer from their most relevant sentences, streamed word by word. The tool's
//! result format is retrieval's [`KnowledgeResults`].

use futures::StreamExt;

use super::{
    CallContext, ChatMessage, FinishReason, LlmError, LlmEvent, LlmProvider, LlmRequest, LlmStream,
    ToolCall,
};
use crate::retrieval::bm25::Bm25;
use crate::retrieval::knowledge::{KnowledgeResults, Passage, SEARCH_TOOL};

/// The model name the provider reports.
pub const MODEL: &str = "extractive";
/// Passages quoted in one answer.
const PASSAGES: usize = 3;
/// Sentences quoted per passage.
const SENTENCES: usize = 2;

/// Answers from retrieved passages; see the module docs.
#[derive(Debug, Default)]
pub struct ExtractiveProvider {
    bm25: Bm25,
    /// The degraded end of a route: nothing to quote is a failure.
    fallback: bool,
}

/// The prefix of the ids of the searches the answerer makes.
const SEARCH_ID_PREFIX: &str = "call_extractive_";

/// Whether `messages` end with the results of a search this answerer made:
/// its next move is the answer.
pub fn continues_search(messages: &[ChatMessage]) -> bool {
    messages
        .iter()
        .rev()
        .find_map(|m| match m {
            ChatMessage::Assistant { tool_calls, .. } => Some(
                tool_calls
                    .iter()
                    .any(|call| call.id.starts_with(SEARCH_ID_PREFIX)),
            ),
            _ => None,
        })
        .unwrap_or(false)
}

/// What a fallback answerer says when it has nothing to quote.
const NOTHING_TO_QUOTE: &str =
    "the extractive answerer had nothing to quote (no knowledge search, or no passage found)";

impl ExtractiveProvider {
    /// The degraded end of a route: it answers only by quoting passages, and
    /// fails when there are none (no knowledge search offered, the search
    /// failed, or it found nothing), so a caller never gets an empty answer
    /// for a degraded one.
    pub fn fallback() -> Self {
        Self {
            bm25: Bm25::default(),
            fallback: true,
        }
    }

    /// The next move for a conversation: a search, or an answer (`None`
    /// when a fallback has nothing to quote).
    fn reply(&self, request: &LlmRequest) -> Option<Reply> {
        let question = request
            .messages
            .iter()
            .rev()
            .find_map(|m| match m {
                ChatMessage::User { content } => Some(content.as_str()),
                _ => None,
            })
            .unwrap_or_default();
        let results: Vec<&str> = request
            .messages
            .iter()
            .rev()
            .take_while(|m| matches!(m, ChatMessage::Tool { .. }))
            .filter_map(|m| match m {
                ChatMessage::Tool { content, .. } => Some(content.as_str()),
                _ => None,
            })
            .collect();
        // A fallback taking over after another tool's round (the model called
        // it, then failed) searches first, unless it already did.
        let searched = request.messages.iter().any(|m| {
            matches!(m, ChatMessage::Assistant { tool_calls, .. }
                if tool_calls.iter().any(|c| c.id.starts_with(SEARCH_ID_PREFIX)))
        });
        let quotable = results
            .iter()
            .any(|r| serde_json::from_str::<KnowledgeResults>(r).is_ok());
        let search_offered = request.tools.iter().any(|t| t.name == SEARCH_TOOL);
        let search_first = self.fallback && !quotable && !searched && search_offered;
        if !results.is_empty() && !search_first {
            let mut passages: Vec<Passage> = results
                .iter()
                .filter_map(|r| serde_json::from_str::<KnowledgeResults>(r).ok())
                .flat_map(|r| r.passages)
                .collect();
            passages.sort_by(|a, b| b.score.total_cmp(&a.score));
            if self.fallback && passages.is_empty() {
                return None;
            }
            return Some(Reply::Answer(self.compose(question, &passages)));
        }
        if search_offered && !(self.fallback && searched) {
            let arguments = serde_json::json!({ "query": question }).to_string();
            return Some(Reply::Search(ToolCall {
                id: format!("{SEARCH_ID_PREFIX}{}", request.messages.len()),
                name: SEARCH_TOOL.to_owned(),
                arguments,
            }));
        }
        if self.fallback {
            return None;
        }
        Some(Reply::Answer(
            "No language model is configured, and no knowledge search is available for this \
             request, so there is nothing to answer from."
                .to_owned(),
        ))
    }

    /// Quotes the most relevant sentences of the best passages, with sources.
    fn compose(&self, question: &str, passages: &[Passage]) -> String {
        if passages.is_empty() {
            return "I found nothing in the knowledge base about that.".to_owned();
        }
        let terms = self.bm25.terms(question);
        let mut answer = String::from(if self.fallback {
            "From the knowledge base (quoted; the language model is unavailable):\n"
        } else {
            "From the knowledge base (quoted; no language model is configured):\n"
        });
        for (n, passage) in passages.iter().take(PASSAGES).enumerate() {
            let quote = self.best_sentences(&terms, &passage.text);
            let source = if passage.source_uri.is_empty() {
                passage.doc_id.clone()
            } else {
                format!("{} ({})", passage.doc_id, passage.source_uri)
            };
            answer.push_str(&format!("\n[{}] \"{}\" — {}\n", n + 1, quote, source));
        }
        answer
    }

    /// Up to [`SENTENCES`] sentences of `text` sharing the most terms with the
    /// question, in their original order.
    fn best_sentences(&self, question_terms: &[String], text: &str) -> String {
        let sentences: Vec<&str> = text
            .split_inclusive(['.', '!', '?', '\n'])
            .map(str::trim)
            .filter(|s| s.chars().any(char::is_alphanumeric))
            .collect();
        let mut scored: Vec<(usize, usize)> = sentences
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let terms = self.bm25.terms(s);
                let overlap = question_terms.iter().filter(|t| terms.contains(t)).count();
                (i, overlap)
            })
            .collect();
        scored.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        let mut chosen: Vec<usize> = scored.iter().take(SENTENCES).map(|&(i, _)| i).collect();
        chosen.sort_unstable();
        chosen
            .iter()
            .map(|&i| sentences[i])
            .collect::<Vec<_>>()
            .join(" ")
    }
}

enum Reply {
    Search(ToolCall),
    Answer(String),
}

#[async_trait::async_trait]
impl LlmProvider for ExtractiveProvider {
    fn name(&self) -> &str {
        MODEL
    }

    async fn stream_chat(
        &self,
        _call: &CallContext,
        request: LlmRequest,
    ) -> Result<LlmStream, LlmError> {
        let mut events = vec![LlmEvent::ResponseModel(MODEL.to_owned())];
        let Some(reply) = self.reply(&request) else {
            return Err(LlmError::Unavailable {
                status: 503,
                message: NOTHING_TO_QUOTE.to_owned(),
            });
        };
        match reply {
            Reply::Search(call) => {
                events.push(LlmEvent::ToolCalls(vec![call]));
                events.push(LlmEvent::Finished(FinishReason::ToolCalls));
            }
            Reply::Answer(text) => {
                events.extend(
                    text.split_inclusive(' ')
                        .map(|word| LlmEvent::TextDelta(word.to_owned())),
                );
                events.push(LlmEvent::Finished(FinishReason::Stop));
            }
        }
        Ok(futures::stream::iter(events.into_iter().map(Ok)).boxed())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::ToolSpec;

    fn request(messages: Vec<ChatMessage>, with_tool: bool) -> LlmRequest {
        LlmRequest {
            model: MODEL.into(),
            messages,
            tools: if with_tool {
                vec![ToolSpec {
                    name: SEARCH_TOOL.into(),
                    description: String::new(),
                    parameters: serde_json::json!({"type": "object"}).into(),
                }]
            } else {
                vec![]
            },
            max_output_tokens: None,
            temperature: None,
        }
    }

    async fn collect(provider: &ExtractiveProvider, request: LlmRequest) -> Vec<LlmEvent> {
        provider
            .stream_chat(
                &CallContext::detached(crate::clock::Clock::system()),
                request,
            )
            .await
            .unwrap()
            .map(Result::unwrap)
            .collect()
            .await
    }

    fn answer(events: &[LlmEvent]) -> String {
        events
            .iter()
            .filter_map(|e| match e {
                LlmEvent::TextDelta(t) => Some(t.as_str()),
                _ => None,
            })
            .collect()
    }

    #[tokio::test]
    async fn a_question_becomes_a_search_then_a_quoted_answer_with_sources() {
        let provider = ExtractiveProvider::default();
        let question = ChatMessage::User {
            content: "How long is the release freeze window?".into(),
        };
        let events = collect(&provider, request(vec![question.clone()], true)).await;
        let LlmEvent::ToolCalls(calls) = &events[1] else {
            panic!("{events:?}")
        };
        assert_eq!(calls[0].name, SEARCH_TOOL);
        let arguments: serde_json::Value = serde_json::from_str(&calls[0].arguments).unwrap();
        assert_eq!(arguments["query"], "How long is the release freeze window?");

        let results = KnowledgeResults {
            passages: vec![
                Passage {
                    collection: "default".into(),
                    doc_id: "people/vacation.md".into(),
                    chunk_index: 0,
                    source_uri: String::new(),
                    text: "Vacation is 25 days. Ask your manager.".into(),
                    score: 0.2,
                },
                Passage {
                    collection: "default".into(),
                    doc_id: "engineering/release.md".into(),
                    chunk_index: 2,
                    source_uri: "file:///handbook/engineering/release.md".into(),
                    text: "Releases ship on Tuesdays. The freeze window lasts 48 hours before a \
                           release. Hotfixes need approval."
                        .into(),
                    score: 0.9,
                },
            ],
        };
        let messages = vec![
            question,
            ChatMessage::Assistant {
                content: String::new(),
                tool_calls: calls.clone(),
            },
            ChatMessage::Tool {
                call_id: calls[0].id.clone(),
                content: serde_json::to_string(&results).unwrap(),
            },
        ];
        let events = collect(&provider, request(messages, true)).await;
        let text = answer(&events);
        // The best passage comes first, its most relevant sentence quoted, with its source.
        let first = text.find("engineering/release.md").unwrap();
        let second = text.find("people/vacation.md").unwrap();
        assert!(first < second, "{text}");
        assert!(
            text.contains("The freeze window lasts 48 hours before a release."),
            "{text}"
        );
        assert!(
            text.contains("file:///handbook/engineering/release.md"),
            "{text}"
        );
        assert_eq!(events.last(), Some(&LlmEvent::Finished(FinishReason::Stop)));
    }

    #[tokio::test]
    async fn without_a_search_tool_or_results_it_says_so() {
        let provider = ExtractiveProvider::default();
        let question = ChatMessage::User {
            content: "Hello?".into(),
        };
        let text = answer(&collect(&provider, request(vec![question.clone()], false)).await);
        assert!(text.contains("No language model is configured"), "{text}");

        let empty = ChatMessage::Tool {
            call_id: "c".into(),
            content: serde_json::to_string(&KnowledgeResults::default()).unwrap(),
        };
        let text = answer(&collect(&provider, request(vec![question, empty], true)).await);
        assert!(text.contains("found nothing"), "{text}");
    }
}
