//! `search_knowledge`: hybrid search over the tenant's documents in the
//! collections the request named (or the configured default); the best
//! passages go to the model with their source ids, as [`KnowledgeResults`]
//! JSON, and to the caller as sources.

use std::collections::BTreeMap;

use tracing::Instrument;

use super::{Tool, ToolContext, ToolError, ToolOutput};
use crate::agent::turn::{Source, SourceChunk, merge_sources};
use crate::ids::CollectionName;
use crate::retrieval::knowledge::{KnowledgeResults, Passage, SEARCH_TOOL};
use crate::retrieval::store::{KnowledgeStore, SearchMode, StoreError};

/// Passages returned per search, over all the collections searched.
const TOP_K: u64 = 5;

/// What the model is told when the vector store cannot be reached.
pub const KNOWLEDGE_UNAVAILABLE: &str = "The knowledge base is unavailable right now (its \
    store cannot be reached), so internal documents could not be searched. Answer without \
    them if you can, and tell the user that the knowledge base could not be consulted.";

/// The tool, over one store.
#[derive(Debug)]
pub struct SearchKnowledge {
    store: KnowledgeStore,
    default_collection: CollectionName,
}

impl SearchKnowledge {
    /// Searches `store`; `default_collection` when a request names none.
    pub fn new(store: KnowledgeStore, default_collection: CollectionName) -> Self {
        Self {
            store,
            default_collection,
        }
    }

    /// The best passages of one collection; none when it does not exist (yet).
    async fn search_one(
        &self,
        context: &ToolContext,
        collection: &CollectionName,
        query: &str,
    ) -> Result<Vec<Passage>, StoreError> {
        let span = tracing::info_span!(
            "retrieval",
            otel.name = format!("retrieval {collection}"),
            gen_ai.operation.name = "retrieval",
            gen_ai.data_source.id = collection.as_str(),
        );
        let searched = self
            .store
            .search(
                &context.tenant,
                collection,
                query,
                TOP_K,
                &BTreeMap::new(),
                SearchMode::Hybrid,
            )
            .instrument(span)
            .await;
        match searched {
            Ok(outcome) => Ok(outcome
                .hits
                .into_iter()
                .map(|hit| Passage {
                    collection: collection.to_string(),
                    doc_id: hit.doc_id,
                    chunk_index: hit.chunk_index,
                    source_uri: hit.source_uri,
                    text: hit.text,
                    score: hit.score,
                })
                .collect()),
            // Nothing ingested yet: an empty knowledge base, not a failure.
            Err(StoreError::CollectionNotFound(_)) => Ok(Vec::new()),
            Err(err) => Err(err),
        }
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
    ) -> Result<ToolOutput, ToolError> {
        let query = arguments["query"].as_str().unwrap_or_default();
        let collections = if context.collections.is_empty() {
            std::slice::from_ref(&self.default_collection)
        } else {
            context.collections.as_slice()
        };
        let searches = collections
            .iter()
            .map(|collection| self.search_one(context, collection, query));
        let mut passages = Vec::new();
        for found in futures::future::join_all(searches).await {
            match found {
                Ok(found) => passages.extend(found),
                // The store is down: the turn goes on without it, degraded.
                Err(err) if err.is_unavailable() => {
                    tracing::warn!(error = %err, "knowledge search skipped: the vector store is unavailable");
                    return Ok(ToolOutput {
                        content: KNOWLEDGE_UNAVAILABLE.to_owned(),
                        sources: Vec::new(),
                        knowledge_unavailable: true,
                    });
                }
                Err(err) => return Err(ToolError::Failed(err.to_string())),
            }
        }
        // Scores are rank fusion scores (or BM25 in sparse fallback): good
        // enough to interleave a few collections, not to compare precisely.
        passages.sort_by(|a, b| b.score.total_cmp(&a.score));
        passages.truncate(TOP_K as usize);

        let mut sources = Vec::new();
        merge_sources(&mut sources, passages.iter().map(source).collect());
        let content = serde_json::to_string(&KnowledgeResults { passages })
            .map_err(|err| ToolError::Failed(err.to_string()))?;
        Ok(ToolOutput {
            content,
            sources,
            knowledge_unavailable: false,
        })
    }
}

fn source(passage: &Passage) -> Source {
    Source {
        collection: passage.collection.clone(),
        doc_id: passage.doc_id.clone(),
        source_uri: passage.source_uri.clone(),
        chunks: vec![SourceChunk {
            chunk_index: passage.chunk_index,
            text: passage.text.clone(),
            score: passage.score,
        }],
        cited: false,
    }
}
