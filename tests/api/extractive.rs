//! The extractive provider in the agent loop: it calls `search_knowledge` with
//! the question and answers by quoting the passages, with their sources.

use std::sync::Arc;

use agentd::agent::tools::{Tool, ToolContext, ToolError, ToolOutput};
use agentd::agent::turn::{AgentEvent, ToolOutcome, TurnFinish};
use agentd::llm::extractive::{ExtractiveProvider, KnowledgeResults, Passage};
use futures::StreamExt;

use crate::agent_cancel::{orchestrator_with, start_turn};

/// A knowledge search over two fixed passages, scoped to the caller's tenant.
#[derive(Debug)]
struct FixedKnowledge;

#[async_trait::async_trait]
impl Tool for FixedKnowledge {
    fn name(&self) -> &str {
        "search_knowledge"
    }
    fn description(&self) -> &str {
        "Searches the knowledge base."
    }
    fn parameters(&self) -> serde_json::Value {
        serde_json::json!({
            "type": "object",
            "properties": {"query": {"type": "string"}},
            "required": ["query"],
        })
    }
    async fn execute(
        &self,
        context: &ToolContext,
        arguments: serde_json::Value,
    ) -> Result<ToolOutput, ToolError> {
        assert_eq!(arguments["query"], "How many days of vacation do we get?");
        let results = KnowledgeResults {
            passages: vec![Passage {
                collection: "default".into(),
                doc_id: format!("{}/people/vacation.md", context.tenant),
                chunk_index: 0,
                source_uri: String::new(),
                text: "Everyone gets 25 days of paid vacation a year. Unused days expire in March."
                    .into(),
                score: 1.0,
            }],
        };
        serde_json::to_string(&results)
            .map(ToolOutput::from)
            .map_err(|e| ToolError::Failed(e.to_string()))
    }
}

#[tokio::test]
async fn with_no_llm_the_agent_answers_by_quoting_the_knowledge_base() {
    let (_dir, orchestrator) = orchestrator_with(
        Arc::new(ExtractiveProvider::default()),
        Arc::new(FixedKnowledge),
    );
    let events: Vec<AgentEvent> = start_turn(
        &orchestrator,
        "How many days of vacation do we get?",
        "search_knowledge",
    )
    .await
    .map(Result::unwrap)
    .collect()
    .await;
    assert!(
        events.iter().any(|e| matches!(
            e,
            AgentEvent::ToolResult {
                outcome: ToolOutcome::Ok,
                ..
            }
        )),
        "{events:?}"
    );
    let Some(AgentEvent::Completed(outcome)) = events.last() else {
        panic!("{events:?}")
    };
    assert_eq!(outcome.finish, TurnFinish::Stop);
    assert!(
        outcome.answer.contains("25 days of paid vacation"),
        "{}",
        outcome.answer
    );
    assert!(
        outcome.answer.contains("default/people/vacation.md"),
        "{}",
        outcome.answer
    );
    let deltas = events
        .iter()
        .filter(|e| matches!(e, AgentEvent::Delta(_)))
        .count();
    assert!(deltas > 5, "the answer was not streamed: {deltas} deltas");
}
