//! Clients follow the cluster live (DESIGN §4). A client (a node that does not listen or
//! gossip) attaches to one member with a `Watch` frame; the member sends its view of the
//! cluster at once and again after every change (members up, down or gone, catalogs),
//! coalesced. When the attached member's connection ends — a graceful stop, a crash, or
//! a link cut noticed by the heartbeat — the client attaches to another member it knows,
//! or finds the cluster again by seeds and discovery.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use crate::error::Result;
use crate::proto::codec::encode_frame;
use crate::proto::wire::Frame;
use crate::runtime::{bootstrap, Connection, Shared};

/// Changes arriving within this window after one another reach a client as one push.
const PUSH_COALESCE: Duration = Duration::from_millis(20);

/// Longest a client waits for the first view after attaching.
const FIRST_VIEW: Duration = Duration::from_secs(3);

/// Pause between rounds when no member can be reached; doubles up to [`RETRY_MAX`].
const RETRY_MIN: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(2);

impl Shared {
    /// `conn`'s peer asked to be kept informed: push it our view now and after every
    /// change until the connection ends. One pusher per connection; each push waits for
    /// room in the connection's queue, so a client that does not read holds at most one.
    pub(crate) fn watch_members(self: &Arc<Self>, conn: &Arc<Connection>) {
        if conn.watched.swap(true, Relaxed) {
            return;
        }
        self.tasks.spawn(push_views(self.clone(), conn.clone()));
    }
}

async fn push_views(shared: Arc<Shared>, conn: Arc<Connection>) {
    let mut epochs = shared.view_epoch.subscribe();
    loop {
        epochs.mark_unchanged();
        let view = shared.members_for(&conn.peer.host_id);
        let Ok(frame) = encode_frame(&Frame::Members(view)) else {
            return;
        };
        if !conn.send(frame).await {
            return;
        }
        tokio::select! {
            _ = conn.closed.cancelled() => return,
            _ = shared.shutdown.cancelled() => return,
            r = epochs.changed() => if r.is_err() { return },
        }
        tokio::select! {
            _ = conn.closed.cancelled() => return,
            _ = tokio::time::sleep(PUSH_COALESCE) => {}
        }
    }
}

/// Attaches a client to the member at the other end of `conn`: asks for pushed views and
/// adopts the first one.
pub(crate) async fn attach(shared: &Arc<Shared>, conn: &Arc<Connection>) -> Result<()> {
    let msg = conn.watch(FIRST_VIEW).await?;
    shared.adopt_members(&msg);
    shared.mailbox.membership_changed(shared);
    *shared.attached.lock() = Some(conn.clone());
    tracing::debug!(member = %conn.peer.name, "attached to the cluster");
    Ok(())
}

/// Keeps a client attached until shutdown.
pub(crate) async fn maintain(shared: Arc<Shared>) {
    let mut pause = RETRY_MIN;
    // The member we were attached to last, tried after every other: it may be frozen or
    // cut off rather than dead, and a dial to it can then take a handshake timeout.
    let mut lost = None;
    loop {
        let current = shared.attached.lock().clone();
        if let Some(c) = current {
            tokio::select! {
                _ = shared.shutdown.cancelled() => return,
                _ = c.closed.cancelled() => {}
            }
            tracing::debug!(member = %c.peer.name, reason = c.close_reason().unwrap_or_default(), "attached member lost; attaching to another");
            *shared.attached.lock() = None;
            lost = Some(c.peer.id);
            pause = RETRY_MIN;
        }
        // A stopping node closes its connections before it cancels: the round must give
        // way to the shutdown rather than hold it up.
        let attached = tokio::select! {
            _ = shared.shutdown.cancelled() => return,
            a = reattach(&shared, lost) => a,
        };
        if attached {
            continue;
        }
        tokio::select! {
            _ = shared.shutdown.cancelled() => return,
            _ = tokio::time::sleep(pause) => {}
        }
        pause = (pause * 2).min(RETRY_MAX);
    }
}

/// One round of finding a member to attach to: a live connection to a member, then the
/// members we know of (`lost`, the member we just lost, last), then seeds and discovery.
/// Returns whether it attached.
async fn reattach(shared: &Arc<Shared>, lost: Option<u64>) -> bool {
    // The connection just lost may still be listed until its reader has finished: skip
    // closed ones, and try the lost member last here too.
    let mut connected: Vec<Arc<Connection>> = shared
        .connections()
        .into_iter()
        .filter(|c| c.peer.listen_port != 0 && !c.closed.is_cancelled())
        .collect();
    connected.sort_by_key(|c| Some(c.peer.id) == lost);
    for c in connected {
        if attach(shared, &c).await.is_ok() {
            return true;
        }
    }
    let mut known: Vec<(bool, String)> = shared
        .directory
        .read()
        .values()
        .map(|e| (Some(e.member.id) == lost, e.member.addr.to_string()))
        .collect();
    known.sort();
    for (_, addr) in known {
        if let Ok(c) = shared.connect_to(&addr).await {
            if attach(shared, &c).await.is_ok() {
                return true;
            }
        }
    }
    if !shared.config.seeds.is_empty() {
        // The seed dialers reconnect by themselves; the next round finds their connection.
        return false;
    }
    match bootstrap::discover_and_connect(shared).await {
        Ok(Some(c)) => attach(shared, &c).await.is_ok(),
        _ => false,
    }
}
