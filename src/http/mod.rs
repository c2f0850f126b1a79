//! The node's HTTP listener (`--http ADDR`, DESIGN §11): Prometheus `GET /metrics`,
//! `GET /health/live`, `GET /health/ready`, and the gateway for other languages on `/`
//! (`crate::gateway`). One listener per node, off unless an address is configured.
//!
//! It binds when the node starts (a bind failure fails the start) and stops with
//! [`Node::shutdown`](crate::Node::shutdown): it is one task of the node's tracker and
//! drains gracefully on the node's shutdown token. Open connections are bounded
//! (`connections.rs`).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use tokio::net::TcpListener;

use crate::error::{Error, Result};
use crate::runtime::Shared;

pub(crate) mod connections;
mod server;

#[cfg(test)]
mod tests;

/// Binds `addr` and serves the routes until the node shuts down; records the bound address
/// (port 0 picks one) in `Shared::http_addr`.
pub(crate) async fn start(shared: &Arc<Shared>, addr: SocketAddr) -> Result<()> {
    // Before binding: a gateway that must not open is never reachable, even briefly.
    let gateway = crate::gateway::routes(shared, addr)?;
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| Error::io(format!("cannot listen for HTTP on {addr}"), e))?;
    let local = listener
        .local_addr()
        .map_err(|e| Error::io("cannot read the HTTP listening address", e))?;
    let app = routes(shared.clone()).merge(gateway);
    let _ = shared.http_addr.set(local);
    let stop = shared.shutdown.clone();
    shared.tasks.spawn(server::serve(
        connections::Bounded::new(listener),
        app,
        stop,
    ));
    tracing::info!(node = %shared.name, addr = %local, "HTTP: gateway on / (WebSocket, JSON-RPC), /metrics, /health/live, /health/ready");
    Ok(())
}

/// The routes; anything else is a 404 that lists them.
fn routes(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/health/live", get(live))
        .route("/health/ready", get(ready))
        .fallback(not_found)
        .with_state(shared)
}

/// The node's metrics in the Prometheus text format.
async fn metrics(State(shared): State<Arc<Shared>>) -> impl IntoResponse {
    let body = crate::metrics::prometheus::render(&shared);
    (
        [(
            header::CONTENT_TYPE,
            crate::metrics::prometheus::CONTENT_TYPE,
        )],
        body,
    )
}

/// Alive: the process answers (it is only served while the node runs).
async fn live() -> &'static str {
    "ok\n"
}

/// Ready for work (see `Shared::readiness`), else 503 with the reason on one line.
async fn ready(State(shared): State<Arc<Shared>>) -> (StatusCode, String) {
    match shared.readiness() {
        Ok(()) => (StatusCode::OK, "ready\n".into()),
        Err(why) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {why}\n"),
        ),
    }
}

async fn not_found() -> (StatusCode, &'static str) {
    (
        StatusCode::NOT_FOUND,
        "not found: this node serves / (WebSocket and JSON-RPC gateway), /metrics, \
         /health/live and /health/ready\n",
    )
}
