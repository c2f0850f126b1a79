//! Pub/sub in the runtime (DESIGN §9): this node's subscriptions (`local`), its peers'
//! (`remote`), publishing to exactly the nodes with a matching subscription (`publish`),
//! and delivering what peers publish to the subscribers here (`deliver`).

pub(crate) mod ack;
mod changes;
mod deliver;
mod local;
mod matched;
mod publish;
mod remote;
mod route_cache;
mod subscribe;

use parking_lot::{Mutex, RwLock};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use tokio::sync::oneshot;

use crate::proto::wire::PubAck;

pub(crate) use local::{Subscriber, Wakes};
pub(crate) use publish::{Outgoing, Report, Wait};
pub(crate) use subscribe::SubHandler;

/// Pub/sub state of one node.
pub(crate) struct PubSub {
    pub local: RwLock<local::Local>,
    pub remote: RwLock<remote::Remote>,
    /// Publishers waiting for a peer's `PubAck`, by ack id, with the peer expected to send it.
    acks: Mutex<HashMap<u64, (u64, oneshot::Sender<PubAck>)>>,
    /// Subscribers waiting for a peer's `Synced`, by id.
    syncs: Mutex<HashMap<u64, oneshot::Sender<()>>>,
    next_id: AtomicU64,
    /// Round-robin position per queue group, to spread equally loaded members.
    turns: Mutex<HashMap<String, u64>>,
    pub stats: Stats,
    /// Grows whenever a connection is listed or unlisted (what a route reaches changes).
    pub links: AtomicU64,
    /// The last route a publication took (see `route_cache`).
    routes: route_cache::RouteCache<std::sync::Arc<publish::Plan>>,
    /// `local`'s and `remote`'s counts of changes, readable without their locks.
    local_changes: changes::Changes,
    remote_changes: changes::Changes,
}

impl Default for PubSub {
    fn default() -> Self {
        let local = local::Local::default();
        let remote = remote::Remote::default();
        PubSub {
            local_changes: local.changes().clone(),
            remote_changes: remote.changes().clone(),
            local: RwLock::new(local),
            remote: RwLock::new(remote),
            acks: Mutex::default(),
            syncs: Mutex::default(),
            next_id: AtomicU64::default(),
            turns: Mutex::default(),
            stats: Stats::default(),
            links: AtomicU64::default(),
            routes: route_cache::RouteCache::default(),
        }
    }
}

/// Pub/sub counters, visible in [`NodeStats`](crate::NodeStats) and `mpreg nodes`.
#[derive(Debug, Default)]
pub(crate) struct Stats {
    /// Publications this node published.
    pub published: AtomicU64,
    /// Publications peers sent here.
    pub received: AtomicU64,
    /// Of those, the ones no subscription here matched (a race with unsubscribing; a
    /// publisher never sends to a node without a matching subscription it knows of).
    pub unmatched: AtomicU64,
    /// Times a connection reader stopped reading its peer because a lossless subscriber it
    /// fed was full (back-pressure instead of drops).
    pub held: AtomicU64,
}

impl PubSub {
    pub(crate) fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Relaxed) + 1
    }

    /// A peer's acknowledgement arrived; ignored unless that peer owes it.
    pub(crate) fn acked(&self, peer: u64, ack: PubAck) {
        let mut acks = self.acks.lock();
        if acks.get(&ack.id).is_some_and(|(p, _)| *p == peer) {
            if let Some((_, tx)) = acks.remove(&ack.id) {
                let _ = tx.send(ack);
            }
        }
    }

    /// A peer answered our `Sync(id)`.
    pub(crate) fn synced(&self, id: u64) {
        if let Some(tx) = self.syncs.lock().remove(&id) {
            let _ = tx.send(());
        }
    }

    /// Ends every subscription at shutdown: streams end, workers stop.
    pub(crate) fn close_all(&self) {
        for s in self.local.read().subscribers() {
            s.queue.close();
        }
    }
}
