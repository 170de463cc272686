//! The knowledge store: documents in and search hits out, all through
//! qdrant-client, against the embedded store or an external Qdrant alike.
//!
//! Collections are shared by tenants; every point carries `tenant_id`, and every
//! read and delete is filtered by the caller's tenant on the server side, with
//! the caller's own filter only ever added to it (`must`), so it can narrow the
//! tenant's documents but never widen them.

use std::collections::HashMap;
use std::sync::Arc;

use qdrant_client::Qdrant;
use qdrant_client::qdrant::{
    Condition, CountPointsBuilder, CreateCollectionBuilder, CreateFieldIndexCollectionBuilder,
    DeletePointsBuilder, Distance, FieldType, Filter, Modifier, NamedVectors, PointId, PointStruct,
    SparseVectorParamsBuilder, SparseVectorsConfigBuilder, UpsertPointsBuilder, Value, Vector,
    VectorParamsBuilder, VectorsConfigBuilder,
};

use super::RetrievalProblem;
use super::bm25::Bm25;
use super::chunking::Chunker;
use super::embed::{EmbedError, Embedder};
use super::ingest::{self, ChunkPoint, Document, IngestLimits};
use crate::ids::{CollectionName, DocId, TenantId};

mod search;

pub use search::{Hit, SearchMode, SearchOutcome};

/// The sparse vector's name in every collection.
pub const SPARSE: &str = "bm25";
/// The dense vector's name, in collections that have one.
pub const DENSE: &str = "dense";

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

impl StoreError {
    /// Whether the vector store itself could not be used (unreachable, or
    /// failing): a turn goes on without it, degraded, rather than failing.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, StoreError::Qdrant(_))
    }
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
                    Some(embedder.embed(tenant, &texts).await?)
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
}
