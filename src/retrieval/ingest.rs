//! Turning a batch of documents into the points stored for them: the whole batch
//! is checked against the configured limits before anything is written (every
//! document over a limit named), then each document is chunked and each chunk
//! becomes a point with a deterministic id, a sparse BM25 vector and its payload.

use std::collections::BTreeMap;

use super::bm25::{Bm25, SparseVector};
use super::chunking::Chunker;
use super::{RetrievalField, RetrievalProblem, point_id};
use crate::ids::{DocId, TenantId};

/// Payload keys agentd sets on every point; document metadata may not use them.
pub const RESERVED_KEYS: &[&str] = &[
    "tenant_id",
    "collection",
    "doc_id",
    "chunk_index",
    "text",
    "source_uri",
];

/// Metadata entries one document may carry.
pub const MAX_METADATA_ENTRIES: usize = 64;

/// Whether `key` may name a metadata entry: 1 to 64 bytes, not reserved, and
/// without the characters Qdrant reads as a path ('.', '[', ']').
pub fn is_metadata_key(key: &str) -> bool {
    !RESERVED_KEYS.contains(&key) && (1..=64).contains(&key.len()) && !key.contains(['.', '[', ']'])
}

/// A document to ingest, well formed: a valid id, text that is not blank, and
/// at most [`MAX_METADATA_ENTRIES`] entries with valid keys.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Document {
    /// The caller's id for it; re-ingesting the same id replaces it.
    pub doc_id: DocId,
    /// Its text.
    pub text: String,
    /// String metadata, stored with every chunk and filterable in searches.
    pub metadata: BTreeMap<String, String>,
    /// Where it lives (a URL or path), returned with search hits.
    pub source_uri: String,
}

/// Bounds on one ingest batch, from the configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IngestLimits {
    /// Documents per batch.
    pub max_documents: usize,
    /// Bytes of one document's text.
    pub max_document_bytes: usize,
}

/// One chunk, ready to be stored.
#[derive(Clone, Debug, PartialEq)]
pub struct ChunkPoint {
    /// Deterministic point id (see [`point_id`]).
    pub id: uuid::Uuid,
    /// The document.
    pub doc_id: DocId,
    /// The chunk's position.
    pub chunk_index: usize,
    /// The chunk's text.
    pub text: String,
    /// Its BM25 vector.
    pub sparse: SparseVector,
    /// The payload: the reserved keys, then the document's metadata.
    pub payload: serde_json::Map<String, serde_json::Value>,
}

impl IngestLimits {
    /// Every document of the batch over a limit, or none.
    pub fn check(&self, documents: &[Document]) -> Vec<RetrievalProblem> {
        let mut problems = Vec::new();
        if documents.len() > self.max_documents {
            problems.push(RetrievalProblem {
                field: RetrievalField::Documents,
                reason: format!(
                    "{} documents; the limit per batch is {} (retrieval.max_batch_documents)",
                    documents.len(),
                    self.max_documents
                ),
            });
        }
        for (i, document) in documents.iter().enumerate() {
            if document.text.len() > self.max_document_bytes {
                problems.push(RetrievalProblem {
                    field: RetrievalField::DocumentText(i),
                    reason: format!(
                        "is {} bytes; the limit is {} bytes (retrieval.max_document_bytes)",
                        document.text.len(),
                        self.max_document_bytes
                    ),
                });
            }
        }
        problems
    }
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
            payload.insert("doc_id".into(), document.doc_id.as_str().into());
            payload.insert("chunk_index".into(), chunk.index.into());
            payload.insert("text".into(), chunk.text.clone().into());
            payload.insert("source_uri".into(), document.source_uri.clone().into());
            for (key, value) in &document.metadata {
                payload.insert(key.clone(), value.clone().into());
            }
            ChunkPoint {
                id: point_id(tenant, collection, document.doc_id.as_str(), chunk.index),
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
    use crate::tokenizer::Encoding;

    const LIMITS: IngestLimits = IngestLimits {
        max_documents: 3,
        max_document_bytes: 1000,
    };

    fn doc(id: &str, text: &str) -> Document {
        Document {
            doc_id: DocId::try_from(id).unwrap(),
            text: text.into(),
            metadata: BTreeMap::new(),
            source_uri: String::new(),
        }
    }

    fn fields(problems: &[RetrievalProblem]) -> Vec<RetrievalField> {
        problems.iter().map(|p| p.field).collect()
    }

    #[test]
    fn a_batch_within_the_limits_has_no_problem() {
        assert!(
            LIMITS
                .check(&[doc("a.md", "A."), doc("b.md", "B.")])
                .is_empty()
        );
    }

    #[test]
    fn every_document_over_a_limit_is_named() {
        let batch = [
            doc("a.md", "A."),
            doc("b.md", &"x".repeat(1001)),
            doc("c.md", "C."),
            doc("d.md", &"y".repeat(1001)),
        ];
        let problems = LIMITS.check(&batch);
        assert_eq!(
            fields(&problems),
            [
                RetrievalField::Documents,
                RetrievalField::DocumentText(1),
                RetrievalField::DocumentText(3),
            ]
        );
        assert!(problems[1].reason.contains("retrieval.max_document_bytes"));
    }

    #[test]
    fn metadata_keys_exclude_reserved_and_path_characters() {
        assert!(is_metadata_key("team"));
        for bad in ["", "tenant_id", "a.b", "a[0]", &"k".repeat(65)] {
            assert!(!is_metadata_key(bad), "{bad:?}");
        }
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
