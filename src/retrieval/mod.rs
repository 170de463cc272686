//! Retrieval: cutting documents into chunks, sparse BM25 vectors, dense
//! embeddings, turning a batch of documents into points, the knowledge store
//! over Qdrant (embedded or external) that ingests and searches them, and the
//! result format of the `search_knowledge` tool.

pub mod bm25;
pub mod chunking;
pub mod embed;
pub mod embedded;
pub mod ingest;
pub mod knowledge;
pub mod store;

use crate::ids::TenantId;

/// An input of a retrieval request that the store checks against its
/// configuration, named by what it is (the gRPC layer knows where it sits).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RetrievalField {
    /// The documents of a batch, as a whole.
    Documents,
    /// The text of the `i`-th document of a batch.
    DocumentText(usize),
    /// The search mode.
    Mode,
}

/// One rejected input and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetrievalProblem {
    /// The input.
    pub field: RetrievalField,
    /// Why, for the caller.
    pub reason: String,
}

/// The namespace of agentd's point ids (a fixed, random UUID).
const POINT_NAMESPACE: uuid::Uuid =
    uuid::Uuid::from_u128(0x5c3e_7f0a_2d41_4b8e_9a6f_1e0d_83b2_c7a4);

/// The id of a chunk's point: a UUIDv5 of (tenant, collection, document, chunk
/// index). Re-ingesting a document therefore overwrites its chunks in place; the
/// chunks past its new length are deleted by the ingester.
pub fn point_id(
    tenant: &TenantId,
    collection: &str,
    doc_id: &str,
    chunk_index: usize,
) -> uuid::Uuid {
    // Length-prefixed parts, so ("a/b", "c") and ("a", "b/c") cannot collide.
    let mut name = Vec::new();
    for part in [tenant.as_str(), collection, doc_id] {
        name.extend_from_slice(&(part.len() as u64).to_be_bytes());
        name.extend_from_slice(part.as_bytes());
    }
    name.extend_from_slice(&(chunk_index as u64).to_be_bytes());
    uuid::Uuid::new_v5(&POINT_NAMESPACE, &name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn point_ids_are_deterministic_and_distinct() {
        let tenant = TenantId::try_from("acme").unwrap();
        let other = TenantId::try_from("globex").unwrap();
        let id = point_id(&tenant, "default", "a/b.md", 0);
        assert_eq!(id, point_id(&tenant, "default", "a/b.md", 0));
        assert_eq!(id.get_version_num(), 5);
        for different in [
            point_id(&tenant, "default", "a/b.md", 1),
            point_id(&other, "default", "a/b.md", 0),
            point_id(&tenant, "other", "a/b.md", 0),
            point_id(&tenant, "default", "a/c.md", 0),
            point_id(&tenant, "defaulta", "/b.md", 0),
        ] {
            assert_ne!(id, different);
        }
    }
}
