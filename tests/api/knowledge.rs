//! The knowledge store through qdrant-client against the embedded store:
//! ingest, re-ingest without stale chunks, tenant isolation that a filter cannot
//! widen, hybrid search with and without dense vectors, deletion.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use agentd::config::SecretSource;
use agentd::ids::{CollectionName, DocId, TenantId};
use agentd::retrieval::chunking::Chunker;
use agentd::retrieval::embed::{EmbedderSettings, OpenAiEmbedder};
use agentd::retrieval::embedded::EmbeddedStore;
use agentd::retrieval::ingest::{Document, IngestLimits};
use agentd::retrieval::store::{KnowledgeStore, SearchMode, StoreError};
use agentd::tokenizer::Encoding;
use qdrant_client::Qdrant;

use crate::helpers::mock_llm;

fn tenant(name: &str) -> TenantId {
    TenantId::try_from(name.to_owned()).unwrap()
}

fn collection(name: &str) -> CollectionName {
    CollectionName::try_from(name).unwrap()
}

fn doc_id(id: &str) -> DocId {
    DocId::try_from(id).unwrap()
}

fn doc(id: &str, text: &str, team: &str) -> Document {
    Document {
        doc_id: doc_id(id),
        text: text.into(),
        metadata: BTreeMap::from([("team".to_owned(), team.to_owned())]),
        source_uri: format!("file:///handbook/{id}"),
    }
}

async fn store(
    embedder: Option<Arc<dyn agentd::retrieval::embed::Embedder>>,
) -> (KnowledgeStore, EmbeddedStore, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let embedded = EmbeddedStore::start(dir.path()).await.unwrap();
    let client = Qdrant::from_url(&embedded.url())
        .skip_compatibility_check()
        .build()
        .unwrap();
    let chunker = Chunker {
        encoding: Encoding::O200k,
        max_tokens: 40,
        overlap_tokens: 8,
    };
    (
        KnowledgeStore::new(
            client,
            IngestLimits {
                max_documents: 100,
                max_document_bytes: 1 << 20,
            },
            chunker,
            embedder,
        ),
        embedded,
        dir,
    )
}

const RELEASE: &str = "Releases ship every Tuesday. The freeze window starts 48 hours before a \
    release; only hotfixes approved by the release captain may merge during the freeze.";
const VACATION: &str = "Everyone gets 25 days of paid vacation a year. Unused vacation days \
    expire at the end of March. Book vacation in the people portal.";

#[tokio::test]
async fn ingest_search_reingest_delete_and_tenant_isolation() {
    let (store, embedded, _dir) = store(None).await;
    let acme = tenant("acme");
    let globex = tenant("globex");
    let counts = store
        .ingest(
            &acme,
            &collection("handbook"),
            &[
                doc("release.md", RELEASE, "eng"),
                doc("vacation.md", VACATION, "people"),
            ],
        )
        .await
        .unwrap();
    assert_eq!(counts.len(), 2);
    assert!(counts.iter().all(|(_, n)| *n >= 1));
    store
        .ingest(
            &globex,
            &collection("handbook"),
            &[doc(
                "secret.md",
                "The globex freeze window is secret.",
                "eng",
            )],
        )
        .await
        .unwrap();

    let none = BTreeMap::new();
    let found = store
        .search(
            &acme,
            &collection("handbook"),
            "when does the freeze window start?",
            5,
            &none,
            SearchMode::Hybrid,
        )
        .await
        .unwrap();
    // No embedder: hybrid falls back to sparse and says so.
    assert_eq!(found.mode, SearchMode::Sparse);
    assert!(!found.note.is_empty());
    assert_eq!(found.hits[0].doc_id, "release.md");
    assert_eq!(found.hits[0].source_uri, "file:///handbook/release.md");
    assert_eq!(found.hits[0].metadata["team"], "eng");
    assert!(found.hits.iter().all(|h| h.doc_id != "secret.md"));

    // A filter narrows the tenant's documents and can never reach another tenant's.
    let people = BTreeMap::from([("team".to_owned(), "people".to_owned())]);
    let narrowed = store
        .search(
            &acme,
            &collection("handbook"),
            "freeze window vacation",
            5,
            &people,
            SearchMode::Sparse,
        )
        .await
        .unwrap();
    assert!(
        narrowed.hits.iter().all(|h| h.doc_id == "vacation.md"),
        "{narrowed:?}"
    );
    let widen = BTreeMap::from([("tenant_id".to_owned(), "globex".to_owned())]);
    let widened = store
        .search(
            &acme,
            &collection("handbook"),
            "globex freeze window secret",
            5,
            &widen,
            SearchMode::Sparse,
        )
        .await
        .unwrap();
    assert!(widened.hits.is_empty(), "{widened:?}");

    // Re-ingesting with a shorter text leaves no stale chunk behind.
    let long = format!(
        "{RELEASE} {}",
        "Ceremony notes about the zeppelin launch. ".repeat(20)
    );
    let (_, before) = store
        .ingest(
            &acme,
            &collection("handbook"),
            &[doc("release.md", &long, "eng")],
        )
        .await
        .unwrap()[0]
        .clone();
    assert!(before > 2, "{before}");
    store
        .ingest(
            &acme,
            &collection("handbook"),
            &[doc("release.md", RELEASE, "eng")],
        )
        .await
        .unwrap();
    let stale = store
        .search(
            &acme,
            &collection("handbook"),
            "zeppelin ceremony",
            5,
            &none,
            SearchMode::Sparse,
        )
        .await
        .unwrap();
    assert!(stale.hits.is_empty(), "stale chunks remain: {stale:?}");

    // Deleting is per tenant.
    assert_eq!(
        store
            .delete_document(&globex, &collection("handbook"), &doc_id("release.md"))
            .await
            .unwrap(),
        0
    );
    assert!(
        store
            .delete_document(&acme, &collection("handbook"), &doc_id("release.md"))
            .await
            .unwrap()
            >= 1
    );
    let gone = store
        .search(
            &acme,
            &collection("handbook"),
            "freeze window",
            5,
            &none,
            SearchMode::Sparse,
        )
        .await
        .unwrap();
    assert!(gone.hits.iter().all(|h| h.doc_id != "release.md"));

    let missing = store
        .search(
            &acme,
            &collection("nope"),
            "x",
            5,
            &none,
            SearchMode::Sparse,
        )
        .await
        .unwrap_err();
    assert!(
        matches!(missing, StoreError::CollectionNotFound(_)),
        "{missing}"
    );
    embedded.stop().await;
}

#[tokio::test]
async fn with_an_embedder_hybrid_search_fuses_dense_and_sparse() {
    let mock = mock_llm().await;
    let embedder = OpenAiEmbedder::new(EmbedderSettings {
        base_url: mock.base_url(),
        api_key: Some(SecretSource::Inline("sk".into()).resolve().unwrap()),
        model: "text-embedding-3-small".into(),
        dimensions: 64,
        batch_size: 16,
        timeout: Duration::from_secs(5),
        cache_entries: 1000,
        retry: agentd::config::RetryConfig::default(),
        breaker: agentd::config::BreakerConfig::default(),
        clock: agentd::clock::Clock::system(),
        metrics: agentd::telemetry::resilience::RouterMetrics::default(),
        price: agentd::cost::prices::Price::FREE,
        cost: agentd::telemetry::cost::CostMetrics::default(),
    })
    .unwrap();
    let (store, embedded, _dir) = store(Some(Arc::new(embedder))).await;
    let acme = tenant("acme");
    store
        .ingest(
            &acme,
            &collection("handbook"),
            &[
                doc("release.md", RELEASE, "eng"),
                doc("vacation.md", VACATION, "people"),
            ],
        )
        .await
        .unwrap();
    assert!(!mock.embedding_requests().is_empty());
    let none = BTreeMap::new();
    for mode in [SearchMode::Hybrid, SearchMode::Dense, SearchMode::Sparse] {
        let found = store
            .search(
                &acme,
                &collection("handbook"),
                "paid vacation days",
                3,
                &none,
                mode,
            )
            .await
            .unwrap();
        assert_eq!(found.mode, mode);
        assert_eq!(found.hits[0].doc_id, "vacation.md", "{mode:?}: {found:?}");
    }
    embedded.stop().await;
}
