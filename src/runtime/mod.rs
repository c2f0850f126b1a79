//! The tokio shell: sockets, tasks and timers around the pure `proto` logic.
//!
//! One TCP connection per peer pair carries calls in both directions. Each connection has a
//! reader task (decode, dispatch), a writer task (coalesces queued frames into few
//! syscalls), and one task per call it serves, except calls of functions learnt to be
//! quick, which the reader runs itself ([`quick`]). Shared node state lives in [`Shared`].

pub(crate) mod attach;
pub(crate) mod bootstrap;
pub(crate) mod caller;
pub(crate) mod cluster;
pub(crate) mod connect;
pub(crate) mod connection;
pub(crate) mod datagrams;
pub(crate) mod dialer;
pub(crate) mod discovery;
pub(crate) mod dispatch;
pub(crate) mod gossip;
pub(crate) mod grid;
pub(crate) mod handover;
pub(crate) mod handshake;
pub(crate) mod listener;
pub(crate) mod liveness;
pub(crate) mod mailbox;
pub(crate) mod outbound;
pub(crate) mod pubsub;
pub(crate) mod queue;
pub(crate) mod quick;
pub(crate) mod reactor;
pub(crate) mod route;
pub(crate) mod shared;
pub(crate) mod workflow;

pub(crate) use connection::{Connection, PeerInfo};
pub(crate) use shared::Shared;

/// Milliseconds since the Unix epoch: the clock of datagram envelopes (replay windows) and
/// of member start times. The pure `proto` code takes it as an argument.
pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
