//! The gateway for clients in other languages (DESIGN §11), on the node's HTTP listener:
//! - `GET /` upgraded to a WebSocket: MPREG's client protocol (`rpc`, as MPREG's own Python
//!   client speaks it) and mpreg's JSON roles for pub/sub and for serving functions from
//!   the socket (`socket.rs`);
//! - `POST /`: JSON-RPC 2.0 (`jsonrpc.rs`).
//!
//! Requests are read by plain functions that need no node (`socket::read_request`,
//! `call::workflow_of`, `jsonrpc::parse`), which the fuzz targets call through `fuzzing.rs`.
//!
//! A gateway request is a call from the gateway's TCP peer: a loopback peer counts as this
//! host, any other as another host, so functions visible to a host or a node only are never
//! reachable from another machine through the gateway. With a token (`--http-token-file`)
//! every request must carry it (`Authorization: Bearer`, or `?token=` for browsers'
//! WebSockets), else 401; a node with a cluster secret refuses to open a non-loopback
//! gateway without a token.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::ws::{rejection::WebSocketUpgradeRejection, WebSocketUpgrade};
use axum::extract::{ConnectInfo, DefaultBodyLimit, RawQuery, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use crate::error::{Error, Result};
use crate::http::connections::PeerAddr;
use crate::runtime::Shared;

mod call;
mod fault;
#[cfg(any(test, feature = "fuzzing"))]
pub(crate) mod fuzzing;
mod jsonrpc;
mod serving;
mod socket;
mod topics;

/// Largest JSON-RPC body (larger: 413).
const MAX_BODY: usize = 1 << 20;

/// What the gateway's handlers share.
#[derive(Clone)]
pub(crate) struct Gateway {
    shared: Arc<Shared>,
    /// The bearer token every request must carry, when one is configured.
    token: Option<Arc<str>>,
}

/// Who sent a gateway request, for visibility.
#[derive(Debug, Clone)]
pub(crate) struct Caller {
    /// The host the request counts as coming from (`Invocation::origin_host`).
    pub origin_host: Option<String>,
    peer: SocketAddr,
}

impl Caller {
    /// A loopback peer is on this host; any other is on another host, whatever it claims.
    fn of(shared: &Shared, peer: SocketAddr) -> Self {
        let host = if peer.ip().is_loopback() {
            shared.host_id.clone()
        } else {
            format!("gateway client at {}", peer.ip())
        };
        Caller {
            origin_host: Some(host),
            peer,
        }
    }

    /// "this host" or "another host (10.0.0.3)".
    pub(crate) fn place(&self) -> String {
        if self.peer.ip().is_loopback() {
            "this host".into()
        } else {
            format!("another host ({})", self.peer.ip())
        }
    }
}

/// The gateway's routes, for the HTTP listener to be bound to `bound`; fails when the
/// listener would open the cluster to the network without a token (see the module docs).
pub(crate) fn routes(shared: &Arc<Shared>, bound: SocketAddr) -> Result<Router> {
    let token = match &shared.config.http_token_file {
        Some(path) => Some(read_token(path)?),
        None => None,
    };
    if token.is_none() && shared.secret.is_some() && !bound.ip().is_loopback() {
        return Err(Error::Config(format!(
            "the HTTP gateway on {bound} would let any host of the network call this cluster, \
             which has a shared secret: give it a token with --http-token-file (or \
             MPREG_HTTP_TOKEN_FILE), or bind it to 127.0.0.1"
        )));
    }
    let gw = Gateway {
        shared: shared.clone(),
        token,
    };
    Ok(Router::new()
        .route("/", get(upgrade).post(jsonrpc))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(gw))
}

fn read_token(path: &std::path::Path) -> Result<Arc<str>> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        Error::io(
            format!("cannot read the HTTP token file {}", path.display()),
            e,
        )
    })?;
    let token = text.trim();
    if token.is_empty() {
        return Err(Error::Config(format!(
            "the HTTP token file {} is empty",
            path.display()
        )));
    }
    Ok(Arc::from(token))
}

impl Gateway {
    /// Checks the bearer token (header, or `token=` in the query), if one is configured.
    fn authorize(
        &self,
        headers: &HeaderMap,
        query: Option<&str>,
    ) -> std::result::Result<(), Denied> {
        let Some(want) = &self.token else {
            return Ok(());
        };
        let header = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        let query = query
            .into_iter()
            .flat_map(|q| q.split('&'))
            .find_map(|kv| kv.strip_prefix("token="));
        match header.or(query) {
            Some(given) if same(given.trim().as_bytes(), want.as_bytes()) => Ok(()),
            Some(_) => Err(Denied("wrong token")),
            None => Err(Denied("a bearer token is required")),
        }
    }
}

/// A request refused for its token: 401 with the reason.
struct Denied(&'static str);

impl IntoResponse for Denied {
    fn into_response(self) -> Response {
        (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            format!("unauthorized: {} (Authorization: Bearer <token>)\n", self.0),
        )
            .into_response()
    }
}

/// Equality that takes as long whatever the first difference (the token is a secret).
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// `GET /`: a WebSocket session; a plain GET is told what is served here.
async fn upgrade(
    State(gw): State<Gateway>,
    ConnectInfo(PeerAddr(peer)): ConnectInfo<PeerAddr>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    ws: std::result::Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    if let Err(denied) = gw.authorize(&headers, query.as_deref()) {
        return denied.into_response();
    }
    let Ok(ws) = ws else {
        return (
            StatusCode::BAD_REQUEST,
            "this is an mpreg node: WebSocket gateway (MPREG client protocol) on GET / with an \
             Upgrade, JSON-RPC 2.0 on POST /, /metrics, /health/live, /health/ready\n",
        )
            .into_response();
    };
    let caller = Caller::of(&gw.shared, peer);
    ws.max_message_size(socket::MAX_FRAME)
        .max_frame_size(socket::MAX_FRAME)
        .on_upgrade(move |s| socket::run(gw, caller, s))
}

/// `POST /`: JSON-RPC 2.0.
async fn jsonrpc(
    State(gw): State<Gateway>,
    ConnectInfo(PeerAddr(peer)): ConnectInfo<PeerAddr>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(denied) = gw.authorize(&headers, query.as_deref()) {
        return denied.into_response();
    }
    let caller = Caller::of(&gw.shared, peer);
    match jsonrpc::answer(&gw.shared, &caller, &body).await {
        Some(reply) => (
            [(header::CONTENT_TYPE, "application/json")],
            reply.to_string(),
        )
            .into_response(),
        None => StatusCode::NO_CONTENT.into_response(),
    }
}
