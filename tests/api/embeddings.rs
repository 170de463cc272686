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

fn embedder(mock: &MockLlm, clock: &Clock) -> OpenAiEmbedder {
    embedder_with(
        mock,
        clock,
        BreakerConfig {
            min_calls: 1000,
            ..BreakerConfig::default()
        },
    )
}

/// On a manual clock: the tests pass each backoff as it starts
/// (`crate::resilience::pass_backoffs`).
fn embedder_with(mock: &MockLlm, clock: &Clock, breaker: BreakerConfig) -> OpenAiEmbedder {
    OpenAiEmbedder::new(EmbedderSettings {
        base_url: mock.base_url(),
        api_key: Some(SecretSource::Inline("sk".into()).resolve().unwrap()),
        model: "text-embedding-3-small".into(),
        dimensions: 64,
        batch_size: 2,
        timeout: Duration::from_secs(5),
        cache_entries: 100,
        retry: RetryConfig {
            base_delay: Duration::from_millis(50),
            max_delay: Duration::from_millis(100),
            ..RetryConfig::default()
        },
        breaker,
        clock: clock.clone(),
        metrics: RouterMetrics::default(),
        price: agentd::cost::prices::Price::FREE,
        cost: agentd::telemetry::cost::CostMetrics::default(),
    })
    .unwrap()
}

/// `embedder.embed(texts)`, every backoff on `clock` passed as it starts.
async fn embed(
    embedder: &OpenAiEmbedder,
    clock: &Clock,
    texts: &[String],
) -> Result<Vec<Vec<f32>>, agentd::retrieval::embed::EmbedError> {
    let tenant = agentd::ids::TenantId::default_tenant();
    tokio::select! {
        embedded = embedder.embed(&tenant, texts) => embedded,
        () = crate::resilience::pass_backoffs(clock) => unreachable!(),
    }
}

fn texts(words: &[&str]) -> Vec<String> {
    words.iter().map(|w| format!("a text about {w}")).collect()
}

#[tokio::test]
async fn texts_are_embedded_in_batches_and_cached() {
    let mock = mock_llm().await;
    let clock = Clock::manual(std::time::SystemTime::now());
    let embedder = embedder(&mock, &clock);
    let input = texts(&["alpha", "beta", "gamma", "delta", "epsilon"]);
    let vectors = embed(&embedder, &clock, &input).await.unwrap();
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
    let again = embed(&embedder, &clock, &input).await.unwrap();
    assert_eq!(again, vectors);
    assert_eq!(mock.embedding_requests().len(), 3);
    let mixed = texts(&["alpha", "zeta"]);
    embed(&embedder, &clock, &mixed).await.unwrap();
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
    let clock = Clock::manual(std::time::SystemTime::now());
    let embedder = embedder(&mock, &clock);
    mock.fail_embeddings([500, 429]);
    let vectors = embed(&embedder, &clock, &texts(&["one"])).await.unwrap();
    assert_eq!(vectors.len(), 1);
    assert_eq!(mock.embedding_requests().len(), 3);

    mock.fail_embeddings([400]);
    let err = embed(&embedder, &clock, &texts(&["two"]))
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("embedding endpoint failed"),
        "{err}"
    );
    assert_eq!(mock.embedding_requests().len(), 4);

    // llm.retry.max_attempts (3) in all: a third failure is final.
    mock.fail_embeddings([503, 503, 503]);
    let result = embed(&embedder, &clock, &texts(&["three"])).await;
    assert!(result.is_err(), "{result:?}");
    assert_eq!(mock.embedding_requests().len(), 7);
}

#[tokio::test]
async fn an_open_breaker_fails_embedding_at_once_without_a_request() {
    let mock = mock_llm().await;
    let clock = Clock::manual(std::time::SystemTime::now());
    let embedder = embedder_with(
        &mock,
        &clock,
        BreakerConfig {
            min_calls: 2,
            failure_ratio: 0.6,
            ..BreakerConfig::default()
        },
    );
    // A request the endpoint refuses (400) is not its failure.
    mock.fail_embeddings([400, 400, 400]);
    for _ in 0..3 {
        embed(&embedder, &clock, &texts(&["long"]))
            .await
            .unwrap_err();
    }
    embed(&embedder, &clock, &texts(&["fine"])).await.unwrap();
    assert_eq!(mock.embedding_requests().len(), 4);
    // Two failed requests of three (a refused key is the endpoint's
    // failure): open.
    mock.fail_embeddings([401, 401]);
    embed(&embedder, &clock, &texts(&["one"]))
        .await
        .unwrap_err();
    embed(&embedder, &clock, &texts(&["two"]))
        .await
        .unwrap_err();
    assert_eq!(mock.embedding_requests().len(), 6);
    let err = embed(&embedder, &clock, &texts(&["three"]))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("circuit breaker is open"), "{err}");
    assert_eq!(mock.embedding_requests().len(), 6, "no request while open");
}
