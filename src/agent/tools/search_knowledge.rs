//! `search_knowledge`: hybrid search over the tenant's documents in the
//! configured collection; the passages go to the model with their source ids, as
//! [`KnowledgeResults`] JSON.

use std::collections::BTreeMap;

use tracing::Instrument;

use super::{Tool, ToolContext, ToolError};
use crate::llm::extractive::{KnowledgeResults, Passage, SEARCH_TOOL};
use crate::retrieval::store::{KnowledgeStore, SearchMode, StoreError};

/// Passages returned per search.
const TOP_K: u64 = 5;

/// The tool, over one store and collection.
#[derive(Debug)]
pub struct SearchKnowledge {
    store: KnowledgeStore,
    collection: String,
}

impl SearchKnowledge {
    /// Searches `collection` of `store`.
    pub fn new(store: KnowledgeStore, collection: String) -> Self {
        Self { store, collection }
    }
}

#[async_trait::async_trait]
impl Tool for SearchKnowledge {
    fn name(&self) -> &str {
        SEARCH_TOOL
    }

    fn description(&self) -> &str {
        "Searches the company's knowledge base (internal documents) and returns the most \
         relevant passages with their document ids. Use it for any question about internal \
         policies, procedures or facts; cite the doc_id of the passages you use."
    }

    fn parameters(&self) -> serde_json::Value {
        serde_json::json!({
            "type": "object",
            "properties": {
                "query": {"type": "string", "minLength": 1, "description": "What to look for."}
            },
            "required": ["query"],
            "additionalProperties": false
        })
    }

    async fn execute(
        &self,
        context: &ToolContext,
        arguments: serde_json::Value,
    ) -> Result<String, ToolError> {
        let query = arguments["query"].as_str().unwrap_or_default();
        let span = tracing::info_span!(
            "retrieval",
            otel.name = format!("retrieval {}", self.collection),
            gen_ai.operation.name = "retrieval",
            gen_ai.data_source.id = self.collection.as_str(),
        );
        let searched = self
            .store
            .search(
                &context.tenant,
                &self.collection,
                query,
                TOP_K,
                &BTreeMap::new(),
                SearchMode::Hybrid,
            )
            .instrument(span)
            .await;
        let hits = match searched {
            Ok(outcome) => outcome.hits,
            // Nothing ingested yet: an empty knowledge base, not a failure.
            Err(StoreError::CollectionNotFound(_)) => Vec::new(),
            Err(err) => return Err(ToolError::Failed(err.to_string())),
        };
        let results = KnowledgeResults {
            passages: hits
                .into_iter()
                .map(|hit| Passage {
                    doc_id: hit.doc_id,
                    chunk_index: hit.chunk_index,
                    source_uri: hit.source_uri,
                    text: hit.text,
                    score: hit.score,
                })
                .collect(),
        };
        serde_json::to_string(&results).map_err(|err| ToolError::Failed(err.to_string()))
    }
}
