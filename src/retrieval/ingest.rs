//! Turning a batch of documents into the points stored for them: the whole batch
//! is validated before anything is written (every problem named by its field),
//! then each document is chunked and each chunk becomes a point with a
//! deterministic id, a sparse BM25 vector and its payload.

use std::collections::{BTreeMap, HashSet};

use super::bm25::{Bm25, SparseVector};
use super::chunking::Chunker;
use super::point_id;
use crate::error::FieldProblem;
use crate::identity::TenantId;

/// Payload keys agentd sets on every point; document metadata may not use them.
pub const RESERVED_KEYS: &[&str] = &[
    "tenant_id",
    "collection",
    "doc_id",
    "chunk_index",
    "text",
    "source_uri",
];

/// A document to ingest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Document {
    /// The caller's id for it; re-ingesting the same id replaces it.
    pub doc_id: String,
    /// Its text.
    pub text: String,
    /// String metadata, stored with every chunk and filterable in searches.
    pub metadata: BTreeMap<String, String>,
    /// Where it lives (a URL or path), returned with search hits.
    pub source_uri: String,
}

/// Bounds on one ingest batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IngestLimits {
    /// Documents per batch.
    pub max_documents: usize,
    /// Bytes of one document's text.
    pub max_document_bytes: usize,
    /// Metadata entries per document.
    pub max_metadata_entries: usize,
}

/// One chunk, ready to be stored.
#[derive(Clone, Debug, PartialEq)]
pub struct ChunkPoint {
    /// Deterministic point id (see [`point_id`]).
    pub id: uuid::Uuid,
    /// The document.
    pub doc_id: String,
    /// The chunk's position.
    pub chunk_index: usize,
    /// The chunk's text.
    pub text: String,
    /// Its BM25 vector.
    pub sparse: SparseVector,
    /// The payload: the reserved keys, then the document's metadata.
    pub payload: serde_json::Map<String, serde_json::Value>,
}

/// A collection name: 1 to 64 characters from `[A-Za-z0-9_-]`.
pub fn check_collection(name: &str) -> Result<(), FieldProblem> {
    let valid = (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if valid {
        Ok(())
    } else {
        Err(FieldProblem::new(
            "collection",
            "must be 1 to 64 characters from [A-Za-z0-9_-]",
        ))
    }
}

/// Every problem of the batch, or none.
pub fn validate_batch(
    collection: &str,
    documents: &[Document],
    limits: &IngestLimits,
) -> Vec<FieldProblem> {
    let mut problems = Vec::new();
    if let Err(problem) = check_collection(collection) {
        problems.push(problem);
    }
    if documents.is_empty() {
        problems.push(FieldProblem::new("documents", "must not be empty"));
    }
    if documents.len() > limits.max_documents {
        problems.push(FieldProblem::new(
            "documents",
            format!(
                "{} documents; the limit per batch is {}",
                documents.len(),
                limits.max_documents
            ),
        ));
    }
    let mut seen = HashSet::new();
    for (i, document) in documents.iter().enumerate() {
        let field = |name: &str| format!("documents[{i}].{name}");
        let id = &document.doc_id;
        if id.trim().is_empty() || id.len() > 512 || id.chars().any(char::is_control) {
            problems.push(FieldProblem::new(
                field("doc_id"),
                "must be 1 to 512 bytes with no control characters",
            ));
        } else if !seen.insert(id.as_str()) {
            problems.push(FieldProblem::new(
                field("doc_id"),
                format!("{id:?} appears twice in the batch"),
            ));
        }
        if document.text.trim().is_empty() {
            problems.push(FieldProblem::new(field("text"), "must not be empty"));
        } else if document.text.len() > limits.max_document_bytes {
            problems.push(FieldProblem::new(
                field("text"),
                format!(
                    "is {} bytes; the limit is {} bytes",
                    document.text.len(),
                    limits.max_document_bytes
                ),
            ));
        }
        if document.metadata.len() > limits.max_metadata_entries {
            problems.push(FieldProblem::new(
                field("metadata"),
                format!(
                    "{} entries; the limit is {}",
                    document.metadata.len(),
                    limits.max_metadata_entries
                ),
            ));
        }
        for key in document.metadata.keys() {
            if RESERVED_KEYS.contains(&key.as_str()) {
                problems.push(FieldProblem::new(
                    field("metadata"),
                    format!("key {key:?} is reserved"),
                ));
            } else if key.is_empty() || key.len() > 64 || key.contains(['.', '[', ']']) {
                problems.push(FieldProblem::new(
                    field("metadata"),
                    format!("key {key:?} must be 1 to 64 bytes without '.', '[' or ']'"),
                ));
            }
        }
    }
    problems
}

/// The points of one (validated) document.
pub fn chunk_points(
    tenant: &TenantId,
    collection: &str,
    document: &Document,
    chunker: &Chunker,
    bm25: &Bm25,
) -> Vec<ChunkPoint> {
    chunker
        .chunk(&document.text)
        .into_iter()
        .map(|chunk| {
            let mut payload = serde_json::Map::new();
            payload.insert("tenant_id".into(), tenant.as_str().into());
            payload.insert("collection".into(), collection.into());
            payload.insert("doc_id".into(), document.doc_id.clone().into());
            payload.insert("chunk_index".into(), chunk.index.into());
            payload.insert("text".into(), chunk.text.clone().into());
            payload.insert("source_uri".into(), document.source_uri.clone().into());
            for (key, value) in &document.metadata {
                payload.insert(key.clone(), value.clone().into());
            }
            ChunkPoint {
                id: point_id(tenant, collection, &document.doc_id, chunk.index),
                doc_id: document.doc_id.clone(),
                chunk_index: chunk.index,
                sparse: bm25.document(&chunk.text),
                text: chunk.text,
                payload,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::context::Encoding;

    const LIMITS: IngestLimits = IngestLimits {
        max_documents: 3,
        max_document_bytes: 1000,
        max_metadata_entries: 2,
    };

    fn doc(id: &str, text: &str) -> Document {
        Document {
            doc_id: id.into(),
            text: text.into(),
            metadata: BTreeMap::new(),
            source_uri: String::new(),
        }
    }

    fn fields(problems: &[FieldProblem]) -> Vec<&str> {
        problems.iter().map(|p| p.field.as_str()).collect()
    }

    #[test]
    fn a_good_batch_has_no_problem() {
        assert!(
            validate_batch("handbook", &[doc("a.md", "A."), doc("b.md", "B.")], &LIMITS).is_empty()
        );
    }

    #[test]
    fn every_problem_of_a_batch_is_named() {
        let mut reserved = doc("c.md", "C.");
        reserved.metadata.insert("tenant_id".into(), "other".into());
        let batch = [
            doc("a.md", "A."),
            doc("a.md", &"x".repeat(1001)),
            doc("", "   "),
            reserved,
        ];
        let problems = validate_batch("bad name!", &batch, &LIMITS);
        assert_eq!(
            fields(&problems),
            [
                "collection",
                "documents",
                "documents[1].doc_id",
                "documents[1].text",
                "documents[2].doc_id",
                "documents[2].text",
                "documents[3].metadata",
            ]
        );
        assert!(problems[2].description.contains("twice"));
        assert!(problems[6].description.contains("reserved"));
        assert_eq!(fields(&validate_batch("c", &[], &LIMITS)), ["documents"]);
    }

    #[test]
    fn points_are_deterministic_and_carry_their_payload() {
        let tenant = TenantId::try_from("acme".to_owned()).unwrap();
        let chunker = Chunker {
            encoding: Encoding::O200k,
            max_tokens: 20,
            overlap_tokens: 0,
        };
        let mut document = doc(
            "guide.md",
            &"The release freeze window lasts two days. ".repeat(10),
        );
        document.metadata.insert("team".into(), "platform".into());
        let bm25 = Bm25::default();
        let points = chunk_points(&tenant, "handbook", &document, &chunker, &bm25);
        assert!(points.len() > 1);
        assert_eq!(
            points,
            chunk_points(&tenant, "handbook", &document, &chunker, &bm25)
        );
        let first = &points[0];
        assert_eq!(first.id, point_id(&tenant, "handbook", "guide.md", 0));
        assert_eq!(first.payload["tenant_id"], "acme");
        assert_eq!(first.payload["doc_id"], "guide.md");
        assert_eq!(first.payload["chunk_index"], 0);
        assert_eq!(first.payload["team"], "platform");
        assert!(!first.sparse.is_empty());
        assert_eq!(points[1].chunk_index, 1);
    }
}
