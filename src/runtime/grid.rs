//! The process's timer grid: the periodic work of an idle node comes due on shared
//! instants, so the node wakes once for all of it rather than once per timer.
//!
//! Every wakeup of an idle process costs a context switch or two (and a second worker
//! thread woken to look for work) for a few microseconds of real work, so an idle node's
//! CPU is the number of distinct instants its timers fire at (issue #17: ≤ 0.1 % of a
//! core). Connection watchdogs tick on the grid; SWIM's timers and the beacon's announces
//! are snapped to it. tokio's timer wheel also wakes at the start of the coarser slot a
//! distant deadline sits in, to cascade it; timers with one deadline share that wakeup too.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::OnceLock;
use std::time::Duration;

use tokio::time::{Instant, Interval, MissedTickBehavior};

/// The grid's spacing: the watchdogs' tick.
pub(crate) const TICK: Duration = Duration::from_millis(250);

/// The grid's origin: the first instant any timer of the process asked for it.
fn epoch() -> std::time::Instant {
    static EPOCH: OnceLock<std::time::Instant> = OnceLock::new();
    *EPOCH.get_or_init(std::time::Instant::now)
}

/// How far `at` is past the grid point at or before it.
fn past_grid(at: Instant) -> Duration {
    let since = at.into_std().saturating_duration_since(epoch());
    Duration::from_nanos((since.as_nanos() % TICK.as_nanos()) as u64)
}

/// An interval of [`TICK`] whose ticks fall on the grid; a late tick is skipped, not
/// shifted, so it stays there.
pub(crate) fn interval() -> Interval {
    epoch();
    let now = Instant::now();
    let mut tick = tokio::time::interval_at(now - past_grid(now) + TICK, TICK);
    tick.set_missed_tick_behavior(MissedTickBehavior::Skip);
    tick
}

/// The grid point a timer due at `at` fires at instead: the one in
/// `[at - TICK/4, at + 3 TICK/4)`. A timer asked for a whole number of ticks after a grid
/// instant (SWIM's probe period, the beacon) stays exact; others move by at most that.
pub(crate) fn snap(at: Instant) -> Instant {
    let past = past_grid(at);
    if past <= TICK / 4 {
        at - past
    } else {
        at - past + TICK
    }
}

/// A queue of timers that fire on the grid: a heap under one sleep, rather than
/// `DelayQueue`, whose own wheel also wakes at its slot boundaries, off the grid.
#[derive(Debug)]
pub(crate) struct Timers<T> {
    heap: BinaryHeap<Reverse<Due<T>>>,
    /// Ties break in insertion order.
    next_seq: u64,
}

/// A timer in the heap, ordered by when it is due.
#[derive(Debug)]
struct Due<T> {
    at: Instant,
    seq: u64,
    item: T,
}

impl<T> PartialEq for Due<T> {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}

impl<T> Eq for Due<T> {}

impl<T> PartialOrd for Due<T> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl<T> Ord for Due<T> {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

impl<T> Default for Timers<T> {
    fn default() -> Self {
        Timers {
            heap: BinaryHeap::new(),
            next_seq: 0,
        }
    }
}

impl<T> Timers<T> {
    /// Schedules `item` to come out of [`Timers::next`] after `after` (snapped to the grid;
    /// a zero delay is not delayed).
    pub(crate) fn insert(&mut self, item: T, after: Duration) {
        let now = Instant::now();
        let at = if after.is_zero() {
            now
        } else {
            snap(now + after).max(now)
        };
        let seq = self.next_seq;
        self.next_seq += 1;
        self.heap.push(Reverse(Due { at, seq, item }));
    }

    /// The next timer to come due, when it does; never, while there is none. Cancel-safe:
    /// a timer leaves the queue only when returned.
    pub(crate) async fn next(&mut self) -> T {
        let Some(at) = self.heap.peek().map(|d| d.0.at) else {
            return std::future::pending().await;
        };
        tokio::time::sleep_until(at).await;
        self.heap.pop().expect("peeked").0.item
    }

    /// Timers waiting.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.heap.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapping_moves_a_deadline_by_at_most_three_quarters_of_a_tick() {
        epoch();
        let now = Instant::now();
        let base = now - past_grid(now) + TICK * 4;
        assert_eq!(snap(base), base);
        assert_eq!(
            snap(base + TICK / 4),
            base,
            "a little late: back to the grid"
        );
        assert_eq!(snap(base + TICK / 2), base + TICK);
        assert_eq!(snap(base + TICK - Duration::from_millis(1)), base + TICK);
        for ms in 0..1000 {
            let at = now + Duration::from_millis(ms);
            let s = snap(at);
            assert_eq!(past_grid(s), Duration::ZERO, "{ms} ms: on the grid");
            assert!(s + TICK / 4 >= at && s < at + TICK * 3 / 4, "{ms} ms");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn timers_come_out_in_order_on_the_grid_and_survive_cancellation() {
        // tokio's wheel rounds a deadline up to its next millisecond.
        let on_grid = || past_grid(Instant::now()) < Duration::from_millis(2);
        let mut t = Timers::default();
        t.insert("late", Duration::from_millis(900));
        t.insert("early", Duration::from_millis(300));
        t.insert("now", Duration::ZERO);
        assert_eq!(t.next().await, "now");
        // A `next` dropped before its timer is due loses nothing.
        let cut = tokio::time::timeout(Duration::from_millis(1), t.next()).await;
        assert!(cut.is_err());
        assert_eq!(t.len(), 2);
        assert_eq!(t.next().await, "early");
        assert!(on_grid());
        assert_eq!(t.next().await, "late");
        assert!(on_grid());
    }
}
