//! The embedder against the mock's `/v1/embeddings`: batching, the cache,
//! retries of transient failures, no retry of permanent ones, and the circuit
//! breaker.

use std::time::Duration;

use agentd::clock::Clock;
use agentd::config::{BreakerConfig, RetryConfig, SecretSource};
use agentd::retrieval::embed::{Embedder, EmbedderSettings, OpenAiEmbedder};
use agentd::telemetry::resilience::RouterMetrics;
use agentd_mock_llm::MockLlm;

use crate::helpers::mock_llm;

fn embedder(mock: &MockLlm) -> OpenAiEmbedder {
    embedder_with(
        mock,
        BreakerConfig {
            min_calls: 1000,
            ..BreakerConfig::default()
        },
    )
}

/// Backoffs of a millisecond or two on the real clock: retries happen at once
/// (nothing here measures time).
fn embedder_with(mock: &MockLlm, breaker: BreakerConfig) -> OpenAiEmbedder {
    OpenAiEmbedder::new(EmbedderSettings {
        base_url: mock.base_url(),
        api_key: Some(SecretSource::Inline("sk".into()).resolve().unwrap()),
        model: "text-embedding-3-small".into(),
        dimensions: 64,
        batch_size: 2,
        timeout: Duration::from_secs(5),
        cache_entries: 100,
        retry: RetryConfig {
            base_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(2),
            ..RetryConfig::default()
        },
        breaker,
        clock: Clock::system(),
        metrics: RouterMetrics::default(),
    })
    .unwrap()
}

fn texts(words: &[&str]) -> Vec<String> {
    words.iter().map(|w| format!("a text about {w}")).collect()
}

#[tokio::test]
async fn texts_are_embedded_in_batches_and_cached() {
    let mock = mock_llm().await;
    let embedder = embedder(&mock);
    let input = texts(&["alpha", "beta", "gamma", "delta", "epsilon"]);
    let vectors = embedder.embed(&input).await.unwrap();
    assert_eq!(vectors.len(), 5);
    assert!(vectors.iter().all(|v| v.len() == 64));
    assert_eq!(
        vectors[0],
        agentd_mock_llm::embeddings::embed(&input[0], 64)
    );
    let requests = mock.embedding_requests();
    assert_eq!(requests.len(), 3);
    assert_eq!(requests[0].body["input"].as_array().unwrap().len(), 2);
    assert_eq!(requests[0].body["dimensions"], 64);
    assert_eq!(requests[0].body["model"], "text-embedding-3-small");

    // Cached: the same texts cost nothing; one new text costs one request.
    let again = embedder.embed(&input).await.unwrap();
    assert_eq!(again, vectors);
    assert_eq!(mock.embedding_requests().len(), 3);
    let mixed = texts(&["alpha", "zeta"]);
    embedder.embed(&mixed).await.unwrap();
    let requests = mock.embedding_requests();
    assert_eq!(requests.len(), 4);
    assert_eq!(
        requests[3].body["input"],
        serde_json::json!(["a text about zeta"])
    );
}

#[tokio::test]
async fn transient_failures_are_retried_and_permanent_ones_are_not() {
    let mock = mock_llm().await;
    let embedder = embedder(&mock);
    mock.fail_embeddings([500, 429]);
    let vectors = embedder.embed(&texts(&["one"])).await.unwrap();
    assert_eq!(vectors.len(), 1);
    assert_eq!(mock.embedding_requests().len(), 3);

    mock.fail_embeddings([400]);
    let err = embedder.embed(&texts(&["two"])).await.unwrap_err();
    assert!(
        err.to_string().contains("embedding endpoint failed"),
        "{err}"
    );
    assert_eq!(mock.embedding_requests().len(), 4);

    // llm.retry.max_attempts (3) in all: a third failure is final.
    mock.fail_embeddings([503, 503, 503]);
    let result = embedder.embed(&texts(&["three"])).await;
    assert!(result.is_err(), "{result:?}");
    assert_eq!(mock.embedding_requests().len(), 7);
}

#[tokio::test]
async fn an_open_breaker_fails_embedding_at_once_without_a_request() {
    let mock = mock_llm().await;
    let embedder = embedder_with(
        &mock,
        BreakerConfig {
            min_calls: 2,
            ..BreakerConfig::default()
        },
    );
    // Two failed requests (a refusal is the endpoint's failure too): open.
    mock.fail_embeddings([401, 401]);
    embedder.embed(&texts(&["one"])).await.unwrap_err();
    embedder.embed(&texts(&["two"])).await.unwrap_err();
    assert_eq!(mock.embedding_requests().len(), 2);
    let err = embedder.embed(&texts(&["three"])).await.unwrap_err();
    assert!(err.to_string().contains("circuit breaker is open"), "{err}");
    assert_eq!(mock.embedding_requests().len(), 2, "no request while open");
}
