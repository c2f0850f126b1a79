//! A lock-free latency histogram with log-linear buckets, read both as quantiles (for
//! `_metrics` and `mpreg top`) and as a Prometheus histogram (for `/metrics`).
//!
//! Written here because no crate we can use does both without a lock on the hot path:
//! `prometheus-client`'s histogram takes a lock per observation and cannot be read back,
//! `metrics-exporter-prometheus` keeps every raw sample until an upkeep pass and only renders
//! text, and `hdrhistogram` needs `&mut` to record. The layout is HDR's: each power of two
//! is split into [`SUB`] equal buckets, so a quantile is known to within 1/[`SUB`] of its
//! value (12.5 %), from 1 µs to 2^[`POWERS`] µs (about 12 days), in a fixed 2.6 KiB per stripe.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use super::stripe::{self, STRIPES};

/// Sub-buckets per power of two (a power of two itself).
const SUB: u64 = 8;
const SUB_BITS: u32 = SUB.trailing_zeros();
/// Powers of two of microseconds covered; larger values land in the last bucket.
const POWERS: u64 = 40;
const BUCKETS: usize = ((POWERS + 1) * SUB) as usize;

/// Latencies in microseconds: counts per bucket, their sum and the largest seen. Each
/// thread records into its own stripe (see [`super::stripe`]): a histogram is recorded on
/// every call, by every worker thread.
pub(crate) struct Histogram {
    stripes: Box<[Stripe]>,
    max_us: AtomicU64,
}

/// One thread's share of a histogram, on cache lines of its own.
#[repr(align(128))]
struct Stripe {
    buckets: [AtomicU64; BUCKETS],
    sum_us: AtomicU64,
}

impl Default for Histogram {
    fn default() -> Self {
        let stripe = || Stripe {
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            sum_us: AtomicU64::new(0),
        };
        Histogram {
            stripes: (0..STRIPES).map(|_| stripe()).collect(),
            max_us: AtomicU64::new(0),
        }
    }
}

/// The bucket of `us`. Buckets are `(edge(i - 1), edge(i)]`, as Prometheus' `le` buckets
/// are, so that powers of two are edges.
fn index(us: u64) -> usize {
    raw_index(us.saturating_sub(1))
}

/// The upper edge (µs, inclusive) of bucket `i`.
fn edge(i: usize) -> u64 {
    raw_upper(i) + 1
}

/// The bucket of `v` among `[lower, upper]` buckets: one per value below `SUB`, then
/// `SUB` per power of two.
fn raw_index(us: u64) -> usize {
    if us < SUB {
        return us as usize;
    }
    let power = 63 - u64::from(us.leading_zeros());
    let sub = (us >> (power - u64::from(SUB_BITS))) & (SUB - 1);
    let i = (power - u64::from(SUB_BITS) + 1) * SUB + sub;
    (i as usize).min(BUCKETS - 1)
}

/// The largest `v` in raw bucket `i`.
fn raw_upper(i: usize) -> u64 {
    let i = i as u64;
    if i < SUB {
        return i;
    }
    let power = i / SUB - 1 + u64::from(SUB_BITS);
    let sub = i % SUB;
    let width = 1u64 << (power - u64::from(SUB_BITS));
    (1u64 << power) + (sub + 1) * width - 1
}

impl Histogram {
    /// Records one latency: two atomic adds (and a third for a new maximum). The count is
    /// the buckets' sum, so counting calls costs nothing more.
    pub(crate) fn record(&self, d: Duration) {
        let us = d.as_micros().min(u128::from(u64::MAX)) as u64;
        let s = &self.stripes[stripe::mine()];
        s.buckets[index(us)].fetch_add(1, Relaxed);
        s.sum_us.fetch_add(us, Relaxed);
        if us > self.max_us.load(Relaxed) {
            self.max_us.fetch_max(us, Relaxed);
        }
    }

    /// Values recorded so far.
    pub(crate) fn count(&self) -> u64 {
        let stripes = self.stripes.iter();
        stripes
            .flat_map(|s| &s.buckets)
            .map(|b| b.load(Relaxed))
            .sum()
    }

    /// A consistent-enough copy to read quantiles and buckets from (each counter is read
    /// once; a record racing the copy may be half in it, which moves no quantile visibly).
    pub(crate) fn snapshot(&self) -> Counts {
        let mut buckets = vec![0u64; BUCKETS];
        let mut sum_us = 0u64;
        for s in self.stripes.iter() {
            for (total, b) in buckets.iter_mut().zip(&s.buckets) {
                *total += b.load(Relaxed);
            }
            sum_us = sum_us.wrapping_add(s.sum_us.load(Relaxed));
        }
        Counts {
            buckets,
            sum_us,
            max_us: self.max_us.load(Relaxed),
        }
    }
}

/// A copy of a [`Histogram`].
#[derive(Debug, Clone, Default)]
pub(crate) struct Counts {
    buckets: Vec<u64>,
    /// Sum of all values, µs.
    pub sum_us: u64,
    /// Largest value, µs.
    pub max_us: u64,
}

impl Counts {
    /// Values recorded.
    pub(crate) fn count(&self) -> u64 {
        self.buckets.iter().sum()
    }

    /// The value (µs) below which a fraction `q` of the values lie: the upper edge of the
    /// bucket holding that rank, capped by the largest value seen. 0 when empty.
    pub(crate) fn quantile(&self, q: f64) -> u64 {
        let n = self.count();
        if n == 0 {
            return 0;
        }
        let rank = ((q.clamp(0.0, 1.0) * n as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, c) in self.buckets.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return edge(i).min(self.max_us);
            }
        }
        self.max_us
    }

    /// Cumulative counts at each upper bound in `bounds_us` (ascending): the `le` buckets
    /// of a Prometheus histogram. A bucket counts once all its values are at or below the
    /// bound, so counts are exact at our bucket edges (every power of two is one) and
    /// otherwise short by at most the bucket that straddles the bound.
    pub(crate) fn cumulative(&self, bounds_us: &[u64]) -> Vec<u64> {
        let mut out = Vec::with_capacity(bounds_us.len());
        let mut seen = 0;
        let mut i = 0;
        for &b in bounds_us {
            while i < self.buckets.len() && edge(i) <= b {
                seen += self.buckets[i];
                i += 1;
            }
            out.push(seen);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_cover_every_value_in_order() {
        let mut last = 0;
        for us in [
            0u64,
            1,
            7,
            8,
            9,
            15,
            16,
            17,
            100,
            1_000,
            65_535,
            1 << 30,
            u64::MAX,
        ] {
            let i = index(us);
            assert!(i >= last, "{us}");
            last = i;
            if i < BUCKETS - 1 {
                assert!(edge(i) >= us, "{us} above its bucket's edge {}", edge(i));
                assert!(i == 0 || edge(i - 1) < us, "{us} belongs lower");
            }
        }
    }

    #[test]
    fn quantiles_are_within_an_eighth() {
        let h = Histogram::default();
        for us in 1..=10_000u64 {
            h.record(Duration::from_micros(us));
        }
        let c = h.snapshot();
        assert_eq!(c.count(), 10_000);
        for (q, want) in [(0.5, 5_000.0), (0.95, 9_500.0), (0.99, 9_900.0)] {
            let got = c.quantile(q) as f64;
            assert!(got >= want && got <= want * 1.125, "q{q}: {got} vs {want}");
        }
        assert_eq!(c.quantile(1.0), 10_000);
        assert_eq!(c.max_us, 10_000);
        assert_eq!(c.sum_us, 10_000 * 10_001 / 2);
    }

    #[test]
    fn cumulative_counts_are_exact_on_powers_of_two() {
        let h = Histogram::default();
        for us in [3u64, 900, 1_024, 1_025, 5_000] {
            h.record(Duration::from_micros(us));
        }
        let c = h.snapshot();
        assert_eq!(
            c.cumulative(&[1, 512, 1_024, 4_096, 8_192]),
            vec![0, 1, 3, 4, 5]
        );
        assert_eq!(Counts::default().quantile(0.5), 0);
    }
}
