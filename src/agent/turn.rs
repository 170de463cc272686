//! One turn of a conversation as the domain sees it: what the caller asks, and
//! the events the agent streams back.

use std::time::Duration;

use crate::ids::{CollectionName, SessionId, TenantId, TurnId};
use crate::llm::catalog::ModelChoice;
use crate::llm::router::report::{AttemptRecord, DegradationReason};
use crate::llm::{CallDeadline, Delivery, ToolCall};

/// What the caller asks in one turn, well formed (the transport has checked its
/// shape: a message that is not blank, distinct tools and collections, a
/// temperature from 0 to 2); the orchestrator checks it against the
/// configuration and state.
#[derive(Clone, Debug, PartialEq)]
pub struct TurnRequest {
    /// The user's message.
    pub message: String,
    /// The session to continue; `None` starts a new one.
    pub session: Option<SessionId>,
    /// Which model answers.
    pub model: ModelChoice,
    /// Cap on output tokens per model call.
    pub max_output_tokens: Option<u32>,
    /// Sampling temperature.
    pub temperature: Option<f32>,
    /// The tools offered; empty offers the defaults.
    pub tools: Vec<String>,
    /// The knowledge collections searched; empty searches the default one.
    pub collections: Vec<CollectionName>,
}

/// Who asks for a turn, and until when.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TurnOrigin {
    /// The caller's tenant.
    pub tenant: TenantId,
    /// The name of the caller's API key (`anonymous` with auth off).
    pub key: String,
    /// The call's request id, for correlation.
    pub request_id: String,
    /// When the caller stops waiting, on the orchestrator's clock.
    pub deadline: Option<CallDeadline>,
    /// How the answer reaches the caller.
    pub delivery: Delivery,
}

/// How one tool call ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ToolOutcome {
    /// It returned a result.
    Ok,
    /// It ran and failed.
    Error,
    /// Its arguments were invalid.
    InvalidArguments,
    /// It did not finish in time.
    Timeout,
    /// It was not offered for this turn, does not exist, or was not run.
    Refused,
}

impl ToolOutcome {
    /// The label used in metrics and spans.
    pub fn as_str(self) -> &'static str {
        match self {
            ToolOutcome::Ok => "ok",
            ToolOutcome::Error => "error",
            ToolOutcome::InvalidArguments => "invalid_arguments",
            ToolOutcome::Timeout => "timeout",
            ToolOutcome::Refused => "refused",
        }
    }
}

/// Why a turn ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TurnFinish {
    /// The model finished.
    Stop,
    /// The output cap was reached.
    Length,
    /// The provider's content filter stopped the answer.
    ContentFilter,
    /// The model still wanted tools after `agent.max_steps` calls.
    MaxSteps,
    /// agentd's output guardrails withheld or cut the answer.
    Guardrail,
}

/// Tokens a turn used.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TurnUsage {
    /// Prompt tokens, summed over model calls.
    pub input_tokens: u32,
    /// Completion tokens, summed over model calls.
    pub output_tokens: u32,
    /// Whether any count is a tiktoken estimate.
    pub estimated: bool,
    /// What the turn's model calls cost: every attempt that reached an
    /// upstream, failed, retried and hedged ones included.
    pub cost: crate::cost::money::Usd,
    /// The budgets the turn's last model call reserved against, with how full
    /// each was then (that reservation included).
    pub budgets: Vec<crate::cost::ledger::BudgetUse>,
}

impl TurnUsage {
    /// Adds one model call's counts.
    pub fn add(&mut self, input_tokens: u32, output_tokens: u32, estimated: bool) {
        self.input_tokens = self.input_tokens.saturating_add(input_tokens);
        self.output_tokens = self.output_tokens.saturating_add(output_tokens);
        self.estimated |= estimated;
    }
}

/// The result of a completed turn.
#[derive(Clone, Debug, PartialEq)]
pub struct TurnOutcome {
    /// The server's id of the turn.
    pub turn_id: TurnId,
    /// Every text delta, concatenated.
    pub answer: String,
    /// Why it ended.
    pub finish: TurnFinish,
    /// The session holding the turn.
    pub session_id: SessionId,
    /// The model that answered the last model call.
    pub model: String,
    /// The route that served the turn.
    pub route: String,
    /// Every attempt of every model call, in order.
    pub attempts: Vec<AttemptRecord>,
    /// Why the answer is degraded, if it is.
    pub degraded: Option<DegradationReason>,
    /// The knowledge the answer drew on.
    pub sources: Vec<Source>,
    /// Stored on the primary, but the required replicas did not confirm it.
    pub replication_unconfirmed: bool,
    /// The turn's tokens and cost, as in the `usage` event.
    pub usage: TurnUsage,
    /// Each guardrail decision that affected the turn.
    pub guardrails: Vec<crate::guardrails::decisions::Decision>,
}

/// One document whose passages were given to the model.
#[derive(Clone, Debug, PartialEq)]
pub struct Source {
    /// The collection it was found in.
    pub collection: String,
    /// The document's id.
    pub doc_id: String,
    /// Where it lives, if known.
    pub source_uri: String,
    /// The passages given to the model, best first.
    pub chunks: Vec<SourceChunk>,
    /// Whether the answer names the document's id.
    pub cited: bool,
}

/// One passage given to the model.
#[derive(Clone, Debug, PartialEq)]
pub struct SourceChunk {
    /// Its position in the document.
    pub chunk_index: u32,
    /// Its text.
    pub text: String,
    /// Its search score.
    pub score: f32,
}

/// Adds `found` to `sources`: one entry per (collection, document), each
/// chunk once, documents in the order first found, chunks best first.
pub fn merge_sources(sources: &mut Vec<Source>, found: Vec<Source>) {
    for source in found {
        match sources
            .iter_mut()
            .find(|s| s.collection == source.collection && s.doc_id == source.doc_id)
        {
            None => sources.push(source),
            Some(known) => {
                for chunk in source.chunks {
                    if !known
                        .chunks
                        .iter()
                        .any(|c| c.chunk_index == chunk.chunk_index)
                    {
                        known.chunks.push(chunk);
                    }
                }
                known.chunks.sort_by(|a, b| b.score.total_cmp(&a.score));
            }
        }
    }
}

/// Marks the sources the answer cites (names by doc_id).
pub fn mark_cited(sources: &mut [Source], answer: &str) {
    for source in sources {
        source.cited = answer.contains(&source.doc_id);
    }
}

/// One event of a running turn, in the order the client receives them.
#[derive(Clone, Debug, PartialEq)]
pub enum AgentEvent {
    /// The turn was accepted.
    Started {
        /// The call's request id.
        request_id: String,
        /// The server's id of the turn.
        turn_id: TurnId,
        /// The model the route tries first.
        model: String,
        /// Fingerprint of the system prompt.
        system_prompt_version: String,
        /// The session (new or continued).
        session_id: SessionId,
    },
    /// Answer text.
    Delta(String),
    /// The model called a tool.
    ToolCall(ToolCall),
    /// A tool call ended.
    ToolResult {
        /// The call's id.
        call_id: String,
        /// How it ended.
        outcome: ToolOutcome,
        /// Result or error, at most 200 characters.
        summary: String,
        /// Time it took.
        latency: Duration,
    },
    /// The knowledge found for the turn, once, before `Usage`, when any.
    Sources(Vec<Source>),
    /// Tokens used by the turn.
    Usage(TurnUsage),
    /// The turn is complete and stored.
    Completed(TurnOutcome),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(collection: &str, doc_id: &str, chunks: &[(u32, f32)]) -> Source {
        Source {
            collection: collection.into(),
            doc_id: doc_id.into(),
            source_uri: String::new(),
            chunks: chunks
                .iter()
                .map(|&(chunk_index, score)| SourceChunk {
                    chunk_index,
                    text: format!("chunk {chunk_index}"),
                    score,
                })
                .collect(),
            cited: false,
        }
    }

    #[test]
    fn sources_merge_by_document_and_chunk() {
        let mut sources = vec![source("a", "x.md", &[(0, 0.5)])];
        merge_sources(
            &mut sources,
            vec![
                source("a", "x.md", &[(0, 0.5), (3, 0.9)]),
                source("b", "x.md", &[(1, 0.1)]),
                source("a", "y.md", &[(2, 0.2)]),
            ],
        );
        let keys: Vec<_> = sources
            .iter()
            .map(|s| (s.collection.as_str(), s.doc_id.as_str()))
            .collect();
        assert_eq!(keys, [("a", "x.md"), ("b", "x.md"), ("a", "y.md")]);
        let chunks: Vec<_> = sources[0].chunks.iter().map(|c| c.chunk_index).collect();
        assert_eq!(chunks, [3, 0]);

        mark_cited(&mut sources, "See y.md.");
        let cited: Vec<_> = sources.iter().map(|s| s.cited).collect();
        assert_eq!(cited, [false, false, true]);
    }
}
