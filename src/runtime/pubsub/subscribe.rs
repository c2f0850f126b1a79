//! Adding and removing subscriptions on this node, running function subscribers, and
//! making sure peers know of a new subscription before `subscribe` returns.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;
use tokio::sync::oneshot;

use super::local::Subscriber;
use crate::error::{Error, Result};
use crate::function::{BoxFuture, HandlerResult};
use crate::proto::catalog::Relation;
use crate::proto::codec::encode_frame;
use crate::proto::topic::Pattern;
use crate::proto::wire::{Failure, Frame};
use crate::pubsub::Publication;
use crate::runtime::queue::Full;
use crate::runtime::{Connection, Shared};

/// A function subscriber's body: the publication in, the encoded result out (the answer
/// when a request-publish chose it).
pub(crate) type SubHandler = Arc<dyn Fn(Publication) -> BoxFuture<HandlerResult> + Send + Sync>;

/// Longest `subscribe` waits for current peers to confirm they know the subscription.
const SYNC_WITHIN: Duration = Duration::from_secs(2);

/// Longest queue group name, in bytes.
const MAX_GROUP: usize = 256;

fn check_group(group: &str) -> Result<()> {
    if group.is_empty() || group.len() > MAX_GROUP || group.chars().any(|c| c.is_control()) {
        return Err(Error::Topic(format!(
            "bad queue group {group:?}: it must be 1 to {MAX_GROUP} bytes without control characters"
        )));
    }
    Ok(())
}

impl Shared {
    /// Adds a subscription: validates, inserts, starts `handler`'s worker if any, and —
    /// when the advertised catalog changed — waits until current peers know it.
    pub(crate) async fn subscribe(
        self: &Arc<Self>,
        pattern: &str,
        group: Option<&str>,
        what: &str,
        handler: Option<SubHandler>,
        full: Full,
    ) -> Result<Arc<Subscriber>> {
        let (sub, changed) = self.add_subscriber(pattern, group, what, handler, full)?;
        if changed {
            self.announce_catalog_synced(SYNC_WITHIN).await;
        }
        Ok(sub)
    }

    /// The synchronous part of [`subscribe`](Self::subscribe) (also used at node start,
    /// before there are peers): returns the subscriber and whether the catalog changed.
    pub(crate) fn add_subscriber(
        self: &Arc<Self>,
        pattern: &str,
        group: Option<&str>,
        what: &str,
        handler: Option<SubHandler>,
        full: Full,
    ) -> Result<(Arc<Subscriber>, bool)> {
        let parsed = Pattern::parse(pattern).map_err(|e| Error::Topic(e.to_string()))?;
        if let Some(g) = group {
            check_group(g)?;
        }
        let id = self.pubsub.next_id();
        let sub = Arc::new(Subscriber::new(
            id,
            parsed,
            group.map(String::from),
            what,
            self.config.sub_queue,
            full,
        ));
        if let Some(h) = handler {
            self.spawn_worker(sub.clone(), h);
        }
        let changed = self.pubsub.local.write().insert(sub.clone());
        Ok((sub, changed))
    }

    /// Removes subscriber `id`: its queue closes (a function's worker stops after the
    /// message it is handling), waiting publishers learn of what was still queued, and the
    /// readers and local publishers a lossless queue held back go on.
    pub(crate) fn unsubscribe(&self, id: u64) {
        let removed = self.pubsub.local.write().remove(id);
        let Some((sub, changed)) = removed else {
            return;
        };
        sub.queue.close();
        for mut p in sub.queue.drain() {
            if let Some(a) = p.ack.take() {
                a.fail("unsubscribed before it was handled");
            }
        }
        if changed {
            self.announce_catalog();
        }
    }

    /// Runs a function subscriber: one message at a time, in arrival order, each body
    /// isolated from panics.
    fn spawn_worker(self: &Arc<Self>, sub: Arc<Subscriber>, handler: SubHandler) {
        let shutdown = self.shutdown.clone();
        self.tasks.spawn(async move {
            loop {
                let next = tokio::select! {
                    p = sub.queue.pop() => p,
                    _ = shutdown.cancelled() => None,
                };
                let Some(mut p) = next else { break };
                let ack = p.ack.take();
                let h = handler.clone();
                let body = AssertUnwindSafe(async move { h(p).await }).catch_unwind();
                let result = match body.await {
                    Ok(r) => r,
                    Err(_) => Err(Failure::remote("the subscriber panicked")),
                };
                if let Err(f) = &result {
                    tracing::warn!(subscription = %sub.label, error = %f.message, "subscriber failed");
                }
                if let Some(a) = ack {
                    a.settle(result);
                }
            }
        });
    }

    /// Sends our catalog to every connected peer, then waits (at most `within`) until each
    /// has handled it: frames are handled in order, so a `Synced` answer to a `Sync` sent
    /// after the catalog proves the catalog was applied.
    pub(crate) async fn announce_catalog_synced(self: &Arc<Self>, within: Duration) {
        self.note_catalog_version();
        let conns = self.all_connections();
        let syncs = conns.iter().map(|c| self.sync_catalog(c, within));
        futures_util::future::join_all(syncs).await;
    }

    async fn sync_catalog(&self, conn: &Arc<Connection>, within: Duration) {
        let view = self.catalog_view(Relation::of_peer(&self.host_id, &conn.peer.host_id));
        let id = self.pubsub.next_id();
        let (tx, rx) = oneshot::channel();
        self.pubsub.syncs.lock().insert(id, tx);
        let sent = match (
            encode_frame(&Frame::Catalog(view)),
            encode_frame(&Frame::Sync(id)),
        ) {
            (Ok(cat), Ok(sync)) => conn.send(cat).await && conn.send(sync).await,
            _ => false,
        };
        if sent {
            tokio::select! {
                _ = rx => {}
                _ = conn.closed.cancelled() => {}
                _ = tokio::time::sleep(within) => {
                    tracing::warn!(peer = %conn.peer.name, "peer did not confirm our new subscription in time");
                }
            }
        }
        self.pubsub.syncs.lock().remove(&id);
    }
}
