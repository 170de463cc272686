//! `agentd.v1.RetrievalService`: every handler converts its request
//! (`requests`), calls the knowledge store for the caller's tenant, and
//! converts the result back. Roles are the auth layer's; errors become
//! statuses through `AppError`.

mod requests;

use tonic::{Request, Response, Status};

use super::caller;
use crate::error::AppError;
use crate::ids::CollectionName;
use crate::pb;
use crate::pb::retrieval_service_server::RetrievalService;
use crate::retrieval::store::{KnowledgeStore, SearchMode};

use requests::{DocumentRef, IngestBatch, SearchQuery};

/// The RetrievalService implementation.
#[derive(Debug)]
pub struct RetrievalApi {
    store: KnowledgeStore,
    default_collection: CollectionName,
}

impl RetrievalApi {
    /// The service over one store; requests that name no collection use
    /// `default_collection`.
    pub fn new(store: KnowledgeStore, default_collection: CollectionName) -> Self {
        Self {
            store,
            default_collection,
        }
    }

    fn collection(&self, requested: Option<CollectionName>) -> CollectionName {
        requested.unwrap_or_else(|| self.default_collection.clone())
    }
}

#[tonic::async_trait]
impl RetrievalService for RetrievalApi {
    async fn ingest_documents(
        &self,
        request: Request<pb::IngestDocumentsRequest>,
    ) -> Result<Response<pb::IngestDocumentsResponse>, Status> {
        let caller = caller(&request)?;
        let batch = IngestBatch::try_from(request.into_inner())?;
        let collection = self.collection(batch.collection);
        let counts = self
            .store
            .ingest(&caller.tenant, &collection, &batch.documents)
            .await
            .map_err(AppError::from)?;
        Ok(Response::new(pb::IngestDocumentsResponse {
            documents: counts
                .into_iter()
                .map(|(doc_id, chunks)| pb::IngestedDocument {
                    doc_id: doc_id.into(),
                    chunks,
                })
                .collect(),
        }))
    }

    async fn search(
        &self,
        request: Request<pb::SearchRequest>,
    ) -> Result<Response<pb::SearchResponse>, Status> {
        let caller = caller(&request)?;
        let query = SearchQuery::try_from(request.into_inner())?;
        let outcome = self
            .store
            .search(
                &caller.tenant,
                &self.collection(query.collection),
                &query.query,
                u64::from(query.top_k),
                &query.filter,
                query.mode,
            )
            .await
            .map_err(AppError::from)?;
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
        let caller = caller(&request)?;
        let document = DocumentRef::try_from(request.into_inner())?;
        let deleted = self
            .store
            .delete_document(
                &caller.tenant,
                &self.collection(document.collection),
                &document.doc_id,
            )
            .await
            .map_err(AppError::from)?;
        Ok(Response::new(pb::DeleteDocumentResponse {
            deleted_chunks: u32::try_from(deleted).unwrap_or(u32::MAX),
        }))
    }

    async fn list_collections(
        &self,
        request: Request<pb::ListCollectionsRequest>,
    ) -> Result<Response<pb::ListCollectionsResponse>, Status> {
        let caller = caller(&request)?;
        let collections = self
            .store
            .list(&caller.tenant)
            .await
            .map_err(AppError::from)?
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
