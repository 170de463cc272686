//! Dense embeddings through an OpenAI-compatible `/v1/embeddings` endpoint
//! (async-openai's wire types over reqwest): texts are sent in batches and
//! vectors are cached by a hash of (model, text), so re-ingesting unchanged
//! chunks and repeating queries costs no upstream call.
//!
//! The endpoint is not routed, but it has the router's guards
//! (`llm::router`): the same retry policy (`[llm.retry]`: connection errors,
//! timeouts, HTTP 408, 429, 500, 502, 503 and 504 are retried with backoff and
//! full jitter, a `retry-after` honoured up to `max_delay`, within a retry
//! budget of its own) and a circuit breaker of the same type
//! (`[llm.breaker]`, exported as target `embeddings`; the endpoint's failures
//! count, a request it refuses with another 4xx does not): while it is open,
//! embedding fails at once without a request. It closes after its cool-down's
//! probe succeeds; `ResetBreaker` and `ListModels` do not cover it.
//! Every wait is on the injectable clock. (Unlike streamed chat, a unary
//! embedding call is safe to retry in place.) async-openai's own client is not
//! used: its retries sleep on the real clock, outside the breaker and budget.

use crate::cost::prices::{Price, TokenCount};
use crate::ids::TenantId;
use crate::telemetry::cost::CostMetrics;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_openai::types::embeddings::{
    CreateEmbeddingRequest, CreateEmbeddingResponse, EmbeddingInput,
};
use backon::Retryable;
use sha2::{Digest, Sha256};
use tower::retry::budget::{Budget, TpsBudget};

use crate::clock::Clock;
use crate::config::{BreakerConfig, RetryConfig, Secret};
use crate::llm::router::breaker::Breaker;
use crate::llm::router::retry;
use crate::telemetry::resilience::RouterMetrics;

/// The breaker's target name, in metrics and logs.
pub const BREAKER_TARGET: &str = "embeddings";

/// Most bytes of an error body kept for the error message.
const ERROR_BODY_LIMIT: usize = 2048;

/// Why texts could not be embedded.
#[derive(Debug, thiserror::Error)]
pub enum EmbedError {
    /// The endpoint failed after every retry, or refused the request.
    #[error("the embedding endpoint failed: {0}")]
    Upstream(String),
    /// The endpoint answered with the wrong number or size of vectors.
    #[error("the embedding endpoint answered malformed data: {0}")]
    Malformed(String),
    /// The endpoint's circuit breaker is open: no request was made.
    #[error("the embedding endpoint's circuit breaker is open after repeated failures; retry in {}", humantime::format_duration(*.0))]
    BreakerOpen(Duration),
}

/// One failed request: what went wrong, whether a retry may succeed, and
/// whether it counts against the breaker (the endpoint's failures do; a
/// request it refuses, e.g. too long a text, does not).
#[derive(Debug)]
struct Failed {
    error: EmbedError,
    retryable: bool,
    counts: bool,
    retry_after: Option<Duration>,
}

/// Turns texts into dense vectors.
#[async_trait::async_trait]
pub trait Embedder: Send + Sync + std::fmt::Debug {
    /// The embedding model's name, stored with each collection.
    fn model(&self) -> &str;
    /// The size of every vector.
    fn dimensions(&self) -> usize;
    /// One vector per text, in order, for `tenant` (whose spend it is).
    async fn embed(&self, tenant: &TenantId, texts: &[String])
    -> Result<Vec<Vec<f32>>, EmbedError>;
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
    /// Retries of a failed request.
    pub retry: RetryConfig,
    /// The endpoint's circuit breaker.
    pub breaker: BreakerConfig,
    /// The clock of timeouts, backoffs and the breaker.
    pub clock: Clock,
    /// Where the breaker's state is exported.
    pub metrics: RouterMetrics,
    /// The endpoint's price (input tokens only).
    pub price: Price,
    /// Where what each request cost is counted.
    pub cost: CostMetrics,
}

/// An embedder for one OpenAI-compatible endpoint.
#[derive(Debug)]
pub struct OpenAiEmbedder {
    http: reqwest::Client,
    endpoint: String,
    settings: EmbedderSettings,
    breaker: Arc<Breaker>,
    budget: TpsBudget,
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
            .tcp_nodelay(true)
            .user_agent(concat!("agentd/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|err| EmbedError::Upstream(format!("cannot build the HTTP client: {err}")))?;
        let breaker = Arc::new(Breaker::new(
            BREAKER_TARGET,
            settings.breaker.clone(),
            settings.clock.clone(),
            settings.metrics.clone(),
        ));
        let budget = crate::llm::router::budget(&settings.retry);
        Ok(Self {
            budget,
            http,
            endpoint: format!("{}/embeddings", settings.base_url.trim_end_matches('/')),
            settings,
            breaker,
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

    /// One batch, retried on transient failures, behind the breaker.
    async fn embed_batch(
        &self,
        tenant: &TenantId,
        texts: Vec<String>,
    ) -> Result<Vec<Vec<f32>>, EmbedError> {
        self.budget.deposit();
        let clock = self.settings.clock.clone();
        let config = &self.settings.retry;
        let attempt = || async {
            let Some(permit) = self.breaker.try_acquire() else {
                return Err(Failed {
                    error: EmbedError::BreakerOpen(self.breaker.retry_in()),
                    retryable: false,
                    counts: false,
                    retry_after: None,
                });
            };
            let result = self.request(tenant, texts.clone()).await;
            match &result {
                Ok(_) => permit.record(true),
                Err(failed) if failed.counts => permit.record(false),
                Err(_) => drop(permit),
            }
            result
        };
        attempt
            .retry(retry::backoff(config, config.max_attempts))
            .sleep(move |delay| clock.sleep(delay))
            .when(|failed| failed.retryable)
            .adjust(|failed, next| {
                let delay = retry::delay(config, next?, failed.retry_after)?;
                self.budget.withdraw().then_some(delay)
            })
            .await
            .map_err(|failed| failed.error)
    }

    /// One request, bounded by the timeout on the clock.
    async fn request(
        &self,
        tenant: &TenantId,
        texts: Vec<String>,
    ) -> Result<Vec<Vec<f32>>, Failed> {
        let expected = texts.len();
        let request = CreateEmbeddingRequest {
            model: self.settings.model.clone(),
            input: EmbeddingInput::StringArray(texts),
            encoding_format: None,
            user: None,
            dimensions: u32::try_from(self.settings.dimensions).ok(),
        };
        let mut call = self.http.post(&self.endpoint).json(&request);
        if let Some(key) = &self.settings.api_key {
            call = call.bearer_auth(key.expose());
        }
        let timeout = self.settings.timeout;
        let exchange = async {
            let response = call.send().await?;
            let status = response.status();
            let retry_after = crate::llm::openai::retry_after(response.headers());
            let body = response.bytes().await?;
            Ok::<_, reqwest::Error>((status, retry_after, body))
        };
        let (status, retry_after, body) = match self.settings.clock.timeout(timeout, exchange).await
        {
            Ok(Ok(answer)) => answer,
            Ok(Err(err)) => {
                return Err(Failed {
                    error: EmbedError::Upstream(format!("connection failed: {err}")),
                    retryable: true,
                    counts: true,
                    retry_after: None,
                });
            }
            Err(_) => {
                return Err(Failed {
                    error: EmbedError::Upstream(format!(
                        "no answer within {}",
                        humantime::format_duration(timeout)
                    )),
                    retryable: true,
                    counts: true,
                    retry_after: None,
                });
            }
        };
        if !status.is_success() {
            let text = String::from_utf8_lossy(&body[..body.len().min(ERROR_BODY_LIMIT)]);
            let code = status.as_u16();
            let retryable = matches!(code, 408 | 429 | 500 | 502 | 503 | 504);
            return Err(Failed {
                error: EmbedError::Upstream(format!("HTTP {code}: {text}")),
                retryable,
                counts: retryable || code >= 500 || matches!(code, 401 | 403),
                retry_after,
            });
        }
        // An answer of the wrong shape is the endpoint's failure too.
        let malformed = |reason: String| Failed {
            error: EmbedError::Malformed(reason),
            retryable: false,
            counts: true,
            retry_after: None,
        };
        let response: CreateEmbeddingResponse = serde_json::from_slice(&body)
            .map_err(|err| malformed(format!("not an embeddings response: {err}")))?;
        // Priced from the endpoint's own count: what it bills.
        let cost = self.settings.price.cost(&TokenCount {
            input: u64::from(response.usage.prompt_tokens),
            ..TokenCount::default()
        });
        self.settings.cost.cost(
            tenant,
            "embeddings",
            &self.settings.model,
            cost.to_f64_usd(),
        );
        let mut data = response.data;
        if data.len() != expected {
            return Err(malformed(format!(
                "{} vectors for {expected} texts",
                data.len()
            )));
        }
        data.sort_by_key(|embedding| embedding.index);
        let vectors: Vec<Vec<f32>> = data.into_iter().map(|e| e.embedding).collect();
        if let Some(bad) = vectors.iter().find(|v| v.len() != self.settings.dimensions) {
            return Err(malformed(format!(
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

    async fn embed(
        &self,
        tenant: &TenantId,
        texts: &[String],
    ) -> Result<Vec<Vec<f32>>, EmbedError> {
        let keys: Vec<[u8; 32]> = texts.iter().map(|t| self.key(t)).collect();
        let mut vectors: Vec<Option<Vec<f32>>> = {
            let cache = self.cache();
            keys.iter().map(|k| cache.vectors.get(k).cloned()).collect()
        };
        let missing: Vec<usize> = (0..texts.len()).filter(|&i| vectors[i].is_none()).collect();
        for batch in missing.chunks(self.settings.batch_size.max(1)) {
            let batch_texts = batch.iter().map(|&i| texts[i].clone()).collect();
            let embedded = self.embed_batch(tenant, batch_texts).await?;
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
