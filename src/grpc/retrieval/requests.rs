//! RetrievalService requests as domain values. The conversions check each
//! request's shape (names and ids, blank text, metadata keys, the contract's
//! fixed ranges, repeats) and name every problem by its field path; the store
//! checks the configured limits and names its fields by [`RetrievalField`],
//! whose paths are also here.

use std::collections::BTreeMap;

use crate::error::{AppError, FieldPath, FieldProblem};
use crate::ids::{CollectionName, DocId};
use crate::pb;
use crate::retrieval::RetrievalField;
use crate::retrieval::ingest::{Document, MAX_METADATA_ENTRIES, is_metadata_key};
use crate::retrieval::store::SearchMode;

/// Most hits one search returns.
pub const MAX_TOP_K: u32 = 100;
/// Hits when a request asks for 0.
pub const DEFAULT_TOP_K: u32 = 10;

impl FieldPath for RetrievalField {
    fn field_path(&self) -> String {
        match self {
            RetrievalField::Documents => "documents".to_owned(),
            RetrievalField::DocumentText(i) => format!("documents[{i}].text"),
            RetrievalField::Mode => "mode".to_owned(),
        }
    }
}

/// A batch to ingest.
#[derive(Clone, Debug, PartialEq)]
pub struct IngestBatch {
    /// The collection; `None` for the configured default.
    pub collection: Option<CollectionName>,
    /// The documents, at least one, distinct ids.
    pub documents: Vec<Document>,
}

/// A search.
#[derive(Clone, Debug, PartialEq)]
pub struct SearchQuery {
    /// The collection; `None` for the configured default.
    pub collection: Option<CollectionName>,
    /// The query text, not blank.
    pub query: String,
    /// Hits wanted, 1 to [`MAX_TOP_K`].
    pub top_k: u32,
    /// Metadata that every hit must carry.
    pub filter: BTreeMap<String, String>,
    /// How to rank.
    pub mode: SearchMode,
}

/// One document of a collection.
#[derive(Clone, Debug, PartialEq)]
pub struct DocumentRef {
    /// The collection; `None` for the configured default.
    pub collection: Option<CollectionName>,
    /// The document.
    pub doc_id: DocId,
}

/// The collection named in a request: `None` when empty (the default).
fn collection(name: String, problems: &mut Vec<FieldProblem>) -> Option<CollectionName> {
    if name.is_empty() {
        return None;
    }
    CollectionName::try_from(name)
        .map_err(|err| problems.push(FieldProblem::new("collection", err.to_string())))
        .ok()
}

fn invalid_unless_empty(problems: Vec<FieldProblem>) -> Result<(), AppError> {
    if problems.is_empty() {
        Ok(())
    } else {
        Err(AppError::InvalidArgument(problems))
    }
}

impl TryFrom<pb::IngestDocumentsRequest> for IngestBatch {
    type Error = AppError;

    fn try_from(request: pb::IngestDocumentsRequest) -> Result<Self, Self::Error> {
        let mut problems = Vec::new();
        let collection = collection(request.collection, &mut problems);
        if request.documents.is_empty() {
            problems.push(FieldProblem::new("documents", "must not be empty"));
        }
        let mut documents: Vec<Document> = Vec::with_capacity(request.documents.len());
        for (i, document) in request.documents.into_iter().enumerate() {
            let field = |name: &str| format!("documents[{i}].{name}");
            let doc_id = match DocId::try_from(document.doc_id) {
                Err(err) => {
                    problems.push(FieldProblem::new(field("doc_id"), err.to_string()));
                    None
                }
                Ok(id) if documents.iter().any(|d| d.doc_id == id) => {
                    problems.push(FieldProblem::new(
                        field("doc_id"),
                        format!("{:?} appears twice in the batch", id.as_str()),
                    ));
                    None
                }
                Ok(id) => Some(id),
            };
            if document.text.trim().is_empty() {
                problems.push(FieldProblem::new(field("text"), "must not be empty"));
            }
            if document.metadata.len() > MAX_METADATA_ENTRIES {
                problems.push(FieldProblem::new(
                    field("metadata"),
                    format!(
                        "{} entries; the limit is {MAX_METADATA_ENTRIES}",
                        document.metadata.len()
                    ),
                ));
            }
            let mut keys: Vec<&String> = document.metadata.keys().collect();
            keys.sort();
            for key in keys.into_iter().filter(|key| !is_metadata_key(key)) {
                problems.push(FieldProblem::new(
                    field("metadata"),
                    format!(
                        "key {key:?} must be 1 to 64 bytes, not reserved, without '.', '[' or ']'"
                    ),
                ));
            }
            if let Some(doc_id) = doc_id {
                documents.push(Document {
                    doc_id,
                    text: document.text,
                    metadata: document.metadata.into_iter().collect(),
                    source_uri: document.source_uri,
                });
            }
        }
        invalid_unless_empty(problems)?;
        Ok(Self {
            collection,
            documents,
        })
    }
}

impl TryFrom<pb::SearchRequest> for SearchQuery {
    type Error = AppError;

    fn try_from(request: pb::SearchRequest) -> Result<Self, Self::Error> {
        let mut problems = Vec::new();
        let collection = collection(request.collection, &mut problems);
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
        for key in filter.keys().filter(|key| !is_metadata_key(key)) {
            problems.push(FieldProblem::new(
                format!("filter[{key}]"),
                "must be a metadata key (not empty, not reserved, without '.', '[' or ']')",
            ));
        }
        let mode = match pb::SearchMode::try_from(request.mode) {
            Ok(pb::SearchMode::Unspecified | pb::SearchMode::Hybrid) => SearchMode::Hybrid,
            Ok(pb::SearchMode::Dense) => SearchMode::Dense,
            Ok(pb::SearchMode::Sparse) => SearchMode::Sparse,
            Err(_) => {
                problems.push(FieldProblem::new("mode", "unknown search mode"));
                SearchMode::Hybrid
            }
        };
        invalid_unless_empty(problems)?;
        Ok(Self {
            collection,
            query: request.query,
            top_k: if request.top_k == 0 {
                DEFAULT_TOP_K
            } else {
                request.top_k
            },
            filter,
            mode,
        })
    }
}

impl TryFrom<pb::DeleteDocumentRequest> for DocumentRef {
    type Error = AppError;

    fn try_from(request: pb::DeleteDocumentRequest) -> Result<Self, Self::Error> {
        let mut problems = Vec::new();
        let collection = collection(request.collection, &mut problems);
        let doc_id = if request.doc_id.is_empty() {
            problems.push(FieldProblem::new("doc_id", "is required"));
            None
        } else {
            DocId::try_from(request.doc_id)
                .map_err(|err| problems.push(FieldProblem::new("doc_id", err.to_string())))
                .ok()
        };
        match doc_id {
            Some(doc_id) if problems.is_empty() => Ok(Self { collection, doc_id }),
            _ => Err(AppError::InvalidArgument(problems)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::grpc::invalid_fields as fields;

    fn document(doc_id: &str, text: &str) -> pb::Document {
        pb::Document {
            doc_id: doc_id.into(),
            text: text.into(),
            ..Default::default()
        }
    }

    #[test]
    fn every_problem_of_a_batch_is_named() {
        let mut reserved = document("c.md", "C.");
        reserved.metadata.insert("tenant_id".into(), "other".into());
        let request = pb::IngestDocumentsRequest {
            collection: "bad name!".into(),
            documents: vec![
                document("a.md", "A."),
                document("a.md", "again"),
                document("", "   "),
                reserved,
            ],
        };
        assert_eq!(
            fields(IngestBatch::try_from(request).unwrap_err()),
            [
                "collection",
                "documents[1].doc_id",
                "documents[2].doc_id",
                "documents[2].text",
                "documents[3].metadata",
            ]
        );
        let empty = pb::IngestDocumentsRequest::default();
        assert_eq!(
            fields(IngestBatch::try_from(empty).unwrap_err()),
            ["documents"]
        );
    }

    #[test]
    fn a_good_batch_converts_with_the_default_collection() {
        let request = pb::IngestDocumentsRequest {
            collection: String::new(),
            documents: vec![document("a.md", "A."), document("b.md", "B.")],
        };
        let batch = IngestBatch::try_from(request).unwrap();
        assert_eq!(batch.collection, None);
        assert_eq!(batch.documents[1].doc_id.as_str(), "b.md");
    }

    #[test]
    fn searches_are_checked_and_defaulted() {
        let request = pb::SearchRequest {
            query: "x".into(),
            ..Default::default()
        };
        let query = SearchQuery::try_from(request).unwrap();
        assert_eq!(
            (query.top_k, query.mode),
            (DEFAULT_TOP_K, SearchMode::Hybrid)
        );
        let request = pb::SearchRequest {
            collection: "a.b".into(),
            query: " ".into(),
            top_k: 101,
            filter: [("doc_id".to_owned(), "x".to_owned())].into(),
            mode: 42,
        };
        assert_eq!(
            fields(SearchQuery::try_from(request).unwrap_err()),
            ["collection", "query", "top_k", "filter[doc_id]", "mode"]
        );
    }

    #[test]
    fn a_deletion_needs_a_document() {
        let request = pb::DeleteDocumentRequest::default();
        assert_eq!(
            fields(DocumentRef::try_from(request).unwrap_err()),
            ["doc_id"]
        );
    }
}
