//! The embedder against the mock's `/v1/embeddings`: batching, the cache,
//! retries of transient failures, and no retry of permanent ones.

use std::time::Duration;

use agentd::config::SecretSource;
use agentd::retrieval::embed::{Embedder, EmbedderSettings, OpenAiEmbedder};
use agentd_mock_llm::MockLlm;

use crate::helpers::mock_llm;

fn embedder(mock: &MockLlm) -> OpenAiEmbedder {
    OpenAiEmbedder::new(EmbedderSettings {
        base_url: mock.base_url(),
        api_key: Some(SecretSource::Inline("sk".into()).resolve().unwrap()),
        model: "text-embedding-3-small".into(),
        dimensions: 64,
        batch_size: 2,
        timeout: Duration::from_secs(5),
        cache_entries: 100,
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

    // async-openai retries 3 times: a fourth failure is final.
    mock.fail_embeddings([503, 503, 503, 503]);
    let result = embedder.embed(&texts(&["three"])).await;
    assert!(result.is_err(), "{result:?}");
    assert_eq!(mock.embedding_requests().len(), 8);
}
