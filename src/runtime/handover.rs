//! Moving from one connection to another without reordering what a peer sends.
//!
//! When two nodes dial each other at once, each ends up with two connections and both keep
//! the same one ([`Shared::add_connection`]). A node that was already sending on the other
//! one (publications, messages) moves to the survivor — and frames it sent on the old one
//! may still be in flight when its first frames on the new one arrive: read by two reader
//! tasks, a publisher's stream would reach the subscriber out of order (the LAN chaos soak
//! saw exactly that after a link heal). So the move is fenced:
//!
//! - the mover sends `Fence` as the last frame on the old connection and `Handover(token)`,
//!   naming the old connection, as the first frame of the move on the new one;
//! - the receiver, reading `Handover(token)`, handles nothing more from the new connection
//!   until it has read the old one's `Fence`, or the old one has closed.
//!
//! Both connections are named by a token both ends know from the handshake (the dialer's
//! nonce). The old connection may not even be registered yet at the receiver (its
//! handshake finishing late); the wait covers that, up to [`WAIT_LIMIT`].

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::Notify;

use crate::proto::codec::encode_frame;
use crate::proto::wire::Frame;
use crate::runtime::{Connection, Shared};

/// Longest a connection waits for the one it replaces to be fenced: a bound for a peer that
/// never sends the fence (the liveness watchdog closes a silent link well within it).
pub(crate) const WAIT_LIMIT: Duration = Duration::from_secs(5);

/// Tokens of closed connections remembered, so that a handover naming one does not wait.
const GONE_KEPT: usize = 1024;

/// The connections of a node by token, and the tokens of those that closed lately.
#[derive(Default)]
pub(crate) struct Handovers {
    state: Mutex<Tokens>,
    /// Woken when a connection registers or closes.
    changed: Notify,
}

#[derive(Default)]
struct Tokens {
    open: HashMap<u64, Arc<Connection>>,
    gone: VecDeque<u64>,
}

/// The token of a connection: the first bytes of the dialer's hello nonce, which both ends
/// have.
pub(crate) fn token_of(dialer_nonce: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    for (d, s) in b.iter_mut().zip(dialer_nonce) {
        *d = *s;
    }
    u64::from_le_bytes(b)
}

impl Handovers {
    /// `conn` is open and may be named by a handover.
    pub(crate) fn opened(&self, conn: &Arc<Connection>) {
        self.state.lock().open.insert(conn.token, conn.clone());
        self.changed.notify_waiters();
    }

    /// `conn`'s reader ended.
    pub(crate) fn closed(&self, conn: &Connection) {
        let mut st = self.state.lock();
        if st
            .open
            .get(&conn.token)
            .is_some_and(|c| std::ptr::eq(Arc::as_ptr(c), conn))
        {
            st.open.remove(&conn.token);
        }
        st.gone.push_back(conn.token);
        if st.gone.len() > GONE_KEPT {
            st.gone.pop_front();
        }
        drop(st);
        self.changed.notify_waiters();
    }

    /// Waits until the connection named `token` from `peer` has been fenced or closed (or
    /// [`WAIT_LIMIT`]); `false` if it gave up at the limit.
    pub(crate) async fn wait(&self, token: u64, peer: u64) -> bool {
        tokio::time::timeout(WAIT_LIMIT, async {
            loop {
                let notified = self.changed.notified();
                let old = {
                    let st = self.state.lock();
                    match st.open.get(&token) {
                        Some(c) if c.peer.id == peer => Some(c.clone()),
                        // Another peer's token (a collision), or one long closed: no wait.
                        Some(_) => return,
                        None if st.gone.contains(&token) => return,
                        None => None,
                    }
                };
                match old {
                    Some(c) => return c.fenced.cancelled().await,
                    // Not registered yet: its handshake is finishing.
                    None => notified.await,
                }
            }
        })
        .await
        .is_ok()
    }
}

impl Shared {
    /// Moves our one-way traffic to `peer` from `old` to `new`: fences `old` and announces
    /// the move on `new`, before anything else is queued there.
    pub(crate) fn hand_over(&self, old: &Connection, new: &Connection) {
        if old
            .fence_sent
            .swap(true, std::sync::atomic::Ordering::Relaxed)
        {
            return;
        }
        if let Ok(f) = encode_frame(&Frame::Fence) {
            old.send_soon(f);
        }
        if let Ok(f) = encode_frame(&Frame::Handover(old.token)) {
            new.send_soon(f);
        }
    }

    /// Fences `conn`, which this node never moved traffic from but will not use (a
    /// duplicate that lost): its peer may be waiting to move away from it.
    pub(crate) fn fence(&self, conn: &Connection) {
        if conn
            .fence_sent
            .swap(true, std::sync::atomic::Ordering::Relaxed)
        {
            return;
        }
        if let Ok(f) = encode_frame(&Frame::Fence) {
            conn.send_soon(f);
        }
    }
}
