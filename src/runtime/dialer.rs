//! Keeping connections to seed addresses: dial, wait for the connection to end, redial
//! with exponential backoff, until shutdown.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::oneshot;

use crate::proto::handshake::is_self_connection;
use crate::runtime::Shared;
use crate::Error;

/// First redial delay; doubles up to [`MAX_BACKOFF`].
const MIN_BACKOFF: Duration = Duration::from_millis(100);
/// Longest redial delay.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Maintains a connection to `addr`. `first` is told when the first attempt ends.
pub(crate) async fn maintain(shared: Arc<Shared>, addr: String, first: oneshot::Sender<()>) {
    let mut first = Some(first);
    let mut backoff = MIN_BACKOFF;
    loop {
        let attempt = tokio::select! {
            _ = shared.shutdown.cancelled() => return,
            r = shared.connect_to(&addr) => r,
        };
        match attempt {
            Ok(conn) => {
                shared.seed_errors.lock().remove(&addr);
                if let Some(f) = first.take() {
                    let _ = f.send(());
                }
                backoff = MIN_BACKOFF;
                tokio::select! {
                    _ = shared.shutdown.cancelled() => return,
                    _ = conn.closed.cancelled() => {}
                }
            }
            Err(Error::Refused { reason, .. }) if is_self_connection(&reason) => {
                // Every node of a cluster may share one seed list: ours names us too.
                tracing::debug!(%addr, "this seed is this node itself: not dialed again");
                if let Some(f) = first.take() {
                    let _ = f.send(());
                }
                return;
            }
            Err(e) => {
                tracing::debug!(%addr, error = %e, "seed unreachable");
                shared
                    .seed_errors
                    .lock()
                    .insert(addr.clone(), e.to_string());
                if let Some(f) = first.take() {
                    let _ = f.send(());
                }
                // A refusal (other cluster, wrong secret) will not heal by retrying fast.
                if matches!(e, Error::Refused { .. }) {
                    backoff = MAX_BACKOFF;
                }
            }
        }
        tokio::select! {
            _ = shared.shutdown.cancelled() => return,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}
