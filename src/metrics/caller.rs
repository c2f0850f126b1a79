//! The caller's side of one call, measured from the request to its outcome.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use super::{bump, entry, Called, Metrics, MAX_CALLED};
use crate::error::{Error, Result};

/// Counts a call in flight while it lives (also when the caller drops the future) and
/// records its outcome with [`Caller::finish`].
pub(crate) struct Caller(Arc<Called>);

impl Caller {
    /// A call of `fun` starts.
    pub(crate) fn start(metrics: &Metrics, fun: &str) -> Self {
        let c = metrics.called(fun);
        c.in_flight.fetch_add(1, Relaxed);
        Caller(c)
    }

    /// The call ended after `took` with `outcome`; `node` answered it when it succeeded.
    pub(crate) fn finish<T>(self, outcome: &Result<T>, node: Option<&str>, took: Duration) {
        let c = &self.0;
        bump(&c.calls);
        c.latency.record(took);
        match outcome {
            Ok(_) => {
                if let Some(n) = node {
                    bump(&entry(&c.answered_by, n, MAX_CALLED));
                }
            }
            Err(e) => {
                bump(&c.errors);
                if matches!(e, Error::Busy { .. }) {
                    bump(&c.busy);
                }
            }
        }
    }
}

impl Drop for Caller {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Relaxed);
    }
}
