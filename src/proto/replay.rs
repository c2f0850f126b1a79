//! Replay protection for authenticated datagrams: a sliding window of counters per sender
//! (as WireGuard and IPsec do, RFC 6479), so that a captured datagram is accepted at most
//! once by a receiver.
//!
//! Every sender numbers its datagrams with a counter that only grows (see
//! [`crate::proto::datagram`]). For each sender the receiver keeps the newest counter it
//! accepted and a bitmap of the [`WINDOW`] counters below it: a counter newer than the
//! newest is accepted and slides the window; one inside the window is accepted once
//! (datagrams may arrive out of order); one older than the window is rejected.
//!
//! Memory is bounded: at most `cap` senders are tracked (about 160 bytes each). When the
//! table is full a *new* sender is refused — never is a tracked sender dropped to make room,
//! since that would let its datagrams be replayed. A sender is forgotten only once its
//! newest datagram (the greatest clock it stamped) is itself outside the clock window
//! ([`crate::proto::datagram::outside_clock_window`], the very comparison `open` makes):
//! from then on every datagram it ever sent is rejected by the clock window, so forgetting
//! its counters opens no replay.
//!
//! Pure: the caller passes the time in; nothing here reads a clock or touches a socket.
//!
//! A receiver that starts with an empty window (a new process) can be handed each captured
//! datagram of the last clock window once; that is the price of needing no handshake. The
//! datagram layer narrows it further by binding unicast datagrams to their destination.

use std::collections::HashMap;

use crate::proto::datagram::{outside_clock_window, Reject};

/// Counters tracked below a sender's newest: how far datagrams may be reordered (counted
/// in the sender's datagrams, to any destination) and still be accepted.
pub const WINDOW: u64 = 1024;

/// Default bound on senders tracked by one window: about 2.5 MiB at most. Only holders of
/// the shared secret can add senders, chiefly short-lived clients probing discovery (one
/// random sender each, kept for the 5-minute clock window): enough for ~50 new clients a
/// second, sustained.
pub const MAX_SENDERS: usize = 16_384;

/// Words of the bitmap.
const WORDS: usize = (WINDOW / 64) as usize;

/// How often (in the caller's ms) senders are swept for expiry in any case.
const SWEEP_EVERY_MS: u64 = 60_000;

/// How often at most a full table is swept to make room (a sweep costs one pass over it).
const FULL_SWEEP_EVERY_MS: u64 = 1_000;

/// What is known of one sender.
#[derive(Debug, Clone)]
struct Sender {
    /// Newest counter accepted.
    newest: u64,
    /// Bit `c % WINDOW` set when counter `c` (within the window below `newest`) was accepted.
    seen: [u64; WORDS],
    /// Greatest clock stamped on an accepted datagram: decides when the sender is forgotten.
    latest_clock: u64,
}

impl Sender {
    fn new(counter: u64, clock: u64) -> Self {
        let mut s = Sender {
            newest: counter,
            seen: [0; WORDS],
            latest_clock: clock,
        };
        s.mark(counter);
        s
    }

    fn bit(counter: u64) -> (usize, u64) {
        let i = counter % WINDOW;
        ((i / 64) as usize, 1u64 << (i % 64))
    }

    fn mark(&mut self, counter: u64) {
        let (w, b) = Self::bit(counter);
        self.seen[w] |= b;
    }

    fn is_marked(&self, counter: u64) -> bool {
        let (w, b) = Self::bit(counter);
        self.seen[w] & b != 0
    }

    /// Moves the window up to `counter` (> newest), clearing the counters it passes.
    fn advance(&mut self, counter: u64) {
        let gap = counter - self.newest;
        if gap >= WINDOW {
            self.seen = [0; WORDS];
        } else {
            for c in self.newest + 1..=counter {
                let (w, b) = Self::bit(c);
                self.seen[w] &= !b;
            }
        }
        self.newest = counter;
    }

    /// Accepts `counter` once; see [`ReplayWindow::accept`].
    fn accept(&mut self, counter: u64, fresh_only: bool) -> Result<(), Reject> {
        if counter > self.newest {
            self.advance(counter);
        } else if fresh_only || self.newest - counter >= WINDOW || self.is_marked(counter) {
            return Err(Reject::Replayed);
        }
        self.mark(counter);
        Ok(())
    }

    /// Whether every datagram this sender sent so far is outside the clock window at `now`.
    fn expired(&self, now_ms: u64) -> bool {
        // Only on the past side: a datagram stamped ahead of us comes *into* the window as
        // our clock advances, so it must stay tracked.
        self.latest_clock < now_ms && outside_clock_window(self.latest_clock, now_ms)
    }
}

/// The receive-side replay state of one socket: a sliding window per sender.
#[derive(Debug, Clone)]
pub struct ReplayWindow {
    senders: HashMap<u64, Sender>,
    cap: usize,
    last_sweep_ms: u64,
}

impl Default for ReplayWindow {
    fn default() -> Self {
        Self::new(MAX_SENDERS)
    }
}

impl ReplayWindow {
    /// An empty window tracking at most `cap` senders (at least one).
    pub fn new(cap: usize) -> Self {
        ReplayWindow {
            senders: HashMap::new(),
            cap: cap.max(1),
            last_sweep_ms: 0,
        }
    }

    /// Accepts datagram `counter` of `sender`, stamped `clock` by it, received at `now_ms`;
    /// call it only for an authenticated datagram inside the clock window.
    ///
    /// Rejected ([`Reject::Replayed`]): a counter already accepted, one older than the
    /// window, with `fresh_only` one not newer than the sender's newest, and any datagram
    /// of a sender not yet tracked while `cap` senders are.
    pub fn accept(
        &mut self,
        sender: u64,
        counter: u64,
        clock: u64,
        now_ms: u64,
        fresh_only: bool,
    ) -> Result<(), Reject> {
        self.maybe_sweep(now_ms);
        if let Some(s) = self.senders.get_mut(&sender) {
            s.accept(counter, fresh_only)?;
            s.latest_clock = s.latest_clock.max(clock);
            return Ok(());
        }
        if self.senders.len() >= self.cap {
            return Err(Reject::Replayed);
        }
        self.senders.insert(sender, Sender::new(counter, clock));
        Ok(())
    }

    /// Senders tracked now.
    pub fn senders(&self) -> usize {
        self.senders.len()
    }

    /// Forgets every sender whose datagrams are all outside the clock window at `now_ms`.
    pub fn sweep(&mut self, now_ms: u64) {
        self.senders.retain(|_, s| !s.expired(now_ms));
        self.last_sweep_ms = now_ms;
    }

    /// Sweeps now and then, and when full (at most every [`FULL_SWEEP_EVERY_MS`], so that
    /// a full table of live senders does not cost a pass per datagram).
    fn maybe_sweep(&mut self, now_ms: u64) {
        let since = now_ms.saturating_sub(self.last_sweep_ms);
        let full = self.senders.len() >= self.cap;
        if since >= SWEEP_EVERY_MS || (full && since >= FULL_SWEEP_EVERY_MS) {
            self.sweep(now_ms);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::datagram::REPLAY_WINDOW_MS;

    const T: u64 = 1_000_000_000;

    fn ok(w: &mut ReplayWindow, sender: u64, counter: u64) -> bool {
        w.accept(sender, counter, T, T, false).is_ok()
    }

    #[test]
    fn each_counter_is_accepted_once() {
        let mut w = ReplayWindow::default();
        assert!(ok(&mut w, 1, 0));
        assert!(!ok(&mut w, 1, 0));
        assert!(ok(&mut w, 1, 1));
        assert!(!ok(&mut w, 1, 1));
        assert!(!ok(&mut w, 1, 0));
        // Another sender has its own counters.
        assert!(ok(&mut w, 2, 0));
        assert!(ok(&mut w, 2, 1));
        assert_eq!(w.senders(), 2);
    }

    #[test]
    fn reordering_inside_the_window_is_accepted_once() {
        let mut w = ReplayWindow::default();
        let top = 5 * WINDOW;
        assert!(ok(&mut w, 7, top - 5));
        assert!(ok(&mut w, 7, top));
        for c in [top - 4, top - 1, top - 3, top - 2] {
            assert!(ok(&mut w, 7, c), "{c}");
            assert!(!ok(&mut w, 7, c), "{c} twice");
        }
        // The oldest counter still inside the window, then the first one outside it.
        assert!(ok(&mut w, 7, top - (WINDOW - 1)));
        assert!(!ok(&mut w, 7, top - WINDOW));
    }

    #[test]
    fn older_than_the_window_is_rejected_even_if_never_seen() {
        let mut w = ReplayWindow::default();
        assert!(ok(&mut w, 1, 10));
        assert!(ok(&mut w, 1, 10 + 5 * WINDOW));
        assert!(!ok(&mut w, 1, 11));
        assert!(!ok(&mut w, 1, 10 + 4 * WINDOW));
        assert!(ok(&mut w, 1, 10 + 4 * WINDOW + 1));
    }

    #[test]
    fn sliding_clears_the_bits_it_passes() {
        let mut w = ReplayWindow::default();
        // Mark every counter of the first window, then slide by less than a window: the
        // counters that were re-used modulo WINDOW must read as unseen.
        for c in 0..WINDOW {
            assert!(ok(&mut w, 1, c));
        }
        let top = WINDOW + WINDOW / 2;
        assert!(ok(&mut w, 1, top));
        for c in WINDOW..top {
            assert!(ok(&mut w, 1, c), "{c} was never sent");
        }
        for c in top + 1 - WINDOW..=top {
            assert!(!ok(&mut w, 1, c), "{c} twice");
        }
    }

    #[test]
    fn random_orders_accept_each_counter_exactly_once() {
        use rand::seq::SliceRandom;
        use rand::SeedableRng;
        let mut rng = rand::rngs::StdRng::seed_from_u64(6479);
        for _ in 0..20 {
            // Shuffle within blocks smaller than the window: every counter must be
            // accepted exactly once however often it is replayed.
            let mut order: Vec<u64> = (0..5000).collect();
            for block in order.chunks_mut(500) {
                block.shuffle(&mut rng);
            }
            let mut w = ReplayWindow::default();
            let mut accepted = 0;
            for &c in &order {
                accepted += usize::from(ok(&mut w, 9, c));
                assert!(!ok(&mut w, 9, c));
            }
            assert_eq!(accepted, order.len());
            for &c in order.iter().rev().take(2000) {
                assert!(!ok(&mut w, 9, c));
            }
        }
    }

    #[test]
    fn fresh_only_takes_nothing_at_or_below_the_newest() {
        let mut w = ReplayWindow::default();
        assert!(w.accept(3, 50, T, T, true).is_ok());
        assert!(w.accept(3, 40, T, T, true).is_err());
        assert!(w.accept(3, 50, T, T, true).is_err());
        // The same counter 40 would be fine for a datagram addressed to us.
        assert!(w.accept(3, 40, T, T, false).is_ok());
        assert!(w.accept(3, 51, T, T, true).is_ok());
    }

    #[test]
    fn full_table_refuses_new_senders_never_replays() {
        let mut w = ReplayWindow::new(2);
        assert!(ok(&mut w, 1, 0));
        assert!(ok(&mut w, 2, 0));
        assert_eq!(w.accept(3, 0, T, T, false), Err(Reject::Replayed));
        // Tracked senders keep working, and their replays stay rejected.
        assert!(!ok(&mut w, 1, 0));
        assert!(!ok(&mut w, 2, 0));
        assert!(ok(&mut w, 1, 1));
        assert_eq!(w.senders(), 2);
    }

    #[test]
    fn a_sender_is_forgotten_only_once_its_newest_datagram_left_the_clock_window() {
        let mut w = ReplayWindow::new(1);
        // Sender 1's newest datagram is stamped T + 10, an older one T.
        assert!(w.accept(1, 0, T + 10, T, false).is_ok());
        assert!(w.accept(1, 1, T, T, false).is_ok());
        let edge = T + 10 + REPLAY_WINDOW_MS;
        // At the edge of the clock window it is still tracked: sender 2 is refused.
        assert!(w.accept(2, 0, edge, edge, false).is_err());
        w.sweep(edge);
        assert_eq!(w.senders(), 1);
        // One millisecond later every datagram of sender 1 is outside the clock window.
        assert!(outside_clock_window(T + 10, edge + 1));
        // A full table sweeps at most once a second: not yet...
        assert!(w.accept(2, 0, edge, edge + 1, false).is_err());
        // ...but a second after the last sweep it makes room.
        let later = edge + FULL_SWEEP_EVERY_MS;
        assert!(w.accept(2, 0, later, later, false).is_ok());
        assert_eq!(w.senders(), 1);
    }

    #[test]
    fn a_sender_stamped_ahead_of_us_is_kept() {
        let mut w = ReplayWindow::default();
        // Stamped 4 minutes ahead: it enters the window as our clock moves, never leaves
        // it soon.
        let ahead = T + 4 * 60 * 1000;
        assert!(w.accept(1, 0, ahead, T, false).is_ok());
        w.sweep(T + REPLAY_WINDOW_MS + 1);
        assert_eq!(w.senders(), 1);
        w.sweep(ahead + REPLAY_WINDOW_MS + 1);
        assert_eq!(w.senders(), 0);
    }

    #[test]
    fn senders_expire_by_the_periodic_sweep() {
        let mut w = ReplayWindow::default();
        for s in 0..100 {
            assert!(w.accept(s, 0, T, T, false).is_ok());
        }
        let later = T + REPLAY_WINDOW_MS + SWEEP_EVERY_MS;
        assert!(w.accept(1000, 0, later, later, false).is_ok());
        assert_eq!(w.senders(), 1);
    }
}
