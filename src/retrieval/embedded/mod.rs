//! The embedded vector store: the Qdrant engine (qdrant-edge) in-process, served
//! over Qdrant's own gRPC protocol on a private 127.0.0.1 port, so agentd talks
//! to it through qdrant-client exactly as it talks to an external Qdrant.

mod convert;
pub mod engine;
pub mod service;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use qdrant_client::qdrant::collections_server::CollectionsServer;
use qdrant_client::qdrant::points_server::PointsServer;
use qdrant_client::qdrant::qdrant_server::QdrantServer;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use engine::Engine;
use service::EmbeddedQdrant;

/// A running embedded store.
#[derive(Debug)]
pub struct EmbeddedStore {
    addr: SocketAddr,
    stop: CancellationToken,
    server: tokio::task::JoinHandle<()>,
}

impl EmbeddedStore {
    /// Opens the store under `dir` (on a blocking thread) and serves it on an
    /// ephemeral loopback port.
    pub async fn start(dir: &Path) -> anyhow::Result<Self> {
        Self::serve(dir, TcpListener::bind("127.0.0.1:0").await?).await
    }

    /// Opens the store under `dir` and serves it on `listener`.
    pub async fn serve(dir: &Path, listener: TcpListener) -> anyhow::Result<Self> {
        let dir = dir.to_owned();
        let engine = tokio::task::spawn_blocking(move || Engine::open(&dir)).await??;
        let service = EmbeddedQdrant::new(Arc::new(engine));
        let addr = listener.local_addr()?;
        let incoming =
            tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
        let stop = CancellationToken::new();
        let shutdown = stop.clone();
        let server = tokio::spawn(async move {
            let served = tonic::transport::Server::builder()
                .add_service(QdrantServer::new(service.clone()))
                .add_service(CollectionsServer::new(service.clone()))
                .add_service(PointsServer::new(service))
                .serve_with_incoming_shutdown(incoming, shutdown.cancelled_owned())
                .await;
            if let Err(err) = served {
                tracing::error!(error = %err, "the embedded Qdrant server failed");
            }
        });
        Ok(Self { addr, stop, server })
    }

    /// The URL qdrant-client connects to.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops serving and waits for the server to end.
    pub async fn stop(self) {
        self.stop.cancel();
        if let Err(err) = self.server.await {
            tracing::warn!(error = %err, "the embedded Qdrant server task failed");
        }
    }
}
