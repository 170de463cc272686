//! Conformance of the vector store agentd uses, through qdrant-client: runs
//! against the embedded store (qdrant-edge served over Qdrant's gRPC protocol),
//! or unchanged against an external Qdrant when AGENTD_TEST_QDRANT_URL is set.

use qdrant_client::Qdrant;
use qdrant_client::qdrant::{
    Condition, CountPointsBuilder, CreateCollectionBuilder, CreateFieldIndexCollectionBuilder,
    DeletePointsBuilder, Distance, FieldType, Filter, Fusion, Modifier, NamedVectors, PointStruct,
    PrefetchQueryBuilder, Query, QueryPointsBuilder, RecommendPointsBuilder, ScrollPointsBuilder,
    SparseVectorParamsBuilder, SparseVectorsConfigBuilder, UpsertPointsBuilder, Vector,
    VectorInput, VectorParamsBuilder, VectorsConfigBuilder,
};

use agentd::retrieval::embedded::EmbeddedStore;

/// The store under test: an external Qdrant, or a fresh embedded one.
struct Store {
    client: Qdrant,
    embedded: Option<(EmbeddedStore, tempfile::TempDir)>,
}

async fn store_in(dir: Option<tempfile::TempDir>) -> Store {
    if let Ok(url) = std::env::var("AGENTD_TEST_QDRANT_URL") {
        let client = Qdrant::from_url(&url)
            .skip_compatibility_check()
            .build()
            .unwrap();
        return Store {
            client,
            embedded: None,
        };
    }
    let dir = dir.unwrap_or_else(|| tempfile::tempdir().unwrap());
    let embedded = EmbeddedStore::start(dir.path()).await.unwrap();
    let client = Qdrant::from_url(&embedded.url())
        .skip_compatibility_check()
        .build()
        .unwrap();
    Store {
        client,
        embedded: Some((embedded, dir)),
    }
}

impl Store {
    /// Stops the embedded store before its directory goes (the engine flushes
    /// its files when it closes).
    async fn close(self) {
        if let Some((embedded, dir)) = self.embedded {
            embedded.stop().await;
            drop(dir);
        }
    }
}

/// A collection name no other run uses (an external Qdrant is shared).
fn collection_name(test: &str) -> String {
    format!("agentd-test-{test}-{}", uuid::Uuid::now_v7().simple())
}

fn point(id: u64, dense: [f32; 4], terms: &[u32], tenant: &str, doc: &str) -> PointStruct {
    let id = uuid::Uuid::from_u64_pair(0, id).to_string();
    let vectors = NamedVectors::default()
        .add_vector("dense", Vector::new_dense(dense.to_vec()))
        .add_vector(
            "bm25",
            Vector::new_sparse(terms.to_vec(), vec![1.0; terms.len()]),
        );
    let payload = qdrant_client::Payload::from(std::collections::HashMap::from([
        (
            "tenant_id",
            qdrant_client::qdrant::Value::from(tenant.to_owned()),
        ),
        ("doc_id", qdrant_client::qdrant::Value::from(doc.to_owned())),
    ]));
    PointStruct::new(id, vectors, payload)
}

async fn create(client: &Qdrant, name: &str) {
    let mut sparse = SparseVectorsConfigBuilder::default();
    sparse.add_named_vector_params(
        "bm25",
        SparseVectorParamsBuilder::default().modifier(Modifier::Idf),
    );
    let mut dense = VectorsConfigBuilder::default();
    dense.add_named_vector_params("dense", VectorParamsBuilder::new(4, Distance::Cosine));
    client
        .create_collection(
            CreateCollectionBuilder::new(name)
                .vectors_config(dense)
                .sparse_vectors_config(sparse),
        )
        .await
        .unwrap();
    for field in ["tenant_id", "doc_id"] {
        client
            .create_field_index(
                CreateFieldIndexCollectionBuilder::new(name, field, FieldType::Keyword).wait(true),
            )
            .await
            .unwrap();
    }
}

fn tenant(t: &str) -> Filter {
    Filter::must([Condition::matches("tenant_id", t.to_owned())])
}

fn hybrid(name: &str, filter: Filter) -> QueryPointsBuilder {
    QueryPointsBuilder::new(name)
        .add_prefetch(
            PrefetchQueryBuilder::default()
                .query(Query::new_nearest(VectorInput::new_dense(vec![
                    1.0, 0.0, 0.0, 0.0,
                ])))
                .using("dense")
                .filter(filter.clone())
                .limit(10u64),
        )
        .add_prefetch(
            PrefetchQueryBuilder::default()
                .query(Query::new_nearest(VectorInput::new_sparse(
                    vec![1, 2],
                    vec![1.0, 1.0],
                )))
                .using("bm25")
                .filter(filter.clone())
                .limit(10u64),
        )
        .query(Query::new_fusion(Fusion::Rrf))
        .filter(filter)
        .with_payload(true)
        .limit(10)
}

#[tokio::test]
async fn collections_points_and_hybrid_queries_behave_as_qdrant() {
    let store = store_in(None).await;
    let client = &store.client;
    let name = collection_name("hybrid");
    create(client, &name).await;
    assert!(client.collection_exists(&name).await.unwrap());
    let listed = client.list_collections().await.unwrap();
    assert!(listed.collections.iter().any(|c| c.name == name));
    // Creating it again is refused.
    assert!(
        client
            .create_collection(CreateCollectionBuilder::new(&name))
            .await
            .is_err()
    );

    client
        .upsert_points(
            UpsertPointsBuilder::new(
                &name,
                vec![
                    point(1, [1.0, 0.0, 0.0, 0.0], &[1, 2], "a", "d1"),
                    point(2, [0.0, 1.0, 0.0, 0.0], &[2, 3], "a", "d2"),
                    point(3, [1.0, 0.1, 0.0, 0.0], &[1, 2], "b", "d3"),
                ],
            )
            .wait(true),
        )
        .await
        .unwrap();

    let info = client.collection_info(&name).await.unwrap().result.unwrap();
    assert_eq!(info.points_count, Some(3));

    // Hybrid: both prefetches fused by RRF; tenant b's point never appears.
    let hits = client
        .query(hybrid(&name, tenant("a")))
        .await
        .unwrap()
        .result;
    let docs: Vec<_> = hits
        .iter()
        .map(|h| h.payload["doc_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(docs, ["d1", "d2"]);
    assert!(hits[0].score > hits[1].score);

    let count = client
        .count(
            CountPointsBuilder::new(&name)
                .filter(tenant("a"))
                .exact(true),
        )
        .await
        .unwrap();
    assert_eq!(count.result.unwrap().count, 2);

    let page = client
        .scroll(
            ScrollPointsBuilder::new(&name)
                .filter(tenant("a"))
                .limit(1)
                .with_payload(true),
        )
        .await
        .unwrap();
    assert_eq!(page.result.len(), 1);
    assert!(page.next_page_offset.is_some());

    client
        .delete_points(
            DeletePointsBuilder::new(&name)
                .points(Filter::must([Condition::matches(
                    "doc_id",
                    "d2".to_owned(),
                )]))
                .wait(true),
        )
        .await
        .unwrap();
    let count = client
        .count(
            CountPointsBuilder::new(&name)
                .filter(tenant("a"))
                .exact(true),
        )
        .await
        .unwrap();
    assert_eq!(count.result.unwrap().count, 1);

    client.delete_collection(&name).await.unwrap();
    assert!(!client.collection_exists(&name).await.unwrap());
    let missing = client.query(hybrid(&name, tenant("a"))).await.unwrap_err();
    assert!(missing.to_string().contains("doesn't exist"), "{missing}");
    store.close().await;
}

#[tokio::test]
async fn a_sparse_only_collection_describes_its_dense_vectors_as_an_empty_map() {
    use qdrant_client::qdrant::vectors_config::Config;
    let store = store_in(None).await;
    let name = collection_name("sparse-only");
    let mut sparse = SparseVectorsConfigBuilder::default();
    sparse.add_named_vector_params(
        "bm25",
        SparseVectorParamsBuilder::default().modifier(Modifier::Idf),
    );
    store
        .client
        .create_collection(CreateCollectionBuilder::new(&name).sparse_vectors_config(sparse))
        .await
        .unwrap();
    let params = store
        .client
        .collection_info(&name)
        .await
        .unwrap()
        .result
        .unwrap()
        .config
        .unwrap()
        .params
        .unwrap();
    // As Qdrant 1.18 answers: `"vectors": {}`, not an absent config.
    let Some(Config::ParamsMap(dense)) = params.vectors_config.and_then(|v| v.config) else {
        panic!("no map of dense vectors")
    };
    assert!(dense.map.is_empty(), "{dense:?}");
    assert!(
        params
            .sparse_vectors_config
            .unwrap()
            .map
            .contains_key("bm25")
    );
    store.client.delete_collection(&name).await.unwrap();
    store.close().await;
}

#[tokio::test]
async fn methods_outside_the_served_subset_answer_unimplemented_naming_themselves() {
    let store = store_in(None).await;
    if store.embedded.is_none() {
        return; // an external Qdrant serves everything
    }
    let name = collection_name("unimplemented");
    create(&store.client, &name).await;
    let err = store
        .client
        .recommend(RecommendPointsBuilder::new(&name, 1).add_positive(1))
        .await
        .unwrap_err();
    let qdrant_client::QdrantError::ResponseError { status } = err else {
        panic!("not a gRPC status: {err}")
    };
    assert_eq!(status.code(), tonic::Code::Unimplemented, "{status:?}");
    assert!(status.message().contains("Points/Recommend"), "{status:?}");
    store.close().await;
}

#[tokio::test]
async fn acknowledged_writes_survive_a_restart_of_the_embedded_store() {
    if std::env::var("AGENTD_TEST_QDRANT_URL").is_ok() {
        return; // restarting an external Qdrant is not this suite's business
    }
    let store = store_in(None).await;
    let name = collection_name("restart");
    create(&store.client, &name).await;
    store
        .client
        .upsert_points(UpsertPointsBuilder::new(
            &name,
            vec![point(1, [1.0, 0.0, 0.0, 0.0], &[1], "a", "d1")],
        ))
        .await
        .unwrap();
    let (embedded, dir) = store.embedded.unwrap();
    embedded.stop().await;

    let store = store_in(Some(dir)).await;
    let count = store
        .client
        .count(CountPointsBuilder::new(&name).exact(true))
        .await
        .unwrap();
    assert_eq!(count.result.unwrap().count, 1);
    let hits = store
        .client
        .query(hybrid(&name, tenant("a")))
        .await
        .unwrap()
        .result;
    assert_eq!(hits.len(), 1);
    store.close().await;
}
