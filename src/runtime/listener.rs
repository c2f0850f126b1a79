//! Accepting connections.

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::proto::handshake::is_self_connection;
use crate::runtime::{handshake, Shared};

/// Connections (including those mid-handshake) accepted at once; beyond it the listener
/// waits for one to end before accepting more, so a flood cannot exhaust memory.
pub(crate) const MAX_CONNECTIONS: usize = 4096;

/// Accepts until shutdown; each stream is handshaken on its own task.
pub(crate) async fn run(shared: Arc<Shared>, listener: TcpListener) {
    let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut backoff = Duration::from_millis(10);
    loop {
        let permit = tokio::select! {
            _ = shared.shutdown.cancelled() => return,
            p = permits.clone().acquire_owned() => p.expect("semaphore never closed"),
        };
        let accepted = tokio::select! {
            _ = shared.shutdown.cancelled() => return,
            a = listener.accept() => a,
        };
        let (stream, remote) = match accepted {
            Ok(x) => {
                backoff = Duration::from_millis(10);
                x
            }
            Err(e) => {
                // e.g. EMFILE: back off instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
                continue;
            }
        };
        let s = shared.clone();
        shared.tasks.spawn(async move {
            match handshake::accept(&s, stream, remote).await {
                Ok(conn) => conn.closed.cancelled().await,
                Err(crate::Error::Protocol { detail, .. }) if detail == handshake::CLOSED_EARLY => {
                    tracing::debug!(%remote, "peer hung up during the handshake");
                }
                // A client that gave up (its call done, or a probe) while we wrote our
                // half: a hang-up too, not something for an operator.
                Err(crate::Error::Io { source, .. }) if hung_up(&source) => {
                    tracing::debug!(%remote, error = %source, "peer hung up during the handshake");
                }
                Err(crate::Error::Refused { reason, .. }) if is_self_connection(&reason) => {}
                Err(e) => tracing::warn!(%remote, error = %e, "handshake failed"),
            }
            drop(permit);
        });
    }
}

/// Whether `e` means the peer closed its end (reset, broken pipe, end of stream).
pub(crate) fn hung_up(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        e.kind(),
        BrokenPipe | ConnectionReset | ConnectionAborted | UnexpectedEof
    )
}
