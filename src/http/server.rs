//! The accept loop of the HTTP listener, hand-written around hyper rather than
//! `axum::serve` for one setting axum does not expose: a limit on reading a request's
//! headers. Without it, a client that opens a connection and sends its headers a byte a
//! minute holds one of the [`MAX_CONNECTIONS`](super::connections::MAX_CONNECTIONS) slots
//! forever; with it, hyper closes such a connection after [`HEADER_READ_TIMEOUT`].
//! WebSocket upgrades are served as with axum; the node's shutdown closes every connection
//! gracefully, each within [`DRAIN_LIMIT`].

use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::serve::Listener;
use axum::{Extension, Router};
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::connections::{Bounded, PeerAddr};

/// Longest a client may take to send a request's headers.
pub(crate) const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Longest an open connection may take to finish once the node stops.
const DRAIN_LIMIT: Duration = Duration::from_secs(5);

/// Serves `app` on `listener` until `stop`, then waits for the open connections to drain.
pub(crate) async fn serve(mut listener: Bounded, app: Router, stop: CancellationToken) {
    let connections = TaskTracker::new();
    loop {
        let (io, peer) = tokio::select! {
            _ = stop.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        // Handlers learn the TCP peer as axum's `ConnectInfo` (the gateway's visibility).
        let app = app.clone().layer(Extension(ConnectInfo(PeerAddr(peer))));
        let stop = stop.clone();
        connections.spawn(async move {
            let conn = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT)
                .serve_connection(TokioIo::new(io), TowerToHyperService::new(app))
                .with_upgrades();
            tokio::pin!(conn);
            tokio::select! {
                r = conn.as_mut() => {
                    if let Err(e) = r {
                        tracing::trace!(%peer, error = %e, "HTTP connection ended");
                    }
                }
                _ = stop.cancelled() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = tokio::time::timeout(DRAIN_LIMIT, conn).await;
                }
            }
        });
    }
    connections.close();
    let _ = tokio::time::timeout(DRAIN_LIMIT, connections.wait()).await;
}
