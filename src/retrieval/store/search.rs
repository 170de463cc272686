//! Search: one query to Qdrant (dense, sparse, or both fused by RRF), its
//! hits put in a deterministic order.

use std::collections::BTreeMap;

use qdrant_client::qdrant::{
    Condition, Filter, Fusion, PrefetchQueryBuilder, Query, QueryPointsBuilder, Value, VectorInput,
};

use super::{DENSE, KnowledgeStore, SPARSE, StoreError, qdrant, tenant_filter, text};
use crate::ids::{CollectionName, TenantId};
use crate::retrieval::ingest;
use crate::retrieval::{RetrievalField, RetrievalProblem};

/// How a search ranks chunks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SearchMode {
    /// Dense and sparse, fused by RRF.
    Hybrid,
    /// Dense only.
    Dense,
    /// Sparse only.
    Sparse,
}

/// One search hit.
#[derive(Clone, Debug, PartialEq)]
pub struct Hit {
    /// The document.
    pub doc_id: String,
    /// The chunk's position.
    pub chunk_index: u32,
    /// The chunk's text.
    pub text: String,
    /// Higher is better.
    pub score: f32,
    /// The document's metadata.
    pub metadata: BTreeMap<String, String>,
    /// The document's source.
    pub source_uri: String,
}

/// Hits fetched beyond the `top_k` asked for, so that points tied with the
/// last one kept are all seen (see [`best_first`]). RRF scores tie in small
/// groups: a score is 1/(p+2) + 1/(q+2) over the two lists' positions, so equal
/// sums come from a handful of (p, q) pairs.
const TIE_MARGIN: u64 = 8;

/// The `top_k` best hits in a deterministic order: by score, then document
/// id, then chunk index.
///
/// Qdrant orders tied scores arbitrarily: its RRF (`rrf_scoring`, the same code
/// in Qdrant 1.18.3 and in qdrant-edge 0.7.0) collects points in a hash map
/// with a random seed per process and sorts them unstably, so two processes,
/// or the embedded engine and a Qdrant server, return tied points in different
/// orders and cut different ones at the limit. Ordering them here makes a
/// search's answer the same wherever it runs.
fn best_first(mut hits: Vec<Hit>, top_k: u64) -> Vec<Hit> {
    hits.sort_by(|a, b| {
        b.score
            .total_cmp(&a.score)
            .then_with(|| a.doc_id.cmp(&b.doc_id))
            .then_with(|| a.chunk_index.cmp(&b.chunk_index))
    });
    hits.truncate(usize::try_from(top_k).unwrap_or(usize::MAX));
    hits
}

/// A search's hits and the mode that produced them.
#[derive(Clone, Debug, PartialEq)]
pub struct SearchOutcome {
    /// Best first.
    pub hits: Vec<Hit>,
    /// The mode used.
    pub mode: SearchMode,
    /// Why it differs from the mode asked for.
    pub note: String,
}

impl KnowledgeStore {
    /// Searches the tenant's chunks of a collection.
    pub async fn search(
        &self,
        tenant: &TenantId,
        name: &CollectionName,
        query: &str,
        top_k: u64,
        filter: &BTreeMap<String, String>,
        mode: SearchMode,
    ) -> Result<SearchOutcome, StoreError> {
        let collection = name.as_str();
        let physical = self.physical(name);
        let Some(has_dense) = self.has_dense(&physical).await? else {
            return Err(StoreError::CollectionNotFound(name.clone()));
        };
        let dense_available = has_dense && self.embedder.is_some();
        let (mode, note) = match mode {
            SearchMode::Dense if !dense_available => {
                return Err(StoreError::Invalid(vec![RetrievalProblem {
                    field: RetrievalField::Mode,
                    reason: format!(
                        "collection {collection:?} cannot be searched in DENSE mode: it has no \
                         dense vectors or no embedding endpoint is configured"
                    ),
                }]));
            }
            SearchMode::Hybrid if !dense_available => (
                SearchMode::Sparse,
                "no dense vectors (no embedding endpoint configured): sparse BM25 only".to_owned(),
            ),
            other => (other, String::new()),
        };
        let mut conditions = vec![tenant_filter(tenant)];
        conditions.extend(
            filter
                .iter()
                .map(|(key, value)| Condition::matches(key.clone(), value.clone())),
        );
        let filter = Filter::must(conditions);
        let sparse = self.bm25.query(query);
        let sparse_query = || {
            Query::new_nearest(VectorInput::new_sparse(
                sparse.indices.clone(),
                sparse.values.clone(),
            ))
        };
        let dense_query = match (mode, &self.embedder) {
            (SearchMode::Dense | SearchMode::Hybrid, Some(embedder)) => {
                let vector = embedder
                    .embed(tenant, &[query.to_owned()])
                    .await?
                    .pop()
                    .unwrap_or_default();
                Some(Query::new_nearest(VectorInput::new_dense(vector)))
            }
            _ => None,
        };
        let request = match (mode, dense_query) {
            (SearchMode::Hybrid, Some(dense)) => QueryPointsBuilder::new(physical.as_str())
                .add_prefetch(
                    PrefetchQueryBuilder::default()
                        .query(dense)
                        .using(DENSE)
                        .filter(filter.clone())
                        .limit(top_k * 4),
                )
                .add_prefetch(
                    PrefetchQueryBuilder::default()
                        .query(sparse_query())
                        .using(SPARSE)
                        .filter(filter.clone())
                        .limit(top_k * 4),
                )
                .query(Query::new_fusion(Fusion::Rrf)),
            (SearchMode::Dense, Some(dense)) => QueryPointsBuilder::new(physical.as_str())
                .query(dense)
                .using(DENSE),
            _ => QueryPointsBuilder::new(physical.as_str())
                .query(sparse_query())
                .using(SPARSE),
        };
        if sparse.is_empty() && mode == SearchMode::Sparse {
            return Ok(SearchOutcome {
                hits: Vec::new(),
                mode,
                note: "the query has no searchable terms".to_owned(),
            });
        }
        let response = self
            .client
            .query(
                request
                    .filter(filter)
                    .with_payload(true)
                    .limit(top_k + TIE_MARGIN),
            )
            .await
            .map_err(qdrant)?;
        let hits = response
            .result
            .into_iter()
            .map(|point| {
                let payload = point.payload;
                let metadata = payload
                    .iter()
                    .filter(|(key, _)| !ingest::RESERVED_KEYS.contains(&key.as_str()))
                    .filter_map(|(key, value)| value.as_str().map(|v| (key.clone(), v.clone())))
                    .collect();
                Hit {
                    doc_id: text(&payload, "doc_id"),
                    chunk_index: payload
                        .get("chunk_index")
                        .and_then(Value::as_integer)
                        .and_then(|i| u32::try_from(i).ok())
                        .unwrap_or_default(),
                    text: text(&payload, "text"),
                    source_uri: text(&payload, "source_uri"),
                    score: point.score,
                    metadata,
                }
            })
            .collect();
        Ok(SearchOutcome {
            hits: best_first(hits, top_k),
            mode,
            note,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tied_hits_come_in_one_order_whatever_order_qdrant_sent() {
        let hit = |doc: &str, chunk: u32, score: f32| Hit {
            doc_id: doc.into(),
            chunk_index: chunk,
            text: String::new(),
            score,
            metadata: BTreeMap::new(),
            source_uri: String::new(),
        };
        let rrf = |p: f32, q: f32| 1.0 / (p + 2.0) + 1.0 / (q + 2.0);
        let sent = vec![
            hit("b", 0, rrf(1.0, 0.0)),
            hit("z", 3, 1.0),
            hit("a", 2, rrf(0.0, 1.0)),
            hit("a", 1, rrf(0.0, 1.0)),
            hit("c", 0, 0.1),
        ];
        let mut reversed = sent.clone();
        reversed.reverse();
        let order = |hits: Vec<Hit>| -> Vec<(String, u32)> {
            best_first(hits, 3)
                .into_iter()
                .map(|h| (h.doc_id, h.chunk_index))
                .collect()
        };
        let expected = [
            ("z".to_owned(), 3),
            ("a".to_owned(), 1),
            ("a".to_owned(), 2),
        ];
        assert_eq!(order(sent), expected);
        assert_eq!(order(reversed), expected);
    }
}
