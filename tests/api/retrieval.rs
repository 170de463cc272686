//! RetrievalService over gRPC against the embedded store: ingest and search,
//! each bad input with its field, roles, and tenant isolation through Search and
//! through the agent's extractive answers.

use agentd::pb::chat_response::Event;
use agentd::pb::retrieval_service_client::RetrievalServiceClient;
use agentd::pb::{
    ChatRequest, DeleteDocumentRequest, Document, IngestDocumentsRequest, ListCollectionsRequest,
    SearchMode, SearchRequest,
};
use tonic::Code;
use tonic::transport::Channel;
use tonic_types::StatusExt;

use crate::helpers::{TestApp, key, spawn_app_with, with_key};

fn config() -> String {
    let (_, acme) = key("acme-ingest");
    let (_, globex) = key("globex-ingest");
    let (_, reader) = key("acme-reader");
    format!(
        r#"[auth]
enabled = true
keys = [
  {{ name = "acme", tenant = "acme", roles = ["ingest", "agent"], sha256 = "{acme}" }},
  {{ name = "globex", tenant = "globex", roles = ["ingest", "agent"], sha256 = "{globex}" }},
  {{ name = "reader", tenant = "acme", roles = ["agent"], sha256 = "{reader}" }},
]
[retrieval]
max_document_bytes = 2000
"#
    )
}

fn client(app: &TestApp) -> RetrievalServiceClient<Channel> {
    RetrievalServiceClient::new(app.channel.clone())
}

fn document(id: &str, text: &str) -> Document {
    Document {
        doc_id: id.into(),
        text: text.into(),
        metadata: [("team".to_owned(), "eng".to_owned())].into(),
        source_uri: format!("file:///{id}"),
    }
}

async fn ingest(
    app: &TestApp,
    who: &str,
    documents: Vec<Document>,
) -> Result<Vec<u32>, tonic::Status> {
    let (secret, _) = key(who);
    client(app)
        .ingest_documents(with_key(
            IngestDocumentsRequest {
                collection: String::new(),
                documents,
            },
            &secret,
        ))
        .await
        .map(|r| r.into_inner().documents.iter().map(|d| d.chunks).collect())
}

async fn search(
    app: &TestApp,
    who: &str,
    request: SearchRequest,
) -> Result<Vec<String>, tonic::Status> {
    let (secret, _) = key(who);
    client(app)
        .search(with_key(request, &secret))
        .await
        .map(|r| r.into_inner().hits.into_iter().map(|h| h.doc_id).collect())
}

fn query(text: &str) -> SearchRequest {
    SearchRequest {
        query: text.into(),
        ..SearchRequest::default()
    }
}

const RELEASE: &str = "Releases ship every Tuesday. The freeze window starts 48 hours before each \
    release; only hotfixes approved by the release captain may merge during the freeze.";

#[tokio::test]
async fn documents_are_ingested_searched_and_deleted_per_tenant() {
    let app = spawn_app_with(&config()).await;
    let chunks = ingest(&app, "acme-ingest", vec![document("release.md", RELEASE)])
        .await
        .unwrap();
    assert_eq!(chunks, [1]);
    ingest(
        &app,
        "globex-ingest",
        vec![document("globex.md", "Globex freeze window notes.")],
    )
    .await
    .unwrap();

    let hits = search(
        &app,
        "acme-reader",
        query("when does the freeze window start"),
    )
    .await
    .unwrap();
    assert_eq!(hits, ["release.md"]);
    let hits = search(
        &app,
        "globex-ingest",
        query("freeze window release captain"),
    )
    .await
    .unwrap();
    assert_eq!(hits, ["globex.md"], "globex must never see acme's chunks");
    // A filter cannot widen the tenant.
    let mut widen = query("freeze window");
    widen.filter = [("tenant_id".to_owned(), "globex".to_owned())].into();
    let status = search(&app, "acme-reader", widen).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);

    // Each tenant lists only its own documents and chunks.
    let (reader, _) = key("acme-reader");
    let listed = client(&app)
        .list_collections(with_key(ListCollectionsRequest {}, &reader))
        .await
        .unwrap()
        .into_inner()
        .collections;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].name, "default");
    assert_eq!((listed[0].documents, listed[0].chunks), (1, 1));
    assert!(!listed[0].dense);

    // The reader (agent role only) may search but not ingest.
    let denied = ingest(&app, "acme-reader", vec![document("x.md", "x")])
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);

    let (secret, _) = key("acme-ingest");
    let deleted = client(&app)
        .delete_document(with_key(
            DeleteDocumentRequest {
                collection: String::new(),
                doc_id: "release.md".into(),
            },
            &secret,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(deleted.deleted_chunks, 1);
    assert!(
        search(&app, "acme-reader", query("freeze window"))
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn bad_inputs_name_their_field_and_store_nothing() {
    let app = spawn_app_with(&config()).await;
    ingest(&app, "acme-ingest", vec![document("release.md", RELEASE)])
        .await
        .unwrap();
    let bad_batches: Vec<(&str, Vec<Document>, &str)> = vec![
        (
            "duplicate doc_id",
            vec![
                document("new.md", "alpha zebra"),
                document("new.md", "beta zebra"),
            ],
            "documents[1].doc_id",
        ),
        (
            "oversized document",
            vec![
                document("new.md", "zebra"),
                document("big.md", &"zebra ".repeat(400)),
            ],
            "documents[1].text",
        ),
        ("empty batch", vec![], "documents"),
        (
            "reserved metadata",
            vec![Document {
                metadata: [("tenant_id".to_owned(), "globex".to_owned())].into(),
                ..document("new.md", "zebra")
            }],
            "documents[0].metadata",
        ),
    ];
    for (case, documents, field) in bad_batches {
        let status = ingest(&app, "acme-ingest", documents).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{case}");
        let violations = status.get_details_bad_request().unwrap().field_violations;
        assert!(
            violations.iter().any(|v| v.field == field),
            "{case}: {violations:?}"
        );
    }
    // Nothing of the refused batches was stored.
    assert!(
        search(&app, "acme-reader", query("zebra"))
            .await
            .unwrap()
            .is_empty()
    );

    let cases: Vec<(&str, SearchRequest, Code, &str)> = vec![
        ("empty query", query("  "), Code::InvalidArgument, "query"),
        (
            "top_k too large",
            SearchRequest {
                top_k: 101,
                ..query("freeze")
            },
            Code::InvalidArgument,
            "top_k",
        ),
        (
            "invalid filter key",
            SearchRequest {
                filter: [("doc_id".to_owned(), "x".to_owned())].into(),
                ..query("freeze")
            },
            Code::InvalidArgument,
            "filter[doc_id]",
        ),
        (
            "bad collection name",
            SearchRequest {
                collection: "no such!".into(),
                ..query("freeze")
            },
            Code::InvalidArgument,
            "collection",
        ),
        (
            "dense without embeddings",
            SearchRequest {
                mode: SearchMode::Dense.into(),
                ..query("freeze")
            },
            Code::InvalidArgument,
            "mode",
        ),
    ];
    for (case, request, code, field) in cases {
        let status = search(&app, "acme-reader", request).await.unwrap_err();
        assert_eq!(status.code(), code, "{case}: {status:?}");
        let violations = status.get_details_bad_request().unwrap().field_violations;
        assert!(
            violations.iter().any(|v| v.field == field),
            "{case}: {violations:?}"
        );
    }
    let missing = search(
        &app,
        "acme-reader",
        SearchRequest {
            collection: "unknown".into(),
            ..query("freeze")
        },
    )
    .await
    .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
    assert_eq!(
        missing.get_details_error_info().unwrap().reason,
        "COLLECTION_NOT_FOUND"
    );
}

#[tokio::test]
async fn with_no_llm_the_agent_quotes_only_the_callers_documents() {
    let app = spawn_app_with(&config()).await;
    ingest(&app, "acme-ingest", vec![document("release.md", RELEASE)])
        .await
        .unwrap();
    let answer = |who: &'static str| {
        let app = &app;
        async move {
            let (secret, _) = key(who);
            let request = ChatRequest {
                message: "When does the freeze window start before a release?".into(),
                ..ChatRequest::default()
            };
            let mut stream = app
                .agent()
                .chat(with_key(request, &secret))
                .await
                .unwrap()
                .into_inner();
            let mut answer = String::new();
            while let Some(response) = stream.message().await.unwrap() {
                if let Some(Event::Completed(outcome)) = response.event {
                    assert_eq!(outcome.model, "extractive");
                    answer = outcome.answer;
                }
            }
            answer
        }
    };
    let acme = answer("acme-reader").await;
    assert!(acme.contains("48 hours before each release"), "{acme}");
    assert!(acme.contains("release.md"), "{acme}");
    let globex = answer("globex-ingest").await;
    assert!(!globex.contains("48 hours"), "{globex}");
    assert!(globex.contains("found nothing"), "{globex}");
}

#[tokio::test]
async fn deployments_sharing_one_qdrant_keep_their_collections_apart_by_prefix() {
    use agentd::retrieval::embedded::EmbeddedStore;
    use qdrant_client::Qdrant;
    let dir = tempfile::tempdir().unwrap();
    let qdrant = EmbeddedStore::start(dir.path()).await.unwrap();
    let deployment = |prefix: &str| {
        format!(
            "{}\nqdrant_url = \"{}\"\nqdrant_collection_prefix = \"{prefix}\"",
            config(),
            qdrant.url()
        )
    };
    let (blue, green) = (deployment("blue_"), deployment("green_"));
    let (blue, green) = tokio::join!(spawn_app_with(&blue), spawn_app_with(&green));
    ingest(&blue, "acme-ingest", vec![document("release.md", RELEASE)])
        .await
        .unwrap();
    // Green's "default" is another collection, which does not exist yet.
    let err = search(&green, "acme-ingest", query("freeze"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
    assert_eq!(
        search(&blue, "acme-ingest", query("freeze")).await.unwrap(),
        ["release.md"]
    );
    // Callers see plain names; Qdrant holds the prefixed one.
    let (reader, _) = key("acme-ingest");
    let listed = client(&blue)
        .list_collections(with_key(ListCollectionsRequest {}, &reader))
        .await
        .unwrap()
        .into_inner();
    let names: Vec<&str> = listed.collections.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["default"]);
    let raw = Qdrant::from_url(&qdrant.url())
        .skip_compatibility_check()
        .build()
        .unwrap();
    let physical: Vec<String> = raw
        .list_collections()
        .await
        .unwrap()
        .collections
        .into_iter()
        .map(|c| c.name)
        .collect();
    assert_eq!(physical, ["blue_default"]);
}
