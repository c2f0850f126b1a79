//! Which served functions run on the connection's reader instead of in a task of their own.
//!
//! Spawning a task per served call costs an allocation of the whole call future, a trip
//! through the scheduler, an entry in the connection's table of served calls and a timer
//! for its deadline: for a short synchronous body (`echo`, a lookup) that is most of the
//! call's CPU. A function whose recent calls all finished within [`QUICK`] at their first
//! poll is called on the reader itself: if the body answers at once, the reply is queued
//! right there; if it has to wait after all, the rest becomes a task like any other call.
//!
//! The price is that the reader reads nothing else while such a body runs, so the verdict
//! is learnt, per function, and lost at once: one call slower than [`QUICK`] (or one that
//! has to wait) sends the function back to tasks until it shows a run of quick calls
//! again. A fall longer than [`LONG`] also doubles the run asked for ([`TRUST_MAX`] at
//! most): a function that is quick but now and then long blocks its reader for one long
//! call per fall, fewer and fewer as the run it must show grows.
//!
//! The time is wall-clock time, so a quick body that the OS preempted in the middle also
//! falls. Measured at 256 calls in flight on a busy 2-core machine, one call in 700 to
//! 2,400 did, most by less than 200 µs, a few by over 10 ms (the host's steal): when every
//! fall doubled the run, `echo` was asked for 16,384 quick calls in a row and was almost
//! never trusted. A short fall costs only a run
//! of calls in tasks, and the run asked for halves again after [`CLEAN_RUNS`] times its
//! length of trusted calls without a fall, so long preemptions do not add up over hours.
//! No crate does this; it is a few atomics.

use std::sync::atomic::{AtomicU32, Ordering::Relaxed};
use std::time::Duration;

/// Longest first poll that counts as quick.
pub(crate) const QUICK: Duration = Duration::from_micros(50);
/// A fall at least this long (or a wait) while trusted doubles the run asked for.
const LONG: Duration = Duration::from_millis(1);
/// Quick calls in a row a function must show before its calls run on the reader.
const TRUST_FIRST: u32 = 16;
/// The most quick calls in a row ever asked for (after many falls).
const TRUST_MAX: u32 = 1 << 20;
/// Trusted calls without a fall, in runs of the length asked for, that halve that length.
const CLEAN_RUNS: u32 = 64;

/// One function's record: quick first polls in a row, how many it needs, and the trusted
/// calls since it was last trusted anew or its run halved.
#[derive(Debug)]
pub(crate) struct Quick {
    streak: AtomicU32,
    needed: AtomicU32,
    clean: AtomicU32,
}

impl Default for Quick {
    fn default() -> Self {
        Quick {
            streak: AtomicU32::new(0),
            needed: AtomicU32::new(TRUST_FIRST),
            clean: AtomicU32::new(0),
        }
    }
}

impl Quick {
    /// Whether the next call may run on the reader.
    pub(crate) fn trusted(&self) -> bool {
        self.streak.load(Relaxed) >= self.needed.load(Relaxed)
    }

    /// The body's first poll took `took` and finished the call (`done`) or had to wait.
    /// Threads racing here can lose a count, which only delays or repeats a verdict.
    pub(crate) fn first_poll(&self, took: Duration, done: bool) {
        let needed = self.needed.load(Relaxed);
        let trusted = self.streak.load(Relaxed) >= needed;
        if done && took <= QUICK {
            if !trusted {
                self.streak.fetch_add(1, Relaxed);
            } else if self.clean.fetch_add(1, Relaxed) + 1 >= needed.saturating_mul(CLEAN_RUNS) {
                self.clean.store(0, Relaxed);
                self.needed.store((needed / 2).max(TRUST_FIRST), Relaxed);
            }
            return;
        }
        if trusted && (!done || took >= LONG) {
            self.needed
                .store(needed.saturating_mul(2).min(TRUST_MAX), Relaxed);
        }
        self.streak.store(0, Relaxed);
        self.clean.store(0, Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FAST: Duration = Duration::from_micros(3);
    const SLOW: Duration = Duration::from_millis(2);

    fn quick_calls(q: &Quick, n: u32) {
        for _ in 0..n {
            q.first_poll(FAST, true);
        }
    }

    /// Exactly `n` more quick calls make `q` trusted.
    fn trusted_after(q: &Quick, n: u32) {
        quick_calls(q, n - 1);
        assert!(!q.trusted(), "not before {n} quick calls");
        quick_calls(q, 1);
        assert!(q.trusted(), "after {n} quick calls");
    }

    #[test]
    fn trusted_after_a_run_of_quick_calls_only() {
        let q = Quick::default();
        quick_calls(&q, TRUST_FIRST - 1);
        assert!(!q.trusted());
        q.first_poll(FAST, false); // had to wait: the run starts over
        trusted_after(&q, TRUST_FIRST);
    }

    #[test]
    fn each_long_fall_or_wait_doubles_the_run_needed() {
        let q = Quick::default();
        quick_calls(&q, TRUST_FIRST);
        q.first_poll(SLOW, true);
        assert!(!q.trusted(), "one long call is enough to lose trust");
        trusted_after(&q, 2 * TRUST_FIRST);
        q.first_poll(FAST, false);
        trusted_after(&q, 4 * TRUST_FIRST);
    }

    #[test]
    fn a_short_fall_loses_trust_for_one_run_only() {
        let q = Quick::default();
        quick_calls(&q, TRUST_FIRST);
        q.first_poll(QUICK * 4, true);
        assert!(!q.trusted());
        quick_calls(&q, TRUST_FIRST);
        assert!(q.trusted());
    }

    #[test]
    fn slow_calls_while_untrusted_do_not_raise_the_bar() {
        let q = Quick::default();
        for _ in 0..100 {
            q.first_poll(SLOW, true);
        }
        quick_calls(&q, TRUST_FIRST);
        assert!(q.trusted());
    }

    #[test]
    fn a_long_clean_run_halves_the_run_needed() {
        let q = Quick::default();
        quick_calls(&q, TRUST_FIRST);
        q.first_poll(SLOW, true);
        quick_calls(&q, 2 * TRUST_FIRST);
        q.first_poll(SLOW, true);
        assert_eq!(q.needed.load(Relaxed), 4 * TRUST_FIRST);
        quick_calls(&q, 4 * TRUST_FIRST); // trusted again
        quick_calls(&q, 4 * TRUST_FIRST * CLEAN_RUNS);
        assert_eq!(q.needed.load(Relaxed), 2 * TRUST_FIRST);
        // Halving the run asked for never takes the trust away.
        assert!(q.trusted());
        quick_calls(&q, 100 * TRUST_FIRST * CLEAN_RUNS);
        assert_eq!(q.needed.load(Relaxed), TRUST_FIRST);
        assert!(q.trusted());
    }

    #[test]
    fn the_run_needed_is_capped() {
        let q = Quick::default();
        for _ in 0..40 {
            q.streak.store(q.needed.load(Relaxed), Relaxed);
            q.first_poll(SLOW, true);
        }
        assert_eq!(q.needed.load(Relaxed), TRUST_MAX);
    }
}
