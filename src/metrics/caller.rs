//! The caller's side of one call, measured from the request to its outcome. Its records
//! are found through per-thread caches ([`super::cache`]).

use std::cell::RefCell;
use std::time::Duration;

use super::cache::{cached, Cache};
use super::stripe::Counter;
use super::{bump, entry, Called, Metrics, MAX_CALLED};
use crate::error::{Error, Result};

thread_local! {
    /// `(node metrics id, function) -> record` of the calls this thread made lately.
    static CALLED: Cache<Called> = const { RefCell::new(Vec::new()) };
    /// `(record id, node) -> count` of who answered them.
    static ANSWERED: Cache<Counter> = const { RefCell::new(Vec::new()) };
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
        c.with(|r| r.started.add(1));
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
                    cached(&ANSWERED, owner, n, make, |a| a.add(1));
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
