//! Counters split into per-thread stripes, for what every call and publication bumps.
//!
//! One atomic bumped by every worker thread moves its cache line from core to core on each
//! call: with two workers busy, each bump of a shared counter waits for the other core's
//! copy, and metrics cost the RPC benchmark several percent more than their few
//! instructions. Each thread instead adds to its own stripe, on a cache line of its own, and
//! readers (rare: `_metrics`, `/metrics`, `mpreg top`) sum the stripes. Written here because
//! the crates that shard counters this way come with a whole metrics registry we do not use.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};

/// Stripes per counter. Threads take stripes in turn, so up to this many threads record
/// without sharing a line; beyond it two threads share one, which is still correct.
pub(crate) const STRIPES: usize = 4;

/// The stripe this thread records into.
pub(crate) fn mine() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static MINE: usize = NEXT.fetch_add(1, Relaxed) % STRIPES;
    }
    MINE.with(|m| *m)
}

/// An atomic alone on its cache line (128 bytes: adjacent-line prefetch pairs lines).
#[derive(Default)]
#[repr(align(128))]
struct Padded(AtomicU64);

/// A counter each thread adds to in its own stripe.
#[derive(Default)]
pub(crate) struct Counter([Padded; STRIPES]);

impl Counter {
    /// Adds `n`. Relaxed: metrics are statistics, not synchronisation.
    pub(crate) fn add(&self, n: u64) {
        self.0[mine()].0.fetch_add(n, Relaxed);
    }

    /// The total of every stripe.
    pub(crate) fn get(&self) -> u64 {
        self.0.iter().map(|p| p.0.load(Relaxed)).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_total_counts_every_thread() {
        let c = std::sync::Arc::new(Counter::default());
        let threads: Vec<_> = (0..STRIPES * 2 + 1)
            .map(|_| {
                let c = c.clone();
                std::thread::spawn(move || {
                    for _ in 0..1000 {
                        c.add(1);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(c.get(), (STRIPES as u64 * 2 + 1) * 1000);
        assert_eq!(std::mem::align_of::<Padded>(), 128);
    }
}
