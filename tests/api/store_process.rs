//! The embedded vector store through the real binary: everything IngestDocuments
//! and DeleteDocument acknowledged is there after `kill -9` and a restart, and
//! the restarted store keeps taking writes (that survive the next kill too).

use agentd::pb::retrieval_service_client::RetrievalServiceClient;
use agentd::pb::{
    DeleteDocumentRequest, Document, IngestDocumentsRequest, ListCollectionsRequest, SearchMode,
    SearchRequest,
};
use tonic::transport::Channel;

use crate::helpers::ServerProcess;

async fn client(server: &ServerProcess) -> RetrievalServiceClient<Channel> {
    let channel = Channel::from_shared(format!("http://{}", server.grpc_addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    RetrievalServiceClient::new(channel)
}

async fn ingest(
    client: &mut RetrievalServiceClient<Channel>,
    collection: &str,
    docs: &[(&str, &str)],
) {
    client
        .ingest_documents(IngestDocumentsRequest {
            collection: collection.into(),
            documents: docs
                .iter()
                .map(|(id, text)| Document {
                    doc_id: (*id).into(),
                    text: (*text).into(),
                    ..Document::default()
                })
                .collect(),
        })
        .await
        .unwrap();
}

/// (doc_id, text) of every hit for `query`.
async fn search(
    client: &mut RetrievalServiceClient<Channel>,
    collection: &str,
    query: &str,
) -> Vec<(String, String)> {
    client
        .search(SearchRequest {
            collection: collection.into(),
            query: query.into(),
            top_k: 20,
            mode: SearchMode::Sparse.into(),
            ..SearchRequest::default()
        })
        .await
        .unwrap()
        .into_inner()
        .hits
        .into_iter()
        .map(|hit| (hit.doc_id, hit.text))
        .collect()
}

/// (collection, documents, chunks), sorted.
async fn collections(client: &mut RetrievalServiceClient<Channel>) -> Vec<(String, u64, u64)> {
    let mut list: Vec<_> = client
        .list_collections(ListCollectionsRequest {})
        .await
        .unwrap()
        .into_inner()
        .collections
        .into_iter()
        .map(|c| (c.name, c.documents, c.chunks))
        .collect();
    list.sort();
    list
}

#[tokio::test]
async fn acknowledged_ingests_and_deletes_survive_kill_9() {
    let server = ServerProcess::start(&[]).await;
    let mut store = client(&server).await;
    ingest(
        &mut store,
        "handbook",
        &[
            (
                "release.md",
                "The release freeze window starts 48 hours before a release.",
            ),
            ("vacation.md", "Everyone gets 25 days of paid vacation."),
            ("laptops.md", "Laptops are replaced every three years."),
        ],
    )
    .await;
    ingest(
        &mut store,
        "",
        &[("welcome.md", "Welcome aboard: your first week plan.")],
    )
    .await;
    // Replaced, then deleted: both acknowledged before the kill.
    ingest(
        &mut store,
        "handbook",
        &[(
            "release.md",
            "The release freeze window starts 72 hours before a release.",
        )],
    )
    .await;
    store
        .delete_document(DeleteDocumentRequest {
            collection: "handbook".into(),
            doc_id: "laptops.md".into(),
        })
        .await
        .unwrap();

    let data_dir = server.kill().await;
    let server = ServerProcess::start_in(data_dir, &[]).await;
    let mut store = client(&server).await;
    assert_eq!(
        collections(&mut store).await,
        [("default".to_owned(), 1, 1), ("handbook".to_owned(), 2, 2)]
    );
    let release = search(&mut store, "handbook", "release freeze window").await;
    assert_eq!(release.len(), 1, "{release:?}");
    assert!(release[0].1.contains("72 hours"), "{release:?}");
    assert!(
        search(&mut store, "handbook", "laptops replaced")
            .await
            .is_empty()
    );
    assert_eq!(
        search(&mut store, "", "first week").await[0].0,
        "welcome.md"
    );

    // The reopened store takes writes, and they survive the next kill too.
    ingest(
        &mut store,
        "handbook",
        &[("expenses.md", "Expenses are filed in Ledgerly.")],
    )
    .await;
    let data_dir = server.kill().await;
    let server = ServerProcess::start_in(data_dir, &[]).await;
    let mut store = client(&server).await;
    assert_eq!(
        collections(&mut store).await,
        [("default".to_owned(), 1, 1), ("handbook".to_owned(), 3, 3)]
    );
    assert_eq!(
        search(&mut store, "handbook", "expenses Ledgerly").await[0].0,
        "expenses.md"
    );
}
