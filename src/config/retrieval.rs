//! `[retrieval]`: the vector store, chunking, limits and the optional embedding
//! endpoint.

use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::Secret;
use crate::ids::CollectionName;

/// `[retrieval]`.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RetrievalConfig {
    /// "embedded", or the gRPC URL of an external Qdrant.
    pub qdrant_url: String,
    /// API key of an external Qdrant (a secret).
    #[serde(default)]
    pub qdrant_api_key: Option<Secret>,
    /// Put before every collection's name in Qdrant, so deployments can share
    /// one Qdrant; empty by default.
    pub qdrant_collection_prefix: String,
    /// Where the embedded Qdrant serves its gRPC protocol: a loopback address
    /// (port 0 picks a free one).
    pub embedded_addr: SocketAddr,
    /// The collection of requests that name none.
    pub default_collection: CollectionName,
    /// Most tokens per chunk.
    pub chunk_tokens: usize,
    /// Tokens shared by consecutive chunks.
    pub chunk_overlap_tokens: usize,
    /// Documents per ingest batch.
    pub max_batch_documents: usize,
    /// Bytes of one document.
    pub max_document_bytes: usize,
    /// Dense embeddings; none means sparse BM25 only.
    #[serde(default)]
    pub embeddings: Option<EmbeddingsConfig>,
}

/// `[retrieval.embeddings]`: an OpenAI-compatible `/v1/embeddings` endpoint.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct EmbeddingsConfig {
    /// Base URL including the version path.
    pub base_url: String,
    /// Bearer token (a secret); none for keyless servers.
    #[serde(default)]
    pub api_key: Option<Secret>,
    /// The model id.
    pub model: String,
    /// Vector size.
    pub dimensions: usize,
    /// Texts per request.
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    /// Limit on one request.
    #[serde(default = "default_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// USD per 1M input tokens; unset for the built-in price of the model id.
    #[serde(default)]
    pub price: Option<crate::cost::prices::PriceConfig>,
    /// The endpoint runs inside the trust boundary (the cluster's own
    /// nodes): embedding inputs are sent as written. Otherwise PII in them is
    /// redacted by `guardrails.pii.embeddings`.
    #[serde(default)]
    pub local: bool,
}

fn default_batch_size() -> usize {
    64
}

fn default_timeout() -> Duration {
    Duration::from_secs(30)
}

impl RetrievalConfig {
    /// Problems, each naming its key.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.qdrant_url != "embedded" {
            let ok = reqwest::Url::parse(&self.qdrant_url)
                .is_ok_and(|url| matches!(url.scheme(), "http" | "https"));
            if !ok {
                problems.push(format!(
                    "retrieval.qdrant_url: {:?} is neither \"embedded\" nor an http(s) URL",
                    self.qdrant_url
                ));
            }
        }
        let prefix = &self.qdrant_collection_prefix;
        let prefix_ok = prefix.len() <= 64
            && prefix
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
        if !prefix_ok {
            problems.push(
                "retrieval.qdrant_collection_prefix: must be at most 64 letters, digits, '_', \
                 '-' or '.'"
                    .to_owned(),
            );
        }
        if !self.embedded_addr.ip().is_loopback() {
            problems.push(format!(
                "retrieval.embedded_addr: {} is not a loopback address; the embedded Qdrant \
                 has no authentication, so it serves only this machine (use an external \
                 Qdrant to share a vector store across machines)",
                self.embedded_addr
            ));
        }
        if self.chunk_tokens < 16 {
            problems.push("retrieval.chunk_tokens: must be at least 16".to_owned());
        }
        if self.chunk_overlap_tokens >= self.chunk_tokens {
            problems.push(
                "retrieval.chunk_overlap_tokens: must be smaller than retrieval.chunk_tokens"
                    .to_owned(),
            );
        }
        if self.max_batch_documents == 0 || self.max_document_bytes == 0 {
            problems.push(
                "retrieval.max_batch_documents and retrieval.max_document_bytes: must be at least 1"
                    .to_owned(),
            );
        }
        if let Some(embeddings) = &self.embeddings {
            if embeddings.dimensions == 0 || embeddings.batch_size == 0 {
                problems.push(
                    "retrieval.embeddings: dimensions and batch_size must be at least 1".to_owned(),
                );
            }
            if embeddings.model.is_empty() {
                problems.push("retrieval.embeddings.model: must not be empty".to_owned());
            }
        }
        problems
    }
}
