//! One connection per peer: dials to one address coalesce (single flight), and when both
//! sides dial at once the two connections are closed down to one.
//!
//! Every path that opens a connection — calls, forwarding, catalog pulls, pub/sub, seeds,
//! membership, messages — goes through [`Shared::connect_to`], so a burst of calls to a
//! node that is not connected yet opens one connection, not one per call (and the
//! serving node's `max_in_flight` holds per peer).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::error::{Error, Result};
use crate::runtime::{handshake, Connection, Shared};

/// A retired duplicate connection is closed once nothing was in flight on it, and nothing
/// received but heartbeats, for this long (both sides stop using it at once, but frames may be
/// in transit).
const RETIRE_IDLE: Duration = Duration::from_secs(1);

/// The dial in progress (or just finished) to one address.
#[derive(Default)]
pub(crate) struct Flight {
    /// Held by the dialing task; the others wait on it and take its result.
    landed: tokio::sync::Mutex<Option<Landed>>,
}

struct Landed {
    at: Instant,
    result: std::result::Result<Arc<Connection>, Error>,
}

/// Dials in progress by address.
#[derive(Default)]
pub(crate) struct Flights(Mutex<HashMap<String, Arc<Flight>>>);

impl Shared {
    /// A connection to the node at `addr`: an existing one, the one being dialed by another
    /// task, or a new one.
    pub(crate) async fn connect_to(self: &Arc<Self>, addr: &str) -> Result<Arc<Connection>> {
        if let Some(c) = self.connection_at(addr) {
            return Ok(c);
        }
        let flight = self
            .flights
            .0
            .lock()
            .entry(addr.to_string())
            .or_default()
            .clone();
        let asked = Instant::now();
        let mut landed = flight.landed.lock().await;
        let result = match &*landed {
            // Another task dialed while we waited: share its outcome.
            Some(l) if l.at >= asked => l.result.as_ref().map(Arc::clone).map_err(copy),
            _ => match self.connection_at(addr) {
                Some(c) => Ok(c),
                None => {
                    let r = handshake::dial(self, addr).await;
                    *landed = Some(Landed {
                        at: Instant::now(),
                        result: r.as_ref().map(Arc::clone).map_err(copy),
                    });
                    r
                }
            },
        };
        drop(landed);
        let mut map = self.flights.0.lock();
        // Only the map and this task hold it: nobody is waiting, forget the address.
        if Arc::strong_count(&flight) == 2 {
            map.remove(addr);
        }
        drop(map);
        result.map(|c| self.current(c))
    }

    /// The connection to `conn`'s peer that traffic goes on now: `conn` itself, unless it
    /// lost to a duplicate and was fenced (nothing new may follow its fence).
    pub(crate) fn current(&self, conn: Arc<Connection>) -> Arc<Connection> {
        if !conn.fence_sent.load(Relaxed) {
            return conn;
        }
        self.connection_to(conn.peer.id).unwrap_or(conn)
    }

    /// The live connection to the node listening at `addr` (or connected from it).
    pub(crate) fn connection_at(&self, addr: &str) -> Option<Arc<Connection>> {
        let target: SocketAddr = addr.parse().ok()?;
        self.connections().into_iter().find(|c| {
            c.peer.addr == target
                || (c.peer.addr.ip() == target.ip() && c.peer.listen_port == target.port())
        })
    }

    /// Lists a new connection. When the peer already has one (both sides dialed at once),
    /// both sides keep the connection dialed by the node with the smaller id (of two by the
    /// same node, the smaller token) and retire the other: no new work goes on it, and it
    /// closes once idle with nothing left unread.
    pub(crate) fn add_connection(self: &Arc<Self>, conn: &Arc<Connection>) {
        if conn.closed.is_cancelled() {
            return;
        }
        tracing::debug!(peer = %conn.peer.name, addr = %conn.peer.addr, "connected");
        let retired = {
            let mut peers = self.peers.write();
            self.pubsub.links.fetch_add(1, Relaxed);
            let list = peers.entry(conn.peer.id).or_default();
            let before = list.first().cloned();
            list.push(conn.clone());
            let dialer = |c: &Arc<Connection>| if c.dialed { self.id } else { c.peer.id };
            // Of two dialed by the same node, the one with the smaller token stays: both
            // ends know the tokens, so they keep the same one whatever order their
            // handshakes finished in ("the older stays" could differ between the ends, and
            // a peer moving to a connection we retire would wait on a fence never sent).
            list.sort_by_key(|c| (dialer(c), c.token));
            let unlisted = list.split_off(1);
            // Fenced under the lock, before anybody can queue anything on the survivor:
            // what we sent on the one we used stays ahead of what follows on the new one.
            match before {
                Some(old) if !Arc::ptr_eq(&old, &list[0]) => self.hand_over(&old, &list[0]),
                _ => {}
            }
            // Still open a while, but no longer listed: its counts so far move to the
            // retired ones, and what it carries until it closes follows when it does.
            for c in &unlisted {
                self.fence(c);
                self.retire_traffic(&mut peers, c, false);
            }
            unlisted
        };
        for c in retired {
            tracing::debug!(peer = %c.peer.name, "retiring a duplicate connection");
            self.tasks.spawn(retire(c));
        }
        self.unreachable.lock().remove(&conn.peer.id);
        self.view_changed();
    }
}

/// Closes a duplicate connection once it has been idle for [`RETIRE_IDLE`]: no call in
/// flight either way and nothing received but heartbeats, which both sides' watchdogs
/// send on every quiet connection (counting them, a duplicate would never be idle).
async fn retire(conn: Arc<Connection>) {
    let mut seen = (conn.traffic.load(Relaxed), Instant::now());
    loop {
        tokio::select! {
            _ = conn.closed.cancelled() => return,
            _ = tokio::time::sleep(RETIRE_IDLE / 4) => {}
        }
        let received = conn.traffic.load(Relaxed);
        // Bytes waiting in the socket are frames not read yet (the reader may be held, by
        // back-pressure or a handover): closing now would lose them.
        let unread = conn.unread_bytes() > 0 || conn.reader_paused();
        if received != seen.0 || !conn.is_idle() || unread {
            seen = (received, Instant::now());
        } else if seen.1.elapsed() >= RETIRE_IDLE {
            conn.close("duplicate connection retired (both nodes dialed at once)");
            return;
        }
    }
}

/// The same dial failure for a task that shared the dial.
fn copy(e: &Error) -> Error {
    match e {
        Error::Refused { peer, reason } => Error::Refused {
            peer: peer.clone(),
            reason: reason.clone(),
        },
        Error::Io { context, source } => Error::Io {
            context: context.clone(),
            source: std::io::Error::new(source.kind(), source.to_string()),
        },
        Error::Protocol { peer, detail } => Error::Protocol {
            peer: peer.clone(),
            detail: detail.clone(),
        },
        other => Error::Protocol {
            peer: "peer".into(),
            detail: other.to_string(),
        },
    }
}
