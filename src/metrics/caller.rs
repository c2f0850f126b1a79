//! The caller's side of one call, measured from the request to its outcome.
//!
//! A call's records are found through a per-thread cache rather than the node's map: the
//! map's lock and the record's reference count are shared by every worker thread, and
//! touching them twice per call cost several percent of the RPC benchmark's throughput.

use std::cell::RefCell;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use super::{bump, entry, Called, Metrics, MAX_CALLED};
use crate::error::{Error, Result};

/// Entries a thread keeps (function records and answering nodes alike).
const CACHED: usize = 16;

/// A per-thread cache: `(owner id, name) -> value`, most recent last.
type Cache<T> = RefCell<Vec<(u64, String, Arc<T>)>>;

thread_local! {
    /// `(node metrics id, function) -> record` of the calls this thread made lately (ids,
    /// not addresses: a later node may reuse a dropped one's address).
    static CALLED: Cache<Called> = const { RefCell::new(Vec::new()) };
    /// `(record id, node) -> count` of who answered them.
    static ANSWERED: Cache<AtomicU64> = const { RefCell::new(Vec::new()) };
}

/// `f` applied to the cached value for `(owner, name)`, made by `make` when missing.
fn cached<T, R>(
    cache: &'static std::thread::LocalKey<Cache<T>>,
    owner: u64,
    name: &str,
    make: impl FnOnce() -> Arc<T>,
    f: impl FnOnce(&T) -> R,
) -> R {
    cache.with(|c| {
        let mut c = c.borrow_mut();
        let at = match c.iter().position(|(o, n, _)| *o == owner && n == name) {
            Some(i) => i,
            None => {
                if c.len() >= CACHED {
                    c.remove(0);
                }
                c.push((owner, name.to_string(), make()));
                c.len() - 1
            }
        };
        f(&c[at].2)
    })
}

/// A call of one function in flight; record its outcome with [`Caller::finish`]. Dropped
/// unfinished (the caller gave up), it counts as abandoned.
pub(crate) struct Caller<'m> {
    metrics: &'m Metrics,
    fun: &'m str,
    finished: bool,
}

impl<'m> Caller<'m> {
    /// A call of `fun` starts.
    pub(crate) fn start(metrics: &'m Metrics, fun: &'m str) -> Self {
        let c = Caller {
            metrics,
            fun,
            finished: false,
        };
        c.with(|r| bump(&r.started));
        c
    }

    fn with<R>(&self, f: impl FnOnce(&Called) -> R) -> R {
        let owner = self.metrics.id;
        cached(
            &CALLED,
            owner,
            self.fun,
            || self.metrics.called(self.fun),
            f,
        )
    }

    /// The call ended after `took` with `outcome`; `node` answered it when it succeeded.
    pub(crate) fn finish<T>(mut self, outcome: &Result<T>, node: Option<&str>, took: Duration) {
        self.finished = true;
        self.with(|c| {
            c.latency.record(took);
            match (outcome, node) {
                (Ok(_), Some(n)) => {
                    let owner = c.id;
                    let make = || entry(&c.answered_by, n, MAX_CALLED);
                    cached(&ANSWERED, owner, n, make, bump);
                }
                (Ok(_), None) => {}
                (Err(e), _) => {
                    bump(&c.errors);
                    if matches!(e, Error::Busy { .. }) {
                        bump(&c.busy);
                    }
                }
            }
        });
    }
}

impl Drop for Caller<'_> {
    fn drop(&mut self) {
        if !self.finished {
            self.with(|c| bump(&c.abandoned));
        }
    }
}
