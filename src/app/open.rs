//! What an app opens before it serves: its listeners, its data directory and
//! its stores.

use std::collections::HashMap;

use crate::cost::CostControl;
use crate::cost::ledger::{EmbeddedLedger, Ledger, RedisLedger};
use crate::cost::prices::{self, Price};
use crate::cost::requests::RequestLimiter;
use crate::cost::stage::{Admission, Priced};
use crate::llm::chain::CallStage;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;

use super::StartError;
use crate::agent::sessions::{
    RedbSessionStore, RedisSessionStore, ReplicaWait, SessionLimits, SessionStore,
};
use crate::clock::Clock;
use crate::config::{Config, StateBackend, redacted_url};
use crate::retrieval::chunking::Chunker;
use crate::retrieval::embed::{EmbedderSettings, OpenAiEmbedder};
use crate::retrieval::embedded::EmbeddedStore;
use crate::retrieval::ingest::IngestLimits;
use crate::retrieval::store::KnowledgeStore;
use crate::state::redis::RedisPool;
use crate::telemetry::resilience::RouterMetrics;
use crate::tokenizer::Encoding;

/// Binds `addr` (the config key `key`), reporting the bound address.
pub(super) async fn bind(
    key: &'static str,
    addr: SocketAddr,
) -> Result<(TcpListener, SocketAddr), StartError> {
    let bound = async {
        let listener = TcpListener::bind(addr).await?;
        let local = listener.local_addr()?;
        Ok::<_, std::io::Error>((listener, local))
    };
    bound
        .await
        .map_err(|source| StartError::Bind { key, addr, source })
}

/// Creates the data directory if needed and proves it writable.
pub(super) async fn prepare_data_dir(config: &Config) -> Result<(), StartError> {
    let dir = &config.storage.data_dir;
    let probe = dir.join(".agentd-write-check");
    let checked = async {
        tokio::fs::create_dir_all(dir).await?;
        tokio::fs::write(&probe, b"ok").await?;
        tokio::fs::remove_file(&probe).await
    };
    checked.await.map_err(|source| StartError::DataDir {
        path: dir.display().to_string(),
        source,
    })
}

/// Opens the session store `state.backend` names: redb under the data
/// directory, or Redis. Redis is not contacted here: agentd starts while it is
/// down, reports it unhealthy, and serves sessions once it is up.
pub(super) async fn open_sessions(
    config: &Config,
    clock: &Clock,
) -> Result<Arc<dyn SessionStore>, StartError> {
    let limits = SessionLimits {
        max_age: config.sessions.max_age,
        max_messages: config.sessions.max_messages,
    };
    if config.state.backend == StateBackend::Redis {
        let pool = RedisPool::new(&config.state).map_err(|err| anyhow::anyhow!(err))?;
        let wait = ReplicaWait::from(&config.state);
        tracing::info!(
            url = %redacted_url(&config.state.redis_url),
            "sessions are kept in Redis"
        );
        return Ok(Arc::new(RedisSessionStore::new(
            pool,
            limits,
            clock.clone(),
            wait,
        )));
    }
    let path = config.storage.data_dir.join("sessions.redb");
    let opened = tokio::task::spawn_blocking({
        let (path, clock) = (path.clone(), clock.clone());
        move || RedbSessionStore::open(&path, limits, clock)
    })
    .await
    .map_err(anyhow::Error::from)?;
    let store = opened.map_err(|err| {
        anyhow::anyhow!(
            "storage.data_dir: cannot open the session store {}: {err} (is another agentd \
             using this data directory?)",
            path.display()
        )
    })?;
    Ok(Arc::new(store))
}

/// The vector store: the embedded Qdrant under the data directory, or an
/// external one; reached through qdrant-client either way.
pub(super) async fn open_knowledge(
    config: &Config,
    clock: &Clock,
    metrics: RouterMetrics,
    cost: crate::telemetry::cost::CostMetrics,
    guardrails: &Arc<crate::guardrails::Guardrails>,
) -> Result<(KnowledgeStore, Option<EmbeddedStore>), StartError> {
    let retrieval = &config.retrieval;
    let (url, embedded) = if retrieval.qdrant_url == "embedded" {
        let (listener, _) = bind("retrieval.embedded_addr", retrieval.embedded_addr).await?;
        let store = EmbeddedStore::serve(&config.storage.data_dir.join("qdrant"), listener)
            .await
            .map_err(|err| {
                anyhow::anyhow!("storage.data_dir: cannot open the embedded Qdrant: {err:#}")
            })?;
        tracing::info!(addr = %store.addr(), "embedded Qdrant listening");
        (store.url(), Some(store))
    } else {
        (retrieval.qdrant_url.clone(), None)
    };
    let mut client = qdrant_client::Qdrant::from_url(&url).skip_compatibility_check();
    if let Some(key) = &retrieval.qdrant_api_key {
        client = client.api_key(key.expose());
    }
    let client = client
        .build()
        .map_err(|err| anyhow::anyhow!("retrieval.qdrant_url: {err}"))?;
    let embedder = match &retrieval.embeddings {
        None => None,
        Some(embeddings) => {
            let embedder = OpenAiEmbedder::new(EmbedderSettings {
                base_url: embeddings.base_url.clone(),
                api_key: embeddings.api_key.clone(),
                model: embeddings.model.clone(),
                dimensions: embeddings.dimensions,
                batch_size: embeddings.batch_size,
                timeout: embeddings.timeout,
                cache_entries: 10_000,
                retry: config.llm.retry.clone(),
                breaker: config.llm.breaker.clone(),
                clock: clock.clone(),
                metrics,
                price: match prices::for_model(embeddings.price.as_ref(), &embeddings.model) {
                    Some(price) => price,
                    None => {
                        tracing::warn!(
                            model = embeddings.model.as_str(),
                            "no price for the embedding model: its calls are accounted at 0 \
                             USD; set retrieval.embeddings.price"
                        );
                        cost.unpriced("embeddings");
                        Price::FREE
                    }
                },
                cost,
            })
            .map_err(|err| anyhow::anyhow!("retrieval.embeddings: {err}"))?;
            Some(crate::guardrails::embed::GuardedEmbedder::wrap(
                Arc::new(embedder),
                guardrails.clone(),
                embeddings.local,
            ))
        }
    };
    let chunker = Chunker {
        encoding: Encoding::O200k,
        max_tokens: retrieval.chunk_tokens,
        overlap_tokens: retrieval.chunk_overlap_tokens,
    };
    let limits = IngestLimits {
        max_documents: retrieval.max_batch_documents,
        max_document_bytes: retrieval.max_document_bytes,
    };
    Ok((
        KnowledgeStore::new(client, limits, chunker, embedder)
            .with_collection_prefix(&config.retrieval.qdrant_collection_prefix),
        embedded,
    ))
}

/// Cost control: the ledger (in Redis with `state.backend = "redis"`, else
/// `cost.redb` under the data directory), the request-rate limiter, and the
/// admission stage with every model's price.
pub(super) async fn open_cost(
    config: &Config,
    clock: &Clock,
    metrics: crate::telemetry::cost::CostMetrics,
) -> Result<(Arc<CostControl>, Arc<dyn CallStage>), StartError> {
    let (ledger, requests): (Arc<dyn Ledger>, RequestLimiter) =
        if config.state.backend == StateBackend::Redis {
            let pool = RedisPool::new(&config.state).map_err(|err| anyhow::anyhow!(err))?;
            (
                Arc::new(RedisLedger::new(pool.clone())),
                RequestLimiter::redis(&config.cost, pool),
            )
        } else {
            let path = config.storage.data_dir.join("cost.redb");
            let opened = tokio::task::spawn_blocking({
                let (path, metrics) = (path.clone(), metrics.clone());
                let (sessions, usage) = (config.sessions.max_age, config.cost.usage_retention);
                move || EmbeddedLedger::open(&path, metrics, sessions, usage)
            })
            .await
            .map_err(anyhow::Error::from)?;
            let ledger = opened.map_err(|err| {
                anyhow::anyhow!(
                    "storage.data_dir: cannot open the budget ledger {}: {err}",
                    path.display()
                )
            })?;
            (
                Arc::new(ledger),
                RequestLimiter::embedded(&config.cost, clock),
            )
        };
    let mut prices: HashMap<String, HashMap<String, Priced>> = HashMap::new();
    for (name, model) in &config.llm.models {
        let upstream = model.upstream_id(name);
        let price = match prices::for_model(model.price.as_ref(), upstream) {
            Some(price) => {
                metrics.priced(name, true);
                price
            }
            None => {
                tracing::warn!(
                    model = name.as_str(),
                    upstream,
                    "no price for this model: its calls are accounted at 0 USD; set \
                     llm.models.{name}.price"
                );
                metrics.unpriced(name);
                Price::FREE
            }
        };
        prices.entry(model.provider.clone()).or_default().insert(
            upstream.to_owned(),
            Priced {
                model: name.clone(),
                price,
            },
        );
    }
    let control = Arc::new(CostControl::new(
        config,
        ledger,
        requests,
        clock.clone(),
        metrics,
    ));
    let stage: Arc<dyn CallStage> = Arc::new(Admission::new(control.clone(), prices));
    Ok((control, stage))
}

/// The guardrails of every tenant, their webhooks over one HTTP client.
pub(super) fn build_guardrails(
    config: &Config,
    metrics: crate::telemetry::guardrails::GuardrailMetrics,
) -> Result<crate::guardrails::Guardrails, StartError> {
    let http = reqwest::Client::builder().build().map_err(|err| {
        anyhow::anyhow!("guardrails.webhooks: cannot build the HTTP client: {err}")
    })?;
    let providers = config
        .llm
        .providers
        .iter()
        .map(|(name, provider)| (name.clone(), provider.local));
    Ok(crate::guardrails::Guardrails::new(
        &config.guardrails,
        providers,
        http,
        metrics,
    ))
}
