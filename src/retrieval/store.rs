//! The knowledge store: documents in and search hits out, all through
//! qdrant-client, against the embedded store or an external Qdrant alike.
//!
//! Collections are shared by tenants; every point carries `tenant_id`, and every
//! read and delete is filtered by the caller's tenant on the server side, with
//! the caller's own filter only ever added to it (`must`), so it can narrow the
//! tenant's documents but never widen them.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use qdrant_client::Qdrant;
use qdrant_client::qdrant::{
    Condition, CountPointsBuilder, CreateCollectionBuilder, CreateFieldIndexCollectionBuilder,
    DeletePointsBuilder, Distance, FieldType, Filter, Fusion, Modifier, NamedVectors, PointId,
    PointStruct, PrefetchQueryBuilder, Query, QueryPointsBuilder, SparseVectorParamsBuilder,
    SparseVectorsConfigBuilder, UpsertPointsBuilder, Value, Vector, VectorInput,
    VectorParamsBuilder, VectorsConfigBuilder,
};

use super::bm25::Bm25;
use super::chunking::Chunker;
use super::embed::{EmbedError, Embedder};
use super::ingest::{self, ChunkPoint, Document, IngestLimits};
use super::{RetrievalField, RetrievalProblem};
use crate::ids::{CollectionName, DocId, TenantId};

/// The sparse vector's name in every collection.
pub const SPARSE: &str = "bm25";
/// The dense vector's name, in collections that have one.
pub const DENSE: &str = "dense";

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

/// The tenant's share of one collection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CollectionSummary {
    /// The collection.
    pub name: String,
    /// The tenant's documents in it.
    pub documents: u64,
    /// Their chunks.
    pub chunks: u64,
    /// Whether it has dense vectors.
    pub dense: bool,
}

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The collection does not exist.
    #[error("collection {0} not found")]
    CollectionNotFound(CollectionName),
    /// Inputs the configuration cannot serve (limits, a search mode); each is listed.
    #[error("{}", .0.iter().map(|p| p.reason.as_str()).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<RetrievalProblem>),
    /// The collection has dense vectors, and no embedding endpoint is configured
    /// to make more.
    #[error(
        "collection {0} has dense vectors but no embedding endpoint is configured \
         ([retrieval.embeddings])"
    )]
    EmbeddingsRequired(CollectionName),
    /// The embedding endpoint failed.
    #[error(transparent)]
    Embedding(#[from] EmbedError),
    /// The vector store failed.
    #[error("the vector store failed: {0}")]
    Qdrant(String),
}

fn qdrant(err: qdrant_client::QdrantError) -> StoreError {
    StoreError::Qdrant(err.to_string())
}

/// Documents and search over one Qdrant.
#[derive(Clone)]
pub struct KnowledgeStore {
    client: Arc<Qdrant>,
    chunker: Chunker,
    limits: IngestLimits,
    bm25: Arc<Bm25>,
    embedder: Option<Arc<dyn Embedder>>,
    collection_prefix: Arc<str>,
}

impl std::fmt::Debug for KnowledgeStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KnowledgeStore")
            .field("chunker", &self.chunker)
            .field("embedder", &self.embedder)
            .field("collection_prefix", &self.collection_prefix)
            .finish()
    }
}

fn tenant_filter(tenant: &TenantId) -> Condition {
    Condition::matches("tenant_id", tenant.as_str().to_owned())
}

fn text(payload: &HashMap<String, Value>, key: &str) -> String {
    payload
        .get(key)
        .and_then(|v| v.as_str().map(ToOwned::to_owned))
        .unwrap_or_default()
}

impl KnowledgeStore {
    /// A store over `client`, taking batches within `limits`, chunking with
    /// `chunker`, embedding with `embedder` when one is configured.
    pub fn new(
        client: Qdrant,
        limits: IngestLimits,
        chunker: Chunker,
        embedder: Option<Arc<dyn Embedder>>,
    ) -> Self {
        Self {
            client: Arc::new(client),
            chunker,
            limits,
            bm25: Arc::new(Bm25::default()),
            embedder,
            collection_prefix: Arc::from(""),
        }
    }

    /// Prefixes every collection's name in Qdrant with `prefix`
    /// (`retrieval.qdrant_collection_prefix`), so that several deployments (or
    /// test runs) can share one Qdrant; callers and payloads keep the plain name.
    pub fn with_collection_prefix(mut self, prefix: &str) -> Self {
        self.collection_prefix = Arc::from(prefix);
        self
    }

    /// The collection's name in Qdrant.
    fn physical(&self, name: &CollectionName) -> String {
        format!("{}{}", self.collection_prefix, name.as_str())
    }

    /// Whether the store answers.
    pub async fn healthy(&self) -> Result<(), StoreError> {
        self.client.health_check().await.map(|_| ()).map_err(qdrant)
    }

    /// Whether the collection exists (for any tenant).
    pub async fn exists(&self, collection: &CollectionName) -> Result<bool, StoreError> {
        self.client
            .collection_exists(self.physical(collection))
            .await
            .map_err(qdrant)
    }

    /// Whether the collection has dense vectors, or `None` if it does not exist.
    /// One round trip answers both (Qdrant says NOT_FOUND for a missing
    /// collection), which a search would otherwise ask separately.
    async fn has_dense(&self, collection: &str) -> Result<Option<bool>, StoreError> {
        let info = match self.client.collection_info(collection).await {
            Ok(info) => info,
            Err(qdrant_client::QdrantError::ResponseError { status })
                if status.code() == tonic::Code::NotFound =>
            {
                return Ok(None);
            }
            Err(err) => return Err(qdrant(err)),
        };
        let vectors = info
            .result
            .and_then(|i| i.config)
            .and_then(|c| c.params)
            .and_then(|p| p.vectors_config)
            .and_then(|v| v.config);
        Ok(Some(has_dense_vector(vectors.as_ref())))
    }

    /// Creates the collection if it does not exist: sparse BM25 (IDF) always,
    /// dense when an embedder is configured, keyword indexes on tenant and doc.
    async fn ensure_collection(&self, name: &CollectionName) -> Result<(), StoreError> {
        if self.exists(name).await? {
            return Ok(());
        }
        let collection = self.physical(name);
        let collection = collection.as_str();
        let mut sparse = SparseVectorsConfigBuilder::default();
        sparse.add_named_vector_params(
            SPARSE,
            SparseVectorParamsBuilder::default().modifier(Modifier::Idf),
        );
        let mut create = CreateCollectionBuilder::new(collection).sparse_vectors_config(sparse);
        if let Some(embedder) = &self.embedder {
            let mut dense = VectorsConfigBuilder::default();
            dense.add_named_vector_params(
                DENSE,
                VectorParamsBuilder::new(embedder.dimensions() as u64, Distance::Cosine),
            );
            create = create.vectors_config(dense);
        }
        if let Err(err) = self.client.create_collection(create).await {
            // Another ingest may have created it meanwhile.
            if !self.exists(name).await? {
                return Err(qdrant(err));
            }
        }
        for field in ["tenant_id", "doc_id"] {
            self.client
                .create_field_index(
                    CreateFieldIndexCollectionBuilder::new(collection, field, FieldType::Keyword)
                        .wait(true),
                )
                .await
                .map_err(qdrant)?;
        }
        Ok(())
    }

    /// Chunks of one document of a tenant.
    async fn chunk_count(
        &self,
        tenant: &TenantId,
        collection: &str,
        doc_id: &str,
    ) -> Result<u64, StoreError> {
        let filter = Filter::must([
            tenant_filter(tenant),
            Condition::matches("doc_id", doc_id.to_owned()),
        ]);
        let counted = self
            .client
            .count(
                CountPointsBuilder::new(collection)
                    .filter(filter)
                    .exact(true),
            )
            .await
            .map_err(qdrant)?;
        Ok(counted.result.map_or(0, |r| r.count))
    }

    /// Stores a batch within the configured limits (checked whole first;
    /// nothing is written when any document is over them): each document's
    /// chunks are upserted (their ids are deterministic, so a re-ingest
    /// overwrites in place), then the chunks past its new length are deleted.
    /// Returns the chunk count per document.
    pub async fn ingest(
        &self,
        tenant: &TenantId,
        name: &CollectionName,
        documents: &[Document],
    ) -> Result<Vec<(DocId, u32)>, StoreError> {
        let problems = self.limits.check(documents);
        if !problems.is_empty() {
            return Err(StoreError::Invalid(problems));
        }
        self.ensure_collection(name).await?;
        let physical = self.physical(name);
        let Some(dense) = self.has_dense(&physical).await? else {
            // Deleted between its creation and now.
            return Err(StoreError::CollectionNotFound(name.clone()));
        };
        if dense && self.embedder.is_none() {
            return Err(StoreError::EmbeddingsRequired(name.clone()));
        }
        let collection = name.as_str();
        let mut counts = Vec::with_capacity(documents.len());
        for document in documents {
            let points = {
                let (chunker, bm25, tenant, collection, document) = (
                    self.chunker,
                    self.bm25.clone(),
                    tenant.clone(),
                    collection.to_owned(),
                    document.clone(),
                );
                tokio::task::spawn_blocking(move || {
                    ingest::chunk_points(&tenant, &collection, &document, &chunker, &bm25)
                })
                .await
                .map_err(|err| StoreError::Qdrant(format!("chunking failed: {err}")))?
            };
            let previous = self
                .chunk_count(tenant, &physical, document.doc_id.as_str())
                .await?;
            let vectors = match (&self.embedder, dense) {
                (Some(embedder), true) => {
                    let texts: Vec<String> = points.iter().map(|p| p.text.clone()).collect();
                    Some(embedder.embed(&texts).await?)
                }
                _ => None,
            };
            let count = points.len();
            let structs: Vec<PointStruct> = points
                .into_iter()
                .enumerate()
                .map(|(i, point)| to_point(point, vectors.as_ref().map(|v| v[i].clone())))
                .collect();
            self.client
                .upsert_points(UpsertPointsBuilder::new(physical.as_str(), structs).wait(true))
                .await
                .map_err(qdrant)?;
            if previous > count as u64 {
                let stale: Vec<PointId> = (count..previous as usize)
                    .map(|i| {
                        super::point_id(tenant, collection, document.doc_id.as_str(), i)
                            .to_string()
                            .into()
                    })
                    .collect();
                self.client
                    .delete_points(
                        DeletePointsBuilder::new(physical.as_str())
                            .points(stale)
                            .wait(true),
                    )
                    .await
                    .map_err(qdrant)?;
            }
            counts.push((document.doc_id.clone(), count as u32));
        }
        Ok(counts)
    }

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
                    .embed(&[query.to_owned()])
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

    /// The collections holding the tenant's documents, with counts.
    pub async fn list(&self, tenant: &TenantId) -> Result<Vec<CollectionSummary>, StoreError> {
        let mut names: Vec<String> = self
            .client
            .list_collections()
            .await
            .map_err(qdrant)?
            .collections
            .into_iter()
            .map(|c| c.name)
            .filter(|name| name.starts_with(&*self.collection_prefix))
            .collect();
        names.sort();
        let mut summaries = Vec::new();
        for physical in names {
            let name = physical[self.collection_prefix.len()..].to_owned();
            let count = |filter: Filter| {
                let request = CountPointsBuilder::new(physical.clone())
                    .filter(filter)
                    .exact(true);
                async move {
                    self.client
                        .count(request)
                        .await
                        .map(|c| c.result.map_or(0, |r| r.count))
                        .map_err(qdrant)
                }
            };
            let chunks = count(Filter::must([tenant_filter(tenant)])).await?;
            if chunks == 0 {
                continue;
            }
            // Every document has exactly one chunk 0.
            let documents = count(Filter::must([
                tenant_filter(tenant),
                Condition::matches("chunk_index", 0_i64),
            ]))
            .await?;
            let Some(dense) = self.has_dense(&physical).await? else {
                continue; // deleted since it was listed
            };
            summaries.push(CollectionSummary {
                name,
                documents,
                chunks,
                dense,
            });
        }
        Ok(summaries)
    }

    /// Deletes one document of the tenant; returns its chunk count.
    pub async fn delete_document(
        &self,
        tenant: &TenantId,
        name: &CollectionName,
        doc_id: &DocId,
    ) -> Result<u64, StoreError> {
        if !self.exists(name).await? {
            return Err(StoreError::CollectionNotFound(name.clone()));
        }
        let physical = self.physical(name);
        let count = self.chunk_count(tenant, &physical, doc_id.as_str()).await?;
        let filter = Filter::must([
            tenant_filter(tenant),
            Condition::matches("doc_id", doc_id.as_str().to_owned()),
        ]);
        self.client
            .delete_points(
                DeletePointsBuilder::new(physical.as_str())
                    .points(filter)
                    .wait(true),
            )
            .await
            .map_err(qdrant)?;
        Ok(count)
    }
}

/// Whether a collection's dense-vector config holds agentd's named dense
/// vector. Qdrant describes a sparse-only collection with an empty map of named
/// dense vectors (not with no config), so presence of a config proves nothing.
fn has_dense_vector(config: Option<&qdrant_client::qdrant::vectors_config::Config>) -> bool {
    use qdrant_client::qdrant::vectors_config::Config;
    match config {
        Some(Config::ParamsMap(named)) => named.map.contains_key(DENSE),
        // One unnamed dense vector: not a layout agentd creates or can search.
        Some(Config::Params(_)) | None => false,
    }
}

/// A chunk as a Qdrant point.
fn to_point(point: ChunkPoint, dense: Option<Vec<f32>>) -> PointStruct {
    let mut vectors = NamedVectors::default().add_vector(
        SPARSE,
        Vector::new_sparse(point.sparse.indices, point.sparse.values),
    );
    if let Some(dense) = dense {
        vectors = vectors.add_vector(DENSE, Vector::new_dense(dense));
    }
    let payload: HashMap<String, Value> = point
        .payload
        .into_iter()
        .map(|(key, value)| (key, json_value(value)))
        .collect();
    PointStruct::new(point.id.to_string(), vectors, payload)
}

fn json_value(value: serde_json::Value) -> Value {
    match value {
        serde_json::Value::String(s) => Value::from(s),
        serde_json::Value::Number(n) => match n.as_i64() {
            Some(i) => Value::from(i),
            None => Value::from(n.as_f64().unwrap_or_default()),
        },
        serde_json::Value::Bool(b) => Value::from(b),
        other => Value::from(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use qdrant_client::qdrant::vectors_config::Config;
    use qdrant_client::qdrant::{VectorParams, VectorParamsMap};

    use super::*;

    #[test]
    fn only_agentds_named_dense_vector_counts_as_dense() {
        let map = |names: &[&str]| {
            Config::ParamsMap(VectorParamsMap {
                map: names
                    .iter()
                    .map(|n| ((*n).to_owned(), VectorParams::default()))
                    .collect(),
            })
        };
        // Qdrant's answer for a sparse-only collection.
        assert!(!has_dense_vector(Some(&map(&[]))));
        assert!(has_dense_vector(Some(&map(&[DENSE]))));
        assert!(!has_dense_vector(Some(&map(&["other"]))));
        assert!(!has_dense_vector(Some(&Config::Params(
            VectorParams::default()
        ))));
        assert!(!has_dense_vector(None));
    }

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
