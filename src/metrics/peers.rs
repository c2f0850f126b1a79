//! Per-peer traffic that outlives connections, so that the `mpreg_peer_*_total` counters
//! never go down when a connection closes.
//!
//! A peer's figures are the traffic of its live connections plus what its closed ones
//! carried ("retired" here). A connection hands its counts over to the [`PeerBook`] when it
//! leaves the node's list of connections, under that list's lock, and readers hold the same
//! lock: each count is seen either live or retired, never both and never neither.
//!
//! Why per peer name and not one `_other` bucket for closed connections: moving a closed
//! connection's counts from its peer's series to another series would count them twice in
//! `sum(rate(...))`, and would make the peer's own series go down while the peer still has
//! another connection (a duplicate from a simultaneous dial, a reconnect). The book is
//! bounded all the same: beyond [`MAX_PEERS`] names it forgets the peer without a live
//! connection that it heard from least recently. Its series then ends; were the peer to come
//! back, its series would restart from zero, which Prometheus reads as a counter reset, as
//! after a restart: `rate` and `increase` stay right, unlike with a series that decreases.

use std::collections::HashMap;

/// Peer names remembered, live or not, before the stalest departed one is forgotten. Each
/// shows as six series on `/metrics`; clients with generated names come and go, so this
/// bounds the page rather than tracking every client ever seen.
pub(crate) const MAX_PEERS: usize = 256;

/// What connections carried.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Traffic {
    /// Requests sent to the peer (calls, relays, workflows).
    pub calls_sent: u64,
    /// Requests the peer sent.
    pub calls_received: u64,
    /// Bytes read from the peer.
    pub bytes_in: u64,
    /// Bytes written to the peer.
    pub bytes_out: u64,
}

impl Traffic {
    /// Adds `other` to these counts.
    pub(crate) fn add(&mut self, other: Traffic) {
        self.calls_sent += other.calls_sent;
        self.calls_received += other.calls_received;
        self.bytes_in += other.bytes_in;
        self.bytes_out += other.bytes_out;
    }

    /// What was counted since `earlier` (counts only grow; saturating all the same).
    pub(crate) fn since(self, earlier: Traffic) -> Traffic {
        Traffic {
            calls_sent: self.calls_sent.saturating_sub(earlier.calls_sent),
            calls_received: self.calls_received.saturating_sub(earlier.calls_received),
            bytes_in: self.bytes_in.saturating_sub(earlier.bytes_in),
            bytes_out: self.bytes_out.saturating_sub(earlier.bytes_out),
        }
    }
}

/// What the node keeps about one peer name beyond its live connections.
#[derive(Debug, Default)]
pub(crate) struct PeerRecord {
    /// Connections opened to or by the peer, over the node's life.
    pub opened: u64,
    /// What its connections carried before they left the node's list.
    pub retired: Traffic,
    /// Connections to the peer whose reader still runs: a record with any is not forgotten
    /// (its series would go down).
    live: u32,
    /// When the record last changed, on the book's clock: the stalest is forgotten first.
    touched: u64,
}

/// The records of the peers a node has had connections with (bounded, see the module docs).
#[derive(Debug, Default)]
pub(crate) struct PeerBook {
    records: HashMap<String, PeerRecord>,
    clock: u64,
}

impl PeerBook {
    /// A connection with `peer` opened.
    pub(crate) fn opened(&mut self, peer: &str) {
        let r = self.record(peer);
        r.opened += 1;
        r.live += 1;
    }

    /// Adds `traffic`, which a connection with `peer` carried, to the peer's retired
    /// counts; `closed` when that connection's reader has ended (it carries no more).
    pub(crate) fn retire(&mut self, peer: &str, traffic: Traffic, closed: bool) {
        let r = self.record(peer);
        r.retired.add(traffic);
        if closed {
            r.live = r.live.saturating_sub(1);
        }
    }

    /// Every record, by peer name.
    pub(crate) fn records(&self) -> impl Iterator<Item = (&String, &PeerRecord)> {
        self.records.iter()
    }

    /// `peer`'s record, made (after making room) if absent, marked as touched now.
    fn record(&mut self, peer: &str) -> &mut PeerRecord {
        if !self.records.contains_key(peer) {
            self.make_room();
        }
        self.clock += 1;
        let r = self.records.entry(peer.to_string()).or_default();
        r.touched = self.clock;
        r
    }

    /// At [`MAX_PEERS`] records, forgets the stalest peer without a live connection. If
    /// every peer has one, nothing is forgotten: live peers are bounded by the connections.
    fn make_room(&mut self) {
        if self.records.len() < MAX_PEERS {
            return;
        }
        let stalest = self
            .records
            .iter()
            .filter(|(_, r)| r.live == 0)
            .min_by_key(|(_, r)| r.touched)
            .map(|(k, _)| k.clone());
        if let Some(k) = stalest {
            self.records.remove(&k);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn traffic(n: u64) -> Traffic {
        Traffic {
            calls_sent: n,
            calls_received: n,
            bytes_in: n,
            bytes_out: n,
        }
    }

    #[test]
    fn retired_traffic_adds_up_per_peer_and_closing_ends_liveness() {
        let mut b = PeerBook::default();
        b.opened("a");
        b.opened("a");
        b.retire("a", traffic(3), false);
        b.retire("a", traffic(4), true);
        let r = &b.records["a"];
        assert_eq!((r.opened, r.retired, r.live), (2, traffic(7), 1));
        assert_eq!(traffic(7).since(traffic(3)), traffic(4));
    }

    #[test]
    fn the_stalest_departed_peer_is_forgotten_and_live_ones_never() {
        let mut b = PeerBook::default();
        b.opened("live");
        for i in 0..MAX_PEERS - 1 {
            let name = format!("gone-{i}");
            b.opened(&name);
            b.retire(&name, traffic(1), true);
        }
        assert_eq!(b.records.len(), MAX_PEERS);
        b.opened("new");
        assert_eq!(b.records.len(), MAX_PEERS);
        assert!(!b.records.contains_key("gone-0"), "the stalest goes first");
        assert!(b.records.contains_key("live") && b.records.contains_key("gone-1"));
        // When every record has a live connection, the book grows instead.
        let mut b = PeerBook::default();
        for i in 0..=MAX_PEERS {
            b.opened(&format!("p{i}"));
        }
        assert_eq!(b.records.len(), MAX_PEERS + 1);
    }
}
