//! The mock's listening socket: serves HTTP/1.1 and HTTP/2 connections, can
//! close (the port then refuses connections) and serve again on the same
//! address, and closes a connection without answering when a reply says so.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::http::Request;
use axum::response::Response;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;
use tower_service::Service;

/// Marks a response the connection must not send: [`DropOnRequest`] fails the
/// request instead, and hyper then closes the connection (HTTP/1.1) or resets
/// the stream (HTTP/2) without writing a status line.
#[derive(Clone, Copy, Debug)]
pub(crate) struct DropConnection;

/// The router, except that a response marked [`DropConnection`] becomes a
/// service error: axum's handlers cannot fail, and an error is the only way
/// hyper offers to end a connection before the response head.
#[derive(Clone, Debug)]
struct DropOnRequest(Router);

impl<B> Service<Request<B>> for DropOnRequest
where
    Router: Service<Request<B>, Response = Response, Error = Infallible>,
    <Router as Service<Request<B>>>::Future: Send + 'static,
{
    type Response = Response;
    type Error = std::io::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response, std::io::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Service::<Request<B>>::poll_ready(&mut self.0, cx).map_err(|never| match never {})
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let response = self.0.call(request);
        Box::pin(async move {
            let Ok(response) = response.await;
            if response.extensions().get::<DropConnection>().is_some() {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::ConnectionAborted,
                    "scripted drop before the response",
                ));
            }
            Ok(response)
        })
    }
}

/// A listening socket being served.
#[derive(Debug)]
pub(crate) struct Listening {
    stop: CancellationToken,
    closed: oneshot::Receiver<()>,
}

impl Listening {
    /// Serves `listener` until `stop` (the whole mock's token) or [`Self::close`].
    pub(crate) fn spawn(listener: TcpListener, router: Router, stop: &CancellationToken) -> Self {
        let stop = stop.child_token();
        let (closed_tx, closed) = oneshot::channel();
        tokio::spawn(serve(listener, router, stop.clone(), closed_tx));
        Self { stop, closed }
    }

    /// Stops accepting and returns once the listening socket is closed, so the
    /// port refuses connections from then on.
    pub(crate) async fn close(self) {
        self.stop.cancel();
        // An error means the task ended (the runtime is shutting down): closed too.
        let _ = self.closed.await;
    }
}

/// Serves HTTP/1.1 and HTTP/2 (also cleartext, by prior knowledge) until `stop`,
/// then closes the listening socket, says so on `closed`, and lets open
/// connections finish their current reply.
async fn serve(
    listener: TcpListener,
    router: Router,
    stop: CancellationToken,
    closed: oneshot::Sender<()>,
) {
    let mut http = auto::Builder::new(TokioExecutor::new());
    // Like a provider's edge, take every stream a client multiplexes on one
    // connection; hyper's default of 200 would hold the rest back in the client.
    http.http2().max_concurrent_streams(None);
    let connections = GracefulShutdown::new();
    loop {
        let tcp = tokio::select! {
            () = stop.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((tcp, _)) => tcp,
                Err(err) => {
                    // Out of file descriptors, most likely: wait, do not spin.
                    tracing::warn!(error = %err, "mock LLM cannot accept");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
        };
        // Chunks are small writes: without TCP_NODELAY, Nagle's algorithm meets the
        // client's delayed ACK and holds some of them for ~40 ms.
        if let Err(err) = tcp.set_nodelay(true) {
            tracing::warn!(error = %err, "cannot set TCP_NODELAY");
        }
        let service = TowerToHyperService::new(DropOnRequest(router.clone()));
        let connection = http
            .serve_connection(TokioIo::new(tcp), service)
            .into_owned();
        let connection = connections.watch(connection);
        tokio::spawn(async move {
            if let Err(err) = connection.await {
                tracing::debug!(error = %err, "mock LLM connection ended");
            }
        });
    }
    drop(listener);
    // The receiver is gone only if nobody waits for the close.
    let _ = closed.send(());
    connections.shutdown().await;
}
