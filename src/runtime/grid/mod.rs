//! The timer grid: the periodic work of an idle node comes due on shared instants, so the
//! node wakes once for all of it rather than once per timer.
//!
//! Every wakeup of an idle process costs a context switch or two (and a second worker
//! thread woken to look for work) for a few microseconds of real work, so an idle node's
//! CPU is the number of distinct instants its timers fire at (issue #17: ≤ 0.1 % of a
//! core). Connection watchdogs, SWIM's timers and the beacon's announces wait on the
//! node's [`Clock`], one kernel timer ticking on the grid ([`timerfd`]).
//!
//! Each process's grid has its own origin (its first use), so nodes' periodic work falls
//! at unrelated instants. A grid shared by every process (aligned to the wall clock) was
//! tried and dropped: synchronized periodic traffic is a known hazard (Floyd and Jacobson,
//! 1993), and here it tripled the time a node healed after a link cut took to serve again
//! (3.0 s against 0.9 s in the LAN failover test) and made simultaneous dials routine.

mod clock;
#[cfg(target_os = "linux")]
mod timerfd;

pub(crate) use clock::{Clock, Ticks};

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::OnceLock;
use std::time::Duration;

use tokio::time::Instant;

/// The grid's spacing: the watchdogs' tick.
pub(crate) const TICK: Duration = Duration::from_millis(250);

/// How early a tick may look, read on this process's clock, against the grid instant it is
/// for: the kernel timer's first instant comes from two clock reads.
const SLACK: Duration = Duration::from_millis(1);

/// The grid's origin: the first instant any timer of the process asked for it.
fn epoch() -> std::time::Instant {
    static EPOCH: OnceLock<std::time::Instant> = OnceLock::new();
    *EPOCH.get_or_init(std::time::Instant::now)
}

/// `at` in milliseconds since the grid's origin (0 before it): an instant that fits an
/// atomic.
pub(crate) fn ms(at: std::time::Instant) -> u64 {
    at.saturating_duration_since(epoch()).as_millis() as u64
}

/// The instant `ms` milliseconds after the grid's origin (see [`ms`]).
pub(crate) fn at_ms(ms: u64) -> std::time::Instant {
    epoch() + Duration::from_millis(ms)
}

/// How far `at` is past the grid point at or before it.
fn past_grid(at: Instant) -> Duration {
    let since = at.into_std().saturating_duration_since(epoch());
    Duration::from_nanos((since.as_nanos() % TICK.as_nanos()) as u64)
}

/// The first grid instant after `at`.
fn first_tick_after(at: Instant) -> Instant {
    at - past_grid(at) + TICK
}

/// The next grid instant on `CLOCK_MONOTONIC` (the clock `Instant` reads on Linux), in
/// nanoseconds.
#[cfg(target_os = "linux")]
fn first_tick_ns() -> u128 {
    let now = Instant::now();
    timerfd::monotonic_ns() + (first_tick_after(now) - now).as_nanos()
}

/// Whether a timer for `at` is due at `now` (see [`SLACK`]).
pub(crate) fn due(at: Instant, now: Instant) -> bool {
    now + SLACK >= at
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

    /// The next timer to come due, at the tick it does (at once, if one is due); never,
    /// while there is none (a timer inserted meanwhile needs a new call). Cancel-safe: a
    /// timer leaves the queue only when returned.
    pub(crate) async fn next(&mut self, ticks: &mut Ticks) -> T {
        let Some(at) = self.heap.peek().map(|d| d.0.at) else {
            return std::future::pending().await;
        };
        // Asleep through the ticks before it: the clock wakes this task only then.
        ticks.until(at).await;
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
        let clock = Clock::on_tokio_timer();
        let mut ticks = clock.ticks();
        let mut t = Timers::default();
        t.insert("late", Duration::from_millis(900));
        t.insert("early", Duration::from_millis(300));
        t.insert("now", Duration::ZERO);
        assert_eq!(t.next(&mut ticks).await, "now");
        // A `next` dropped before its timer is due loses nothing.
        let cut = tokio::time::timeout(Duration::from_millis(1), t.next(&mut ticks)).await;
        assert!(cut.is_err());
        assert_eq!(t.len(), 2);
        assert_eq!(t.next(&mut ticks).await, "early");
        assert!(on_grid());
        assert_eq!(t.next(&mut ticks).await, "late");
        assert!(on_grid());
    }
}
