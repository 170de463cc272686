//! `agentd.v1.RetrievalService`: validates requests completely, then calls the
//! knowledge store for the caller's tenant. IngestDocuments and DeleteDocument
//! need the `ingest` role; Search and ListCollections `agent` or `ingest`.

use std::collections::BTreeMap;

use tonic::{Request, Response, Status};

use crate::config::RetrievalConfig;
use crate::error::{AppError, FieldProblem};
use crate::identity::{Caller, Role};
use crate::pb;
use crate::pb::retrieval_service_server::RetrievalService;
use crate::retrieval::ingest::{self, Document, IngestLimits};
use crate::retrieval::store::{KnowledgeStore, SearchMode, StoreError};

/// Most hits one search returns.
const MAX_TOP_K: u32 = 100;
/// Hits when a request asks for 0.
const DEFAULT_TOP_K: u32 = 10;

/// The RetrievalService implementation.
#[derive(Debug)]
pub struct RetrievalApi {
    store: KnowledgeStore,
    config: RetrievalConfig,
}

impl RetrievalApi {
    /// The service over one store.
    pub fn new(store: KnowledgeStore, config: RetrievalConfig) -> Self {
        Self { store, config }
    }

    fn collection(&self, requested: String) -> Result<String, AppError> {
        let name = if requested.is_empty() {
            self.config.default_collection.clone()
        } else {
            requested
        };
        ingest::check_collection(&name).map_err(|p| AppError::InvalidArgument(vec![p]))?;
        Ok(name)
    }
}

/// The caller, if they hold one of `roles`.
fn caller<T>(request: &Request<T>, roles: &[Role], method: &str) -> Result<Caller, AppError> {
    let caller = request
        .extensions()
        .get::<Caller>()
        .cloned()
        .ok_or_else(|| AppError::Internal(anyhow::anyhow!("no caller on an authenticated call")))?;
    match roles.iter().find(|role| caller.has_role(**role)) {
        Some(_) => Ok(caller),
        None => Err(AppError::PermissionDenied {
            key_name: caller.key_name,
            role: roles[0],
            service: format!("agentd.v1.RetrievalService/{method}"),
        }),
    }
}

fn store_error(err: StoreError) -> AppError {
    match err {
        StoreError::CollectionNotFound(name) => AppError::CollectionNotFound(name),
        StoreError::Unsupported(reason) => AppError::invalid("mode", reason),
        StoreError::Embedding(_) | StoreError::Qdrant(_) => AppError::VectorStore(err.to_string()),
    }
}

/// A metadata filter's keys must be plain payload keys, not reserved ones.
fn check_filter(filter: &BTreeMap<String, String>) -> Vec<FieldProblem> {
    filter
        .keys()
        .filter(|key| {
            ingest::RESERVED_KEYS.contains(&key.as_str())
                || key.is_empty()
                || key.contains(['.', '[', ']'])
        })
        .map(|key| {
            FieldProblem::new(
                format!("filter[{key}]"),
                "must be a metadata key (not empty, not reserved, without '.', '[' or ']')",
            )
        })
        .collect()
}

#[tonic::async_trait]
impl RetrievalService for RetrievalApi {
    async fn ingest_documents(
        &self,
        request: Request<pb::IngestDocumentsRequest>,
    ) -> Result<Response<pb::IngestDocumentsResponse>, Status> {
        let caller = caller(&request, &[Role::Ingest], "IngestDocuments")?;
        let request = request.into_inner();
        let collection = self.collection(request.collection)?;
        let documents: Vec<Document> = request
            .documents
            .into_iter()
            .map(|d| Document {
                doc_id: d.doc_id,
                text: d.text,
                metadata: d.metadata.into_iter().collect(),
                source_uri: d.source_uri,
            })
            .collect();
        let limits = IngestLimits {
            max_documents: self.config.max_batch_documents,
            max_document_bytes: self.config.max_document_bytes,
            max_metadata_entries: 64,
        };
        let problems = ingest::validate_batch(&collection, &documents, &limits);
        if !problems.is_empty() {
            return Err(AppError::InvalidArgument(problems).into());
        }
        let counts = self
            .store
            .ingest(&caller.tenant, &collection, &documents)
            .await
            .map_err(store_error)?;
        Ok(Response::new(pb::IngestDocumentsResponse {
            documents: counts
                .into_iter()
                .map(|(doc_id, chunks)| pb::IngestedDocument { doc_id, chunks })
                .collect(),
        }))
    }

    async fn search(
        &self,
        request: Request<pb::SearchRequest>,
    ) -> Result<Response<pb::SearchResponse>, Status> {
        let caller = caller(&request, &[Role::Agent, Role::Ingest], "Search")?;
        let request = request.into_inner();
        let mut problems = Vec::new();
        let collection = self.collection(request.collection);
        if request.query.trim().is_empty() {
            problems.push(FieldProblem::new("query", "must not be empty"));
        }
        if request.top_k > MAX_TOP_K {
            problems.push(FieldProblem::new(
                "top_k",
                format!("must be between 1 and {MAX_TOP_K} (0 means {DEFAULT_TOP_K})"),
            ));
        }
        let filter: BTreeMap<String, String> = request.filter.into_iter().collect();
        problems.extend(check_filter(&filter));
        let mode = match pb::SearchMode::try_from(request.mode) {
            Ok(pb::SearchMode::Unspecified | pb::SearchMode::Hybrid) => SearchMode::Hybrid,
            Ok(pb::SearchMode::Dense) => SearchMode::Dense,
            Ok(pb::SearchMode::Sparse) => SearchMode::Sparse,
            Err(_) => {
                problems.push(FieldProblem::new("mode", "unknown search mode"));
                SearchMode::Hybrid
            }
        };
        let collection = match collection {
            Ok(name) if problems.is_empty() => name,
            Ok(_) => return Err(AppError::InvalidArgument(problems).into()),
            Err(AppError::InvalidArgument(mut first)) => {
                first.extend(problems);
                return Err(AppError::InvalidArgument(first).into());
            }
            Err(other) => return Err(other.into()),
        };
        let top_k = if request.top_k == 0 {
            DEFAULT_TOP_K
        } else {
            request.top_k
        };
        let outcome = self
            .store
            .search(
                &caller.tenant,
                &collection,
                &request.query,
                u64::from(top_k),
                &filter,
                mode,
            )
            .await
            .map_err(store_error)?;
        let mode = match outcome.mode {
            SearchMode::Hybrid => pb::SearchMode::Hybrid,
            SearchMode::Dense => pb::SearchMode::Dense,
            SearchMode::Sparse => pb::SearchMode::Sparse,
        };
        Ok(Response::new(pb::SearchResponse {
            hits: outcome
                .hits
                .into_iter()
                .map(|hit| pb::SearchHit {
                    doc_id: hit.doc_id,
                    chunk_index: hit.chunk_index,
                    text: hit.text,
                    score: hit.score,
                    metadata: hit.metadata.into_iter().collect(),
                    source_uri: hit.source_uri,
                })
                .collect(),
            mode: mode.into(),
            note: outcome.note,
        }))
    }

    async fn delete_document(
        &self,
        request: Request<pb::DeleteDocumentRequest>,
    ) -> Result<Response<pb::DeleteDocumentResponse>, Status> {
        let caller = caller(&request, &[Role::Ingest], "DeleteDocument")?;
        let request = request.into_inner();
        let collection = self.collection(request.collection)?;
        if request.doc_id.is_empty() {
            return Err(AppError::invalid("doc_id", "is required").into());
        }
        let deleted = self
            .store
            .delete_document(&caller.tenant, &collection, &request.doc_id)
            .await
            .map_err(store_error)?;
        Ok(Response::new(pb::DeleteDocumentResponse {
            deleted_chunks: u32::try_from(deleted).unwrap_or(u32::MAX),
        }))
    }

    async fn list_collections(
        &self,
        request: Request<pb::ListCollectionsRequest>,
    ) -> Result<Response<pb::ListCollectionsResponse>, Status> {
        let caller = caller(&request, &[Role::Agent, Role::Ingest], "ListCollections")?;
        let collections = self
            .store
            .list(&caller.tenant)
            .await
            .map_err(store_error)?
            .into_iter()
            .map(|c| pb::CollectionSummary {
                name: c.name,
                documents: c.documents,
                chunks: c.chunks,
                dense: c.dense,
            })
            .collect();
        Ok(Response::new(pb::ListCollectionsResponse { collections }))
    }
}
