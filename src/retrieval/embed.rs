//! Dense embeddings through an OpenAI-compatible `/v1/embeddings` endpoint
//! (async-openai): texts are sent in batches and vectors are cached by a hash of
//! (model, text), so re-ingesting unchanged chunks and repeating queries costs no
//! upstream call. Transient failures (429, 5xx, connection errors) are retried by
//! async-openai's own retry layer: up to 3 retries, honouring `retry-after`, else
//! backing off 100 ms, 200 ms, 400 ms. (Unlike streamed chat, where a retry must
//! be the router's decision, a unary embedding call is safe to retry in place.)

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use async_openai::Client;
use async_openai::config::OpenAIConfig;
use async_openai::types::embeddings::{CreateEmbeddingRequest, EmbeddingInput};
use sha2::{Digest, Sha256};

use crate::config::Secret;

/// Why texts could not be embedded.
#[derive(Debug, thiserror::Error)]
pub enum EmbedError {
    /// The endpoint failed after every retry, or refused the request.
    #[error("the embedding endpoint failed: {0}")]
    Upstream(String),
    /// The endpoint answered with the wrong number or size of vectors.
    #[error("the embedding endpoint answered malformed data: {0}")]
    Malformed(String),
}

/// Turns texts into dense vectors.
#[async_trait::async_trait]
pub trait Embedder: Send + Sync + std::fmt::Debug {
    /// The embedding model's name, stored with each collection.
    fn model(&self) -> &str;
    /// The size of every vector.
    fn dimensions(&self) -> usize;
    /// One vector per text, in order.
    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError>;
}

/// How to reach an embedding endpoint.
#[derive(Clone, Debug)]
pub struct EmbedderSettings {
    /// Base URL including the version path.
    pub base_url: String,
    /// Bearer token; None for keyless servers.
    pub api_key: Option<Secret>,
    /// The model id.
    pub model: String,
    /// Vector size (sent as `dimensions`, and checked on every answer).
    pub dimensions: usize,
    /// Texts per request.
    pub batch_size: usize,
    /// Limit on one request.
    pub timeout: Duration,
    /// Vectors kept in the cache.
    pub cache_entries: usize,
}

/// An embedder for one OpenAI-compatible endpoint.
#[derive(Debug)]
pub struct OpenAiEmbedder {
    client: Client<OpenAIConfig>,
    settings: EmbedderSettings,
    cache: Mutex<Cache>,
}

/// A bounded map from content hash to vector; the oldest entry leaves first.
#[derive(Debug, Default)]
struct Cache {
    vectors: HashMap<[u8; 32], Vec<f32>>,
    order: VecDeque<[u8; 32]>,
}

impl Cache {
    fn insert(&mut self, key: [u8; 32], vector: Vec<f32>, capacity: usize) {
        if capacity == 0 || self.vectors.contains_key(&key) {
            return;
        }
        while self.order.len() >= capacity {
            if let Some(oldest) = self.order.pop_front() {
                self.vectors.remove(&oldest);
            }
        }
        self.order.push_back(key);
        self.vectors.insert(key, vector);
    }
}

impl OpenAiEmbedder {
    /// An embedder with its own connection pool.
    pub fn new(settings: EmbedderSettings) -> Result<Self, EmbedError> {
        let http = reqwest::Client::builder()
            .timeout(settings.timeout)
            .tcp_nodelay(true)
            .build()
            .map_err(|err| EmbedError::Upstream(format!("cannot build the HTTP client: {err}")))?;
        let mut config = OpenAIConfig::new().with_api_base(settings.base_url.clone());
        if let Some(key) = &settings.api_key {
            config = config.with_api_key(key.expose());
        }
        Ok(Self {
            client: Client::build(http, config),
            settings,
            cache: Mutex::new(Cache::default()),
        })
    }

    fn key(&self, text: &str) -> [u8; 32] {
        let mut hasher = Sha256::new();
        hasher.update(self.settings.model.as_bytes());
        hasher.update([0]);
        hasher.update(text.as_bytes());
        hasher.finalize().into()
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, Cache> {
        // Each critical section is a lookup or an insert; a panic cannot leave
        // the cache inconsistent, so poisoning is ignored.
        self.cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// One batch (async-openai retries it on transient failures).
    async fn embed_batch(&self, texts: Vec<String>) -> Result<Vec<Vec<f32>>, EmbedError> {
        let expected = texts.len();
        let request = CreateEmbeddingRequest {
            model: self.settings.model.clone(),
            input: EmbeddingInput::StringArray(texts),
            encoding_format: None,
            user: None,
            dimensions: u32::try_from(self.settings.dimensions).ok(),
        };
        let response = self
            .client
            .embeddings()
            .create(request)
            .await
            .map_err(|err| EmbedError::Upstream(err.to_string()))?;
        let mut data = response.data;
        if data.len() != expected {
            return Err(EmbedError::Malformed(format!(
                "{} vectors for {expected} texts",
                data.len()
            )));
        }
        data.sort_by_key(|embedding| embedding.index);
        let vectors: Vec<Vec<f32>> = data.into_iter().map(|e| e.embedding).collect();
        if let Some(bad) = vectors.iter().find(|v| v.len() != self.settings.dimensions) {
            return Err(EmbedError::Malformed(format!(
                "a vector of {} dimensions; expected {}",
                bad.len(),
                self.settings.dimensions
            )));
        }
        Ok(vectors)
    }
}

#[async_trait::async_trait]
impl Embedder for OpenAiEmbedder {
    fn model(&self) -> &str {
        &self.settings.model
    }

    fn dimensions(&self) -> usize {
        self.settings.dimensions
    }

    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let keys: Vec<[u8; 32]> = texts.iter().map(|t| self.key(t)).collect();
        let mut vectors: Vec<Option<Vec<f32>>> = {
            let cache = self.cache();
            keys.iter().map(|k| cache.vectors.get(k).cloned()).collect()
        };
        let missing: Vec<usize> = (0..texts.len()).filter(|&i| vectors[i].is_none()).collect();
        for batch in missing.chunks(self.settings.batch_size.max(1)) {
            let batch_texts = batch.iter().map(|&i| texts[i].clone()).collect();
            let embedded = self.embed_batch(batch_texts).await?;
            let mut cache = self.cache();
            for (&i, vector) in batch.iter().zip(embedded) {
                cache.insert(keys[i], vector.clone(), self.settings.cache_entries);
                vectors[i] = Some(vector);
            }
        }
        vectors
            .into_iter()
            .map(|v| v.ok_or_else(|| EmbedError::Malformed("a text got no vector".into())))
            .collect()
    }
}
